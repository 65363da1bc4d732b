// MoeBlock::load from a safetensors checkpoint: only the shards holding this layer get opened.
#include "moekit/moe_block.hpp"
#include "moekit/safetensors.hpp"

namespace moekit {

MoeBlock MoeBlock::load(const ModelConfig& config, int layer, const safetensors::Checkpoint& checkpoint) {
  const TensorSource source{[&](std::string_view n) { return checkpoint.contains(n); },
                            [&](std::string_view n) { return checkpoint.view(n); }};
  return load(config, layer, source);
}

}  // namespace moekit
