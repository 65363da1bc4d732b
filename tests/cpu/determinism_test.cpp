// Results are bitwise identical run to run and whatever the thread count.
#include <gtest/gtest.h>

#include <cstring>

#include "moekit/backend.hpp"
#include "moekit/inputs.hpp"

namespace moekit {
namespace {

struct Case {
  std::string backend;
  DType dtype;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.backend << "/" << dtype_name(c.dtype); }

class Determinism : public ::testing::TestWithParam<Case> {};

std::vector<unsigned char> run_once(const ExpertsInputs& in, const std::string& backend, int threads) {
  fill_value(in.output, 0.0);
  experts(in.call(), backend, RunContext{threads, nullptr});
  const auto* p = in.output.data<unsigned char>();
  return {p, p + in.output.nbytes()};
}

TEST_P(Determinism, BitwiseAcrossRunsAndThreadCounts) {
  InputSpec s;
  s.dims = {67, 264, 136, 16, 4};  // enough rows and columns that every thread gets work
  s.dtype = GetParam().dtype;
  s.routing = RoutingPattern::sentinels;
  const ExpertsInputs in = make_random_inputs(s, 11);
  const auto first = run_once(in, GetParam().backend, 2);
  EXPECT_EQ(first, run_once(in, GetParam().backend, 2)) << "second run differs";
  EXPECT_EQ(first, run_once(in, GetParam().backend, 1)) << "1 thread differs from 2";
  EXPECT_EQ(first, run_once(in, GetParam().backend, 3)) << "3 threads differ from 2";
  EXPECT_EQ(first, run_once(in, GetParam().backend, 0)) << "default threads differ from 2";
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const std::string& b : default_registry().names(DeviceType::cpu))
    for (DType d : {DType::f32, DType::f16, DType::bf16}) out.push_back({b, d});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cpu, Determinism, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return i.param.backend + "_" + std::string(dtype_name(i.param.dtype));
                         });

}  // namespace
}  // namespace moekit
