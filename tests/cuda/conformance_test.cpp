// Every CUDA backend x dtype x variant x edge shape against the float64 reference, on the GPU.
#include <gtest/gtest.h>

#include <ostream>

#include <cctype>

#include "cuda/cuda_test_util.hpp"
#include "moekit/check.hpp"

namespace moekit {
namespace {

struct Param {
  std::string backend;
  CheckCase c;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.backend << " " << p.c.name; }

std::vector<Param> all_params() {
  std::vector<Param> out;
  for (const std::string& b : default_registry().names(DeviceType::cuda))
    for (const CheckCase& c : conformance_cases()) out.push_back({b, c});
  return out;
}

class CudaConformance : public ::testing::TestWithParam<Param> {};

TEST_P(CudaConformance, MatchesReference) {
  MOEKIT_SKIP_WITHOUT_GPU();
  const Param& p = GetParam();
  const Backend& b = default_registry().get(p.backend, DeviceType::cuda);
  for (std::uint64_t seed : {1u, 2u}) {
    const CheckResult r = check_backend(b, p.c, seed);
    ASSERT_FALSE(r.skipped) << "the CUDA backends support every case: " << r.detail;
    EXPECT_TRUE(r.passed) << p.backend << " " << p.c.name << " seed " << seed << ": rel error " << r.rel_error
                          << " > " << r.tolerance << " " << r.detail;
  }
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaConformance, ::testing::ValuesIn(all_params()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           std::string n = info.param.backend + "_" + info.param.c.name;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// The solar-open expert shape at a few rows, so the tensor-core tiles of every height run on
// realistic K extents (H = 4096 is 64 k-tiles) against the float64 reference.
struct Tall {
  std::string backend;
  std::int64_t tokens;
};
void PrintTo(const Tall& p, std::ostream* os) { *os << p.backend << " T=" << p.tokens; }
class CudaLargeShape : public ::testing::TestWithParam<Tall> {};

TEST_P(CudaLargeShape, MatchesReference) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {GetParam().tokens, 1024, 320, 8, 4};
  s.dtype = DType::bf16;
  const CheckResult r = check_backend(default_registry().get(GetParam().backend, DeviceType::cuda),
                                      {"bf16/large", s}, 3);
  EXPECT_TRUE(r.passed) << r.rel_error << " " << r.detail;
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaLargeShape,
                         ::testing::Values(Tall{"grouped_mm", 3}, Tall{"grouped_mm", 40}, Tall{"grouped_mm", 100},
                                           Tall{"grouped_mm", 300}, Tall{"batched_mm", 5}, Tall{"eager", 300},
                                           Tall{"fused", 1}, Tall{"fused", 3}, Tall{"fused", 40}, Tall{"fused", 300},
                                           Tall{"auto", 3}),
                         [](const ::testing::TestParamInfo<Tall>& i) {
                           return i.param.backend + "_T" + std::to_string(i.param.tokens);
                         });

}  // namespace
}  // namespace moekit
