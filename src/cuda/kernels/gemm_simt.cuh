// moekit CUDA kernels: the grouped GEMM in plain fp32 FMA, for f32 (which must match float64 to
// 1e-5, so no tf32) and for 16-bit shapes the tensor-core path cannot load in 16-byte chunks (H or I
// not a multiple of 8, unaligned rows). Same tile list, epilogues and parameters as gemm_tc.cuh; any
// layout, any size, scalar bounds-checked loads.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "activation.cuh"
#include "gemm_tc.cuh"
#include "types.cuh"

namespace moekit::cuda::kernels {

inline constexpr int kSimtBM = 32;  // rows per tile: the routing preparation's bm for this path
inline constexpr int kSimtBN = 32;  // outputs per tile (intermediates for GEMM1, columns for GEMM2)
inline constexpr int kSimtBK = 16;
inline constexpr int kSimtThreads = 256;

__device__ __forceinline__ bool simt_gated(Epilogue e) {
  return e == Epilogue::gate_concatenated || e == Epilogue::gate_interleaved;
}

// Weight row (or column) of part `part` (0 gate / plain, 1 up) of logical output o.
__device__ __forceinline__ int simt_weight(const GroupedGemmParams& p, int o, int part) {
  if (p.epilogue == Epilogue::gate_concatenated) return part ? p.inter + o : o;
  if (p.epilogue == Epilogue::gate_interleaved) return 2 * o + part;
  return o;
}

template <class T, bool kKN>
__global__ void __launch_bounds__(kSimtThreads) grouped_gemm_simt_kernel(const GroupedGemmParams p) {
  constexpr int BM = kSimtBM, BN = kSimtBN, BK = kSimtBK;
  __shared__ float sA[BK][BM + 1];
  __shared__ float sB[2][BK][BN + 1];

  const int ntiles = p.num_tiles ? *p.num_tiles : int(gridDim.x);
  if (int(blockIdx.x) >= ntiles) return;
  const Tile tile = p.tiles[blockIdx.x];
  if (tile.rows <= 0) return;
  const bool gated = simt_gated(p.epilogue);
  const int parts = gated ? 2 : 1;
  const int n_out = gated ? p.inter : p.n_weights;
  const int o0 = blockIdx.y * BN;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;

  const T* A = static_cast<const T*>(p.a);
  const T* B = static_cast<const T*>(p.b) + std::int64_t(tile.expert) * p.b_expert_stride;

  // Row sources of the two A elements this thread loads (fixed over K).
  std::int64_t a_off[2];
  bool a_ok[2];
  int a_k[2], a_r[2];
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int e = tid + j * kSimtThreads;
    a_r[j] = e / BK;
    a_k[j] = e % BK;
    a_ok[j] = a_r[j] < tile.rows;
    const int r = tile.row0 + (a_ok[j] ? a_r[j] : 0);
    a_off[j] = std::int64_t((p.a_rows ? p.a_rows[r] : r) / p.a_div) * p.lda;
  }

  float acc[2][2][2] = {};  // [row][output][part]
  for (int k0 = 0; k0 < p.kdim; k0 += BK) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int k = k0 + a_k[j];
      sA[a_k[j]][a_r[j]] = (a_ok[j] && k < p.kdim) ? to_f32(A[a_off[j] + k]) : 0.0f;
    }
    for (int part = 0; part < parts; ++part) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int e = tid + j * kSimtThreads;
        const int o_l = kKN ? e % BN : e / BK, k_l = kKN ? e / BN : e % BK;
        const int o = o0 + o_l, k = k0 + k_l;
        float v = 0.0f;
        if (o < n_out && k < p.kdim) {
          const std::int64_t w = simt_weight(p, o, part);
          v = to_f32(kKN ? B[std::int64_t(k) * p.ldb + w] : B[w * p.ldb + k]);
        }
        sB[part][k_l][o_l] = v;
      }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      const float a0 = sA[k][ty * 2], a1 = sA[k][ty * 2 + 1];
      for (int part = 0; part < parts; ++part) {
        const float b0 = sB[part][k][tx * 2], b1 = sB[part][k][tx * 2 + 1];
        acc[0][0][part] = fmaf(a0, b0, acc[0][0][part]);
        acc[0][1][part] = fmaf(a0, b1, acc[0][1][part]);
        acc[1][0][part] = fmaf(a1, b0, acc[1][0][part]);
        acc[1][1][part] = fmaf(a1, b1, acc[1][1][part]);
      }
    }
    __syncthreads();
  }

  const T* bias = p.bias ? static_cast<const T*>(p.bias) + std::int64_t(tile.expert) * p.n_weights : nullptr;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int lr = ty * 2 + r;
    if (lr >= tile.rows) continue;
    const std::int64_t row = tile.row0 + lr;
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int o = o0 + tx * 2 + c;
      if (o >= n_out) continue;
      float v = acc[r][c][0] + (bias ? to_f32(bias[simt_weight(p, o, 0)]) : 0.0f);
      if (gated) {
        const float u = acc[r][c][1] + (bias ? to_f32(bias[simt_weight(p, o, 1)]) : 0.0f);
        v = gate_value(v, u, p.act);
      } else if (p.epilogue != Epilogue::down) {
        v = act_value(v, p.act.act);
      }
      static_cast<T*>(p.out)[row * p.ldo + o] = from_f32<T>(v);
    }
  }
}

template <class T, bool kKN>
cudaError_t launch_grouped_gemm_simt(const GroupedGemmParams& p, int tile_slots, cudaStream_t stream) {
  if (tile_slots <= 0) return cudaSuccess;
  const bool gated = p.epilogue == Epilogue::gate_concatenated || p.epilogue == Epilogue::gate_interleaved;
  const int n_out = gated ? p.inter : p.n_weights;
  const dim3 grid(unsigned(tile_slots), unsigned((n_out + kSimtBN - 1) / kSimtBN));
  grouped_gemm_simt_kernel<T, kKN><<<grid, kSimtThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace moekit::cuda::kernels
