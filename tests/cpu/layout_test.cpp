// Memory layouts the contract allows beyond the plain one, and what backends may not do.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/padded_copy.hpp"
#include "moekit/check.hpp"
#include "moekit/reference.hpp"

namespace moekit {
namespace {

using testing::padded_copy;

class PaddedRows : public ::testing::TestWithParam<std::string> {};

TEST_P(PaddedRows, MatchReferenceAndLeaveThePaddingAlone) {
  InputSpec s;
  s.dims = {13, 40, 24, 6, 3};
  s.dtype = DType::f32;
  const ExpertsInputs in = make_random_inputs(s, 5);
  Tensor xs, ids, ws, outs;
  ExpertsCall c = in.call();
  c.hidden_states = padded_copy(in.hidden_states, xs, 7);
  c.top_k_index = padded_copy(in.top_k_index, ids, 1);
  c.top_k_weights = padded_copy(in.top_k_weights, ws, 2);
  c.output = padded_copy(in.output, outs, 5);
  experts(c, GetParam());
  const auto ref = reference_experts(in.call());
  EXPECT_LE(relative_error(c.output, ref), tolerance(DType::f32));
  for (std::int64_t r = 0; r < 13; ++r)
    for (std::int64_t j = 40; j < 45; ++j)
      EXPECT_TRUE(std::isnan(outs.data<float>()[r * 45 + j])) << "padding written at row " << r;
}

INSTANTIATE_TEST_SUITE_P(Cpu, PaddedRows, ::testing::ValuesIn(default_registry().names(DeviceType::cpu)),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(BatchedMm, WorkspaceHoldsActivationsOnly) {
  // Were the weights copied per (token, k) pair, the workspace would grow with H * I per pair.
  const Backend& b = default_registry().get("batched_mm", DeviceType::cpu);
  InputSpec s;
  s.dims = {8, 512, 256, 4, 2};
  const ExpertsInputs in = make_random_inputs(s, 1);
  const ExpertsProblem p = validate(in.call());
  const std::size_t pairs = 8 * 2;
  const std::size_t activations = pairs * std::size_t(512 + 2 * 256 + 256 + 512) * sizeof(float);
  EXPECT_LE(b.workspace_bytes(p), activations + 4096);
  EXPECT_LT(b.workspace_bytes(p), pairs * 512 * 256 * 2);
}

TEST(Workspaces, DoNotDependOnTheRouting) {
  // workspace_bytes() sees only sizes; a run must fit in it whatever the ids are.
  for (const std::string& name : default_registry().names(DeviceType::cpu)) {
    const Backend& b = default_registry().get(name, DeviceType::cpu);
    for (RoutingPattern r : {RoutingPattern::random, RoutingPattern::one_expert, RoutingPattern::all_sentinels}) {
      InputSpec s;
      s.dims = {40, 32, 16, 4, 4};
      s.routing = r;
      s.dtype = DType::f32;
      CheckResult res = check_backend(b, {"f32/routing", s}, 9);
      EXPECT_TRUE(res.passed) << name << ": " << res.detail;
    }
  }
}

}  // namespace
}  // namespace moekit
