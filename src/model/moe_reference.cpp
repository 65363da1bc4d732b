// The float64 oracle of the whole MoE block, for tests and `moekit run` checks.
#include <cmath>

#include "moekit/inputs.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/reference.hpp"

namespace moekit {
namespace {

double rounded(DType d, double v) {
  if (d == DType::bf16) return to_float(to_bf16(float(v)));
  if (d == DType::f16) return to_float(to_f16(float(v)));
  return v;
}

double dot_rows(const TensorView& a, std::int64_t ra, const TensorView& b, std::int64_t rb, std::int64_t n) {
  double s = 0.0;
  for (std::int64_t i = 0; i < n; ++i) s += element_as_double(a, ra * n + i) * element_as_double(b, rb * n + i);
  return s;
}

}  // namespace

std::vector<float> reference_router_logits(const MoeBlock& block, const TensorView& x) {
  const ModelConfig& c = block.config();
  const MoeWeights& w = block.weights();
  const std::int64_t T = x.shape[0], H = c.hidden_size, E = c.num_experts;
  const bool round = router_precision(c).logits_in_model_dtype;
  std::vector<float> logits(std::size_t(T * E));
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t e = 0; e < E; ++e) {
      double v = dot_rows(x, t, w.router_weight, e, H);
      if (w.router_bias.numel()) v += element_as_double(w.router_bias, e);
      logits[std::size_t(t * E + e)] = float(round ? rounded(x.dtype, v) : v);
    }
  return logits;
}

std::vector<double> reference_moe_block(const MoeBlock& block, const TensorView& x, const TensorView& idx,
                                        const TensorView& weights, bool with_shared) {
  // reference_experts never writes the output, but validation wants one apart from the input.
  const Tensor unused(x.dtype, {x.shape[0], x.shape[1]});
  std::vector<double> out = reference_experts(block.experts_call(x, unused, idx, weights));
  const MoeWeights& w = block.weights();
  if (!with_shared || !w.shared_gate_up.numel()) return out;
  const ModelConfig& c = block.config();
  const std::int64_t T = x.shape[0], H = c.hidden_size, Is = c.shared_intermediate();
  std::vector<double> act(static_cast<std::size_t>(Is));
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t i = 0; i < Is; ++i) {
      const double g = dot_rows(x, t, w.shared_gate_up, i, H);
      const double u = dot_rows(x, t, w.shared_gate_up, Is + i, H);
      act[std::size_t(i)] = reference_act(g, c.experts.activation) * u;
    }
    const double scale = w.shared_gate.numel() ? 1.0 / (1.0 + std::exp(-dot_rows(x, t, w.shared_gate, 0, H))) : 1.0;
    for (std::int64_t h = 0; h < H; ++h) {
      double s = 0.0;
      for (std::int64_t i = 0; i < Is; ++i) s += element_as_double(w.shared_down, h * Is + i) * act[std::size_t(i)];
      out[std::size_t(t * H + h)] += scale * s;
    }
  }
  return out;
}

}  // namespace moekit
