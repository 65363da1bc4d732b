// The oracle itself, checked by hand on calls small enough to write out.
#include <gtest/gtest.h>

#include <cmath>

#include "moekit/reference.hpp"

namespace moekit {
namespace {

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

TEST(Reference, Activations) {
  EXPECT_DOUBLE_EQ(reference_act(2.0, Activation::silu), 2.0 * sigmoid(2.0));
  EXPECT_DOUBLE_EQ(reference_act(-1.0, Activation::relu), 0.0);
  EXPECT_NEAR(reference_act(1.0, Activation::gelu), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(reference_act(1.0, Activation::gelu_tanh), 0.8411919906082768, 1e-15);
  ExpertsOptions o;
  o.activation = Activation::clamped_swiglu;
  // g = 9 is clamped to 7, u = -8 to -7: (1 - 7) * 7 * sigmoid(1.702 * 7).
  EXPECT_DOUBLE_EQ(reference_gate(9.0, -8.0, o), -6.0 * 7.0 * sigmoid(1.702f * 7.0));
  EXPECT_DOUBLE_EQ(reference_gate(0.5, 0.25, o), 1.25 * 0.5 * sigmoid(double(1.702f) * 0.5));
}

// H = 2, I = 1, E = 2, K = 2, one token; expert 1 hit with weight 0.25, a sentinel beside it.
TEST(Reference, HandWorkedCall) {
  float x[2] = {1.0f, 2.0f};
  std::int32_t idx[2] = {1, 2};  // 2 >= E: a sentinel
  float w[2] = {0.25f, 100.0f};
  // gate_up [E, 2I, H]: expert 1 gate row (1, 0), up row (0, 1).
  float gu[2 * 2 * 2] = {9, 9, 9, 9, 1, 0, 0, 1};
  float dn[2 * 2 * 1] = {9, 9, 3, -1};  // down [E, H, I]: expert 1 (3, -1)
  float out[2] = {0, 0};
  ExpertsCall c;
  c.hidden_states = TensorView::contiguous(x, DType::f32, {1, 2});
  c.top_k_index = TensorView::contiguous(idx, DType::i32, {1, 2});
  c.top_k_weights = TensorView::contiguous(w, DType::f32, {1, 2});
  c.gate_up_proj = TensorView::contiguous(gu, DType::f32, {2, 2, 2});
  c.down_proj = TensorView::contiguous(dn, DType::f32, {2, 2, 1});
  c.output = TensorView::contiguous(out, DType::f32, {1, 2});
  const double a = 1.0 * sigmoid(1.0) * 2.0;  // silu(g = 1) * (u = 2)
  auto ref = reference_experts(c);
  ASSERT_EQ(ref.size(), 2u);
  EXPECT_DOUBLE_EQ(ref[0], 0.25 * 3.0 * a);
  EXPECT_DOUBLE_EQ(ref[1], 0.25 * -1.0 * a);

  // The same call in the interleaved layout with biases: rows alternate gate, up.
  float gu_i[8] = {9, 9, 9, 9, 1, 0, 0, 1};
  float b1[4] = {0, 0, 0.5f, -1.0f}, b2[4] = {0, 0, 1.0f, 2.0f};
  c.gate_up_proj = TensorView::contiguous(gu_i, DType::f32, {2, 2, 2});
  c.gate_up_proj_bias = TensorView::contiguous(b1, DType::f32, {2, 2});
  c.down_proj_bias = TensorView::contiguous(b2, DType::f32, {2, 2});
  c.options.gate_layout = GateLayout::interleaved;
  const double a2 = 1.5 * sigmoid(1.5) * 1.0;  // g = 1 + 0.5, u = 2 - 1
  ref = reference_experts(c);
  EXPECT_DOUBLE_EQ(ref[0], 0.25 * (3.0 * a2 + 1.0));
  EXPECT_DOUBLE_EQ(ref[1], 0.25 * (-1.0 * a2 + 2.0));
}

TEST(Reference, TransposedMatchesDefault) {
  // gate_up default [1, 2, 3] vs transposed [1, 3, 2] holding the same matrix.
  float x[3] = {0.5f, -1.0f, 2.0f};
  std::int64_t idx[1] = {0};
  float w[1] = {1.0f};
  float gu[6] = {1, 2, 3, -1, 0.5f, 0.25f}, gu_t[6] = {1, -1, 2, 0.5f, 3, 0.25f};
  float dn[3] = {1, 2, 3}, dn_t[3] = {1, 2, 3};  // [1, 3, 1] and [1, 1, 3]
  float out[3];
  ExpertsCall c;
  c.hidden_states = TensorView::contiguous(x, DType::f32, {1, 3});
  c.top_k_index = TensorView::contiguous(idx, DType::i64, {1, 1});
  c.top_k_weights = TensorView::contiguous(w, DType::f32, {1, 1});
  c.gate_up_proj = TensorView::contiguous(gu, DType::f32, {1, 2, 3});
  c.down_proj = TensorView::contiguous(dn, DType::f32, {1, 3, 1});
  c.output = TensorView::contiguous(out, DType::f32, {1, 3});
  const auto a = reference_experts(c);
  c.gate_up_proj = TensorView::contiguous(gu_t, DType::f32, {1, 3, 2});
  c.down_proj = TensorView::contiguous(dn_t, DType::f32, {1, 1, 3});
  c.options.transposed = true;
  const auto b = reference_experts(c);
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(a[i], b[i]);
}

}  // namespace
}  // namespace moekit
