// The arithmetic of a bench plan: byte counts, the problem validate() will see, and whether it
// all fits in memory before anything is allocated.
#include <limits>

#include "bench.hpp"
#include "cli.hpp"
#include "sysinfo.hpp"
#include "table.hpp"

namespace moekit_cli {
namespace {

using u64 = std::uint64_t;

// Products of positive sizes; throws a usage error instead of wrapping.
u64 mul(u64 a, u64 b, const std::string& what) {
  u64 r;
  if (__builtin_mul_overflow(a, b, &r)) usage("sizes too large: the byte count of " + what + " overflows 64 bits");
  return r;
}
u64 add(u64 a, u64 b, const std::string& what) {
  u64 r;
  if (__builtin_add_overflow(a, b, &r)) usage("sizes too large: the byte count of " + what + " overflows 64 bits");
  return r;
}

u64 checked_weight_bytes(const BenchShape& s) {
  const std::string what = "the weights of " + s.dims();
  const u64 rows = mul(s.options.has_gate ? 2 : 1, u64(s.intermediate), what);
  u64 per_expert = add(mul(rows, u64(s.hidden), what), mul(u64(s.hidden), u64(s.intermediate), what), what);
  if (s.bias) per_expert = add(per_expert, add(rows, u64(s.hidden), what), what);
  return mul(mul(per_expert, u64(s.experts), what), moekit::dtype_size(s.dtype), what);
}

u64 checked_activation_bytes(const BenchShape& s, std::int64_t T) {
  const std::string what = "the activations at T=" + std::to_string(T);
  const u64 x_and_out = mul(mul(u64(T), u64(s.hidden), what), 2 * moekit::dtype_size(s.dtype), what);
  const u64 logits = mul(mul(u64(T), u64(s.experts), what), sizeof(float), what);
  const u64 routing = mul(mul(u64(T), u64(s.top_k), what), sizeof(std::int32_t) + sizeof(float), what);
  return add(add(x_and_out, logits, what), routing, what);
}

const char* kAvailable = "available (MemAvailable)";
// cu::kUploadChunkBytes, restated here so that this file needs no CUDA header.
constexpr u64 kHostUploadChunkBytes = u64(256) << 20;

}  // namespace

const char* scope_name(Scope scope) { return scope == Scope::block ? "block" : "experts"; }

void take_expert_dims(BenchShape& s, const moekit::ModelConfig& c) {
  s.hidden = c.hidden_size;
  s.intermediate = c.moe_intermediate_size;
  s.experts = c.num_experts;
  s.top_k = c.num_experts_per_tok;
  s.router = c.router;
  s.options = c.experts;
  s.bias = c.has_bias;
}

BenchShape experts_shape_of(const moekit::Preset& p) {
  BenchShape s;
  s.name = std::string(p.name);
  s.model = std::string(p.model);
  take_expert_dims(s, p.config);  // the preset's fields are read from its config
  return s;
}

std::string BenchShape::dims() const {
  return "H=" + std::to_string(hidden) + " I=" + std::to_string(intermediate) + " E=" + std::to_string(experts) +
         " K=" + std::to_string(top_k) + " " + std::string(moekit::dtype_name(dtype));
}

std::uint64_t weight_bytes(const BenchShape& shape) { return checked_weight_bytes(shape); }

std::uint64_t activation_bytes(const BenchShape& shape, std::int64_t T) {
  return checked_activation_bytes(shape, T);
}

moekit::ExpertsProblem planned_problem(const BenchShape& s, std::int64_t T, moekit::DeviceType device) {
  moekit::ExpertsProblem p;
  p.tokens = T;
  p.hidden = s.hidden;
  p.intermediate = s.intermediate;
  p.experts = s.experts;
  p.top_k = s.top_k;
  p.dtype = s.dtype;
  p.index_dtype = moekit::DType::i32;
  p.routing_dtype = moekit::DType::f32;
  p.device = moekit::Device{device, 0};
  p.has_bias = s.bias;
  p.options = s.options;
  return p;
}

void check_sizes(const BenchShape& s, const std::vector<std::int64_t>& tokens) {
  require_positive("--hidden", s.hidden);
  require_positive("--intermediate", s.intermediate);
  require_positive("--experts", s.experts);
  require_positive("--top-k", s.top_k);
  if (s.top_k > s.experts)
    usage("--top-k (" + std::to_string(s.top_k) + ") must not exceed --experts (" + std::to_string(s.experts) + ")");
  // Expert ids are int32 in the routing the bench builds.
  if (s.experts > std::numeric_limits<std::int32_t>::max()) usage("--experts does not fit int32");
  if (tokens.empty()) usage("--tokens needs at least one value");
  const u64 w = checked_weight_bytes(s);
  for (std::int64_t T : tokens) add(w, checked_activation_bytes(s, T), "the weights plus activations");
}

std::vector<bool> graph_settings(GraphMode mode) {
  switch (mode) {
    case GraphMode::off: return {false};
    case GraphMode::on: return {true};
    case GraphMode::both: return {false, true};
  }
  return {false};
}

void check_memory(const BenchPlan& plan) {
  const auto available = mem_available_bytes();
  if (plan.device == moekit::DeviceType::cuda) {
    // On the host: one upload chunk of the weights and the inputs of one T at a time.
    if (available)
      for (std::int64_t T : plan.tokens) {
        const u64 need = kHostUploadChunkBytes + activation_bytes(plan.shape, T);
        if (need > *available)
          usage("not enough memory: at T=" + std::to_string(T) + " building the inputs on the host needs " +
                bytes_iec(need) + ", more than the " + bytes_iec(*available) + " " + kAvailable);
      }
    check_device_memory(plan);
    return;
  }
  if (!available) return;  // not Linux: nothing to compare with
  const u64 avail = *available;
  if (ceiling_memory_bytes() > avail)
    usage("not enough memory: measuring the copy bandwidth needs " + bytes_iec(ceiling_memory_bytes()) + ", more than the " +
          bytes_iec(avail) + " " + kAvailable);
  const std::string stack = plan.layers > 1 ? " x " + std::to_string(plan.layers) + " layers" : "";
  const u64 weights = mul(weight_bytes(plan.shape), u64(plan.layers), "the weights of the layers");
  for (std::int64_t T : plan.tokens) {
    const u64 act = mul(activation_bytes(plan.shape, T), u64(plan.layers) + 1, "the activations of the layers");
    const u64 base = weights + act;  // overflow excluded by check_sizes
    if (base > avail)
      usage("not enough memory: at T=" + std::to_string(T) + " the layer" + stack + " needs " + bytes_iec(base) + " (weights " +
            bytes_iec(weights) + " + activations " + bytes_iec(act) + "), more than the " + bytes_iec(avail) + " " +
            kAvailable);
    const moekit::ExpertsProblem problem = planned_problem(plan.shape, T, plan.device);
    for (const moekit::Backend* b : plan.backends) {
      if (!b->supports(problem).ok) continue;
      const u64 ws = b->workspace_bytes(problem);
      if (ws > avail - base)
        usage("not enough memory: backend '" + std::string(b->name()) + "' needs " + bytes_iec(ws) + " of workspace at T=" +
              std::to_string(T) + ", more than the " + bytes_iec(avail - base) + " " + kAvailable +
              " besides the " + bytes_iec(base) + " of weights and activations");
    }
  }
}

}  // namespace moekit_cli
