// moekit: the expert shapes of real models (DESIGN §2) as config.json descriptions, for benchmarks
// and examples.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "moekit/experts.hpp"
#include "moekit/model.hpp"
#include "moekit/router.hpp"

namespace moekit {

// The shared expert(s) beside the routed ones: an ordinary gated MLP, not part of the experts
// call, kept here so a whole MoE block can be described.
struct SharedExperts {
  int count = 0;                  // 0: none
  std::int64_t intermediate = 0;  // total width of the shared MLP
  bool sigmoid_gate = false;      // output * sigmoid(shared_expert_gate(x)) (Qwen2-MoE / Qwen1.5)
};

struct Preset {
  std::string_view name;   // "solar-open-100b"
  std::string_view model;  // the model family, for display: "Solar-Open-100B"
  std::string_view model_type;  // its config.json model_type: "solar_open"
  std::int64_t hidden = 0;        // H
  std::int64_t intermediate = 0;  // I (per routed expert)
  std::int64_t experts = 0;       // E
  std::int64_t top_k = 0;         // K
  SharedExperts shared;
  RouterConfig router;
  ExpertsOptions options;
  bool bias = false;  // gate_up_proj_bias and down_proj_bias (gpt-oss)
  // The description the fields above are read from: the expert part of the model's config.json,
  // parsed like a checkpoint's (transformers' defaults for what it leaves out).
  ModelConfig config;
};

// In the order of DESIGN §2.
const std::vector<Preset>& presets();
// Throws moekit::Error (Errc::not_found) listing the valid names.
const Preset& find_preset(std::string_view name);
// The preset's model description (Preset::config), for the code that takes a ModelConfig.
ModelConfig preset_model_config(const Preset& preset);

}  // namespace moekit
