#include "bench_block.hpp"

#include <cmath>
#include <deque>
#include <string>
#include <string_view>

#include "cli.hpp"
#include "moekit/error.hpp"
#include "moekit/inputs.hpp"
#include "moekit/safetensors.hpp"

namespace moekit_cli {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Makes up every tensor MoeBlock::load asks for, from its hub name: the shape from the config, the
// values U(-1, 1) / sqrt(fan_in) from a seed of (layer seed, name). MoeBlock::load copies each view
// before it asks for the next one; the last few tensors are kept alive anyway.
class RandomLayerSource {
 public:
  RandomLayerSource(const moekit::ModelConfig& c, moekit::DType dtype, std::uint64_t seed, int threads)
      : c_(c), dtype_(dtype), seed_(seed), threads_(threads) {}

  moekit::TensorSource source() {
    return {[](std::string_view) { return true; }, [this](std::string_view name) { return make(name); }};
  }

 private:
  moekit::TensorView make(std::string_view name) {
    const std::int64_t E = c_.num_experts, H = c_.hidden_size, I = c_.moe_intermediate_size;
    const std::int64_t Is = c_.shared_intermediate();
    const bool shared = name.find("shared_expert") != std::string_view::npos && !ends_with(name, "shared_expert_gate.weight");
    const std::int64_t width = shared ? Is : I;
    moekit::DType dtype = dtype_;
    std::vector<std::int64_t> shape;
    double fan_in = double(H);
    bool zero = false;
    if (ends_with(name, "e_score_correction_bias")) {
      shape = {E};
      dtype = moekit::DType::f32;
      zero = true;
    } else if (ends_with(name, "experts.gate_up_proj")) {
      shape = {E, H, 2 * I};
    } else if (ends_with(name, "experts.down_proj")) {
      shape = {E, I, H};
      fan_in = double(I);
    } else if (ends_with(name, "experts.gate_up_proj_bias")) {
      shape = {E, 2 * I};
    } else if (ends_with(name, "experts.down_proj_bias")) {
      shape = {E, H};
      fan_in = double(I);
    } else if (ends_with(name, "gate_proj.weight") || ends_with(name, "up_proj.weight") || ends_with(name, ".w1.weight") ||
               ends_with(name, ".w3.weight")) {
      shape = {width, H};
    } else if (ends_with(name, "down_proj.weight") || ends_with(name, ".w2.weight")) {
      shape = {H, width};
      fan_in = double(width);
    } else if (ends_with(name, "shared_expert_gate.weight")) {
      shape = {1, H};
    } else if (ends_with(name, "router.bias")) {
      shape = {E};
    } else if (ends_with(name, "gate.weight") || ends_with(name, "router.weight")) {
      shape = {E, H};
    } else {
      throw moekit::Error(moekit::Errc::unsupported, "bench: no random recipe for the tensor '" + std::string(name) + "'");
    }
    if (kept_.size() == 4) kept_.pop_front();
    kept_.emplace_back(dtype, shape.data(), int(shape.size()));
    moekit::Tensor& t = kept_.back();
    if (zero)
      moekit::fill_value(t, 0.0);
    else
      moekit::fill_uniform(t, float(1.0 / std::sqrt(fan_in)), seed_ ^ std::hash<std::string_view>{}(name), threads_);
    return t.view();
  }

  const moekit::ModelConfig& c_;
  moekit::DType dtype_;
  std::uint64_t seed_;
  int threads_;
  std::deque<moekit::Tensor> kept_;
};

// The MoE layers of the checkpoint from `first` on.
int nth_moe_layer(const moekit::ModelConfig& c, int first, int n) {
  int layer = first;
  for (int found = 0;; ++layer) {
    if (layer >= c.num_hidden_layers) {
      usage("--layers: the checkpoint has fewer than " + std::to_string(n + 1) + " MoE layers from layer " +
            std::to_string(first) + " on (num_hidden_layers = " + std::to_string(c.num_hidden_layers) + ")");
    }
    if (moekit::is_moe_layer(c, layer) && found++ == n) return layer;
  }
}

}  // namespace

moekit::MoeBlock make_block(const BenchPlan& plan, int index) {
  const BenchShape& s = plan.shape;
  if (!s.model_dir.empty()) {
    const auto checkpoint = moekit::safetensors::Checkpoint::open(s.model_dir);
    return moekit::MoeBlock::load(s.config, nth_moe_layer(s.config, s.first_layer, index), checkpoint);
  }
  // Random blocks are all "layer first_moe_layer" of the model, each with its own seed.
  RandomLayerSource random(s.config, s.dtype, plan.seed * 0x9e3779b97f4a7c15ull + std::uint64_t(index) * 7919u + 1,
                           plan.threads);
  return moekit::MoeBlock::load(s.config, moekit::first_moe_layer(s.config), random.source());
}

std::vector<moekit::MoeBlock> make_blocks(const BenchPlan& plan) {
  std::vector<moekit::MoeBlock> blocks;
  blocks.reserve(std::size_t(plan.layers));
  for (int l = 0; l < plan.layers; ++l) blocks.push_back(make_block(plan, l));
  return blocks;
}

BlockWork block_work(const moekit::MoeBlock& block, const moekit::TensorView& x, const moekit::TensorView& out) {
  const moekit::ModelConfig& c = block.config();
  // Counted on the host whichever device the block is on: the routing copied back
  // (routing_*_host synchronise), the block's host weights, and x and out described as host
  // tensors (nothing reads their data here; validate() reads only the host ids).
  const moekit::Tensor ids = block.routing_index_host(), weights = block.routing_weights_host();
  moekit::TensorView hx = x, hout = out;
  hx.device = hout.device = moekit::Device{};
  const moekit::ExpertsCall call = block.experts_call(hx, hout, ids.view(), weights.view());
  const moekit::ExpertsProblem problem = moekit::validate(call);
  BlockWork w;
  w.bytes = moekit::hit_weight_bytes(call, problem);
  w.flops = moekit::call_flops(call, problem);
  const double T = double(x.shape[0]), H = double(c.hidden_size), E = double(c.num_experts);
  const double Is = double(c.shared_intermediate());
  const moekit::MoeWeights& mw = block.weights();
  for (const moekit::Tensor* t : {&mw.router_weight, &mw.router_bias, &mw.shared_gate_up, &mw.shared_down, &mw.shared_gate})
    w.bytes += t->nbytes();
  w.flops += 2 * T * H * E + 2 * T * H * 3 * Is + (mw.shared_gate.numel() ? 2 * T * H : 0);
  std::vector<char> hit(std::size_t(c.num_experts), 0);
  const moekit::TensorView idx = ids.view();
  for (std::int64_t i = 0; i < idx.numel(); ++i) {
    const std::int64_t e = moekit::element_as_int(idx, i);
    if (e >= 0 && e < c.num_experts) hit[std::size_t(e)] = 1;
  }
  for (char h : hit) w.experts_hit += h;
  return w;
}

}  // namespace moekit_cli
