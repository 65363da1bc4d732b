// The conformance matrix: every dtype x variant x edge shape, against the float64 reference.
#include "moekit/check.hpp"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>

#include "core/device_staging.hpp"
#include "moekit/error.hpp"
#include "moekit/reference.hpp"

namespace moekit {

double tolerance(DType dtype) {
  switch (dtype) {
    case DType::f32: return 1e-5;
    case DType::f16: return 2e-3;
    case DType::bf16: return 1e-2;
    default: return 1e-12;
  }
}

namespace {

struct Variant {
  const char* name;
  void (*apply)(InputSpec&);
};

// The layouts and activations of DESIGN §1, each alone and as the models combine them.
const Variant kVariants[] = {
    {"silu", [](InputSpec&) {}},
    {"gelu", [](InputSpec& s) { s.options.activation = Activation::gelu; }},
    {"gelu_tanh", [](InputSpec& s) { s.options.activation = Activation::gelu_tanh; }},
    {"relu", [](InputSpec& s) { s.options.activation = Activation::relu; }},
    {"transposed", [](InputSpec& s) { s.options.transposed = true; }},
    {"interleaved", [](InputSpec& s) { s.options.gate_layout = GateLayout::interleaved; }},
    {"bias", [](InputSpec& s) { s.bias = true; }},
    {"no_gate", [](InputSpec& s) { s.options.has_gate = false; }},
    {"no_gate_transposed_bias_gelu",
     [](InputSpec& s) {
       s.options.has_gate = false;
       s.options.transposed = true;
       s.bias = true;
       s.options.activation = Activation::gelu;
     }},
    {"gpt_oss",
     [](InputSpec& s) {
       s.options.transposed = true;
       s.options.gate_layout = GateLayout::interleaved;
       s.options.activation = Activation::clamped_swiglu;
       s.bias = true;
     }},
    {"swiglu_tight_clamp",  // a small limit so that both clamps are active on most elements
     [](InputSpec& s) {
       s.options.activation = Activation::clamped_swiglu;
       s.options.swiglu_limit = 0.25f;
       s.options.swiglu_alpha = 1.0f;
     }},
    {"int64_ids_routing_in_dtype",
     [](InputSpec& s) {
       s.index_dtype = DType::i64;
       s.routing_dtype = s.dtype;
     }},
    {"sentinels", [](InputSpec& s) { s.routing = RoutingPattern::sentinels; }},
    {"sentinel_rows", [](InputSpec& s) { s.routing = RoutingPattern::sentinel_rows; }},
};

struct Edge {
  const char* name;
  ExpertsDims dims;
  RoutingPattern routing;
  bool transposed;
};

const Edge kEdges[] = {
    {"T=0", {0, 48, 40, 8, 2}, RoutingPattern::random, false},
    {"T=1", {1, 48, 40, 8, 2}, RoutingPattern::random, false},
    {"odd_H13_I7", {9, 13, 7, 5, 2}, RoutingPattern::random, false},
    {"odd_H13_I7_transposed", {9, 13, 7, 5, 2}, RoutingPattern::random, true},
    {"E=1", {6, 48, 40, 1, 1}, RoutingPattern::random, false},
    {"K=E", {7, 40, 24, 4, 4}, RoutingPattern::random, false},
    {"one_expert", {17, 48, 40, 8, 1}, RoutingPattern::one_expert, false},
    {"all_sentinels", {5, 48, 40, 4, 2}, RoutingPattern::all_sentinels, false},
    {"wide_H300_I200", {19, 300, 200, 6, 3}, RoutingPattern::random, false},
    {"wide_transposed", {19, 300, 200, 6, 3}, RoutingPattern::random, true},
};

}  // namespace

std::vector<CheckCase> conformance_cases(bool quick) {
  std::vector<CheckCase> cases;
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    const std::string d(dtype_name(dtype));
    for (const Variant& v : kVariants) {
      InputSpec s;
      s.dims = {11, 72, 40, 8, 3};
      s.dtype = dtype;
      v.apply(s);
      cases.push_back({d + "/" + v.name, s});
    }
    for (const Edge& e : kEdges) {
      if (quick && e.dims.hidden == 300) continue;
      InputSpec s;
      s.dims = e.dims;
      s.dtype = dtype;
      s.routing = e.routing;
      s.options.transposed = e.transposed;
      cases.push_back({d + "/" + e.name, s});
    }
  }
  return cases;
}

double relative_error(const TensorView& out, const std::vector<double>& ref) {
  double max_ref = 0.0, max_err = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double o = element_as_double(out, std::int64_t(i));
    if (!std::isfinite(o)) return std::numeric_limits<double>::infinity();
    max_ref = std::max(max_ref, std::abs(ref[i]));
    max_err = std::max(max_err, std::abs(o - ref[i]));
  }
  if (max_err == 0.0) return 0.0;
  return max_err / std::max(max_ref, std::numeric_limits<double>::min());
}

CheckResult check_backend(const Backend& backend, const CheckCase& c, std::uint64_t seed, const RunContext& context) {
  CheckResult r;
  r.tolerance = tolerance(c.spec.dtype);
  try {
    if (Support s = backend.available(); !s.ok) {
      r.skipped = true;
      r.detail = "not available: " + s.reason;
      return r;
    }
    // A case-specific seed: each case sees its own fresh inputs.
    std::uint64_t h = seed;
    for (char ch : c.name) h = h * 1099511628211ull + std::uint64_t(ch);
    ExpertsInputs in = make_random_inputs(c.spec, h);
    const ExpertsCall call = in.call();
    ExpertsProblem problem = validate(call);
    // A device backend is asked about the call as it will be on its device (device_staging.hpp).
    const bool on_device = backend.device() != DeviceType::cpu;
    if (on_device) problem.device = Device{backend.device(), 0};
    if (Support s = backend.supports(problem); !s.ok) {
      r.skipped = true;
      r.detail = "unsupported: " + s.reason;
      return r;
    }
    const std::vector<double> ref = reference_experts(call);
    if (on_device) {
      run_staged_on_device(backend, call, problem, context);
    } else {
      // Scratch is poisoned too: a backend that reads what it never wrote shows up as NaN.
      const std::size_t bytes = backend.workspace_bytes(problem);
      std::unique_ptr<void, decltype(&std::free)> ws(std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64), &std::free);
      if (!ws) throw Error(Errc::out_of_memory, "cannot allocate the workspace");
      std::memset(ws.get(), 0xff, bytes);
      backend.run(call, problem, Workspace{ws.get(), bytes}, context);
    }
    r.rel_error = relative_error(call.output, ref);
    r.passed = r.rel_error <= r.tolerance;
    if (!r.passed)
      r.detail = std::isfinite(r.rel_error) ? "relative error above tolerance" : "NaN/inf or unwritten output";
  } catch (const std::exception& e) {
    r.passed = false;
    r.rel_error = std::numeric_limits<double>::infinity();
    r.detail = std::string("error: ") + e.what();
  }
  return r;
}

}  // namespace moekit
