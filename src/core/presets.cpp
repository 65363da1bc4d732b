#include "moekit/presets.hpp"

#include <string>

#include "moekit/error.hpp"

namespace moekit {
namespace {

using Kind = RouterConfig::Kind;

RouterConfig softmax(bool renorm) { return {Kind::softmax_topk, renorm}; }

RouterConfig sigmoid(int n_group, int topk_group, float scale) {
  return {Kind::sigmoid_grouped, /*norm_topk_prob=*/true, n_group, topk_group, scale};
}

// gpt-oss stores its experts fused, transposed and interleaved, with biases, and gates with the
// clamped SwiGLU.
ExpertsOptions gpt_oss_options() {
  ExpertsOptions o;
  o.activation = Activation::clamped_swiglu;
  o.gate_layout = GateLayout::interleaved;
  o.transposed = true;
  o.swiglu_alpha = 1.702f;
  o.swiglu_limit = 7.0f;
  return o;
}

Preset gpt_oss(std::string_view name, std::string_view model, std::int64_t experts) {
  Preset p{name, model, "gpt_oss", 2880, 2880, experts, 4, {}, {Kind::gpt_oss, false}, gpt_oss_options()};
  p.bias = true;
  return p;
}

std::vector<Preset> build() {
  const ExpertsOptions silu{};  // silu, concatenated gate/up, [E, 2I, H], no bias
  return {
      {"solar-open-100b", "Solar-Open-100B", "solar_open", 4096, 1280, 128, 8, {1, 1280}, sigmoid(1, 1, 1.0f), silu},
      {"glm-4.5-air", "GLM-4.5-Air", "glm4_moe", 4096, 1408, 128, 8, {1, 1408}, sigmoid(1, 1, 1.0f), silu},
      {"deepseek-v3", "DeepSeek-V3", "deepseek_v3", 7168, 2048, 256, 8, {1, 2048}, sigmoid(8, 4, 2.5f), silu},
      {"mixtral-8x7b", "Mixtral-8x7B", "mixtral", 4096, 14336, 8, 2, {}, softmax(true), silu},
      {"qwen3-30b-a3b", "Qwen3-30B-A3B", "qwen3_moe", 2048, 768, 128, 8, {}, softmax(true), silu},
      {"qwen3-235b-a22b", "Qwen3-235B-A22B", "qwen3_moe", 4096, 1536, 128, 8, {}, softmax(true), silu},
      {"qwen1.5-moe-a2.7b", "Qwen1.5-MoE-A2.7B", "qwen2_moe", 2048, 1408, 60, 4, {1, 5632, true}, softmax(false), silu},
      {"olmoe-1b-7b", "OLMoE-1B-7B", "olmoe", 2048, 1024, 64, 8, {}, softmax(false), silu},
      gpt_oss("gpt-oss-20b", "gpt-oss-20b", 32),
      gpt_oss("gpt-oss-120b", "gpt-oss-120b", 128),
  };
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = build();
  return all;
}

const Preset& find_preset(std::string_view name) {
  for (const Preset& p : presets())
    if (p.name == name) return p;
  std::string valid;
  for (const Preset& p : presets()) {
    if (!valid.empty()) valid += ", ";
    valid += p.name;
  }
  throw Error(Errc::not_found, "unknown preset '" + std::string(name) + "'; valid: " + valid);
}

}  // namespace moekit
