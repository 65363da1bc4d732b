// The CUDA routers against the host route() on the same logits: identical ids (ties included) and
// weights within a few ulps, for each kind, with groups, biases and model-dtype rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cuda/cuda_test_util.hpp"
#include "cuda/router.hpp"
#include "moekit/dtype.hpp"
#include "moekit/error.hpp"
#include "moekit/router.hpp"

namespace moekit {
namespace {

using Kind = RouterConfig::Kind;

struct RouterCase {
  std::string name;
  RouterConfig config;
  std::int64_t E, K;
  bool bias;
  bool ties;  // logits on a coarse grid: many exact ties
};

std::vector<float> random_logits(std::int64_t n, bool ties, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = ties ? std::round(u(rng) * 2.0f) / 2.0f : u(rng);
  return v;
}

template <class T>
T* device_copy(const std::vector<T>& v) {
  T* d = nullptr;
  cudaMalloc(&d, v.size() * sizeof(T));
  cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}

class CudaRouter : public testing::TestWithParam<RouterCase> {};

TEST_P(CudaRouter, MatchesTheHostRoute) {
  MOEKIT_SKIP_WITHOUT_GPU();
  const RouterCase& c = GetParam();
  const std::int64_t T = 300, E = c.E, K = c.K;
  const std::vector<float> logits = random_logits(T * E, c.ties, 11);
  std::vector<float> bias;
  if (c.bias) {
    bias = random_logits(E, c.ties, 12);
    for (float& b : bias) b *= 0.05f;  // a grid of 0.025: ties survive the addition
  }
  for (DType rounding : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(rounding));
    std::vector<std::int32_t> idx(std::size_t(T * K));
    std::vector<float> w(std::size_t(T * K));
    route(c.config, logits.data(), T, E, K, c.bias ? bias.data() : nullptr, idx.data(), w.data());
    if (rounding == DType::bf16)
      for (float& x : w) x = to_float(to_bf16(x));

    float* dl = device_copy(logits);
    float* db = c.bias ? device_copy(bias) : nullptr;
    std::int32_t* di = device_copy(std::vector<std::int32_t>(idx.size(), -1));
    float* dw = device_copy(std::vector<float>(w.size(), NAN));
    cuda::route_on_device(c.config, dl, T, E, K, db, rounding, di, dw, nullptr);
    cuda_test::ok(cudaDeviceSynchronize(), "route");
    std::vector<std::int32_t> gi(idx.size());
    std::vector<float> gw(w.size());
    cudaMemcpy(gi.data(), di, gi.size() * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(gw.data(), dw, gw.size() * 4, cudaMemcpyDeviceToHost);
    cudaFree(dl);
    cudaFree(db);
    cudaFree(di);
    cudaFree(dw);
    for (std::size_t i = 0; i < idx.size(); ++i) {
      ASSERT_EQ(gi[i], idx[i]) << "token " << i / K << " k " << i % K;
      // expf on the device and the host may differ by an ulp or two; bf16 rounding may then
      // land on the neighbouring bf16 value.
      const double rel = rounding == DType::bf16 ? 8e-3 : 2e-6;
      EXPECT_NEAR(gw[i], w[i], rel * (1 + std::fabs(w[i]))) << i;
    }
  }
}

RouterConfig softmax(bool renorm) { return {Kind::softmax_topk, renorm}; }
RouterConfig sigmoid(int groups, int kept, float scale, bool renorm = true) {
  return {Kind::sigmoid_grouped, renorm, groups, kept, scale};
}

std::vector<RouterCase> cases() {
  std::vector<RouterCase> v;
  for (bool ties : {false, true}) {
    const std::string t = ties ? "_ties" : "";
    v.push_back({"softmax_renorm_E128_K8" + t, softmax(true), 128, 8, false, ties});
    v.push_back({"softmax_E60_K4" + t, softmax(false), 60, 4, false, ties});
    v.push_back({"softmax_E8_K2" + t, softmax(true), 8, 2, false, ties});
    v.push_back({"softmax_E1024_K32" + t, softmax(true), 1024, 32, false, ties});
    v.push_back({"sigmoid_E128_K8" + t, sigmoid(1, 1, 1.0f), 128, 8, true, ties});
    v.push_back({"sigmoid_groups_E256_K8" + t, sigmoid(8, 4, 2.5f), 256, 8, true, ties});
    v.push_back({"sigmoid_single_expert_groups" + t, sigmoid(16, 5, 1.5f, false), 16, 4, true, ties});
    v.push_back({"sigmoid_no_bias_groups" + t, sigmoid(4, 2, 1.0f), 64, 6, false, ties});
    v.push_back({"gpt_oss_E32_K4" + t, {Kind::gpt_oss, false}, 32, 4, false, ties});
    v.push_back({"gpt_oss_E128_K4" + t, {Kind::gpt_oss, false}, 128, 4, false, ties});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaRouter, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<RouterCase>& i) { return i.param.name; });

TEST(CudaRouterErrors, ConfigurationErrorsAreThrownBeforeAnyLaunch) {
  RouterConfig c = sigmoid(3, 1, 1.0f);  // 3 groups do not divide E = 8
  EXPECT_THROW(cuda::route_on_device(c, nullptr, 1, 8, 2, nullptr, DType::f32, nullptr, nullptr, nullptr), Error);
  EXPECT_THROW(cuda::route_on_device(softmax(true), nullptr, 1, 2048, 2, nullptr, DType::f32, nullptr, nullptr, nullptr),
               Error);
}

}  // namespace
}  // namespace moekit
