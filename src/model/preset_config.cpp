// Presets as ModelConfigs: the model_type's transformers defaults with the preset's sizes.
#include <string>

#include "moekit/presets.hpp"

namespace moekit {
namespace {

std::string_view model_type_of(std::string_view preset) {
  if (preset.starts_with("solar-open")) return "solar_open";
  if (preset.starts_with("glm-4.5")) return "glm4_moe";
  if (preset.starts_with("deepseek")) return "deepseek_v3";
  if (preset.starts_with("mixtral")) return "mixtral";
  if (preset.starts_with("qwen3")) return "qwen3_moe";
  if (preset.starts_with("qwen1.5")) return "qwen2_moe";
  if (preset.starts_with("olmoe")) return "olmoe";
  return "gpt_oss";
}

}  // namespace

ModelConfig preset_model_config(const Preset& p) {
  ModelConfig c = default_model_config(model_type_of(p.name));
  c.hidden_size = p.hidden;
  c.moe_intermediate_size = p.intermediate;
  c.num_experts = p.experts;
  c.num_experts_per_tok = p.top_k;
  c.router = p.router;
  c.experts = p.options;
  c.has_bias = p.bias;
  if (c.shared_expert_gate)
    c.shared_expert_intermediate_size = p.shared.intermediate;
  else
    c.n_shared_experts = p.shared.count ? p.shared.intermediate / p.intermediate : 0;
  return c;
}

}  // namespace moekit
