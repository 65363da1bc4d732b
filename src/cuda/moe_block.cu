// MoeBlock on a CUDA device: the weights uploaded once, the router on the device (router.cu), the
// routed experts call, and the shared MLP as a second experts call (one expert of the shared
// width, K = 1) added elementwise. Every step is enqueued on the caller's stream; the scratch is
// the block's own and only grows, so the steady state neither allocates nor synchronises.
#include <algorithm>
#include <string>
#include <utility>

#include "cuda/common.hpp"
#include "cuda/kernels/block_steps.cuh"
#include "cuda/router.hpp"
#include "model/block_device.hpp"

namespace moekit {
namespace {

using cuda::check;

[[noreturn]] void invalid(const std::string& m) { throw Error(Errc::invalid_argument, "moe block (cuda): " + m); }

class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory() { release(); }

  void* data() const noexcept { return data_; }
  std::size_t bytes() const noexcept { return bytes_; }

  // At least `bytes`; contents are not kept. Growing frees first (cudaFree waits for the device).
  void reserve(std::size_t bytes, cudaStream_t stream, const char* what) {
    if (bytes <= bytes_) return;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    check(cudaStreamIsCapturing(stream, &capture), "moe block (cuda): cudaStreamIsCapturing");
    if (capture != cudaStreamCaptureStatusNone)
      throw Error(Errc::unsupported, std::string("moe block (cuda): the ") + what + " needs " + std::to_string(bytes) +
                                         " bytes but has " + std::to_string(bytes_) +
                                         "; a captured forward() cannot allocate: run one forward() with the largest "
                                         "T (and this backend) before capturing");
    release();
    if (cudaMalloc(&data_, bytes) != cudaSuccess) {
      cudaGetLastError();
      data_ = nullptr;
      throw Error(Errc::out_of_memory, std::string("moe block (cuda): cannot allocate ") + std::to_string(bytes) +
                                           " bytes for the " + what);
    }
    bytes_ = bytes;
  }

 private:
  void release() noexcept {
    if (data_) cudaFree(data_);
    data_ = nullptr;
    bytes_ = 0;
  }
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

class CudaBlock final : public BlockDeviceState {
 public:
  CudaBlock(const MoeBlock& block, Device device) : device_(device) {
    if (Support s = cuda::device_support(device.index); !s.ok)
      throw Error(Errc::unsupported, "moe block: cannot move to " + device_name(device) + ": " + s.reason);
    const ModelConfig& c = block.config();
    check_router(c.router, c.num_experts, c.num_experts_per_tok, c.correction_bias);
    if (c.num_experts > 1024 || c.num_experts_per_tok > 32)
      invalid("E = " + std::to_string(c.num_experts) + ", K = " + std::to_string(c.num_experts_per_tok) +
              "; the CUDA router supports E <= 1024 and K <= 32");
    cuda::DeviceGuard guard(device.index);
    const MoeWeights& w = block.weights();
    router_weight_ = upload(w.router_weight);
    router_bias_ = upload(w.router_bias);
    correction_bias_ = upload(w.correction_bias);
    gate_up_ = upload(w.gate_up);
    down_ = upload(w.down);
    gate_up_bias_ = upload(w.gate_up_bias);
    down_bias_ = upload(w.down_bias);
    if (w.shared_gate_up.numel()) {
      const std::int64_t H = c.hidden_size, Is = c.shared_intermediate();
      shared_gate_up_ = upload(w.shared_gate_up);
      shared_gate_up_.rank = 3;
      shared_gate_up_.shape = {1, 2 * Is, H, 0};
      shared_gate_up_.strides = {2 * Is * H, H, 1, 0};
      shared_down_ = upload(w.shared_down);
      shared_down_.rank = 3;
      shared_down_.shape = {1, H, Is, 0};
      shared_down_.strides = {H * Is, Is, 1, 0};
      shared_gate_ = upload(w.shared_gate);
    }
    check(cudaDeviceSynchronize(), "moe block (cuda): uploading the weights");
  }

  Device device() const override { return device_; }

  void forward(const MoeBlock& block, const TensorView& x, const TensorView& out, std::string_view backend,
               const RunContext& ctx, const TensorView& given_idx, const TensorView& given_w) override {
    cuda::DeviceGuard guard(device_.index);
    auto stream = static_cast<cudaStream_t>(ctx.stream);
    const ModelConfig& c = block.config();
    const std::int64_t T = x.shape[0], E = c.num_experts, K = c.num_experts_per_tok, H = c.hidden_size;
    const Backend& b = default_registry().get(backend, DeviceType::cuda);

    if (given_idx.defined()) {
      const ExpertsCall call = routed_call(block, x, out, given_idx, given_w);
      run(b, call, backend, ctx, stream);
      return;
    }

    logits_.reserve(bytes_of(T * E, DType::f32), stream, "router logits");
    std::size_t scratch = cuda::router_logits_scratch_bytes(T, E, H, device_.index);
    if (shared_gate_.defined()) scratch = std::max(scratch, cuda::router_logits_scratch_bytes(T, 1, H, device_.index));
    if (scratch) router_scratch_.reserve(scratch, stream, "router partial sums");
    float* router_scratch = scratch ? static_cast<float*>(router_scratch_.data()) : nullptr;
    index_.reserve(bytes_of(T * K, DType::i32), stream, "routing ids");
    weights_.reserve(bytes_of(T * K, DType::f32), stream, "routing weights");
    const TensorView idx = TensorView::contiguous(index_.data(), DType::i32, {T, K}, device_);
    const TensorView w = TensorView::contiguous(weights_.data(), DType::f32, {T, K}, device_);
    const ExpertsCall call = routed_call(block, x, out, idx, w);
    ExpertsCall shared;
    const bool has_shared = shared_gate_up_.defined();
    if (has_shared) {
      shared_out_.reserve(bytes_of(T * H, x.dtype), stream, "shared expert output");
      shared_ids_.reserve(bytes_of(T, DType::i32), stream, "shared expert routing");
      shared_w_.reserve(bytes_of(T, DType::f32), stream, "shared expert routing");
      if (shared_gate_.defined()) shared_logit_.reserve(bytes_of(T, DType::f32), stream, "shared expert gate");
      shared.hidden_states = x;
      shared.top_k_index = TensorView::contiguous(shared_ids_.data(), DType::i32, {T, 1}, device_);
      shared.top_k_weights = TensorView::contiguous(shared_w_.data(), DType::f32, {T, 1}, device_);
      shared.gate_up_proj = shared_gate_up_;
      shared.down_proj = shared_down_;
      shared.output = TensorView::contiguous(shared_out_.data(), x.dtype, {T, H}, device_);
      shared.options.activation = c.experts.activation;  // an ordinary gated MLP, gate rows first
    }
    // Sized before any work is enqueued, so that a capture fails before it has recorded anything.
    std::size_t ws = b.workspace_bytes(validate(call));
    if (has_shared) ws = std::max(ws, b.workspace_bytes(validate(shared)));
    workspace_.reserve(ws, stream, "experts workspace");

    const RouterPrecision precision = router_precision(c);
    cuda::router_logits(x, router_weight_, router_bias_, precision.logits_in_model_dtype,
                        static_cast<float*>(logits_.data()), router_scratch, stream);
    cuda::route_on_device(c.router, static_cast<float*>(logits_.data()), T, E, K,
                          correction_bias_.defined() ? correction_bias_.as<const float>() : nullptr,
                          precision.weights_in_model_dtype ? x.dtype : DType::f32, idx.as<std::int32_t>(),
                          w.as<float>(), stream);
    routed_tokens_ = T;
    run(b, call, backend, ctx, stream);
    if (!has_shared || T == 0) return;

    const float* gate_logit = nullptr;
    if (shared_gate_.defined()) {
      cuda::router_logits(x, shared_gate_, TensorView{}, /*round_to_dtype=*/false,
                          static_cast<float*>(shared_logit_.data()), router_scratch, stream);
      gate_logit = static_cast<const float*>(shared_logit_.data());
    }
    check(cuda::kernels::launch_shared_routing(gate_logit, int(T), shared.top_k_index.as<std::int32_t>(),
                                               shared.top_k_weights.as<float>(), stream),
          "moe block (cuda): shared expert routing");
    run(b, shared, backend, ctx, stream);
    cudaError_t err = cudaErrorInvalidValue;
    switch (x.dtype) {
      case DType::bf16:
        err = cuda::kernels::launch_add_inplace(out.as<__nv_bfloat16>(), shared.output.as<const __nv_bfloat16>(),
                                                T * H, stream);
        break;
      case DType::f16:
        err = cuda::kernels::launch_add_inplace(out.as<__half>(), shared.output.as<const __half>(), T * H, stream);
        break;
      case DType::f32:
        err = cuda::kernels::launch_add_inplace(out.as<float>(), shared.output.as<const float>(), T * H, stream);
        break;
      default: break;
    }
    check(err, "moe block (cuda): adding the shared expert");
  }

  TensorView routing_index() const override {
    return TensorView::contiguous(index_.data(), DType::i32, {routed_tokens_, k_of_last()}, device_);
  }
  TensorView routing_weights() const override {
    return TensorView::contiguous(weights_.data(), DType::f32, {routed_tokens_, k_of_last()}, device_);
  }

  void download(const TensorView& src, const TensorView& dst) const override {
    cuda::DeviceGuard guard(device_.index);
    check(cudaDeviceSynchronize(), "moe block (cuda): waiting for the forward");
    check(cudaMemcpy(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToHost), "moe block (cuda): download");
  }

  void set_top_k(std::int64_t k) { top_k_ = k; }

 private:
  static std::size_t bytes_of(std::int64_t n, DType d) { return std::size_t(n) * dtype_size(d); }
  std::int64_t k_of_last() const { return top_k_; }

  TensorView upload(const Tensor& t) {
    if (!t.numel()) return {};
    DeviceMemory& m = owned_[owned_count_++];
    m.reserve(t.nbytes(), nullptr, "weights");
    check(cudaMemcpy(m.data(), t.view().data, t.nbytes(), cudaMemcpyHostToDevice), "moe block (cuda): upload");
    TensorView v = t.view();
    v.data = m.data();
    v.device = device_;
    return v;
  }

  ExpertsCall routed_call(const MoeBlock& block, const TensorView& x, const TensorView& out, const TensorView& idx,
                          const TensorView& w) const {
    ExpertsCall call = block.experts_call(x, out, idx, w);  // options and the host views' shapes
    call.gate_up_proj = gate_up_;
    call.down_proj = down_;
    call.gate_up_proj_bias = gate_up_bias_;
    call.down_proj_bias = down_bias_;
    return call;
  }

  void run(const Backend& b, const ExpertsCall& call, std::string_view name, const RunContext& ctx,
           cudaStream_t stream) {
    const std::size_t need = b.workspace_bytes(validate(call));
    workspace_.reserve(need, stream, "experts workspace");
    experts(call, name, ctx, Workspace{workspace_.data(), workspace_.bytes()});
  }

  Device device_;
  DeviceMemory owned_[10];
  int owned_count_ = 0;
  TensorView router_weight_, router_bias_, correction_bias_, gate_up_, down_, gate_up_bias_, down_bias_;
  TensorView shared_gate_up_, shared_down_, shared_gate_;
  DeviceMemory logits_, router_scratch_, index_, weights_, workspace_, shared_out_, shared_ids_, shared_w_, shared_logit_;
  std::int64_t routed_tokens_ = 0, top_k_ = 0;
};

}  // namespace

std::unique_ptr<BlockDeviceState> make_block_device_state(const MoeBlock& block, Device device) {
  if (device.type != DeviceType::cuda) invalid("cannot move to " + device_name(device));
  auto state = std::make_unique<CudaBlock>(block, device);
  state->set_top_k(block.config().num_experts_per_tok);
  return state;
}

}  // namespace moekit
