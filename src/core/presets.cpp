// The presets are config.json descriptions: each is the expert part of its model's Hugging Face
// config.json, read by the same parser as a checkpoint's (src/model), so a preset and the real
// model's config.json cannot describe the experts differently. Fields a model's file leaves out
// take transformers' defaults for its model_type.
#include "moekit/presets.hpp"

#include <string>

#include "moekit/error.hpp"

namespace moekit {
namespace {

struct Source {
  std::string_view name, model, model_type, config_json;
};

// In the order of DESIGN §2; the sizes and router fields as the models' config.json files give them.
constexpr Source kSources[] = {
    {"solar-open-100b", "Solar-Open-100B", "solar_open",
     R"({"model_type": "solar_open", "hidden_size": 4096, "moe_intermediate_size": 1280, "n_routed_experts": 128,
         "num_experts_per_tok": 8, "n_shared_experts": 1, "n_group": 1, "topk_group": 1,
         "routed_scaling_factor": 1.0, "norm_topk_prob": true, "num_hidden_layers": 48, "first_k_dense_replace": 0})"},
    {"glm-4.5-air", "GLM-4.5-Air", "glm4_moe",
     R"({"model_type": "glm4_moe", "hidden_size": 4096, "moe_intermediate_size": 1408, "n_routed_experts": 128,
         "num_experts_per_tok": 8, "n_shared_experts": 1, "n_group": 1, "topk_group": 1,
         "routed_scaling_factor": 1.0, "norm_topk_prob": true, "num_hidden_layers": 46, "first_k_dense_replace": 1})"},
    {"deepseek-v3", "DeepSeek-V3", "deepseek_v3",
     R"({"model_type": "deepseek_v3", "hidden_size": 7168, "moe_intermediate_size": 2048, "n_routed_experts": 256,
         "num_experts_per_tok": 8, "n_shared_experts": 1, "n_group": 8, "topk_group": 4,
         "routed_scaling_factor": 2.5, "norm_topk_prob": true, "num_hidden_layers": 61, "first_k_dense_replace": 3})"},
    {"mixtral-8x7b", "Mixtral-8x7B", "mixtral",
     R"({"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_local_experts": 8,
         "num_experts_per_tok": 2, "num_hidden_layers": 32})"},
    {"qwen3-30b-a3b", "Qwen3-30B-A3B", "qwen3_moe",
     R"({"model_type": "qwen3_moe", "hidden_size": 2048, "moe_intermediate_size": 768, "num_experts": 128,
         "num_experts_per_tok": 8, "norm_topk_prob": true, "num_hidden_layers": 48})"},
    {"qwen3-235b-a22b", "Qwen3-235B-A22B", "qwen3_moe",
     R"({"model_type": "qwen3_moe", "hidden_size": 4096, "moe_intermediate_size": 1536, "num_experts": 128,
         "num_experts_per_tok": 8, "norm_topk_prob": true, "num_hidden_layers": 94})"},
    {"qwen1.5-moe-a2.7b", "Qwen1.5-MoE-A2.7B", "qwen2_moe",
     R"({"model_type": "qwen2_moe", "hidden_size": 2048, "moe_intermediate_size": 1408, "num_experts": 60,
         "num_experts_per_tok": 4, "shared_expert_intermediate_size": 5632, "norm_topk_prob": false,
         "num_hidden_layers": 24})"},
    {"olmoe-1b-7b", "OLMoE-1B-7B", "olmoe",
     R"({"model_type": "olmoe", "hidden_size": 2048, "intermediate_size": 1024, "num_experts": 64,
         "num_experts_per_tok": 8, "norm_topk_prob": false, "num_hidden_layers": 16})"},
    {"gpt-oss-20b", "gpt-oss-20b", "gpt_oss",
     R"({"model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "num_local_experts": 32,
         "num_experts_per_tok": 4, "num_hidden_layers": 24})"},
    {"gpt-oss-120b", "gpt-oss-120b", "gpt_oss",
     R"({"model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "num_local_experts": 128,
         "num_experts_per_tok": 4, "num_hidden_layers": 36})"},
};

Preset from_config(const Source& s) {
  Preset p;
  p.name = s.name;
  p.model = s.model;
  p.model_type = s.model_type;
  p.config = parse_model_config(s.config_json);
  if (p.config.model_type != s.model_type)  // a typo in the table above, caught on first use
    throw Error(Errc::invalid_argument, "preset " + std::string(s.name) + " names model_type " +
                                            std::string(s.model_type) + " but its config says " + p.config.model_type);
  const ModelConfig& c = p.config;
  p.hidden = c.hidden_size;
  p.intermediate = c.moe_intermediate_size;
  p.experts = c.num_experts;
  p.top_k = c.num_experts_per_tok;
  p.shared.intermediate = c.shared_intermediate();
  p.shared.count = p.shared.intermediate == 0 ? 0 : c.shared_expert_gate ? 1 : int(c.n_shared_experts);
  p.shared.sigmoid_gate = c.shared_expert_gate;
  p.router = c.router;
  p.options = c.experts;
  p.bias = c.has_bias;
  return p;
}

std::vector<Preset> build() {
  std::vector<Preset> all;
  for (const Source& s : kSources) all.push_back(from_config(s));
  return all;
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

ModelConfig preset_model_config(const Preset& preset) { return preset.config; }

}  // namespace moekit
