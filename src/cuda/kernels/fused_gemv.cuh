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
//   GEMV2: + bias -> y[pair, row] in fp32 (unweighted; the combine applies w in k order).
//
// Requirements (the host checks them): 16-bit dtype, [N, K] weights, K % 8 == 0, 16-byte aligned
// rows (weights, a), T*K <= kGemvMaxPairs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "activation.cuh"
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
  void* out = nullptr;         // h [T*K, ldo] (dtype) or y [T*K, ldo] (fp32)
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
          float* out = static_cast<float*>(p.out) + pair * p.ldo;
          const int r0 = u * 16 + g, r1 = r0 + 8;
          if (r0 < p.n_weights) out[r0] = lo + bias_at(r0);
          if (r1 < p.n_weights) out[r1] = hi + bias_at(r1);
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
__global__ void __launch_bounds__(kGemvThreads) fused_gemv_kernel(const GemvParams p) {
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

// 16-row groups of one expert's weights that the launch covers.
inline int gemv_groups(const GemvParams& p) {
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
  fused_gemv_kernel<T, Id, NT, RG><<<dim3(unsigned(blocks), unsigned(slots)), kGemvThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// Token t's weighted sum over its pairs, four columns: sum_k w_k * y_k in k order with one fma per
// term, pairs without a valid expert skipped (never multiplied by zero: a NaN weight on a sentinel
// must not leak in). The one arithmetic of both combines, so their outputs are bitwise equal.
template <class Valid, class Weight, class Load>
__device__ __forceinline__ float4 combine_quad(int K, Valid valid, Weight weight, Load load) {
  float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int k = 0; k < K; ++k) {
    if (!valid(k)) continue;
    const float4 v = load(k);
    const float wk = weight(k);
    s.x = fmaf(wk, v.x, s.x);
    s.y = fmaf(wk, v.y, s.y);
    s.z = fmaf(wk, v.z, s.z);
    s.w = fmaf(wk, v.w, s.w);
  }
  return s;
}

template <class T>
__device__ __forceinline__ void store_quad(T* o, float4 s) {
  o[0] = from_f32<T>(s.x);
  o[1] = from_f32<T>(s.y);
  o[2] = from_f32<T>(s.z);
  o[3] = from_f32<T>(s.w);
}

// out[t] = sum_k w[t,k] * y[t*K + k] over the pairs with a valid expert, in k order (the grouped
// combine's order, indexed by pair instead of through the permutation). Four columns per thread.
template <class T, class W, class Id>
__global__ void __launch_bounds__(256)
    fused_combine_kernel(const float* __restrict__ y, int H, const Id* __restrict__ ids, std::int64_t id_stride, int K,
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
  const float4 s = combine_quad(
      K, [&](int k) { return valid[k]; }, [&](int k) { return weight[k]; },
      [&](int k) { return *reinterpret_cast<const float4*>(y + (t * K + k) * H + c); });
  store_quad(out + t * out_stride + c, s);
}

// Needs H % 4 == 0 (the gemv path has H % 8 == 0).
template <class T, class W, class Id>
cudaError_t launch_fused_combine(const float* y, int H, const Id* ids, std::int64_t id_stride, int T_, int K, int E,
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

}  // namespace moekit::cuda::kernels
