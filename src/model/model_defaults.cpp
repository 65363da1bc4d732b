// The defaults of transformers' configuration classes, per model_type (MoE fields only).
#include <string>

#include "moekit/error.hpp"
#include "moekit/model.hpp"

namespace moekit {
namespace {

using Kind = RouterConfig::Kind;

// DeepSeek-V3 and the models built on its router and MoE block (GLM-4.5, Solar-Open).
ModelConfig deepseek_style(std::string_view type, std::int64_t hidden, std::int64_t moe_i, std::int64_t experts,
                           int n_group, int topk_group, float scale, int layers, int first_dense) {
  ModelConfig c;
  c.model_type = std::string(type);
  c.hidden_size = hidden;
  c.moe_intermediate_size = moe_i;
  c.num_experts = experts;
  c.num_experts_per_tok = 8;
  c.n_shared_experts = 1;
  c.router = {Kind::sigmoid_grouped, /*norm_topk_prob=*/true, n_group, topk_group, scale};
  c.correction_bias = true;
  c.num_hidden_layers = layers;
  c.first_k_dense_replace = first_dense;
  return c;
}

ModelConfig softmax_style(std::string_view type, std::int64_t hidden, std::int64_t moe_i, std::int64_t experts,
                          std::int64_t top_k, bool renorm, int layers) {
  ModelConfig c;
  c.model_type = std::string(type);
  c.hidden_size = hidden;
  c.moe_intermediate_size = moe_i;
  c.num_experts = experts;
  c.num_experts_per_tok = top_k;
  c.router = {Kind::softmax_topk, renorm};
  c.num_hidden_layers = layers;
  return c;
}

}  // namespace

const std::vector<std::string_view>& known_model_types() {
  static const std::vector<std::string_view> types{"solar_open", "glm4_moe", "deepseek_v3", "mixtral",
                                                   "qwen2_moe",  "qwen3_moe", "olmoe",      "gpt_oss"};
  return types;
}

ModelConfig default_model_config(std::string_view type) {
  if (type == "deepseek_v3") {
    ModelConfig c = deepseek_style(type, 7168, 2048, 256, 8, 4, 2.5f, 61, 3);
    c.intermediate_size = 18432;
    return c;
  }
  if (type == "glm4_moe") {
    ModelConfig c = deepseek_style(type, 4096, 1408, 128, 1, 1, 1.0f, 46, 1);
    c.intermediate_size = 10944;
    return c;
  }
  // Solar-Open's configuration has no dense-layer field: every layer is MoE.
  if (type == "solar_open") return deepseek_style(type, 4096, 1280, 128, 1, 1, 1.0f, 48, 0);
  if (type == "mixtral") {
    ModelConfig c = softmax_style(type, 4096, 14336, 8, 2, true, 32);
    c.intermediate_size = c.moe_intermediate_size;
    c.naming = ExpertNaming::mixtral;
    return c;
  }
  if (type == "qwen2_moe") {
    ModelConfig c = softmax_style(type, 2048, 1408, 60, 4, false, 24);
    c.intermediate_size = 5632;
    c.shared_expert_intermediate_size = 5632;
    c.shared_expert_gate = true;
    return c;
  }
  if (type == "qwen3_moe") {
    ModelConfig c = softmax_style(type, 2048, 768, 128, 8, false, 24);
    c.intermediate_size = 6144;
    return c;
  }
  if (type == "olmoe") {
    ModelConfig c = softmax_style(type, 2048, 2048, 64, 8, false, 16);
    c.intermediate_size = c.moe_intermediate_size;
    return c;
  }
  if (type == "gpt_oss") {
    ModelConfig c = softmax_style(type, 2880, 2880, 128, 4, false, 36);
    c.intermediate_size = c.moe_intermediate_size;
    c.router = {Kind::gpt_oss, false};
    c.router_bias = true;
    c.has_bias = true;
    c.naming = ExpertNaming::fused;
    c.experts.activation = Activation::clamped_swiglu;
    c.experts.gate_layout = GateLayout::interleaved;
    c.experts.transposed = true;
    c.experts.swiglu_alpha = 1.702f;
    c.experts.swiglu_limit = 7.0f;
    return c;
  }
  std::string known;
  for (std::string_view t : known_model_types()) {
    if (!known.empty()) known += ", ";
    known += t;
  }
  throw Error(Errc::invalid_argument,
              "unknown model_type '" + std::string(type) + "'; moekit knows: " + known);
}

}  // namespace moekit
