// moekit CUDA kernels: variant 5 of the Hopper grouped GEMM (sm_90a): persistent, warp-specialised,
// 128 x 256 tiles computed by two cooperating consumer warpgroups, the weights fetched by TMA.
//
// Why this shape: variant 3 (128 x 128 tiles, 2 CTAs per SM) ran at 81% of L2 throughput and ~440
// TFLOP/s at solar T = 8192 (ncu): a 128 x 128 x 64 k-tile moves 32 KB for 2.1 MFLOP, more bytes
// per FLOP than L2 can serve to every SM at the tensor cores' rate. A 128 x 256 tile moves 48 KB
// for 4.2 MFLOP (1.33x fewer bytes per FLOP), but its 128 accumulators per thread allow one CTA per
// SM, so the pipeline fill and the epilogue must overlap other work: the CTA is persistent and a
// producer warpgroup runs ahead into the next work item while the consumers store the last.
// Measured (docs/perf-notes.md v8): faster than variant 3 for the down GEMM when experts have
// several tiles (A = the intermediate, contiguous and in L2), slower for gate_up (A = gathered
// rows of x, which one CTA per SM cannot wait for with 4 stages); gemm_dispatch.cuh chooses.
//
// grid = min(SMs, work items), 384 threads:
//   warpgroup 0 (producer, setmaxnreg.dec): for each k-tile of each of the CTA's items, waits
//     empty[s]; thread 0 arms full[s] with the weight bytes and issues the TMA copy of the
//     stage's 256 weight rows x 64 k (128B swizzle: the layout the wgmma descriptors expect);
//     all 128 threads issue the 16-byte cp.async copies of the 128 gathered A rows (TMA cannot
//     gather rows on sm_90) and arrive on full[s] when theirs land (.noinc).
//   warpgroups 1 and 2 (consumers): both work on every item, consumer c on rows [64c, 64c + 64)
//     with wgmma.m64n256k16 over all 256 columns; each warp releases a stage (empty[s], one
//     arrival per warp) once the wgmma group that read it has completed. A consumer whose 64 rows
//     are all past the tile issues no wgmma but still waits and releases each stage.
// Weights as TMA sees them: concatenated gate [E, 2, I, K] (box 64 k x 128 rows x 1 x 1, one box
// for the slice's 128 gate rows then one for the matching 128 up rows: wgmma_store_rows'
// kGateHalves), otherwise [E, N, K] (box 64 x 256 x 1). Rows and k past the extents arrive as
// zeros, and the whole box always counts towards the transaction bytes.
//
// Items, order and parity rules are variant 4's (gemm_wgmma.cuh): items in item_tile's raster,
// CTA b takes b, b + grid, ...; every thread walks the same item list, so the k-tiles filled and
// consumed match one to one; each waiter walks its rounds in order, so a parity wait never sees a
// stale phase. No turn barrier: both consumers consume every k-tile.
// Per output element the instruction (m64n256k16), the k order and the operands are variant 1's,
// so the results are bitwise variant 1's (tests/cuda/wgmma_test.cpp).
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "gemm_wgmma.cuh"

namespace moekit::cuda::kernels {

template <int STAGES_>
struct WgmmaTmaConfig {
  static constexpr int BM = 128, BN = 256, BK = 64, STAGES = STAGES_;
  static constexpr int THREADS = 384;  // producer warpgroup + two consumer warpgroups
  static constexpr int PRODUCER_REGS = 56, CONSUMER_REGS = 224;
  static constexpr int A_STAGE = BM * BK, B_STAGE = BN * BK;  // elements
  static constexpr unsigned B_STAGE_BYTES = B_STAGE * 2;
  static constexpr int TILE_BYTES = STAGES * (A_STAGE + B_STAGE) * 2;
  static constexpr int BARRIER_BYTES = 2 * STAGES * 8;  // full[], empty[]
  static constexpr int SMEM_BYTES = TILE_BYTES + BARRIER_BYTES + 1024;  // + alignment slack
  static constexpr unsigned FULL_ARRIVALS = 128 + 1;  // the producer's cp.async arrivals + the TMA arming
  static constexpr unsigned EMPTY_ARRIVALS = 8;       // one per consumer warp
  static_assert(SMEM_BYTES <= 227 * 1024, "one CTA per SM");
  static_assert(PRODUCER_REGS * 128 + CONSUMER_REGS * 256 <= 168 * THREADS, "register budget");
  static_assert(PRODUCER_REGS % 8 == 0 && CONSUMER_REGS % 8 == 0, "setmaxnreg takes multiples of 8");
};
using WgmmaV5 = WgmmaTmaConfig<4>;

#ifdef MOEKIT_WGMMA_DEVICE
__device__ __forceinline__ void mbar_arrive_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void tma_load_3d(unsigned dst, const CUtensorMap* map, unsigned bar, int c0, int c1,
                                            int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}
__device__ __forceinline__ void tma_load_4d(unsigned dst, const CUtensorMap* map, unsigned bar, int c0, int c1,
                                            int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, "
      "%6}], [%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// One consumer's main loop: kActive = its 64 rows hold data (else it only passes the stages on).
// The item's k-tile kt is the CTA's k-tile it0 + kt.
template <class T, class Cfg, bool kActive>
__device__ __forceinline__ void tma_consumer_mainloop(float (&acc)[Cfg::BN / 2], unsigned a_base, unsigned b_base,
                                                      unsigned full0, unsigned empty0, int it0, int ktiles,
                                                      bool lane0) {
  constexpr int STAGES = Cfg::STAGES, BK = Cfg::BK, BN = Cfg::BN;
  int s = it0 % STAGES;
  unsigned phase = unsigned(it0 / STAGES) & 1u;
  int prev = -1;
  for (int kt = 0; kt < ktiles; ++kt) {
    mbar_wait_guarded(full0 + 8 * s, phase);
    if constexpr (kActive) {
      fence_proxy_async();  // the cp.async (generic proxy) A rows, read by wgmma (async proxy)
      wgmma_ktile<T, BN, BK>(acc, a_base + unsigned(s * Cfg::A_STAGE * 2), b_base + unsigned(s * Cfg::B_STAGE * 2));
      wgmma_wait<1>();  // the previous k-tile's group is done: its stage may be refilled
      if (prev >= 0 && lane0) mbar_arrive(empty0 + 8 * prev);
      prev = s;
    } else {
      if (lane0) mbar_arrive(empty0 + 8 * s);
    }
    if (++s == STAGES) s = 0, phase ^= 1u;
  }
  if constexpr (kActive) {
    wgmma_wait<0>();
    if (prev >= 0 && lane0) mbar_arrive(empty0 + 8 * prev);
  }
}
#endif

template <class T, class Cfg>
__global__ void __launch_bounds__(Cfg::THREADS, 1)
    grouped_gemm_wgmma_tma_kernel(const GroupedGemmParams p, const __grid_constant__ CUtensorMap b_map) {
#ifdef MOEKIT_WGMMA_DEVICE
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, STAGES = Cfg::STAGES;
  extern __shared__ __align__(1024) unsigned char wgmma_smem[];
  const unsigned raw_addr = smem_u32(wgmma_smem);
  unsigned char* const smem = wgmma_smem + ((1024 - (raw_addr & 1023)) & 1023);
  T* const sA = reinterpret_cast<T*>(smem);
  T* const sB = sA + STAGES * Cfg::A_STAGE;
  const unsigned full0 = smem_u32(smem + Cfg::TILE_BYTES);  // full[s] at full0 + 8 s
  const unsigned empty0 = full0 + 8 * STAGES;               // empty[s] at empty0 + 8 s

  const int tid = threadIdx.x, lane = tid & 31;
  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(full0 + 8 * s, Cfg::FULL_ARRIVALS);
      mbar_init(empty0 + 8 * s, Cfg::EMPTY_ARRIVALS);
    }
    fence_mbarrier_init();  // visible to the TMA unit's complete_tx
  }
  __syncthreads();  // the last CTA barrier

  const int ntiles = p.num_tiles ? *p.num_tiles : p.tile_slots;
  const int total = ntiles * p.n_blocks;
  const int ktiles = (p.kdim + BK - 1) / BK;
  const bool gate_halves = p.epilogue == Epilogue::gate_concatenated;
  const int role = __shfl_sync(0xffffffffu, tid >> 7, 0);

  if (role == 0) {
    // ---- producer ----
    setmaxnreg_dec<Cfg::PRODUCER_REGS>();
    int s = 0;
    unsigned phase = 0;
    for (int w = blockIdx.x; w < total; w += gridDim.x) {
      Tile tile;
      int n_block;
      if (!persistent_work(p, w, ntiles, tile, n_block)) continue;
      WgmmaStageLoader<T, BM, BN, 128, false> loader;
      loader.init(p, tile, n_block, tid);
      for (int kt = 0; kt < ktiles; ++kt) {
        mbar_wait_guarded(empty0 + 8 * s, phase ^ 1u);
        const unsigned full = full0 + 8 * s;
        if (tid == 0) {
          mbar_arrive_expect_tx(full, Cfg::B_STAGE_BYTES);
          const unsigned b_dst = smem_u32(sB + s * Cfg::B_STAGE);
          if (gate_halves) {
            tma_load_4d(b_dst, &b_map, full, kt * BK, n_block * (BN / 2), 0, tile.expert);
            tma_load_4d(b_dst + Cfg::B_STAGE_BYTES / 2, &b_map, full, kt * BK, n_block * (BN / 2), 1, tile.expert);
          } else {
            tma_load_3d(b_dst, &b_map, full, kt * BK, n_block * BN, tile.expert);
          }
        }
        loader.load(p, sA + s * Cfg::A_STAGE, nullptr, kt);  // A only: no weight rows
        cp_async_mbar_arrive(full);
        if (++s == STAGES) s = 0, phase ^= 1u;
      }
    }
    cp_async_wait_all();  // leave no copy in flight behind this thread
    return;
  }

  // ---- consumers ----
  setmaxnreg_inc<Cfg::CONSUMER_REGS>();
  const int c = role - 1;  // rows [64 c, 64 c + 64) of every tile
  const int warp_in_wg = (tid >> 5) & 3;
  const unsigned a_base = smem_u32(sA) + unsigned(c * 64 * BK * 2), b_base = smem_u32(sB);
  const bool lane0 = lane == 0;
  float acc[BN / 2];
  int it0 = 0;  // the CTA's k-tiles before this item
  for (int w = blockIdx.x; w < total; w += gridDim.x) {
    Tile tile;
    int n_block;
    if (!persistent_work(p, w, ntiles, tile, n_block)) continue;
    const bool active = __shfl_sync(0xffffffffu, c * 64 < tile.rows ? 1 : 0, 0) != 0;
    if (!active) {
      tma_consumer_mainloop<T, Cfg, false>(acc, a_base, b_base, full0, empty0, it0, ktiles, lane0);
      it0 += ktiles;
      continue;
    }
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
    tma_consumer_mainloop<T, Cfg, true>(acc, a_base, b_base, full0, empty0, it0, ktiles, lane0);
    it0 += ktiles;
    wgmma_fence_operands(acc);
    if (gate_halves) wgmma_store_rows<T, BN, true>(p, tile, n_block, acc, c * 64 + warp_in_wg * 16, lane);
    else wgmma_store_rows<T, BN, false>(p, tile, n_block, acc, c * 64 + warp_in_wg * 16, lane);
  }
#endif
}

// ---- host: the weights' tensor map ----

// cuTensorMapEncodeTiled from the driver through the runtime (no link against libcuda); null
// when the driver does not have it.
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found) ==
            cudaSuccess &&
        found == cudaDriverEntryPointSuccess)
      fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  });
  return fn;
}

// The [N, K] weights of all experts as variant 5 reads them (see the top of this file).
template <class T, class Cfg>
cudaError_t encode_weight_map(const GroupedGemmParams& p, CUtensorMap& map) {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "bf16 or f16 weights");
  const auto encode = tensor_map_encoder();
  if (encode == nullptr || p.experts <= 0 || p.kdim <= 0 || p.n_weights <= 0) return cudaErrorInvalidValue;
  const CUtensorMapDataType type =
      std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  constexpr cuuint64_t elem = 2;
  const cuuint32_t unit[4] = {1, 1, 1, 1};
  CUresult r;
  if (p.epilogue == Epilogue::gate_concatenated) {
    const cuuint64_t dims[4] = {cuuint64_t(p.kdim), cuuint64_t(p.inter), 2, cuuint64_t(p.experts)};
    const cuuint64_t strides[3] = {cuuint64_t(p.ldb) * elem, cuuint64_t(p.inter) * cuuint64_t(p.ldb) * elem,
                                   cuuint64_t(p.b_expert_stride) * elem};
    const cuuint32_t box[4] = {Cfg::BK, Cfg::BN / 2, 1, 1};
    r = encode(&map, type, 4, const_cast<void*>(p.b), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  } else {
    const cuuint64_t dims[3] = {cuuint64_t(p.kdim), cuuint64_t(p.n_weights), cuuint64_t(p.experts)};
    const cuuint64_t strides[2] = {cuuint64_t(p.ldb) * elem, cuuint64_t(p.b_expert_stride) * elem};
    const cuuint32_t box[3] = {Cfg::BK, Cfg::BN, 1};
    r = encode(&map, type, 3, const_cast<void*>(p.b), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  }
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

template <class T, class Cfg>
cudaError_t launch_grouped_gemm_wgmma_tma(const GroupedGemmParams& p, int tile_slots, cudaStream_t stream) {
  auto kernel = grouped_gemm_wgmma_tma_kernel<T, Cfg>;
  GroupedGemmParams q;
  unsigned grid = 0;
  cudaError_t err = persistent_launch_shape<Cfg>(kernel, p, tile_slots, q, grid);
  if (err != cudaSuccess || grid == 0) return err;
  CUtensorMap map;
  if ((err = encode_weight_map<T, Cfg>(p, map)) != cudaSuccess) return err;
  kernel<<<grid, Cfg::THREADS, Cfg::SMEM_BYTES, stream>>>(q, map);
  return cudaGetLastError();
}

}  // namespace moekit::cuda::kernels
