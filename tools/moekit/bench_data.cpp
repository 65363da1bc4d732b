#include "bench_data.hpp"

#include <cmath>
#include <numbers>
#include <vector>

#include "moekit/inputs.hpp"

namespace moekit_cli {
namespace {

// A small counter-based generator: reproducible for a seed on any platform, unlike the
// distributions of <random>, whose output the standard leaves to the library.
class Normal {
 public:
  explicit Normal(std::uint64_t seed) : state_(seed) {}
  float operator()() {
    // Box-Muller on two uniforms in (0, 1].
    const double u1 = (double(next() >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = double(next() >> 11) * 0x1.0p-53;
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
  }

 private:
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t state_;
};

}  // namespace

BenchWeights make_weights(const BenchShape& s, std::uint64_t seed, int threads) {
  const std::int64_t E = s.experts, H = s.hidden, I = s.intermediate, R = s.gate_up_rows();
  BenchWeights w;
  w.gate_up = s.options.transposed ? moekit::Tensor(s.dtype, {E, H, R}) : moekit::Tensor(s.dtype, {E, R, H});
  w.down = s.options.transposed ? moekit::Tensor(s.dtype, {E, I, H}) : moekit::Tensor(s.dtype, {E, H, I});
  moekit::fill_uniform(w.gate_up, 1.0f / std::sqrt(float(H)), seed + 1, threads);
  moekit::fill_uniform(w.down, 1.0f / std::sqrt(float(I)), seed + 2, threads);
  if (s.bias) {
    w.gate_up_bias = moekit::Tensor(s.dtype, {E, R});
    w.down_bias = moekit::Tensor(s.dtype, {E, H});
    moekit::fill_uniform(w.gate_up_bias, 0.1f, seed + 3, threads);
    moekit::fill_uniform(w.down_bias, 0.1f, seed + 4, threads);
  }
  return w;
}

BenchInputs make_inputs(const BenchShape& s, std::int64_t T, std::uint64_t seed, int threads) {
  const std::int64_t E = s.experts, K = s.top_k;
  // Distinct streams per T, so that T=16 is not a prefix of T=128.
  const std::uint64_t base = seed * 0x100000001b3ull + std::uint64_t(T) * 0x9e37ull;
  BenchInputs in;
  in.hidden = moekit::Tensor(s.dtype, {T, s.hidden});
  in.output = moekit::Tensor(s.dtype, {T, s.hidden});
  in.top_k_index = moekit::Tensor(moekit::DType::i32, {T, K});
  in.top_k_weights = moekit::Tensor(moekit::DType::f32, {T, K});
  moekit::fill_uniform(in.hidden, 1.0f, base + 11, threads);

  Normal normal(base + 12);
  std::vector<float> logits(std::size_t(T * E));
  for (float& v : logits) v = normal();
  // The correction bias is zero, as in a freshly initialised transformers model: the router on
  // random data then spreads tokens evenly, which is how DESIGN §3's reference numbers were taken.
  // (A trained bias evens out the load of real data too; a random one would skew it instead.)
  std::vector<float> bias;
  if (s.router.kind == moekit::RouterConfig::Kind::sigmoid_grouped) bias.assign(std::size_t(E), 0.0f);
  moekit::route(s.router, logits.data(), T, E, K, bias.empty() ? nullptr : bias.data(),
                in.top_k_index.data<std::int32_t>(), in.top_k_weights.data<float>());

  std::vector<char> hit(std::size_t(E), 0);
  const std::int32_t* idx = in.top_k_index.data<std::int32_t>();
  for (std::int64_t i = 0; i < T * K; ++i) hit[std::size_t(idx[i])] = 1;
  for (char h : hit) in.experts_hit += h;
  return in;
}

moekit::ExpertsCall make_call(const BenchShape& s, const BenchWeights& w, const BenchInputs& in) {
  moekit::ExpertsCall call;
  call.hidden_states = in.hidden;
  call.top_k_index = in.top_k_index;
  call.top_k_weights = in.top_k_weights;
  call.gate_up_proj = w.gate_up;
  call.down_proj = w.down;
  if (s.bias) {
    call.gate_up_proj_bias = w.gate_up_bias;
    call.down_proj_bias = w.down_bias;
  }
  call.output = in.output;
  call.options = s.options;
  return call;
}

}  // namespace moekit_cli
