#include "moekit/router.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <vector>

#include "moekit/error.hpp"

namespace moekit {
namespace {

[[noreturn]] void invalid(const std::string& message) {
  throw Error(Errc::invalid_argument, "route: " + message);
}

std::string str(std::int64_t v) { return std::to_string(v); }

}  // namespace

void check_router(const RouterConfig& c, std::int64_t E, std::int64_t K, bool has_bias) {
  if (E < 1) invalid("E must be >= 1, got " + str(E));
  // Ids are written as int32.
  if (E > std::numeric_limits<std::int32_t>::max()) invalid("E does not fit int32: " + str(E));
  if (K < 1) invalid("K must be >= 1, got " + str(K));
  if (K > E) invalid("K (" + str(K) + ") must not exceed E (" + str(E) + ")");
  if (!std::isfinite(c.routed_scaling_factor))
    invalid("routed_scaling_factor must be finite");

  if (c.kind != RouterConfig::Kind::sigmoid_grouped) {
    // Refuse settings this router would silently ignore.
    if (has_bias) invalid("a correction bias only applies to the sigmoid_grouped router");
    if (c.n_group != 1 || c.topk_group != 1)
      invalid("expert groups only apply to the sigmoid_grouped router");
    if (c.routed_scaling_factor != 1.0f)
      invalid("routed_scaling_factor only applies to the sigmoid_grouped router");
    return;
  }
  if (c.n_group < 1) invalid("n_group must be >= 1, got " + str(c.n_group));
  if (E % c.n_group != 0)
    invalid("n_group (" + str(c.n_group) + ") must divide E (" + str(E) + ")");
  if (c.topk_group < 1 || c.topk_group > c.n_group)
    invalid("topk_group (" + str(c.topk_group) + ") must be in [1, n_group = " +
            str(c.n_group) + "]");
  const std::int64_t kept = std::int64_t(c.topk_group) * (E / c.n_group);
  if (K > kept)
    invalid("K (" + str(K) + ") exceeds the " + str(kept) + " experts in the " +
            str(c.topk_group) + " kept groups");
}

namespace {

void validate_route(const RouterConfig& c, const float* logits, std::int64_t T, std::int64_t E,
                    std::int64_t K, const float* bias, const std::int32_t* index,
                    const float* weights) {
  if (T < 0) invalid("T must be >= 0, got " + str(T));
  if (T > 0 && (!logits || !index || !weights)) invalid("null logits or output pointer");
  check_router(c, E, K, bias != nullptr);
  if (bias) {
    for (std::int64_t e = 0; e < E; ++e)
      if (!std::isfinite(bias[e])) invalid("correction bias of expert " + str(e) + " is not finite");
  }
}

void require_finite(const float* row, std::int64_t E, std::int64_t t) {
  for (std::int64_t e = 0; e < E; ++e)
    if (!std::isfinite(row[e]))
      invalid("logit [" + str(t) + ", " + str(e) + "] is not finite");
}

// The k best of score[0, n) into out, best first; equal scores go to the lower index, which makes
// the comparison a strict total order and the selection independent of the sort's internals.
void top_k(const float* score, std::int64_t n, std::int64_t k, std::int32_t* out,
           std::vector<std::int32_t>& order) {
  order.resize(std::size_t(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [score](std::int32_t a, std::int32_t b) {
                      return score[a] > score[b] || (score[a] == score[b] && a < b);
                    });
  std::copy_n(order.begin(), k, out);
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void route_softmax(const RouterConfig& c, const float* logits, std::int64_t E, std::int64_t K,
                   std::int32_t* idx, float* w, std::vector<float>& prob,
                   std::vector<std::int32_t>& order) {
  prob.resize(std::size_t(E));
  const float mx = *std::max_element(logits, logits + E);
  float sum = 0.0f;
  for (std::int64_t e = 0; e < E; ++e) sum += prob[e] = std::exp(logits[e] - mx);
  for (std::int64_t e = 0; e < E; ++e) prob[e] /= sum;
  // Ranked on the probabilities, as transformers does, so that logits that round to the same
  // probability tie the same way.
  top_k(prob.data(), E, K, idx, order);
  float kept = 0.0f;
  for (std::int64_t k = 0; k < K; ++k) kept += w[k] = prob[idx[k]];
  if (c.norm_topk_prob)
    for (std::int64_t k = 0; k < K; ++k) w[k] /= kept;
}

void route_sigmoid(const RouterConfig& c, const float* logits, std::int64_t E, std::int64_t K,
                   const float* bias, std::int32_t* idx, float* w, std::vector<float>& score,
                   std::vector<float>& choice, std::vector<std::int32_t>& order) {
  score.resize(std::size_t(E));
  choice.resize(std::size_t(E));
  for (std::int64_t e = 0; e < E; ++e) {
    score[e] = sigmoid(logits[e]);
    choice[e] = bias ? score[e] + bias[e] : score[e];
  }
  if (c.n_group > 1) {
    const std::int64_t size = E / c.n_group;
    std::vector<float> group_score(std::size_t(c.n_group));
    for (int g = 0; g < c.n_group; ++g) {
      const float* s = choice.data() + g * size;
      // Sum of the two best (one when the groups are single experts).
      float best = s[0], second = -std::numeric_limits<float>::infinity();
      for (std::int64_t i = 1; i < size; ++i) {
        if (s[i] > best) { second = best; best = s[i]; }
        else if (s[i] > second) second = s[i];
      }
      group_score[g] = size > 1 ? best + second : best;
    }
    std::vector<std::int32_t> groups(std::size_t(c.topk_group));
    std::vector<std::int32_t> group_order;
    top_k(group_score.data(), c.n_group, c.topk_group, groups.data(), group_order);
    std::vector<char> keep(std::size_t(c.n_group), 0);
    for (std::int32_t g : groups) keep[g] = 1;
    // transformers masks the dropped groups with -inf, so none of their experts can be chosen
    // (K never exceeds the experts of the kept groups, and kept scores are finite).
    for (std::int64_t e = 0; e < E; ++e)
      if (!keep[e / size]) choice[e] = -std::numeric_limits<float>::infinity();
  }
  top_k(choice.data(), E, K, idx, order);
  float sum = 0.0f;
  for (std::int64_t k = 0; k < K; ++k) sum += w[k] = score[idx[k]];
  // Divide then scale, in that order, as transformers does (x / 1 is exact).
  const float denom = c.norm_topk_prob ? sum + 1e-20f : 1.0f;
  for (std::int64_t k = 0; k < K; ++k) w[k] = w[k] / denom * c.routed_scaling_factor;
}

void route_gpt_oss(const float* logits, std::int64_t E, std::int64_t K, std::int32_t* idx,
                   float* w, std::vector<std::int32_t>& order) {
  top_k(logits, E, K, idx, order);
  const float mx = logits[idx[0]];  // the first is the largest
  float sum = 0.0f;
  for (std::int64_t k = 0; k < K; ++k) sum += w[k] = std::exp(logits[idx[k]] - mx);
  for (std::int64_t k = 0; k < K; ++k) w[k] /= sum;
}

}  // namespace

std::string_view router_kind_name(RouterConfig::Kind kind) noexcept {
  switch (kind) {
    case RouterConfig::Kind::softmax_topk: return "softmax_topk";
    case RouterConfig::Kind::sigmoid_grouped: return "sigmoid_grouped";
    case RouterConfig::Kind::gpt_oss: return "gpt_oss";
  }
  return "?";
}

std::string describe(const RouterConfig& c) {
  switch (c.kind) {
    case RouterConfig::Kind::softmax_topk:
      return c.norm_topk_prob ? "softmax, renorm" : "softmax, no renorm";
    case RouterConfig::Kind::gpt_oss:
      return "logits+bias, top-k, softmax";
    case RouterConfig::Kind::sigmoid_grouped: {
      std::string s = "sigmoid+bias";
      if (c.n_group > 1)
        s += ", " + std::to_string(c.n_group) + " groups top-" + std::to_string(c.topk_group);
      s += c.norm_topk_prob ? ", renorm" : ", no renorm";
      if (c.routed_scaling_factor != 1.0f) {
        char buf[32];
        std::snprintf(buf, sizeof buf, ", x%g", double(c.routed_scaling_factor));
        s += buf;
      }
      return s;
    }
  }
  return "?";
}

void route(const RouterConfig& config, const float* logits, std::int64_t T, std::int64_t E,
           std::int64_t K, const float* correction_bias, std::int32_t* top_k_index,
           float* top_k_weights) {
  validate_route(config, logits, T, E, K, correction_bias, top_k_index, top_k_weights);
  std::vector<float> a, b;
  std::vector<std::int32_t> order;
  for (std::int64_t t = 0; t < T; ++t) {
    const float* row = logits + t * E;
    require_finite(row, E, t);
    std::int32_t* idx = top_k_index + t * K;
    float* w = top_k_weights + t * K;
    switch (config.kind) {
      case RouterConfig::Kind::softmax_topk:
        route_softmax(config, row, E, K, idx, w, a, order);
        break;
      case RouterConfig::Kind::sigmoid_grouped:
        route_sigmoid(config, row, E, K, correction_bias, idx, w, a, b, order);
        break;
      case RouterConfig::Kind::gpt_oss:
        route_gpt_oss(row, E, K, idx, w, order);
        break;
    }
  }
}

}  // namespace moekit
