// Loading one MoE layer: per-expert hub tensors fused into the experts call's layout.
#include <cmath>
#include <cstring>
#include <optional>
#include <string>

#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/moe_block.hpp"
#include "moekit/router.hpp"

namespace moekit {
namespace {

std::string shape_text(std::initializer_list<std::int64_t> shape) {
  std::string s = "[";
  for (std::int64_t d : shape) s += (s.size() > 1 ? ", " : "") + std::to_string(d);
  return s + "]";
}

class LayerReader {
 public:
  LayerReader(const ModelConfig& c, int layer, const TensorSource& src) : c_(c), layer_(layer), src_(src) {}

  // The tensor, checked for shape and for a floating dtype (and `dtype` when given).
  TensorView get(const std::string& name, std::initializer_list<std::int64_t> shape,
                 std::optional<DType> dtype = std::nullopt) const {
    if (!src_.contains(name))
      throw Error(Errc::not_found, "checkpoint has no tensor '" + name + "' (layer " + std::to_string(layer_) +
                                       " of this " + c_.model_type + " model, " + c_.describe() + ")");
    const TensorView v = src_.view(name);
    bool same = v.rank == int(shape.size());
    for (int d = 0; same && d < v.rank; ++d) same = v.shape[d] == shape.begin()[d];
    if (!same)
      throw Error(Errc::invalid_argument, "tensor '" + name + "' has shape " + v.shape_string() + ", expected " +
                                              shape_text(shape) + " from config.json");
    if (!(v.dtype == DType::bf16 || v.dtype == DType::f16 || v.dtype == DType::f32))
      throw Error(Errc::invalid_argument, "tensor '" + name + "' has dtype " + std::string(dtype_name(v.dtype)) +
                                              "; expected bf16, f16 or f32");
    if (dtype && v.dtype != *dtype)
      throw Error(Errc::invalid_argument, "tensor '" + name + "' is " + std::string(dtype_name(v.dtype)) +
                                              " but the layer's expert weights are " +
                                              std::string(dtype_name(*dtype)) + "; all must share one dtype");
    if (!v.is_contiguous()) throw Error(Errc::invalid_argument, "tensor '" + name + "' is not contiguous");
    return v;
  }

  bool has(const std::string& name) const { return src_.contains(name); }

 private:
  const ModelConfig& c_;
  int layer_;
  const TensorSource& src_;
};

void copy_at(const Tensor& dst, std::size_t byte_offset, const TensorView& src) {
  std::memcpy(static_cast<char*>(dst.view().data) + byte_offset, src.data, src.nbytes());
}

Tensor owned(const TensorView& v) {
  Tensor t(v.dtype, v.shape.data(), v.rank);
  copy_at(t, 0, v);
  return t;
}

Tensor as_f32(const TensorView& v) {
  Tensor t(DType::f32, v.shape.data(), v.rank);
  for (std::int64_t i = 0; i < v.numel(); ++i) t.data<float>()[i] = float(element_as_double(v, i));
  return t;
}

// gate [I, H] and up [I, H] of each expert stacked as [E, 2I, H], gate rows first.
void load_per_expert(const ModelConfig& c, const std::string& prefix, const LayerReader& r, MoeWeights& w) {
  const std::int64_t E = c.num_experts, H = c.hidden_size, I = c.moe_intermediate_size;
  const bool mixtral = c.naming == ExpertNaming::mixtral;
  const char* gate = mixtral ? "w1" : "gate_proj";
  const char* up = mixtral ? "w3" : "up_proj";
  const char* down = mixtral ? "w2" : "down_proj";
  auto name = [&](std::int64_t e, const char* proj) {
    return prefix + "experts." + std::to_string(e) + "." + proj + ".weight";
  };
  const DType dtype = r.get(name(0, gate), {I, H}).dtype;
  w.gate_up = Tensor(dtype, {E, 2 * I, H});
  w.down = Tensor(dtype, {E, H, I});
  const std::size_t half = std::size_t(I * H) * dtype_size(dtype);
  for (std::int64_t e = 0; e < E; ++e) {
    copy_at(w.gate_up, std::size_t(2 * e) * half, r.get(name(e, gate), {I, H}, dtype));
    copy_at(w.gate_up, std::size_t(2 * e + 1) * half, r.get(name(e, up), {I, H}, dtype));
    copy_at(w.down, std::size_t(e) * half, r.get(name(e, down), {H, I}, dtype));
  }
}

// gpt-oss: already [E, H, 2I] interleaved and [E, I, H], with biases.
void load_fused(const ModelConfig& c, const std::string& prefix, const LayerReader& r, MoeWeights& w) {
  const std::int64_t E = c.num_experts, H = c.hidden_size, I = c.moe_intermediate_size;
  const std::string p = prefix + "experts.";
  const TensorView gu = r.get(p + "gate_up_proj", {E, H, 2 * I});
  w.gate_up = owned(gu);
  w.down = owned(r.get(p + "down_proj", {E, I, H}, gu.dtype));
  if (c.has_bias) {
    w.gate_up_bias = owned(r.get(p + "gate_up_proj_bias", {E, 2 * I}, gu.dtype));
    w.down_bias = owned(r.get(p + "down_proj_bias", {E, H}, gu.dtype));
  }
}

void load_shared(const ModelConfig& c, const std::string& prefix, const LayerReader& r, MoeWeights& w,
                 DType dtype) {
  const std::int64_t H = c.hidden_size, Is = c.shared_intermediate();
  if (Is <= 0) return;
  const std::string p = prefix + (c.model_type == "qwen2_moe" ? "shared_expert." : "shared_experts.");
  w.shared_gate_up = Tensor(dtype, {2 * Is, H});
  const std::size_t half = std::size_t(Is * H) * dtype_size(dtype);
  copy_at(w.shared_gate_up, 0, r.get(p + "gate_proj.weight", {Is, H}, dtype));
  copy_at(w.shared_gate_up, half, r.get(p + "up_proj.weight", {Is, H}, dtype));
  w.shared_down = owned(r.get(p + "down_proj.weight", {H, Is}, dtype));
  if (c.shared_expert_gate) w.shared_gate = owned(r.get(prefix + "shared_expert_gate.weight", {1, H}, dtype));
}

}  // namespace

MoeBlock MoeBlock::random(const ModelConfig& config, DType dtype, std::uint64_t seed, int threads) {
  if (!(dtype == DType::bf16 || dtype == DType::f16 || dtype == DType::f32))
    throw Error(Errc::invalid_argument, "MoeBlock::random: dtype must be bf16, f16 or f32, got " +
                                            std::string(dtype_name(dtype)));
  const std::int64_t E = config.num_experts, H = config.hidden_size, I = config.moe_intermediate_size;
  const std::int64_t K = config.num_experts_per_tok, Is = config.shared_intermediate();
  if (E <= 0 || H <= 0 || I <= 0 || K <= 0 || K > E)
    throw Error(Errc::invalid_argument, "MoeBlock::random: the config needs positive sizes and K <= E: " +
                                            config.describe());
  check_router(config.router, E, K, config.correction_bias);
  MoeBlock b;
  b.config_ = config;
  b.layer_ = 0;
  MoeWeights& w = b.weights_;
  auto make = [&](std::initializer_list<std::int64_t> shape, double scale, DType d) {
    Tensor t(d, shape);
    fill_uniform(t, float(scale), seed++, threads);
    return t;
  };
  const bool has_gate = config.experts.has_gate;
  const std::int64_t R = has_gate ? 2 * I : I;
  w.router_weight = make({E, H}, 2.0 / std::sqrt(double(H)), dtype);
  if (config.router_bias) w.router_bias = make({E}, 0.5, dtype);
  if (config.correction_bias) w.correction_bias = make({E}, 0.1, DType::f32);
  if (config.experts.transposed) {
    w.gate_up = make({E, H, R}, 3.0 / std::sqrt(double(H)), dtype);
    w.down = make({E, I, H}, 3.0 / std::sqrt(double(I)), dtype);
  } else {
    w.gate_up = make({E, R, H}, 3.0 / std::sqrt(double(H)), dtype);
    w.down = make({E, H, I}, 3.0 / std::sqrt(double(I)), dtype);
  }
  if (config.has_bias) {
    w.gate_up_bias = make({E, R}, 0.5, dtype);
    w.down_bias = make({E, H}, 0.5, dtype);
  }
  if (Is > 0) {
    w.shared_gate_up = make({2 * Is, H}, 3.0 / std::sqrt(double(H)), dtype);
    w.shared_down = make({H, Is}, 3.0 / std::sqrt(double(Is)), dtype);
    if (config.shared_expert_gate) w.shared_gate = make({1, H}, 1.0 / std::sqrt(double(H)), dtype);
  }
  return b;
}

MoeBlock MoeBlock::load(const ModelConfig& config, int layer, const TensorSource& source) {
  require_moe_layer(config, layer);
  MoeBlock b;
  b.config_ = config;
  b.layer_ = layer;
  const LayerReader r(config, layer, source);
  const std::string prefix = config.layer_prefix(layer);
  const std::int64_t E = config.num_experts, H = config.hidden_size;

  if (config.naming == ExpertNaming::fused)
    load_fused(config, prefix, r, b.weights_);
  else
    load_per_expert(config, prefix, r, b.weights_);

  const std::string router = prefix + std::string(config.router_name()) + ".";
  b.weights_.router_weight = owned(r.get(router + "weight", {E, H}));
  if (config.router_bias) b.weights_.router_bias = owned(r.get(router + "bias", {E}));
  // Always fp32 in transformers (a buffer kept in fp32); read as fp32 whatever the file holds.
  if (config.correction_bias) b.weights_.correction_bias = as_f32(r.get(router + "e_score_correction_bias", {E}));
  load_shared(config, prefix, r, b.weights_, b.dtype());
  return b;
}

}  // namespace moekit
