// moekit: the MoE routers (DESIGN §1, "The MoE block around it"), on the host in fp32.
//
// They turn router logits [T, E] into the (top_k_index, top_k_weights) pair the experts call
// takes. Used by the benchmarks to route random data the way each model family does, and by
// anyone who wants a reference router.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moekit {

struct RouterConfig {
  enum class Kind : std::uint8_t {
    // softmax over E -> top-k -> divide by the sum if norm_topk_prob
    // (Mixtral always; Qwen2/3-MoE and OLMoE per config).
    softmax_topk,
    // sigmoid -> + correction bias (for the choice only) -> group-limited top-k -> the un-biased
    // sigmoid scores of the chosen -> / (sum + 1e-20) if norm_topk_prob -> * routed_scaling_factor
    // (DeepSeek-V3, GLM-4.5, Solar-Open).
    sigmoid_grouped,
    // top-k on the logits (router bias already added) -> softmax over those K (gpt-oss).
    gpt_oss,
  };
  Kind kind = Kind::softmax_topk;
  bool norm_topk_prob = true;
  // sigmoid_grouped only; the other kinds require the defaults.
  int n_group = 1;     // E splits into n_group equal groups
  int topk_group = 1;  // groups kept per token, ranked by the sum of their top 2 biased scores
  float routed_scaling_factor = 1.0f;
};

std::string_view router_kind_name(RouterConfig::Kind kind) noexcept;  // "softmax_topk", ...
// One line for tables: "sigmoid+bias, 8 groups top-4, renorm, x2.5".
std::string describe(const RouterConfig& config);

// Routes T tokens. logits: [T, E] fp32 row-major. correction_bias: [E] or nullptr, only for
// sigmoid_grouped. Writes top_k_index [T, K] and top_k_weights [T, K], each row ordered by
// decreasing selection score. Ties go to the lower expert (or group) index, so the result is
// deterministic. Throws moekit::Error (invalid_argument) on bad sizes or configuration, and on
// non-finite logits or bias (a NaN has no place in a ranking).
// The configuration checks of route() alone (sizes, groups, settings the kind would ignore), for
// callers that route elsewhere (the CUDA router). Throws moekit::Error (invalid_argument).
void check_router(const RouterConfig& config, std::int64_t E, std::int64_t K, bool has_correction_bias);

void route(const RouterConfig& config, const float* logits, std::int64_t T, std::int64_t E,
           std::int64_t K, const float* correction_bias, std::int32_t* top_k_index,
           float* top_k_weights);

}  // namespace moekit
