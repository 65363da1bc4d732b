// Which layers of a model are MoE, and the names its checkpoint gives them.
#include <algorithm>
#include <cstdio>
#include <string>

#include "moekit/error.hpp"
#include "moekit/model.hpp"

namespace moekit {
namespace {

// Empty when the layer is MoE; otherwise why not.
std::string dense_reason(const ModelConfig& c, int layer) {
  if (layer < c.first_k_dense_replace)
    return "dense: first_k_dense_replace = " + std::to_string(c.first_k_dense_replace) +
           " makes layers 0.." + std::to_string(c.first_k_dense_replace - 1) + " plain MLPs";
  if (std::find(c.mlp_only_layers.begin(), c.mlp_only_layers.end(), layer) != c.mlp_only_layers.end())
    return "dense: it is listed in mlp_only_layers";
  if ((layer + 1) % c.decoder_sparse_step != 0)
    return "dense: decoder_sparse_step = " + std::to_string(c.decoder_sparse_step) +
           " makes only layers with (layer + 1) % " + std::to_string(c.decoder_sparse_step) + " == 0 MoE";
  return {};
}

}  // namespace

std::int64_t ModelConfig::shared_intermediate() const noexcept {
  if (shared_expert_intermediate_size > 0 && model_type == "qwen2_moe") return shared_expert_intermediate_size;
  return moe_intermediate_size * n_shared_experts;
}

std::string ModelConfig::layer_prefix(int layer) const {
  return "model.layers." + std::to_string(layer) + (naming == ExpertNaming::mixtral ? ".block_sparse_moe." : ".mlp.");
}

std::string_view ModelConfig::router_name() const noexcept {
  return model_type == "gpt_oss" ? "router" : "gate";
}

std::string ModelConfig::describe() const {
  std::string s = model_type + " H=" + std::to_string(hidden_size) + " I=" + std::to_string(moe_intermediate_size) +
                  " E=" + std::to_string(num_experts) + " K=" + std::to_string(num_experts_per_tok);
  if (const std::int64_t w = shared_intermediate(); w > 0) {
    s += ", shared " + std::to_string(w);
    if (shared_expert_gate) s += " sigmoid-gated";
  }
  s += ", " + moekit::describe(router);
  return s;
}

bool is_moe_layer(const ModelConfig& c, int layer) {
  return layer >= 0 && layer < c.num_hidden_layers && dense_reason(c, layer).empty();
}

void require_moe_layer(const ModelConfig& c, int layer) {
  if (layer < 0 || layer >= c.num_hidden_layers)
    throw Error(Errc::invalid_argument, "layer " + std::to_string(layer) + " is out of range: " + c.model_type +
                                            " has num_hidden_layers = " + std::to_string(c.num_hidden_layers));
  if (const std::string why = dense_reason(c, layer); !why.empty())
    throw Error(Errc::invalid_argument, "layer " + std::to_string(layer) + " is not an MoE layer (" + why +
                                            "); first MoE layer: " + std::to_string(first_moe_layer(c)));
}

int first_moe_layer(const ModelConfig& c) {
  for (int l = 0; l < c.num_hidden_layers; ++l)
    if (dense_reason(c, l).empty()) return l;
  throw Error(Errc::invalid_argument, c.model_type + " with these settings has no MoE layer");
}

}  // namespace moekit
