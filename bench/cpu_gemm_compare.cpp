// Measures moekit's CPU GEMM kernel against OpenBLAS on the products the experts call makes:
// C[M, N] = A[M, K] @ W[N, K]^T with M the rows one expert receives and (N, K) one projection.
// Build: cmake -DMOEKIT_BUILD_GEMM_COMPARE=ON; run: build/cpu_gemm_compare --benchmark_min_time=1
// The result decides which GEMM the CPU backends use (docs/cpu-kernels.md). Debian's OpenBLAS
// declares cblas_sbgemm but does not export it, so bf16 weights are compared with OpenBLAS's f32
// product (twice the weight bytes: the best that library offers for them).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdint>
#include <vector>

#include "moekit/cpu.hpp"
#include "moekit/inputs.hpp"
#include "moekit/tensor.hpp"

namespace {

using moekit::DType;

// Solar-Open-100B's projections: gate_up (N = 2I = 2560, K = H = 4096), down (N = H, K = I = 1280).
struct Shape {
  std::int64_t n, k;
};
constexpr Shape kGateUp{2560, 4096}, kDown{4096, 1280};

// Enough distinct weight matrices that they cannot all sit in cache: each iteration reads one
// expert's weights from memory, as the real call does.
constexpr int kExperts = 16;

struct Operands {
  moekit::Tensor a, w, c;
  Operands(std::int64_t m, Shape s, DType a_dtype, DType w_dtype)
      : a(a_dtype, {m, s.k}), w(w_dtype, {kExperts, s.n, s.k}), c(DType::f32, {m, s.n}) {
    moekit::fill_uniform(a.view(), 1.0f, 1);
    moekit::fill_uniform(w.view(), 0.02f, 2);
  }
  template <class T>
  const T* expert(int e, Shape s) const {
    return w.data<T>() + std::int64_t(e) * s.n * s.k;
  }
};

void report(benchmark::State& state, std::int64_t m, Shape s, std::size_t w_elem) {
  const double iters = double(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * s.n * s.k * iters, benchmark::Counter::kIsRate,
                                                 benchmark::Counter::kIs1000);
  state.counters["weight_GB/s"] = benchmark::Counter(double(s.n * s.k * w_elem) * iters,
                                                     benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void moekit_bf16(benchmark::State& state, Shape s) {
  const std::int64_t m = state.range(0);
  Operands op(m, s, DType::f32, DType::bf16);
  int e = 0;
  for (auto _ : state) {
    moekit::cpu_matmul_nt(op.a.data<float>(), m, s.k, op.expert<moekit::bf16>(e, s), DType::bf16, s.n,
                          op.c.data<float>(), 0);
    e = (e + 1) % kExperts;
  }
  report(state, m, s, 2);
}

void moekit_f32(benchmark::State& state, Shape s) {
  const std::int64_t m = state.range(0);
  Operands op(m, s, DType::f32, DType::f32);
  int e = 0;
  for (auto _ : state) {
    moekit::cpu_matmul_nt(op.a.data<float>(), m, s.k, op.expert<float>(e, s), DType::f32, s.n, op.c.data<float>(), 0);
    e = (e + 1) % kExperts;
  }
  report(state, m, s, 4);
}

void openblas_sgemm(benchmark::State& state, Shape s) {
  const std::int64_t m = state.range(0);
  Operands op(m, s, DType::f32, DType::f32);
  int e = 0;
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(s.n), blasint(s.k), 1.0f,
                op.a.data<float>(), blasint(s.k), op.expert<float>(e, s), blasint(s.k), 0.0f, op.c.data<float>(),
                blasint(s.n));
    e = (e + 1) % kExperts;
  }
  report(state, m, s, 4);
}

// M: decode (1), an expert's share at T = 128 with K = 8 of 128 experts (8), larger batches.
#define MOEKIT_GEMM_CASES(fn)                                                                   \
  BENCHMARK_CAPTURE(fn, gate_up, kGateUp)->Arg(1)->Arg(8)->Arg(64)->Arg(256)->UseRealTime();    \
  BENCHMARK_CAPTURE(fn, down, kDown)->Arg(1)->Arg(8)->Arg(64)->Arg(256)->UseRealTime();

MOEKIT_GEMM_CASES(moekit_bf16)
MOEKIT_GEMM_CASES(moekit_f32)
MOEKIT_GEMM_CASES(openblas_sgemm)

}  // namespace

BENCHMARK_MAIN();
