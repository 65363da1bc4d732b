// moekit CUDA kernels: the gate and activation of DESIGN §1, in fp32.
#pragma once

#include <cuda_runtime.h>

namespace moekit::cuda::kernels {

enum class Act : int { silu, gelu, gelu_tanh, relu, clamped_swiglu };

struct ActParams {
  Act act = Act::silu;
  float alpha = 1.702f;  // clamped_swiglu
  float limit = 7.0f;
};

// Accurate libm functions (expf, erff, tanhf; no fast-math exponentials): f32 results must stay
// within 1e-5 of float64. The sigmoid's division is __fdividef (within 2 ulp, no branch): the IEEE
// division's slow-path branch fenced every output off from the next, so an unrolled epilogue ran
// its 64 sigmoids one after another (docs/perf-notes.md v13). For a divisor past 2^126 (v < -87)
// it gives 0 where the IEEE division gives v / d, below 1e-36 in magnitude.
// The activation is a template argument in the GEMM epilogues: they are unrolled over dozens of
// accumulators, and a switch on the activation at every element put all five activations' code
// between two stores; the kernels then spent a fifth of their issue slots waiting on instruction
// fetch (docs/perf-notes.md v10). with_act() switches once, outside the unrolled loops.
template <Act A>
__device__ __forceinline__ float act_value(float v) {
  if constexpr (A == Act::silu) return __fdividef(v, 1.0f + expf(-v));
  else if constexpr (A == Act::gelu) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  else if constexpr (A == Act::gelu_tanh)
    return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
  else if constexpr (A == Act::relu) return v > 0.0f ? v : 0.0f;
  else return v;  // clamped_swiglu is a gate (gate_value), not a one-input activation
}

template <Act A>
__device__ __forceinline__ float gate_value(float g, float u, const ActParams& p) {
  if constexpr (A == Act::clamped_swiglu) {
    g = fminf(g, p.limit);
    u = fminf(fmaxf(u, -p.limit), p.limit);
    return __fdividef((u + 1.0f) * g, 1.0f + expf(-p.alpha * g));
  } else {
    return act_value<A>(g) * u;
  }
}

template <Act A>
struct ActTag {
  static constexpr Act value = A;
};

// f(ActTag<a>{}) for the runtime activation a (on the host: which kernel instantiation to launch).
template <class F>
__host__ __device__ __forceinline__ void with_act(Act a, F&& f) {
  switch (a) {
    case Act::silu: f(ActTag<Act::silu>{}); break;
    case Act::gelu: f(ActTag<Act::gelu>{}); break;
    case Act::gelu_tanh: f(ActTag<Act::gelu_tanh>{}); break;
    case Act::relu: f(ActTag<Act::relu>{}); break;
    case Act::clamped_swiglu: f(ActTag<Act::clamped_swiglu>{}); break;
  }
}

// The runtime forms, for loops that apply an activation once or twice per thread.
__device__ __forceinline__ float act_value(float v, Act a) {
  float r = v;
  with_act(a, [&](auto t) { r = act_value<decltype(t)::value>(v); });
  return r;
}

__device__ __forceinline__ float gate_value(float g, float u, const ActParams& p) {
  float r = 0.0f;
  with_act(p.act, [&](auto t) { r = gate_value<decltype(t)::value>(g, u, p); });
  return r;
}

}  // namespace moekit::cuda::kernels
