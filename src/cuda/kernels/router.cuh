// moekit CUDA kernels: the MoE routers (the router linear and the three routing rules of
// include/moekit/router.hpp). Framework-free: raw pointers and plain parameters.
//
// Every sum has a fixed order (no atomics), so the results are bitwise the same run to run. The
// selection uses the host route()'s strict order (higher score first, equal scores to the lower
// index), so given the same scores it picks the same experts in the same order. NaN scores rank
// below -inf instead of stopping the kernel (the host route() refuses them; a device kernel cannot
// throw without a sync), so every id written is always in [0, E).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "types.cuh"

namespace moekit::cuda::kernels {

enum class RouterRule : int { softmax_topk = 0, sigmoid_grouped = 1, gpt_oss = 2 };
// Rounding of logits or weights: none (fp32), or to bf16 / f16 and back.
enum class Rounding : int { none = 0, bf16 = 1, f16 = 2 };

struct RouterRuleParams {
  RouterRule rule = RouterRule::softmax_topk;
  bool norm_topk_prob = true;
  int n_group = 1, topk_group = 1;
  float scale = 1.0f;
  Rounding weights = Rounding::none;
};

__device__ __forceinline__ float round_as(Rounding r, float v) {
  if (r == Rounding::bf16) return __bfloat162float(__float2bfloat16_rn(v));
  if (r == Rounding::f16) return __half2float(__float2half_rn(v));
  return v;
}

// ---- router linear: logits[t, e] = round(sum_h x[t, h] * w[e, h] + bias[e]) ------------------

inline constexpr int kLinTile = 64;   // tokens and experts per CTA
inline constexpr int kLinChunk = 16;  // H per shared-memory stage
inline constexpr int kLinThreads = 256;
inline constexpr int kLinMinSlice = 256;  // the least H a slice walks

// H is cut into `slices` equal ranges (a multiple of kLinChunk each) so that a few 64 x 64 tiles
// still fill the GPU: a tile walks its H range with a load latency per chunk, and 16 tiles of one
// slice each (T = 512, E = 128) left 116 of 132 SMs idle for 0.5 ms. Depends on the sizes and the
// SM count only, so a device's logits do not change from call to call.
inline int router_linear_slices(int tokens, int experts, int hidden, int sm_count) {
  const long long tiles = (long long)((experts + kLinTile - 1) / kLinTile) * ((tokens + kLinTile - 1) / kLinTile);
  const long long want = (2LL * sm_count + tiles - 1) / tiles;
  const long long most = hidden / kLinMinSlice;
  const long long s = want < most ? want : most;
  return s < 1 ? 1 : int(s);
}

inline int router_linear_slice_len(int hidden, int slices) {
  const int per = (hidden + slices - 1) / slices;
  return (per + kLinChunk - 1) / kLinChunk * kLinChunk;
}

// 64 x 64 outputs per CTA, 4 x 4 per thread, over h in [z * slice_len, (z + 1) * slice_len) for
// z = blockIdx.z, in increasing h. One slice: the logits (+ bias, rounded); several: fp32 partial
// sums into partials[z][t][e], which router_linear_sum_kernel adds in z order. The next chunk is
// loaded into registers while the current one is multiplied.
template <class T>
__global__ void __launch_bounds__(kLinThreads)
    router_linear_tiled_kernel(const T* __restrict__ x, std::int64_t ldx, const T* __restrict__ w,
                               const T* __restrict__ bias, int tokens, int experts, int hidden, int slice_len,
                               Rounding rounding, float* __restrict__ logits, std::int64_t ldl,
                               float* __restrict__ partials) {
  __shared__ float xs[kLinChunk][kLinTile + 1];
  __shared__ float ws[kLinChunk][kLinTile + 1];
  constexpr int kPer = kLinTile * kLinChunk / kLinThreads;  // elements of x (and of w) per thread and chunk
  const int t0 = blockIdx.y * kLinTile, e0 = blockIdx.x * kLinTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int h_begin = blockIdx.z * slice_len;
  const int h_end = min(hidden, h_begin + slice_len);
  float xr[kPer], wr[kPer];
  auto load = [&](int h0) {
    for (int k = 0; k < kPer; ++k) {
      const int i = threadIdx.x + k * kLinThreads;
      const int r = i / kLinChunk, h = h0 + i % kLinChunk;
      const int t = t0 + r, e = e0 + r;
      xr[k] = (t < tokens && h < h_end) ? to_f32(x[std::int64_t(t) * ldx + h]) : 0.0f;
      wr[k] = (e < experts && h < h_end) ? to_f32(w[std::int64_t(e) * hidden + h]) : 0.0f;
    }
  };
  float acc[4][4] = {};
  if (h_begin < h_end) load(h_begin);
  for (int h0 = h_begin; h0 < h_end; h0 += kLinChunk) {
    for (int k = 0; k < kPer; ++k) {
      const int i = threadIdx.x + k * kLinThreads;
      xs[i % kLinChunk][i / kLinChunk] = xr[k];
      ws[i % kLinChunk][i / kLinChunk] = wr[k];
    }
    __syncthreads();
    if (h0 + kLinChunk < h_end) load(h0 + kLinChunk);
    const int n = min(kLinChunk, h_end - h0);
    for (int c = 0; c < n; ++c) {
      float a[4], b[4];
      for (int i = 0; i < 4; ++i) a[i] = xs[c][ty + 16 * i], b[i] = ws[c][tx + 16 * i];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const int t = t0 + ty + 16 * i, e = e0 + tx + 16 * j;
      if (t >= tokens || e >= experts) continue;
      float v = acc[i][j];
      if (partials) {
        partials[(std::int64_t(blockIdx.z) * tokens + t) * experts + e] = v;
        continue;
      }
      if (bias) v += to_f32(bias[e]);
      logits[std::int64_t(t) * ldl + e] = round_as(rounding, v);
    }
}

// logits[t, e] = round(partials[0][t][e] + ... + partials[slices - 1][t][e] + bias[e]), in that order.
template <class T>
__global__ void router_linear_sum_kernel(const float* __restrict__ partials, int slices, const T* __restrict__ bias,
                                         int tokens, int experts, Rounding rounding, float* __restrict__ logits,
                                         std::int64_t ldl) {
  const std::int64_t n = std::int64_t(tokens) * experts;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    float v = partials[i];
    for (int z = 1; z < slices; ++z) v += partials[std::int64_t(z) * n + i];
    const int e = int(i % experts);
    if (bias) v += to_f32(bias[e]);
    logits[(i / experts) * ldl + e] = round_as(rounding, v);
  }
}

// fp32 scratch the router linear needs beyond the logits (0 when one slice does).
inline std::int64_t router_linear_scratch_floats(int tokens, int experts, int hidden, int sm_count) {
  if (tokens <= 16) return 0;  // the warp kernel
  const int s = router_linear_slices(tokens, experts, hidden, sm_count);
  return s > 1 ? std::int64_t(s) * tokens * experts : 0;
}

// One warp per output, for few tokens: lanes take h = lane, lane + 32, ... and the 32 partial sums
// meet in a fixed butterfly.
template <class T>
__global__ void router_linear_warp_kernel(const T* __restrict__ x, std::int64_t ldx, const T* __restrict__ w,
                                          const T* __restrict__ bias, int tokens, int experts, int hidden,
                                          Rounding rounding, float* __restrict__ logits, std::int64_t ldl) {
  const int lane = threadIdx.x & 31;
  const std::int64_t out = std::int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (out >= std::int64_t(tokens) * experts) return;
  const int t = int(out / experts), e = int(out % experts);
  const T* xr = x + std::int64_t(t) * ldx;
  const T* wr = w + std::int64_t(e) * hidden;
  float s = 0.0f;
  for (int h = lane; h < hidden; h += 32) s = fmaf(to_f32(xr[h]), to_f32(wr[h]), s);
  for (int d = 16; d > 0; d >>= 1) s += __shfl_xor_sync(0xffffffffu, s, d);
  if (lane == 0) {
    if (bias) s += to_f32(bias[e]);
    logits[std::int64_t(t) * ldl + e] = round_as(rounding, s);
  }
}

// `partials`: router_linear_scratch_floats(...) floats of device memory (may be null when that is 0).
template <class T>
cudaError_t launch_router_linear(const T* x, std::int64_t ldx, const T* w, const T* bias, int tokens, int experts,
                                 int hidden, Rounding rounding, float* logits, std::int64_t ldl, int sm_count,
                                 float* partials, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  // Below ~16 tokens the tiles would be mostly empty and walk H serially; a warp per output
  // splits H instead. (The two sum in different orders: a token's logits depend on which path
  // its call took and on the device's SM count, never on anything else.)
  if (tokens <= 16) {
    constexpr int warps = 8;
    const std::int64_t outs = std::int64_t(tokens) * experts;
    router_linear_warp_kernel<T><<<unsigned((outs + warps - 1) / warps), warps * 32, 0, stream>>>(
        x, ldx, w, bias, tokens, experts, hidden, rounding, logits, ldl);
    return cudaGetLastError();
  }
  const int slices = router_linear_slices(tokens, experts, hidden, sm_count);
  if (slices > 1 && partials == nullptr) return cudaErrorInvalidValue;
  const int slice_len = router_linear_slice_len(hidden, slices);
  const dim3 grid((experts + kLinTile - 1) / kLinTile, (tokens + kLinTile - 1) / kLinTile, slices);
  router_linear_tiled_kernel<T><<<grid, kLinThreads, 0, stream>>>(x, ldx, w, bias, tokens, experts, hidden, slice_len,
                                                                   rounding, logits, ldl, slices > 1 ? partials : nullptr);
  if (slices > 1) {
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    const std::int64_t n = std::int64_t(tokens) * experts;
    const unsigned blocks = unsigned(std::min<std::int64_t>((n + 255) / 256, 4LL * sm_count));
    router_linear_sum_kernel<T><<<blocks, 256, 0, stream>>>(partials, slices, bias, tokens, experts, rounding, logits,
                                                           ldl);
  }
  return cudaGetLastError();
}

// ---- routing: one warp per token ------------------------------------------------------------

inline constexpr int kRouteWarps = 4;  // tokens per CTA

__device__ __forceinline__ bool ranks_before(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}

// The best not-yet-taken entry of key[0, n) under the strict order; the same on every lane.
__device__ __forceinline__ int warp_best(const float* key, const unsigned char* taken, int n) {
  const int lane = threadIdx.x & 31;
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int i = lane; i < n; i += 32) {
    if (taken[i]) continue;
    float v = key[i];
    if (v != v) v = -INFINITY;  // NaN: last, but still a valid choice if nothing else is left
    if (ranks_before(v, i, bv, bi)) bv = v, bi = i;
  }
  for (int d = 16; d > 0; d >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, d);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, d);
    if (ranks_before(ov, oi, bv, bi)) bv = ov, bi = oi;
  }
  return bi;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int d = 16; d > 0; d >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, d));
  return v;
}

// Shared memory per warp: key[E], score[E], group_score[G] floats, then taken[E], group_taken[G] bytes.
inline std::size_t route_smem_per_warp(int experts, int n_group) {
  const std::size_t floats = std::size_t(2) * experts + n_group;
  return (floats * sizeof(float) + std::size_t(experts + n_group) + 15) / 16 * 16;
}

// logits [T, E] (row stride ldl) -> idx [T, K] (ldi), weights [T, K] (ldw), rows in selection
// order, each step as the host route() takes it.
static __global__ void __launch_bounds__(kRouteWarps * 32)
    route_kernel(const float* __restrict__ logits, std::int64_t ldl, int tokens, int experts, int top_k,
                 const float* __restrict__ correction_bias, RouterRuleParams p, std::int32_t* __restrict__ idx,
                 std::int64_t ldi, float* __restrict__ weights, std::int64_t ldw, unsigned smem_per_warp) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int t = blockIdx.x * kRouteWarps + warp;
  if (t >= tokens) return;  // whole warps leave together, and no block-wide barrier follows
  const int E = experts, K = top_k, G = p.n_group;
  unsigned char* base = smem + std::size_t(warp) * smem_per_warp;
  float* key = reinterpret_cast<float*>(base);
  float* score = key + E;
  float* group_score = score + E;
  unsigned char* taken = reinterpret_cast<unsigned char*>(group_score + G);
  unsigned char* group_taken = taken + E;
  const float* row = logits + std::int64_t(t) * ldl;

  for (int e = lane; e < E; e += 32) taken[e] = 0;
  if (p.rule == RouterRule::softmax_topk) {
    float m = -INFINITY;
    for (int e = lane; e < E; e += 32) m = fmaxf(m, row[e]);
    m = warp_max(m);
    float s = 0.0f;
    for (int e = lane; e < E; e += 32) {
      const float v = expf(row[e] - m);
      score[e] = v;
      s += v;
    }
    s = warp_sum(s);
    // Ranked on the probabilities, as the host route() and transformers do.
    for (int e = lane; e < E; e += 32) key[e] = score[e] = score[e] / s;
  } else if (p.rule == RouterRule::sigmoid_grouped) {
    for (int e = lane; e < E; e += 32) {
      const float v = 1.0f / (1.0f + expf(-row[e]));
      score[e] = v;
      key[e] = correction_bias ? v + correction_bias[e] : v;
    }
    if (G > 1) {
      __syncwarp();
      const int size = E / G;
      for (int g = lane; g < G; g += 32) {
        // The sum of the group's two best biased scores, scanned in the host's order.
        const float* sg = key + std::int64_t(g) * size;
        float best = sg[0], second = -INFINITY;
        for (int i = 1; i < size; ++i) {
          if (sg[i] > best) second = best, best = sg[i];
          else if (sg[i] > second) second = sg[i];
        }
        group_score[g] = size > 1 ? best + second : best;
        group_taken[g] = 0;
      }
      __syncwarp();
      for (int k = 0; k < p.topk_group; ++k) {
        const int g = warp_best(group_score, group_taken, G);
        if (lane == 0) group_taken[g] = 1;
        __syncwarp();
      }
      // Experts of the dropped groups cannot be chosen (transformers masks them with -inf).
      for (int e = lane; e < E; e += 32) taken[e] = group_taken[e / size] ? 0 : 1;
    }
  } else {  // gpt_oss: rank the logits themselves
    for (int e = lane; e < E; e += 32) key[e] = row[e];
  }
  __syncwarp();

  std::int32_t* out_i = idx + std::int64_t(t) * ldi;
  float* out_w = weights + std::int64_t(t) * ldw;
  for (int k = 0; k < K; ++k) {
    const int e = warp_best(key, taken, E);
    if (lane == 0) {
      taken[e] = 1;
      out_i[k] = e;
    }
    __syncwarp();
  }
  if (lane != 0) return;
  // The weights, summed in k order like the host.
  if (p.rule == RouterRule::softmax_topk) {
    float kept = 0.0f;
    for (int k = 0; k < K; ++k) kept += out_w[k] = score[out_i[k]];
    for (int k = 0; k < K; ++k) out_w[k] = round_as(p.weights, p.norm_topk_prob ? out_w[k] / kept : out_w[k]);
  } else if (p.rule == RouterRule::sigmoid_grouped) {
    float sum = 0.0f;
    for (int k = 0; k < K; ++k) sum += out_w[k] = score[out_i[k]];
    const float denom = p.norm_topk_prob ? sum + 1e-20f : 1.0f;
    for (int k = 0; k < K; ++k) out_w[k] = round_as(p.weights, out_w[k] / denom * p.scale);
  } else {
    const float m = row[out_i[0]];
    float sum = 0.0f;
    for (int k = 0; k < K; ++k) sum += out_w[k] = expf(row[out_i[k]] - m);
    for (int k = 0; k < K; ++k) out_w[k] = round_as(p.weights, out_w[k] / sum);
  }
}

inline cudaError_t launch_route(const float* logits, std::int64_t ldl, int tokens, int experts, int top_k,
                                const float* correction_bias, const RouterRuleParams& p, std::int32_t* idx,
                                std::int64_t ldi, float* weights, std::int64_t ldw, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  const std::size_t per_warp = route_smem_per_warp(experts, p.n_group);
  const std::size_t smem = per_warp * kRouteWarps;
  if (smem > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(route_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (err != cudaSuccess) return err;
  }
  route_kernel<<<(tokens + kRouteWarps - 1) / kRouteWarps, kRouteWarps * 32, smem, stream>>>(
      logits, ldl, tokens, experts, top_k, correction_bias, p, idx, ldi, weights, ldw, unsigned(per_warp));
  return cudaGetLastError();
}

}  // namespace moekit::cuda::kernels
