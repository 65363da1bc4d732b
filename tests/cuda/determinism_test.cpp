// Bitwise identical output run to run on the GPU (no atomics whose order changes a sum).
#include <gtest/gtest.h>

#include <ostream>

#include "cuda/cuda_test_util.hpp"

namespace moekit {
namespace {

struct Case {
  std::string backend;
  DType dtype;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.backend << "/" << dtype_name(c.dtype); }
class CudaDeterminism : public ::testing::TestWithParam<Case> {};

TEST_P(CudaDeterminism, BitwiseAcrossRuns) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {67, 264, 136, 16, 4};
  s.dtype = GetParam().dtype;
  s.routing = RoutingPattern::sentinels;
  const ExpertsInputs in = make_random_inputs(s, 11);
  cuda_test::DeviceInputs dev(in);
  std::vector<unsigned char> first;
  for (int run = 0; run < 3; ++run) {
    dev.poison_output();
    experts(dev.call(), GetParam().backend);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (run == 0) first = dev.output_bytes();
    else EXPECT_EQ(first, dev.output_bytes()) << "run " << run << " differs";
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const std::string& b : default_registry().names(DeviceType::cuda))
    for (DType d : {DType::f32, DType::f16, DType::bf16}) out.push_back({b, d});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaDeterminism, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return i.param.backend + "_" + std::string(dtype_name(i.param.dtype));
                         });

}  // namespace
}  // namespace moekit
