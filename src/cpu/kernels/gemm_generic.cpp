// Portable kernels: plain C++ that any compiler can vectorise for its baseline ISA (SSE2, NEON).
// Correct everywhere; fast enough for tests. The fixed-width lane arrays give the compiler
// independent partial sums to vectorise without reassociating anything (no -ffast-math needed),
// and they fix the summation order so that results never depend on the work partition.
#include <cmath>
#include <cstring>

#include "cpu/kernels/gemm.hpp"
#include "moekit/dtype.hpp"

namespace moekit::cpu::kernels {
namespace {

constexpr int kLanes = 8;        // partial sums per dot product (nk)
constexpr std::int64_t kKc = 256;  // weights converted to fp32 per block on the stack

inline float bits_to_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16_value(std::uint16_t b) { return bits_to_float(std::uint32_t(b) << 16); }

// Exact f16 -> f32 without branches on normal values: shift the exponent and mantissa into f32
// position, then rescale by 2^112 (exact; turns f16 subnormals into f32 normals).
inline float f16_value(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t body = std::uint32_t(h & 0x7fffu) << 13;
  if ((h & 0x7c00u) == 0x7c00u) return bits_to_float(sign | 0x7f800000u | body);  // inf, NaN
  return std::copysign(bits_to_float(body) * 0x1p112f, bits_to_float(sign | 0x3f800000u));
}

template <int W>
struct Weights;
template <>
struct Weights<w_bf16> {
  using T = std::uint16_t;
  static float value(T v) { return bf16_value(v); }
};
template <>
struct Weights<w_f16> {
  using T = std::uint16_t;
  static float value(T v) { return f16_value(v); }
};
template <>
struct Weights<w_f32> {
  using T = float;
  static float value(T v) { return v; }
};

template <int W>
void convert_block(const typename Weights<W>::T* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = Weights<W>::value(src[i]);
}

// One dot product in kLanes partial sums; lane j sums h = j (mod kLanes) in order of h.
inline void dot_lanes(const float* a, const float* w, std::int64_t n, float* lanes) {
  std::int64_t h = 0;
  for (; h + kLanes <= n; h += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += a[h + j] * w[h + j];
  for (int j = 0; h + j < n; ++j) lanes[j] += a[h + j] * w[h + j];
}

inline float reduce_lanes(const float* lanes) {
  float s = 0.0f;
  for (int j = 0; j < kLanes; ++j) s += lanes[j];
  return s;
}

// Every C element: per block of kKc h, kLanes partial sums reduced in a fixed order and added to C.
// The weight block is converted once and reused by all M rows; the order is a function of K only.
template <int W>
void gemm_nk(const float* A, std::int64_t lda, std::int64_t M, const void* Wv, std::int64_t ldw,
             std::int64_t n0, std::int64_t n1, std::int64_t K, float* C, std::int64_t ldc, bool accumulate) {
  using T = typename Weights<W>::T;
  const T* Wt = static_cast<const T*>(Wv);
  constexpr int kNr = 4;
  float wbuf[kNr][kKc];
  if (!accumulate)
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t n = n0; n < n1; ++n) C[m * ldc + n] = 0.0f;
  for (std::int64_t n = n0; n < n1; n += kNr) {
    const int nr = int(n1 - n < kNr ? n1 - n : kNr);
    for (std::int64_t k0 = 0; k0 < K; k0 += kKc) {
      const std::int64_t kc = K - k0 < kKc ? K - k0 : kKc;
      for (int j = 0; j < nr; ++j) convert_block<W>(Wt + (n + j) * ldw + k0, wbuf[j], kc);
      for (std::int64_t m = 0; m < M; ++m) {
        for (int j = 0; j < nr; ++j) {
          float lanes[kLanes] = {};
          dot_lanes(A + m * lda + k0, wbuf[j], kc, lanes);
          C[m * ldc + n + j] += reduce_lanes(lanes);
        }
      }
    }
  }
}

// C[m, n] += A[m, h] * W[h, n]: a sequential sum over each block of kKc h from zero, then added
// to C (a two-level sum, for accuracy over long K); the order depends on K only.
template <int W>
void gemm_kn(const float* A, std::int64_t lda, std::int64_t M, const void* Wv, std::int64_t ldw,
             std::int64_t n0, std::int64_t n1, std::int64_t K, float* C, std::int64_t ldc, bool accumulate) {
  using T = typename Weights<W>::T;
  const T* Wt = static_cast<const T*>(Wv);
  constexpr std::int64_t kCols = 64;
  float wrow[kCols];
  float part[kCols];
  for (std::int64_t nb = n0; nb < n1; nb += kCols) {
    const std::int64_t nc = n1 - nb < kCols ? n1 - nb : kCols;
    for (std::int64_t m = 0; m < M; ++m) {
      float* c = C + m * ldc + nb;
      if (!accumulate) std::memset(c, 0, std::size_t(nc) * sizeof(float));
      for (std::int64_t k0 = 0; k0 < K; k0 += kKc) {
        const std::int64_t k1 = K - k0 < kKc ? K : k0 + kKc;
        std::memset(part, 0, sizeof(part));
        for (std::int64_t h = k0; h < k1; ++h) {
          // Converted once per row of A: simple, and the AVX-512 path is the fast one.
          convert_block<W>(Wt + h * ldw + nb, wrow, nc);
          const float a = A[m * lda + h];
          for (std::int64_t j = 0; j < nc; ++j) part[j] += a * wrow[j];
        }
        for (std::int64_t j = 0; j < nc; ++j) c[j] += part[j];
      }
    }
  }
}

template <int W>
void to_f32(const void* src, float* dst, std::int64_t n) {
  convert_block<W>(static_cast<const typename Weights<W>::T*>(src), dst, n);
}

void from_f32_bf16(const float* src, void* dst, std::int64_t n) {
  auto* d = static_cast<std::uint16_t*>(dst);
  for (std::int64_t i = 0; i < n; ++i) d[i] = to_bf16(src[i]).bits;
}
void from_f32_f16(const float* src, void* dst, std::int64_t n) {
  auto* d = static_cast<std::uint16_t*>(dst);
  for (std::int64_t i = 0; i < n; ++i) d[i] = to_f16(src[i]).bits;
}
void from_f32_f32(const float* src, void* dst, std::int64_t n) {
  std::memcpy(dst, src, std::size_t(n) * sizeof(float));
}

void split_f32(const float* src, float* dst, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int j = 0; j < 16; ++j) {
      dst[i + j] = src[i + 2 * j];
      dst[i + 16 + j] = src[i + 2 * j + 1];
    }
  for (; i < n; ++i) dst[i] = src[i];
}

void axpy(float a, const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

inline float act_value(float g, Act act) {
  switch (act) {
    case Act::silu: return g * sigmoid(g);
    case Act::gelu: return 0.5f * g * (1.0f + std::erf(g * 0.70710678118654752f));
    case Act::gelu_tanh: {
      const float y = 0.7978845608028654f * (g + 0.044715f * g * g * g);
      return 0.5f * g * (1.0f + std::tanh(y));
    }
    case Act::relu: return g > 0.0f ? g : 0.0f;
    case Act::clamped_swiglu: break;  // needs u; handled by the caller
  }
  return g;
}

void activate(float* row, std::int64_t I, const ActParams& p, bool /*split: never asked for here*/) {
  if (!p.has_gate) {
    for (std::int64_t i = 0; i < I; ++i) row[i] = act_value(row[i], p.act);
    return;
  }
  // Writing row[i] after reading its gate and up values is safe in ascending i: the sources of
  // every later i lie at or beyond index i + 1 in both layouts.
  for (std::int64_t i = 0; i < I; ++i) {
    float g = p.interleaved ? row[2 * i] : row[i];
    float u = p.interleaved ? row[2 * i + 1] : row[I + i];
    if (p.act == Act::clamped_swiglu) {
      g = std::fmin(g, p.limit);
      u = std::fmax(std::fmin(u, p.limit), -p.limit);
      row[i] = (u + 1.0f) * (g * sigmoid(p.alpha * g));
    } else {
      row[i] = act_value(g, p.act) * u;
    }
  }
}

}  // namespace

const KernelTable& generic_table() noexcept {
  static const KernelTable table = {
      "generic",
      {gemm_nk<w_bf16>, gemm_nk<w_f16>, gemm_nk<w_f32>},
      {gemm_kn<w_bf16>, gemm_kn<w_f16>, gemm_kn<w_f32>},
      {false, false, false},
      {to_f32<w_bf16>, to_f32<w_f16>, to_f32<w_f32>},
      {from_f32_bf16, from_f32_f16, from_f32_f32},
      {to_f32<w_bf16>, to_f32<w_f16>, to_f32<w_f32>},
      split_f32,
      axpy,
      activate,
  };
  return table;
}

}  // namespace moekit::cpu::kernels
