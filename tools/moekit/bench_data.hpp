// moekit CLI: the random layer and inputs `moekit bench` measures on.
#pragma once

#include <cstdint>

#include "bench.hpp"
#include "moekit/tensor.hpp"

namespace moekit_cli {

struct BenchWeights {
  moekit::Tensor gate_up, down, gate_up_bias, down_bias;  // biases only when the shape has them
};
// U(-1, 1) / sqrt(fan_in): random, never zeros, so no kernel can profit from sparsity.
BenchWeights make_weights(const BenchShape& shape, std::uint64_t seed, int threads);

struct BenchInputs {
  moekit::Tensor hidden, top_k_index, top_k_weights, output;
  std::int64_t experts_hit = 0;
};
// Hidden states U(-1, 1); routing from the shape's own router on N(0, 1) logits (plus an
// N(0, 0.1) correction bias for sigmoid routers), so the experts hit per T are what the model
// family would hit on random data.
BenchInputs make_inputs(const BenchShape& shape, std::int64_t T, std::uint64_t seed, int threads);

moekit::ExpertsCall make_call(const BenchShape& shape, const BenchWeights& w, const BenchInputs& in);

}  // namespace moekit_cli
