// moekit: what the CPU backends run on, and their GEMM kernel as a plain matrix product.
#pragma once

#include <cstdint>
#include <string>

#include "moekit/dtype.hpp"

namespace moekit {

struct CpuInfo {
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512_bf16 = false;
  bool avx512_fp16 = false;
  bool fma = false;
  bool f16c = false;
  int hardware_threads = 1;
  std::string kernel_isa;  // the kernels the CPU backends use: "avx512" or "generic"
  std::string model;       // the CPU's brand string, "unknown" when it cannot be read
};

// Detected once. The kernel ISA is the best this build and CPU support, unless the environment
// variable MOEKIT_CPU_ISA=generic|avx512 asks for one: an unknown value, or avx512 where this build
// or CPU cannot run it, throws moekit::Error (invalid_argument / unsupported) here and from every
// CPU backend run.
CpuInfo cpu_info();

// C[M, N] = A[M, K] @ W[N, K]^T with the CPU backends' kernels: A and C fp32 row-major
// (contiguous), W row-major in bf16, f16 or f32. threads = 0: all hardware threads.
// The fallback GEMM ceiling of the command-line tool.
void cpu_matmul_nt(const float* A, std::int64_t M, std::int64_t K, const void* W, DType w_dtype, std::int64_t N,
                   float* C, int threads);

}  // namespace moekit
