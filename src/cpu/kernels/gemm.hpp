// moekit CPU kernels: the table of function pointers every CPU backend calls, one table per ISA.
//
// Framework-free on purpose (no moekit types, no inline code): the *_avx512.cpp files are compiled
// with AVX-512 enabled, and any inline function or template they shared with the rest of the
// library could be emitted there as a COMDAT copy with AVX-512 instructions, which the linker might
// then pick for callers on machines without AVX-512.
#pragma once

#include <cstdint>

namespace moekit::cpu::kernels {

// Storage type of weights, biases and 16-bit activations; indexes the per-dtype entries below.
enum WType : int { w_bf16 = 0, w_f16 = 1, w_f32 = 2, w_count = 3 };

enum class Act : std::uint8_t { silu, gelu, gelu_tanh, relu, clamped_swiglu };

struct ActParams {
  Act act = Act::silu;
  bool has_gate = true;
  bool interleaved = false;  // gate = v[0::2], up = v[1::2]; else gate = v[:I], up = v[I:]
  float alpha = 1.702f;      // clamped_swiglu only
  float limit = 7.0f;
};

// C[m*ldc + n] (accumulate ? += : =) sum_{h < K} A[m*lda + h] * W(n, h)  for m < M, n0 <= n < n1.
//   nk layout: W(n, h) = W[n*ldw + h]   (the default weight layout: dot products along h)
//   kn layout: W(n, h) = W[h*ldw + n]   (the transposed layout)
// The summation order of every C element depends only on K (never on M, n0, n1 or the caller's
// partition), so any split of the columns or rows over threads gives bitwise identical results.
using GemmFn = void (*)(const float* A, std::int64_t lda, std::int64_t M, const void* W, std::int64_t ldw,
                        std::int64_t n0, std::int64_t n1, std::int64_t K, float* C, std::int64_t ldc,
                        bool accumulate);

// The "split" layout of an fp32 A row, which gemm_nk may ask for (KernelTable::nk_split): every
// whole block of 32 columns is stored as its 16 even columns, then its 16 odd ones; the last
// K % 32 columns stay in natural order. A dot product does not care how its terms are paired up,
// and with A split like this the AVX-512 kernel widens bf16 weights with one shift (even) or one
// mask (odd) per 32-weight load instead of a zero-extension and a shift per 16.
struct KernelTable {
  const char* isa;  // "avx512" or "generic"
  GemmFn gemm_nk[w_count];
  GemmFn gemm_kn[w_count];  // A in natural order always
  bool nk_split[w_count];   // gemm_nk wants A in the split layout
  // dst[i] = float(src[i]) / src[i] rounded to nearest even (identical to moekit::to_bf16/to_f16).
  void (*to_f32[w_count])(const void* src, float* dst, std::int64_t n);
  void (*from_f32[w_count])(const float* src, void* dst, std::int64_t n);
  // Like to_f32, into the A layout gemm_nk of that dtype wants (split or natural).
  void (*to_nk_a[w_count])(const void* src, float* dst, std::int64_t n);
  // An fp32 row in natural order into the split layout.
  void (*split_f32)(const float* src, float* dst, std::int64_t n);
  // y[i] += a * x[i]
  void (*axpy)(float a, const float* x, float* y, std::int64_t n);
  // In place: row[0:I] = gate(row[0:2I]) with a gate, act(row[0:I]) without; the I outputs are
  // stored in the split layout when `split`.
  void (*activate)(float* row, std::int64_t I, const ActParams& params, bool split);
};

const KernelTable& generic_table() noexcept;
#if MOEKIT_HAVE_AVX512_KERNELS
const KernelTable& avx512_table() noexcept;
#endif

}  // namespace moekit::cpu::kernels
