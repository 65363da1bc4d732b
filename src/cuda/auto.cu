// auto on CUDA: runs batched_mm, grouped_mm or fused (with a fused plan) per call, from the tune
// table when it has an entry for the device and shape, else fused with fused's own plan (see
// include/moekit/tune.hpp). The choice depends on the sizes, dtypes, layout, pointer alignment and
// the table only, never on the routing: no sync, so auto captures like its candidates.
#include <cmath>
#include <map>
#include <mutex>

#include "cuda/backend_base.hpp"
#include "cuda/backends.hpp"
#include "cuda/fused.hpp"
#include "moekit/tune.hpp"

namespace moekit {
namespace cuda {
namespace {

struct Candidates {
  std::unique_ptr<Backend> batched = make_batched_mm_backend();
  std::unique_ptr<Backend> grouped = make_grouped_mm_backend();
  std::unique_ptr<Backend> fused = make_fused_backend();
};
const Candidates& candidates() {
  static const Candidates c;
  return c;
}

const Backend* candidate_backend(const std::string& name) {
  const Candidates& c = candidates();
  if (name == "batched_mm") return c.batched.get();
  if (name == "grouped_mm") return c.grouped.get();
  if (name == "fused") return c.fused.get();
  return nullptr;
}

// Whether the candidate can run this call; the reason when not.
Support fits(const ExpertsCall& call, const ExpertsProblem& p, const TuneCandidate& c) {
  const Backend* b = candidate_backend(c.backend);
  if (!b) return Support::no("'" + c.backend + "' is not one of auto's candidates (batched_mm, grouped_mm, fused)");
  if (Support s = b->supports(p); !s.ok) return s;
  if (c.backend != "fused") {
    if (!c.plan.empty()) return Support::no("only fused takes a plan");
    return Support::yes();
  }
  if (c.plan.empty()) return Support::yes();
  FusedPlan plan;
  try {
    plan = parse_fused_plan(c.plan);
  } catch (const Error& e) {
    return Support::no(e.what());
  }
  if (plan.path == FusedPlan::Path::gemv) return fused_gemv_fits(call, p);
  return Support::yes();
}

std::size_t auto_workspace(const ExpertsProblem& p) {
  return std::max(workspace_layout(p, Strategy::grouped).bytes, workspace_layout(p, Strategy::batched).bytes);
}

void run_checked(const ExpertsCall& call, const ExpertsProblem& p, const TuneCandidate& c, Workspace ws,
                 const RunContext& ctx) {
  if (Support s = fits(call, p, c); !s.ok)
    throw Error(Errc::unsupported, "candidate '" + c.label() + "' cannot run " + p.describe() + ": " + s.reason);
  if (c.backend == "fused") {
    const FusedPlan plan = c.plan.empty() ? default_fused_plan(call, p) : parse_fused_plan(c.plan);
    run_fused(call, p, plan, ws, ctx);
    return;
  }
  const Backend* b = candidate_backend(c.backend);
  if (ws.bytes < b->workspace_bytes(p))
    throw Error(Errc::invalid_argument, "candidate '" + c.label() + "' needs a workspace of " +
                                            std::to_string(b->workspace_bytes(p)) + " bytes");
  b->run(call, p, ws, ctx);
}

AutoChoice choose(const ExpertsCall& call, const ExpertsProblem& p) {
  std::string why;
  if (const std::shared_ptr<const TuneTable> table = current_tune_table()) {
    const std::string device = cuda_device_name(p.device.index);
    const double lt = std::log(double(std::max<std::int64_t>(1, p.tokens)));
    const TuneEntry* best = nullptr;
    double best_d = 0;
    for (const TuneEntry& e : table->entries) {
      if (e.device != device || e.hidden != p.hidden || e.intermediate != p.intermediate || e.experts != p.experts ||
          e.top_k != p.top_k || e.dtype != p.dtype || e.transposed != p.options.transposed)
        continue;
      const double d = std::fabs(std::log(double(e.tokens)) - lt);
      if (!best || d < best_d || (d == best_d && e.tokens < best->tokens)) best = &e, best_d = d;
    }
    if (best) {
      const TuneCandidate c{best->backend, best->plan};
      const Support s = fits(call, p, c);
      if (s.ok) return {c, "table entry T=" + std::to_string(best->tokens)};
      why = "table entry T=" + std::to_string(best->tokens) + " (" + c.label() + ") cannot run this call: " + s.reason +
            "; ";
    } else {
      why = "no table entry for " + device + " and this shape; ";
    }
  } else {
    why = "no tune table; ";
  }
  return {{"fused", default_fused_plan(call, p).describe()}, why + "fused's own plan"};
}

class Auto final : public CudaBackend {
 public:
  std::string_view name() const override { return "auto"; }
  std::size_t workspace_bytes(const ExpertsProblem& p) const override { return auto_workspace(p); }
  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace ws, const RunContext& ctx) const override {
    if (p.tokens == 0) return;
    run_checked(call, p, choose(call, p).candidate, ws, ctx);
  }

 protected:
  Strategy strategy() const override { return Strategy::grouped; }  // unused: workspace_bytes is auto's own
};

}  // namespace

std::unique_ptr<Backend> make_auto_backend() { return std::make_unique<Auto>(); }

}  // namespace cuda

std::string cuda_device_name(int index) {
  static std::mutex mutex;
  static std::map<int, std::string> names;
  std::lock_guard lock(mutex);
  if (auto it = names.find(index); it != names.end()) return it->second;
  cudaDeviceProp prop{};
  cuda::check(cudaGetDeviceProperties(&prop, index), "auto: cudaGetDeviceProperties");
  return names[index] = prop.name;
}

AutoChoice auto_choice(const ExpertsCall& call) {
  const ExpertsProblem p = validate(call);
  if (p.device.type != DeviceType::cuda) throw Error(Errc::unsupported, "auto chooses among the CUDA backends only");
  return cuda::choose(call, p);
}

std::vector<TuneCandidate> tune_candidates(const ExpertsCall& call) {
  const ExpertsProblem p = validate(call);
  std::vector<TuneCandidate> all = {{"batched_mm", ""}, {"grouped_mm", ""}, {"fused", "grouped bm=auto"}};
  for (int bm : {16, 32, 64, 128}) all.push_back({"fused", "grouped bm=" + std::to_string(bm)});
  for (const char* gemv : {"gemv", "gemv1k"})  // three launches, or one (docs/perf-notes.md v6)
    for (int rg : {1, 2})
      for (int nt : {1, 2, 4})
        all.push_back({"fused", std::string(gemv) + " nt=" + std::to_string(nt) + " rg=" + std::to_string(rg)});
  std::vector<TuneCandidate> out;
  const bool tensor_cores = cuda::plan_gemms(call, p, cuda::Strategy::grouped).tensor_cores;
  for (TuneCandidate& c : all) {
    // The fp32 FMA kernel has one tile height: only bm=auto means something there.
    if (!tensor_cores && c.plan.rfind("grouped bm=", 0) == 0 && c.plan != "grouped bm=auto") continue;
    // A gemv plan that may need a second pass over an expert's weights wins on the tuner's even
    // routing and loses on a real router's skewed one (see cuda::gemv_tokens_per_pass).
    if (c.plan.rfind("gemv", 0) == 0 && cuda::parse_fused_plan(c.plan).nt < cuda::gemv_tokens_per_pass(p.tokens))
      continue;
    if (cuda::fits(call, p, c).ok) out.push_back(std::move(c));
  }
  return out;
}

std::size_t candidate_workspace_bytes(const ExpertsCall& call, const TuneCandidate& c) {
  const ExpertsProblem p = validate(call);
  if (c.backend == "fused") return cuda::workspace_layout(p, cuda::Strategy::grouped).bytes;
  const Backend* b = cuda::candidate_backend(c.backend);
  if (!b) throw Error(Errc::not_found, "'" + c.backend + "' is not one of auto's candidates");
  return b->workspace_bytes(p);
}

void run_candidate(const ExpertsCall& call, const TuneCandidate& c, const RunContext& context, Workspace workspace) {
  const ExpertsProblem p = validate(call);
  if (p.device.type != DeviceType::cuda) throw Error(Errc::unsupported, "tune candidates run on CUDA devices only");
  cuda::run_checked(call, p, c, workspace, context);
}

}  // namespace moekit
