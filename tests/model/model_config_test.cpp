#include <gtest/gtest.h>

#include "moekit/error.hpp"
#include "moekit/model.hpp"
#include "moekit/presets.hpp"

namespace {

using moekit::Error;
using moekit::parse_model_config;

TEST(ModelConfig, MissingFieldsTakeTransformersDefaults) {
  const auto d = parse_model_config(R"({"model_type": "deepseek_v3"})");
  EXPECT_EQ(d.hidden_size, 7168);
  EXPECT_EQ(d.moe_intermediate_size, 2048);
  EXPECT_EQ(d.num_experts, 256);
  EXPECT_EQ(d.router.n_group, 8);
  EXPECT_EQ(d.router.topk_group, 4);
  EXPECT_FLOAT_EQ(d.router.routed_scaling_factor, 2.5f);
  EXPECT_EQ(d.first_k_dense_replace, 3);
  EXPECT_EQ(d.shared_intermediate(), 2048);

  const auto q = parse_model_config(R"({"model_type": "qwen2_moe"})");
  EXPECT_EQ(q.num_experts, 60);
  EXPECT_EQ(q.shared_intermediate(), 5632);
  EXPECT_TRUE(q.shared_expert_gate);
  EXPECT_FALSE(q.router.norm_topk_prob);

  const auto m = parse_model_config(R"({"model_type": "mixtral", "num_local_experts": 4})");
  EXPECT_EQ(m.num_experts, 4);
  EXPECT_EQ(m.moe_intermediate_size, 14336);
  EXPECT_TRUE(m.router.norm_topk_prob);
  EXPECT_EQ(m.layer_prefix(2), "model.layers.2.block_sparse_moe.");

  const auto g = parse_model_config(R"({"model_type": "gpt_oss", "num_local_experts": 32, "swiglu_limit": 5.0})");
  EXPECT_EQ(g.num_experts, 32);
  // GptOssExperts hard-codes alpha = 1.702 and limit = 7.0; a config.json field changes nothing.
  EXPECT_FLOAT_EQ(g.experts.swiglu_limit, 7.0f);
  EXPECT_FLOAT_EQ(g.experts.swiglu_alpha, 1.702f);
  EXPECT_TRUE(g.experts.transposed);
  EXPECT_EQ(g.router_name(), "router");

  const auto s = parse_model_config(R"({"model_type": "solar_open"})");
  EXPECT_EQ(s.num_hidden_layers, 48);
  EXPECT_TRUE(moekit::is_moe_layer(s, 0));
}

// The defaults of each configuration class in transformers 5.17 (MoE fields), one row per type.
TEST(ModelConfig, DefaultsOfEveryTypeMatchTransformers) {
  struct Row {
    const char* type;
    std::int64_t H, I, E, K, shared;
    int layers, first_dense, n_group, topk_group;
    float scale;
    bool renorm;
  };
  const Row rows[] = {
      {"deepseek_v3", 7168, 2048, 256, 8, 2048, 61, 3, 8, 4, 2.5f, true},
      {"glm4_moe", 4096, 1408, 128, 8, 1408, 46, 1, 1, 1, 1.0f, true},
      {"solar_open", 4096, 1280, 128, 8, 1280, 48, 0, 1, 1, 1.0f, true},
      {"mixtral", 4096, 14336, 8, 2, 0, 32, 0, 1, 1, 1.0f, true},
      {"qwen2_moe", 2048, 1408, 60, 4, 5632, 24, 0, 1, 1, 1.0f, false},
      {"qwen3_moe", 2048, 768, 128, 8, 0, 24, 0, 1, 1, 1.0f, false},
      {"olmoe", 2048, 2048, 64, 8, 0, 16, 0, 1, 1, 1.0f, false},
      {"gpt_oss", 2880, 2880, 128, 4, 0, 36, 0, 1, 1, 1.0f, false},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.type);
    const auto c = parse_model_config(std::string(R"({"model_type": ")") + r.type + "\"}");
    EXPECT_EQ(c.hidden_size, r.H);
    EXPECT_EQ(c.moe_intermediate_size, r.I);
    EXPECT_EQ(c.num_experts, r.E);
    EXPECT_EQ(c.num_experts_per_tok, r.K);
    EXPECT_EQ(c.shared_intermediate(), r.shared);
    EXPECT_EQ(c.num_hidden_layers, r.layers);
    EXPECT_EQ(c.first_k_dense_replace, r.first_dense);
    EXPECT_EQ(c.router.n_group, r.n_group);
    EXPECT_EQ(c.router.topk_group, r.topk_group);
    EXPECT_FLOAT_EQ(c.router.routed_scaling_factor, r.scale);
    if (std::string(r.type) != "gpt_oss") {
      EXPECT_EQ(c.router.norm_topk_prob, r.renorm);
    }
    EXPECT_EQ(c.hidden_act, "silu");
  }
  // Checkpoint names: Mixtral's hub layout and Qwen2-MoE's singular shared expert with its gate.
  const auto m = parse_model_config(R"({"model_type": "mixtral"})");
  EXPECT_EQ(m.layer_prefix(2), "model.layers.2.block_sparse_moe.");
  EXPECT_EQ(m.naming, moekit::ExpertNaming::mixtral);
  EXPECT_EQ(parse_model_config(R"({"model_type": "glm4_moe"})").layer_prefix(1), "model.layers.1.mlp.");
}

TEST(ModelConfig, EveryKnownTypeParses) {
  for (std::string_view t : moekit::known_model_types())
    EXPECT_NO_THROW(parse_model_config("{\"model_type\": \"" + std::string(t) + "\"}")) << t;
}

TEST(ModelConfig, ErrorsNameTheField) {
  auto message = [](const std::string& json) {
    try {
      parse_model_config(json);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(R"({"model_type": "llama"})").find("unknown model_type 'llama'"), std::string::npos);
  EXPECT_NE(message(R"({"model_type": "olmoe", "num_experts": "8"})").find("'num_experts'"), std::string::npos);
  EXPECT_NE(message(R"({"model_type": "deepseek_v3", "n_group": 3})").find("'n_group'"), std::string::npos);
  EXPECT_NE(message(R"({"model_type": "qwen3_moe", "hidden_act": "tanh"})").find("'hidden_act'"), std::string::npos);
  EXPECT_NE(message(R"({"hidden_size": 4})").find("model_type"), std::string::npos);
  EXPECT_NE(message("{not json").find("not valid JSON"), std::string::npos);
}

TEST(ModelConfig, DenseLayers) {
  auto d = parse_model_config(R"({"model_type": "deepseek_v3", "num_hidden_layers": 5})");
  EXPECT_FALSE(moekit::is_moe_layer(d, 2));
  EXPECT_TRUE(moekit::is_moe_layer(d, 3));
  EXPECT_THROW(moekit::require_moe_layer(d, 5), Error);
  try {
    moekit::require_moe_layer(d, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("first_k_dense_replace"), std::string::npos);
  }
  auto q = parse_model_config(R"({"model_type": "qwen3_moe", "decoder_sparse_step": 2, "mlp_only_layers": [3]})");
  EXPECT_FALSE(moekit::is_moe_layer(q, 0));
  EXPECT_TRUE(moekit::is_moe_layer(q, 1));
  EXPECT_FALSE(moekit::is_moe_layer(q, 3));
  EXPECT_EQ(moekit::first_moe_layer(q), 1);
}

TEST(ModelConfig, PresetsAreModelConfigs) {
  for (const moekit::Preset& p : moekit::presets()) {
    const moekit::ModelConfig c = moekit::preset_model_config(p);
    EXPECT_EQ(c.hidden_size, p.hidden) << p.name;
    EXPECT_EQ(c.moe_intermediate_size, p.intermediate) << p.name;
    EXPECT_EQ(c.num_experts, p.experts) << p.name;
    EXPECT_EQ(c.num_experts_per_tok, p.top_k) << p.name;
    EXPECT_EQ(c.shared_intermediate(), p.shared.intermediate) << p.name;
    EXPECT_EQ(c.router.kind, p.router.kind) << p.name;
    EXPECT_EQ(c.router.n_group, p.router.n_group) << p.name;
    EXPECT_EQ(c.has_bias, p.bias) << p.name;
  }
}

}  // namespace
