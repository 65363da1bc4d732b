// The timed part of `moekit bench` on the cpu: the stack of MoE blocks (random, or a checkpoint's
// layers), then for each T fresh inputs and, per scope and backend, warm-up calls and timed calls.
// Scope experts: the experts call of every layer, with a workspace allocated outside the timing.
// Scope block: every block's forward (router, experts, shared MLP), as a model would call it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <new>

#include <sys/mman.h>

#include "bench.hpp"
#include "bench_block.hpp"
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

using Launch = std::function<void(moekit::Workspace)>;

void measure(const BenchPlan& plan, const moekit::Backend& backend, const Launch& launch,
             const moekit::ExpertsProblem& problem, bool own_workspace, BenchRow& row) {
  if (const moekit::Support s = backend.supports(problem); !s.ok) {
    row.status = BenchRow::Status::skipped;
    row.detail = s.reason;
    return;
  }
  row.workspace_bytes = backend.workspace_bytes(problem);
  try {
    // The block's forward takes its scratch from the library's pool, like a model would.
    const MappedWorkspace scratch(own_workspace ? row.workspace_bytes : 0);
    const moekit::Workspace workspace = scratch.workspace();
    // The workspace pages are untouched so far: they count once the backend writes them.
    reset_peak_rss();
    if (auto rss = resident_set()) row.rss_before = rss->current;
    for (int i = 0; i < plan.warmup; ++i) launch(workspace);
    row.times_s.reserve(std::size_t(plan.repeat));
    for (int i = 0; i < plan.repeat; ++i) {
      const auto start = Clock::now();
      launch(workspace);
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
  const BenchShape& shape = plan.shape;
  if (shape.model_dir.empty())
    note("building ", plan.layers, " random MoE block", plan.layers > 1 ? "s" : "", " (experts ",
         bytes_iec(weight_bytes(shape)), " each) ...\n");
  else
    note("loading ", plan.layers, " MoE layer", plan.layers > 1 ? "s" : "", " of ", shape.model_dir, " ...\n");
  std::vector<moekit::MoeBlock> blocks = make_blocks(plan);
  const std::size_t L = blocks.size();
  auto floor_of = [&](double bytes, double flops) {
    return std::max(bytes / ceilings.copy.bytes_per_s, flops / ceilings.gemm.flops_per_s);
  };

  std::vector<BenchRow> rows;
  const std::size_t total = plan.points.size() * plan.scopes.size() * plan.backends.size();
  for (const BenchPoint& point : plan.points) {
    const std::int64_t T = point.tokens;
    // Per layer, the experts call's routing: the layer's router law on N(0, 1) logits (bench_data).
    // The activations chain: layer l reads act[l] and writes act[l + 1].
    std::vector<BenchInputs> inputs;
    std::vector<moekit::Tensor> act;
    for (std::size_t l = 0; l < L; ++l) {
      inputs.push_back(make_inputs(shape, T, plan.seed + 1000003u * l, plan.threads));
      act.emplace_back(shape.dtype, std::initializer_list<std::int64_t>{T, shape.hidden});
    }
    std::vector<moekit::TensorView> x{inputs[0].hidden.view()};
    for (const moekit::Tensor& a : act) x.push_back(a.view());
    std::vector<moekit::ExpertsCall> calls;
    std::uint64_t hit = 0;
    double flops = 0;
    std::int64_t experts_hit = 0;
    for (std::size_t l = 0; l < L; ++l) {
      calls.push_back(blocks[l].experts_call(x[l], x[l + 1], inputs[l].top_k_index, inputs[l].top_k_weights));
      const moekit::ExpertsProblem p = moekit::validate(calls.back());
      hit += moekit::hit_weight_bytes(calls.back(), p);
      flops += moekit::call_flops(calls.back(), p);
      experts_hit += inputs[l].experts_hit;
    }
    const moekit::ExpertsProblem problem = moekit::validate(calls[0]);

    for (Scope scope : plan.scopes) {
      BlockWork work{hit, flops, experts_hit};
      if (scope == Scope::block) {
        // One untimed pass routes every block, for the block's floor (router, hit experts, shared).
        work = {};
        for (const moekit::Backend* b : plan.backends)
          if (b->supports(problem).ok) {
            for (std::size_t l = 0; l < L; ++l) {
              blocks[l].forward(x[l], x[l + 1], b->name(), {plan.threads, nullptr});
              const BlockWork w = block_work(blocks[l], x[l], x[l + 1]);
              work.bytes += w.bytes;
              work.flops += w.flops;
              work.experts_hit += w.experts_hit;
            }
            break;
          }
      }
      for (const moekit::Backend* backend : plan.backends) {
        BenchRow row;
        row.backend = std::string(backend->name());
        row.scope = scope;
        row.batch = point.batch;
        row.seq = point.seq;
        row.tokens = T;
        row.experts_hit = work.experts_hit;
        row.hit_bytes = work.bytes;
        row.flops = work.flops;
        row.floor_s = floor_of(double(work.bytes), work.flops);
        const moekit::RunContext context{plan.threads, nullptr};
        Launch launch;
        if (scope == Scope::experts)
          launch = [&](moekit::Workspace ws) {
            for (const moekit::ExpertsCall& call : calls) moekit::experts(call, backend->name(), context, ws);
          };
        else
          launch = [&](moekit::Workspace) {
            for (std::size_t l = 0; l < L; ++l) blocks[l].forward(x[l], x[l + 1], backend->name(), context);
          };
        note("[", rows.size() + 1, "/", total, "] ", row.backend, " ", scope_name(scope), " T=", T, " ... ");
        measure(plan, *backend, launch, problem, scope == Scope::experts, row);
        switch (row.status) {
          case BenchRow::Status::ok: note(fixed(row.median_s * 1e3, 3), " ms\n"); break;
          case BenchRow::Status::skipped: note("skipped\n"); break;
          case BenchRow::Status::failed: note("FAILED\n"); break;
          case BenchRow::Status::not_capturable: note("cannot be captured\n"); break;  // CUDA only
        }
        rows.push_back(std::move(row));
      }
    }
  }
  return rows;
}

}  // namespace moekit_cli
