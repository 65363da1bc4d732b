// The routers on rows small enough to work out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "moekit/error.hpp"
#include "moekit/router.hpp"

namespace moekit {
namespace {

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

struct Routed {
  std::int32_t idx[2];
  float w[2];
};

Routed route_one(const RouterConfig& c, std::vector<float> logits, const float* bias = nullptr) {
  Routed r{};
  route(c, logits.data(), 1, std::int64_t(logits.size()), 2, bias, r.idx, r.w);
  return r;
}

TEST(Router, SoftmaxTopkRenormalised) {
  RouterConfig c;
  c.kind = RouterConfig::Kind::softmax_topk;
  c.norm_topk_prob = true;
  const Routed r = route_one(c, {1, 3, 2, 0});
  EXPECT_EQ(r.idx[0], 1);
  EXPECT_EQ(r.idx[1], 2);
  const double a = std::exp(3.0), b = std::exp(2.0);
  EXPECT_NEAR(r.w[0], a / (a + b), 1e-6);
  EXPECT_NEAR(r.w[1], b / (a + b), 1e-6);
}

TEST(Router, SoftmaxTopkWithoutRenormalisation) {
  RouterConfig c;
  c.norm_topk_prob = false;
  const Routed r = route_one(c, {1, 3, 2, 0});
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + 1.0;
  EXPECT_NEAR(r.w[0], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(r.w[1], std::exp(2.0) / z, 1e-6);
}

TEST(Router, SigmoidGroupLimitedWithCorrectionBias) {
  RouterConfig c;
  c.kind = RouterConfig::Kind::sigmoid_grouped;
  c.norm_topk_prob = true;
  c.n_group = 2;
  c.topk_group = 1;
  c.routed_scaling_factor = 2.5f;
  const float bias[4] = {0, 0, 0, 5};
  // Biased scores: group 0 sums to ~1.61, group 1 to ~5.77; group 1 wins and expert 3 leads it,
  // but the weights are the un-biased sigmoids, renormalised and scaled.
  const Routed r = route_one(c, {2, 1, 0, -1}, bias);
  EXPECT_EQ(r.idx[0], 3);
  EXPECT_EQ(r.idx[1], 2);
  const double a = sigmoid(-1.0), b = sigmoid(0.0);
  EXPECT_NEAR(r.w[0], a / (a + b + 1e-20) * 2.5, 1e-6);
  EXPECT_NEAR(r.w[1], b / (a + b + 1e-20) * 2.5, 1e-6);
}

// transformers masks dropped groups with -inf: when the kept group's biased scores are negative,
// the dropped group's experts must still not be chosen (a 0.0 mask would choose them).
TEST(Router, DroppedGroupsCannotBeChosen) {
  RouterConfig c;
  c.kind = RouterConfig::Kind::sigmoid_grouped;
  c.n_group = 2;
  c.topk_group = 1;
  // Biased choice ~ {-3.0, -3.0, -0.20, -0.10}: group 1 (sum ~ -0.3) beats group 0 (~ -6.0).
  const float bias[4] = {-3, -3, -1.2f, -1.1f};
  const Routed r = route_one(c, {-8, -8, 8, 7}, bias);
  EXPECT_EQ(r.idx[0], 3);
  EXPECT_EQ(r.idx[1], 2);
}

TEST(Router, GptOssSoftmaxOverTheChosen) {
  RouterConfig c;
  c.kind = RouterConfig::Kind::gpt_oss;
  const Routed r = route_one(c, {0.5f, -1, 2, 1});
  EXPECT_EQ(r.idx[0], 2);
  EXPECT_EQ(r.idx[1], 3);
  const double a = std::exp(2.0), b = std::exp(1.0);
  EXPECT_NEAR(r.w[0], a / (a + b), 1e-6);
  EXPECT_NEAR(r.w[1], b / (a + b), 1e-6);
}

TEST(Router, TiesGoToTheLowerExpert) {
  RouterConfig c;
  const Routed r = route_one(c, {1, 2, 2, 2});
  EXPECT_EQ(r.idx[0], 1);
  EXPECT_EQ(r.idx[1], 2);
}

TEST(Router, BadConfigurationsAreErrors) {
  RouterConfig c;
  float logits[3] = {0, 1, 2};
  std::int32_t idx[4];
  float w[4];
  EXPECT_THROW(route(c, logits, 1, 3, 4, nullptr, idx, w), Error);  // K > E
  c.kind = RouterConfig::Kind::sigmoid_grouped;
  c.n_group = 2;  // does not divide E = 3
  EXPECT_THROW(route(c, logits, 1, 3, 1, nullptr, idx, w), Error);
  float nan_logits[3] = {0, std::nanf(""), 1};
  EXPECT_THROW(route(RouterConfig{}, nan_logits, 1, 3, 1, nullptr, idx, w), Error);
}

}  // namespace
}  // namespace moekit
