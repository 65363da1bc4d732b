// moekit CUDA kernels: variants 5 and 6 of the Hopper grouped GEMM (sm_90a): persistent,
// warp-specialised, 128 x 256 tiles computed by two cooperating consumer warpgroups, the weights
// fetched by TMA; variant 6 runs pairs of CTAs that share the weights.
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
// Variant 6 = the same kernel run as clusters of 2 CTAs (CLUSTER = 2). ncu at solar T = 8192
// showed variant 5's gate_up reading 2.4x the weights from DRAM with L2 at 8.3 TB/s: the CTAs
// that read one weight slice (an expert's tiles, next to each other in item order) drift apart
// over a persistent run, and L2 turns over faster than that. A pair takes the neighbouring items
// 2q and 2q + 1; when they share expert and slice (the usual case), each CTA fetches one half of
// the stage's weights and multicasts it to both, and either CTA's producer refills a stage only
// after both CTAs' consumers have released it, so the pair stays in step. Measured (v11, ncu):
// DRAM reads 6.5 -> 3.7 GB, gate_up 2.72 -> 2.49 ms; most of the gain comes from the pairing
// itself (in another run: variant 5 3.10 ms, variant 6 2.62, variant 6 without multicast 2.69).
//
// grid = min(SMs, work items) (variant 6: 2 x the pairs that fit at once), 384 threads:
//   warpgroup 0 (producer, setmaxnreg.dec): for each k-tile of each of the CTA's items, waits
//     empty[s]; thread 0 arms full[s] with the weight bytes and issues the TMA copies of the
//     stage's 256 weight rows x 64 k, two boxes of 128 rows (variant 6 with a shared slice: one
//     box, multicast) (128B swizzle: the layout the wgmma descriptors expect);
//     all 128 threads issue the 16-byte cp.async copies of the 128 gathered A rows (TMA cannot
//     gather rows on sm_90) and arrive on full[s] when theirs land (.noinc).
//   warpgroups 1 and 2 (consumers): both work on every item, consumer c on rows [64c, 64c + 64)
//     with wgmma.m64n256k16 over all 256 columns; each warp releases a stage (empty[s], one
//     arrival per warp, variant 6: in both CTAs) once the wgmma group that read it has
//     completed. A consumer whose 64 rows are all past the tile issues no wgmma but still waits
//     and releases each stage. Then each consumer warp writes its 16 rows of outputs through its
//     own staging region in shared memory (wgmma_stage_rows) and starts its next item.
// Weights as TMA sees them: concatenated gate [E, 2, I, K] (box 64 k x 128 rows x 1 x 1, one box
// for the slice's 128 gate rows then one for the matching 128 up rows, so the epilogue pairs
// column block q with q + 16), otherwise [E, N, K] (box 64 x 128 x 1, two per stage). Rows and k
// past the extents arrive as zeros, and the whole box always counts towards the transaction
// bytes, also a box wholly past the weights (tests/cuda/wgmma_test.cpp has one).
//
// Items, order and parity rules are variant 4's (gemm_wgmma.cuh): items in item_tile's raster,
// CTA b takes b, b + grid, ... (variant 6: pair q of the cluster's walk, tma_step); every thread
// walks the same item list, so the k-tiles filled and consumed match one to one; each waiter
// walks its rounds in order, so a parity wait never sees a stale phase. No turn barrier: both
// consumers consume every k-tile. Variant 6: both CTAs of a pair walk the same steps with the
// same k-tile count (a rank with no item shadows the other's), so stage s of round r is the same
// k-tile step in both, which the cross-CTA empty[] arrivals and the multicast rely on.
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

// The staged epilogue's shared memory, one region per consumer warp: the warp's 16 tile rows x 128
// 16-bit output columns, row-major (a row's 256 bytes are read back as 16 chunks of 16 bytes by
// half a warp). Rows are 272 bytes apart inside each group of 8 (the 8 rows one stmatrix matrix
// writes then start on 8 different 16-byte bank groups: no bank conflict); the two groups are
// packed back to back (2160 bytes, a multiple of 16), which keeps all 8 regions within the
// shared-memory budget with 4 stages.
struct StagingLayout {
  static constexpr int ROW_BYTES = 256, ROW_STRIDE = ROW_BYTES + 16;
  static constexpr int GROUP_BYTES = 7 * ROW_STRIDE + ROW_BYTES;
  static constexpr int WARP_BYTES = 2 * GROUP_BYTES;
  __host__ __device__ static constexpr unsigned row_offset(int r) {
    return unsigned((r >> 3) * GROUP_BYTES + (r & 7) * ROW_STRIDE);
  }
};

// An item's output columns: the gated ones (gate_concatenated, gate_interleaved: BN / 2 of the
// I), else BN of the n_weights.
__host__ __device__ constexpr bool gated_epilogue(Epilogue e) {
  return e == Epilogue::gate_concatenated || e == Epilogue::gate_interleaved;
}

template <int STAGES_, int CLUSTER_>
struct WgmmaTmaConfig {
  static constexpr int BM = 128, BN = 256, BK = 64, STAGES = STAGES_, CLUSTER = CLUSTER_;
  static constexpr int THREADS = 384;  // producer warpgroup + two consumer warpgroups
  static constexpr int PRODUCER_REGS = 56, CONSUMER_REGS = 224;
  static constexpr int A_STAGE = BM * BK, B_STAGE = BN * BK;  // elements
  static constexpr unsigned B_STAGE_BYTES = B_STAGE * 2;
  static constexpr int TILE_BYTES = STAGES * (A_STAGE + B_STAGE) * 2;
  static constexpr int BARRIER_BYTES = 2 * STAGES * 8;  // full[], empty[]
  static constexpr int STAGING_BYTES = 8 * StagingLayout::WARP_BYTES;  // one region per consumer warp
  static constexpr int SMEM_BYTES = TILE_BYTES + BARRIER_BYTES + STAGING_BYTES + 1024;  // + alignment slack
  static constexpr unsigned FULL_ARRIVALS = 128 + 1;  // the producer's cp.async arrivals + the TMA arming
  static constexpr unsigned EMPTY_ARRIVALS = 8 * CLUSTER;  // one per consumer warp of each CTA of the cluster
  static_assert(CLUSTER == 1 || CLUSTER == 2, "a CTA alone or a pair");
  static_assert(SMEM_BYTES <= 227 * 1024, "one CTA per SM");
  static_assert(PRODUCER_REGS * 128 + CONSUMER_REGS * 256 <= 168 * THREADS, "register budget");
  static_assert(PRODUCER_REGS % 8 == 0 && CONSUMER_REGS % 8 == 0, "setmaxnreg takes multiples of 8");
};
using WgmmaV5 = WgmmaTmaConfig<4, 1>;
using WgmmaV6 = WgmmaTmaConfig<4, 2>;

#ifdef MOEKIT_WGMMA_DEVICE
__device__ __forceinline__ void mbar_arrive_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// mask = 0: this CTA's shared memory only; else .multicast::cluster to the CTAs of the mask, each
// at the same offsets of dst and bar.
__device__ __forceinline__ void tma_load_3d(unsigned dst, const CUtensorMap* map, unsigned bar, int c0, int c1,
                                            int c2, std::uint16_t mask) {
  if (mask == 0)
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
        "%5}], [%2];\n" ::"r"(dst),
        "l"(reinterpret_cast<std::uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
        : "memory");
  else
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], "
        "[%1, {%3, %4, %5}], [%2], %6;\n" ::"r"(dst),
        "l"(reinterpret_cast<std::uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "h"(mask)
        : "memory");
}
__device__ __forceinline__ void tma_load_4d(unsigned dst, const CUtensorMap* map, unsigned bar, int c0, int c1,
                                            int c2, int c3, std::uint16_t mask) {
  if (mask == 0)
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, "
        "%6}], [%2];\n" ::"r"(dst),
        "l"(reinterpret_cast<std::uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
        : "memory");
  else
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], "
        "[%1, {%3, %4, %5, %6}], [%2], %7;\n" ::"r"(dst),
        "l"(reinterpret_cast<std::uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "h"(mask)
        : "memory");
}

// ---- clusters (variant 6) ----
__device__ __forceinline__ unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
// The address of the same shared variable in CTA `rank` of the cluster (shared::cluster window).
__device__ __forceinline__ unsigned cluster_map(unsigned smem_addr, unsigned rank) {
  unsigned r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(smem_addr), "r"(rank));
  return r;
}
// An arrival on the peer's barrier, with the default .release.cta semantics: what it orders is
// this warp's completed wgmma reads of the stage before the peer's TMA overwrites it, as the
// local release does (CUTLASS's cluster barrier arrives the same way). .release.cluster made
// both GEMMs slower by a quarter (docs/perf-notes.md v11), presumably its cluster-scope fence on
// every k-tile's release.
__device__ __forceinline__ void mbar_arrive_remote(unsigned cluster_addr) {
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(cluster_addr) : "memory");
}
// Every thread of both CTAs: the barriers are initialised before the peer touches them (start),
// and no CTA leaves while the peer may still write its shared memory or arrive on it (end).
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
// What one CTA does with one step of its walk. Variant 5: item w. Variant 6: the cluster's pair q
// = items 2q (rank 0) and 2q + 1 (rank 1). When both items have the same expert and weight slice
// (the usual case: item_tile's raster puts an expert's tiles next to each other for each slice),
// the pair shares the weights: each CTA fetches one half and multicasts it to both. Otherwise each
// fetches its own. A rank whose item has nothing to do (an empty tile, or past the last item)
// shadows the other's (shared weights) and stores nothing, so both CTAs walk the same k-tiles in
// the same stages: the empty[] barriers count both CTAs' consumers.
struct TmaStep {
  Tile tile;
  int n_block;
  bool store;   // this CTA writes the tile's outputs
  bool shared;  // the weight slice is the peer's too
};
template <int CLUSTER>
__device__ __forceinline__ bool tma_step(const GroupedGemmParams& p, int step, int ntiles, unsigned rank,
                                         TmaStep& out) {
  if constexpr (CLUSTER == 1) {
    out.store = true;
    out.shared = false;
    return persistent_work(p, step, ntiles, out.tile, out.n_block);
  } else {
    Tile t0, t1;  // by name, not an array indexed by rank: that would live in local memory
    int n0 = 0, n1 = 0;
    const bool ok0 = persistent_work(p, 2 * step, ntiles, t0, n0);
    const bool ok1 = persistent_work(p, 2 * step + 1, ntiles, t1, n1);
    if (!ok0 && !ok1) return false;
    const bool take1 = rank ? ok1 : !ok0;
    out.tile = take1 ? t1 : t0;
    out.n_block = take1 ? n1 : n0;
    out.store = rank ? ok1 : ok0;
    out.shared = !ok0 || !ok1 || (t0.expert == t1.expert && n0 == n1);
    return true;
  }
}

// One consumer's main loop: kActive = its 64 rows hold data (else it only passes the stages on).
// The item's k-tile kt is the CTA's k-tile it0 + kt. peer_empty0: the peer CTA's empty[0]
// (variant 6; a stage is released in both CTAs, since either may refill it by multicast).
template <class T, class Cfg, bool kActive>
__device__ __forceinline__ void tma_consumer_mainloop(float (&acc)[Cfg::BN / 2], unsigned a_base, unsigned b_base,
                                                      unsigned full0, unsigned empty0, unsigned peer_empty0, int it0,
                                                      int ktiles, bool lane0) {
  constexpr int STAGES = Cfg::STAGES, BK = Cfg::BK, BN = Cfg::BN;
  auto release = [&](int stage) {
    if (!lane0) return;
    mbar_arrive(empty0 + 8 * stage);
    if constexpr (Cfg::CLUSTER == 2) mbar_arrive_remote(peer_empty0 + 8 * stage);
  };
  int s = it0 % STAGES;
  unsigned phase = unsigned(it0 / STAGES) & 1u;
  int prev = -1;
  for (int kt = 0; kt < ktiles; ++kt) {
    mbar_wait_guarded(full0 + 8 * s, phase);
    if constexpr (kActive) {
      fence_proxy_async();  // the cp.async (generic proxy) A rows, read by wgmma (async proxy)
      wgmma_ktile<T, BN, BK>(acc, a_base + unsigned(s * Cfg::A_STAGE * 2), b_base + unsigned(s * Cfg::B_STAGE * 2));
      wgmma_wait<1>();  // the previous k-tile's group is done: its stage may be refilled
      if (prev >= 0) release(prev);
      prev = s;
    } else {
      release(s);
    }
    if (++s == STAGES) s = 0, phase ^= 1u;
  }
  if constexpr (kActive) {
    wgmma_wait<0>();
    if (prev >= 0) release(prev);
  }
}

// ---- the staged epilogue ----
// A direct epilogue (wgmma_store_rows, the other wgmma kernels') stores each thread's column pairs
// from registers: 64 4-byte stores per thread, each warp instruction touching 8 rows, while both
// consumer warpgroups hold the tensor cores idle (with the epilogue switched off, solar T = 8192's
// down GEMM took 1.06 instead of 1.50 ms: docs/perf-notes.md v13). Here each warp packs its 16 rows
// into its staging region (stmatrix, one instruction per 16 x 16 block) and writes them out as
// whole 256-byte rows, 16 bytes per lane: 8 or 16 stores per thread instead of 64. The biases are
// added first, as one batch of loads. The values and their rounding are the direct epilogue's, so
// the outputs are bitwise equal (tests/cuda/wgmma_test.cpp). Handing the rows to the bulk-copy
// unit (cp.async.bulk) instead measured the same (v13).
__device__ __forceinline__ void stmatrix_x4(unsigned addr, unsigned r0, unsigned r1, unsigned r2, unsigned r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
               "r"(r2), "r"(r3)
               : "memory");
}
template <class T>
__device__ __forceinline__ void st_shared_16(unsigned addr, T v) {
  unsigned short bits;
  __builtin_memcpy(&bits, &v, sizeof(bits));
  asm volatile("st.shared.b16 [%0], %1;\n" ::"r"(addr), "h"(bits) : "memory");
}
__device__ __forceinline__ uint4 ld_shared_16B(unsigned addr) {
  uint4 v;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}

// The warp's rows [wm0, wm0 + 16) of the tile through its staging region, 128 output columns per
// pass: the gated epilogues in one pass, down and no_gate in two.
template <class T, int BN, Act kAct, Epilogue kEpi>
__device__ __forceinline__ void wgmma_stage_rows_act(const GroupedGemmParams& p, const Tile& tile, int n_block,
                                                     float (&acc)[BN / 2], int wm0, int lane, unsigned staging) {
  static_assert(BN == 256, "two 128-column passes, or 128 gated columns");
  constexpr bool kGated = gated_epilogue(kEpi);
  constexpr int PASSES = kGated ? 1 : 2;
  const int g = lane >> 2, t4 = lane & 3;
  const int limit = kGated ? p.inter : p.n_weights;  // output columns
  if (p.bias != nullptr) {
    // Each accumulator column's bias, added in place: one batch of loads, none in the chains below.
    const T* bias = static_cast<const T*>(p.bias) + std::int64_t(tile.expert) * p.n_weights;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int n = j * 8 + 2 * t4 + c;  // the accumulator column
        int w;                             // its weight row
        if constexpr (kEpi == Epilogue::gate_concatenated)  // the stage's gate rows, then its up rows
          w = (n < BN / 2 ? 0 : p.inter) + n_block * (BN / 2) + n % (BN / 2);
        else
          w = n_block * BN + n;
        const bool valid = kEpi == Epilogue::gate_concatenated ? n_block * (BN / 2) + n % (BN / 2) < p.inter
                                                               : w < p.n_weights;
        const float b = valid ? to_f32(bias[w]) : 0.0f;
        acc[4 * j + c] += b;
        acc[4 * j + 2 + c] += b;
      }
    }
  }
#pragma unroll
  for (int pass = 0; pass < PASSES; ++pass) {
    __syncwarp();  // the warp's earlier reads of the region are done
    const int col0 = kGated ? n_block * (BN / 2) : n_block * BN + pass * 128;
    if constexpr (kEpi == Epilogue::gate_interleaved) {
      // Column block j holds 4 (gate, up) pairs: one output per thread and row, 2-byte stores
      // (rows 272 bytes apart: the 8 rows of a store fall on 8 different bank groups).
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float v = gate_value<kAct>(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1], p.act);
          st_shared_16(staging + StagingLayout::row_offset(g + 8 * h) + unsigned(j * 4 + t4) * 2u, from_f32<T>(v));
        }
      }
    } else {
      // stmatrix_x4 writes four 8 x 8 matrices: (rows 0-7, block q), (rows 8-15, block q), (rows
      // 0-7, block q + 1), (rows 8-15, block q + 1); lane l gives row l % 8 of matrix l / 8.
      const unsigned lane_addr =
          staging + StagingLayout::row_offset((lane & 7) + 8 * ((lane >> 3) & 1)) + 16u * unsigned(lane >> 4);
#pragma unroll
      for (int q = 0; q < 16; q += 2) {
        unsigned r[4];
#pragma unroll
        for (int m = 0; m < 4; ++m) {
          const int b = q + (m >> 1), h = m & 1;  // output block, row half
          float v[2];
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            if constexpr (kEpi == Epilogue::gate_concatenated) {  // block b's gate, b + 16 its up
              v[c] = gate_value<kAct>(acc[4 * b + 2 * h + c], acc[4 * (b + 16) + 2 * h + c], p.act);
            } else {
              const float x = acc[4 * (16 * pass + b) + 2 * h + c];
              v[c] = kEpi == Epilogue::down ? x : act_value<kAct>(x);
            }
          }
          r[m] = pack_pair<T>(v[0], v[1]);
        }
        stmatrix_x4(lane_addr + 16u * unsigned(q), r[0], r[1], r[2], r[3]);
      }
    }
    __syncwarp();  // the warp's rows are staged
    // Out: 16-byte chunks, half a warp per 256-byte row, two rows per instruction.
    T* const out = static_cast<T*>(p.out) + (tile.row0 + wm0) * p.ldo + col0;
    const int chunk = lane & 15, col = col0 + chunk * 8;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int r = 2 * i + (lane >> 4);
      if (wm0 + r < tile.rows && col < limit)
        *reinterpret_cast<uint4*>(out + r * p.ldo + chunk * 8) =
            ld_shared_16B(staging + StagingLayout::row_offset(r) + unsigned(chunk) * 16u);
    }
  }
}

// The epilogue of a kernel instantiated for one activation (kAct; the down GEMM has none).
template <class T, int BN, Act kAct>
__device__ __forceinline__ void wgmma_stage_rows(const GroupedGemmParams& p, const Tile& tile, int n_block,
                                                 float (&acc)[BN / 2], int wm0, int lane, unsigned staging) {
  switch (p.epilogue) {
    case Epilogue::down:
      wgmma_stage_rows_act<T, BN, kAct, Epilogue::down>(p, tile, n_block, acc, wm0, lane, staging);
      break;
    case Epilogue::gate_concatenated:
      wgmma_stage_rows_act<T, BN, kAct, Epilogue::gate_concatenated>(p, tile, n_block, acc, wm0, lane, staging);
      break;
    case Epilogue::gate_interleaved:
      wgmma_stage_rows_act<T, BN, kAct, Epilogue::gate_interleaved>(p, tile, n_block, acc, wm0, lane, staging);
      break;
    default: wgmma_stage_rows_act<T, BN, kAct, Epilogue::no_gate>(p, tile, n_block, acc, wm0, lane, staging);
  }
}
#endif

// One kernel per activation (kAct = p.act.act; the down GEMM takes the silu one, which it does not
// apply): with the five activations' epilogues in one kernel, ptxas (168 registers at 384
// threads, the 128 accumulators live into the epilogue) spilled, and the spills cost 5-8% of the
// down GEMM where no activation runs at all (docs/perf-notes.md v13).
template <class T, class Cfg, Act kAct>
__global__ void __launch_bounds__(Cfg::THREADS, 1)
    grouped_gemm_wgmma_tma_kernel(const GroupedGemmParams p, const __grid_constant__ CUtensorMap b_map) {
#ifdef MOEKIT_WGMMA_DEVICE
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, STAGES = Cfg::STAGES, CLUSTER = Cfg::CLUSTER;
  extern __shared__ __align__(1024) unsigned char wgmma_smem[];
  const unsigned raw_addr = smem_u32(wgmma_smem);
  // The same offset in every CTA (same kernel, same dynamic shared memory base), which multicast
  // and the peer's barrier addresses rely on.
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
    fence_mbarrier_init();  // visible to the TMA unit's complete_tx and to the peer CTA
  }
  unsigned rank = 0, peer_empty0 = 0;
  if constexpr (CLUSTER == 2) {
    rank = cluster_rank();
    peer_empty0 = cluster_map(empty0, rank ^ 1u);
    cluster_sync();
  } else {
    __syncthreads();  // the last CTA barrier
  }
  const int first_step = int(blockIdx.x) / CLUSTER, step_stride = int(gridDim.x) / CLUSTER;

  const int ntiles = p.num_tiles ? *p.num_tiles : p.tile_slots;
  const int total = ntiles * p.n_blocks;
  const int steps = (total + CLUSTER - 1) / CLUSTER;
  const int ktiles = (p.kdim + BK - 1) / BK;
  const bool gate_halves = p.epilogue == Epilogue::gate_concatenated;
  const int role = __shfl_sync(0xffffffffu, tid >> 7, 0);

  if (role == 0) {
    // ---- producer ----
    setmaxnreg_dec<Cfg::PRODUCER_REGS>();
    int s = 0;
    unsigned phase = 0;
    for (int step = first_step; step < steps; step += step_stride) {
      TmaStep st;
      if (!tma_step<CLUSTER>(p, step, ntiles, rank, st)) continue;
      Tile a_tile = st.tile;
      if (!st.store) a_tile.rows = 0;  // a shadow: its consumers read no A (zero-filled, no loads)
      WgmmaStageLoader<T, BM, BN, 128, false> loader;
      loader.init(p, a_tile, st.n_block, tid);
      for (int kt = 0; kt < ktiles; ++kt) {
        mbar_wait_guarded<CLUSTER == 2>(empty0 + 8 * s, phase ^ 1u);  // variant 6: the peer's consumers too
        const unsigned full = full0 + 8 * s;
        if (tid == 0) {
          // The stage's weights: two boxes of BN / 2 rows (gate_halves: the gate rows, then the
          // matching up rows). Shared: this CTA fetches box `rank` for both CTAs.
          mbar_arrive_expect_tx(full, Cfg::B_STAGE_BYTES);
          const unsigned b_dst = smem_u32(sB + s * Cfg::B_STAGE);
          const int h0 = st.shared ? int(rank) : 0, h1 = st.shared ? int(rank) + 1 : 2;
          const std::uint16_t mask = st.shared ? std::uint16_t(3) : std::uint16_t(0);
          for (int h = h0; h < h1; ++h) {
            const unsigned dst = b_dst + unsigned(h) * (Cfg::B_STAGE_BYTES / 2);
            if (gate_halves) tma_load_4d(dst, &b_map, full, kt * BK, st.n_block * (BN / 2), h, st.tile.expert, mask);
            else tma_load_3d(dst, &b_map, full, kt * BK, st.n_block * BN + h * (BN / 2), st.tile.expert, mask);
          }
        }
        loader.load(p, sA + s * Cfg::A_STAGE, nullptr, kt);  // A only: no weight rows
        cp_async_mbar_arrive(full);
        if (++s == STAGES) s = 0, phase ^= 1u;
      }
    }
    cp_async_wait_all();  // leave no copy in flight behind this thread
  } else {
    // ---- consumers ----
    setmaxnreg_inc<Cfg::CONSUMER_REGS>();
    const int c = role - 1;  // rows [64 c, 64 c + 64) of every tile
    const int warp_in_wg = (tid >> 5) & 3;
    const unsigned a_base = smem_u32(sA) + unsigned(c * 64 * BK * 2), b_base = smem_u32(sB);
    const bool lane0 = lane == 0;
    const unsigned staging = smem_u32(smem + Cfg::TILE_BYTES + Cfg::BARRIER_BYTES) +
                             unsigned(((tid >> 5) - 4) * StagingLayout::WARP_BYTES);
    float acc[BN / 2];
    int it0 = 0;  // the CTA's k-tiles before this step
    for (int step = first_step; step < steps; step += step_stride) {
      TmaStep st;
      if (!tma_step<CLUSTER>(p, step, ntiles, rank, st)) continue;
      const bool active = __shfl_sync(0xffffffffu, st.store && c * 64 < st.tile.rows ? 1 : 0, 0) != 0;
      if (!active) {
        tma_consumer_mainloop<T, Cfg, false>(acc, a_base, b_base, full0, empty0, peer_empty0, it0, ktiles, lane0);
        it0 += ktiles;
        continue;
      }
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
      tma_consumer_mainloop<T, Cfg, true>(acc, a_base, b_base, full0, empty0, peer_empty0, it0, ktiles, lane0);
      it0 += ktiles;
      wgmma_fence_operands(acc);
      const int wm0 = c * 64 + warp_in_wg * 16;
      if (wm0 < st.tile.rows) wgmma_stage_rows<T, BN, kAct>(p, st.tile, st.n_block, acc, wm0, lane, staging);
    }
  }
  if constexpr (CLUSTER == 2) cluster_sync();
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
    const cuuint32_t box[3] = {Cfg::BK, Cfg::BN / 2, 1};  // two boxes per stage, as for the gate halves
    r = encode(&map, type, 3, const_cast<void*>(p.b), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  }
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

template <class T, class Cfg, Act kAct>
cudaError_t launch_grouped_gemm_wgmma_tma_act(const GroupedGemmParams& p, int tile_slots, cudaStream_t stream) {
  auto kernel = grouped_gemm_wgmma_tma_kernel<T, Cfg, kAct>;
  GroupedGemmParams q;
  unsigned grid = 0;
  cudaError_t err = persistent_launch_shape<Cfg>(kernel, p, tile_slots, q, grid);
  if (err != cudaSuccess || grid == 0) return err;
  // The epilogue writes whole 16-byte units: the pipeline's h and y (16-byte aligned workspace
  // sections, rows of I or H elements, both multiples of 8) always qualify.
  const int out_cols = gated_epilogue(p.epilogue) ? p.inter : p.n_weights;
  if (reinterpret_cast<std::uintptr_t>(p.out) % 16 != 0 || (p.ldo * 2) % 16 != 0 || out_cols % 8 != 0)
    return cudaErrorInvalidValue;
  CUtensorMap map;
  if ((err = encode_weight_map<T, Cfg>(p, map)) != cudaSuccess) return err;
  if constexpr (Cfg::CLUSTER == 1) {
    kernel<<<grid, Cfg::THREADS, Cfg::SMEM_BYTES, stream>>>(q, map);
  } else {
    // Pairs of CTAs: as many as fit at once (a pair needs two SMs of one GPC), and no more than
    // there are pairs of items.
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = Cfg::CLUSTER;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(grid + grid % Cfg::CLUSTER);
    config.blockDim = dim3(Cfg::THREADS);
    config.dynamicSmemBytes = Cfg::SMEM_BYTES;
    config.stream = stream;
    config.attrs = attr;
    config.numAttrs = 1;
    int clusters = 0;
    if ((err = cudaOccupancyMaxActiveClusters(&clusters, kernel, &config)) != cudaSuccess) return err;
    if (clusters <= 0) return cudaErrorInvalidConfiguration;
    const long long pairs = (static_cast<long long>(q.tile_slots) * q.n_blocks + 1) / 2;
    config.gridDim = dim3(unsigned(std::min<long long>(clusters, pairs)) * Cfg::CLUSTER);
    if ((err = cudaLaunchKernelEx(&config, kernel, q, map)) != cudaSuccess) return err;
  }
  return cudaGetLastError();
}

template <class T, class Cfg>
cudaError_t launch_grouped_gemm_wgmma_tma(const GroupedGemmParams& p, int tile_slots, cudaStream_t stream) {
  cudaError_t err = cudaErrorInvalidValue;
  with_act(p.epilogue == Epilogue::down ? Act::silu : p.act.act, [&](auto a) {
    err = launch_grouped_gemm_wgmma_tma_act<T, Cfg, decltype(a)::value>(p, tile_slots, stream);
  });
  return err;
}

}  // namespace moekit::cuda::kernels
