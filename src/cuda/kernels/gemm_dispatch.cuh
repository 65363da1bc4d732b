// moekit CUDA kernels: picks the grouped-GEMM instantiation for a dtype, weight layout, path and
// tile height. Tile heights are the host heuristic's choices (pipeline.cu), all with BN = 128
// weight rows and BK = 64; BM = 128 with [N, K] weights on compute capability 9.0 takes the wgmma
// kernel instead (gemm_wgmma.cuh).
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "gemm_simt.cuh"
#include "gemm_tc.cuh"
#include "gemm_wgmma.cuh"

namespace moekit::cuda::kernels {

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
          if (const int v = wgmma_variant(); v != 0) return launch_grouped_gemm_wgmma<T>(p, v, slots, stream);
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
