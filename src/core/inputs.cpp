// Random inputs: deterministic per seed, independent of the thread count.
#include "moekit/inputs.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include "moekit/error.hpp"

namespace moekit {

namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [-1, 1) from the top 24 bits.
float unit(std::uint64_t& state) { return float(splitmix64(state) >> 40) * (2.0f / 16777216.0f) - 1.0f; }

std::int64_t offset_of(const TensorView& t, std::int64_t flat) {
  std::int64_t off = 0;
  for (int d = t.rank - 1; d >= 0; --d) {
    const std::int64_t n = t.shape[d];
    off += (flat % n) * t.strides[d];
    flat /= n;
  }
  return off;
}

void store(const TensorView& t, std::int64_t off, double v) {
  switch (t.dtype) {
    case DType::bf16: t.as<bf16>()[off] = to_bf16(float(v)); break;
    case DType::f16: t.as<f16>()[off] = to_f16(float(v)); break;
    case DType::f32: t.as<float>()[off] = float(v); break;
    case DType::f64: t.as<double>()[off] = v; break;
    case DType::i32: t.as<std::int32_t>()[off] = std::int32_t(v); break;
    case DType::i64: t.as<std::int64_t>()[off] = std::int64_t(v); break;
  }
}

void store_int(const TensorView& t, std::int64_t off, std::int64_t v) {
  if (t.dtype == DType::i32) t.as<std::int32_t>()[off] = std::int32_t(v);
  else if (t.dtype == DType::i64) t.as<std::int64_t>()[off] = v;
  else throw Error(Errc::invalid_argument, "expected an integer tensor");
}

void expect_host(const TensorView& t, const char* what) {
  if (t.device.type != DeviceType::cpu) throw Error(Errc::invalid_argument, std::string(what) + " needs a host tensor");
}

}  // namespace

double element_as_double(const TensorView& t, std::int64_t flat) {
  const std::int64_t off = offset_of(t, flat);
  switch (t.dtype) {
    case DType::bf16: return to_float(t.as<const bf16>()[off]);
    case DType::f16: return to_float(t.as<const f16>()[off]);
    case DType::f32: return t.as<const float>()[off];
    case DType::f64: return t.as<const double>()[off];
    case DType::i32: return t.as<const std::int32_t>()[off];
    case DType::i64: return double(t.as<const std::int64_t>()[off]);
  }
  return 0.0;
}

std::int64_t element_as_int(const TensorView& t, std::int64_t flat) {
  const std::int64_t off = offset_of(t, flat);
  if (t.dtype == DType::i32) return t.as<const std::int32_t>()[off];
  if (t.dtype == DType::i64) return t.as<const std::int64_t>()[off];
  throw Error(Errc::invalid_argument, "expected an integer tensor");
}

void fill_uniform(const TensorView& t, float scale, std::uint64_t seed, int threads) {
  expect_host(t, "fill_uniform");
  if (!is_floating(t.dtype)) throw Error(Errc::invalid_argument, "fill_uniform needs a floating tensor");
  const std::int64_t n = t.numel();
  constexpr std::int64_t kChunk = std::int64_t(1) << 18;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  const bool flat = t.is_contiguous();
  auto fill_chunk = [&](std::int64_t c) {
    std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + std::uint64_t(c) * 0xd1b54a32d192ed03ull;
    const std::int64_t end = std::min(n, (c + 1) * kChunk);
    for (std::int64_t i = c * kChunk; i < end; ++i) {
      const float v = scale * unit(state);
      const std::int64_t off = flat ? i : offset_of(t, i);
      switch (t.dtype) {
        case DType::bf16: t.as<bf16>()[off] = to_bf16(v); break;
        case DType::f16: t.as<f16>()[off] = to_f16(v); break;
        case DType::f32: t.as<float>()[off] = v; break;
        default: t.as<double>()[off] = v; break;
      }
    }
  };
  int workers = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  workers = int(std::min<std::int64_t>(workers, chunks));
  if (workers <= 1) {
    for (std::int64_t c = 0; c < chunks; ++c) fill_chunk(c);
    return;
  }
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (std::int64_t c = w; c < chunks; c += workers) fill_chunk(c);
    });
  for (auto& th : pool) th.join();
}

void fill_value(const TensorView& t, double value) {
  expect_host(t, "fill_value");
  for (std::int64_t i = 0; i < t.numel(); ++i) store(t, offset_of(t, i), value);
}

void fill_routing(const TensorView& index, const TensorView& weights, std::int64_t E, RoutingPattern pattern,
                  std::uint64_t seed) {
  expect_host(index, "fill_routing");
  expect_host(weights, "fill_routing");
  const std::int64_t T = index.shape[0], K = index.shape[1];
  std::uint64_t state = seed ^ 0x5851f42d4c957f2dull;
  const std::int64_t big = index.dtype == DType::i32 ? std::numeric_limits<std::int32_t>::max()
                                                      : std::numeric_limits<std::int64_t>::max();
  const std::int64_t sentinels[] = {E, E + 1, big};
  std::vector<std::int64_t> perm(static_cast<std::size_t>(E));
  std::vector<double> w(static_cast<std::size_t>(K));
  for (std::int64_t t = 0; t < T; ++t) {
    std::iota(perm.begin(), perm.end(), 0);
    const bool sentinel_row =
        pattern == RoutingPattern::all_sentinels || (pattern == RoutingPattern::sentinel_rows && t % 3 == 1);
    double sum = 0;
    for (std::int64_t k = 0; k < K; ++k) {
      std::int64_t id;
      if (pattern == RoutingPattern::one_expert) {
        id = k < E ? k : E;
      } else if (k < E) {  // partial Fisher-Yates: K distinct experts
        const std::int64_t j = k + std::int64_t(splitmix64(state) % std::uint64_t(E - k));
        std::swap(perm[std::size_t(k)], perm[std::size_t(j)]);
        id = perm[std::size_t(k)];
      } else {
        id = E;
      }
      if (sentinel_row || (pattern == RoutingPattern::sentinels && splitmix64(state) % 4 == 0))
        id = sentinels[splitmix64(state) % 3];
      store_int(index, t * index.strides[0] + k, id);
      w[std::size_t(k)] = 0.1 + 0.9 * (0.5 * (unit(state) + 1.0));
      sum += w[std::size_t(k)];
    }
    for (std::int64_t k = 0; k < K; ++k) store(weights, t * weights.strides[0] + k, w[std::size_t(k)] / sum);
  }
}

ExpertsCall ExpertsInputs::call() const {
  ExpertsCall c;
  c.hidden_states = hidden_states;
  c.top_k_index = top_k_index;
  c.top_k_weights = top_k_weights;
  c.gate_up_proj = gate_up_proj;
  c.down_proj = down_proj;
  if (gate_up_proj_bias.view().defined()) c.gate_up_proj_bias = gate_up_proj_bias;
  if (down_proj_bias.view().defined()) c.down_proj_bias = down_proj_bias;
  c.output = output;
  c.options = options;
  return c;
}

ExpertsInputs make_random_inputs(const InputSpec& spec, std::uint64_t seed, int threads) {
  const ExpertsDims& d = spec.dims;
  const ExpertsOptions& o = spec.options;
  if (d.tokens < 0 || d.hidden < 1 || d.intermediate < 1 || d.experts < 1 || d.top_k < 1)
    throw Error(Errc::invalid_argument, "dims must have T >= 0 and H, I, E, K >= 1");
  const std::int64_t R = o.has_gate ? 2 * d.intermediate : d.intermediate;
  ExpertsInputs in;
  in.options = o;
  in.hidden_states = Tensor(spec.dtype, {d.tokens, d.hidden});
  in.top_k_index = Tensor(spec.index_dtype, {d.tokens, d.top_k});
  in.top_k_weights = Tensor(spec.routing_dtype, {d.tokens, d.top_k});
  in.gate_up_proj = o.transposed ? Tensor(spec.dtype, {d.experts, d.hidden, R}) : Tensor(spec.dtype, {d.experts, R, d.hidden});
  in.down_proj = o.transposed ? Tensor(spec.dtype, {d.experts, d.intermediate, d.hidden})
                              : Tensor(spec.dtype, {d.experts, d.hidden, d.intermediate});
  in.output = Tensor(spec.dtype, {d.tokens, d.hidden});

  // Scales keep pre-activations and outputs O(1): U(-a, a) has variance a^2 / 3.
  fill_uniform(in.hidden_states.view(), 1.0f, seed + 1, threads);
  fill_uniform(in.gate_up_proj.view(), 3.0f / std::sqrt(float(d.hidden)), seed + 2, threads);
  fill_uniform(in.down_proj.view(), 3.0f / std::sqrt(float(d.intermediate)), seed + 3, threads);
  if (spec.bias) {
    in.gate_up_proj_bias = Tensor(spec.dtype, {d.experts, R});
    in.down_proj_bias = Tensor(spec.dtype, {d.experts, d.hidden});
    fill_uniform(in.gate_up_proj_bias.view(), 0.5f, seed + 4, threads);
    fill_uniform(in.down_proj_bias.view(), 0.5f, seed + 5, threads);
  }
  fill_routing(in.top_k_index.view(), in.top_k_weights.view(), d.experts, spec.routing, seed + 6);
  fill_value(in.output.view(), std::numeric_limits<double>::quiet_NaN());
  return in;
}

std::uint64_t hit_weight_bytes(const ExpertsCall& call, const ExpertsProblem& p) {
  expect_host(call.top_k_index, "hit_weight_bytes");
  std::vector<bool> hit(std::size_t(p.experts), false);
  for (std::int64_t i = 0; i < p.tokens * p.top_k; ++i) {
    const std::int64_t e = element_as_int(call.top_k_index, i);
    if (e >= 0 && e < p.experts) hit[std::size_t(e)] = true;
  }
  const auto n = std::uint64_t(std::count(hit.begin(), hit.end(), true));
  std::uint64_t per_expert = std::uint64_t(p.gate_up_rows() * p.hidden + p.hidden * p.intermediate);
  if (p.has_bias) per_expert += std::uint64_t(p.gate_up_rows() + p.hidden);
  return n * per_expert * dtype_size(p.dtype);
}

double call_flops(const ExpertsCall& call, const ExpertsProblem& p) {
  expect_host(call.top_k_index, "call_flops");
  std::int64_t pairs = 0;
  for (std::int64_t i = 0; i < p.tokens * p.top_k; ++i) {
    const std::int64_t e = element_as_int(call.top_k_index, i);
    if (e >= 0 && e < p.experts) ++pairs;
  }
  return 2.0 * double(pairs) * double(p.gate_up_rows() * p.hidden + p.hidden * p.intermediate);
}

}  // namespace moekit
