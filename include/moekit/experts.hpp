// moekit: the experts call, the contract every backend implements.
//
//   out[t] = sum_k w[t,k] * ( down[e] @ gate( gate_up[e] @ x[t] + b1[e] ) + b2[e] ),  e = idx[t,k] < E
//
// ids >= E are expert-parallel sentinels and contribute nothing; a negative id is an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "moekit/tensor.hpp"

namespace moekit {

enum class Activation : std::uint8_t {
  silu,
  gelu,           // exact (erf)
  gelu_tanh,      // tanh approximation
  relu,
  clamped_swiglu  // gpt-oss: g = min(g, limit), u = clamp(u, -limit, limit), (u + 1) * g * sigmoid(alpha * g)
};
std::string_view activation_name(Activation a) noexcept;
std::optional<Activation> parse_activation(std::string_view name);

// How the 2I rows of gate_up split into gate and up.
enum class GateLayout : std::uint8_t {
  concatenated,  // gate = v[:I], up = v[I:]
  interleaved    // gate = v[0::2], up = v[1::2] (gpt-oss)
};
std::string_view gate_layout_name(GateLayout g) noexcept;

struct ExpertsOptions {
  Activation activation = Activation::silu;
  GateLayout gate_layout = GateLayout::concatenated;
  bool has_gate = true;     // false: gate_up_proj is up_proj [E, I, H] and the MLP is act(up @ x)
  bool transposed = false;  // weights stored [E, H, 2I] and [E, I, H]
  float swiglu_alpha = 1.702f;
  float swiglu_limit = 7.0f;
};

// Inputs and output of one call. Biases are optional (leave them undefined).
// Shapes (default / transposed layout):
//   hidden_states [T, H]; top_k_index, top_k_weights [T, K]
//   gate_up_proj [E, 2I, H] / [E, H, 2I] (up_proj [E, I, H] / [E, H, I] without a gate)
//   down_proj [E, H, I] / [E, I, H]; gate_up_proj_bias [E, 2I] (or [E, I]); down_proj_bias [E, H]
//   output [T, H] in the dtype of hidden_states
struct ExpertsCall {
  TensorView hidden_states;
  TensorView top_k_index;
  TensorView top_k_weights;
  TensorView gate_up_proj;
  TensorView down_proj;
  TensorView gate_up_proj_bias;
  TensorView down_proj_bias;
  TensorView output;
  ExpertsOptions options;
};

// What validation derives from a call: the sizes and dtypes every backend needs.
struct ExpertsProblem {
  std::int64_t tokens = 0;        // T
  std::int64_t hidden = 0;        // H
  std::int64_t intermediate = 0;  // I
  std::int64_t experts = 0;       // E
  std::int64_t top_k = 0;         // K
  DType dtype = DType::bf16;          // activations, weights, biases, output
  DType index_dtype = DType::i32;
  DType routing_dtype = DType::f32;   // f32 or dtype
  Device device{};
  bool has_bias = false;
  ExpertsOptions options;

  std::int64_t gate_up_rows() const noexcept { return options.has_gate ? 2 * intermediate : intermediate; }
  std::string describe() const;  // "T=4 H=64 I=32 E=8 K=2 bf16 silu concatenated"
};

// The one validation path all backends share. Throws moekit::Error (invalid_argument) naming the
// offending tensor. Host-resident ids are range-checked here (negative ids are errors).
ExpertsProblem validate(const ExpertsCall& call);

}  // namespace moekit
