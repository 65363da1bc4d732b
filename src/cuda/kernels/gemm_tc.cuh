// moekit CUDA kernels: the grouped GEMM on tensor cores (mma.sync m16n8k16, bf16/f16 in, fp32
// accumulate), sm_80 and newer. Every CTA takes one tile of rows sharing an expert (read from the
// device-side tile list, so no host sync) and one BN-wide slice of that expert's weight rows, and
// streams the weight slice once through a STAGES-deep cp.async pipeline of 16-byte copies into
// XOR-swizzled shared memory.
//
//   GEMM1 (gate_up): A = gathered token rows of hidden_states, epilogue = bias + gate/activation,
//                    writes the intermediate [rows, I] in the activation dtype.
//   GEMM2 (down):    A = the intermediate, epilogue = bias, writes y [rows, H] in the activation
//                    dtype (rounded once from the fp32 accumulators, as transformers rounds it).
//
// Weights are either [N, K] (the default layout, K contiguous; ldmatrix) or [K, N] (transposed;
// ldmatrix.trans). With the concatenated gate layout the loader places gate rows i..i+7 next to
// up rows I+i..I+i+7 in shared memory, so every thread holds a gate and its up value in
// neighbouring accumulator tiles and the activation fuses into the epilogue.
//
// Requirements (checked by the host before choosing this path): K % 8 == 0, and for the weight
// N extent, lda, ldb, ldo and every base pointer, 16-byte alignment of each row.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "activation.cuh"
#include "types.cuh"

namespace moekit::cuda::kernels {

enum class Epilogue : int {
  gate_concatenated,  // GEMM1, gate = rows [0, I), up = rows [I, 2I)
  gate_interleaved,   // GEMM1, gate = even rows, up = odd rows
  no_gate,            // GEMM1, act(up)
  down,               // GEMM2, + bias, out in the activation dtype
};

struct GroupedGemmParams {
  const Tile* tiles = nullptr;
  const int* num_tiles = nullptr;  // device; null: gridDim.x tiles
  // A: tile row r reads row (a_rows ? a_rows[r] : r) / a_div of a (the token of a sorted pair).
  const void* a = nullptr;
  std::int64_t lda = 0;
  const int* a_rows = nullptr;
  int a_div = 1;
  // B: expert e's weights at b + e * b_expert_stride; row stride ldb (elements).
  const void* b = nullptr;
  std::int64_t b_expert_stride = 0;
  std::int64_t ldb = 0;
  int experts = 0;    // E: the extent of b's expert dimension (variant 5's tensor map)
  int mean_rows = 0;  // T * K / E, rounded down: rows per expert if the routing were even (host-known)
  int n_weights = 0;  // the extent of the weights' N dimension (2I, I or H)
  int kdim = 0;
  int inter = 0;      // I (the gate layouts)
  Epilogue epilogue = Epilogue::down;
  // Set by the launcher: the 1-D grid walks tile_slots x n_blocks CTAs, see item_tile().
  int tile_slots = 0;
  int n_blocks = 0;
  bool pair_order = false;  // tiles in pair order (batched_mm, one pair per tile): all of them form one
                            // raster group, so the pairs that share an expert read each weight slice
                            // together; else the routing's raster groups (tiles sorted by expert)
  const void* bias = nullptr;  // [E, n_weights] or null
  void* out = nullptr;
  std::int64_t ldo = 0;
  ActParams act;
};

// f(ActTag<A>{}) with A the call's activation, switched once outside an epilogue's unrolled
// loops (activation.cuh says why); the down GEMM applies none, so one instantiation serves it.
template <class F>
__device__ __forceinline__ void with_epilogue_act(const GroupedGemmParams& p, F&& f) {
  if (p.epilogue == Epilogue::down) f(ActTag<Act::relu>{});  // the tag goes unused there
  else with_act(p.act.act, f);
}

// Which weight row (NK) or column (KN) a tile-local index n maps to; false past the end.
// gate_concatenated: groups of 16 = 8 gate rows then the matching 8 up rows.
__device__ __forceinline__ bool weight_index(const GroupedGemmParams& p, int n_block, int bn, int n, int& w) {
  if (p.epilogue == Epilogue::gate_concatenated) {
    const int i = n_block * (bn / 2) + (n >> 4) * 8 + (n & 7);
    w = (n & 8) ? p.inter + i : i;
    return i < p.inter;
  }
  w = n_block * bn + n;
  return w < p.n_weights;
}

// Item w (a CTA of the 1-D grid, or a persistent kernel's work item) -> tile m, weight slice n,
// over ntiles tiles x n_blocks slices: a group of tiles with the tile fastest, then the weight
// slice, then the next group. The CTAs in flight at once then share a few tiles' rows (A, from
// L2) and read each weight slice together (B, from DRAM once even when an expert has several
// tiles), instead of sweeping all of A once per weight slice. Sorted tiles: the routing's groups
// (Tile::group), which never span two experts; fixed groups of 8 did, and then read the weights of
// the expert they shared twice (at solar T = 8192 GEMM1 read 1.7x its weights from DRAM).
// m >= ntiles: past the last item.
__device__ __forceinline__ void item_tile(const GroupedGemmParams& p, int w, int ntiles, int& m, int& n) {
  const int nb = p.n_blocks;
  m = ntiles;
  n = 0;
  const int t = w / nb;
  if (t >= ntiles) return;
  if (p.pair_order) {
    m = w % ntiles;
    n = w / ntiles;
    return;
  }
  const int g = p.tiles[t].group;
  const int first = t - (g & 0xffff), width = g >> 16;
  if (width <= 0) return;
  const int r = w - first * nb;
  m = first + r % width;
  n = r / width;
}

__device__ __forceinline__ unsigned smem_u32(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(unsigned addr, unsigned (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned addr, unsigned (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  if constexpr (sizeof(T) == 2 && std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Tile shapes: BM rows x BN weight rows (or columns) x BK per stage; WARPS_M x WARPS_N warps.
// MIN_BLOCKS caps registers so that many CTAs share an SM (more loads in flight).
template <int BM_, int BN_, int BK_, int WARPS_M_, int WARPS_N_, int STAGES_, int MIN_BLOCKS_ = 1>
struct TcConfig {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, STAGES = STAGES_;
  static constexpr int MIN_BLOCKS = MIN_BLOCKS_;
  static constexpr int THREADS = WARPS_M * WARPS_N * 32;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  static constexpr int MMA_M = WM / 16, MMA_N = WN / 8;
  static constexpr int A_STAGE = BM * BK, B_STAGE = BN * BK;  // elements
  static constexpr int SMEM_BYTES = STAGES * (A_STAGE + B_STAGE) * 2;
  static_assert(BK == 64, "the swizzle assumes 8 chunks of 16 bytes per K row");
  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tiles are whole 16x16 blocks");
  static_assert((BM * BK / 8) % THREADS == 0 || THREADS % (BM * BK / 8) == 0, "A chunks per thread");
  static_assert((BN * BK / 8) % THREADS == 0, "B chunks per thread");
};

// Element offset of 16-byte chunk `c` of row `r` in a tile with `chunks` chunks per row.
__device__ __forceinline__ int swz(int r, int c, int chunks) { return r * chunks * 8 + ((c ^ (r & 7)) * 8); }

template <class T, class Cfg, bool kKN>
__global__ void __launch_bounds__(Cfg::THREADS, Cfg::MIN_BLOCKS) grouped_gemm_tc_kernel(const GroupedGemmParams p) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, STAGES = Cfg::STAGES, THREADS = Cfg::THREADS;
  constexpr int MMA_M = Cfg::MMA_M, MMA_N = Cfg::MMA_N;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* const sA = reinterpret_cast<T*>(smem_raw);
  T* const sB = sA + STAGES * Cfg::A_STAGE;

  const int ntiles = p.num_tiles ? *p.num_tiles : p.tile_slots;
  int m_index, n_block;
  item_tile(p, int(blockIdx.x), ntiles, m_index, n_block);
  if (m_index >= ntiles) return;
  const Tile tile = p.tiles[m_index];
  if (tile.rows <= 0) return;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / Cfg::WARPS_N, warp_n = warp % Cfg::WARPS_N;

  // ---- per-thread source pointers, fixed over the K loop --------------------------------------
  constexpr int A_CHUNKS = BM * BK / 8;
  constexpr int A_PER_THREAD = A_CHUNKS >= THREADS ? A_CHUNKS / THREADS : 1;
  const T* a_src[A_PER_THREAD];
  bool a_ok[A_PER_THREAD];
  const int a_kc = tid % (BK / 8);
#pragma unroll
  for (int j = 0; j < A_PER_THREAD; ++j) {
    const int row = (tid + j * THREADS) / (BK / 8);
    a_ok[j] = row < tile.rows && (tid + j * THREADS) < A_CHUNKS;
    const int r = tile.row0 + (a_ok[j] ? row : 0);
    const int src_row = (p.a_rows ? p.a_rows[r] : r) / p.a_div;
    a_src[j] = static_cast<const T*>(p.a) + std::int64_t(src_row) * p.lda + a_kc * 8;
  }

  const T* const b_expert = static_cast<const T*>(p.b) + std::int64_t(tile.expert) * p.b_expert_stride;
  constexpr int B_PER_THREAD = BN * BK / 8 / THREADS;
  const T* b_src[kKN ? 1 : B_PER_THREAD];
  bool b_ok[kKN ? 1 : B_PER_THREAD];
  int b_krow0 = 0;
  if constexpr (!kKN) {
    // [N, K]: thread covers rows tid/8 + j*THREADS/8, chunk tid%8.
#pragma unroll
    for (int j = 0; j < B_PER_THREAD; ++j) {
      const int n = (tid + j * THREADS) / (BK / 8);
      int w;
      b_ok[j] = weight_index(p, n_block, BN, n, w);
      b_src[j] = b_expert + (b_ok[j] ? std::int64_t(w) * p.ldb : 0) + (tid % (BK / 8)) * 8;
    }
  } else {
    // [K, N]: thread covers column chunk tid % (BN/8) of K rows tid/(BN/8) + j*THREADS/(BN/8).
    const int nc = tid % (BN / 8);
    int w;
    b_ok[0] = weight_index(p, n_block, BN, nc * 8, w);  // a chunk is 8 columns of one half
    b_src[0] = b_expert + (b_ok[0] ? w : 0);
    b_krow0 = tid / (BN / 8);
  }

  const int ktiles = (p.kdim + BK - 1) / BK;
  auto load_stage = [&](int stage, int kt) {
    const int k0 = kt * BK;
    T* a_dst = sA + stage * Cfg::A_STAGE;
#pragma unroll
    for (int j = 0; j < A_PER_THREAD; ++j) {
      const int c = tid + j * THREADS;
      if (c < A_CHUNKS) {
        const bool ok = a_ok[j] && k0 + a_kc * 8 < p.kdim;
        cp_async16(smem_u32(a_dst + swz(c / (BK / 8), a_kc, BK / 8)), ok ? a_src[j] + k0 : p.a, ok);
      }
    }
    T* b_dst = sB + stage * Cfg::B_STAGE;
    if constexpr (!kKN) {
      const bool kin = k0 + (tid % (BK / 8)) * 8 < p.kdim;
#pragma unroll
      for (int j = 0; j < B_PER_THREAD; ++j) {
        const bool ok = b_ok[j] && kin;
        cp_async16(smem_u32(b_dst + swz((tid + j * THREADS) / (BK / 8), tid % (BK / 8), BK / 8)),
                   ok ? b_src[j] + k0 : p.b, ok);
      }
    } else {
      constexpr int ROWS_PER_PASS = THREADS / (BN / 8);
#pragma unroll
      for (int j = 0; j < B_PER_THREAD; ++j) {
        const int kr = b_krow0 + j * ROWS_PER_PASS;
        const bool ok = b_ok[0] && k0 + kr < p.kdim;
        cp_async16(smem_u32(b_dst + swz(kr, tid % (BN / 8), BN / 8)),
                   ok ? b_src[0] + std::int64_t(k0 + kr) * p.ldb : p.b, ok);
      }
    }
  };

  float acc[MMA_M][MMA_N][4];
#pragma unroll
  for (int i = 0; i < MMA_M; ++i)
#pragma unroll
    for (int j = 0; j < MMA_N; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.0f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();
  }

  const int wm0 = warp_m * Cfg::WM, wn0 = warp_n * Cfg::WN;
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    {
      const int next = kt + STAGES - 1;
      if (next < ktiles) load_stage(next % STAGES, next);
      cp_async_commit();
    }
    const T* a_s = sA + (kt % STAGES) * Cfg::A_STAGE;
    const T* b_s = sB + (kt % STAGES) * Cfg::B_STAGE;
    if (wm0 >= tile.rows) continue;  // this warp's rows are all past the tile (uniform per warp)
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      unsigned af[MMA_M][4];
#pragma unroll
      for (int i = 0; i < MMA_M; ++i) {
        if (wm0 + i * 16 >= tile.rows) continue;  // rows past the tile: no tensor-core work
        const int r = wm0 + i * 16 + (lane & 15);
        ldmatrix_x4(smem_u32(a_s + swz(r, kk * 2 + (lane >> 4), BK / 8)), af[i]);
      }
      unsigned bf[MMA_N][2];
#pragma unroll
      for (int j = 0; j < MMA_N / 2; ++j) {
        unsigned r4[4];
        if constexpr (!kKN) {
          const int n = wn0 + j * 16 + (lane & 7) + ((lane >> 4) << 3);
          ldmatrix_x4(smem_u32(b_s + swz(n, kk * 2 + ((lane >> 3) & 1), BK / 8)), r4);
        } else {
          const int k = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
          ldmatrix_x4_trans(smem_u32(b_s + swz(k, (wn0 + j * 16) / 8 + (lane >> 4), BN / 8)), r4);
        }
        bf[2 * j][0] = r4[0];
        bf[2 * j][1] = r4[1];
        bf[2 * j + 1][0] = r4[2];
        bf[2 * j + 1][1] = r4[3];
      }
#pragma unroll
      for (int i = 0; i < MMA_M; ++i) {
        if (wm0 + i * 16 >= tile.rows) continue;
#pragma unroll
        for (int j = 0; j < MMA_N; ++j) mma16816<T>(acc[i][j], af[i], bf[j][0], bf[j][1]);
      }
    }
  }
  cp_async_wait<0>();

  // ---- epilogue ---------------------------------------------------------------------------------
  const int g = lane >> 2, t4 = lane & 3;
  const T* bias = p.bias ? static_cast<const T*>(p.bias) + std::int64_t(tile.expert) * p.n_weights : nullptr;
  auto bias_at = [&](int w) { return bias ? to_f32(bias[w]) : 0.0f; };
  with_epilogue_act(p, [&](auto act_tag) {
    constexpr Act kAct = decltype(act_tag)::value;
#pragma unroll
    for (int i = 0; i < MMA_M; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int lr = wm0 + i * 16 + g + h * 8;
        if (lr >= tile.rows) continue;
        const std::int64_t row = tile.row0 + lr;
        if (p.epilogue == Epilogue::down) {
          T* out = static_cast<T*>(p.out) + row * p.ldo;
#pragma unroll
          for (int j = 0; j < MMA_N; ++j) {
            const int n = n_block * BN + wn0 + j * 8 + t4 * 2;
            if (n < p.n_weights)
              store_pair<T>(out + n, acc[i][j][2 * h] + bias_at(n), acc[i][j][2 * h + 1] + bias_at(n + 1));
          }
        } else if (p.epilogue == Epilogue::gate_concatenated) {
          T* out = static_cast<T*>(p.out) + row * p.ldo;
#pragma unroll
          for (int q = 0; q < MMA_N / 2; ++q) {
            const int ii = n_block * (BN / 2) + (wn0 / 16 + q) * 8 + t4 * 2;
            if (ii < p.inter) {
              float v[2];
#pragma unroll
              for (int c = 0; c < 2; ++c)
                v[c] = gate_value<kAct>(acc[i][2 * q][2 * h + c] + bias_at(ii + c),
                                        acc[i][2 * q + 1][2 * h + c] + bias_at(p.inter + ii + c), p.act);
              store_pair<T>(out + ii, v[0], v[1]);  // ii even, I a multiple of 8
            }
          }
        } else if (p.epilogue == Epilogue::gate_interleaved) {
          T* out = static_cast<T*>(p.out) + row * p.ldo;
#pragma unroll
          for (int j = 0; j < MMA_N; ++j) {
            const int w = n_block * BN + wn0 + j * 8 + t4 * 2;  // even: the gate row
            if (w < p.n_weights)
              out[w / 2] = from_f32<T>(
                  gate_value<kAct>(acc[i][j][2 * h] + bias_at(w), acc[i][j][2 * h + 1] + bias_at(w + 1), p.act));
          }
        } else {
          T* out = static_cast<T*>(p.out) + row * p.ldo;
#pragma unroll
          for (int j = 0; j < MMA_N; ++j) {
            const int n = n_block * BN + wn0 + j * 8 + t4 * 2;
            if (n < p.n_weights) {
              store_pair<T>(out + n, act_value<kAct>(acc[i][j][2 * h] + bias_at(n)),
                            act_value<kAct>(acc[i][j][2 * h + 1] + bias_at(n + 1)));
            }
          }
        }
      }
    }
  });
}

// Weight slices of BN rows (columns) the launch covers.
template <class Cfg>
inline int tc_grid_n(const GroupedGemmParams& p) {
  if (p.epilogue == Epilogue::gate_concatenated) return (p.inter + Cfg::BN / 2 - 1) / (Cfg::BN / 2);
  return (p.n_weights + Cfg::BN - 1) / Cfg::BN;
}

template <class T, class Cfg, bool kKN>
cudaError_t launch_grouped_gemm_tc(const GroupedGemmParams& p, int tile_slots, cudaStream_t stream) {
  if (tile_slots <= 0) return cudaSuccess;
  auto kernel = grouped_gemm_tc_kernel<T, Cfg, kKN>;
  // Raising the dynamic shared-memory limit is a per-device function attribute: cheap, and not a
  // stream operation, so it is allowed while a graph is being captured.
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

}  // namespace moekit::cuda::kernels
