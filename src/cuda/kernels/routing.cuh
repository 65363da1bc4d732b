// moekit CUDA kernels: routing preparation on the device (no host sync).
//
// grouped: per-expert counts and offsets, a stable permutation (sorted position -> pair p = t*K + k,
// pairs of one expert in their original order) and its inverse, and the list of BM-row tiles the
// grouped GEMMs walk. Up to kRoutingOneCtaPairs pairs one CTA (E <= 1024 fits one scan), beyond a
// count, a scan and a scatter over chunks of pairs; both give the same, deterministic result.
// batched: one tile per pair, in pair order; the inverse is the identity (or -1 for a sentinel).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "types.cuh"

namespace moekit::cuda::kernels {

inline constexpr int kMaxExperts = 1024;
inline constexpr int kMaxTopK = 32;
inline constexpr int kRoutingThreads = 1024;
// The grouped routing runs on one CTA up to kRoutingOneCtaPairs pairs, beyond on one CTA per chunk
// of routing_chunk_pairs(N) pairs (a multiple of kRoutingThreads: one pass of the CTA's threads
// at the smallest), at most kMaxRoutingChunks of them (their per-expert counts are workspace:
// chunks x E ints). A chunk's stable scatter takes about 4 us per 1024 pairs, so the chunks are as
// small as that bound allows (docs/perf-notes.md v12b).
inline constexpr int kRoutingOneCtaPairs = 4096;
inline constexpr int kMaxRoutingChunks = 256;
inline int routing_chunk_pairs(std::int64_t n) {
  const std::int64_t per = (n + kMaxRoutingChunks - 1) / kMaxRoutingChunks;
  return int((per + kRoutingThreads - 1) / kRoutingThreads * kRoutingThreads);
}
inline int routing_chunks(std::int64_t n) {
  if (n <= kRoutingOneCtaPairs) return 1;
  const std::int64_t c = routing_chunk_pairs(n);
  return int((n + c - 1) / c);
}

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

// ---- the pieces of the grouped routing, each run by all kRoutingThreads threads of a CTA ----

// count[e] += the pairs of expert e in [begin, end). Integer counts: the order of the atomic adds
// cannot change them.
template <class Id>
__device__ __forceinline__ void count_pairs(const Id* ids, std::int64_t id_stride, int K, int E, int begin, int end,
                                            int* count) {
  for (int p = begin + int(threadIdx.x); p < end; p += kRoutingThreads) {
    const int e = pair_expert(ids, id_stride, K, E, p);
    if (e < E) atomicAdd(&count[e], 1);
  }
}

// From c = thread e's expert count: offsets[E + 1], the tile list and its length. Returns thread
// e's first sorted position (0 for threads >= E).
__device__ __forceinline__ int write_offsets_and_tiles(int c, int E, int bm, int2* warp_sums, int* offsets,
                                                       Tile* tiles, int* num_tiles) {
  const int tid = threadIdx.x;
  const int nt = (c + bm - 1) / bm;
  int2 total;
  const int2 ex = block_exclusive_scan2(c, nt, warp_sums, total);
  if (tid < E) {
    offsets[tid] = ex.x;
    for (int j = 0; j < nt; ++j)
      tiles[ex.y + j] = Tile{tid, ex.x + j * bm, min(bm, c - j * bm), raster_group_word(j, nt)};
  }
  if (tid == 0) {
    offsets[E] = total.x;
    *num_tiles = total.y;
  }
  return tid < E ? ex.x : 0;
}

// Stable scatter of the pairs [begin, end), 1024 at a time: cursor[e] = the sorted position of the
// range's first pair of expert e (advanced as it goes); warp_count all zero on entry (and exit).
// rank = earlier pairs of the same expert in earlier chunks (cursor) + in earlier warps of this
// chunk (warp_count) + in earlier lanes (match mask).
template <class Id>
__device__ __forceinline__ void scatter_pairs(const Id* ids, std::int64_t id_stride, int K, int E, int begin, int end,
                                              int* cursor, unsigned char (*warp_count)[kMaxExperts], int* perm,
                                              int* inv) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int base = begin; base < end; base += kRoutingThreads) {
    const int p = base + tid;
    const int e = p < end ? pair_expert(ids, id_stride, K, E, p) : E;
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
    if (p < end) {
      inv[p] = pos;
      if (pos >= 0) perm[pos] = p;
    }
    __syncthreads();
  }
}

// Up to kRoutingOneCtaPairs pairs: one CTA does it all.
template <class Id>
__global__ void __launch_bounds__(kRoutingThreads)
    grouped_routing_kernel(const Id* ids, std::int64_t id_stride, int T, int K, int E, int bm, int* offsets,
                           int* perm, int* inv, Tile* tiles, int* num_tiles) {
  __shared__ int count[kMaxExperts];
  __shared__ int cursor[kMaxExperts];
  __shared__ int2 warp_sums[33];
  __shared__ unsigned char warp_count[32][kMaxExperts];  // pairs of expert e in warp w of this chunk
  const int tid = threadIdx.x;
  const int N = T * K;
  for (int e = tid; e < E; e += kRoutingThreads) count[e] = 0;
  for (int i = tid; i < 32 * kMaxExperts; i += kRoutingThreads) (&warp_count[0][0])[i] = 0;
  __syncthreads();
  count_pairs(ids, id_stride, K, E, 0, N, count);
  __syncthreads();
  const int first = write_offsets_and_tiles(tid < E ? count[tid] : 0, E, bm, warp_sums, offsets, tiles, num_tiles);
  if (tid < E) cursor[tid] = first;
  __syncthreads();
  scatter_pairs(ids, id_stride, K, E, 0, N, cursor, warp_count, perm, inv);
}

// More pairs: the single CTA walked them at about 3 us per 1024 (203 us at solar T = 8192,
// docs/perf-notes.md v11b), so chunks of `chunk` pairs go to one CTA each. (1) each chunk's
// counts; (2) one CTA: offsets and tiles from the totals, and chunk_counts turned into each
// chunk's first sorted position per expert; (3) each chunk's stable scatter from there. The
// result is the single CTA's, bit for bit.
template <class Id>
__global__ void __launch_bounds__(kRoutingThreads)
    routing_chunk_count_kernel(const Id* ids, std::int64_t id_stride, int T, int K, int E, int chunk,
                               int* chunk_counts) {
  __shared__ int count[kMaxExperts];
  const int tid = threadIdx.x;
  const int begin = int(blockIdx.x) * chunk, end = min(T * K, begin + chunk);
  for (int e = tid; e < E; e += kRoutingThreads) count[e] = 0;
  __syncthreads();
  count_pairs(ids, id_stride, K, E, begin, end, count);
  __syncthreads();
  for (int e = tid; e < E; e += kRoutingThreads) chunk_counts[std::int64_t(blockIdx.x) * E + e] = count[e];
}

// static: not a template, and this header is in several translation units.
static __global__ void __launch_bounds__(kRoutingThreads)
    routing_chunk_scan_kernel(int E, int bm, int chunks, int* chunk_counts, int* offsets, Tile* tiles,
                              int* num_tiles) {
  __shared__ int2 warp_sums[33];
  const int tid = threadIdx.x;
  int c = 0;
  if (tid < E)
    for (int b = 0; b < chunks; ++b) c += chunk_counts[b * E + tid];
  int run = write_offsets_and_tiles(c, E, bm, warp_sums, offsets, tiles, num_tiles);
  if (tid < E)
    for (int b = 0; b < chunks; ++b) {
      const int v = chunk_counts[b * E + tid];
      chunk_counts[b * E + tid] = run;
      run += v;
    }
}

template <class Id>
__global__ void __launch_bounds__(kRoutingThreads)
    routing_chunk_scatter_kernel(const Id* ids, std::int64_t id_stride, int T, int K, int E, int chunk,
                                 const int* chunk_starts, int* perm, int* inv) {
  __shared__ int cursor[kMaxExperts];
  __shared__ unsigned char warp_count[32][kMaxExperts];
  const int tid = threadIdx.x;
  const int begin = int(blockIdx.x) * chunk, end = min(T * K, begin + chunk);
  for (int e = tid; e < E; e += kRoutingThreads) cursor[e] = chunk_starts[std::int64_t(blockIdx.x) * E + e];
  for (int i = tid; i < 32 * kMaxExperts; i += kRoutingThreads) (&warp_count[0][0])[i] = 0;
  __syncthreads();
  scatter_pairs(ids, id_stride, K, E, begin, end, cursor, warp_count, perm, inv);
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

// Writes offsets[E + 1], perm[T*K], inv[T*K], tiles[<= ceil(T*K / bm) + min(E, T*K)], num_tiles[1];
// chunk_counts: routing_chunks(T*K) * E ints of scratch when that is more than 1 (else unused).
template <class Id>
cudaError_t launch_grouped_routing(const Id* ids, std::int64_t id_stride, int T, int K, int E, int bm, int* offsets,
                                   int* perm, int* inv, Tile* tiles, int* num_tiles, int* chunk_counts,
                                   cudaStream_t stream) {
  if (E < 1 || E > kMaxExperts || K < 1 || K > kMaxTopK || bm < 1) return cudaErrorInvalidValue;
  const std::int64_t n = std::int64_t(T) * K;
  const int chunks = routing_chunks(n);
  if (chunks <= 1) {
    grouped_routing_kernel<Id><<<1, kRoutingThreads, 0, stream>>>(ids, id_stride, T, K, E, bm, offsets, perm, inv,
                                                                  tiles, num_tiles);
    return cudaGetLastError();
  }
  if (chunk_counts == nullptr) return cudaErrorInvalidValue;
  const int chunk = routing_chunk_pairs(n);
  routing_chunk_count_kernel<Id><<<chunks, kRoutingThreads, 0, stream>>>(ids, id_stride, T, K, E, chunk, chunk_counts);
  routing_chunk_scan_kernel<<<1, kRoutingThreads, 0, stream>>>(E, bm, chunks, chunk_counts, offsets, tiles, num_tiles);
  routing_chunk_scatter_kernel<Id><<<chunks, kRoutingThreads, 0, stream>>>(ids, id_stride, T, K, E, chunk,
                                                                           chunk_counts, perm, inv);
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
