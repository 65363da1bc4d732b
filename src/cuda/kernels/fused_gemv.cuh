// moekit CUDA kernels: the weight-streaming path of `fused` for decode-sized batches (sm_80+).
//
// A decode step hits a few experts with a few tokens each, so the call is bound by reading each
// hit expert's weights once. Every CTA takes one hit expert and a block of 16 * RG weight rows,
// gathers the pairs routed to that expert itself (no routing kernel, no host sync), and streams
// its rows once from HBM with 16-byte loads while all the expert's tokens ride along:
//
//   swap A and B:  D[16 rows, 8 tokens] += W[16 rows, k16] x X[8 tokens, k16]^T   (mma.m16n8k16)
//
// The weights are the mma's A operand, loaded straight from global memory into fragments. A
// fragment wants, per thread, 4 k values of rows g and g+8; the dot product does not care which
// k goes where as long as A and B agree, so thread (g, c) loads 16 consecutive k of its rows (two
// 16-byte loads; the 4 threads of a row cover 128 contiguous bytes) and uses 4 of them per k16
// step, and the token operand is loaded with the same mapping. No shared memory stage, no
// ldmatrix: the bytes in flight are the registers of the unrolled loop.
//
// The K extent is split over the CTA's warps and summed in shared memory in warp order (fixed:
// bitwise reproducible), then the epilogue of the grouped GEMM runs on the sums:
//   GEMV1: + bias, gate (concatenated: rows i and I+i share a thread; interleaved: 2i and 2i+1)
//          or act alone -> h[pair, i] in the activation dtype;
//   GEMV2: + bias -> y[pair, row] in the activation dtype (unweighted; the combine applies w in
//          fp32, in k order).
//
// Two launch forms: three kernels (fused_gemv_kernel for GEMV1, again for GEMV2, then
// fused_combine_kernel), or one persistent kernel doing the three (fused_gemv1k_kernel, at the end
// of this file) that pays one launch, one routing prologue per CTA and one tail.
//
// Requirements (the host checks them): 16-bit dtype, [N, K] weights, K % 8 == 0, 16-byte aligned
// rows (weights, a), T*K <= kGemvMaxPairs.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "activation.cuh"
#include "combine.cuh"
#include "gemm_tc.cuh"
#include "routing.cuh"
#include "types.cuh"

namespace moekit::cuda::kernels {

inline constexpr int kGemvMaxPairs = 1024;  // the pair list of one expert lives in shared memory
inline constexpr int kGemvWarps = 4;        // warps per CTA, splitting the K extent
inline constexpr int kGemvThreads = kGemvWarps * 32;
inline constexpr int kGemvUnroll = 2;       // 64-wide k chunks loaded before the first mma

struct GemvParams {
  const void* ids = nullptr;  // top_k_index [T, K] (Id)
  std::int64_t id_stride = 0;
  int tokens = 0, top_k = 0, experts = 0;
  // B operand ("a" rows): pair p reads row p / a_div of a (GEMV1: the token; GEMV2: h row p).
  const void* a = nullptr;
  std::int64_t lda = 0;
  int a_div = 1;
  // Weights of expert e: w + e * w_expert_stride, [n_weights, kdim] with row stride ldw.
  const void* w = nullptr;
  std::int64_t w_expert_stride = 0;
  std::int64_t ldw = 0;
  int n_weights = 0;
  int kdim = 0;
  int inter = 0;
  Epilogue epilogue = Epilogue::down;
  const void* bias = nullptr;  // [E, n_weights] or null
  void* out = nullptr;         // h or y [T*K, ldo] (dtype)
  std::int64_t ldo = 0;
  ActParams act;
};

// 16-byte load that skips L1: each weight byte is used once by one CTA.
__device__ __forceinline__ uint4 ld_stream16(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}
// 16-byte load of a token row: rows are shared by many CTAs on an SM, so they may stay in L1.
__device__ __forceinline__ uint4 ld_shared_row16(const void* p) {
  uint4 v;
  asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ unsigned word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Weight row of fragment row r (0..15) of 16-row group u; false when past the end.
__device__ __forceinline__ bool gemv_row(const GemvParams& p, int u, int r, int& row) {
  switch (p.epilogue) {
    case Epilogue::gate_concatenated: {
      const int i = u * 8 + (r & 7);
      row = r < 8 ? i : p.inter + i;
      return i < p.inter;
    }
    case Epilogue::gate_interleaved: {
      const int i = u * 8 + (r & 7);
      row = 2 * i + (r >= 8 ? 1 : 0);
      return i < p.inter;
    }
    default:
      row = u * 16 + r;
      return row < p.n_weights;
  }
}

// Writes the indices i < n with pred(i), in increasing order, as emit(position, i); returns how
// many. Every thread of the CTA calls it (it synchronises); warp_count is kGemvWarps ints of shared
// memory. A ballot per warp and a prefix over the warps' counts: no atomics, so the order is fixed.
template <class Pred, class Emit>
__device__ __forceinline__ int block_compact(int n, Pred pred, Emit emit, int* warp_count) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const unsigned below = (1u << lane) - 1u;
  int seen = 0;
  for (int base = 0; base < n; base += kGemvThreads) {
    const int i = base + tid;
    const bool f = i < n && pred(i);
    const unsigned b = __ballot_sync(0xffffffffu, f);
    if (lane == 0) warp_count[warp] = __popc(b);
    __syncthreads();
    int before = seen, total = 0;
    for (int w = 0; w < kGemvWarps; ++w) {
      if (w < warp) before += warp_count[w];
      total += warp_count[w];
    }
    if (f) emit(before + __popc(b & below), i);
    seen += total;
    __syncthreads();
  }
  return seen;
}

// The routing prologue: expert_of[q] = the expert of pair q (E for a sentinel or an invalid id) and
// hit[e] = whether any pair chose e. Ends synchronised.
template <class Id>
__device__ __forceinline__ void gemv_mark_pairs(const Id* ids, std::int64_t id_stride, int K, int E, int N,
                                                int* expert_of, unsigned char* hit) {
  const int tid = threadIdx.x;
  for (int e = tid; e < E; e += kGemvThreads) hit[e] = 0;
  __syncthreads();
  for (int q = tid; q < N; q += kGemvThreads) {
    const int e = pair_expert(ids, id_stride, K, E, q);
    expert_of[q] = e;
    if (e < E) hit[e] = 1;  // equal values from any thread: no race on the result
  }
  __syncthreads();
}

// The pairs routed to expert e, in pair order, into list; returns how many.
__device__ __forceinline__ int gemv_pair_list(const int* expert_of, int N, int e, int* list, int* warp_count) {
  return block_compact(
      N, [&](int q) { return expert_of[q] == e; }, [&](int pos, int q) { list[pos] = q; }, warp_count);
}

// Where the token operand ("a" rows) comes from: read-only for the whole launch (the hidden states:
// the non-coherent path, rows may stay in L1), or written earlier in the same launch by other CTAs
// (h in the one-kernel path: read from L2, never a stale L1 line shared with a row not yet written).
enum class ARows { read_only, written_in_kernel };

template <ARows A>
__device__ __forceinline__ uint4 ld_a_row16(const void* p) {
  if constexpr (A == ARows::read_only) return ld_shared_row16(p);
  else return __ldcg(static_cast<const uint4*>(p));  // a compiler-visible load: stays after the wait
}

// Loads the kGemvUnroll chunks of 64 k starting at chunk kc0 of this warp: the weights and the
// tokens' a rows. Outside K or a row: zeros.
template <class T, int NT, int RG, ARows A>
__device__ __forceinline__ void gemv_load_chunks(const GemvParams& p, int kc0, int chunks, int c,
                                                 const T* const (&wrow)[RG][2], const bool (&wvalid)[RG][2],
                                                 const T* const (&arow)[NT], const bool (&avalid)[NT],
                                                 uint4 (&wv)[kGemvUnroll][RG][2][2], uint4 (&xv)[kGemvUnroll][NT][2]) {
#pragma unroll
  for (int u = 0; u < kGemvUnroll; ++u) {
    const int kc = kc0 + u * kGemvWarps;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int k = kc * 64 + c * 16 + half * 8;
      const bool kin = kc < chunks && k < p.kdim;
#pragma unroll
      for (int r = 0; r < RG; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          wv[u][r][h][half] = kin && wvalid[r][h] ? ld_stream16(wrow[r][h] + k) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int j = 0; j < NT; ++j)
        xv[u][j][half] = kin && avalid[j] ? ld_a_row16<A>(arow[j] + k) : make_uint4(0, 0, 0, 0);
    }
  }
}

// Asks L2 for the first kGemvPrefetchChunks chunks of 64 k of block blk's weight rows (one 128-byte
// line per row and chunk), without waiting and without registers: a unit that must wait for its a
// rows keeps its share of the weight stream going meanwhile.
inline constexpr int kGemvPrefetchChunks = 16;
template <class T, int RG>
__device__ __forceinline__ void gemv_prefetch_l2(const GemvParams& p, int e, int blk) {
  const int chunks = min((p.kdim + 63) / 64, kGemvPrefetchChunks);
  const T* w_base = static_cast<const T*>(p.w) + std::int64_t(e) * p.w_expert_stride;
  for (int i = threadIdx.x; i < RG * 16 * chunks; i += kGemvThreads) {
    const int rr = i / chunks, kc = i % chunks;
    int row = 0;
    if (!gemv_row(p, blk * RG + rr / 16, rr % 16, row)) continue;
    const T* line = w_base + std::int64_t(row) * p.ldw + kc * 64;
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(line));
  }
}

template <class T, int NT, int RG>
__device__ __forceinline__ void gemv_mma_chunks(const uint4 (&wv)[kGemvUnroll][RG][2][2],
                                                const uint4 (&xv)[kGemvUnroll][NT][2], float (&acc)[RG][NT][4]) {
#pragma unroll
  for (int u = 0; u < kGemvUnroll; ++u)
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      // k16 step s uses words 2s, 2s+1 of the thread's 16 k (half = s / 2).
      const int half = s >> 1, w0 = (2 * s) & 3;
#pragma unroll
      for (int r = 0; r < RG; ++r) {
        const unsigned a[4] = {word(wv[u][r][0][half], w0), word(wv[u][r][1][half], w0),
                               word(wv[u][r][0][half], w0 + 1), word(wv[u][r][1][half], w0 + 1)};
#pragma unroll
        for (int j = 0; j < NT; ++j) mma16816<T>(acc[r][j], a, word(xv[u][j][half], w0), word(xv[u][j][half], w0 + 1));
      }
    }
}

// The epilogue of one pass (tokens m0 .. m0 + 8 NT of the list) on the warp-summed red[0].
template <class T, int NT, int RG>
__device__ __forceinline__ void gemv_epilogue(const GemvParams& p, int e, int blk, const int* list, int m0, int M,
                                              const float (&red)[RG][NT][4][32]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const T* bias = p.bias ? static_cast<const T*>(p.bias) + std::int64_t(e) * p.n_weights : nullptr;
  auto bias_at = [&](int w) { return bias ? to_f32(bias[w]) : 0.0f; };
#pragma unroll
  for (int r = 0; r < RG; ++r) {
    const int u = blk * RG + r;
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        const int n = m0 + j * 8 + 2 * c + t;
        if (n >= M) continue;
        const std::int64_t pair = list[n];
        const float lo = red[r][j][t][lane], hi = red[r][j][2 + t][lane];  // rows g, g + 8
        if (p.epilogue == Epilogue::down) {
          T* out = static_cast<T*>(p.out) + pair * p.ldo;
          const int r0 = u * 16 + g, r1 = r0 + 8;
          if (r0 < p.n_weights) out[r0] = from_f32<T>(lo + bias_at(r0));
          if (r1 < p.n_weights) out[r1] = from_f32<T>(hi + bias_at(r1));
        } else if (p.epilogue == Epilogue::no_gate) {
          T* out = static_cast<T*>(p.out) + pair * p.ldo;
          const int r0 = u * 16 + g, r1 = r0 + 8;
          if (r0 < p.n_weights) out[r0] = from_f32<T>(act_value(lo + bias_at(r0), p.act.act));
          if (r1 < p.n_weights) out[r1] = from_f32<T>(act_value(hi + bias_at(r1), p.act.act));
        } else {
          const int i = u * 8 + g;
          if (i >= p.inter) continue;
          const bool concat = p.epilogue == Epilogue::gate_concatenated;
          const int gr = concat ? i : 2 * i, ur = concat ? p.inter + i : 2 * i + 1;
          T* out = static_cast<T*>(p.out) + pair * p.ldo;
          out[i] = from_f32<T>(gate_value(lo + bias_at(gr), hi + bias_at(ur), p.act));
        }
      }
  }
}

// One unit of work: RG 16-row groups (block blk) of expert e's weights against its M pairs (list),
// streamed once per pass of 8 NT tokens, summed over the warps in warp order, then the epilogue.
// Warp 0 writes the outputs. Ends synchronised.
template <class T, int NT, int RG, ARows A>
__device__ __forceinline__ void gemv_unit(const GemvParams& p, int e, int blk, const int* list, int M,
                                          float (&red)[kGemvWarps][RG][NT][4][32]) {
  constexpr int MT = 8 * NT;  // tokens per pass over the rows
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, c = lane & 3;
  const T* w_base = static_cast<const T*>(p.w) + std::int64_t(e) * p.w_expert_stride;
  const T* a_base = static_cast<const T*>(p.a);
  const T* wrow[RG][2];
  bool wvalid[RG][2];
#pragma unroll
  for (int r = 0; r < RG; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      int row = 0;
      wvalid[r][h] = gemv_row(p, blk * RG + r, g + 8 * h, row);
      wrow[r][h] = w_base + std::int64_t(row) * p.ldw;
    }
  const int chunks = (p.kdim + 63) / 64;

  for (int m0 = 0; m0 < M; m0 += MT) {
    const T* arow[NT];
    bool avalid[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const int n = m0 + j * 8 + g;
      avalid[j] = n < M;
      arow[j] = a_base + std::int64_t(avalid[j] ? list[n] / p.a_div : 0) * p.lda;
    }
    float acc[RG][NT][4];
#pragma unroll
    for (int r = 0; r < RG; ++r)
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) acc[r][j][v] = 0.0f;

    for (int kc0 = warp; kc0 < chunks; kc0 += kGemvWarps * kGemvUnroll) {
      uint4 wv[kGemvUnroll][RG][2][2], xv[kGemvUnroll][NT][2];
      gemv_load_chunks<T, NT, RG, A>(p, kc0, chunks, c, wrow, wvalid, arow, avalid, wv, xv);
      gemv_mma_chunks<T, NT, RG>(wv, xv, acc);
    }

    // ---- sum the warps' K slices in warp order, then the epilogue ---------------------------------
#pragma unroll
    for (int r = 0; r < RG; ++r)
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) red[warp][r][j][v][lane] = acc[r][j][v];
    __syncthreads();
    // One thread per (r, j, v, lane) value: RG * NT * 128 values over 128 threads.
    for (int idx = tid; idx < RG * NT * 128; idx += kGemvThreads) {
      const int ln = idx & 31, v = (idx >> 5) & 3, j = (idx >> 7) % NT, r = (idx >> 7) / NT;
      float s = red[0][r][j][v][ln];
      for (int w = 1; w < kGemvWarps; ++w) s += red[w][r][j][v][ln];
      red[0][r][j][v][ln] = s;
    }
    __syncthreads();
    if (warp == 0) gemv_epilogue<T, NT, RG>(p, e, blk, list, m0, M, red[0]);
    __syncthreads();  // red is rewritten by the next pass
  }
}

// Grid: x = blocks of RG 16-row groups of one expert's weights, y = hit-expert slot (min(E, T*K)).
template <class T, class Id, int NT, int RG>
__device__ __forceinline__ void fused_gemv_body(const GemvParams& p) {
  __shared__ int expert_of[kGemvMaxPairs];
  __shared__ int list[kGemvMaxPairs];
  __shared__ unsigned char hit[kMaxExperts];
  __shared__ int warp_count[kGemvWarps];
  __shared__ int chosen;
  __shared__ float red[kGemvWarps][RG][NT][4][32];

  const int N = p.tokens * p.top_k, E = p.experts;
  // ---- which expert: the blockIdx.y-th hit expert in id order, and its pairs in pair order ----
  if (threadIdx.x == 0) chosen = E;
  gemv_mark_pairs(static_cast<const Id*>(p.ids), p.id_stride, p.top_k, E, N, expert_of, hit);
  block_compact(
      E, [&](int e) { return hit[e] != 0; },
      [&](int pos, int e) {
        if (pos == int(blockIdx.y)) chosen = e;
      },
      warp_count);
  const int e = chosen;
  if (e >= E) return;  // fewer hit experts than slots (uniform over the CTA)
  const int M = gemv_pair_list(expert_of, N, e, list, warp_count);
  gemv_unit<T, NT, RG, ARows::read_only>(p, e, int(blockIdx.x), list, M, red);
}

template <class T, class Id, int NT, int RG>
__global__ void __launch_bounds__(kGemvThreads) fused_gemv_kernel(const GemvParams p) {
  fused_gemv_body<T, Id, NT, RG>(p);
}

// nt=1 rg=1 held to 10 CTAs per SM (48 registers instead of 56), so that decode's 1280 GEMV1 CTAs
// of a Solar-Open step (8 experts x 160 row groups) run as one wave of 1320 slots instead of 1188
// and a tail of 92 CTAs streaming alone (ncu: 1.08 waves at 72% of DRAM peak, against 89% at
// T = 16). The other instances keep the plain bound: naming a minimum of 1 CTA lets ptxas take
// far more registers (nt=2 rg=1: 72 -> 128) and lose occupancy.
template <class T, class Id>
__global__ void __launch_bounds__(kGemvThreads, 10) fused_gemv_kernel_10(const GemvParams p) {
  fused_gemv_body<T, Id, 1, 1>(p);
}

// 16-row groups of one expert's weights that the launch covers.
__host__ __device__ inline int gemv_groups(const GemvParams& p) {
  if (p.epilogue == Epilogue::gate_concatenated || p.epilogue == Epilogue::gate_interleaved)
    return (p.inter + 7) / 8;
  return (p.n_weights + 15) / 16;
}

template <class T, class Id, int NT, int RG>
cudaError_t launch_fused_gemv(const GemvParams& p, cudaStream_t stream) {
  const int N = p.tokens * p.top_k;
  if (N == 0) return cudaSuccess;
  if (N > kGemvMaxPairs || p.experts > kMaxExperts || p.kdim % 8 != 0) return cudaErrorInvalidValue;
  const int slots = N < p.experts ? N : p.experts;
  const int blocks = (gemv_groups(p) + RG - 1) / RG;
  const dim3 grid{unsigned(blocks), unsigned(slots)};
  if constexpr (NT == 1 && RG == 1) fused_gemv_kernel_10<T, Id><<<grid, kGemvThreads, 0, stream>>>(p);
  else fused_gemv_kernel<T, Id, NT, RG><<<grid, kGemvThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// out[t] = sum_k w[t,k] * y[t*K + k] over the pairs with a valid expert, in k order (the grouped
// combine's order, indexed by pair instead of through the permutation). Four columns per thread.
template <class T, class W, class Id>
__global__ void __launch_bounds__(256)
    fused_combine_kernel(const T* __restrict__ y, int H, const Id* __restrict__ ids, std::int64_t id_stride, int K,
                         int E, const W* __restrict__ w, std::int64_t w_stride, T* __restrict__ out,
                         std::int64_t out_stride) {
  __shared__ float weight[kMaxTopK];
  __shared__ bool valid[kMaxTopK];
  const std::int64_t t = blockIdx.x;
  if (threadIdx.x < K) {
    valid[threadIdx.x] = expert_or_none(ids[t * id_stride + threadIdx.x], E) < E;
    weight[threadIdx.x] = to_f32(w[t * w_stride + threadIdx.x]);
  }
  __syncthreads();
  const int c = (blockIdx.y * blockDim.x + threadIdx.x) * 4;
  if (c >= H) return;
  const Cols<4> s = combine_cols<T, 4, false>(
      K, [&](int k) { return valid[k]; }, [&](int k) { return weight[k]; },
      [&](int k) { return y + (t * K + k) * H + c; });
  store_cols<T, 4, false>(out + t * out_stride + c, s);
}

// Needs H % 4 == 0 (the gemv path has H % 8 == 0).
template <class T, class W, class Id>
cudaError_t launch_fused_combine(const T* y, int H, const Id* ids, std::int64_t id_stride, int T_, int K, int E,
                                 const W* w, std::int64_t w_stride, T* out, std::int64_t out_stride,
                                 cudaStream_t stream) {
  if (T_ == 0) return cudaSuccess;
  if (K > kMaxTopK || H % 4 != 0) return cudaErrorInvalidValue;
  const int threads = 256;
  const int col_blocks = (H / 4 + threads - 1) / threads;
  fused_combine_kernel<T, W, Id><<<dim3(unsigned(T_), unsigned(col_blocks)), threads, 0, stream>>>(
      y, H, ids, id_stride, K, E, w, w_stride, out, out_stride);
  return cudaGetLastError();
}

// ================================================================================================
// One launch per decode step (plan "gemv1k"): GEMV1, GEMV2 and the combine in one persistent grid,
// so the step pays one launch, one routing prologue per CTA and one tail instead of three.
//
// Work units, numbered: first every GEMV1 unit (hit-expert slot s, row block b of the gate_up
// rows; slot-major), then every GEMV2 unit (slot s, row block b of the down rows). Unit u runs on
// CTA u % grid and each CTA runs its units in increasing order: a static schedule, no work
// claiming. A GEMV2 unit of slot s waits until slot_done[s] counts all GEMV1 units of slot s; it
// issues its first weight loads before it waits (the down rows do not depend on h).
// No deadlock: the grid is at most the co-resident CTA count and the launch is cooperative (all
// CTAs run at once or the launch fails), and every GEMV1 unit precedes every GEMV2 unit in every
// CTA's queue, so a CTA that waits has finished its own GEMV1 units, and each unit it waits for
// runs on a CTA that reaches it without waiting.
// The combine: cols_done[t][b] counts the GEMV2 units of row block b finished over token t's valid
// pairs; the unit that completes it (its atomicAdd returns the count - 1) sums token t's rows over
// those columns in k order (combine_cols, the three-kernel path's arithmetic: bitwise equal).
// Only counters are atomic; every floating-point sum has a fixed order.
// Memory order: writers (warp 0) __threadfence() after their h / y rows, then the count is
// published; a reader acquires the count (ld.acquire, or a fence after the atomicAdd), the CTA
// synchronises, and h / y are read from L2 (ld.global.cg), never through L1 or the non-coherent path.
// Tokens without a valid pair get zero rows from CTA t % grid. The counters must be zero at launch:
// the launcher clears them on the stream first (a memset node under graph capture).

struct Gemv1kParams {
  GemvParams up;    // GEMV1: gate_up -> h; its ids / tokens / top_k / experts are the routing
  GemvParams down;  // GEMV2: down -> y [T*K, H] (out, the activation dtype), n_weights = H
  bool ids_i64 = false;
  const void* weights = nullptr;  // top_k_weights [T, K]: fp32, or the activation dtype
  std::int64_t weight_stride = 0;
  bool weights_f32 = true;
  void* out = nullptr;  // [T, H] in the activation dtype
  std::int64_t out_stride = 0;
  int* slot_done = nullptr;  // [min(E, T*K)] GEMV1 units finished per hit-expert slot
  int* cols_done = nullptr;  // [T, GEMV2 units per expert] GEMV2 units finished per token and block
};

__device__ __forceinline__ int ld_acquire_gpu(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Before a GEMV2 unit of a slot: returns once all `units` GEMV1 units of the slot are counted in
// done (acquire, then the CTA synchronises). If they are not yet, the unit's first weight lines are
// requested into L2 before thread 0 spins, so that the wait does not stall this CTA's stream.
template <class T, int RG>
__device__ __forceinline__ void gemv1k_wait_for_h(const GemvParams& down, int e, int blk, const int* done, int units,
                                                  int& flag) {
  if (threadIdx.x == 0) flag = ld_acquire_gpu(done) >= units;
  __syncthreads();
  if (flag) return;  // the common case once the GEMV1 units are well ahead
  gemv_prefetch_l2<T, RG>(down, e, blk);
  if (threadIdx.x == 0)
    while (ld_acquire_gpu(done) < units) __nanosleep(64);
  __syncthreads();
}

// Valid pairs of token t (each one's GEMV2 units count towards the token's blocks).
__device__ __forceinline__ int token_pairs(const int* expert_of, int t, int K, int E) {
  int n = 0;
  for (int k = 0; k < K; ++k) n += expert_of[t * K + k] < E;
  return n;
}

// out[t] = 0 for the tokens of this CTA (t % grid) that no valid pair reaches.
template <class T>
__device__ __forceinline__ void gemv1k_zero_unrouted(const Gemv1kParams& p, const int* expert_of, int T_, int K, int E,
                                                     int H) {
  for (int t = blockIdx.x; t < T_; t += gridDim.x) {
    if (token_pairs(expert_of, t, K, E) != 0) continue;
    T* o = static_cast<T*>(p.out) + std::int64_t(t) * p.out_stride;
    for (int c = threadIdx.x * 4; c < H; c += kGemvThreads * 4) store_cols<T, 4, false>(o + c, Cols<4>{});
  }
}

// After a GEMV2 unit (slot's block blk, pairs in list): counts it for its tokens and sums the
// tokens it completes over the block's columns. Ends synchronised.
template <class T, int RG>
__device__ __forceinline__ void gemv1k_finish_down(const Gemv1kParams& p, int blk, int blocks, const int* list, int M,
                                                   const int* expert_of, unsigned short* ready, int& n_ready) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int K = p.up.top_k, E = p.up.experts, H = p.down.n_weights;
  if (warp == 0) {  // the warp that wrote this unit's y rows
    __threadfence();  // release: this lane's y rows before any count below
    __syncwarp();
    for (int n = lane; n < M; n += 32) {
      const int t = list[n] / K;
      if (atomicAdd(p.cols_done + std::int64_t(t) * blocks + blk, 1) == token_pairs(expert_of, t, K, E) - 1) {
        __threadfence();  // acquire: the rows the other units wrote for token t
        ready[atomicAdd(&n_ready, 1)] = static_cast<unsigned short>(t);
      }
    }
  }
  __syncthreads();
  const int c0 = blk * 16 * RG, c1 = min(H, c0 + 16 * RG), quads = (c1 - c0) / 4;
  const T* y = static_cast<const T*>(p.down.out);
  for (int it = tid; it < n_ready * quads; it += kGemvThreads) {
    const int t = ready[it / quads], c = c0 + 4 * (it % quads);
    const std::int64_t wrow = std::int64_t(t) * p.weight_stride;
    const Cols<4> s = combine_cols<T, 4, true>(
        K, [&](int k) { return expert_of[t * K + k] < E; },
        [&](int k) {
          return p.weights_f32 ? static_cast<const float*>(p.weights)[wrow + k]
                               : to_f32(static_cast<const T*>(p.weights)[wrow + k]);
        },
        [&](int k) { return y + (std::int64_t(t) * K + k) * p.down.ldo + c; });
    store_cols<T, 4, false>(static_cast<T*>(p.out) + std::int64_t(t) * p.out_stride + c, s);
  }
  __syncthreads();
  if (tid == 0) n_ready = 0;  // next used after the next unit's barriers
}

// 1D grid of at most the co-resident CTA count, cooperative launch; see above.
template <class T, int NT, int RG>
__global__ void __launch_bounds__(kGemvThreads) fused_gemv1k_kernel(const Gemv1kParams p) {
  __shared__ int expert_of[kGemvMaxPairs];
  __shared__ int list[kGemvMaxPairs];
  __shared__ unsigned char hit[kMaxExperts];
  __shared__ unsigned short slot_expert[kMaxExperts];
  __shared__ unsigned short ready[kGemvMaxPairs];
  __shared__ int warp_count[kGemvWarps];
  __shared__ int n_ready;
  __shared__ int flag;
  __shared__ float red[kGemvWarps][RG][NT][4][32];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int T_ = p.up.tokens, K = p.up.top_k, E = p.up.experts, N = T_ * K, H = p.down.n_weights;

  // ---- routing, once per CTA: every pair's expert, the hit experts in id order ----------------
  if (tid == 0) n_ready = 0;
  if (p.ids_i64)
    gemv_mark_pairs(static_cast<const std::int64_t*>(p.up.ids), p.up.id_stride, K, E, N, expert_of, hit);
  else
    gemv_mark_pairs(static_cast<const std::int32_t*>(p.up.ids), p.up.id_stride, K, E, N, expert_of, hit);
  const int n_hit = block_compact(
      E, [&](int e) { return hit[e] != 0; },
      [&](int pos, int e) { slot_expert[pos] = static_cast<unsigned short>(e); }, warp_count);
  gemv1k_zero_unrouted<T>(p, expert_of, T_, K, E, H);

  // ---- the units of this CTA --------------------------------------------------------------------
  const int b1 = (gemv_groups(p.up) + RG - 1) / RG, b2 = (gemv_groups(p.down) + RG - 1) / RG;
  const int u1 = n_hit * b1, units = u1 + n_hit * b2;
  int listed = -1, M = 0;  // the expert whose pairs are in list
  for (int u = blockIdx.x; u < units; u += gridDim.x) {
    const bool up = u < u1;
    const int v = up ? u : u - u1, per_slot = up ? b1 : b2;
    const int slot = v / per_slot, blk = v % per_slot;
    const int e = slot_expert[slot];
    if (e != listed) {  // list is free: the previous unit ended synchronised
      M = gemv_pair_list(expert_of, N, e, list, warp_count);
      listed = e;
    }
    if (up) {
      gemv_unit<T, NT, RG, ARows::read_only>(p.up, e, blk, list, M, red);
      if (warp == 0) {  // the warp that wrote this unit's h rows
        __threadfence();  // release: this lane's h rows before the count
        __syncwarp();
        if (lane == 0) atomicAdd(p.slot_done + slot, 1);
      }
    } else {
      gemv1k_wait_for_h<T, RG>(p.down, e, blk, p.slot_done + slot, b1, flag);
      gemv_unit<T, NT, RG, ARows::written_in_kernel>(p.down, e, blk, list, M, red);
      gemv1k_finish_down<T, RG>(p, blk, b2, list, M, expert_of, ready, n_ready);
    }
  }
}

// Counters the one-kernel path needs in the workspace (ints): slot_done for min(E, T*K) slots and
// cols_done for T tokens x the most GEMV2 blocks per expert (RG = 1: ceil(H / 16)).
inline std::size_t gemv1k_counter_ints(std::int64_t tokens, std::int64_t top_k, std::int64_t experts,
                                       std::int64_t hidden) {
  const std::int64_t n = tokens * top_k;
  return std::size_t((n < experts ? n : experts) + tokens * ((hidden + 15) / 16));
}

// CTAs of this instantiation that can be co-resident on the current device (= `device`): the
// largest grid whose spin-waits cannot deadlock. Computed once per device and instantiation.
template <class T, int NT, int RG>
cudaError_t gemv1k_resident_ctas(int device, int& ctas) {
  constexpr int kDevices = 64;
  static std::atomic<int> cached[kDevices];  // 0: not computed yet
  if (device < 0 || device >= kDevices) return cudaErrorInvalidDevice;
  ctas = cached[device].load(std::memory_order_relaxed);
  if (ctas > 0) return cudaSuccess;
  int per_sm = 0, sms = 0;
  cudaError_t err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fused_gemv1k_kernel<T, NT, RG>,
                                                                  kGemvThreads, 0);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  if (per_sm < 1 || sms < 1) return cudaErrorInvalidConfiguration;
  ctas = per_sm * sms;
  cached[device].store(ctas, std::memory_order_relaxed);
  return cudaSuccess;
}

// Clears the counters on the stream, then one cooperative launch. counters: counter_ints ints.
template <class T, int NT, int RG>
cudaError_t launch_fused_gemv1k(Gemv1kParams p, int device, int* counters, std::size_t counter_ints,
                                cudaStream_t stream) {
  const int T_ = p.up.tokens, K = p.up.top_k, E = p.up.experts, N = T_ * K, H = p.down.n_weights;
  if (N == 0) return cudaSuccess;
  if (N > kGemvMaxPairs || E > kMaxExperts || K > kMaxTopK || p.up.kdim % 8 != 0 || p.down.kdim % 8 != 0 ||
      H % 4 != 0 || p.down.epilogue != Epilogue::down)
    return cudaErrorInvalidValue;
  const int slots = N < E ? N : E;
  const int b1 = (gemv_groups(p.up) + RG - 1) / RG, b2 = (gemv_groups(p.down) + RG - 1) / RG;
  const std::size_t need = std::size_t(slots) + std::size_t(T_) * std::size_t(b2);
  if (counters == nullptr || counter_ints < need) return cudaErrorInvalidValue;
  p.slot_done = counters;
  p.cols_done = counters + slots;
  int ctas = 0;
  if (cudaError_t err = gemv1k_resident_ctas<T, NT, RG>(device, ctas); err != cudaSuccess) return err;
  const std::int64_t max_units = std::int64_t(slots) * (b1 + b2);
  const int grid = max_units < ctas ? int(max_units) : ctas;
  if (cudaError_t err = cudaMemsetAsync(counters, 0, need * sizeof(int), stream); err != cudaSuccess) return err;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeCooperative;  // all CTAs co-resident, or the launch fails: never a hang
  attr.val.cooperative = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(grid));
  cfg.blockDim = dim3(kGemvThreads);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, fused_gemv1k_kernel<T, NT, RG>, p);
}

}  // namespace moekit::cuda::kernels
