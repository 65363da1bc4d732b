// cpu_matmul_nt: the backends' nk kernel as a plain C = A @ W^T (the command-line tool's fallback
// GEMM ceiling).
#include <algorithm>
#include <vector>

#include "cpu/isa.hpp"
#include "cpu/thread_pool.hpp"
#include "moekit/cpu.hpp"
#include "moekit/error.hpp"

namespace moekit {

void cpu_matmul_nt(const float* A, std::int64_t M, std::int64_t K, const void* W, DType w_dtype, std::int64_t N,
                   float* C, int threads) {
  if (w_dtype != DType::bf16 && w_dtype != DType::f16 && w_dtype != DType::f32)
    throw Error(Errc::invalid_argument, "cpu_matmul_nt: weights must be bf16, f16 or f32, got " +
                                            std::string(dtype_name(w_dtype)));
  if (M < 0 || N < 0 || K < 0) throw Error(Errc::invalid_argument, "cpu_matmul_nt: negative size");
  const cpu::kernels::KernelTable& kt = cpu::kernel_table();
  const cpu::kernels::WType wt = cpu::wtype(w_dtype);
  threads = cpu::effective_threads(threads);
  // The kernel may want A's columns in its split order (see kernels/gemm.hpp): a copy, made once,
  // as the backends do when they gather rows. Not a backend, so it may allocate.
  std::vector<float> split;
  if (kt.nk_split[wt]) {
    split.resize(std::size_t(M * K));
    cpu::parallel_for(M, threads, [&](std::int64_t m) { kt.split_f32(A + m * K, split.data() + m * K, K); });
    A = split.data();
  }
  // Items of 256 rows x 64 weight rows: the weight block (64 x K) is reused by all 256 rows.
  constexpr std::int64_t kRows = 256, kCols = 64;
  const std::int64_t row_blocks = (M + kRows - 1) / kRows, col_blocks = (N + kCols - 1) / kCols;
  cpu::parallel_for(row_blocks * col_blocks, threads, [&](std::int64_t item) {
    const std::int64_t m0 = item / col_blocks * kRows, n0 = item % col_blocks * kCols;
    kt.gemm_nk[wt](A + m0 * K, K, std::min(kRows, M - m0), W, K, n0, std::min(N, n0 + kCols), K, C + m0 * N, N,
                   false);
  });
}

}  // namespace moekit
