// fused on the GPU: every gemv and grouped plan over the conformance matrix (the registered backend
// runs only its default plan there), several passes over one expert's rows, determinism and graph
// capture of the gemv path. Each test skips itself without a GPU.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>
#include <ostream>

#include "cuda/cuda_test_util.hpp"
#include "cuda/fused.hpp"
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

const char* const kPlans[] = {"gemv nt=1 rg=1",   "gemv nt=2 rg=1",   "gemv nt=4 rg=1",   "gemv nt=1 rg=2",
                              "gemv nt=4 rg=2",   "gemv1k nt=1 rg=1", "gemv1k nt=2 rg=1", "gemv1k nt=4 rg=1",
                              "gemv1k nt=1 rg=2", "gemv1k nt=4 rg=2", "grouped bm=16",    "grouped bm=128"};

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

// Output bytes of one run of a fused plan (a fresh workspace filled with garbage, so that the
// one-kernel plan must clear its own counters).
std::vector<unsigned char> run_plan_bytes(const cuda_test::DeviceInputs& dev, const std::string& plan) {
  const TuneCandidate c{"fused", plan};
  const std::size_t bytes = candidate_workspace_bytes(dev.call(), c);
  void* ws = nullptr;
  cuda_test::ok(cudaMalloc(&ws, bytes), "workspace");
  cuda_test::ok(cudaMemset(ws, 0x5a, bytes), "dirty workspace");
  dev.poison_output();
  cuda_test::ok(cudaDeviceSynchronize(), "poison");
  run_candidate(dev.call(), c, {}, Workspace{ws, bytes});
  cuda_test::ok(cudaDeviceSynchronize(), plan.c_str());
  cudaFree(ws);
  return dev.output_bytes();
}

struct OneKernelCase {
  std::string name;
  InputSpec spec;
};
void PrintTo(const OneKernelCase& c, std::ostream* os) { *os << c.name; }
class FusedGemv1k : public ::testing::TestWithParam<OneKernelCase> {};

// The one-kernel plan does the three-kernel plan's arithmetic in the same order: equal bytes, for
// every nt and rg, including shapes where each CTA runs many units and waits on other CTAs.
TEST_P(FusedGemv1k, BitwiseEqualToThreeKernels) {
  MOEKIT_SKIP_WITHOUT_GPU();
  const ExpertsInputs in = make_random_inputs(GetParam().spec, 11);
  cuda_test::DeviceInputs dev(in);
  for (const char* shape : {"nt=1 rg=1", "nt=2 rg=1", "nt=4 rg=1", "nt=1 rg=2", "nt=2 rg=2", "nt=4 rg=2"}) {
    const std::vector<unsigned char> three = run_plan_bytes(dev, std::string("gemv ") + shape);
    const std::vector<unsigned char> one = run_plan_bytes(dev, std::string("gemv1k ") + shape);
    EXPECT_EQ(three, one) << GetParam().name << " " << shape;
  }
}

std::vector<OneKernelCase> one_kernel_cases() {
  std::vector<OneKernelCase> out;
  InputSpec s;
  s.dims = {1, 1024, 320, 16, 4};  // decode: one token, few units
  out.push_back({"bf16_T1", s});
  s.dims = {64, 1024, 512, 32, 8};  // every expert hit, ~4k units: many per CTA, GEMV2 units wait
  out.push_back({"bf16_T64_all_experts", s});
  s.dims = {41, 136, 72, 4, 1};  // one expert, several passes, rows not a multiple of a line
  s.routing = RoutingPattern::one_expert;
  out.push_back({"bf16_one_expert_41", s});
  s.dims = {37, 256, 96, 8, 3};
  s.routing = RoutingPattern::sentinel_rows;  // tokens with no valid pair: zero rows
  s.dtype = DType::f16;
  s.index_dtype = DType::i64;
  s.routing_dtype = DType::f16;
  out.push_back({"f16_i64_sentinel_rows", s});
  s = InputSpec{};
  s.dims = {9, 512, 136, 16, 4};  // gpt-oss style: interleaved, clamped swiglu, biases
  s.options.gate_layout = GateLayout::interleaved;
  s.options.activation = Activation::clamped_swiglu;
  s.bias = true;
  s.routing = RoutingPattern::sentinels;
  out.push_back({"bf16_interleaved_bias_sentinels", s});
  s = InputSpec{};
  s.dims = {5, 256, 64, 8, 2};  // no gate
  s.options.has_gate = false;
  s.options.activation = Activation::gelu;
  out.push_back({"bf16_no_gate", s});
  s = InputSpec{};
  s.dims = {4, 128, 64, 8, 2};
  s.routing = RoutingPattern::all_sentinels;
  out.push_back({"bf16_all_sentinels", s});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cuda, FusedGemv1k, ::testing::ValuesIn(one_kernel_cases()),
                         [](const ::testing::TestParamInfo<OneKernelCase>& info) { return info.param.name; });

// The one-kernel plan through a graph: its counters are cleared by a node of the graph, so every
// replay gives the direct run's bytes.
TEST(FusedGemv1k, GraphReplaysMatchDirectRun) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {16, 1024, 256, 32, 8};
  s.routing = RoutingPattern::sentinels;
  const ExpertsInputs in = make_random_inputs(s, 7);
  cuda_test::DeviceInputs dev(in);
  const std::vector<unsigned char> three = run_plan_bytes(dev, "gemv nt=1 rg=1");
  const TuneCandidate c{"fused", "gemv1k nt=1 rg=1"};
  const std::size_t bytes = candidate_workspace_bytes(dev.call(), c);
  void* ws = nullptr;
  cuda_test::ok(cudaMalloc(&ws, bytes), "workspace");
  cudaStream_t stream;
  cuda_test::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  for (int run = 0; run < 3; ++run) {
    dev.poison_output();
    cuda_test::ok(cudaDeviceSynchronize(), "poison");
    run_candidate(dev.call(), c, RunContext{0, stream}, Workspace{ws, bytes});
    cuda_test::ok(cudaStreamSynchronize(stream), "run");
    EXPECT_EQ(three, dev.output_bytes()) << "direct run " << run;
  }
  cudaGraph_t graph;
  cuda_test::ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  run_candidate(dev.call(), c, RunContext{0, stream}, Workspace{ws, bytes});
  cuda_test::ok(cudaStreamEndCapture(stream, &graph), "end capture");
  cudaGraphExec_t exec;
  cuda_test::ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  for (int replay = 0; replay < 3; ++replay) {
    dev.poison_output();
    cuda_test::ok(cudaDeviceSynchronize(), "poison");
    cuda_test::ok(cudaGraphLaunch(exec, stream), "replay");
    cuda_test::ok(cudaStreamSynchronize(stream), "replay sync");
    EXPECT_EQ(three, dev.output_bytes()) << "graph replay " << replay;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  cudaFree(ws);
}

// The default gemv plan holds every token of an expert in one pass up to T = 16, whatever the
// routing (a skewed routing with nt=1 streamed an expert's weights twice).
TEST(FusedDefaultPlan, OnePassForSmallBatches) {
  MOEKIT_SKIP_WITHOUT_GPU();
  for (const std::int64_t T : {1, 8, 9, 16, 40}) {
    InputSpec s;
    s.dims = {T, 256, 64, 8, 2};
    const ExpertsInputs in = make_random_inputs(s, 3);
    cuda_test::DeviceInputs dev(in);
    const ExpertsProblem p = validate(dev.call());
    const cuda::FusedPlan plan = cuda::default_fused_plan(dev.call(), p);
    if (plan.path != cuda::FusedPlan::Path::gemv) continue;  // too many rows per expert for gemv
    EXPECT_GE(8 * plan.nt, std::min<std::int64_t>(T, 16)) << "T=" << T << ": " << plan.describe();
  }
  EXPECT_EQ(cuda::gemv_tokens_per_pass(1), 1);
  EXPECT_EQ(cuda::gemv_tokens_per_pass(8), 1);
  EXPECT_EQ(cuda::gemv_tokens_per_pass(9), 2);
  EXPECT_EQ(cuda::gemv_tokens_per_pass(16), 2);
}

// Every plan the tuner may write parses back to itself.
TEST(FusedPlanText, RoundTrips) {
  for (const char* text : kPlans) EXPECT_EQ(cuda::parse_fused_plan(text).describe(), text);
  EXPECT_EQ(cuda::parse_fused_plan("gemv1k rg=2 nt=4").describe(), "gemv1k nt=4 rg=2");
  EXPECT_THROW(cuda::parse_fused_plan("gemv1k nt=3 rg=1"), Error);
  EXPECT_THROW(cuda::parse_fused_plan("gemv1k bm=16"), Error);
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
