// Layouts beyond the plain one, pooled workspaces from several threads, and ids the host cannot
// check (negative) on the GPU.
#include <gtest/gtest.h>

#include <ostream>

#include <cmath>
#include <cstring>
#include <thread>

#include "core/device_staging.hpp"
#include "cuda/cuda_test_util.hpp"
#include "common/padded_copy.hpp"
#include "moekit/check.hpp"
#include "moekit/error.hpp"
#include "moekit/reference.hpp"

namespace moekit {
namespace {

using testing::padded_copy;

struct Padded {
  std::string backend;
  DType dtype;
  std::int64_t x_pad;
};
void PrintTo(const Padded& p, std::ostream* os) { *os << p.backend << "/" << dtype_name(p.dtype) << " pad " << p.x_pad; }
class CudaPaddedRows : public ::testing::TestWithParam<Padded> {};

TEST_P(CudaPaddedRows, MatchReferenceAndLeaveThePaddingAlone) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {13, 40, 24, 6, 3};
  s.dtype = GetParam().dtype;
  const ExpertsInputs in = make_random_inputs(s, 5);
  Tensor xs, ids, ws, outs;
  ExpertsCall c = in.call();
  c.hidden_states = padded_copy(in.hidden_states, xs, GetParam().x_pad);
  c.top_k_index = padded_copy(in.top_k_index, ids, 1);
  c.top_k_weights = padded_copy(in.top_k_weights, ws, 2);
  c.output = padded_copy(in.output, outs, 5);
  const Backend& b = default_registry().get(GetParam().backend, DeviceType::cuda);
  run_staged_on_device(b, c, validate(c), {});
  const auto ref = reference_experts(in.call());
  EXPECT_LE(relative_error(c.output, ref), tolerance(s.dtype));
  for (std::int64_t r = 0; r < 13; ++r)
    for (std::int64_t j = 40; j < 45; ++j)
      EXPECT_TRUE(std::isnan(element_as_double(outs.view(), r * 45 + j))) << "padding written at row " << r;
}

std::vector<Padded> padded_cases() {
  std::vector<Padded> out;
  for (const std::string& b : default_registry().names(DeviceType::cuda))
    for (DType d : {DType::f32, DType::bf16})
      for (std::int64_t pad : {7, 8}) out.push_back({b, d, pad});  // 8: rows stay 16-byte aligned
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaPaddedRows, ::testing::ValuesIn(padded_cases()),
                         [](const ::testing::TestParamInfo<Padded>& i) {
                           return i.param.backend + "_" + std::string(dtype_name(i.param.dtype)) + "_pad" +
                                  std::to_string(i.param.x_pad);
                         });

TEST(CudaBatchedMm, WorkspaceHoldsActivationsOnly) {
  const Backend& b = default_registry().get("batched_mm", DeviceType::cuda);
  InputSpec s;
  s.dims = {8, 512, 256, 4, 2};
  const ExpertsInputs in = make_random_inputs(s, 1);
  ExpertsProblem p = validate(in.call());
  p.device = Device{DeviceType::cuda, 0};
  const std::size_t pairs = 8 * 2;
  const std::size_t activations = pairs * std::size_t(512 + 2 * 256 + 256 + 512) * sizeof(float);
  EXPECT_LE(b.workspace_bytes(p), activations + 4096);
  EXPECT_LT(b.workspace_bytes(p), pairs * 512 * 256 * 2);
}

TEST(CudaPool, ManyThreadsAndStreamsAtOnce) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {29, 256, 128, 8, 2};
  const ExpertsInputs in = make_random_inputs(s, 4);
  cuda_test::DeviceInputs ref_dev(in);
  experts(ref_dev.call(), "grouped_mm");
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto expected = ref_dev.output_bytes();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      cuda_test::DeviceInputs dev(in);
      cudaStream_t stream;
      cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
      for (int i = 0; i < 20; ++i) {
        dev.poison_output();
        cudaDeviceSynchronize();
        experts(dev.call(), i % 2 ? "grouped_mm" : "batched_mm", RunContext{0, stream});
        cudaStreamSynchronize(stream);
        if (i % 2 && dev.output_bytes() != expected) ++mismatches[std::size_t(w)];
      }
      cudaStreamDestroy(stream);
    });
  for (auto& t : threads) t.join();
  for (int w = 0; w < 4; ++w) EXPECT_EQ(mismatches[std::size_t(w)], 0) << "thread " << w;
}

TEST(CudaIds, NegativeIdsNeverReadOutOfBounds) {
  // The host cannot see device ids without a sync: sync-free backends treat a negative id like a
  // sentinel (documented), eager sees them on the host and refuses.
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {6, 64, 32, 4, 2};
  s.dtype = DType::f32;
  ExpertsInputs in = make_random_inputs(s, 8);
  in.top_k_index.data<std::int32_t>()[3] = -5;
  ExpertsInputs as_sentinel = make_random_inputs(s, 8);
  as_sentinel.top_k_index.data<std::int32_t>()[3] = 4;  // == E
  const auto ref = reference_experts(as_sentinel.call());
  cuda_test::DeviceInputs dev(in);
  for (const char* name : {"grouped_mm", "batched_mm"}) {
    dev.poison_output();
    experts(dev.call(), name);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << name;
    const auto bytes = dev.output_bytes();
    std::memcpy(in.output.data<float>(), bytes.data(), bytes.size());
    EXPECT_LE(relative_error(in.output.view(), ref), tolerance(DType::f32)) << name;
  }
  try {
    experts(dev.call(), "eager");
    ADD_FAILURE() << "eager accepted a negative id";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
  }
}

}  // namespace
}  // namespace moekit
