// moekit CUDA kernels: the grouped GEMM on Hopper tensor cores (wgmma, sm_90a only), for the
// tall tiles (BM = 128 rows of one expert) and weights in the default [N, K] layout. Same
// contract, tile list, CTA order and epilogues as grouped_gemm_tc_kernel (gemm_tc.cuh), which it
// replaces for BM = 128 on compute capability 9.0 (gemm_dispatch.cuh chooses at run time).
//
// CTA: 128 rows x BN (256 or 128) weight rows x BK = 64, two warpgroups (256 threads);
// warpgroup w computes rows [64w, 64w + 64) x all BN columns with wgmma.m64nBNk16 (fp32
// accumulators, BN / 2 registers per thread), both operands read from shared memory through
// descriptors. Loads: every thread issues 16-byte cp.async copies (A: gathered token rows, which
// TMA cannot fetch; B: weight rows) into 128-byte rows swizzled by chunk ^ (row & 7), which is
// exactly the wgmma 128B-swizzle K-major layout when each stage starts on a 1024-byte boundary
// (8 rows x 128 B per swizzle atom: SBO = 1024 B; a k16 step inside the atom advances the start
// address by 32 B). Pipeline: STAGES buffers; each warpgroup keeps one wgmma group in flight
// (wgmma.wait_group 1) while it issues the next, so the buffer of k-tile kt - 1 is free only after
// that wait: loads run STAGES - 2 k-tiles ahead with one CTA barrier per k-tile, or STAGES - 1
// ahead with a second barrier after the wait (WgmmaConfig::AHEAD). After its cp.async copies
// land, each thread runs fence.proxy.async (generic-proxy writes read by the async proxy) before
// the CTA barrier.
//
// A warpgroup whose 64 rows all lie past the tile's rows issues no wgmma (the tile's second
// half for tiles of <= 64 rows). Compiled only for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL); in other
// device passes the kernel body is empty and the host never launches it there.
//
// Variant 4 (grouped_gemm_wgmma_persistent_kernel, below) is the persistent, warp-specialised
// form of variant 3: same tiles, loads, layout, instruction and epilogue, one CTA per SM looping
// over the work items, a producer warpgroup and two ping-pong consumer warpgroups on mbarriers.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "gemm_tc.cuh"

namespace moekit::cuda::kernels {

// BN weight rows per CTA; STAGES shared-memory buffers; MIN_BLOCKS CTAs per SM; AHEAD: k-tiles
// the loads run ahead of the wgmma (STAGES - 2 with one barrier per k-tile, STAGES - 1 with a
// second barrier after the wgmma wait that frees the buffer of k-tile kt - 1 for reuse).
template <int BN_, int STAGES_, int MIN_BLOCKS_, int AHEAD_>
struct WgmmaConfig {
  static constexpr int BM = 128, BN = BN_, BK = 64, STAGES = STAGES_, THREADS = 256;
  static constexpr int MIN_BLOCKS = MIN_BLOCKS_, AHEAD = AHEAD_;
  static constexpr int A_STAGE = BM * BK, B_STAGE = BN * BK;  // elements
  static constexpr int SMEM_BYTES = STAGES * (A_STAGE + B_STAGE) * 2 + 1024;  // + alignment slack
  static_assert(AHEAD == STAGES - 1 || AHEAD == STAGES - 2, "pipeline depth");
};
//                                 BN  stages CTAs/SM ahead
using WgmmaV1 = WgmmaConfig<256, 4, 1, 2>;  // v3: one barrier per k-tile
using WgmmaV2 = WgmmaConfig<256, 4, 1, 3>;  // v4a: loads 3 k-tiles ahead
using WgmmaV3 = WgmmaConfig<128, 3, 2, 2>;  // v4b: 2 CTAs per SM overlap prologues and epilogues

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MOEKIT_WGMMA_DEVICE 1
#endif

#ifdef MOEKIT_WGMMA_DEVICE
// 128B-swizzle K-major descriptor: start >> 4, LBO 1 (unused with this swizzle), SBO 1024 B.
__device__ __forceinline__ std::uint64_t wgmma_desc(unsigned smem_addr) {
  return std::uint64_t((smem_addr & 0x3FFFF) >> 4) | (std::uint64_t(1) << 16) | (std::uint64_t(1024 >> 4) << 32) |
         (std::uint64_t(1) << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most N wgmma groups are in flight. Touches no accumulator: a use of a register
// that an in-flight wgmma writes makes ptxas insert a full wait (C7517).
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// After the last wait: keeps the accumulators' reads (the epilogue) after it.
template <int NR>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[NR]) {
#pragma unroll
  for (int i = 0; i < NR; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void wgmma_m64n256k16_bf16(float (&d)[128], std::uint64_t da, std::uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
      "%128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ void wgmma_m64n256k16_f16(float (&d)[128], std::uint64_t da, std::uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
      "%128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ void wgmma_m64n128k16_bf16(float (&d)[64], std::uint64_t da, std::uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ void wgmma_m64n128k16_f16(float (&d)[64], std::uint64_t da, std::uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(1));
}

// ---- mbarriers and register reallocation (the persistent kernel) ----
__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Whether the phase of parity `parity` of the barrier has completed (try_wait.parity: true once
// the barrier's current phase parity differs from `parity`; a fresh barrier is in phase 0, so
// parity 1 reads as completed at once). kCluster: acquire at cluster scope, for phases that
// another CTA of the cluster completes (variant 6); else the default, acquire at CTA scope.
template <bool kCluster = false>
__device__ __forceinline__ bool mbar_try_wait(unsigned bar, unsigned parity) {
  unsigned done = 0;
  if constexpr (kCluster)
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  else
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  return done != 0;
}
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// One arrival on the barrier once all of this thread's earlier cp.async copies have landed; the
// expected count includes it (.noinc).
__device__ __forceinline__ void cp_async_mbar_arrive(unsigned bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

template <class T, int BN>
__device__ __forceinline__ void wgmma_tile_k16(float (&d)[BN / 2], std::uint64_t da, std::uint64_t db) {
  if constexpr (BN == 256) {
    if constexpr (std::is_same_v<T, __half>) wgmma_m64n256k16_f16(d, da, db);
    else wgmma_m64n256k16_bf16(d, da, db);
  } else {
    static_assert(BN == 128, "BN is 128 or 256");
    if constexpr (std::is_same_v<T, __half>) wgmma_m64n128k16_f16(d, da, db);
    else wgmma_m64n128k16_bf16(d, da, db);
  }
}

// One warpgroup's wgmma of a 64-row A slab and BN weight rows, one k-tile of BK, in one commit
// group (a_s, b_s: the stage's shared addresses, 128B-swizzled K-major rows).
template <class T, int BN, int BK>
__device__ __forceinline__ void wgmma_ktile(float (&acc)[BN / 2], unsigned a_s, unsigned b_s) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < BK / 16; ++kk) wgmma_tile_k16<T, BN>(acc, wgmma_desc(a_s + kk * 32), wgmma_desc(b_s + kk * 32));
  wgmma_commit();
}

// ---- pieces shared by the wgmma kernels (variants 1-5) ---------------------------------------

// The cp.async loads of one k-tile into a stage: BM gathered A rows and BN weight rows, 64 k each
// (8 chunks of 16 B per row), into 128-byte rows swizzled by chunk ^ (row & 7). Thread `tid` of
// THREADS copies chunk tid % 8 of rows tid / 8 + j * (THREADS / 8). Rows past the tile and weight
// rows past N are zero-filled (src-size 0), so every thread issues the same number of copies.
// kWithB = false: the A rows only (variant 5 fetches the weights with TMA).
template <class T, int BM, int BN, int THREADS, bool kWithB = true>
struct WgmmaStageLoader {
  static constexpr int BK = 64, CHUNKS = BK / 8;
  static constexpr int ROWS_PER_PASS = THREADS / CHUNKS;
  static constexpr int A_PER_THREAD = BM / ROWS_PER_PASS, B_PER_THREAD = BN / ROWS_PER_PASS;
  static_assert(THREADS % CHUNKS == 0 && BM % ROWS_PER_PASS == 0 && BN % ROWS_PER_PASS == 0, "loader shape");
  static_assert(A_PER_THREAD <= 32 && B_PER_THREAD <= 32, "row masks are 32-bit");

  int a_row[A_PER_THREAD];  // source row in A of row j (lean: the producer warpgroup runs on few registers)
  const T* b_src;           // weight row of j = 0 at chunk kc; row j is b_src + j * b_step
  std::int64_t b_step;
  unsigned a_ok = 0, b_ok = 0;  // bit j: row j is inside the tile / the weights
  int kc = 0;
  unsigned dst0 = 0;  // byte offset of (row_base, chunk kc) in a stage; row j adds j * ROWS_PER_PASS * 128

  __device__ __forceinline__ void init(const GroupedGemmParams& p, const Tile& tile, int n_block, int tid) {
    kc = tid % CHUNKS;
    const int row_base = tid / CHUNKS;
    // Rows row_base + j * ROWS_PER_PASS share row & 7 (ROWS_PER_PASS % 8 == 0), so the swizzled
    // chunk is the same for every j and row j sits ROWS_PER_PASS * 128 bytes after row 0.
    static_assert(ROWS_PER_PASS % 8 == 0, "one swizzle phase per thread");
    dst0 = unsigned(swz(row_base, kc, CHUNKS) * int(sizeof(T)));
    a_ok = 0;
#pragma unroll
    for (int j = 0; j < A_PER_THREAD; ++j) {
      const int row = row_base + j * ROWS_PER_PASS;
      const bool ok = row < tile.rows;
      a_ok |= unsigned(ok) << j;
      const int r = tile.row0 + (ok ? row : 0);
      a_row[j] = (p.a_rows ? p.a_rows[r] : r) / p.a_div;
    }
    if constexpr (!kWithB) return;
    // Weight row of tile-local index n = row_base + j * ROWS_PER_PASS (weight_index): with the
    // concatenated gate layout n >> 4 grows by ROWS_PER_PASS / 16 per j, so both the gate index
    // and the weight row step by ROWS_PER_PASS / 2; otherwise the row steps by ROWS_PER_PASS.
    static_assert(ROWS_PER_PASS % 16 == 0, "the gate/up groups of 16 rows stay whole per pass");
    const bool gate = p.epilogue == Epilogue::gate_concatenated;
    const int step = gate ? ROWS_PER_PASS / 2 : ROWS_PER_PASS;
    int w0;
    (void)weight_index(p, n_block, BN, row_base, w0);
    b_ok = 0;
#pragma unroll
    for (int j = 0; j < B_PER_THREAD; ++j) {
      int w;
      const bool ok = weight_index(p, n_block, BN, row_base + j * ROWS_PER_PASS, w);
      b_ok |= unsigned(ok) << j;
    }
    const T* const b_expert = static_cast<const T*>(p.b) + std::int64_t(tile.expert) * p.b_expert_stride;
    b_src = b_expert + std::int64_t(w0) * p.ldb + kc * 8;
    b_step = std::int64_t(step) * p.ldb;
  }

  // Issues this thread's copies of k-tile kt into the stage at sA / sB (no commit, no wait).
  __device__ __forceinline__ void load(const GroupedGemmParams& p, T* sA, T* sB, int kt) const {
    const int k0 = kt * BK;
    const bool kin = k0 + kc * 8 < p.kdim;
    const T* const a_k = static_cast<const T*>(p.a) + kc * 8 + k0;
    const unsigned a_dst = smem_u32(sA) + dst0;
    constexpr unsigned ROW_STEP = ROWS_PER_PASS * BK * sizeof(T);
#pragma unroll
    for (int j = 0; j < A_PER_THREAD; ++j) {
      const bool ok = ((a_ok >> j) & 1u) && kin;
      cp_async16(a_dst + j * ROW_STEP, ok ? a_k + std::int64_t(a_row[j]) * p.lda : p.a, ok);
    }
    if constexpr (!kWithB) return;
    const unsigned b_dst = smem_u32(sB) + dst0;
#pragma unroll
    for (int j = 0; j < B_PER_THREAD; ++j) {
      const bool ok = ((b_ok >> j) & 1u) && kin;
      cp_async16(b_dst + j * ROW_STEP, ok ? b_src + j * b_step + k0 : p.b, ok);
    }
  }
};

// The epilogue of one warp's 16 rows of a 64-row wgmma accumulator (m64nBNk16 layout:
// acc[4 j + c] = row g (+8 for c >= 2) of the warp's 16, column 8 j + 2 t4 (+1)). wm0 = the
// warp's first tile-local row. Same stores as the mma.sync kernel's epilogue (gemm_tc.cuh).
// Concatenated gate: column block 2q (gate) pairs with 2q + 1 (up), the loader's interleave by 8
// rows (variants 5 and 6 write this epilogue through shared memory: wgmma_stage_rows_act).
template <class T, int BN, Act kAct>
__device__ __forceinline__ void wgmma_store_rows_act(const GroupedGemmParams& p, const Tile& tile, int n_block,
                                                     const float (&acc)[BN / 2], int wm0, int lane) {
  const int g = lane >> 2, t4 = lane & 3;
  const T* bias = p.bias ? static_cast<const T*>(p.bias) + std::int64_t(tile.expert) * p.n_weights : nullptr;
  auto bias_at = [&](int w) { return bias ? to_f32(bias[w]) : 0.0f; };
  constexpr int NJ = BN / 8;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int lr = wm0 + g + h * 8;
    if (lr >= tile.rows) continue;
    const std::int64_t row = tile.row0 + lr;
    if (p.epilogue == Epilogue::down) {
      T* out = static_cast<T*>(p.out) + row * p.ldo;
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const int n = n_block * BN + j * 8 + t4 * 2;
        if (n < p.n_weights)
          store_pair<T>(out + n, acc[4 * j + 2 * h] + bias_at(n), acc[4 * j + 2 * h + 1] + bias_at(n + 1));
      }
    } else if (p.epilogue == Epilogue::gate_concatenated) {
      T* out = static_cast<T*>(p.out) + row * p.ldo;
#pragma unroll
      for (int q = 0; q < NJ / 2; ++q) {
        const int ii = n_block * (BN / 2) + q * 8 + t4 * 2;
        if (ii < p.inter) {
          float v[2];
#pragma unroll
          for (int c = 0; c < 2; ++c)
            v[c] = gate_value<kAct>(acc[4 * (2 * q) + 2 * h + c] + bias_at(ii + c),
                                    acc[4 * (2 * q + 1) + 2 * h + c] + bias_at(p.inter + ii + c), p.act);
          store_pair<T>(out + ii, v[0], v[1]);  // ii even, I a multiple of 8
        }
      }
    } else if (p.epilogue == Epilogue::gate_interleaved) {
      T* out = static_cast<T*>(p.out) + row * p.ldo;
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const int w = n_block * BN + j * 8 + t4 * 2;  // even: the gate row
        if (w < p.n_weights)
          out[w / 2] = from_f32<T>(
              gate_value<kAct>(acc[4 * j + 2 * h] + bias_at(w), acc[4 * j + 2 * h + 1] + bias_at(w + 1), p.act));
      }
    } else {
      T* out = static_cast<T*>(p.out) + row * p.ldo;
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const int n = n_block * BN + j * 8 + t4 * 2;
        if (n < p.n_weights) {
          store_pair<T>(out + n, act_value<kAct>(acc[4 * j + 2 * h] + bias_at(n)),
                        act_value<kAct>(acc[4 * j + 2 * h + 1] + bias_at(n + 1)));
        }
      }
    }
  }
}

// The epilogue with the activation fixed per call (with_epilogue_act).
template <class T, int BN>
__device__ __forceinline__ void wgmma_store_rows(const GroupedGemmParams& p, const Tile& tile, int n_block,
                                                 const float (&acc)[BN / 2], int wm0, int lane) {
  with_epilogue_act(p, [&](auto a) {
    wgmma_store_rows_act<T, BN, decltype(a)::value>(p, tile, n_block, acc, wm0, lane);
  });
}
#endif

template <class T, class Cfg>
__global__ void __launch_bounds__(Cfg::THREADS, Cfg::MIN_BLOCKS) grouped_gemm_wgmma_kernel(const GroupedGemmParams p) {
#ifdef MOEKIT_WGMMA_DEVICE
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, STAGES = Cfg::STAGES, THREADS = Cfg::THREADS;
  extern __shared__ __align__(1024) unsigned char wgmma_smem[];
  // Each stage must start on a 1024-byte boundary (the swizzle atom): align the base by hand.
  const unsigned raw_addr = smem_u32(wgmma_smem);
  unsigned char* const smem = wgmma_smem + ((1024 - (raw_addr & 1023)) & 1023);
  T* const sA = reinterpret_cast<T*>(smem);
  T* const sB = sA + STAGES * Cfg::A_STAGE;

  const int ntiles = p.num_tiles ? *p.num_tiles : p.tile_slots;
  int m_index, n_block;
  item_tile(p, int(blockIdx.x), ntiles, m_index, n_block);
  if (m_index >= ntiles) return;
  const Tile tile = p.tiles[m_index];
  if (tile.rows <= 0) return;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // Warpgroup wg computes rows [64 wg, 64 wg + 64). Broadcast from lane 0 so that the compiler
  // sees warp-uniform values (a branch it thinks divergent around wgmma serialises them).
  const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0);
  const bool wg_active = __shfl_sync(0xffffffffu, wg * 64 < tile.rows ? 1 : 0, 0) != 0;

  // ---- per-thread source pointers, fixed over the K loop: chunk tid % 8 of rows tid / 8 + 32 j ----
  WgmmaStageLoader<T, BM, BN, THREADS> loader;
  loader.init(p, tile, n_block, tid);
  const int ktiles = (p.kdim + BK - 1) / BK;
  auto load_stage = [&](int stage, int kt) {
    loader.load(p, sA + stage * Cfg::A_STAGE, sB + stage * Cfg::B_STAGE, kt);
  };

  constexpr int AHEAD = Cfg::AHEAD;
  float acc[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;

#pragma unroll
  for (int s = 0; s < AHEAD; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();
  }

  const unsigned a_base = smem_u32(sA) + unsigned(wg * 64 * BK * 2);
  const unsigned b_base = smem_u32(sB);
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<AHEAD - 1>();  // this thread's copies of k-tile kt have landed
    fence_proxy_async();         // ... and are visible to the async proxy (wgmma)
    __syncthreads();             // everyone's copies (and, AHEAD = STAGES - 2: wgmma(kt - 2) is done)
    if constexpr (AHEAD == STAGES - 2) {
      const int next = kt + AHEAD;  // into the buffer wgmma(kt - 2) read
      if (next < ktiles) load_stage(next % STAGES, next);
      cp_async_commit();
    }
    if (wg_active) {
      const int s = kt % STAGES;
      const unsigned a_s = a_base + unsigned(s * Cfg::A_STAGE * 2);
      wgmma_ktile<T, BN, BK>(acc, a_s, b_base + unsigned(s * Cfg::B_STAGE * 2));
      wgmma_wait<1>();  // wgmma(kt - 1) is done: its buffer may be refilled after a barrier
    }
    if constexpr (AHEAD == STAGES - 1) {
      __syncthreads();  // wgmma(kt - 1) is done in both warpgroups
      const int next = kt + AHEAD;  // into the buffer wgmma(kt - 1) read
      if (next < ktiles) load_stage(next % STAGES, next);
      cp_async_commit();
    }
  }
  cp_async_wait<0>();
  if (!wg_active) return;
  wgmma_wait<0>();
  wgmma_fence_operands(acc);

  // ---- epilogue: this warp's 16 rows of the warpgroup's 64 ----
  wgmma_store_rows<T, BN>(p, tile, n_block, acc, wg * 64 + (warp & 3) * 16, lane);
#endif
}

// ---- variant 4: persistent, warp-specialised ---------------------------------------------------
//
// grid = min(SMs, work items), one CTA per SM, 384 threads in three warpgroups:
//   warpgroup 0 (producer, setmaxnreg.dec to PRODUCER_REGS): for every k-tile of every work item
//     of this CTA, in order: wait empty[s], issue the 16-byte cp.async copies of A (gathered rows)
//     and B (weight rows) into stage s exactly as WgmmaStageLoader lays them out for variant 3,
//     then cp.async.mbarrier.arrive.noinc on full[s] (fires when this thread's copies land).
//   warpgroups 1 and 2 (consumers, setmaxnreg.inc to CONSUMER_REGS): ping-pong over the work
//     items, consumer c taking the CTA's items j with j % 2 == c; each computes a whole 128 x 128
//     tile (two m64n128k16 accumulators, rows [0, 64) and [64, 128); the second is skipped when
//     the tile has <= 64 rows), then its epilogue, which overlaps the other consumer's main loop.
// Work items are (tile, weight slice) pairs, item w -> item_tile's raster over the tile count
// read on the device; CTA b takes items b, b + grid, b + 2 grid, ... (static, deterministic).
// Every output element is written by one item, so results do not depend on the schedule; with
// the same instruction (m64n128k16), the same k order and the same shared-memory layout as
// variant 3 the accumulators are bitwise those of variant 3.
//
// Pipeline: the i-th k-tile the CTA loads (items in order, ktiles per item: the same for every
// item, so a consumer knows where its item's k-tiles start without asking the other) goes to
// stage s = i % STAGES in round r = i / STAGES. full[s] expects 128 arrivals per round (one per
// producer thread, .noinc); empty[s] expects 128 (each thread of the consuming warpgroup, once
// its wgmma reading stage s has completed: wgmma.wait_group 1 after issuing the next k-tile,
// wait_group 0 after the item's last). The producer waits empty[s] with parity (r & 1) ^ 1
// (round 0 passes at once on a fresh barrier), a consumer waits full[s] with parity r & 1.
//
// A parity wait is only sound when the waiter has seen the phase before the one it waits for
// complete (else the previous, completed, phase of the same parity satisfies it). The producer
// is the only waiter on empty[] and waits its rounds in order. For full[], the consumers take
// turns: turn[c] completes a phase each time the other consumer has passed every full[] wait of
// one item, and consumer c waits on it before the main loop of each of its items (but the CTA's
// first). So when consumer c waits for k-tile i, every k-tile before its item has been seen
// complete by one consumer or the other, and the earlier ones of its item by itself. turn[c] is
// itself waited in order by c alone and cannot run two phases ahead (the other consumer
// needs c's next signal first). This is CUTLASS's ping-pong order: one consumer's main loop at a
// time, the other in its epilogue.
//
// Why every wait completes: the producer and both consumers walk the same item list (same tiles,
// same skip rule, same ktiles), so the consumers consume exactly the k-tiles the producer fills,
// in the same order. Each wait depends only on events of earlier k-tiles or items: a fill of
// k-tile i on the release of k-tile i - STAGES; that release on the fill of k-tile
// i - STAGES + 1 or, for an item's last k-tile, on nothing (it follows wait_group 0 in the main
// loop, not the epilogue); a turn on the other consumer's previous main loop, which needs only
// fills of earlier k-tiles. No CTA-wide barrier is used after the setup, and every thread
// issues the same copies (zero-filled when masked), so every arrival count is met.
// MOEKIT_WGMMA_WAIT_TRAP_NS (default 10 s): a wait that spins longer traps (a launch error
// instead of a hung GPU if one of these invariants were ever broken); 0 turns the check off.
template <int STAGES_>
struct WgmmaPersistentConfig {
  static constexpr int BM = 128, BN = 128, BK = 64, STAGES = STAGES_;
  static constexpr int THREADS = 384;  // producer warpgroup + two consumer warpgroups
  static constexpr int PRODUCER_REGS = 56, CONSUMER_REGS = 224;
  static constexpr int A_STAGE = BM * BK, B_STAGE = BN * BK;  // elements
  static constexpr int TILE_BYTES = STAGES * (A_STAGE + B_STAGE) * 2;
  static constexpr int BARRIER_BYTES = (2 * STAGES + 2) * 8;  // full[], empty[], turn[2]
  static constexpr int SMEM_BYTES = TILE_BYTES + BARRIER_BYTES + 1024;  // + alignment slack
  static_assert(STAGES >= 4, "at least 4 stages in flight");
  static_assert(SMEM_BYTES <= 227 * 1024, "one CTA per SM");
  // setmaxnreg moves registers inside the CTA's allocation (65536 / 384 = 168 per thread at launch).
  static_assert(PRODUCER_REGS * 128 + CONSUMER_REGS * 256 <= 168 * THREADS, "register budget");
  static_assert(PRODUCER_REGS % 8 == 0 && CONSUMER_REGS % 8 == 0, "setmaxnreg takes multiples of 8");
};
using WgmmaV4 = WgmmaPersistentConfig<6>;

#ifndef MOEKIT_WGMMA_WAIT_TRAP_NS
#define MOEKIT_WGMMA_WAIT_TRAP_NS 10000000000ull
#endif

#ifdef MOEKIT_WGMMA_DEVICE
// Spins until mbar_try_wait holds, with the hang guard: the clock is read only once the first
// try has failed.
template <bool kCluster = false>
__device__ __forceinline__ void mbar_wait_guarded(unsigned bar, unsigned parity) {
  if constexpr (MOEKIT_WGMMA_WAIT_TRAP_NS == 0) {
    while (!mbar_try_wait<kCluster>(bar, parity)) {
    }
  } else {
    std::uint64_t start = 0;
    for (;;) {
      if (mbar_try_wait<kCluster>(bar, parity)) return;
      std::uint64_t now;
      asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(now));
      if (start == 0) start = now;
      else if (now - start > MOEKIT_WGMMA_WAIT_TRAP_NS) __trap();
    }
  }
}

// Work item w of a persistent kernel: its tile and weight slice; false when it has nothing to do
// (past the device-side tile count, or an empty tile). The producer and the consumers call it
// with the same w, so they skip the same items and fill and consume the same k-tiles.
__device__ __forceinline__ bool persistent_work(const GroupedGemmParams& p, int w, int ntiles, Tile& tile,
                                                int& n_block) {
  int m;
  item_tile(p, w, ntiles, m, n_block);
  if (m >= ntiles) return false;
  tile = p.tiles[m];
  return tile.rows > 0;
}

// One consumer's main loop over a 128-row tile: kTwo = both 64-row halves (else rows [0, 64) only).
// k-tile kt of the item is the CTA's k-tile it0 + kt. Signals turn_other once every full[] wait
// of the item has passed; releases every stage it read, the last after wait_group 0.
template <class T, class Cfg, bool kTwo>
__device__ __forceinline__ void persistent_mainloop(float (&acc0)[Cfg::BN / 2], float (&acc1)[Cfg::BN / 2],
                                                    unsigned a_base, unsigned b_base, unsigned full0,
                                                    unsigned empty0, unsigned turn_other, int it0, int ktiles) {
  constexpr int STAGES = Cfg::STAGES, BK = Cfg::BK, BN = Cfg::BN;
  int s = it0 % STAGES;
  unsigned phase = unsigned(it0 / STAGES) & 1u;
  int prev = -1;  // the stage of the previous k-tile, released once its wgmma group has completed
  for (int kt = 0; kt < ktiles; ++kt) {
    mbar_wait_guarded(full0 + 8 * s, phase);
    fence_proxy_async();  // the producer's cp.async (generic proxy) writes, read by wgmma (async proxy)
    const unsigned a_s = a_base + unsigned(s * Cfg::A_STAGE * 2);
    const unsigned b_s = b_base + unsigned(s * Cfg::B_STAGE * 2);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      wgmma_tile_k16<T, BN>(acc0, wgmma_desc(a_s + kk * 32), wgmma_desc(b_s + kk * 32));
      if constexpr (kTwo)
        wgmma_tile_k16<T, BN>(acc1, wgmma_desc(a_s + 64 * BK * 2 + kk * 32), wgmma_desc(b_s + kk * 32));
    }
    wgmma_commit();
    wgmma_wait<1>();  // the previous k-tile's group is done: its stage may be refilled
    if (prev >= 0) mbar_arrive(empty0 + 8 * prev);
    prev = s;
    if (++s == STAGES) s = 0, phase ^= 1u;
  }
  mbar_arrive(turn_other);  // every full[] wait of this item has passed: the other consumer's turn
  wgmma_wait<0>();
  if (prev >= 0) mbar_arrive(empty0 + 8 * prev);
}
#endif

template <class T, class Cfg>
__global__ void __launch_bounds__(Cfg::THREADS, 1) grouped_gemm_wgmma_persistent_kernel(const GroupedGemmParams p) {
#ifdef MOEKIT_WGMMA_DEVICE
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, STAGES = Cfg::STAGES;
  extern __shared__ __align__(1024) unsigned char wgmma_smem[];
  const unsigned raw_addr = smem_u32(wgmma_smem);
  unsigned char* const smem = wgmma_smem + ((1024 - (raw_addr & 1023)) & 1023);
  T* const sA = reinterpret_cast<T*>(smem);
  T* const sB = sA + STAGES * Cfg::A_STAGE;
  const unsigned full0 = smem_u32(smem + Cfg::TILE_BYTES);  // full[s] at full0 + 8 s
  const unsigned empty0 = full0 + 8 * STAGES;               // empty[s] at empty0 + 8 s
  const unsigned turn0 = empty0 + 8 * STAGES;               // turn[c] at turn0 + 8 c

  const int tid = threadIdx.x, lane = tid & 31;
  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(full0 + 8 * s, 128);   // the producer warpgroup's cp.async arrivals
      mbar_init(empty0 + 8 * s, 128);  // the consuming warpgroup's threads
    }
    mbar_init(turn0, 128);      // consumer 1's threads, after each of their main loops
    mbar_init(turn0 + 8, 128);  // consumer 0's threads, likewise
  }
  __syncthreads();  // the barriers are initialised before anyone uses them; the last CTA barrier

  const int ntiles = p.num_tiles ? *p.num_tiles : p.tile_slots;
  const int total = ntiles * p.n_blocks;
  const int ktiles = (p.kdim + BK - 1) / BK;
  // Warp-uniform role (broadcast: a branch the compiler thinks divergent around wgmma serialises it).
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
      WgmmaStageLoader<T, BM, BN, 128> loader;
      loader.init(p, tile, n_block, tid);
      for (int kt = 0; kt < ktiles; ++kt) {
        mbar_wait_guarded(empty0 + 8 * s, phase ^ 1u);
        loader.load(p, sA + s * Cfg::A_STAGE, sB + s * Cfg::B_STAGE, kt);
        cp_async_mbar_arrive(full0 + 8 * s);
        if (++s == STAGES) s = 0, phase ^= 1u;
      }
    }
    cp_async_wait_all();  // leave no copy in flight behind this thread
    return;
  }

  // ---- consumers ----
  setmaxnreg_inc<Cfg::CONSUMER_REGS>();
  const int c = role - 1;  // 0 or 1
  const unsigned turn_mine = turn0 + 8 * c, turn_other = turn0 + 8 * (1 - c);
  const int warp_in_wg = (tid >> 5) & 3;
  const unsigned a_base = smem_u32(sA), b_base = smem_u32(sB);
  float acc0[BN / 2], acc1[BN / 2];
  int j = 0;  // items of this CTA with rows so far, both consumers' (each is ktiles k-tiles)
  for (int w = blockIdx.x; w < total; w += gridDim.x) {
    Tile tile;
    int n_block;
    if (!persistent_work(p, w, ntiles, tile, n_block)) continue;
    const int item = j++;
    if ((item & 1) != c) continue;
    // Item - 1 is the other consumer's ((item - 1) / 2)-th: wait until its main loop has passed
    // all its full[] waits (turn_mine's phase (item - 1) / 2).
    if (item > 0) mbar_wait_guarded(turn_mine, unsigned((item - 1) / 2) & 1u);
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc0[i] = 0.0f, acc1[i] = 0.0f;
    const bool two = __shfl_sync(0xffffffffu, tile.rows > 64 ? 1 : 0, 0) != 0;
    const int it0 = item * ktiles;
    if (two) persistent_mainloop<T, Cfg, true>(acc0, acc1, a_base, b_base, full0, empty0, turn_other, it0, ktiles);
    else persistent_mainloop<T, Cfg, false>(acc0, acc1, a_base, b_base, full0, empty0, turn_other, it0, ktiles);
    wgmma_fence_operands(acc0);
    wgmma_fence_operands(acc1);
    wgmma_store_rows<T, BN>(p, tile, n_block, acc0, warp_in_wg * 16, lane);
    if (two) wgmma_store_rows<T, BN>(p, tile, n_block, acc1, 64 + warp_in_wg * 16, lane);
  }
#endif
}

template <class T, class Cfg>
cudaError_t launch_grouped_gemm_wgmma_cfg(const GroupedGemmParams& p, int tile_slots, cudaStream_t stream) {
  if (tile_slots <= 0) return cudaSuccess;
  auto kernel = grouped_gemm_wgmma_kernel<T, Cfg>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::SMEM_BYTES);
  if (err != cudaSuccess) return err;
  GroupedGemmParams q = p;
  q.tile_slots = tile_slots;
  q.n_blocks = tc_grid_n<Cfg>(p);
  const long long blocks = static_cast<long long>(tile_slots) * q.n_blocks;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  kernel<<<unsigned(blocks), Cfg::THREADS, Cfg::SMEM_BYTES, stream>>>(q);
  return cudaGetLastError();
}

// The persistent kernels' (variants 4 and 5) launch shape: grid = min(SMs, upper bound of work
// items), the CTAs loop over the device-side count; q = p with the launcher's fields set. Also
// grants the kernel its shared memory. grid = 0: nothing to launch.
template <class Cfg, class Kernel>
cudaError_t persistent_launch_shape(Kernel kernel, const GroupedGemmParams& p, int tile_slots, GroupedGemmParams& q,
                                    unsigned& grid) {
  grid = 0;
  if (tile_slots <= 0) return cudaSuccess;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::SMEM_BYTES);
  if (err != cudaSuccess) return err;
  int dev = 0, sms = 0;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return err;
  q = p;
  q.tile_slots = tile_slots;
  q.n_blocks = tc_grid_n<Cfg>(p);
  const long long items = static_cast<long long>(tile_slots) * q.n_blocks;
  if (items > 0x7fffffffLL) return cudaErrorInvalidConfiguration;  // item indices are int
  grid = unsigned(std::max(0LL, std::min<long long>(items, std::max(sms, 1))));
  return cudaSuccess;
}

template <class T, class Cfg>
cudaError_t launch_grouped_gemm_wgmma_persistent(const GroupedGemmParams& p, int tile_slots, cudaStream_t stream) {
  auto kernel = grouped_gemm_wgmma_persistent_kernel<T, Cfg>;
  GroupedGemmParams q;
  unsigned grid = 0;
  if (const cudaError_t err = persistent_launch_shape<Cfg>(kernel, p, tile_slots, q, grid); err != cudaSuccess || grid == 0)
    return err;
  kernel<<<grid, Cfg::THREADS, Cfg::SMEM_BYTES, stream>>>(q);
  return cudaGetLastError();
}

}  // namespace moekit::cuda::kernels
