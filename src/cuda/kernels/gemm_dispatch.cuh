// moekit CUDA kernels: picks the grouped-GEMM instantiation for a dtype, weight layout, path and
// tile height. Tile heights are the host heuristic's choices (pipeline.cu), all with BN = 128
// weight rows and BK = 64; BM = 128 with [N, K] weights on compute capability 9.0 takes the wgmma
// kernel instead (gemm_wgmma.cuh).
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <type_traits>

#include "gemm_simt.cuh"
#include "gemm_tc.cuh"
#include "gemm_wgmma.cuh"
#include "gemm_wgmma_tma.cuh"

namespace moekit::cuda::kernels {

// Which wgmma kernel runs the GEMM on the current device: 0 = none (compute capability other than
// 9.0, where the sm_90a cubin does not load, or MOEKIT_CUDA_WGMMA=0), else the variant 1..5.
// Default (measured, docs/perf-notes.md v8 and v10): variant 3, except variant 5 for the down
// GEMM once experts average kTmaDownRows rows (2 tiles: at solar T = 8192 its GEMM2 took 1.43 ms
// against variant 3's 1.66; the whole call with it won at 256 rows per expert on all three
// presets, by 0.6-3%, and lost at 128, by 3-8%) and for gate_up from kTmaGateUpRows (since the
// epilogue's paired stores, ncu at solar T = 8192, 512 rows: 2.79 ms against 2.99; at 128 rows
// 1.46 against 1.11). MOEKIT_CUDA_WGMMA=N picks N
// for both GEMMs, =N,M N for gate_up and M for down: A/B knobs for the benchmark, read on every
// call like MOEKIT_CUDA_TILE_M (anything else is ignored).
inline constexpr int kTmaDownRows = 256;
inline constexpr int kTmaGateUpRows = 512;
inline int wgmma_variant(const GroupedGemmParams& p) {
  const bool down = p.epilogue == Epilogue::down;
  int variant = p.mean_rows >= (down ? kTmaDownRows : kTmaGateUpRows) ? 5 : 3;
  auto digit = [](char c) { return c >= '0' && c <= '5'; };
  if (const char* env = std::getenv("MOEKIT_CUDA_WGMMA"); env && digit(env[0])) {
    if (env[1] == 0) variant = env[0] - '0';
    else if (env[1] == ',' && digit(env[2]) && env[3] == 0) variant = (down ? env[2] : env[0]) - '0';
  }
  if (variant == 0) return 0;
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) return 0;
  return major == 9 && minor == 0 ? variant : 0;
}

template <class T>
cudaError_t launch_grouped_gemm_wgmma(const GroupedGemmParams& p, int variant, int tile_slots, cudaStream_t stream) {
  switch (variant) {
    case 1: return launch_grouped_gemm_wgmma_cfg<T, WgmmaV1>(p, tile_slots, stream);
    case 2: return launch_grouped_gemm_wgmma_cfg<T, WgmmaV2>(p, tile_slots, stream);
    case 3: return launch_grouped_gemm_wgmma_cfg<T, WgmmaV3>(p, tile_slots, stream);
    case 4: return launch_grouped_gemm_wgmma_persistent<T, WgmmaV4>(p, tile_slots, stream);
    case 5: return launch_grouped_gemm_wgmma_tma<T, WgmmaV5>(p, tile_slots, stream);
    default: return cudaErrorInvalidValue;
  }
}

//                       BM   BN  BK  warps  stages  CTAs/SM
using TcConfig16 = TcConfig<16, 128, 64, 1, 4, 4, 3>;
using TcConfig32 = TcConfig<32, 128, 64, 1, 4, 4, 2>;
using TcConfig64 = TcConfig<64, 128, 64, 2, 2, 4, 2>;
using TcConfig128 = TcConfig<128, 128, 64, 2, 4, 3, 2>;

inline bool tc_tile_rows_supported(int bm) { return bm == 16 || bm == 32 || bm == 64 || bm == 128; }

template <class T>
cudaError_t launch_grouped_gemm(const GroupedGemmParams& p, bool kn, bool tensor_cores, int bm, int slots,
                                cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, float>) {
    if (tensor_cores) {
      switch (bm) {
        case 16: return kn ? launch_grouped_gemm_tc<T, TcConfig16, true>(p, slots, stream)
                           : launch_grouped_gemm_tc<T, TcConfig16, false>(p, slots, stream);
        case 32: return kn ? launch_grouped_gemm_tc<T, TcConfig32, true>(p, slots, stream)
                           : launch_grouped_gemm_tc<T, TcConfig32, false>(p, slots, stream);
        case 64: return kn ? launch_grouped_gemm_tc<T, TcConfig64, true>(p, slots, stream)
                           : launch_grouped_gemm_tc<T, TcConfig64, false>(p, slots, stream);
        case 128:
          if (kn) return launch_grouped_gemm_tc<T, TcConfig128, true>(p, slots, stream);
          // Hopper (9.0): wgmma (variant: wgmma_variant()); elsewhere the mma.sync kernel.
          if (const int v = wgmma_variant(p); v != 0) return launch_grouped_gemm_wgmma<T>(p, v, slots, stream);
          return launch_grouped_gemm_tc<T, TcConfig128, false>(p, slots, stream);
        default: return cudaErrorInvalidValue;
      }
    }
  } else {
    if (tensor_cores) return cudaErrorInvalidValue;  // f32 never goes through tf32
  }
  if (bm != kSimtBM) return cudaErrorInvalidValue;
  return kn ? launch_grouped_gemm_simt<T, true>(p, slots, stream) : launch_grouped_gemm_simt<T, false>(p, slots, stream);
}

}  // namespace moekit::cuda::kernels
