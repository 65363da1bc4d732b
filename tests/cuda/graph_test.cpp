// CUDA graphs: batched_mm, grouped_mm, fused and auto capture (no sync, no allocation in run()); eager refuses.
#include <gtest/gtest.h>

#include "cuda/cuda_test_util.hpp"
#include "moekit/error.hpp"

namespace moekit {
namespace {

class CudaGraph : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGraph, CapturedCallReplaysToTheSameOutput) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {37, 128, 64, 8, 3};
  s.routing = RoutingPattern::sentinels;
  const ExpertsInputs in = make_random_inputs(s, 21);
  cuda_test::DeviceInputs dev(in);
  const Backend& b = default_registry().get(GetParam(), DeviceType::cuda);
  const std::size_t bytes = b.workspace_bytes(validate(dev.call()));
  void* ws = nullptr;
  cuda_test::ok(cudaMalloc(&ws, bytes), "workspace");
  cudaStream_t stream;
  cuda_test::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");

  experts(dev.call(), GetParam(), RunContext{0, stream}, Workspace{ws, bytes});
  cuda_test::ok(cudaStreamSynchronize(stream), "direct run");
  const auto direct = dev.output_bytes();

  dev.poison_output();
  cuda_test::ok(cudaDeviceSynchronize(), "poison");
  cudaGraph_t graph;
  cuda_test::ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  experts(dev.call(), GetParam(), RunContext{0, stream}, Workspace{ws, bytes});
  cuda_test::ok(cudaStreamEndCapture(stream, &graph), "end capture");
  cudaGraphExec_t exec;
  cuda_test::ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  for (int i = 0; i < 2; ++i) {
    cuda_test::ok(cudaGraphLaunch(exec, stream), "replay");
    cuda_test::ok(cudaStreamSynchronize(stream), "replay sync");
    EXPECT_EQ(direct, dev.output_bytes()) << "replay " << i;
  }
  // Without a workspace the pooled scratch would outlive the call: refused, capture intact.
  cuda_test::ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture 2");
  EXPECT_THROW(experts(dev.call(), GetParam(), RunContext{0, stream}), Error);
  cudaGraph_t g2;
  cuda_test::ok(cudaStreamEndCapture(stream, &g2), "end capture 2");
  cudaGraphDestroy(g2);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  cudaFree(ws);
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaGraph, ::testing::Values("batched_mm", "grouped_mm", "fused", "auto"));

TEST(CudaGraphEager, RefusesCaptureWithAClearError) {
  MOEKIT_SKIP_WITHOUT_GPU();
  InputSpec s;
  s.dims = {4, 64, 32, 4, 2};
  const ExpertsInputs in = make_random_inputs(s, 1);
  cuda_test::DeviceInputs dev(in);
  const Backend& b = default_registry().get("eager", DeviceType::cuda);
  const std::size_t bytes = b.workspace_bytes(validate(dev.call()));
  void* ws = nullptr;
  cuda_test::ok(cudaMalloc(&ws, bytes), "workspace");
  cudaStream_t stream;
  cuda_test::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  cuda_test::ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  try {
    experts(dev.call(), "eager", RunContext{0, stream}, Workspace{ws, bytes});
    ADD_FAILURE() << "eager ran inside a capture";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("graph"), std::string::npos) << e.what();
  }
  cudaGraph_t g;
  EXPECT_EQ(cudaStreamEndCapture(stream, &g), cudaSuccess) << "the capture was invalidated";
  cudaGraphDestroy(g);
  cudaStreamDestroy(stream);
  cudaFree(ws);
}

}  // namespace
}  // namespace moekit
