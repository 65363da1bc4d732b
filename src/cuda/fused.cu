// fused on CUDA: the weight-streaming gemv path for decode-sized batches, the shared grouped
// pipeline beyond (see fused.hpp). Sync-free and graph-capturable on both paths.
#include "cuda/fused.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <type_traits>

#include "cuda/backend_base.hpp"
#include "cuda/backends.hpp"
#include "cuda/kernels/fused_gemv.cuh"

namespace moekit::cuda {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Mean rows per hit expert: T*K spread over at most E experts.
double rows_per_hit_expert(const ExpertsProblem& p) {
  const double n = double(p.tokens * p.top_k);
  return std::max(1.0, n / double(std::min<std::int64_t>(p.experts, p.tokens * p.top_k)));
}

// Calls f(nt, rg) with both as compile-time constants (std::integral_constant), for the
// instantiated gemv shapes: nt in {1, 2, 4}, rg in {1, 2}.
template <class F>
cudaError_t with_gemv_shape(int nt, int rg, F&& f) {
  auto by_nt = [&](auto rg_c) -> cudaError_t {
    switch (nt) {
      case 1: return f(std::integral_constant<int, 1>{}, rg_c);
      case 2: return f(std::integral_constant<int, 2>{}, rg_c);
      case 4: return f(std::integral_constant<int, 4>{}, rg_c);
      default: return cudaErrorInvalidValue;
    }
  };
  if (rg == 1) return by_nt(std::integral_constant<int, 1>{});
  if (rg == 2) return by_nt(std::integral_constant<int, 2>{});
  return cudaErrorInvalidValue;
}

template <class T, class Id>
cudaError_t combine_dispatch(const ExpertsCall& call, const ExpertsProblem& p, const T* y, cudaStream_t s) {
  const TensorView& w = call.top_k_weights;
  const Id* ids = call.top_k_index.as<const Id>();
  T* out = call.output.as<T>();
  const int T_ = int(p.tokens), K = int(p.top_k), E = int(p.experts), H = int(p.hidden);
  if (p.routing_dtype == DType::f32)
    return kernels::launch_fused_combine(y, H, ids, call.top_k_index.strides[0], T_, K, E, w.as<const float>(),
                                         w.strides[0], out, call.output.strides[0], s);
  return kernels::launch_fused_combine(y, H, ids, call.top_k_index.strides[0], T_, K, E, w.as<const T>(), w.strides[0],
                                       out, call.output.strides[0], s);
}

// The gemv path's scratch: h, y and (one-kernel plans) the cleared-per-call counters.
struct GemvScratch {
  void* h = nullptr;
  void* y = nullptr;  // the activation dtype
  int* counters = nullptr;
  std::size_t counter_ints = 0;
};

template <class T, class Id>
void run_gemv(const ExpertsCall& call, const ExpertsProblem& p, const FusedPlan& plan, const GemvScratch& ws,
              cudaStream_t stream) {
  const ExpertsOptions& o = p.options;
  const std::int64_t H = p.hidden, I = p.intermediate, R = p.gate_up_rows();
  kernels::GemvParams g;
  g.ids = call.top_k_index.data;
  g.id_stride = call.top_k_index.strides[0];
  g.tokens = int(p.tokens);
  g.top_k = int(p.top_k);
  g.experts = int(p.experts);
  g.act = kernel_activation(o);

  kernels::GemvParams g1 = g;
  g1.a = call.hidden_states.data;
  g1.lda = call.hidden_states.strides[0];
  g1.a_div = int(p.top_k);
  g1.w = call.gate_up_proj.data;
  g1.w_expert_stride = R * H;
  g1.ldw = H;
  g1.n_weights = int(R);
  g1.kdim = int(H);
  g1.inter = int(I);
  g1.epilogue = !o.has_gate ? kernels::Epilogue::no_gate
                : o.gate_layout == GateLayout::interleaved ? kernels::Epilogue::gate_interleaved
                                                           : kernels::Epilogue::gate_concatenated;
  g1.bias = p.has_bias ? call.gate_up_proj_bias.data : nullptr;
  g1.out = ws.h;
  g1.ldo = I;

  kernels::GemvParams g2 = g;
  g2.a = ws.h;
  g2.lda = I;
  g2.a_div = 1;
  g2.w = call.down_proj.data;
  g2.w_expert_stride = H * I;
  g2.ldw = I;
  g2.n_weights = int(H);
  g2.kdim = int(I);
  g2.inter = int(I);
  g2.epilogue = kernels::Epilogue::down;
  g2.bias = p.has_bias ? call.down_proj_bias.data : nullptr;
  g2.out = ws.y;
  g2.ldo = H;

  if (plan.one_kernel) {
    kernels::Gemv1kParams k;
    k.up = g1;
    k.down = g2;
    k.ids_i64 = std::is_same_v<Id, std::int64_t>;
    k.weights = call.top_k_weights.data;
    k.weight_stride = call.top_k_weights.strides[0];
    k.weights_f32 = p.routing_dtype == DType::f32;
    k.out = call.output.data;
    k.out_stride = call.output.strides[0];
    check(with_gemv_shape(plan.nt, plan.rg,
                          [&](auto nt, auto rg) {
                            return kernels::launch_fused_gemv1k<T, nt(), rg()>(k, p.device.index, ws.counters,
                                                                                ws.counter_ints, stream);
                          }),
          "fused (cuda): one-kernel gemv");
    return;
  }
  const auto gemv = [&](const kernels::GemvParams& g) {
    return with_gemv_shape(plan.nt, plan.rg, [&](auto nt, auto rg) {
      return kernels::launch_fused_gemv<T, Id, nt(), rg()>(g, stream);
    });
  };
  check(gemv(g1), "fused (cuda): gate_up gemv");
  check(gemv(g2), "fused (cuda): down gemv");
  check(combine_dispatch<T, Id>(call, p, static_cast<const T*>(ws.y), stream), "fused (cuda): combine");
}

template <class T>
void run_gemv_ids(const ExpertsCall& call, const ExpertsProblem& p, const FusedPlan& plan, const GemvScratch& ws,
                  cudaStream_t stream) {
  if (p.index_dtype == DType::i32) run_gemv<T, std::int32_t>(call, p, plan, ws, stream);
  else run_gemv<T, std::int64_t>(call, p, plan, ws, stream);
}

class Fused final : public CudaBackend {
 public:
  std::string_view name() const override { return "fused"; }
  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace ws, const RunContext& ctx) const override {
    run_fused(call, p, default_fused_plan(call, p), ws, ctx);
  }

 protected:
  // Both paths use the grouped layout: the gemv path its h and y sections only.
  Strategy strategy() const override { return Strategy::grouped; }
};

}  // namespace

std::string FusedPlan::describe() const {
  std::ostringstream s;
  if (path == Path::gemv) s << (one_kernel ? "gemv1k" : "gemv") << " nt=" << nt << " rg=" << rg;
  else if (bm == 0) s << "grouped bm=auto";
  else s << "grouped bm=" << bm;
  return s.str();
}

FusedPlan parse_fused_plan(const std::string& text) {
  FusedPlan plan;
  std::istringstream in(text);
  std::string path, field;
  in >> path;
  auto value = [&](const std::string& f, const char* key, int& out) {
    const std::string k = std::string(key) + "=";
    if (f.rfind(k, 0) != 0) return false;
    const std::string v = f.substr(k.size());
    if (v == "auto" && std::string(key) == "bm") out = 0;
    else {
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0') throw Error(Errc::invalid_argument, "fused plan '" + text + "': bad value in " + f);
      out = int(n);
    }
    return true;
  };
  if (path == "gemv" || path == "gemv1k") {
    plan.path = FusedPlan::Path::gemv;
    plan.one_kernel = path == "gemv1k";
    while (in >> field)
      if (!value(field, "nt", plan.nt) && !value(field, "rg", plan.rg))
        throw Error(Errc::invalid_argument, "fused plan '" + text + "': unknown field " + field);
    if ((plan.nt != 1 && plan.nt != 2 && plan.nt != 4) || (plan.rg != 1 && plan.rg != 2))
      throw Error(Errc::invalid_argument, "fused plan '" + text + "': nt must be 1, 2 or 4 and rg 1 or 2");
  } else if (path == "grouped") {
    plan.path = FusedPlan::Path::grouped;
    while (in >> field)
      if (!value(field, "bm", plan.bm))
        throw Error(Errc::invalid_argument, "fused plan '" + text + "': unknown field " + field);
    if (plan.bm != 0 && plan.bm != 16 && plan.bm != 32 && plan.bm != 64 && plan.bm != 128)
      throw Error(Errc::invalid_argument, "fused plan '" + text + "': bm must be 16, 32, 64, 128 or auto");
  } else {
    throw Error(Errc::invalid_argument, "fused plan '" + text + "': expected 'gemv ...', 'gemv1k ...' or 'grouped ...'");
  }
  return plan;
}

Support fused_gemv_fits(const ExpertsCall& call, const ExpertsProblem& p) {
  if (p.dtype != DType::bf16 && p.dtype != DType::f16) return Support::no("the gemv path needs bf16 or f16");
  if (p.options.transposed) return Support::no("the gemv path needs [N, K] (not transposed) weights");
  if (p.hidden % 8 != 0 || p.intermediate % 8 != 0) return Support::no("the gemv path needs H and I multiples of 8");
  if (p.tokens * p.top_k > kernels::kGemvMaxPairs)
    return Support::no("the gemv path takes T*K <= " + std::to_string(kernels::kGemvMaxPairs) + " pairs");
  if (call.hidden_states.strides[0] % 8 != 0 || !aligned16(call.hidden_states.data) ||
      !aligned16(call.gate_up_proj.data) || !aligned16(call.down_proj.data))
    return Support::no("the gemv path needs 16-byte aligned hidden_states and weight rows");
  return Support::yes();
}

// A CTA of the gemv path takes its expert's tokens 8 x nt at a time and streams its weight rows
// again for every further pass, so an expert with more tokens than one pass holds costs another
// read of its weights. The mean rows per expert says nothing of that: real routers (and the
// block's, on random weights) send one expert many more tokens than the mean. With T <= 8 x nt no
// expert can need a second pass (a token picks an expert at most once). Measured (H100, solar,
// block routing, docs/perf-notes.md): T = 16 nt=1 1.26 ms, nt=2 0.98 ms; T = 64 nt=1 2.02 ms,
// nt=2 1.50 ms, nt=4 1.64 ms; on even routing nt=2 costs 3% at T = 16 and nothing at T = 64.
int gemv_tokens_per_pass(std::int64_t tokens) { return tokens <= 8 ? 1 : 2; }

FusedPlan default_fused_plan(const ExpertsCall& call, const ExpertsProblem& p) {
  FusedPlan plan;
  if (const char* env = std::getenv("MOEKIT_FUSED_PLAN"); env && *env) {  // tuning knob (docs/cuda.md)
    return parse_fused_plan(env);  // a gemv plan that does not fit the call is refused in run_fused
  }
  // The gemv path re-reads each token row once per 16 weight rows (from L2): past ~8 rows per
  // hit expert that traffic and the serial K-split reduction cost more than the grouped GEMMs'
  // shared-memory reuse saves.
  // Measured on solar-open-100b (docs/perf-notes.md v5): gemv 1.02x the floor at T = 16..64
  // (m <= 4), 1.20x at T = 128 (m = 8) where grouped_mm gives 1.07x.
  const double m = rows_per_hit_expert(p);
  if (fused_gemv_fits(call, p).ok && m <= 6.0) {
    plan.path = FusedPlan::Path::gemv;
    plan.nt = gemv_tokens_per_pass(p.tokens);
    plan.rg = 1;
  }
  return plan;
}

void run_fused(const ExpertsCall& call, const ExpertsProblem& p, const FusedPlan& plan, Workspace ws,
               const RunContext& ctx) {
  if (p.tokens == 0) return;
  const WorkspaceLayout l = workspace_layout(p, Strategy::grouped);
  if (ws.bytes < l.bytes || ws.data == nullptr)
    throw Error(Errc::invalid_argument, "fused (cuda) needs a device workspace of " + std::to_string(l.bytes) +
                                            " bytes, got " + std::to_string(ws.bytes));
  DeviceGuard guard(p.device.index);
  auto stream = static_cast<cudaStream_t>(ctx.stream);
  if (plan.path == FusedPlan::Path::gemv) {
    if (Support s = fused_gemv_fits(call, p); !s.ok)
      throw Error(Errc::unsupported, "fused plan '" + plan.describe() + "' cannot run " + p.describe() + ": " + s.reason);
    const GemvScratch scratch{at<void>(ws, l.h), at<void>(ws, l.y), at<int>(ws, l.counters), l.counter_ints};
    if (p.dtype == DType::bf16) run_gemv_ids<__nv_bfloat16>(call, p, plan, scratch, stream);
    else run_gemv_ids<__half>(call, p, plan, scratch, stream);
    return;
  }
  GemmPlan gp = plan_gemms(call, p, Strategy::grouped);
  if (plan.bm != 0 && gp.tensor_cores) gp.bm = plan.bm;
  const std::int64_t N = p.tokens * p.top_k;
  const int slots = int((N + gp.bm - 1) / gp.bm + std::min<std::int64_t>(p.experts, N));
  launch_grouped_routing(call, p, gp.bm, ws, l, stream, "fused");
  launch_expert_gemms(call, p, gp, at<kernels::Tile>(ws, l.tiles), at<int>(ws, l.num_tiles), slots, at<int>(ws, l.perm),
                      at<void>(ws, l.h), at<void>(ws, l.y), stream, "fused");
  launch_combine(call, p, at<int>(ws, l.inv), at<void>(ws, l.y), stream, "fused");
}

std::unique_ptr<Backend> make_fused_backend() { return std::make_unique<Fused>(); }

}  // namespace moekit::cuda
