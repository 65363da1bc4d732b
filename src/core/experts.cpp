// The one validation path every backend shares.
#include "moekit/experts.hpp"

#include <cmath>
#include <cstdint>
#include <string>

#include "moekit/error.hpp"

namespace moekit {

std::string_view activation_name(Activation a) noexcept {
  switch (a) {
    case Activation::silu: return "silu";
    case Activation::gelu: return "gelu";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::relu: return "relu";
    case Activation::clamped_swiglu: return "clamped_swiglu";
  }
  return "?";
}

std::optional<Activation> parse_activation(std::string_view n) {
  for (Activation a : {Activation::silu, Activation::gelu, Activation::gelu_tanh, Activation::relu,
                       Activation::clamped_swiglu})
    if (n == activation_name(a)) return a;
  if (n == "swish") return Activation::silu;
  if (n == "gelu_pytorch_tanh") return Activation::gelu_tanh;
  return std::nullopt;
}

std::string_view gate_layout_name(GateLayout g) noexcept {
  return g == GateLayout::interleaved ? "interleaved" : "concatenated";
}

std::string ExpertsProblem::describe() const {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.
  std::string s = "T=" + std::to_string(tokens);
  s.append(" H=").append(std::to_string(hidden)).append(" I=").append(std::to_string(intermediate));
  s.append(" E=").append(std::to_string(experts)).append(" K=").append(std::to_string(top_k));
  s.append(" ").append(dtype_name(dtype)).append(" ").append(activation_name(options.activation));
  s.append(options.has_gate ? (options.gate_layout == GateLayout::interleaved ? " interleaved" : " concatenated")
                            : " no-gate");
  if (options.transposed) s.append(" transposed");
  if (has_bias) s.append(" bias");
  return s;
}

namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error(Errc::invalid_argument, msg); }

std::string shape_of(std::initializer_list<std::int64_t> dims) {
  std::string s = "[";
  bool first = true;
  for (auto d : dims) {
    if (!first) s += ", ";
    s += std::to_string(d);
    first = false;
  }
  return s + "]";
}

void expect_rank(const TensorView& t, const char* name, int rank) {
  if (!t.defined()) fail(std::string(name) + " is missing");
  if (t.rank != rank)
    fail(std::string(name) + " must have " + std::to_string(rank) + " dimensions, got " + t.shape_string());
  std::int64_t n = 1;
  for (int d = 0; d < rank; ++d) {
    if (t.shape[d] < 0) fail(std::string(name) + " has a negative dimension " + t.shape_string());
    // Every later size computation may then multiply freely (with a margin for bytes).
    if (t.shape[d] != 0 && n > (INT64_MAX / 16) / t.shape[d])
      fail(std::string(name) + " shape " + t.shape_string() + " overflows 64-bit sizes");
    n *= t.shape[d];
  }
}

void expect_shape(const TensorView& t, const char* name, std::initializer_list<std::int64_t> dims,
                  const char* meaning) {
  int d = 0;
  for (auto want : dims) {
    if (t.shape[d] != want)
      fail(std::string(name) + " must be " + meaning + " = " + shape_of(dims) + ", got " + t.shape_string());
    ++d;
  }
}

// Rows may be padded (strides[0] >= columns) but each row must be contiguous.
void expect_row_major(const TensorView& t, const char* name) {
  if (t.shape[1] > 1 && t.strides[1] != 1) fail(std::string(name) + " must have unit stride in its last dimension");
  if (t.shape[0] > 1 && t.strides[0] < t.shape[1])
    fail(std::string(name) + " rows overlap: stride " + std::to_string(t.strides[0]) + " < row length " +
         std::to_string(t.shape[1]));
}

void expect_contiguous(const TensorView& t, const char* name) {
  if (!t.is_contiguous()) fail(std::string(name) + " must be contiguous");
}

void expect_data(const TensorView& t, const char* name) {
  if (t.numel() > 0 && t.data == nullptr) fail(std::string(name) + " has a null data pointer");
}

bool mul_overflows(std::int64_t a, std::int64_t b) { return b != 0 && a > INT64_MAX / b; }

// Byte range [begin, end) that a view touches.
struct Span {
  std::uintptr_t begin = 0, end = 0;
};
Span span_of(const TensorView& t) {
  if (!t.defined() || t.numel() == 0 || !t.data) return {};
  std::int64_t last = 0;
  for (int d = 0; d < t.rank; ++d) last += (t.shape[d] - 1) * t.strides[d];
  auto b = reinterpret_cast<std::uintptr_t>(t.data);
  return {b, b + std::uintptr_t(last + 1) * dtype_size(t.dtype)};
}
bool overlaps(Span a, Span b) { return a.begin < b.end && b.begin < a.end && a.end > a.begin && b.end > b.begin; }

}  // namespace

ExpertsProblem validate(const ExpertsCall& call) {
  const ExpertsOptions& opt = call.options;
  ExpertsProblem p;
  p.options = opt;

  // Options first: they decide what shapes mean.
  if (!opt.has_gate && opt.gate_layout == GateLayout::interleaved)
    fail("an interleaved gate/up layout needs has_gate = true");
  if (!opt.has_gate && opt.activation == Activation::clamped_swiglu)
    fail("the clamped_swiglu activation needs has_gate = true");
  if (opt.activation == Activation::clamped_swiglu &&
      (!std::isfinite(opt.swiglu_alpha) || !std::isfinite(opt.swiglu_limit) || opt.swiglu_limit <= 0))
    fail("clamped_swiglu needs a finite alpha and a finite limit > 0");

  const TensorView& x = call.hidden_states;
  expect_rank(x, "hidden_states", 2);
  if (x.dtype != DType::bf16 && x.dtype != DType::f16 && x.dtype != DType::f32)
    fail("hidden_states must be bf16, f16 or f32, got " + std::string(dtype_name(x.dtype)));
  expect_row_major(x, "hidden_states");
  p.tokens = x.shape[0];
  p.hidden = x.shape[1];
  p.dtype = x.dtype;
  p.device = x.device;
  if (p.hidden < 1) fail("hidden size H must be >= 1, got hidden_states " + x.shape_string());

  const TensorView& idx = call.top_k_index;
  expect_rank(idx, "top_k_index", 2);
  if (!is_integer(idx.dtype)) fail("top_k_index must be int32 or int64, got " + std::string(dtype_name(idx.dtype)));
  p.top_k = idx.shape[1];
  p.index_dtype = idx.dtype;
  if (p.top_k < 1) fail("top_k_index must have K >= 1 columns, got " + idx.shape_string());
  expect_shape(idx, "top_k_index", {p.tokens, p.top_k}, "[T, K]");
  expect_row_major(idx, "top_k_index");

  const TensorView& w = call.top_k_weights;
  expect_rank(w, "top_k_weights", 2);
  expect_shape(w, "top_k_weights", {p.tokens, p.top_k}, "[T, K]");
  if (w.dtype != DType::f32 && w.dtype != p.dtype)
    fail("top_k_weights must be f32" +
         (p.dtype == DType::f32 ? std::string() : " or " + std::string(dtype_name(p.dtype)) + " (the hidden_states dtype)") +
         ", got " + std::string(dtype_name(w.dtype)));
  p.routing_dtype = w.dtype;
  expect_row_major(w, "top_k_weights");

  const TensorView& gu = call.gate_up_proj;
  const char* gu_name = opt.has_gate ? "gate_up_proj" : "up_proj (gate_up_proj without a gate)";
  expect_rank(gu, gu_name, 3);
  p.experts = gu.shape[0];
  if (p.experts < 1) fail(std::string(gu_name) + " must hold E >= 1 experts, got " + gu.shape_string());
  std::int64_t rows = opt.transposed ? gu.shape[2] : gu.shape[1];
  if (opt.transposed && gu.shape[1] != p.hidden)
    fail(std::string(gu_name) + " (transposed) must be [E, H, " + (opt.has_gate ? "2I" : "I") + "] with H = " +
         std::to_string(p.hidden) + ", got " + gu.shape_string());
  if (!opt.transposed && gu.shape[2] != p.hidden)
    fail(std::string(gu_name) + " must be [E, " + (opt.has_gate ? "2I" : "I") + ", H] with H = " +
         std::to_string(p.hidden) + ", got " + gu.shape_string() +
         (gu.shape[1] == p.hidden ? " (is it transposed?)" : ""));
  if (opt.has_gate && rows % 2 != 0)
    fail(std::string(gu_name) + " must have an even number 2I of gate/up rows, got " + gu.shape_string());
  p.intermediate = opt.has_gate ? rows / 2 : rows;
  if (p.intermediate < 1) fail(std::string(gu_name) + " must have I >= 1, got " + gu.shape_string());
  if (gu.dtype != p.dtype)
    fail(std::string(gu_name) + " must have the hidden_states dtype " + std::string(dtype_name(p.dtype)) + ", got " +
         std::string(dtype_name(gu.dtype)));
  expect_contiguous(gu, gu_name);

  const TensorView& dn = call.down_proj;
  expect_rank(dn, "down_proj", 3);
  if (opt.transposed)
    expect_shape(dn, "down_proj", {p.experts, p.intermediate, p.hidden}, "(transposed) [E, I, H]");
  else
    expect_shape(dn, "down_proj", {p.experts, p.hidden, p.intermediate}, "[E, H, I]");
  if (dn.dtype != p.dtype)
    fail("down_proj must have the hidden_states dtype " + std::string(dtype_name(p.dtype)) + ", got " +
         std::string(dtype_name(dn.dtype)));
  expect_contiguous(dn, "down_proj");

  const bool b1 = call.gate_up_proj_bias.defined(), b2 = call.down_proj_bias.defined();
  if (b1 != b2) fail("gate_up_proj_bias and down_proj_bias come together: give both or neither");
  p.has_bias = b1;
  if (p.has_bias) {
    const TensorView& gb = call.gate_up_proj_bias;
    expect_rank(gb, "gate_up_proj_bias", 2);
    expect_shape(gb, "gate_up_proj_bias", {p.experts, p.gate_up_rows()}, opt.has_gate ? "[E, 2I]" : "[E, I]");
    const TensorView& db = call.down_proj_bias;
    expect_rank(db, "down_proj_bias", 2);
    expect_shape(db, "down_proj_bias", {p.experts, p.hidden}, "[E, H]");
    for (const TensorView* b : {&gb, &db}) {
      const char* name = b == &gb ? "gate_up_proj_bias" : "down_proj_bias";
      if (b->dtype != p.dtype)
        fail(std::string(name) + " must have the hidden_states dtype " + std::string(dtype_name(p.dtype)) +
             ", got " + std::string(dtype_name(b->dtype)));
      expect_contiguous(*b, name);
    }
  }

  const TensorView& out = call.output;
  expect_rank(out, "output", 2);
  expect_shape(out, "output", {p.tokens, p.hidden}, "[T, H]");
  if (out.dtype != p.dtype)
    fail("output must have the hidden_states dtype " + std::string(dtype_name(p.dtype)) + ", got " +
         std::string(dtype_name(out.dtype)));
  expect_row_major(out, "output");

  // Sizes whose element counts overflow are refused before anyone computes an offset.
  if (mul_overflows(p.experts, p.gate_up_rows()) || mul_overflows(p.experts * p.gate_up_rows(), p.hidden) ||
      mul_overflows(p.tokens, p.top_k) || mul_overflows(p.tokens * p.top_k, std::max(p.hidden, p.gate_up_rows())) ||
      mul_overflows(p.tokens * p.top_k * std::max(p.hidden, p.gate_up_rows()), 8))
    fail("problem sizes overflow 64-bit offsets: " + p.describe());

  const std::pair<const TensorView*, const char*> all[] = {
      {&x, "hidden_states"},         {&idx, "top_k_index"},          {&w, "top_k_weights"},
      {&gu, "gate_up_proj"},         {&dn, "down_proj"},             {&call.gate_up_proj_bias, "gate_up_proj_bias"},
      {&call.down_proj_bias, "down_proj_bias"}, {&out, "output"}};
  for (auto [t, name] : all) {
    if (!t->defined()) continue;
    expect_data(*t, name);
    if (!(t->device == p.device))
      fail(std::string(name) + " is on " + device_name(t->device) + " but hidden_states is on " +
           device_name(p.device));
  }
  const Span out_span = span_of(out);
  for (auto [t, name] : all)
    if (t != &out && overlaps(out_span, span_of(*t)))
      fail(std::string("output overlaps ") + name + ": the call cannot run in place");

  // Ids live in host memory on the CPU: check them here, once for every backend.
  if (p.device.type == DeviceType::cpu) {
    for (std::int64_t t = 0; t < p.tokens; ++t)
      for (std::int64_t k = 0; k < p.top_k; ++k) {
        const std::int64_t off = t * idx.strides[0] + k;
        const std::int64_t id =
            idx.dtype == DType::i32 ? std::int64_t(idx.as<const std::int32_t>()[off]) : idx.as<const std::int64_t>()[off];
        if (id < 0)
          fail("top_k_index[" + std::to_string(t) + ", " + std::to_string(k) + "] = " + std::to_string(id) +
               " is negative (ids >= E = " + std::to_string(p.experts) + " are sentinels, negative ids are errors)");
      }
  }
  return p;
}

}  // namespace moekit
