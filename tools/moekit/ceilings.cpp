#include "ceilings.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "moekit/cpu.hpp"
#include "moekit/error.hpp"
#include "table.hpp"

#if MOEKIT_HAVE_OPENBLAS
#include <cblas.h>
#include <dlfcn.h>
#endif

namespace moekit_cli {
namespace {

constexpr std::uint64_t kCopyBytes = std::uint64_t(1) << 30;  // per buffer: far beyond any cache
constexpr int kCopyReps = 5;
constexpr std::int64_t kGemmN = 2048;  // ~17 GFLOP: a few tenths of a second on a few cores
constexpr int kGemmReps = 3;

using Clock = std::chrono::steady_clock;

struct FreeDeleter {
  void operator()(void* p) const noexcept { std::free(p); }
};
using Buffer = std::unique_ptr<char, FreeDeleter>;

Buffer allocate(std::uint64_t bytes) {
  Buffer b(static_cast<char*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096)));
  if (!b) throw moekit::Error(moekit::Errc::out_of_memory, "cannot allocate " + std::to_string(bytes) +
                                                               " bytes for the ceiling measurement");
  return b;
}

int resolve_threads(int threads) {
  return threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
}

// Runs body(begin, end) over `threads` contiguous slices of [0, bytes), 4 KiB aligned.
template <class Body>
void split(std::uint64_t bytes, int threads, Body body) {
  const std::uint64_t pages = (bytes + 4095) / 4096;
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    const std::uint64_t b = std::min(bytes, pages * i / threads * 4096);
    const std::uint64_t e = std::min(bytes, pages * (i + 1) / threads * 4096);
    pool.emplace_back([=] { body(b, e); });
  }
  for (auto& t : pool) t.join();
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

CopyCeiling measure_copy(int threads) {
  Buffer src = allocate(kCopyBytes), dst = allocate(kCopyBytes);
  // First touch from the threads that copy later, so the pages are faulted in (and NUMA-local)
  // before any timing.
  split(kCopyBytes, threads, [&](std::uint64_t b, std::uint64_t e) {
    std::memset(src.get() + b, 1, e - b);
    std::memset(dst.get() + b, 0, e - b);
  });
  double best = 1e30;
  for (int r = 0; r < kCopyReps; ++r) {
    const auto start = Clock::now();
    split(kCopyBytes, threads, [&](std::uint64_t b, std::uint64_t e) {
      std::memcpy(dst.get() + b, src.get() + b, e - b);
    });
    best = std::min(best, seconds_since(start));
  }
  CopyCeiling c;
  c.bytes_per_s = c.best_bytes_per_s = 2.0 * double(kCopyBytes) / best;
  c.buffer_bytes = kCopyBytes;
  c.threads = threads;
  c.reps = kCopyReps;
  c.method = "memcpy of " + bytes_iec(kCopyBytes) + " split over " + count_of(threads, "thread");
  return c;
}

// Best of kGemmReps after one warm-up call.
template <class Run>
double gemm_rate(std::int64_t n, Run run) {
  run();
  double best = 1e30;
  for (int r = 0; r < kGemmReps; ++r) {
    const auto start = Clock::now();
    run();
    best = std::min(best, seconds_since(start));
  }
  return 2.0 * double(n) * double(n) * double(n) / best;
}

// Multiples of 1/32 in [-0.5, 0.5]: exact in bf16 and f16, and every partial sum of n <= 2^14
// of their products is a multiple of 2^-10 below 2^12, exact in fp32. So any correct GEMM, in any
// summation order and operand format, returns exactly the double-precision product.
std::vector<float> operand(std::int64_t count, int phase) {
  std::vector<float> v(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) v[i] = float(int((i * 7 + phase) % 33) - 16) / 32.0f;
  return v;
}

// C = A B^T, checked on a spread of entries; a library that skips the work shows up here.
bool product_ok(const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c,
                std::int64_t n) {
  for (std::int64_t s = 0; s < 64; ++s) {
    const std::int64_t i = (s * 997) % n, j = (s * 631 + 17) % n;
    double want = 0;
    for (std::int64_t k = 0; k < n; ++k) want += double(a[i * n + k]) * double(b[j * n + k]);
    if (double(c[i * n + j]) != want) return false;
  }
  return true;
}

struct Operands {
  std::int64_t n = kGemmN;
  std::vector<float> a = operand(n * n, 0), b = operand(n * n, 5), c = std::vector<float>(std::size_t(n * n));
  std::vector<std::uint16_t> narrow(const std::vector<float>& v, moekit::DType dtype) const {
    std::vector<std::uint16_t> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
      out[i] = dtype == moekit::DType::bf16 ? moekit::to_bf16(v[i]).bits : moekit::to_f16(v[i]).bits;
    return out;
  }
};

GemmRate measure_moekit(moekit::DType dtype, int threads) {
  Operands m;
  if (dtype != moekit::DType::bf16 && dtype != moekit::DType::f16) dtype = moekit::DType::f32;
  const std::vector<std::uint16_t> w16 = dtype == moekit::DType::f32 ? std::vector<std::uint16_t>{} : m.narrow(m.b, dtype);
  const void* w = dtype == moekit::DType::f32 ? static_cast<const void*>(m.b.data()) : w16.data();
  GemmRate r{"moekit", "cpu_matmul_nt f32 x " + std::string(moekit::dtype_name(dtype)) + " -> f32", m.n, 0};
  r.flops_per_s = gemm_rate(m.n, [&] { moekit::cpu_matmul_nt(m.a.data(), m.n, m.n, w, dtype, m.n, m.c.data(), threads); });
  r.reps = kGemmReps;
  r.correct = product_ok(m.a, m.b, m.c, m.n);
  return r;
}

#if MOEKIT_HAVE_OPENBLAS

std::string openblas_name() {
  // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": the loaded library, not the header's version.
  std::string config = openblas_get_config() ? openblas_get_config() : "OpenBLAS";
  std::size_t end = config.find(' ');
  if (end != std::string::npos) end = config.find(' ', end + 1);
  std::string name = config.substr(0, end);
  if (const char* core = openblas_get_corename()) name += std::string(" (") + core + ")";
  return name;
}

// Sets OpenBLAS's thread count for the lifetime of the guard only.
class OpenblasThreads {
 public:
  explicit OpenblasThreads(int threads) : saved_(openblas_get_num_threads()) { openblas_set_num_threads(threads); }
  ~OpenblasThreads() { openblas_set_num_threads(saved_); }
  OpenblasThreads(const OpenblasThreads&) = delete;
  OpenblasThreads& operator=(const OpenblasThreads&) = delete;

 private:
  int saved_;
};

GemmRate measure_sgemm(int threads) {
  Operands m;
  OpenblasThreads guard(threads);
  const blasint n = blasint(m.n);
  GemmRate r{openblas_name(), "cblas_sgemm f32 x f32 -> f32", m.n, 0};
  r.flops_per_s = gemm_rate(m.n, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, m.a.data(), n, m.b.data(), n, 0.0f,
                m.c.data(), n);
  });
  r.reps = kGemmReps;
  r.correct = product_ok(m.a, m.b, m.c, m.n);
  return r;
}

// The header is no evidence: Debian's OpenBLAS 0.3.21 declares cblas_sbgemm in cblas.h but, built
// without BUILD_BFLOAT16, does not export it. So the loaded library is asked at run time.
using SbgemmFn = void (*)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint, float,
                          const std::uint16_t*, blasint, const std::uint16_t*, blasint, float, float*, blasint);

SbgemmFn find_sbgemm() { return reinterpret_cast<SbgemmFn>(dlsym(RTLD_DEFAULT, "cblas_sbgemm")); }

GemmRate measure_sbgemm(SbgemmFn sbgemm, int threads) {
  Operands m;
  const std::vector<std::uint16_t> a = m.narrow(m.a, moekit::DType::bf16), b = m.narrow(m.b, moekit::DType::bf16);
  OpenblasThreads guard(threads);
  const blasint n = blasint(m.n);
  GemmRate r{openblas_name(), "cblas_sbgemm bf16 x bf16 -> f32", m.n, 0};
  r.flops_per_s = gemm_rate(m.n, [&] {
    sbgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, m.c.data(), n);
  });
  r.reps = kGemmReps;
  r.correct = product_ok(m.a, m.b, m.c, m.n);
  return r;
}

#endif  // MOEKIT_HAVE_OPENBLAS

}  // namespace

std::uint64_t ceiling_memory_bytes() { return 2 * kCopyBytes; }

Ceilings measure_ceilings(moekit::DType dtype, int threads) {
  Ceilings c;
  c.threads = resolve_threads(threads);
  c.where = count_of(c.threads, "thread");
  c.copy = measure_copy(c.threads);
#if MOEKIT_HAVE_OPENBLAS
  c.gemm_candidates.push_back(measure_sgemm(c.threads));
  if (dtype == moekit::DType::bf16) {
    if (SbgemmFn sbgemm = find_sbgemm())
      c.gemm_candidates.push_back(measure_sbgemm(sbgemm, c.threads));
    else
      c.notes.push_back("cblas_sbgemm: not exported by the loaded OpenBLAS (built without bfloat16)");
  }
#else
  c.notes.push_back("OpenBLAS: not found at build time");
#endif
  c.gemm_candidates.push_back(measure_moekit(dtype, c.threads));
  const GemmRate* best = nullptr;
  for (const GemmRate& g : c.gemm_candidates)
    if (g.correct && (!best || g.flops_per_s > best->flops_per_s)) best = &g;
  if (!best) throw moekit::Error(moekit::Errc::unsupported, "no GEMM returned a correct product for the ceiling");
  c.gemm = *best;
  return c;
}

}  // namespace moekit_cli
