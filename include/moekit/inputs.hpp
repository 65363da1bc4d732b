// moekit: random inputs for the experts call (checks, tests, benchmarks).
#pragma once

#include <cstdint>

#include "moekit/experts.hpp"
#include "moekit/tensor.hpp"

namespace moekit {

struct ExpertsDims {
  std::int64_t tokens = 1;        // T
  std::int64_t hidden = 64;       // H
  std::int64_t intermediate = 32; // I
  std::int64_t experts = 8;       // E
  std::int64_t top_k = 2;         // K
};

// How the random routing is drawn.
enum class RoutingPattern : std::uint8_t {
  random,         // K distinct experts per token, uniformly
  one_expert,     // every token on the same experts 0..K-1 (K = 1: all on expert 0)
  sentinels,      // random, then about a quarter of the ids replaced by sentinels (>= E)
  sentinel_rows,  // random, then every third token routed to sentinels only
  all_sentinels,  // every id is a sentinel: the output is exactly zero
};

struct InputSpec {
  ExpertsDims dims;
  DType dtype = DType::bf16;
  DType index_dtype = DType::i32;
  DType routing_dtype = DType::f32;
  ExpertsOptions options;
  bool bias = false;
  RoutingPattern routing = RoutingPattern::random;
};

// Host tensors for one call. Values are drawn so that pre-activations and outputs are O(1):
// x ~ U(-1, 1), weights ~ U(-3, 3) / sqrt(fan_in), biases ~ U(-0.5, 0.5), routing weights
// positive and summing to 1 per token. The output is poisoned with NaN.
struct ExpertsInputs {
  Tensor hidden_states, top_k_index, top_k_weights, gate_up_proj, down_proj;
  Tensor gate_up_proj_bias, down_proj_bias, output;
  ExpertsOptions options;
  ExpertsCall call() const;
};

// Deterministic for a given (spec, seed), whatever the thread count.
ExpertsInputs make_random_inputs(const InputSpec& spec, std::uint64_t seed, int threads = 0);

// Fills a floating tensor with U(-scale, scale), deterministic per seed; parallel over chunks.
void fill_uniform(const TensorView& t, float scale, std::uint64_t seed, int threads = 0);
// Fills a floating tensor with a constant (NaN poisons an output).
void fill_value(const TensorView& t, double value);

// Writes routing ids and weights into [T, K] host tensors, following the pattern.
void fill_routing(const TensorView& top_k_index, const TensorView& top_k_weights,
                  std::int64_t experts, RoutingPattern pattern, std::uint64_t seed);

// Bytes of the weights (and biases) of the experts that the routing hits; the floor's numerator.
std::uint64_t hit_weight_bytes(const ExpertsCall& call, const ExpertsProblem& problem);
// Multiply-adds * 2 over the non-sentinel (token, k) pairs.
double call_flops(const ExpertsCall& call, const ExpertsProblem& problem);

// Reads element i of a host tensor of any floating or integer dtype as double / int64.
double element_as_double(const TensorView& t, std::int64_t flat_index);
std::int64_t element_as_int(const TensorView& t, std::int64_t flat_index);

}  // namespace moekit
