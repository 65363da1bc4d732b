// Every registered CPU backend x dtype x variant x edge shape against the float64 reference.
#include <gtest/gtest.h>

#include <cctype>

#include "moekit/check.hpp"

namespace moekit {
namespace {

struct Param {
  std::string backend;
  CheckCase c;
};

std::vector<Param> all_params() {
  std::vector<Param> out;
  for (const std::string& b : default_registry().names(DeviceType::cpu))
    for (const CheckCase& c : conformance_cases()) out.push_back({b, c});
  return out;
}

void PrintTo(const Param& p, std::ostream* os) { *os << p.backend << " " << p.c.name; }

class Conformance : public ::testing::TestWithParam<Param> {};

TEST_P(Conformance, MatchesReference) {
  const Param& p = GetParam();
  const Backend& b = default_registry().get(p.backend, DeviceType::cpu);
  for (std::uint64_t seed : {1u, 2u}) {
    const CheckResult r = check_backend(b, p.c, seed);
    ASSERT_FALSE(r.skipped) << "CPU backends support every case: " << r.detail;
    EXPECT_TRUE(r.passed) << p.backend << " " << p.c.name << " seed " << seed << ": rel error " << r.rel_error
                          << " > " << r.tolerance << " " << r.detail;
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, Conformance, ::testing::ValuesIn(all_params()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           std::string n = info.param.backend + "_" + info.param.c.name;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace moekit
