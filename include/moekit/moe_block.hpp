// moekit: one whole MoE block (DESIGN §1): router -> experts call -> + shared expert(s).
//
// Precision policy. Router logits are accumulated in fp32 from the stored-dtype inputs and
// weights. transformers' softmax-family routers (Mixtral, Qwen2/3-MoE, OLMoE, gpt-oss) run the
// router linear in the model dtype, so for them the fp32 logits are rounded once to the
// activation dtype before routing; the sigmoid routers (DeepSeek-V3, GLM-4.5, Solar-Open) cast to
// fp32 before the linear, so their logits stay fp32. route() then runs in fp32. The experts call
// writes the activation dtype; the shared MLP is computed in fp32 and added in fp32 to it, and the
// sum is cast once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "moekit/backend.hpp"
#include "moekit/model.hpp"
#include "moekit/tensor.hpp"

namespace moekit {

namespace safetensors {
class Checkpoint;
}

// Where a layer's tensors come from: a checkpoint, or tensors in memory (tests).
struct TensorSource {
  std::function<bool(std::string_view)> contains;
  std::function<TensorView(std::string_view)> view;  // host, contiguous
};

// Owned host tensors of one layer, in the DESIGN §1 layout, in their stored dtype.
struct MoeWeights {
  Tensor router_weight;    // [E, H]
  Tensor router_bias;      // [E] (gpt-oss) or empty
  Tensor correction_bias;  // [E] (sigmoid routers) or empty
  Tensor gate_up, down, gate_up_bias, down_bias;  // experts call layout
  Tensor shared_gate_up;   // [2 Is, H], gate rows first; empty without shared experts
  Tensor shared_down;      // [H, Is]
  Tensor shared_gate;      // [1, H] (qwen2_moe) or empty
};

class MoeBlock {
 public:
  // Reads only the tensors of `layer`; fuses per-expert tensors. Throws moekit::Error naming the
  // missing or mismatched tensor, or saying why the layer is not MoE.
  static MoeBlock load(const ModelConfig& config, int layer, const TensorSource& source);
  static MoeBlock load(const ModelConfig& config, int layer, const safetensors::Checkpoint& checkpoint);

  const ModelConfig& config() const noexcept { return config_; }
  const MoeWeights& weights() const noexcept { return weights_; }
  int layer() const noexcept { return layer_; }
  DType dtype() const noexcept { return weights_.gate_up.dtype(); }

  // hidden_states [T, H] in the weights' dtype -> output [T, H] same dtype. Without routing, runs
  // router + experts + shared experts; with routing (top_k_index [T, K'] int32/int64,
  // top_k_weights [T, K'] fp32 or the dtype), only the experts call on that routing.
  void forward(const TensorView& hidden_states, const TensorView& output, std::string_view backend,
               const RunContext& context = {}, const TensorView& top_k_index = {},
               const TensorView& top_k_weights = {});

  // The routing of the last forward without given routing: [T, K] int32 and fp32.
  TensorView routing_index() const;
  TensorView routing_weights() const;
  // The last forward's fp32 router logits [T, E] (after the dtype rounding of the policy above).
  const std::vector<float>& router_logits() const noexcept { return logits_; }

  // The experts call for these inputs (what forward() hands to moekit::experts()).
  ExpertsCall experts_call(const TensorView& hidden_states, const TensorView& output, const TensorView& top_k_index,
                           const TensorView& top_k_weights) const;

 private:
  void compute_logits(const TensorView& x);
  void add_shared(const TensorView& x, const TensorView& output);

  ModelConfig config_;
  int layer_ = 0;
  MoeWeights weights_;
  // Reused across calls.
  std::vector<float> logits_, xf_, hidden_f_, act_;
  std::vector<std::int32_t> index_;
  std::vector<float> routing_w_;
  std::int64_t routed_tokens_ = 0;
};

// The float64 oracle of the whole block, on the given routing (index [T, K], weights [T, K]):
// experts by reference_experts(), shared MLP and its gate in double. Returns [T * H].
std::vector<double> reference_moe_block(const MoeBlock& block, const TensorView& hidden_states,
                                        const TensorView& top_k_index, const TensorView& top_k_weights,
                                        bool with_shared = true);
// Router logits in double from the stored values, rounded like forward() rounds them, then as fp32.
std::vector<float> reference_router_logits(const MoeBlock& block, const TensorView& hidden_states);

}  // namespace moekit
