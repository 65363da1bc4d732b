#include "tiny_checkpoint.hpp"

#include <filesystem>
#include <fstream>
#include <map>

#include "moekit/inputs.hpp"
#include "moekit/router.hpp"
#include "moekit/safetensors.hpp"

namespace moekit_test {
namespace {

using moekit::Tensor;

struct Builder {
  moekit::DType dtype;
  std::uint64_t seed = 1;
  std::map<std::string, Tensor> tensors = {};

  void add(const std::string& name, std::initializer_list<std::int64_t> shape, float scale,
           std::optional<moekit::DType> as = std::nullopt) {
    Tensor t(as.value_or(dtype), shape);
    moekit::fill_uniform(t, scale, seed++);
    tensors.emplace(name, std::move(t));
  }
};

}  // namespace

std::string tiny_config_json(const std::string& type) {
  const std::string common = "\"model_type\": \"" + type + "\", \"hidden_size\": 16, \"num_hidden_layers\": 3, "
                             "\"num_experts_per_tok\": 2, \"hidden_act\": \"silu\"";
  if (type == "deepseek_v3" || type == "glm4_moe" || type == "solar_open")
    return "{" + common + ", \"moe_intermediate_size\": 8, \"intermediate_size\": 32, \"n_routed_experts\": 8, "
           "\"n_shared_experts\": 1, \"n_group\": 2, \"topk_group\": 1, \"routed_scaling_factor\": 2.5, "
           "\"first_k_dense_replace\": 1, \"norm_topk_prob\": true}";
  if (type == "qwen2_moe")
    return "{" + common + ", \"moe_intermediate_size\": 8, \"num_experts\": 8, \"shared_expert_intermediate_size\": 12, "
           "\"mlp_only_layers\": [0], \"norm_topk_prob\": false}";
  if (type == "qwen3_moe" || type == "olmoe")
    return "{" + common + ", \"moe_intermediate_size\": 8, \"intermediate_size\": " +
           (type == "olmoe" ? "8" : "32") + ", \"num_experts\": 8, \"mlp_only_layers\": [0], \"norm_topk_prob\": true}";
  return "{" + common + ", \"intermediate_size\": 8, \"num_local_experts\": 8}";  // mixtral, gpt_oss
}

std::string write_tiny_checkpoint(const TinySpec& spec, const std::string& folder_name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("moekit_model_test_" + folder_name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string json = tiny_config_json(spec.model_type);
  std::ofstream(dir / "config.json") << json;

  const moekit::ModelConfig c = moekit::parse_model_config(json);
  const std::int64_t H = c.hidden_size, I = c.moe_intermediate_size, E = c.num_experts;
  Builder b{spec.dtype};
  const std::string p = c.layer_prefix(kTinyLayer);
  // Router weights large enough that the top-k has clear margins in bf16.
  b.add(p + std::string(c.router_name()) + ".weight", {E, H}, 2.0f);
  if (c.router_bias) b.add(p + "router.bias", {E}, 0.5f);
  if (c.correction_bias) b.add(p + "gate.e_score_correction_bias", {E}, 0.1f, moekit::DType::f32);
  if (c.naming == moekit::ExpertNaming::fused) {
    b.add(p + "experts.gate_up_proj", {E, H, 2 * I}, 0.5f);
    b.add(p + "experts.gate_up_proj_bias", {E, 2 * I}, 0.5f);
    b.add(p + "experts.down_proj", {E, I, H}, 0.5f);
    b.add(p + "experts.down_proj_bias", {E, H}, 0.5f);
  } else {
    const bool mixtral = c.naming == moekit::ExpertNaming::mixtral;
    for (std::int64_t e = 0; e < E; ++e) {
      const std::string q = p + "experts." + std::to_string(e) + ".";
      b.add(q + (mixtral ? "w1" : "gate_proj") + ".weight", {I, H}, 0.5f);
      b.add(q + (mixtral ? "w3" : "up_proj") + ".weight", {I, H}, 0.5f);
      b.add(q + (mixtral ? "w2" : "down_proj") + ".weight", {H, I}, 0.5f);
    }
  }
  if (const std::int64_t Is = c.shared_intermediate(); Is > 0) {
    const std::string q = p + (spec.model_type == "qwen2_moe" ? "shared_expert." : "shared_experts.");
    b.add(q + "gate_proj.weight", {Is, H}, 0.5f);
    b.add(q + "up_proj.weight", {Is, H}, 0.5f);
    b.add(q + "down_proj.weight", {H, Is}, 0.5f);
    if (c.shared_expert_gate) b.add(p + "shared_expert_gate.weight", {1, H}, 0.5f);
  }
  // A tensor of another layer, which loading layer 1 must not need.
  b.add("model.layers.0.mlp.down_proj.weight", {H, 4}, 0.5f);

  std::vector<moekit::safetensors::NamedTensor> named;
  for (const auto& [name, t] : b.tensors)
    if (name != spec.skip_tensor) named.push_back({name, t.view()});
  if (spec.sharded)
    moekit::safetensors::write_sharded(dir.string(), named, 2048);
  else
    moekit::safetensors::write_file((dir / "model.safetensors").string(), named);
  return dir.string();
}

ReferenceRouting reference_routing(const moekit::MoeBlock& block, const moekit::ModelConfig& config,
                                   const moekit::TensorView& x) {
  const std::int64_t T = x.shape[0], K = config.num_experts_per_tok, E = config.num_experts;
  const std::vector<float> logits = moekit::reference_router_logits(block, x);
  ReferenceRouting r{std::vector<std::int32_t>(std::size_t(T * K)), std::vector<float>(std::size_t(T * K))};
  const auto& bias = block.weights().correction_bias;
  moekit::route(config.router, logits.data(), T, E, K, bias.numel() ? bias.data<float>() : nullptr, r.index.data(),
                r.weights.data());
  if (moekit::router_precision(config).weights_in_model_dtype && x.dtype == moekit::DType::bf16)
    for (float& w : r.weights) w = moekit::to_float(moekit::to_bf16(w));
  else if (moekit::router_precision(config).weights_in_model_dtype && x.dtype == moekit::DType::f16)
    for (float& w : r.weights) w = moekit::to_float(moekit::to_f16(w));
  return r;
}

}  // namespace moekit_test
