// moekit CUDA kernels: the small elementwise steps of the MoE block around the experts calls.
// Framework-free: raw pointers only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "types.cuh"

namespace moekit::cuda::kernels {

// w[t] = sigmoid(logit[t]) (Qwen2-MoE's shared_expert_gate), or 1 without a gate; ids[t] = 0.
static __global__ void shared_routing_kernel(const float* __restrict__ gate_logit, int tokens, std::int32_t* __restrict__ ids,
                                      float* __restrict__ w) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= tokens) return;
  ids[t] = 0;
  w[t] = gate_logit ? 1.0f / (1.0f + expf(-gate_logit[t])) : 1.0f;
}

inline cudaError_t launch_shared_routing(const float* gate_logit, int tokens, std::int32_t* ids, float* w,
                                         cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  shared_routing_kernel<<<(tokens + 255) / 256, 256, 0, stream>>>(gate_logit, tokens, ids, w);
  return cudaGetLastError();
}

// out[i] = round(float(out[i]) + float(add[i])), elementwise.
template <class T>
__global__ void add_inplace_kernel(T* __restrict__ out, const T* __restrict__ add, std::int64_t n) {
  const std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = from_f32<T>(to_f32(out[i]) + to_f32(add[i]));
}

template <class T>
cudaError_t launch_add_inplace(T* out, const T* add, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  add_inplace_kernel<T><<<unsigned((n + 255) / 256), 256, 0, stream>>>(out, add, n);
  return cudaGetLastError();
}

}  // namespace moekit::cuda::kernels
