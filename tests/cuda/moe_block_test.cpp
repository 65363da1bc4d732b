// The MoE block on CUDA: tiny checkpoints of every model_type through every CUDA backend against
// the float64 reference and the reference routing; graph capture of a whole forward(); random
// preset blocks. Each test skips itself without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/cuda_test_util.hpp"
#include "moekit/check.hpp"
#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/presets.hpp"
#include "moekit/safetensors.hpp"
#include "tiny_checkpoint.hpp"

namespace moekit {
namespace {

using moekit_test::kTinyLayer;

double tol(DType d) { return d == DType::f32 ? 1e-4 : 2e-2; }
constexpr Device kGpu{DeviceType::cuda, 0};

// A device copy of a host tensor, freed with the object.
class DeviceTensor {
 public:
  explicit DeviceTensor(const TensorView& host) : view_(host) {
    view_.device = kGpu;
    view_.data = nullptr;
    if (host.nbytes()) {
      cudaMalloc(&view_.data, host.nbytes());
      cudaMemcpy(view_.data, host.data, host.nbytes(), cudaMemcpyHostToDevice);
    }
  }
  ~DeviceTensor() { cudaFree(view_.data); }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  const TensorView& view() const { return view_; }
  Tensor host() const {
    Tensor t(view_.dtype, view_.shape.data(), view_.rank);
    cudaDeviceSynchronize();
    cudaMemcpy(t.view().data, view_.data, view_.nbytes(), cudaMemcpyDeviceToHost);
    return t;
  }
  void poison() const { cudaMemset(view_.data, 0xff, view_.nbytes()); }

 private:
  TensorView view_;
};

std::vector<std::string> cuda_backends() { return default_registry().names(DeviceType::cuda); }

// A backend added later may decline some shapes (supports() says no); the three built-in ones
// must run everything here.
bool builtin(const std::string& b) { return b == "eager" || b == "batched_mm" || b == "grouped_mm"; }

// Runs forward(); false when a non-built-in backend declines the call (noted, not a failure).
template <class Fn>
bool ran(const std::string& backend, Fn&& forward) {
  try {
    forward();
    return true;
  } catch (const Error& e) {
    if (e.code() != Errc::unsupported || builtin(backend)) throw;
    std::printf("[   NOTE   ] %s declined: %s\n", backend.c_str(), e.what());
    return false;
  }
}

struct Case {
  std::string type;
  DType dtype;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return info.param.type + "_" + std::string(dtype_name(info.param.dtype));
}

class CudaMoeBlock : public testing::TestWithParam<Case> {};

TEST_P(CudaMoeBlock, EveryBackendMatchesTheReference) {
  MOEKIT_SKIP_WITHOUT_GPU();
  const Case& c = GetParam();
  const std::string dir = moekit_test::write_tiny_checkpoint({c.type, c.dtype, false}, "cuda_" + case_name({c, 0}));
  const ModelConfig config = load_model_config(dir);
  MoeBlock block = MoeBlock::load(config, kTinyLayer, safetensors::Checkpoint::open(dir));
  block.to(kGpu);
  ASSERT_EQ(block.device(), kGpu);

  const std::int64_t T = 19, H = config.hidden_size, K = config.num_experts_per_tok, E = config.num_experts;
  Tensor x(c.dtype, {T, H}), out(c.dtype, {T, H});
  fill_uniform(x, 1.0f, 99);
  const DeviceTensor dx(x.view()), dout(out.view());
  const moekit_test::ReferenceRouting ref = moekit_test::reference_routing(block, config, x);

  for (const std::string& backend : cuda_backends()) {
    SCOPED_TRACE(backend);
    dout.poison();
    if (!ran(backend, [&] { block.forward(dx.view(), dout.view(), backend); })) continue;
    const Tensor idx = block.routing_index_host(), w = block.routing_weights_host();
    ASSERT_EQ(idx.numel(), T * K);
    for (std::int64_t i = 0; i < T * K; ++i) {
      ASSERT_EQ(idx.data<std::int32_t>()[i], ref.index[std::size_t(i)]) << "routing differs at " << i;
      EXPECT_NEAR(w.data<float>()[i], ref.weights[std::size_t(i)], 1e-5 * (1 + std::fabs(ref.weights[std::size_t(i)])));
    }
    const Tensor got = dout.host();
    EXPECT_LE(relative_error(got, reference_moe_block(block, x, idx, w)), tol(c.dtype));

    // Given routing (device tensors, int64 ids, one sentinel): the experts call alone.
    Tensor gi(DType::i64, {T, K}), gw(DType::f32, {T, K});
    for (std::int64_t i = 0; i < T * K; ++i) {
      gi.data<std::int64_t>()[i] = i == 3 ? E + 1 : (i * 3 + i / K) % E;
      gw.data<float>()[i] = 0.25f + 0.1f * float(i % 3);
    }
    for (std::int64_t t = 0; t < T; ++t)
      if (gi.data<std::int64_t>()[t * K] == gi.data<std::int64_t>()[t * K + 1])
        gi.data<std::int64_t>()[t * K + 1] = (gi.data<std::int64_t>()[t * K] + 1) % E;
    const DeviceTensor dgi(gi.view()), dgw(gw.view());
    dout.poison();
    if (!ran(backend, [&] { block.forward(dx.view(), dout.view(), backend, {}, dgi.view(), dgw.view()); })) continue;
    EXPECT_LE(relative_error(dout.host(), reference_moe_block(block, x, gi, gw, /*with_shared=*/false)), tol(c.dtype));
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (std::string_view t : known_model_types())
    for (DType d : {DType::f32, DType::bf16}) cases.push_back({std::string(t), d});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllModelTypes, CudaMoeBlock, testing::ValuesIn(all_cases()), case_name);

// The CUDA block against the host block on random preset-shaped weights (scaled down so the test
// stays quick): same routing, outputs within the tolerance of each other's reference.
TEST(CudaMoeBlockRandom, SmallPresetsMatchTheHostBlock) {
  MOEKIT_SKIP_WITHOUT_GPU();
  for (const Preset& p : presets()) {
    SCOPED_TRACE(std::string(p.name));
    ModelConfig c = preset_model_config(p);
    c.hidden_size = 64;
    c.moe_intermediate_size = 32;
    if (c.shared_intermediate() > 0 && c.shared_expert_gate) c.shared_expert_intermediate_size = 48;
    MoeBlock block = MoeBlock::random(c, DType::bf16, 5);
    const std::int64_t T = 40, H = c.hidden_size;
    Tensor x(DType::bf16, {T, H});
    fill_uniform(x, 1.0f, 8);
    const moekit_test::ReferenceRouting ref = moekit_test::reference_routing(block, c, x);
    block.to(kGpu);
    Tensor out(DType::bf16, {T, H});
    const DeviceTensor dx(x.view()), dout(out.view());
    block.forward(dx.view(), dout.view(), "grouped_mm");
    const Tensor idx = block.routing_index_host(), w = block.routing_weights_host();
    std::int64_t differ = 0;
    for (std::int64_t i = 0; i < idx.numel(); ++i) differ += idx.data<std::int32_t>()[i] != ref.index[std::size_t(i)];
    // Logits summed in another order may swap a near-tie; it must stay rare.
    EXPECT_LE(differ, idx.numel() / 50) << differ << " of " << idx.numel() << " routing ids differ";
    EXPECT_LE(relative_error(dout.host(), reference_moe_block(block, x, idx, w)), tol(DType::bf16));
  }
}

// A whole forward() (router, experts, shared expert) captured once and replayed.
class CudaMoeBlockGraph : public testing::TestWithParam<std::string> {};

TEST_P(CudaMoeBlockGraph, CapturedForwardReplaysToTheSameOutput) {
  MOEKIT_SKIP_WITHOUT_GPU();
  const std::string backend = GetParam();
  if (!default_registry().find(backend, DeviceType::cuda)) GTEST_SKIP() << "no backend " << backend;
  for (const char* type : {"deepseek_v3", "qwen2_moe", "gpt_oss"}) {
    SCOPED_TRACE(type);
    const std::string dir = moekit_test::write_tiny_checkpoint({type, DType::bf16, false}, std::string("graph_") + type);
    const ModelConfig config = load_model_config(dir);
    MoeBlock block = MoeBlock::load(config, kTinyLayer, safetensors::Checkpoint::open(dir));
    block.to(kGpu);
    const std::int64_t T = 33, H = config.hidden_size;
    Tensor x(DType::bf16, {T, H}), out(DType::bf16, {T, H});
    fill_uniform(x, 1.0f, 3);
    const DeviceTensor dx(x.view()), dout(out.view());
    cudaStream_t stream;
    cuda_test::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    const RunContext ctx{0, stream};

    if (!ran(backend, [&] { block.forward(dx.view(), dout.view(), backend, ctx); })) continue;  // sizes the scratch
    cuda_test::ok(cudaStreamSynchronize(stream), "direct run");
    const Tensor direct = dout.host();
    const Tensor direct_idx = block.routing_index_host();

    dout.poison();
    cuda_test::ok(cudaDeviceSynchronize(), "poison");
    cudaGraph_t graph;
    cuda_test::ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
    block.forward(dx.view(), dout.view(), backend, ctx);
    cuda_test::ok(cudaStreamEndCapture(stream, &graph), "end capture");
    cudaGraphExec_t exec;
    cuda_test::ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
    for (int i = 0; i < 2; ++i) {
      cuda_test::ok(cudaGraphLaunch(exec, stream), "replay");
      cuda_test::ok(cudaStreamSynchronize(stream), "replay sync");
      const Tensor got = dout.host();
      EXPECT_EQ(0, std::memcmp(got.view().data, direct.view().data, got.nbytes())) << "replay " << i;
      const Tensor idx = block.routing_index_host();
      EXPECT_EQ(0, std::memcmp(idx.view().data, direct_idx.view().data, idx.nbytes())) << "replay " << i;
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);

    // A larger T inside a capture would have to allocate: refused, the capture left intact.
    Tensor x2(DType::bf16, {2 * T, H}), out2(DType::bf16, {2 * T, H});
    fill_uniform(x2, 1.0f, 4);
    const DeviceTensor dx2(x2.view()), dout2(out2.view());
    cuda_test::ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture 2");
    try {
      block.forward(dx2.view(), dout2.view(), backend, ctx);
      ADD_FAILURE() << "a capture grew the scratch";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::unsupported) << e.what();
    }
    cudaGraph_t g2;
    EXPECT_EQ(cudaStreamEndCapture(stream, &g2), cudaSuccess) << "the capture was invalidated";
    cudaGraphDestroy(g2);
    cudaStreamDestroy(stream);
  }
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaMoeBlockGraph, testing::Values("batched_mm", "grouped_mm", "fused"));

TEST(CudaMoeBlockErrors, HostTensorsForADeviceBlockAreRefused) {
  MOEKIT_SKIP_WITHOUT_GPU();
  const std::string dir = moekit_test::write_tiny_checkpoint({"mixtral", DType::f32, false}, "cuda_errors");
  MoeBlock block = MoeBlock::load(load_model_config(dir), kTinyLayer, safetensors::Checkpoint::open(dir));
  block.to(kGpu);
  Tensor x(DType::f32, {2, 16}), out(DType::f32, {2, 16});
  fill_uniform(x, 1.0f, 1);
  try {
    block.forward(x, out, "grouped_mm");
    ADD_FAILURE() << "host tensors were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
  block.to(Device{});  // back on the host: the same call now runs
  EXPECT_NO_THROW(block.forward(x, out, "grouped_mm"));
}

}  // namespace
}  // namespace moekit
