// Each bad input gives its own error, naming the tensor at fault.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "moekit/error.hpp"
#include "moekit/inputs.hpp"

namespace moekit {
namespace {

class Validate : public ::testing::Test {
 protected:
  void SetUp() override {
    InputSpec s;
    s.dims = {5, 24, 8, 4, 2};  // 2I != H, so a transposed reading is detectably wrong
    s.dtype = DType::f32;
    s.bias = true;
    in = make_random_inputs(s, 7);
  }
  void expect_error(const std::function<void(ExpertsCall&)>& mutate, const std::string& needle) {
    ExpertsCall c = in.call();
    mutate(c);
    try {
      validate(c);
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
    }
  }
  ExpertsInputs in;
};

TEST_F(Validate, AcceptsTheValidCall) {
  const ExpertsProblem p = validate(in.call());
  EXPECT_EQ(p.tokens, 5);
  EXPECT_EQ(p.hidden, 24);
  EXPECT_EQ(p.intermediate, 8);
  EXPECT_EQ(p.experts, 4);
  EXPECT_EQ(p.top_k, 2);
  EXPECT_TRUE(p.has_bias);
}

TEST_F(Validate, HiddenStates) {
  expect_error([](ExpertsCall& c) { c.hidden_states.rank = 3; }, "hidden_states must have 2 dimensions");
  expect_error([](ExpertsCall& c) { c.hidden_states = {}; }, "hidden_states is missing");
  expect_error([](ExpertsCall& c) { c.hidden_states.dtype = DType::f64; }, "hidden_states must be bf16, f16 or f32");
  expect_error([](ExpertsCall& c) { c.hidden_states.strides[1] = 2; }, "hidden_states must have unit stride");
  expect_error([](ExpertsCall& c) { c.hidden_states.strides[0] = 3; }, "hidden_states rows overlap");
  expect_error([](ExpertsCall& c) { c.hidden_states.data = nullptr; }, "hidden_states has a null data pointer");
  expect_error([](ExpertsCall& c) { c.hidden_states.shape[1] = 17; }, "gate_up_proj must be [E, 2I, H] with H = 17");
}

TEST_F(Validate, Routing) {
  expect_error([](ExpertsCall& c) { c.top_k_index.dtype = DType::f32; }, "top_k_index must be int32 or int64");
  expect_error([](ExpertsCall& c) { c.top_k_index.shape[0] = 4; }, "top_k_index must be [T, K]");
  expect_error([](ExpertsCall& c) { c.top_k_weights.shape[1] = 3; }, "top_k_weights must be [T, K]");
  expect_error([](ExpertsCall& c) { c.top_k_weights.dtype = DType::bf16; }, "top_k_weights must be f32, got bf16");
  expect_error([](ExpertsCall& c) { c.top_k_index.as<std::int32_t>()[3] = -1; }, "top_k_index[1, 1] = -1 is negative");
}

TEST_F(Validate, SentinelIdsAreNotErrors) {
  in.top_k_index.data<std::int32_t>()[0] = 4;  // == E
  in.top_k_index.data<std::int32_t>()[1] = 1 << 30;
  EXPECT_NO_THROW(validate(in.call()));
}

TEST_F(Validate, Weights) {
  expect_error([](ExpertsCall& c) { c.gate_up_proj.shape[1] = 15; }, "even number 2I");
  expect_error([](ExpertsCall& c) { c.gate_up_proj.dtype = DType::bf16; }, "gate_up_proj must have the hidden_states dtype");
  expect_error([](ExpertsCall& c) { c.down_proj.shape[2] = 9; }, "down_proj must be [E, H, I]");
  expect_error([](ExpertsCall& c) { c.down_proj.shape[0] = 3; }, "down_proj must be [E, H, I]");
  expect_error([](ExpertsCall& c) { c.down_proj = {}; }, "down_proj is missing");
  expect_error([](ExpertsCall& c) { c.down_proj.dtype = DType::f16; }, "down_proj must have the hidden_states dtype");
  expect_error([](ExpertsCall& c) { c.gate_up_proj.strides[2] = 2; }, "gate_up_proj must be contiguous");
  expect_error([](ExpertsCall& c) { c.options.transposed = true; }, "(transposed) must be [E, H, 2I]");
  expect_error([](ExpertsCall& c) { c.gate_up_proj.shape[0] = 0; }, "E >= 1");
}

TEST_F(Validate, Biases) {
  expect_error([](ExpertsCall& c) { c.down_proj_bias = {}; }, "give both or neither");
  expect_error([](ExpertsCall& c) { c.gate_up_proj_bias.shape[1] = 8; }, "gate_up_proj_bias must be [E, 2I]");
  expect_error([](ExpertsCall& c) { c.down_proj_bias.shape[1] = 8; }, "down_proj_bias must be [E, H]");
  expect_error([](ExpertsCall& c) { c.down_proj_bias.dtype = DType::f16; }, "down_proj_bias must have the hidden_states dtype");
}

TEST_F(Validate, Output) {
  expect_error([](ExpertsCall& c) { c.output.shape[0] = 4; }, "output must be [T, H]");
  expect_error([](ExpertsCall& c) { c.output.dtype = DType::bf16; }, "output must have the hidden_states dtype");
  expect_error([](ExpertsCall& c) { c.output = {}; }, "output is missing");
  expect_error([](ExpertsCall& c) { c.output.data = c.hidden_states.data; }, "output overlaps hidden_states");
}

TEST_F(Validate, Options) {
  expect_error([](ExpertsCall& c) { c.options.gate_layout = GateLayout::interleaved; c.options.has_gate = false; },
               "interleaved gate/up layout needs has_gate");
  expect_error([](ExpertsCall& c) { c.options.activation = Activation::clamped_swiglu; c.options.has_gate = false; },
               "clamped_swiglu activation needs has_gate");
  expect_error([](ExpertsCall& c) { c.options.activation = Activation::clamped_swiglu; c.options.swiglu_limit = NAN; },
               "finite limit");
  // Without a gate the same gate_up tensor means I = 16, which down_proj contradicts.
  expect_error([](ExpertsCall& c) { c.options.has_gate = false; }, "down_proj must be [E, H, I]");
}

TEST_F(Validate, Devices) {
  expect_error([](ExpertsCall& c) { c.down_proj.device = {DeviceType::cuda, 0}; }, "down_proj is on cuda:0");
}

TEST(ValidateSizes, EmptyBatchIsValid) {
  InputSpec s;
  s.dims = {0, 8, 4, 2, 1};
  ExpertsInputs in = make_random_inputs(s, 1);
  EXPECT_EQ(validate(in.call()).tokens, 0);
}

// A view whose strides nobody could compute: validation must refuse it before using them.
TensorView huge_view(void* data, std::int64_t a, std::int64_t b, std::int64_t c) {
  TensorView v;
  v.data = data;
  v.dtype = DType::f32;
  v.rank = 3;
  v.shape = {a, b, c, 0};
  v.strides = {1, 1, 1, 0};
  return v;
}

TEST(ValidateSizes, OverflowingSizesAreRefused) {
  float dummy[4] = {};
  std::int32_t ids[1] = {0};
  ExpertsCall c;
  const std::int64_t huge = std::int64_t(1) << 40;
  c.hidden_states = TensorView::contiguous(dummy, DType::f32, {1, huge});
  c.top_k_index = TensorView::contiguous(ids, DType::i32, {1, 1});
  c.top_k_weights = TensorView::contiguous(dummy, DType::f32, {1, 1});
  c.gate_up_proj = huge_view(dummy, huge, 2 * huge, huge);
  c.down_proj = huge_view(dummy, huge, huge, huge);
  c.output = TensorView::contiguous(dummy + 2, DType::f32, {1, huge});
  try {
    validate(c);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overflow"), std::string::npos) << e.what();
  }
}

TEST(TensorViews, ContiguousRefusesOverflowingShapes) {
  float x = 0;
  const std::int64_t huge = std::int64_t(1) << 40;
  EXPECT_THROW(TensorView::contiguous(&x, DType::f32, {huge, huge}), Error);
  EXPECT_THROW(TensorView::contiguous(&x, DType::f32, {2, -1}), Error);
}

}  // namespace
}  // namespace moekit
