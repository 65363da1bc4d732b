// fused on the GPU: every gemv and grouped plan over the conformance matrix (the registered backend
// runs only its default plan there), several passes over one expert's rows, determinism and graph
// capture of the gemv path. Each test skips itself without a GPU.
#include <gtest/gtest.h>

#include <cctype>
#include <ostream>

#include "cuda/cuda_test_util.hpp"
#include "moekit/check.hpp"
#include "moekit/error.hpp"
#include "moekit/tune.hpp"

namespace moekit {
namespace {

// fused with a fixed plan, as auto and the tuner run it, behind the Backend interface the check
// harness drives.
class FusedWithPlan final : public Backend {
 public:
  explicit FusedWithPlan(std::string plan) : plan_(std::move(plan)) {}
  std::string_view name() const override { return "fused"; }
  DeviceType device() const override { return DeviceType::cuda; }
  Support available() const override { return default_registry().get("fused", DeviceType::cuda).available(); }
  Support supports(const ExpertsProblem& p) const override {
    if (plan_.rfind("gemv", 0) == 0) {
      if (p.dtype == DType::f32) return Support::no("gemv: f32");
      if (p.options.transposed) return Support::no("gemv: transposed");
      if (p.hidden % 8 != 0 || p.intermediate % 8 != 0) return Support::no("gemv: H, I % 8");
      if (p.tokens * p.top_k > 1024) return Support::no("gemv: T*K > 1024");
    }
    return default_registry().get("fused", DeviceType::cuda).supports(p);
  }
  std::size_t workspace_bytes(const ExpertsProblem& p) const override {
    return default_registry().get("fused", DeviceType::cuda).workspace_bytes(p);
  }
  void run(const ExpertsCall& call, const ExpertsProblem&, Workspace ws, const RunContext& ctx) const override {
    run_candidate(call, TuneCandidate{"fused", plan_}, ctx, ws);
  }

 private:
  std::string plan_;
};

const char* const kPlans[] = {"gemv nt=1 rg=1", "gemv nt=2 rg=1", "gemv nt=4 rg=1", "gemv nt=1 rg=2",
                              "gemv nt=4 rg=2", "grouped bm=16", "grouped bm=128"};

struct PlanCase {
  std::string plan;
  CheckCase c;
};
void PrintTo(const PlanCase& p, std::ostream* os) { *os << p.plan << " " << p.c.name; }
class FusedPlans : public ::testing::TestWithParam<PlanCase> {};

TEST_P(FusedPlans, MatchesReference) {
  MOEKIT_SKIP_WITHOUT_GPU();
  const FusedWithPlan b(GetParam().plan);
  for (std::uint64_t seed : {1u, 2u}) {
    const CheckResult r = check_backend(b, GetParam().c, seed);
    if (r.skipped) GTEST_SKIP() << r.detail;
    EXPECT_TRUE(r.passed) << GetParam().plan << " " << GetParam().c.name << " seed " << seed << ": rel error "
                          << r.rel_error << " > " << r.tolerance << " " << r.detail;
  }
}

std::vector<PlanCase> plan_cases() {
  std::vector<PlanCase> out;
  for (const char* plan : kPlans)
    for (const CheckCase& c : conformance_cases(true)) out.push_back({plan, c});
  // One expert with more rows than a pass holds (8, 16, 32 tokens): several passes.
  for (const char* plan : kPlans) {
    InputSpec s;
    s.dims = {41, 136, 72, 4, 1};
    s.routing = RoutingPattern::one_expert;
    out.push_back({plan, {"bf16/one_expert_41_rows", s}});
    s.dims = {9, 1024, 320, 16, 4};  // decode-like: H = 16 chunks of 64, I = 5
    s.routing = RoutingPattern::random;
    out.push_back({plan, {"bf16/decode_H1024", s}});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cuda, FusedPlans, ::testing::ValuesIn(plan_cases()),
                         [](const ::testing::TestParamInfo<PlanCase>& info) {
                           std::string n = info.param.plan + "_" + info.param.c.name;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// The decode shape on the default plan (gemv), bitwise equal over runs and through a graph.
TEST(FusedGemv, DeterministicAndCapturable) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {6, 512, 136, 32, 4};
  s.routing = RoutingPattern::sentinels;
  const ExpertsInputs in = make_random_inputs(s, 5);
  cuda_test::DeviceInputs dev(in);
  EXPECT_EQ(auto_choice(dev.call()).candidate.plan.rfind("gemv", 0), 0u) << "the decode shape should take gemv";
  const Backend& b = default_registry().get("fused", DeviceType::cuda);
  const std::size_t bytes = b.workspace_bytes(validate(dev.call()));
  void* ws = nullptr;
  cuda_test::ok(cudaMalloc(&ws, bytes), "workspace");
  cudaStream_t stream;
  cuda_test::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  std::vector<unsigned char> first;
  for (int run = 0; run < 3; ++run) {
    dev.poison_output();
    cuda_test::ok(cudaDeviceSynchronize(), "poison");
    experts(dev.call(), "fused", RunContext{0, stream}, Workspace{ws, bytes});
    cuda_test::ok(cudaStreamSynchronize(stream), "run");
    if (run == 0) first = dev.output_bytes();
    else EXPECT_EQ(first, dev.output_bytes()) << "run " << run << " differs";
  }
  dev.poison_output();
  cuda_test::ok(cudaDeviceSynchronize(), "poison");
  cudaGraph_t graph;
  cuda_test::ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  experts(dev.call(), "fused", RunContext{0, stream}, Workspace{ws, bytes});
  cuda_test::ok(cudaStreamEndCapture(stream, &graph), "end capture");
  cudaGraphExec_t exec;
  cuda_test::ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cuda_test::ok(cudaGraphLaunch(exec, stream), "replay");
  cuda_test::ok(cudaStreamSynchronize(stream), "replay sync");
  EXPECT_EQ(first, dev.output_bytes()) << "graph replay differs";
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  cudaFree(ws);
}

// A gemv plan that cannot run a call is refused with a reason, never swapped for another path.
TEST(FusedGemv, RefusesWhatItCannotRun) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {3, 64, 32, 4, 2};
  s.dtype = DType::f32;
  const ExpertsInputs in = make_random_inputs(s, 1);
  cuda_test::DeviceInputs dev(in);
  const TuneCandidate c{"fused", "gemv nt=1 rg=1"};
  const std::size_t bytes = candidate_workspace_bytes(dev.call(), c);
  void* ws = nullptr;
  cuda_test::ok(cudaMalloc(&ws, bytes), "workspace");
  try {
    run_candidate(dev.call(), c, {}, Workspace{ws, bytes});
    ADD_FAILURE() << "gemv ran an f32 call";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("bf16 or f16"), std::string::npos) << e.what();
  }
  cudaFree(ws);
}

}  // namespace
}  // namespace moekit
