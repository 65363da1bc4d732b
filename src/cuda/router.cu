// The CUDA routers: argument checks and dispatch to kernels/router.cuh.
#include "cuda/router.hpp"

#include <string>

#include "cuda/common.hpp"
#include "cuda/kernels/router.cuh"
#include "cuda/kernels/routing.cuh"

namespace moekit::cuda {
namespace {

[[noreturn]] void invalid(const std::string& m) { throw Error(Errc::invalid_argument, "cuda router: " + m); }

kernels::Rounding rounding_of(DType d) {
  if (d == DType::bf16) return kernels::Rounding::bf16;
  if (d == DType::f16) return kernels::Rounding::f16;
  return kernels::Rounding::none;
}

int sm_count(int device) {
  int n = 0;
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device), "cuda router: multiprocessor count");
  return n;
}

template <class T>
cudaError_t linear_as(const TensorView& x, const TensorView& w, const TensorView& b, bool round, float* logits,
                      float* scratch, int sms, cudaStream_t stream) {
  const int tokens = int(x.shape[0]), experts = int(w.shape[0]), hidden = int(w.shape[1]);
  return kernels::launch_router_linear<T>(x.as<const T>(), x.strides[0], w.as<const T>(),
                                          b.defined() ? b.as<const T>() : nullptr, tokens, experts, hidden,
                                          round ? rounding_of(x.dtype) : kernels::Rounding::none, logits, experts,
                                          sms, scratch, stream);
}

void require_32bit(std::int64_t tokens, std::int64_t experts, std::int64_t hidden) {
  constexpr std::int64_t kLimit = std::int64_t(1) << 31;
  if (tokens >= kLimit || experts >= kLimit || hidden >= kLimit) invalid("sizes exceed 32-bit indices");
}

}  // namespace

std::size_t router_logits_scratch_bytes(std::int64_t tokens, std::int64_t experts, std::int64_t hidden, int device) {
  if (tokens <= 0 || experts <= 0 || hidden <= 0) return 0;
  require_32bit(tokens, experts, hidden);
  return std::size_t(kernels::router_linear_scratch_floats(int(tokens), int(experts), int(hidden), sm_count(device))) *
         sizeof(float);
}

void router_logits(const TensorView& x, const TensorView& w, const TensorView& b, bool round_to_dtype, float* logits,
                   float* scratch, void* stream) {
  if (x.rank != 2 || w.rank != 2 || x.shape[1] != w.shape[1])
    invalid("x must be [T, H] and the router weight [E, H], got " + x.shape_string() + " and " + w.shape_string());
  if (x.strides[1] != 1 || !w.is_contiguous()) invalid("x rows and the router weight must be contiguous");
  if (w.dtype != x.dtype || (b.defined() && (b.dtype != x.dtype || b.numel() != w.shape[0] || !b.is_contiguous())))
    invalid("x, the router weight and its bias must share one dtype, the bias [E]");
  if (x.device.type != DeviceType::cuda || w.device != x.device || (b.defined() && b.device != x.device))
    invalid("x, the router weight and its bias must be on one CUDA device");
  require_32bit(x.shape[0], w.shape[0], w.shape[1]);
  const int sms = sm_count(x.device.index);
  if (scratch == nullptr &&
      kernels::router_linear_scratch_floats(int(x.shape[0]), int(w.shape[0]), int(w.shape[1]), sms) > 0)
    invalid("this size needs router_logits_scratch_bytes() of scratch, got none");
  auto s = static_cast<cudaStream_t>(stream);
  cudaError_t err = cudaErrorInvalidValue;
  switch (x.dtype) {
    case DType::bf16: err = linear_as<__nv_bfloat16>(x, w, b, round_to_dtype, logits, scratch, sms, s); break;
    case DType::f16: err = linear_as<__half>(x, w, b, round_to_dtype, logits, scratch, sms, s); break;
    case DType::f32: err = linear_as<float>(x, w, b, round_to_dtype, logits, scratch, sms, s); break;
    default: invalid("x must be bf16, f16 or f32, got " + std::string(dtype_name(x.dtype)));
  }
  check(err, "cuda router: router linear");
}

void route_on_device(const RouterConfig& c, const float* logits, std::int64_t T, std::int64_t E, std::int64_t K,
                     const float* correction_bias, DType weights_dtype, std::int32_t* idx, float* w, void* stream) {
  if (T < 0) invalid("T must be >= 0, got " + std::to_string(T));
  check_router(c, E, K, correction_bias != nullptr);
  if (E > kernels::kMaxExperts || K > kernels::kMaxTopK)
    invalid("E = " + std::to_string(E) + ", K = " + std::to_string(K) + "; the CUDA router supports E <= " +
            std::to_string(kernels::kMaxExperts) + " and K <= " + std::to_string(kernels::kMaxTopK));
  if (T >= (std::int64_t(1) << 31)) invalid("T exceeds 32-bit indices");
  if (T > 0 && (!logits || !idx || !w)) invalid("null logits or output pointer");
  kernels::RouterRuleParams p;
  p.rule = c.kind == RouterConfig::Kind::softmax_topk      ? kernels::RouterRule::softmax_topk
           : c.kind == RouterConfig::Kind::sigmoid_grouped ? kernels::RouterRule::sigmoid_grouped
                                                           : kernels::RouterRule::gpt_oss;
  p.norm_topk_prob = c.norm_topk_prob;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.scale = c.routed_scaling_factor;
  p.weights = rounding_of(weights_dtype);
  check(kernels::launch_route(logits, E, int(T), int(E), int(K), correction_bias, p, idx, K, w, K,
                              static_cast<cudaStream_t>(stream)),
        "cuda router: routing");
}

}  // namespace moekit::cuda
