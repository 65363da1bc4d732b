// moekit: one whole MoE block (DESIGN §1): router -> experts call -> + shared expert(s), on the
// host or on a CUDA device.
//
// Precision policy (router_precision() below; checked against each family's modeling file).
// Router logits are accumulated in fp32 from the stored-dtype inputs and weights. transformers'
// softmax-family routers (Mixtral, Qwen2/3-MoE, OLMoE, gpt-oss) run the router linear in the model
// dtype, so for them the fp32 logits are rounded once to the activation dtype before routing; the
// sigmoid routers (DeepSeek-V3, GLM-4.5, Solar-Open) cast to fp32 before the linear, so their
// logits stay fp32. route() then runs in fp32. Qwen2/3-MoE and OLMoE cast the routing weights back
// to the model dtype (`.to(router_logits.dtype)`) and gpt-oss takes its softmax in that dtype, so
// their weights are rounded to it too (kept in an fp32 tensor); Mixtral and the sigmoid routers
// keep fp32 weights. The experts call writes the activation dtype.
// Shared MLP, host: computed in fp32 and added in fp32 to the experts' output, the sum cast once.
// Shared MLP, CUDA: run as a second experts call (one expert of the shared width, every token on
// it with weight 1, or sigmoid(shared_expert_gate . x) for Qwen2-MoE in fp32), written in the
// activation dtype and added to the routed output in fp32 and cast once, like transformers'
// `hidden_states + shared_experts(residuals)`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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

// How a model family rounds its router (the policy above).
struct RouterPrecision {
  bool logits_in_model_dtype = false;   // round the fp32 logits to the activation dtype
  bool weights_in_model_dtype = false;  // round the routing weights to the activation dtype
};
RouterPrecision router_precision(const ModelConfig& config);

class BlockDeviceState;  // the device copy of a block (src/cuda/moe_block.cu)

class MoeBlock {
 public:
  MoeBlock();
  ~MoeBlock();
  MoeBlock(MoeBlock&&) noexcept;
  MoeBlock& operator=(MoeBlock&&) noexcept;

  // Reads only the tensors of `layer`; fuses per-expert tensors. Throws moekit::Error naming the
  // missing or mismatched tensor, or saying why the layer is not MoE.
  static MoeBlock load(const ModelConfig& config, int layer, const TensorSource& source);
  static MoeBlock load(const ModelConfig& config, int layer, const safetensors::Checkpoint& checkpoint);
  // A block of `config` with random weights in `dtype` (no checkpoint), on the host: router
  // U(-2, 2)/sqrt(H) (clear top-k margins), experts and shared MLP U(-3, 3)/sqrt(fan_in), biases
  // U(-0.5, 0.5), correction bias U(-0.1, 0.1). Deterministic per seed. For benchmarks of presets:
  //   MoeBlock b = MoeBlock::random(preset_model_config(find_preset("solar-open-100b")), DType::bf16, 1);
  //   b.to(Device{DeviceType::cuda, 0});
  static MoeBlock random(const ModelConfig& config, DType dtype, std::uint64_t seed, int threads = 0);

  // Uploads the weights to `device` once (a CUDA device, or back to the cpu, which frees the
  // device copy); forward() then takes tensors on that device. The host weights stay, for
  // weights() and the reference. Throws Errc::unsupported in a build without CUDA or without a
  // usable GPU, and Errc::invalid_argument when the router does not fit the CUDA limits
  // (E <= 1024, K <= 32).
  void to(Device device);
  Device device() const noexcept;

  const ModelConfig& config() const noexcept { return config_; }
  const MoeWeights& weights() const noexcept { return weights_; }
  int layer() const noexcept { return layer_; }
  DType dtype() const noexcept { return weights_.gate_up.dtype(); }

  // hidden_states [T, H] in the weights' dtype -> output [T, H] same dtype, both contiguous and on
  // device(). Without routing, runs router + experts + shared experts; with routing (top_k_index
  // [T, K'] int32/int64, top_k_weights [T, K'] fp32 or the dtype, on device()), only the experts
  // call on that routing.
  // CUDA: runs on context.stream and returns without synchronising. The scratch (logits, routing,
  // the experts' workspace, the shared output) is the block's own and is reused: no allocation
  // once a call of at least this T has run, so with batched_mm or grouped_mm a forward() can be
  // captured in a CUDA graph (after one call outside the capture with the largest T; a capture
  // that would have to grow the scratch throws Errc::unsupported). eager synchronises (it needs
  // the routing on the host) and cannot be captured. One stream at a time per block: a forward()
  // reuses the scratch of the last one, which stream order protects only on the same stream.
  void forward(const TensorView& hidden_states, const TensorView& output, std::string_view backend,
               const RunContext& context = {}, const TensorView& top_k_index = {},
               const TensorView& top_k_weights = {});

  // The routing of the last forward without given routing: [T, K] int32 and fp32, contiguous, where
  // the block lives (device memory after to(cuda): valid until the next forward, ready once its
  // stream has reached it).
  TensorView routing_index() const;
  TensorView routing_weights() const;
  // Host copies of that routing on either device (synchronises the device first).
  Tensor routing_index_host() const;
  Tensor routing_weights_host() const;
  // The last host forward's fp32 router logits [T, E] (after the dtype rounding of the policy
  // above); empty for a block on a CUDA device.
  const std::vector<float>& router_logits() const noexcept { return logits_; }

  // The experts call for these inputs (what forward() hands to moekit::experts()).
  ExpertsCall experts_call(const TensorView& hidden_states, const TensorView& output, const TensorView& top_k_index,
                           const TensorView& top_k_weights) const;

 private:
  void compute_logits(const TensorView& x, int threads);
  void add_shared(const TensorView& x, const TensorView& output, int threads);

  ModelConfig config_;
  int layer_ = 0;
  MoeWeights weights_;
  // Reused across calls.
  std::vector<float> logits_, xf_, hidden_f_, act_;
  std::vector<std::int32_t> index_;
  std::vector<float> routing_w_;
  std::int64_t routed_tokens_ = 0;
  std::unique_ptr<BlockDeviceState> device_;
};

// The float64 oracle of the whole block, on the given routing (index [T, K], weights [T, K]):
// experts by reference_experts(), shared MLP and its gate in double. Returns [T * H].
std::vector<double> reference_moe_block(const MoeBlock& block, const TensorView& hidden_states,
                                        const TensorView& top_k_index, const TensorView& top_k_weights,
                                        bool with_shared = true);
// Router logits in double from the stored values, rounded like forward() rounds them, then as fp32.
std::vector<float> reference_router_logits(const MoeBlock& block, const TensorView& hidden_states);

}  // namespace moekit
