// config.json -> ModelConfig: each model_type's field names over its transformers defaults.
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "moekit/error.hpp"
#include "moekit/model.hpp"

namespace moekit {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& field, const std::string& why) {
  throw Error(Errc::invalid_argument, "config.json: field '" + field + "' " + why);
}

// A null field is transformers' None, which these fields treat as "use the default".
const json* field(const json& j, std::string_view name) {
  const auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

template <class Int>
void read_int(const json& j, std::string_view name, Int& out) {
  const json* v = field(j, name);
  if (!v) return;
  if (!v->is_number_integer()) bad(std::string(name), "must be an integer, got " + v->dump());
  const auto value = v->get<std::int64_t>();
  if (value < 0) bad(std::string(name), "must be >= 0, got " + std::to_string(value));
  if (value > std::int64_t(std::numeric_limits<Int>::max())) bad(std::string(name), "is too large");
  out = Int(value);
}

// The first of several names transformers accepts for the same attribute (attribute_map).
template <class Int>
void read_int_alias(const json& j, std::initializer_list<std::string_view> names, Int& out) {
  for (std::string_view n : names)
    if (field(j, n)) return read_int(j, n, out);
}

void read_float(const json& j, std::string_view name, float& out) {
  const json* v = field(j, name);
  if (!v) return;
  if (!v->is_number()) bad(std::string(name), "must be a number, got " + v->dump());
  out = v->get<float>();
  if (!std::isfinite(out)) bad(std::string(name), "must be finite");
}

void read_bool(const json& j, std::string_view name, bool& out) {
  const json* v = field(j, name);
  if (!v) return;
  if (!v->is_boolean()) bad(std::string(name), "must be true or false, got " + v->dump());
  out = v->get<bool>();
}

void read_layers(const json& j, std::string_view name, std::vector<int>& out) {
  const json* v = field(j, name);
  if (!v) return;
  if (!v->is_array()) bad(std::string(name), "must be a list of layer indices, got " + v->dump());
  out.clear();
  for (const json& e : *v) {
    if (!e.is_number_integer() || e.get<std::int64_t>() < 0)
      bad(std::string(name), "must hold non-negative integers, got " + e.dump());
    out.push_back(int(e.get<std::int64_t>()));
  }
}

void read_fields(const json& j, ModelConfig& c) {
  const std::string& t = c.model_type;
  read_int(j, "hidden_size", c.hidden_size);
  read_int(j, "num_hidden_layers", c.num_hidden_layers);
  read_int(j, "num_experts_per_tok", c.num_experts_per_tok);
  read_int(j, "intermediate_size", c.intermediate_size);
  const bool deepseek_style = t == "deepseek_v3" || t == "glm4_moe" || t == "solar_open";
  const bool qwen_style = t == "qwen2_moe" || t == "qwen3_moe";
  if (deepseek_style) {
    read_int_alias(j, {"n_routed_experts", "num_local_experts", "num_experts"}, c.num_experts);
    read_int(j, "moe_intermediate_size", c.moe_intermediate_size);
    read_int(j, "n_shared_experts", c.n_shared_experts);
    read_int(j, "n_group", c.router.n_group);
    read_int(j, "topk_group", c.router.topk_group);
    read_float(j, "routed_scaling_factor", c.router.routed_scaling_factor);
    read_bool(j, "norm_topk_prob", c.router.norm_topk_prob);
    if (t != "solar_open") read_int(j, "first_k_dense_replace", c.first_k_dense_replace);
  } else if (qwen_style) {
    read_int_alias(j, {"num_experts", "num_local_experts"}, c.num_experts);
    read_int(j, "moe_intermediate_size", c.moe_intermediate_size);
    read_bool(j, "norm_topk_prob", c.router.norm_topk_prob);
    read_int(j, "decoder_sparse_step", c.decoder_sparse_step);
    read_layers(j, "mlp_only_layers", c.mlp_only_layers);
    if (t == "qwen2_moe") read_int(j, "shared_expert_intermediate_size", c.shared_expert_intermediate_size);
  } else if (t == "olmoe") {
    read_int_alias(j, {"num_experts", "num_local_experts"}, c.num_experts);
    read_bool(j, "norm_topk_prob", c.router.norm_topk_prob);
    c.moe_intermediate_size = c.intermediate_size;
  } else {  // mixtral, gpt_oss: the experts' width is intermediate_size; Mixtral always renormalises
    read_int_alias(j, {"num_local_experts", "num_experts"}, c.num_experts);
    // gpt-oss's swiglu alpha and limit are constants of GptOssExperts, not configuration fields.
    c.moe_intermediate_size = c.intermediate_size;
  }
  if (const json* act = field(j, "hidden_act")) {
    if (!act->is_string()) bad("hidden_act", "must be a string, got " + act->dump());
    c.hidden_act = act->get<std::string>();
  }
  // gpt-oss's experts use their clamped SwiGLU whatever hidden_act says.
  if (t != "gpt_oss") {
    const auto a = parse_activation(c.hidden_act);
    if (!a || *a == Activation::clamped_swiglu)
      bad("hidden_act", "'" + c.hidden_act + "' is not supported; valid: silu, gelu, gelu_pytorch_tanh, relu");
    c.experts.activation = *a;
  }
}

void check(const ModelConfig& c) {
  auto positive = [](const char* name, std::int64_t v) {
    if (v <= 0) bad(name, "must be positive, got " + std::to_string(v));
  };
  positive("hidden_size", c.hidden_size);
  positive("num_hidden_layers", c.num_hidden_layers);
  positive("num_experts_per_tok", c.num_experts_per_tok);
  const bool mixtral_like = c.model_type == "mixtral" || c.model_type == "gpt_oss" || c.model_type == "olmoe";
  positive(mixtral_like ? "intermediate_size" : "moe_intermediate_size", c.moe_intermediate_size);
  positive(c.model_type == "mixtral" || c.model_type == "gpt_oss" ? "num_local_experts"
           : c.router.kind == RouterConfig::Kind::sigmoid_grouped ? "n_routed_experts"
                                                                   : "num_experts",
           c.num_experts);
  if (c.num_experts_per_tok > c.num_experts)
    bad("num_experts_per_tok", "(" + std::to_string(c.num_experts_per_tok) + ") exceeds the " +
                                   std::to_string(c.num_experts) + " experts");
  if (c.decoder_sparse_step < 1) bad("decoder_sparse_step", "must be >= 1");
  if (c.router.kind == RouterConfig::Kind::sigmoid_grouped) {
    if (c.router.n_group < 1 || c.num_experts % c.router.n_group != 0)
      bad("n_group", "(" + std::to_string(c.router.n_group) + ") must divide the " +
                         std::to_string(c.num_experts) + " routed experts");
    if (c.router.topk_group < 1 || c.router.topk_group > c.router.n_group)
      bad("topk_group", "must be in [1, n_group = " + std::to_string(c.router.n_group) + "]");
  }
}

}  // namespace

ModelConfig parse_model_config(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse errors, and numbers too large for a double
    throw Error(Errc::invalid_argument, std::string("config.json is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error(Errc::invalid_argument, "config.json must hold a JSON object");
  const json* type = field(j, "model_type");
  if (!type) throw Error(Errc::invalid_argument, "config.json has no 'model_type'");
  if (!type->is_string()) bad("model_type", "must be a string, got " + type->dump());
  ModelConfig c = default_model_config(type->get<std::string>());
  try {
    read_fields(j, c);
  } catch (const json::exception& e) {  // a conversion the field checks did not foresee
    throw Error(Errc::invalid_argument, std::string("config.json has a field of the wrong kind: ") + e.what());
  }
  check(c);
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errc::not_found, "cannot read '" + path + "': a model folder needs a config.json");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return parse_model_config(text.str());
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
}

}  // namespace moekit
