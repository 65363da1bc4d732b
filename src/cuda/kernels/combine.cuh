// moekit CUDA kernels: the weighted combine, out[t] = sum_k w[t,k] * y[pos(t,k)], in k order.
// A fixed order of the K terms (no atomics) makes the output bitwise reproducible.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "routing.cuh"
#include "types.cuh"

namespace moekit::cuda::kernels {

// N adjacent columns of one row, as fp32.
template <int N>
struct Cols {
  float v[N];
};

// N adjacent elements of T as one load: the element itself, or 8 or 16 bytes as words.
template <class T, int N>
using RawCols = std::conditional_t<N == 1, T, std::conditional_t<N * sizeof(T) == 8, uint2, uint4>>;

// kStreaming: through L2 only (ld.global.cg), for data another CTA of the same kernel may have
// written. p aligned to the load's size.
template <class T, int N, bool kStreaming>
__device__ __forceinline__ RawCols<T, N> load_raw(const T* p) {
  static_assert(N == 1 || N * sizeof(T) == 8 || N * sizeof(T) == 16, "one element, or 8- or 16-byte loads");
  const RawCols<T, N>* q = reinterpret_cast<const RawCols<T, N>*>(p);
  return kStreaming ? __ldcg(q) : *q;
}

template <class T, int N>
__device__ __forceinline__ Cols<N> unpack_raw(const RawCols<T, N>& r) {
  Cols<N> c;
  if constexpr (N == 1) {
    c.v[0] = to_f32(r);
  } else {
    constexpr int kWords = N * int(sizeof(T)) / 4;
    unsigned w[4] = {r.x, r.y, 0u, 0u};
    if constexpr (kWords == 4) w[2] = r.z, w[3] = r.w;
#pragma unroll
    for (int i = 0; i < kWords; ++i) {
      if constexpr (std::is_same_v<T, float>) {
        c.v[i] = __uint_as_float(w[i]);
      } else {
        const float2 f = unpack_pair<T>(w[i]);
        c.v[2 * i] = f.x;
        c.v[2 * i + 1] = f.y;
      }
    }
  }
  return c;
}

// N adjacent outputs, rounded as from_f32. kVector: one store of N * sizeof(T) bytes (o aligned
// to that), else one per element.
template <class T, int N, bool kVector>
__device__ __forceinline__ void store_cols(T* o, const Cols<N>& s) {
  if constexpr (kVector && N > 1) {
    constexpr int kWords = N * int(sizeof(T)) / 4;
    static_assert(kWords == 2 || kWords == 4, "8- or 16-byte stores");
    unsigned w[kWords];
#pragma unroll
    for (int i = 0; i < kWords; ++i) {
      if constexpr (std::is_same_v<T, float>) w[i] = __float_as_uint(s.v[i]);
      else w[i] = pack_pair<T>(s.v[2 * i], s.v[2 * i + 1]);
    }
    if constexpr (kWords == 2) *reinterpret_cast<uint2*>(o) = make_uint2(w[0], w[1]);
    else *reinterpret_cast<uint4*>(o) = make_uint4(w[0], w[1], w[2], w[3]);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) o[i] = from_f32<T>(s.v[i]);
  }
}

// Token t's weighted sum over its pairs, N columns: sum_k w_k * y_k in fp32, in k order, with one
// fma per term, pairs without a valid expert skipped (never multiplied by zero: a NaN weight on a
// sentinel must not leak in). row(k): the first of the N columns of pair k's row of y. The one
// arithmetic of every combine, whatever its N, so their outputs are bitwise equal.
template <class T, int N, bool kStreaming, class Valid, class Weight, class Row>
__device__ __forceinline__ Cols<N> combine_cols(int K, Valid valid, Weight weight, Row row) {
  // Up to 8 rows of y are loaded before the first is used: with one load per step the K round
  // trips to L2 ran back to back (ncu: 6.9 us for one token's combine at K = 8). They are held
  // as loaded and widened at their use, which halves the registers of 16-bit rows. The sums keep
  // their k order.
  constexpr int kBatch = 8;
  Cols<N> s{};
  for (int k0 = 0; k0 < K; k0 += kBatch) {
    RawCols<T, N> v[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      v[j] = RawCols<T, N>{};
      if (k0 + j < K && valid(k0 + j)) v[j] = load_raw<T, N, kStreaming>(row(k0 + j));
    }
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      const int k = k0 + j;
      if (k >= K || !valid(k)) continue;
      const float wk = weight(k);
      const Cols<N> f = unpack_raw<T, N>(v[j]);
#pragma unroll
      for (int i = 0; i < N; ++i) s.v[i] = fmaf(wk, f.v[i], s.v[i]);
    }
  }
  return s;
}

// y: [rows, H] in the output's dtype (down projection plus bias, unweighted); inv[t*K + k]: row
// of y, or -1. N columns per thread (H % N == 0); kVectorOut: the output rows allow N-wide stores.
template <class T, class W, int N, bool kVectorOut>
__global__ void __launch_bounds__(256)
    combine_kernel(const T* __restrict__ y, int H, const int* __restrict__ inv, int K, const W* __restrict__ w,
                   std::int64_t w_stride, T* __restrict__ out, std::int64_t out_stride) {
  __shared__ int pos[kMaxTopK];
  __shared__ float weight[kMaxTopK];
  const std::int64_t t = blockIdx.x;
  if (threadIdx.x < K) {
    pos[threadIdx.x] = inv[t * K + threadIdx.x];
    weight[threadIdx.x] = to_f32(w[t * w_stride + threadIdx.x]);
  }
  __syncthreads();
  const int c = (blockIdx.y * blockDim.x + threadIdx.x) * N;
  if (c >= H) return;
  const Cols<N> s = combine_cols<T, N, false>(
      K, [&](int k) { return pos[k] >= 0; }, [&](int k) { return weight[k]; },
      [&](int k) { return y + std::int64_t(pos[k]) * H + c; });
  store_cols<T, N, kVectorOut>(out + t * out_stride + c, s);
}

template <class T, class W, int N>
cudaError_t launch_combine_cols(const T* y, int H, const int* inv, int T_, int K, const W* w, std::int64_t w_stride,
                                T* out, std::int64_t out_stride, cudaStream_t stream) {
  constexpr int threads = 256;
  const dim3 grid(unsigned(T_), unsigned((H / N + threads - 1) / threads));
  const bool vector_out =
      reinterpret_cast<std::uintptr_t>(out) % (N * sizeof(T)) == 0 && out_stride % N == 0;
  if (vector_out)
    combine_kernel<T, W, N, true><<<grid, threads, 0, stream>>>(y, H, inv, K, w, w_stride, out, out_stride);
  else
    combine_kernel<T, W, N, false><<<grid, threads, 0, stream>>>(y, H, inv, K, w, w_stride, out, out_stride);
  return cudaGetLastError();
}

// 16-byte loads of y where its rows allow (H a multiple of 16 / sizeof(T): the sections are
// 256-byte aligned), else one column per thread.
template <class T, class W>
cudaError_t launch_combine(const T* y, int H, const int* inv, int T_, int K, const W* w, std::int64_t w_stride,
                           T* out, std::int64_t out_stride, cudaStream_t stream) {
  if (T_ == 0) return cudaSuccess;
  if (K > kMaxTopK) return cudaErrorInvalidValue;
  constexpr int kWide = 16 / int(sizeof(T));
  if (H % kWide == 0) return launch_combine_cols<T, W, kWide>(y, H, inv, T_, K, w, w_stride, out, out_stride, stream);
  return launch_combine_cols<T, W, 1>(y, H, inv, T_, K, w, w_stride, out, out_stride, stream);
}

}  // namespace moekit::cuda::kernels
