// AVX-512 kernels (compiled with -mavx512f/bw/vl/dq -mfma -mf16c; chosen at run time from CPUID).
//
// Everything here has internal linkage and nothing from the standard library is instantiated, so
// no AVX-512 code can leak into the rest of the library through a shared COMDAT symbol.
#include <immintrin.h>

// GCC 12's intrinsic headers build their "undefined" operands by self-initialisation, which its
// own -Wmaybe-uninitialized then reports at every inlined use; the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <cstdint>

#include "cpu/kernels/gemm.hpp"

namespace moekit::cpu::kernels {
namespace {

using i64 = std::int64_t;

inline i64 min_i64(i64 a, i64 b) { return a < b ? a : b; }
inline __mmask16 tail_mask(i64 n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }

// ---- weight loads: 16 elements to fp32 -------------------------------------------------------

struct Bf16 {
  using T = std::uint16_t;
  // bf16 is the top half of an fp32: zero-extend to 32 bits and shift into place.
  static __m512 load(const T* p) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
  }
  static __m512 load(const T* p, __mmask16 m) {
    const __m256i v = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
  }
};

struct F16 {
  using T = std::uint16_t;
  static __m512 load(const T* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load(const T* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};

struct F32 {
  using T = float;
  static __m512 load(const T* p) { return _mm512_loadu_ps(p); }
  static __m512 load(const T* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};

// ---- nk: C[m, n] = dot(A[m, :], W[n, :]) ---------------------------------------------------------
//
// Micro-kernel: MR rows of A x NR weight rows, MR*NR zmm accumulators (16 at 4x4), each holding 16
// lanes of one dot product; reduced horizontally once per K block. Per 16 h: NR weight loads
// (+ conversion), MR A loads, MR*NR FMAs. Every accumulator runs the same FMA sequence whatever MR
// and NR are, so the tile shape never changes a result: only K (through kNkKc) decides the order.

// Fetches the weight rows the next tile will read while this one computes, so that streaming
// them from DRAM overlaps the FMAs instead of alternating with them.
// Into L2, not L1: the 4 rows in use already fill most of L1 (measured: T0 is slower than no
// prefetch at all, T1 ~25% faster than none on the Solar-Open shape at T = 1 and T = 128).
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }

// K blocks are long so that each weight row streams contiguously (short blocks measured slower:
// more prefetch streams restarting, more horizontal reductions).
constexpr i64 kNkKc = 4096;
constexpr i64 kNkMc = 16;  // rows per block: 16 x 4096 fp32 of A = 256 KiB, stays in L2
static_assert(kNkKc % 32 == 0, "K blocks must start on a block of the split layout");

template <int MR, int NR, class L>
void nk_tile(const float* A, i64 lda, const typename L::T* W, i64 ldw, i64 K, float* C, i64 ldc, bool accumulate,
             const typename L::T* next) {
  __m512 acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  i64 h = 0;
  for (; h + 16 <= K; h += 16) {
    if (next)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) prefetch(next + j * ldw + h);
    __m512 w[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) w[j] = L::load(W + j * ldw + h);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_loadu_ps(A + i * lda + h);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(a, w[j], acc[i][j]);
    }
  }
  if (h < K) {
    const __mmask16 m = tail_mask(K - h);
    __m512 w[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) w[j] = L::load(W + j * ldw + h, m);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_maskz_loadu_ps(m, A + i * lda + h);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(a, w[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const float s = _mm512_reduce_add_ps(acc[i][j]);
      float& c = C[i * ldc + j];
      c = accumulate ? c + s : s;
    }
}

// bf16 weights with A in the split layout (gemm.hpp): one 64-byte load gives 32 weights; the even
// ones become fp32 by a shift, the odd ones by masking off the low half, and they meet the even and
// odd columns of A in the same lanes. The last K % 32 columns take the natural path.
template <int MR, int NR>
void nk_tile_split(const float* A, i64 lda, const std::uint16_t* W, i64 ldw, i64 K, float* C, i64 ldc,
                   bool accumulate, const std::uint16_t* next) {
  __m512 acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const __m512i high = _mm512_set1_epi32(int(0xffff0000u));
  i64 h = 0;
  for (; h + 32 <= K; h += 32) {
    if (next)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) prefetch(next + j * ldw + h);
    __m512 even[NR], odd[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const __m512i w = _mm512_loadu_si512(W + j * ldw + h);
      even[j] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
      odd[j] = _mm512_castsi512_ps(_mm512_and_si512(w, high));
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 a0 = _mm512_loadu_ps(A + i * lda + h), a1 = _mm512_loadu_ps(A + i * lda + h + 16);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(a1, odd[j], _mm512_fmadd_ps(a0, even[j], acc[i][j]));
    }
  }
  for (; h < K; h += 16) {
    const __mmask16 m = tail_mask(K - h);
    __m512 w[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) w[j] = Bf16::load(W + j * ldw + h, m);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_maskz_loadu_ps(m, A + i * lda + h);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(a, w[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const float s = _mm512_reduce_add_ps(acc[i][j]);
      float& c = C[i * ldc + j];
      c = accumulate ? c + s : s;
    }
}

template <class T>
using NkTileFn = void (*)(const float*, i64, const T*, i64, i64, float*, i64, bool, const T*);

template <class L>
constexpr NkTileFn<typename L::T> kNkTiles[4][4] = {
    {nk_tile<1, 1, L>, nk_tile<1, 2, L>, nk_tile<1, 3, L>, nk_tile<1, 4, L>},
    {nk_tile<2, 1, L>, nk_tile<2, 2, L>, nk_tile<2, 3, L>, nk_tile<2, 4, L>},
    {nk_tile<3, 1, L>, nk_tile<3, 2, L>, nk_tile<3, 3, L>, nk_tile<3, 4, L>},
    {nk_tile<4, 1, L>, nk_tile<4, 2, L>, nk_tile<4, 3, L>, nk_tile<4, 4, L>},
};

constexpr NkTileFn<std::uint16_t> kNkSplitTiles[4][4] = {
    {nk_tile_split<1, 1>, nk_tile_split<1, 2>, nk_tile_split<1, 3>, nk_tile_split<1, 4>},
    {nk_tile_split<2, 1>, nk_tile_split<2, 2>, nk_tile_split<2, 3>, nk_tile_split<2, 4>},
    {nk_tile_split<3, 1>, nk_tile_split<3, 2>, nk_tile_split<3, 3>, nk_tile_split<3, 4>},
    {nk_tile_split<4, 1>, nk_tile_split<4, 2>, nk_tile_split<4, 3>, nk_tile_split<4, 4>},
};

void zero_block(i64 M, i64 n0, i64 n1, float* C, i64 ldc) {
  for (i64 m = 0; m < M; ++m)
    for (i64 n = n0; n < n1; n += 16) _mm512_mask_storeu_ps(C + m * ldc + n, tail_mask(n1 - n), _mm512_setzero_ps());
}

// Loop order: K blocks, then row blocks, then 4 weight rows at a time, then 4 A rows at a time.
// A group of 4 weight rows is streamed from DRAM once per kNkMc rows of A (into L2, by the prefetch
// its predecessor issued) and re-read from cache by the group's other row tiles, so at T = 128
// (about 8 rows per expert) each weight byte leaves DRAM once.
template <class T, const NkTileFn<T> (&kTiles)[4][4]>
void gemm_nk(const float* A, i64 lda, i64 M, const void* Wv, i64 ldw, i64 n0, i64 n1, i64 K, float* C, i64 ldc,
             bool accumulate) {
  const auto* W = static_cast<const T*>(Wv);
  if (K == 0) {
    if (!accumulate) zero_block(M, n0, n1, C, ldc);
    return;
  }
  for (i64 k0 = 0; k0 < K; k0 += kNkKc) {
    const i64 kc = min_i64(kNkKc, K - k0);
    const bool acc = accumulate || k0 > 0;
    for (i64 m0 = 0; m0 < M; m0 += kNkMc) {
      const i64 m1 = min_i64(M, m0 + kNkMc);
      for (i64 n = n0; n < n1; n += 4) {
        const int nr = int(min_i64(4, n1 - n));
        // The first row block of a weight group prefetches the next group (if it has all 4 rows).
        const T* next = n + 8 <= n1 ? W + (n + 4) * ldw + k0 : nullptr;
        for (i64 m = m0; m < m1; m += 4) {
          const int mr = int(min_i64(4, m1 - m));
          kTiles[mr - 1][nr - 1](A + m * lda + k0, lda, W + n * ldw + k0, ldw, kc, C + m * ldc + n, ldc, acc,
                                 m == m0 ? next : nullptr);
        }
      }
    }
  }
}

// ---- kn: C[m, n0:n1] += A[m, h] * W[h, n0:n1] -------------------------------------------------
//
// Micro-kernel: MR rows x NV vectors of 16 columns; per h, NV weight vectors (converted once) and
// MR broadcasts of A feed MR*NV FMAs. Each C element is an FMA chain over one K block of h, started
// from zero and then added to C: the two-level sum keeps the rounding error of long reductions
// (H = 7168) near that of a 256-term one. The order depends on K only, not on the tile shape.

constexpr i64 kKnKc = 256;  // h per block: a 64-column bf16 panel of 256 rows is 32 KiB

template <int MR, int NV, class L>
void kn_tile(const float* A, i64 lda, const typename L::T* W, i64 ldw, i64 K, float* C, i64 ldc, bool accumulate,
             i64 cols) {
  __mmask16 mask[NV];
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) mask[v] = cols > 16 * v ? tail_mask(cols - 16 * v) : __mmask16(0);
  __m512 acc[MR][NV];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (i64 h = 0; h < K; ++h) {
    __m512 a[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) a[i] = _mm512_set1_ps(A[i * lda + h]);
    const typename L::T* wr = W + h * ldw;
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const __m512 w = L::load(wr + 16 * v, mask[v]);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) acc[i][v] = _mm512_fmadd_ps(a[i], w, acc[i][v]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      float* c = C + i * ldc + 16 * v;
      const __m512 sum = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], c), acc[i][v]) : acc[i][v];
      _mm512_mask_storeu_ps(c, mask[v], sum);
    }
}

template <class L>
using KnTileFn = void (*)(const float*, i64, const typename L::T*, i64, i64, float*, i64, bool, i64);

// Few rows get wide tiles so that each h reads a long contiguous stretch of the weight row.
template <class L>
void gemm_kn(const float* A, i64 lda, i64 M, const void* Wv, i64 ldw, i64 n0, i64 n1, i64 K, float* C, i64 ldc,
             bool accumulate) {
  const auto* W = static_cast<const typename L::T*>(Wv);
  if (K == 0) {
    if (!accumulate) zero_block(M, n0, n1, C, ldc);
    return;
  }
  int mr_tile = 4, width = 64;
  KnTileFn<L> by_rows[4] = {kn_tile<1, 4, L>, kn_tile<2, 4, L>, kn_tile<3, 4, L>, kn_tile<4, 4, L>};
  if (M == 1) {
    mr_tile = 1, width = 256;
    by_rows[0] = kn_tile<1, 16, L>;
  } else if (M == 2) {
    mr_tile = 2, width = 128;
    by_rows[1] = kn_tile<2, 8, L>;
  }
  for (i64 k0 = 0; k0 < K; k0 += kKnKc) {
    const i64 kc = min_i64(kKnKc, K - k0);
    const bool acc = accumulate || k0 > 0;
    for (i64 n = n0; n < n1; n += width) {
      const i64 cols = min_i64(width, n1 - n);
      for (i64 m = 0; m < M; m += mr_tile) {
        const int mr = int(min_i64(mr_tile, M - m));
        by_rows[mr - 1](A + m * lda + k0, lda, W + k0 * ldw + n, ldw, kc, C + m * ldc + n, ldc, acc, cols);
      }
    }
  }
}

// ---- conversions ----------------------------------------------------------------------------

template <class L>
void to_f32(const void* src, float* dst, i64 n) {
  const auto* s = static_cast<const typename L::T*>(src);
  i64 i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, L::load(s + i));
  if (i < n) _mm512_mask_storeu_ps(dst + i, tail_mask(n - i), L::load(s + i, tail_mask(n - i)));
}

// bf16 activations straight into the split layout: the same shift / mask as the weights.
void to_split_bf16(const void* src, float* dst, i64 n) {
  const auto* s = static_cast<const std::uint16_t*>(src);
  const __m512i high = _mm512_set1_epi32(int(0xffff0000u));
  i64 i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i v = _mm512_loadu_si512(s + i);
    _mm512_storeu_si512(dst + i, _mm512_slli_epi32(v, 16));
    _mm512_storeu_si512(dst + i + 16, _mm512_and_si512(v, high));
  }
  to_f32<Bf16>(s + i, dst + i, n - i);
}

void split_f32(const float* src, float* dst, i64 n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  i64 i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 v0 = _mm512_loadu_ps(src + i), v1 = _mm512_loadu_ps(src + i + 16);
    _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(v0, even, v1));
    _mm512_storeu_ps(dst + i + 16, _mm512_permutex2var_ps(v0, odd, v1));
  }
  to_f32<F32>(src + i, dst + i, n - i);
}

// Round to nearest even exactly like moekit::to_bf16 (including subnormals, which the
// vcvtneps2bf16 instruction would flush), NaN made quiet.
inline __m256i bf16_round(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

void from_f32_bf16(const float* src, void* dst, i64 n) {
  auto* d = static_cast<std::uint16_t*>(dst);
  i64 i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), bf16_round(_mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(d + i, m, bf16_round(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

void from_f32_f16(const float* src, void* dst, i64 n) {
  auto* d = static_cast<std::uint16_t*>(dst);
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  i64 i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), kRound));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(d + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), kRound));
  }
}

void from_f32_f32(const float* src, void* dst, i64 n) {
  float* d = static_cast<float*>(dst);
  i64 i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_loadu_ps(src + i));
  if (i < n) _mm512_mask_storeu_ps(d + i, tail_mask(n - i), _mm512_maskz_loadu_ps(tail_mask(n - i), src + i));
}

void axpy(float a, const float* x, float* y, i64 n) {
  const __m512 va = _mm512_set1_ps(a);
  i64 i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// ---- activations ------------------------------------------------------------------------------

// exp(x) to about 1 ulp: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n*ln2_hi is exact),
// a degree-7 polynomial for exp(r), then scalef by 2^n (which also gives inf and 0 at the ends).
inline __m512 exp_ps(__m512 x) {
  // max/min return their second operand for NaN, so this order lets a NaN through.
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// x * sigmoid(s * x) as x / (1 + exp(-s x)): one division, exact at both ends.
inline __m512 x_sigmoid(__m512 x, __m512 s) {
  const __m512 e = exp_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), s), x));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// 0.5 x (1 + erf(x / sqrt 2)) with erfc(z) from Abramowitz-Stegun 7.1.26 (abs. error 1.5e-7):
// the negative side uses erfc directly, so there is no cancellation where gelu is tiny.
inline __m512 gelu_erf(__m512 x) {
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  p = _mm512_mul_ps(p, t);
  const __m512 erfc = _mm512_mul_ps(p, exp_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z)));
  const __m512 half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
  const __m512 pos = _mm512_fnmadd_ps(half_x, erfc, x);  // x (1 - erfc / 2)
  const __m512 neg = _mm512_mul_ps(half_x, erfc);        // x erfc / 2
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), pos, neg);
}

// 0.5 x (1 + tanh(y)) == x * sigmoid(2y), y = sqrt(2/pi) (x + 0.044715 x^3).
inline __m512 gelu_tanh(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 y2 = _mm512_mul_ps(_mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x),
                                  _mm512_set1_ps(2.0f * 0.7978845608028654f));
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), y2));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

inline __m512 act(__m512 g, Act a) {
  switch (a) {
    case Act::silu: return x_sigmoid(g, _mm512_set1_ps(1.0f));
    case Act::gelu: return gelu_erf(g);
    case Act::gelu_tanh: return gelu_tanh(g);
    case Act::relu: return _mm512_max_ps(g, _mm512_setzero_ps());
    case Act::clamped_swiglu: break;
  }
  return g;
}

inline __m512 gate(__m512 g, __m512 u, const ActParams& p) {
  if (p.act == Act::clamped_swiglu) {
    const __m512 lim = _mm512_set1_ps(p.limit);
    g = _mm512_min_ps(g, lim);
    u = _mm512_max_ps(_mm512_min_ps(u, lim), _mm512_sub_ps(_mm512_setzero_ps(), lim));
    return _mm512_mul_ps(_mm512_add_ps(u, _mm512_set1_ps(1.0f)), x_sigmoid(g, _mm512_set1_ps(p.alpha)));
  }
  return _mm512_mul_ps(act(g, p.act), u);
}

// Outputs i..i+15 (masked to I) of one row, from the layout's gate and up inputs.
inline __m512 gated_chunk(const float* row, i64 I, i64 i, const ActParams& p) {
  const __mmask16 m = tail_mask(I - i);
  if (!p.has_gate) return act(_mm512_maskz_loadu_ps(m, row + i), p.act);
  if (!p.interleaved) return gate(_mm512_maskz_loadu_ps(m, row + i), _mm512_maskz_loadu_ps(m, row + I + i), p);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const i64 left = 2 * (I - i);  // inputs left from 2i on
  const __m512 v0 = _mm512_maskz_loadu_ps(tail_mask(left), row + 2 * i);
  const __m512 v1 = _mm512_maskz_loadu_ps(left > 16 ? tail_mask(left - 16) : __mmask16(0), row + 2 * i + 16);
  return gate(_mm512_permutex2var_ps(v0, even, v1), _mm512_permutex2var_ps(v0, odd, v1), p);
}

// In place, ascending: a chunk computes all its outputs before storing any, and its stores land
// below every input a later chunk reads (concatenated: outputs < I <= up inputs, gate inputs at
// the output positions; interleaved: outputs [i, i+32) lie below inputs from 2(i+32) on).
void activate(float* row, i64 I, const ActParams& p, bool split) {
  i64 i = 0;
  if (split) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (; i + 32 <= I; i += 32) {
      const __m512 o0 = gated_chunk(row, I, i, p), o1 = gated_chunk(row, I, i + 16, p);
      _mm512_storeu_ps(row + i, _mm512_permutex2var_ps(o0, even, o1));
      _mm512_storeu_ps(row + i + 16, _mm512_permutex2var_ps(o0, odd, o1));
    }
  }
  for (; i < I; i += 16) _mm512_mask_storeu_ps(row + i, tail_mask(I - i), gated_chunk(row, I, i, p));
}

}  // namespace

const KernelTable& avx512_table() noexcept {
  static const KernelTable table = {
      "avx512",
      {gemm_nk<std::uint16_t, kNkSplitTiles>, gemm_nk<std::uint16_t, kNkTiles<F16>>, gemm_nk<float, kNkTiles<F32>>},
      {gemm_kn<Bf16>, gemm_kn<F16>, gemm_kn<F32>},
      {true, false, false},
      {to_f32<Bf16>, to_f32<F16>, to_f32<F32>},
      {from_f32_bf16, from_f32_f16, from_f32_f32},
      {to_split_bf16, to_f32<F16>, to_f32<F32>},
      split_f32,
      axpy,
      activate,
  };
  return table;
}

}  // namespace moekit::cpu::kernels
