// The ceilings of the floor on a GPU (DESIGN §3), measured on the spot: a device-to-device copy and
// a large cuBLAS GEMM in the layer's dtype, each the median of event-timed reps.
#if MOEKIT_HAVE_CUDA

#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "bench.hpp"
#include "ceilings.hpp"
#include "cuda_util.hpp"
#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/tensor.hpp"
#include "stats.hpp"
#include "table.hpp"

namespace moekit_cli {
namespace {

constexpr std::uint64_t kCopyBytes = std::uint64_t(1) << 30;  // per buffer: ~20x the largest L2
constexpr int kCopyWarmup = 2, kCopyReps = 10;
constexpr std::int64_t kGemmN = 8192;  // the size of DESIGN §3's reference rate
constexpr int kGemmWarmup = 3, kGemmReps = 10;
constexpr int kGemmSamples = 32;  // entries of the product checked on the host

void check_cublas(cublasStatus_t status, const std::string& what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw moekit::Error(moekit::Errc::device, what + ": " + cublasGetStatusString(status));
}

class Cublas {
 public:
  Cublas() { check_cublas(cublasCreate(&handle_), "cublasCreate"); }
  ~Cublas() {
    if (handle_) cublasDestroy(handle_);
  }
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;
  cublasHandle_t get() const noexcept { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

std::string cublas_version() {
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) != CUBLAS_STATUS_SUCCESS ||
      cublasGetProperty(MINOR_VERSION, &minor) != CUBLAS_STATUS_SUCCESS ||
      cublasGetProperty(PATCH_LEVEL, &patch) != CUBLAS_STATUS_SUCCESS)
    return "cuBLAS";
  return "cuBLAS " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

// Times `reps` calls of `run` after `warmup`, each alone between two events; seconds per call.
template <class Run>
std::vector<double> time_reps(const cu::Stream& stream, int warmup, int reps, Run run) {
  const cu::Event start, stop;
  for (int i = 0; i < warmup; ++i) run();
  stream.synchronize("warm-up of a ceiling");
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    start.record(stream);
    run();
    stop.record(stream);
    times.push_back(cu::elapsed_s(start, stop));
  }
  return times;
}

CopyCeiling measure_copy(const cu::Stream& stream) {
  const cu::DeviceBuffer src(kCopyBytes, "the copy ceiling's source"), dst(kCopyBytes, "the copy ceiling's destination");
  cu::check(cudaMemsetAsync(src.get(), 1, kCopyBytes, stream.get()), "cudaMemsetAsync");
  cu::check(cudaMemsetAsync(dst.get(), 0, kCopyBytes, stream.get()), "cudaMemsetAsync");
  const std::vector<double> t = time_reps(stream, kCopyWarmup, kCopyReps, [&] {
    cu::check(cudaMemcpyAsync(dst.get(), src.get(), kCopyBytes, cudaMemcpyDeviceToDevice, stream.get()),
              "cudaMemcpyAsync device to device");
  });
  CopyCeiling c;
  c.bytes_per_s = 2.0 * double(kCopyBytes) / median(t);
  c.best_bytes_per_s = 2.0 * double(kCopyBytes) / *std::min_element(t.begin(), t.end());
  c.buffer_bytes = kCopyBytes;
  c.threads = 0;
  c.reps = kCopyReps;
  c.method = "cudaMemcpyAsync device to device of " + bytes_iec(kCopyBytes);
  c.statistic = "median";
  return c;
}

// A few entries of C = op(A) B against a double-precision dot product on the host. The bound
// allows the output's rounding (bf16/f16: 2^-8 relative) and fp32 accumulation; a library that
// skipped work or mixed up operands is off by O(|C|).
bool product_ok(moekit::DType dtype, const void* a, const void* b, const void* c, std::int64_t n) {
  moekit::Tensor row_a(dtype, {n}), row_b(dtype, {n}), entry(dtype, {1});
  const std::size_t esize = moekit::dtype_size(dtype);
  const double rel = dtype == moekit::DType::f32 ? 1e-6 : 0x1.0p-7;
  const double acc = dtype == moekit::DType::f32 ? 1e-6 : 1e-4;
  for (int s = 0; s < kGemmSamples; ++s) {
    const std::int64_t i = (s * 997 + 3) % n, j = (s * 631 + 17) % n;
    // Column-major: op(A) = A^T, so row i of op(A) is A's column i, contiguous; likewise B's column j.
    cu::download(row_a.data<void>(), static_cast<const char*>(a) + std::size_t(i * n) * esize, n * esize, "A");
    cu::download(row_b.data<void>(), static_cast<const char*>(b) + std::size_t(j * n) * esize, n * esize, "B");
    cu::download(entry.data<void>(), static_cast<const char*>(c) + std::size_t(i + j * n) * esize, esize, "C");
    double want = 0, magnitude = 0;
    for (std::int64_t k = 0; k < n; ++k) {
      const double p = moekit::element_as_double(row_a, k) * moekit::element_as_double(row_b, k);
      want += p;
      magnitude += std::fabs(p);
    }
    const double got = moekit::element_as_double(entry, 0);
    if (!(std::fabs(got - want) <= rel * std::fabs(want) + acc * magnitude)) return false;
  }
  return true;
}

GemmRate measure_gemm(const cu::Stream& stream, moekit::DType dtype, int threads) {
  const std::int64_t n = kGemmN;
  const std::uint64_t bytes = std::uint64_t(n * n) * moekit::dtype_size(dtype);
  const cu::DeviceBuffer a(bytes, "the GEMM ceiling's A"), b(bytes, "the GEMM ceiling's B"), c(bytes, "the GEMM ceiling's C");
  // Random, non-zero operands: no hardware or library shortcut for zeros or repeats applies.
  cu::upload_uniform(a.get(), dtype, std::uint64_t(n * n), 1.0f, 101, threads);
  cu::upload_uniform(b.get(), dtype, std::uint64_t(n * n), 1.0f, 202, threads);
  cu::check(cudaDeviceSynchronize(), "uploading the GEMM operands");

  const Cublas cublas;
  check_cublas(cublasSetStream(cublas.get(), stream.get()), "cublasSetStream");
  // The default math mode: tensor cores for bf16/f16, and for f32 plain FP32 (no TF32).
  check_cublas(cublasSetMathMode(cublas.get(), CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  const float alpha = 1.0f, beta = 0.0f;
  const int in = int(n);
  GemmRate r;
  r.library = cublas_version();
  r.n = n;
  r.statistic = "median";
  r.reps = kGemmReps;
  std::function<void()> run;
  if (dtype == moekit::DType::f32) {
    r.routine = "cublasSgemm f32 x f32 -> f32, default math mode (FP32, no TF32)";
    run = [&] {
      check_cublas(cublasSgemm(cublas.get(), CUBLAS_OP_T, CUBLAS_OP_N, in, in, in, &alpha,
                               static_cast<const float*>(a.get()), in, static_cast<const float*>(b.get()), in, &beta,
                               static_cast<float*>(c.get()), in),
                   "cublasSgemm");
    };
  } else {
    const cudaDataType type = dtype == moekit::DType::bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const std::string name(moekit::dtype_name(dtype));
    r.routine = "cublasGemmEx " + name + " x " + name + " -> " + name + ", fp32 accumulate";
    run = [&, type] {
      check_cublas(cublasGemmEx(cublas.get(), CUBLAS_OP_T, CUBLAS_OP_N, in, in, in, &alpha, a.get(), type, in, b.get(),
                                type, in, &beta, c.get(), type, in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "cublasGemmEx");
    };
  }
  const std::vector<double> t = time_reps(stream, kGemmWarmup, kGemmReps, run);
  r.flops_per_s = 2.0 * double(n) * double(n) * double(n) / median(t);
  r.correct = product_ok(dtype, a.get(), b.get(), c.get(), n);
  return r;
}

}  // namespace

std::uint64_t cuda_ceiling_memory_bytes(moekit::DType dtype) {
  const std::uint64_t copy = 2 * cu::allocation_bytes(kCopyBytes);
  // cuBLAS's own workspace is small next to the operands; a generous 256 MiB covers it.
  const std::uint64_t gemm =
      3 * cu::allocation_bytes(std::uint64_t(kGemmN * kGemmN) * moekit::dtype_size(dtype)) + (std::uint64_t(256) << 20);
  return std::max(copy, gemm);
}

Ceilings measure_cuda_ceilings(moekit::DType dtype, int threads) {
  Ceilings c;
  c.threads = threads;
  c.where = describe_gpu().name;
  const cu::Stream stream;
  c.copy = measure_copy(stream);
  c.gemm_candidates.push_back(measure_gemm(stream, dtype, threads));
  if (!c.gemm_candidates.back().correct)
    throw moekit::Error(moekit::Errc::device, "the cuBLAS GEMM of the ceiling returned a wrong product (" +
                                                  c.gemm_candidates.back().routine + ")");
  c.gemm = c.gemm_candidates.back();
  return c;
}

}  // namespace moekit_cli

#endif  // MOEKIT_HAVE_CUDA
