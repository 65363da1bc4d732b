// moekit CUDA kernels: routing preparation on the device (no host sync).
//
// grouped: per-expert counts and offsets, a stable permutation (sorted position -> pair p = t*K + k,
// pairs of one expert in their original order) and its inverse, and the list of BM-row tiles the
// grouped GEMMs walk. One CTA: E <= 1024 fits one scan, and a single block keeps the permutation
// deterministic without a multi-kernel sort (its cost, a few microseconds per 1024 pairs, is noted
// in docs/perf-notes.md).
// batched: one tile per pair, in pair order; the inverse is the identity (or -1 for a sentinel).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "types.cuh"

namespace moekit::cuda::kernels {

inline constexpr int kMaxExperts = 1024;
inline constexpr int kMaxTopK = 32;
inline constexpr int kRoutingThreads = 1024;

template <class Id>
__device__ __forceinline__ int pair_expert(const Id* ids, std::int64_t id_stride, int K, int E, int p) {
  return expert_or_none(ids[std::int64_t(p / K) * id_stride + p % K], E);
}

// Exclusive scan of two values over the 1024 threads of the block; returns the totals too.
__device__ __forceinline__ int2 block_exclusive_scan2(int a, int b, int2* warp_sums, int2& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int sa = a, sb = b;
  for (int d = 1; d < 32; d <<= 1) {
    const int ta = __shfl_up_sync(0xffffffffu, sa, d), tb = __shfl_up_sync(0xffffffffu, sb, d);
    if (lane >= d) sa += ta, sb += tb;
  }
  if (lane == 31) warp_sums[warp] = make_int2(sa, sb);
  __syncthreads();
  if (warp == 0) {
    int2 v = warp_sums[lane];
    int xa = v.x, xb = v.y;
    for (int d = 1; d < 32; d <<= 1) {
      const int ta = __shfl_up_sync(0xffffffffu, xa, d), tb = __shfl_up_sync(0xffffffffu, xb, d);
      if (lane >= d) xa += ta, xb += tb;
    }
    warp_sums[lane] = make_int2(xa - v.x, xb - v.y);  // exclusive prefix of the warp totals
    if (lane == 31) warp_sums[32] = make_int2(xa, xb);
  }
  __syncthreads();
  const int2 base = warp_sums[warp];
  total = warp_sums[32];
  return make_int2(base.x + sa - a, base.y + sb - b);
}

template <class Id>
__global__ void __launch_bounds__(kRoutingThreads)
    grouped_routing_kernel(const Id* ids, std::int64_t id_stride, int T, int K, int E, int bm, int* offsets,
                           int* perm, int* inv, Tile* tiles, int* num_tiles) {
  __shared__ int count[kMaxExperts];
  __shared__ int cursor[kMaxExperts];
  __shared__ int2 warp_sums[33];
  __shared__ unsigned char warp_count[32][kMaxExperts];  // pairs of expert e in warp w of this chunk
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int N = T * K;

  for (int e = tid; e < E; e += kRoutingThreads) count[e] = 0;
  for (int i = tid; i < 32 * kMaxExperts; i += kRoutingThreads) (&warp_count[0][0])[i] = 0;
  __syncthreads();
  // Integer counts: the order of the atomic adds cannot change them.
  for (int p = tid; p < N; p += kRoutingThreads) {
    const int e = pair_expert(ids, id_stride, K, E, p);
    if (e < E) atomicAdd(&count[e], 1);
  }
  __syncthreads();

  const int c = tid < E ? count[tid] : 0;
  const int nt = (c + bm - 1) / bm;
  int2 total;
  const int2 ex = block_exclusive_scan2(c, nt, warp_sums, total);
  if (tid < E) {
    offsets[tid] = ex.x;
    cursor[tid] = ex.x;
    for (int j = 0; j < nt; ++j)
      tiles[ex.y + j] = Tile{tid, ex.x + j * bm, min(bm, c - j * bm), raster_group_word(j, nt)};
  }
  if (tid == 0) {
    offsets[E] = total.x;
    *num_tiles = total.y;
  }
  __syncthreads();

  // Stable scatter, 1024 pairs at a time: rank = earlier pairs of the same expert in earlier
  // chunks (cursor) + in earlier warps of this chunk (warp_count) + in earlier lanes (match mask).
  for (int base = 0; base < N; base += kRoutingThreads) {
    const int p = base + tid;
    const int e = p < N ? pair_expert(ids, id_stride, K, E, p) : E;
    const unsigned peers = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    const bool leader = rank == 0;
    if (leader && e < E) warp_count[warp][e] = static_cast<unsigned char>(__popc(peers));
    __syncthreads();
    int pos = -1;
    if (e < E) {
      int before = 0;
      for (int w = 0; w < warp; ++w) before += warp_count[w][e];
      pos = cursor[e] + before + rank;
    }
    __syncthreads();
    if (leader && e < E) {
      atomicAdd(&cursor[e], __popc(peers));
      warp_count[warp][e] = 0;
    }
    if (p < N) {
      inv[p] = pos;
      if (pos >= 0) perm[pos] = p;
    }
    __syncthreads();
  }
}

template <class Id>
__global__ void batched_routing_kernel(const Id* ids, std::int64_t id_stride, int T, int K, int E, int* inv,
                                       Tile* tiles) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= T * K) return;
  const int e = pair_expert(ids, id_stride, K, E, p);
  const bool hit = e < E;
  tiles[p] = Tile{hit ? e : 0, p, hit ? 1 : 0, raster_group_word(0, 1)};  // walked in pair order (pair_order)
  inv[p] = hit ? p : -1;
}

// Writes offsets[E + 1], perm[T*K], inv[T*K], tiles[<= ceil(T*K / bm) + min(E, T*K)], num_tiles[1].
template <class Id>
cudaError_t launch_grouped_routing(const Id* ids, std::int64_t id_stride, int T, int K, int E, int bm, int* offsets,
                                   int* perm, int* inv, Tile* tiles, int* num_tiles, cudaStream_t stream) {
  if (E < 1 || E > kMaxExperts || K < 1 || K > kMaxTopK || bm < 1) return cudaErrorInvalidValue;
  grouped_routing_kernel<Id><<<1, kRoutingThreads, 0, stream>>>(ids, id_stride, T, K, E, bm, offsets, perm, inv,
                                                                tiles, num_tiles);
  return cudaGetLastError();
}

// Writes inv[T*K] and tiles[T*K].
template <class Id>
cudaError_t launch_batched_routing(const Id* ids, std::int64_t id_stride, int T, int K, int E, int* inv, Tile* tiles,
                                   cudaStream_t stream) {
  const int n = T * K;
  if (n == 0) return cudaSuccess;
  batched_routing_kernel<Id><<<(n + 255) / 256, 256, 0, stream>>>(ids, id_stride, T, K, E, inv, tiles);
  return cudaGetLastError();
}

}  // namespace moekit::cuda::kernels
