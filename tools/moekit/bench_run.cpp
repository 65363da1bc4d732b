// The timed part of `moekit bench`: one random layer, then for each T fresh inputs and, for each
// backend, warm-up calls and timed calls with a workspace allocated outside the timing.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <new>

#include <sys/mman.h>

#include "bench.hpp"
#include "bench_data.hpp"
#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "stats.hpp"
#include "sysinfo.hpp"
#include "table.hpp"

namespace moekit_cli {
namespace {

using Clock = std::chrono::steady_clock;

// The backend's scratch, mapped fresh from the kernel (page-aligned, so 64-byte aligned as
// Workspace requires): malloc could hand out heap pages that are already resident, and the +RSS
// column would then miss the workspace.
class MappedWorkspace {
 public:
  explicit MappedWorkspace(std::size_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = p;
  }
  ~MappedWorkspace() {
    if (data_) munmap(data_, bytes_);
  }
  MappedWorkspace(const MappedWorkspace&) = delete;
  MappedWorkspace& operator=(const MappedWorkspace&) = delete;
  moekit::Workspace workspace() const { return {data_, bytes_}; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_;
};

void measure(const BenchPlan& plan, const moekit::Backend& backend, const moekit::ExpertsCall& call,
             const moekit::ExpertsProblem& problem, BenchRow& row) {
  if (const moekit::Support s = backend.supports(problem); !s.ok) {
    row.status = BenchRow::Status::skipped;
    row.detail = s.reason;
    return;
  }
  row.workspace_bytes = backend.workspace_bytes(problem);
  const moekit::RunContext context{plan.threads, nullptr};
  try {
    const MappedWorkspace scratch(row.workspace_bytes);
    const moekit::Workspace workspace = scratch.workspace();
    // The workspace pages are untouched so far: they count once the backend writes them.
    reset_peak_rss();
    if (auto rss = resident_set()) row.rss_before = rss->current;
    for (int i = 0; i < plan.warmup; ++i) moekit::experts(call, backend.name(), context, workspace);
    row.times_s.reserve(std::size_t(plan.repeat));
    for (int i = 0; i < plan.repeat; ++i) {
      const auto start = Clock::now();
      moekit::experts(call, backend.name(), context, workspace);
      row.times_s.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    if (auto rss = resident_set()) row.peak_rss = rss->peak;
  } catch (const moekit::Error& e) {
    row.status = BenchRow::Status::failed;
    row.detail = e.what();
    return;
  } catch (const std::bad_alloc&) {
    row.status = BenchRow::Status::failed;
    row.detail = "out of memory";
    return;
  }
  row.median_s = median(row.times_s);
  row.p90_s = p90(row.times_s);
  row.min_s = *std::min_element(row.times_s.begin(), row.times_s.end());
}

}  // namespace

std::vector<BenchRow> run_bench(const BenchPlan& plan, const Ceilings& ceilings) {
  auto note = [&](const auto&... parts) {
    if (!plan.quiet) (std::cerr << ... << parts) << std::flush;
  };
  note("building random weights (", bytes_iec(weight_bytes(plan.shape)), ") ...\n");
  const BenchWeights weights = make_weights(plan.shape, plan.seed, plan.threads);

  std::vector<BenchRow> rows;
  const std::size_t total = plan.tokens.size() * plan.backends.size();
  for (std::int64_t T : plan.tokens) {
    const BenchInputs inputs = make_inputs(plan.shape, T, plan.seed, plan.threads);
    const moekit::ExpertsCall call = make_call(plan.shape, weights, inputs);
    const moekit::ExpertsProblem problem = moekit::validate(call);
    const std::uint64_t hit = moekit::hit_weight_bytes(call, problem);
    const double flops = moekit::call_flops(call, problem);
    const double floor_s =
        std::max(double(hit) / ceilings.copy.bytes_per_s, flops / ceilings.gemm.flops_per_s);
    for (const moekit::Backend* backend : plan.backends) {
      BenchRow row;
      row.backend = std::string(backend->name());
      row.tokens = T;
      row.experts_hit = inputs.experts_hit;
      row.hit_bytes = hit;
      row.flops = flops;
      row.floor_s = floor_s;
      note("[", rows.size() + 1, "/", total, "] ", row.backend, " T=", T, " ... ");
      measure(plan, *backend, call, problem, row);
      switch (row.status) {
        case BenchRow::Status::ok: note(fixed(row.median_s * 1e3, 3), " ms\n"); break;
        case BenchRow::Status::skipped: note("skipped\n"); break;
        case BenchRow::Status::failed: note("FAILED\n"); break;
        case BenchRow::Status::not_capturable: note("cannot be captured\n"); break;  // CUDA only
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

}  // namespace moekit_cli
