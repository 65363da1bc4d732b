// Tiny checkpoints of every model_type, written with the safetensors writer in the hub's naming.
#pragma once

#include <string>
#include <vector>

#include "moekit/dtype.hpp"
#include "moekit/model.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/tensor.hpp"

namespace moekit_test {

struct TinySpec {
  std::string model_type;
  moekit::DType dtype = moekit::DType::f32;
  bool sharded = false;
  std::string skip_tensor = {};  // leave this tensor out (error tests)
};

// The config.json text of a tiny model of that type: H=16, I=8, E=8, K=2, 3 layers, layer 0 dense
// where the family has dense layers.
std::string tiny_config_json(const std::string& model_type);
// The MoE layer the tiny models are tested on.
inline constexpr int kTinyLayer = 1;
// Writes config.json and the layer's tensors into a fresh folder; returns it.
std::string write_tiny_checkpoint(const TinySpec& spec, const std::string& folder_name);

// The routing the block must produce for x: route() on the float64 reference logits.
struct ReferenceRouting {
  std::vector<std::int32_t> index;  // [T, K]
  std::vector<float> weights;       // [T, K]
};
ReferenceRouting reference_routing(const moekit::MoeBlock& block, const moekit::ModelConfig& config,
                                   const moekit::TensorView& x);

}  // namespace moekit_test
