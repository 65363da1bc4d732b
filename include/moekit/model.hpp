// moekit: a model's MoE block described the way a Hugging Face config.json describes it.
//
// Field names and defaults follow transformers' configuration classes per model_type, so a field
// missing from the file takes the value transformers would give it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moekit/experts.hpp"
#include "moekit/router.hpp"

namespace moekit {

// How a checkpoint stores the routed experts.
enum class ExpertNaming : std::uint8_t {
  per_expert,  // {prefix}experts.{e}.gate_proj/up_proj/down_proj.weight
  mixtral,     // {prefix}experts.{e}.w1 (gate) / w3 (up) / w2 (down).weight
  fused,       // {prefix}experts.gate_up_proj[_bias] / down_proj[_bias] as the experts call takes them
};

struct ModelConfig {
  std::string model_type;  // "deepseek_v3", "mixtral", ...
  std::int64_t hidden_size = 0;            // H
  std::int64_t moe_intermediate_size = 0;  // I of one routed expert
  std::int64_t intermediate_size = 0;      // width of the dense MLP of non-MoE layers
  std::int64_t num_experts = 0;            // E (n_routed_experts / num_experts / num_local_experts)
  std::int64_t num_experts_per_tok = 0;    // K
  std::int64_t n_shared_experts = 0;       // deepseek-style: shared width = I * n_shared_experts
  std::int64_t shared_expert_intermediate_size = 0;  // qwen2_moe: the shared width itself
  bool shared_expert_gate = false;         // qwen2_moe: shared * sigmoid(x . shared_expert_gate)
  RouterConfig router;
  bool router_bias = false;                // gpt-oss: the router linear has a bias
  bool correction_bias = false;            // sigmoid routers: e_score_correction_bias
  ExpertsOptions experts;                  // activation, layout, swiglu parameters
  bool has_bias = false;                   // gate_up_proj_bias / down_proj_bias (gpt-oss)
  ExpertNaming naming = ExpertNaming::per_expert;
  std::string hidden_act = "silu";
  int num_hidden_layers = 0;
  int first_k_dense_replace = 0;           // deepseek-style: layers below are dense
  std::vector<int> mlp_only_layers;        // qwen-style: these layers are dense
  int decoder_sparse_step = 1;             // qwen-style: MoE when (layer + 1) % step == 0

  // Total width of the shared MLP; 0 without one.
  std::int64_t shared_intermediate() const noexcept;
  // "model.layers.{N}.mlp." (Mixtral: "model.layers.{N}.block_sparse_moe.")
  std::string layer_prefix(int layer) const;
  // Name of the router's linear layer under the prefix: "gate" or "router" (gpt-oss).
  std::string_view router_name() const noexcept;
  // One line: "deepseek_v3 H=7168 I=2048 E=256 K=8 shared 1 x 2048 sigmoid+bias, ..."
  std::string describe() const;
};

// The model_types parse_model_config knows.
const std::vector<std::string_view>& known_model_types();

// Throws moekit::Error (invalid_argument) naming the bad field, or the unknown model_type with the
// known ones.
ModelConfig parse_model_config(std::string_view json_text);
// Reads dir/config.json. Throws Errc::not_found when it is missing.
ModelConfig load_model_config(const std::string& dir);
// The defaults transformers gives a model_type when config.json has only that field.
ModelConfig default_model_config(std::string_view model_type);

bool is_moe_layer(const ModelConfig& config, int layer);
// Throws moekit::Error (invalid_argument) when the layer is out of range or dense, saying why.
void require_moe_layer(const ModelConfig& config, int layer);
// The first MoE layer; throws when the model has none.
int first_moe_layer(const ModelConfig& config);

}  // namespace moekit
