// MoeBlock::forward on the host: router logits, route(), the experts call, the shared MLP (policy in
// the header); the device path is behind BlockDeviceState. The router linear and the shared MLP run
// on the CPU thread pool, each output element computed whole by one item, so the thread count never
// changes a sum.
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/thread_pool.hpp"
#include "model/block_device.hpp"

#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/router.hpp"

namespace moekit {
namespace {

[[noreturn]] void invalid(const std::string& m) { throw Error(Errc::invalid_argument, "moe block: " + m); }

// Rows of a host tensor as fp32, one row at a time, so a bf16 weight is converted once per use.
void row_as_float(const TensorView& t, std::int64_t row, std::int64_t n, float* out) {
  const std::int64_t base = row * n;
  switch (t.dtype) {
    case DType::bf16:
      for (std::int64_t i = 0; i < n; ++i) out[i] = to_float(t.as<const bf16>()[base + i]);
      return;
    case DType::f16:
      for (std::int64_t i = 0; i < n; ++i) out[i] = to_float(t.as<const f16>()[base + i]);
      return;
    default:
      for (std::int64_t i = 0; i < n; ++i) out[i] = float(element_as_double(t, base + i));
  }
}

float round_to(DType d, float v) {
  if (d == DType::bf16) return to_float(to_bf16(v));
  if (d == DType::f16) return to_float(to_f16(v));
  return v;
}

void store(const TensorView& t, std::int64_t i, float v) {
  if (t.dtype == DType::bf16) t.as<bf16>()[i] = to_bf16(v);
  else if (t.dtype == DType::f16) t.as<f16>()[i] = to_f16(v);
  else t.as<float>()[i] = v;
}

float dot(const float* a, const float* b, std::int64_t n) {
  float s = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

float activate(float g, Activation a) {
  switch (a) {
    case Activation::silu: return g / (1.0f + std::exp(-g));
    case Activation::gelu: return 0.5f * g * (1.0f + std::erf(g * 0.70710678118654752f));
    case Activation::gelu_tanh:
      return 0.5f * g * (1.0f + std::tanh(0.7978845608028654f * (g + 0.044715f * g * g * g)));
    case Activation::relu: return g > 0.0f ? g : 0.0f;
    case Activation::clamped_swiglu: break;
  }
  invalid("the shared MLP cannot use the clamped SwiGLU");
}

void check_activations(const MoeBlock& b, const TensorView& x, const TensorView& out) {
  const std::int64_t H = b.config().hidden_size;
  if (x.rank != 2 || x.shape[1] != H)
    invalid("hidden_states must be [T, " + std::to_string(H) + "], got " + x.shape_string());
  if (x.dtype != b.dtype())
    invalid("hidden_states are " + std::string(dtype_name(x.dtype)) + " but the layer's weights are " +
            std::string(dtype_name(b.dtype())) + "; convert the input to the checkpoint's dtype");
  const std::string where = device_name(b.device());
  if (!x.is_contiguous() || x.device != b.device())
    invalid("hidden_states must be contiguous memory on " + where + " (the block's device; see MoeBlock::to), got " +
            device_name(x.device));
  if (out.rank != 2 || out.shape[0] != x.shape[0] || out.shape[1] != H || out.dtype != x.dtype ||
      !out.is_contiguous() || out.device != b.device())
    invalid("output must be contiguous [T, H] in the dtype of hidden_states on " + where);
}

void check_routing(const MoeBlock& b, const TensorView& idx, const TensorView& w) {
  if (idx.defined() != w.defined()) invalid("give both top_k_index and top_k_weights, or neither");
  if (idx.defined() && (idx.device != b.device() || w.device != b.device()))
    invalid("top_k_index and top_k_weights must be on " + device_name(b.device()) + ", the block's device");
}

void round_all(DType d, float* v, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) v[i] = round_to(d, v[i]);
}

}  // namespace

ExpertsCall MoeBlock::experts_call(const TensorView& x, const TensorView& out, const TensorView& idx,
                                   const TensorView& w) const {
  ExpertsCall call;
  call.hidden_states = x;
  call.top_k_index = idx;
  call.top_k_weights = w;
  call.gate_up_proj = weights_.gate_up;
  call.down_proj = weights_.down;
  if (weights_.gate_up_bias.numel()) call.gate_up_proj_bias = weights_.gate_up_bias;
  if (weights_.down_bias.numel()) call.down_proj_bias = weights_.down_bias;
  call.output = out;
  call.options = config_.experts;
  return call;
}

void MoeBlock::compute_logits(const TensorView& x, int threads) {
  const std::int64_t T = x.shape[0], H = config_.hidden_size, E = config_.num_experts;
  xf_.resize(std::size_t(T * H));
  for (std::int64_t t = 0; t < T; ++t) row_as_float(x, t, H, xf_.data() + t * H);
  logits_.resize(std::size_t(T * E));
  const bool round = router_precision(config_).logits_in_model_dtype;
  cpu::parallel_for(E, threads, [&](std::int64_t e) {
    std::vector<float> row(static_cast<std::size_t>(H));
    row_as_float(weights_.router_weight, e, H, row.data());
    const float bias = weights_.router_bias.numel() ? float(element_as_double(weights_.router_bias, e)) : 0.0f;
    for (std::int64_t t = 0; t < T; ++t) {
      float v = dot(xf_.data() + t * H, row.data(), H);
      v += bias;  // inside the linear, before its one rounding to the model dtype
      logits_[std::size_t(t * E + e)] = round ? round_to(x.dtype, v) : v;
    }
  });
}

void MoeBlock::add_shared(const TensorView& x, const TensorView& out, int threads) {
  const std::int64_t T = x.shape[0], H = config_.hidden_size, Is = config_.shared_intermediate();
  act_.resize(std::size_t(T * Is));
  const Activation activation = config_.experts.activation;
  cpu::parallel_for(Is, threads, [&](std::int64_t i) {
    std::vector<float> g(static_cast<std::size_t>(H)), u(static_cast<std::size_t>(H));
    row_as_float(weights_.shared_gate_up, i, H, g.data());
    row_as_float(weights_.shared_gate_up, Is + i, H, u.data());
    for (std::int64_t t = 0; t < T; ++t) {
      const float* xt = xf_.data() + t * H;
      act_[std::size_t(t * Is + i)] = activate(dot(xt, g.data(), H), activation) * dot(xt, u.data(), H);
    }
  });
  hidden_f_.assign(std::size_t(T * H), 0.0f);
  cpu::parallel_for(H, threads, [&](std::int64_t h) {
    std::vector<float> d(static_cast<std::size_t>(Is));
    row_as_float(weights_.shared_down, h, Is, d.data());
    for (std::int64_t t = 0; t < T; ++t) hidden_f_[std::size_t(t * H + h)] = dot(act_.data() + t * Is, d.data(), Is);
  });
  std::vector<float> scale(static_cast<std::size_t>(T), 1.0f);
  if (weights_.shared_gate.numel()) {
    std::vector<float> g(static_cast<std::size_t>(H));
    row_as_float(weights_.shared_gate, 0, H, g.data());
    for (std::int64_t t = 0; t < T; ++t)
      scale[std::size_t(t)] = 1.0f / (1.0f + std::exp(-dot(xf_.data() + t * H, g.data(), H)));
  }
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t h = 0; h < H; ++h) {
      const std::int64_t i = t * H + h;
      store(out, i, float(element_as_double(out, i)) + scale[std::size_t(t)] * hidden_f_[std::size_t(i)]);
    }
}

RouterPrecision router_precision(const ModelConfig& c) {
  RouterPrecision p;
  // DeepSeek-V3, GLM-4.5, Solar-Open: F.linear on fp32 casts, fp32 weights throughout.
  if (c.router.kind == RouterConfig::Kind::sigmoid_grouped) return p;
  p.logits_in_model_dtype = true;  // F.linear(hidden_states, self.weight) in the model dtype
  // Mixtral softmaxes router_logits.float() and returns fp32 weights; Qwen2/3-MoE and OLMoE end
  // with .to(router_logits.dtype); gpt-oss softmaxes with dtype=router_top_value.dtype.
  p.weights_in_model_dtype = c.model_type != "mixtral";
  return p;
}

MoeBlock::MoeBlock() = default;
MoeBlock::~MoeBlock() = default;
MoeBlock::MoeBlock(MoeBlock&&) noexcept = default;
MoeBlock& MoeBlock::operator=(MoeBlock&&) noexcept = default;

Device MoeBlock::device() const noexcept { return device_ ? device_->device() : Device{}; }

void MoeBlock::to(Device device) {
  if (device.type == DeviceType::cpu) {
    device_.reset();
    return;
  }
  if (device_ && device_->device() == device) return;
  device_.reset();  // one device copy at a time
  device_ = make_block_device_state(*this, device);
}

void MoeBlock::forward(const TensorView& x, const TensorView& out, std::string_view backend,
                       const RunContext& context, const TensorView& idx, const TensorView& w) {
  check_activations(*this, x, out);
  check_routing(*this, idx, w);
  if (device_) {
    device_->forward(*this, x, out, backend, context, idx, w);
    return;
  }
  if (idx.defined()) {
    experts(experts_call(x, out, idx, w), backend, context);
    return;
  }
  const std::int64_t T = x.shape[0], E = config_.num_experts, K = config_.num_experts_per_tok;
  compute_logits(x, context.threads);
  index_.resize(std::size_t(T * K));
  routing_w_.resize(std::size_t(T * K));
  const float* bias = weights_.correction_bias.numel() ? weights_.correction_bias.data<float>() : nullptr;
  route(config_.router, logits_.data(), T, E, K, bias, index_.data(), routing_w_.data());
  if (router_precision(config_).weights_in_model_dtype) round_all(x.dtype, routing_w_.data(), T * K);
  routed_tokens_ = T;
  experts(experts_call(x, out, routing_index(), routing_weights()), backend, context);
  if (weights_.shared_gate_up.numel()) add_shared(x, out, context.threads);
}

TensorView MoeBlock::routing_index() const {
  if (device_) return device_->routing_index();
  return TensorView::contiguous(const_cast<std::int32_t*>(index_.data()), DType::i32,
                                {routed_tokens_, config_.num_experts_per_tok});
}

TensorView MoeBlock::routing_weights() const {
  if (device_) return device_->routing_weights();
  return TensorView::contiguous(const_cast<float*>(routing_w_.data()), DType::f32,
                                {routed_tokens_, config_.num_experts_per_tok});
}

namespace {

Tensor host_copy(const BlockDeviceState* device, const TensorView& v) {
  Tensor t(v.dtype, v.shape.data(), v.rank);
  if (!v.numel()) return t;
  if (device)
    device->download(v, t.view());
  else
    std::memcpy(t.view().data, v.data, v.nbytes());
  return t;
}

}  // namespace

Tensor MoeBlock::routing_index_host() const { return host_copy(device_.get(), routing_index()); }
Tensor MoeBlock::routing_weights_host() const { return host_copy(device_.get(), routing_weights()); }

}  // namespace moekit
