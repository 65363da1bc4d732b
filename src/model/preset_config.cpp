// Presets as ModelConfigs: the model_type's transformers defaults with the preset's sizes.
#include <string>

#include "moekit/presets.hpp"

namespace moekit {

ModelConfig preset_model_config(const Preset& p) {
  ModelConfig c = default_model_config(p.model_type);
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
