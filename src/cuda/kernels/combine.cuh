// moekit CUDA kernels: the weighted combine, out[t] = sum_k w[t,k] * y[pos(t,k)], in k order.
// A fixed order of the K terms (no atomics) makes the output bitwise reproducible.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "routing.cuh"
#include "types.cuh"

namespace moekit::cuda::kernels {

// y: [rows, H] fp32 (down projection plus bias, unweighted); inv[t*K + k]: row of y, or -1.
template <class T, class W>
__global__ void __launch_bounds__(256)
    combine_kernel(const float* __restrict__ y, int H, const int* __restrict__ inv, int K,
                   const W* __restrict__ w, std::int64_t w_stride, T* __restrict__ out, std::int64_t out_stride) {
  __shared__ int pos[kMaxTopK];
  __shared__ float weight[kMaxTopK];
  const std::int64_t t = blockIdx.x;
  if (threadIdx.x < K) {
    pos[threadIdx.x] = inv[t * K + threadIdx.x];
    weight[threadIdx.x] = to_f32(w[t * w_stride + threadIdx.x]);
  }
  __syncthreads();
  // Up to 8 rows of y are loaded before the first is used (one load per step put the K round
  // trips to L2 back to back); the sum keeps its k order.
  constexpr int kBatch = 8;
  for (int c = blockIdx.y * blockDim.x + threadIdx.x; c < H; c += gridDim.y * blockDim.x) {
    float s = 0.0f;
    for (int k0 = 0; k0 < K; k0 += kBatch) {
      float v[kBatch];
#pragma unroll
      for (int j = 0; j < kBatch; ++j)
        v[j] = (k0 + j < K && pos[k0 + j] >= 0) ? y[std::int64_t(pos[k0 + j]) * H + c] : 0.0f;
#pragma unroll
      for (int j = 0; j < kBatch; ++j)
        if (k0 + j < K && pos[k0 + j] >= 0) s = fmaf(weight[k0 + j], v[j], s);
    }
    out[t * out_stride + c] = from_f32<T>(s);
  }
}

template <class T, class W>
cudaError_t launch_combine(const float* y, int H, const int* inv, int T_, int K, const W* w, std::int64_t w_stride,
                           T* out, std::int64_t out_stride, cudaStream_t stream) {
  if (T_ == 0) return cudaSuccess;
  if (K > kMaxTopK) return cudaErrorInvalidValue;
  const int threads = 256;
  const int col_blocks = (H + threads - 1) / threads;
  combine_kernel<T, W><<<dim3(unsigned(T_), unsigned(col_blocks)), threads, 0, stream>>>(y, H, inv, K, w, w_stride,
                                                                                         out, out_stride);
  return cudaGetLastError();
}

}  // namespace moekit::cuda::kernels
