// The CUDA routers against the host route() on the same logits: identical ids (ties included) and
// weights within a few ulps, for each kind, with groups, biases and model-dtype rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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

// The router linear against a float64 dot product of the same bf16 values, in each of its three
// forms: the warp kernel (T <= 16), one H slice, and several slices summed in slice order (few
// tiles, large H). Two calls give the same bits; a size that needs scratch refuses to run without.
TEST(CudaRouterLinear, MatchesFloat64AndRepeatsBitwise) {
  MOEKIT_SKIP_WITHOUT_GPU();
  int device = 0;
  cudaGetDevice(&device);
  struct Size { std::int64_t T, E, H; };
  for (const Size& z : {Size{5, 128, 4096}, Size{17, 128, 4096}, Size{300, 128, 4096}, Size{600, 8, 1000},
                        Size{2048, 64, 2048}, Size{33, 1, 4096}, Size{100, 160, 7168}}) {
    SCOPED_TRACE("T=" + std::to_string(z.T) + " E=" + std::to_string(z.E) + " H=" + std::to_string(z.H));
    std::mt19937_64 rng(uint64_t(z.T * 7 + z.E * 3 + z.H));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<bf16> x(std::size_t(z.T * z.H)), w(std::size_t(z.E * z.H)), b(std::size_t(z.E));
    for (bf16& v : x) v = to_bf16(u(rng));
    for (bf16& v : w) v = to_bf16(u(rng) * 0.05f);
    for (bf16& v : b) v = to_bf16(u(rng));
    bf16* dx = device_copy(x);
    bf16* dw = device_copy(w);
    bf16* db = device_copy(b);
    float* dl = nullptr;
    cudaMalloc(&dl, std::size_t(z.T * z.E) * sizeof(float));
    const std::size_t scratch_bytes = cuda::router_logits_scratch_bytes(z.T, z.E, z.H, device);
    if (z.T > 16 && z.E <= 128 && z.H >= 2048 && z.T * z.E <= 300 * 128) {
      EXPECT_GT(scratch_bytes, 0u) << "a few tiles over a large H should be cut into slices";
    }
    float* scratch = nullptr;
    if (scratch_bytes) cudaMalloc(&scratch, scratch_bytes);
    const TensorView tx = TensorView::contiguous(dx, DType::bf16, {z.T, z.H}, Device{DeviceType::cuda, device});
    const TensorView tw = TensorView::contiguous(dw, DType::bf16, {z.E, z.H}, Device{DeviceType::cuda, device});
    const TensorView tb = TensorView::contiguous(db, DType::bf16, {z.E}, Device{DeviceType::cuda, device});
    if (scratch_bytes) {
      EXPECT_THROW(cuda::router_logits(tx, tw, tb, false, dl, nullptr, nullptr), Error);
    }
    std::vector<float> got(std::size_t(z.T * z.E)), again(got.size());
    cudaMemset(dl, 0xff, got.size() * sizeof(float));  // NaN: every logit must be written
    cuda::router_logits(tx, tw, tb, false, dl, scratch, nullptr);
    cuda_test::ok(cudaMemcpy(got.data(), dl, got.size() * sizeof(float), cudaMemcpyDeviceToHost), "logits");
    cudaMemset(dl, 0xff, got.size() * sizeof(float));
    cuda::router_logits(tx, tw, tb, false, dl, scratch, nullptr);
    cuda_test::ok(cudaMemcpy(again.data(), dl, got.size() * sizeof(float), cudaMemcpyDeviceToHost), "logits");
    EXPECT_EQ(0, std::memcmp(got.data(), again.data(), got.size() * sizeof(float)));
    int bad = 0;
    for (std::int64_t t = 0; t < z.T; ++t)
      for (std::int64_t e = 0; e < z.E; ++e) {
        double ref = to_float(b[std::size_t(e)]), mag = std::fabs(ref);
        for (std::int64_t h = 0; h < z.H; ++h) {
          const double p = double(to_float(x[std::size_t(t * z.H + h)])) * double(to_float(w[std::size_t(e * z.H + h)]));
          ref += p;
          mag += std::fabs(p);
        }
        const float g = got[std::size_t(t * z.E + e)];
        if (!(std::fabs(double(g) - ref) <= 1e-4 * mag + 1e-6) && bad++ < 5)
          ADD_FAILURE() << "logit [" << t << ", " << e << "] = " << g << ", float64 " << ref;
      }
    EXPECT_EQ(bad, 0);
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(db);
    cudaFree(dl);
    if (scratch) cudaFree(scratch);
  }
}

TEST(CudaRouterErrors, ConfigurationErrorsAreThrownBeforeAnyLaunch) {
  RouterConfig c = sigmoid(3, 1, 1.0f);  // 3 groups do not divide E = 8
  EXPECT_THROW(cuda::route_on_device(c, nullptr, 1, 8, 2, nullptr, DType::f32, nullptr, nullptr, nullptr), Error);
  EXPECT_THROW(cuda::route_on_device(softmax(true), nullptr, 1, 2048, 2, nullptr, DType::f32, nullptr, nullptr, nullptr),
               Error);
}

}  // namespace
}  // namespace moekit
