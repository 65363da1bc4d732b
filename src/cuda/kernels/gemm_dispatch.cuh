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
// 9.0, where the sm_90a cubin does not load, or MOEKIT_CUDA_WGMMA=0), else the variant 1..6.
// Default (measured, docs/perf-notes.md v8, v10 and v11): variant 3, except variant 6 (pairs of
// CTAs sharing each weight slice) for both GEMMs once experts average kClusterRows rows. Run 42,
// whole call, MOEKIT_CUDA_WGMMA=6,6 against the earlier default (3 or 5 per GEMM): solar 256 rows
// 2.581 ms against 2.933, 512 rows 4.818 against 5.261; mixtral 256 rows 1.549 against 1.716,
// 1024 rows 4.903 against 5.602; qwen3 512 rows 1.79 against 1.774 (a loss of 1%). Run 43, 128
// rows, 6,6 against 3,3: solar 1.845 against 1.896, mixtral 1.207 against 1.226, qwen3 0.6976
// against 0.6861 (a loss of 1.7%); at 64 rows all variants took the same. Variant 5 (one CTA)
// stays as a knob: variant 6 with the pairing switched off. MOEKIT_CUDA_WGMMA=N picks N for
// both GEMMs, =N,M N for gate_up and M for down: A/B knobs for the benchmark, read on every call
// like MOEKIT_CUDA_TILE_M (anything else is ignored).
inline constexpr int kClusterRows = 128;
inline int wgmma_variant(const GroupedGemmParams& p) {
  const bool down = p.epilogue == Epilogue::down;
  int variant = p.mean_rows >= kClusterRows ? 6 : 3;
  auto digit = [](char c) { return c >= '0' && c <= '6'; };
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
    case 6: return launch_grouped_gemm_wgmma_tma<T, WgmmaV6>(p, tile_slots, stream);
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
