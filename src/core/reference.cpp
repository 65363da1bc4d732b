// The float64 oracle: the experts call written as plainly as possible.
#include "moekit/reference.hpp"

#include <algorithm>
#include <cmath>

#include "moekit/error.hpp"
#include "moekit/inputs.hpp"

namespace moekit {

double reference_act(double v, Activation a) {
  switch (a) {
    case Activation::silu: return v / (1.0 + std::exp(-v));
    case Activation::gelu: return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    case Activation::gelu_tanh: {
      const double c = std::sqrt(2.0 / M_PI);
      return 0.5 * v * (1.0 + std::tanh(c * (v + 0.044715 * v * v * v)));
    }
    case Activation::relu: return v > 0 ? v : 0.0;
    case Activation::clamped_swiglu: break;
  }
  throw Error(Errc::invalid_argument, "clamped_swiglu needs a gate");
}

double reference_gate(double g, double u, const ExpertsOptions& o) {
  if (o.activation == Activation::clamped_swiglu) {
    const double limit = o.swiglu_limit;
    g = std::min(g, limit);
    u = std::clamp(u, -limit, limit);
    return (u + 1.0) * g / (1.0 + std::exp(-double(o.swiglu_alpha) * g));
  }
  return reference_act(g, o.activation) * u;
}

namespace {

std::vector<double> to_doubles(const TensorView& t) {
  std::vector<double> v(std::size_t(t.numel()));
  for (std::int64_t i = 0; i < t.numel(); ++i) v[std::size_t(i)] = element_as_double(t, i);
  return v;
}

}  // namespace

std::vector<double> reference_experts(const ExpertsCall& call) {
  const ExpertsProblem p = validate(call);
  if (p.device.type != DeviceType::cpu) throw Error(Errc::invalid_argument, "the reference needs host tensors");
  const std::int64_t T = p.tokens, H = p.hidden, I = p.intermediate, E = p.experts, K = p.top_k;
  const std::int64_t R = p.gate_up_rows();
  const ExpertsOptions& o = p.options;

  const std::vector<double> x = to_doubles(call.hidden_states), gu = to_doubles(call.gate_up_proj),
                            dn = to_doubles(call.down_proj);
  std::vector<double> b1, b2;
  if (p.has_bias) {
    b1 = to_doubles(call.gate_up_proj_bias);
    b2 = to_doubles(call.down_proj_bias);
  }
  // W1[e](r, h) and W2[e](j, i) in either storage layout.
  auto w1 = [&](std::int64_t e, std::int64_t r, std::int64_t h) {
    return o.transposed ? gu[std::size_t((e * H + h) * R + r)] : gu[std::size_t((e * R + r) * H + h)];
  };
  auto w2 = [&](std::int64_t e, std::int64_t j, std::int64_t i) {
    return o.transposed ? dn[std::size_t((e * I + i) * H + j)] : dn[std::size_t((e * H + j) * I + i)];
  };

  std::vector<double> out(static_cast<std::size_t>(T * H), 0.0);
  std::vector<double> v(static_cast<std::size_t>(R)), a(static_cast<std::size_t>(I));
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t e = element_as_int(call.top_k_index, t * K + k);
      if (e >= E) continue;  // expert-parallel sentinel
      const double weight = element_as_double(call.top_k_weights, t * K + k);
      for (std::int64_t r = 0; r < R; ++r) {
        double s = p.has_bias ? b1[std::size_t(e * R + r)] : 0.0;
        for (std::int64_t h = 0; h < H; ++h) s += w1(e, r, h) * x[std::size_t(t * H + h)];
        v[std::size_t(r)] = s;
      }
      for (std::int64_t i = 0; i < I; ++i) {
        if (!o.has_gate) {
          a[std::size_t(i)] = reference_act(v[std::size_t(i)], o.activation);
        } else if (o.gate_layout == GateLayout::concatenated) {
          a[std::size_t(i)] = reference_gate(v[std::size_t(i)], v[std::size_t(I + i)], o);
        } else {
          a[std::size_t(i)] = reference_gate(v[std::size_t(2 * i)], v[std::size_t(2 * i + 1)], o);
        }
      }
      for (std::int64_t j = 0; j < H; ++j) {
        double s = p.has_bias ? b2[std::size_t(e * H + j)] : 0.0;
        for (std::int64_t i = 0; i < I; ++i) s += w2(e, j, i) * a[std::size_t(i)];
        out[std::size_t(t * H + j)] += weight * s;
      }
    }
  }
  return out;
}

}  // namespace moekit
