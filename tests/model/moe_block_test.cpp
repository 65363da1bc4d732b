// moekit's MoE block on tiny checkpoints of every model_type against the float64 reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "moekit/check.hpp"
#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/presets.hpp"
#include "moekit/router.hpp"
#include "moekit/safetensors.hpp"
#include "tiny_checkpoint.hpp"

namespace {

using namespace moekit;
using moekit_test::kTinyLayer;

double tol(DType d) { return d == DType::f32 ? 1e-4 : 2e-2; }

struct Case {
  std::string type;
  DType dtype;
  bool sharded;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return info.param.type + "_" + std::string(dtype_name(info.param.dtype)) + (info.param.sharded ? "_sharded" : "_single");
}

class MoeBlockTest : public testing::TestWithParam<Case> {};

TEST_P(MoeBlockTest, MatchesReferenceOnBothPaths) {
  const Case& c = GetParam();
  const std::string dir = moekit_test::write_tiny_checkpoint({c.type, c.dtype, c.sharded}, case_name({c, 0}));
  const ModelConfig config = load_model_config(dir);
  const auto checkpoint = safetensors::Checkpoint::open(dir);
  MoeBlock block = MoeBlock::load(config, kTinyLayer, checkpoint);
  ASSERT_EQ(block.dtype(), c.dtype);

  const std::int64_t T = 7, H = config.hidden_size, K = config.num_experts_per_tok, E = config.num_experts;
  Tensor x(c.dtype, {T, H});
  fill_uniform(x, 1.0f, 99);

  // The routing must be the one route() gives on the reference logits.
  const moekit_test::ReferenceRouting ref = moekit_test::reference_routing(block, config, x);
  const std::vector<std::int32_t>& ref_idx = ref.index;
  const std::vector<float>& ref_w = ref.weights;

  for (const char* backend : {"eager", "batched_mm", "grouped_mm"}) {
    SCOPED_TRACE(backend);
    Tensor out(c.dtype, {T, H});
    fill_value(out, NAN);
    block.forward(x, out, backend);
    const TensorView idx = block.routing_index(), w = block.routing_weights();
    for (std::int64_t i = 0; i < T * K; ++i) {
      ASSERT_EQ(idx.as<std::int32_t>()[i], ref_idx[std::size_t(i)]) << "routing differs at " << i;
      EXPECT_NEAR(w.as<float>()[i], ref_w[std::size_t(i)], 1e-5 * (1 + std::fabs(ref_w[std::size_t(i)])));
    }
    const std::vector<double> ref = reference_moe_block(block, x, idx, w);
    EXPECT_LE(relative_error(out, ref), tol(c.dtype));

    // The experts contract alone, on given routing with an expert-parallel sentinel.
    Tensor gi(DType::i64, {T, K}), gw(DType::f32, {T, K});
    for (std::int64_t i = 0; i < T * K; ++i) {
      gi.data<std::int64_t>()[i] = i == 3 ? E + 1 : (i * 3 + i / K) % E;
      gw.data<float>()[i] = 0.25f + 0.1f * float(i % 3);
    }
    for (std::int64_t t = 0; t < T; ++t)  // distinct experts per token
      if (gi.data<std::int64_t>()[t * K] == gi.data<std::int64_t>()[t * K + 1]) gi.data<std::int64_t>()[t * K + 1] = (gi.data<std::int64_t>()[t * K] + 1) % E;
    Tensor out2(c.dtype, {T, H});
    fill_value(out2, NAN);
    block.forward(x, out2, backend, {}, gi, gw);
    EXPECT_LE(relative_error(out2, reference_moe_block(block, x, gi, gw, /*with_shared=*/false)), tol(c.dtype));
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (std::string_view t : known_model_types())
    for (DType d : {DType::f32, DType::bf16}) cases.push_back({std::string(t), d, d == DType::bf16});
  cases.push_back({"mixtral", DType::f32, true});
  cases.push_back({"deepseek_v3", DType::bf16, false});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllModelTypes, MoeBlockTest, testing::ValuesIn(all_cases()), case_name);

// Which families round their logits and routing weights to the model dtype (modeling files).
TEST(MoeBlockPrecision, RouterRoundingPerFamily) {
  for (std::string_view t : known_model_types()) {
    SCOPED_TRACE(std::string(t));
    const RouterPrecision p = router_precision(default_model_config(t));
    const bool sigmoid = t == "deepseek_v3" || t == "glm4_moe" || t == "solar_open";
    EXPECT_EQ(p.logits_in_model_dtype, !sigmoid);
    EXPECT_EQ(p.weights_in_model_dtype, !sigmoid && t != "mixtral");
  }
  // A bf16 Qwen3-MoE block hands the experts bf16-representable weights.
  const std::string dir = moekit_test::write_tiny_checkpoint({"qwen3_moe", DType::bf16, false}, "precision");
  MoeBlock block = MoeBlock::load(load_model_config(dir), kTinyLayer, safetensors::Checkpoint::open(dir));
  Tensor x(DType::bf16, {5, 16}), out(DType::bf16, {5, 16});
  fill_uniform(x, 1.0f, 3);
  block.forward(x, out, "grouped_mm");
  const TensorView w = block.routing_weights();
  for (std::int64_t i = 0; i < w.numel(); ++i)
    EXPECT_EQ(w.as<float>()[i], to_float(to_bf16(w.as<float>()[i]))) << i;
}

// The thread count never changes the block's output (router linear and shared MLP on the pool).
TEST(MoeBlockPrecision, BitwiseTheSameForAnyThreadCount) {
  const std::string dir = moekit_test::write_tiny_checkpoint({"qwen2_moe", DType::f32, false}, "threads");
  MoeBlock block = MoeBlock::load(load_model_config(dir), kTinyLayer, safetensors::Checkpoint::open(dir));
  Tensor x(DType::f32, {9, 16});
  fill_uniform(x, 1.0f, 4);
  Tensor first(DType::f32, {9, 16});
  block.forward(x, first, "grouped_mm", RunContext{1});
  for (int threads : {2, 3, 0}) {
    Tensor out(DType::f32, {9, 16});
    block.forward(x, out, "grouped_mm", RunContext{threads});
    EXPECT_EQ(0, std::memcmp(out.view().data, first.view().data, out.nbytes())) << threads;
  }
}

TEST(MoeBlockRandom, PresetBlocksRunOnTheHost) {
  for (const char* name : {"deepseek-v3", "qwen1.5-moe-a2.7b", "gpt-oss-20b"}) {
    SCOPED_TRACE(name);
    ModelConfig c = preset_model_config(find_preset(name));
    c.hidden_size = 32;
    c.moe_intermediate_size = 16;
    if (c.shared_expert_gate) c.shared_expert_intermediate_size = 24;
    MoeBlock block = MoeBlock::random(c, DType::f32, 2);
    Tensor x(DType::f32, {6, 32}), out(DType::f32, {6, 32});
    fill_uniform(x, 1.0f, 5);
    block.forward(x, out, "grouped_mm");
    const moekit_test::ReferenceRouting ref = moekit_test::reference_routing(block, c, x);
    const TensorView idx = block.routing_index();
    for (std::int64_t i = 0; i < idx.numel(); ++i) EXPECT_EQ(idx.as<std::int32_t>()[i], ref.index[std::size_t(i)]);
    EXPECT_LE(relative_error(out, reference_moe_block(block, x, idx, block.routing_weights())), 1e-4);
  }
  EXPECT_THROW(MoeBlock::random(default_model_config("mixtral"), DType::i32, 1), Error);
}

std::string load_error(const moekit_test::TinySpec& spec, int layer, const std::string& folder) {
  const std::string dir = moekit_test::write_tiny_checkpoint(spec, folder);
  try {
    MoeBlock::load(load_model_config(dir), layer, safetensors::Checkpoint::open(dir));
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(MoeBlockErrors, MissingExpertNamesTheTensor) {
  const std::string name = "model.layers.1.mlp.experts.5.up_proj.weight";
  EXPECT_NE(load_error({"qwen3_moe", DType::f32, false, name}, kTinyLayer, "missing").find(name), std::string::npos);
}

TEST(MoeBlockErrors, DenseAndOutOfRangeLayers) {
  EXPECT_NE(load_error({"deepseek_v3", DType::f32, false}, 0, "dense").find("first_k_dense_replace"), std::string::npos);
  EXPECT_NE(load_error({"qwen2_moe", DType::f32, false}, 0, "dense_q").find("mlp_only_layers"), std::string::npos);
  EXPECT_NE(load_error({"olmoe", DType::f32, false}, 3, "range").find("out of range"), std::string::npos);
}

TEST(MoeBlockErrors, WrongInputDtypeAndShape) {
  const std::string dir = moekit_test::write_tiny_checkpoint({"mixtral", DType::bf16, false}, "dtype");
  MoeBlock block = MoeBlock::load(load_model_config(dir), kTinyLayer, safetensors::Checkpoint::open(dir));
  Tensor x(DType::f32, {2, 16}), out(DType::f32, {2, 16});
  fill_uniform(x, 1.0f, 1);
  EXPECT_THROW(block.forward(x, out, "eager"), Error);
  Tensor xb(DType::bf16, {2, 15}), ob(DType::bf16, {2, 15});
  EXPECT_THROW(block.forward(xb, ob, "eager"), Error);
}

}  // namespace
