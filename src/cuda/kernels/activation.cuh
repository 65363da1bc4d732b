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

// Accurate libm versions (no fast-math intrinsics): f32 results must stay within 1e-5 of float64.
__device__ __forceinline__ float act_value(float v, Act a) {
  switch (a) {
    case Act::silu: return v / (1.0f + expf(-v));
    case Act::gelu: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case Act::gelu_tanh: return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case Act::relu: return v > 0.0f ? v : 0.0f;
    case Act::clamped_swiglu: break;
  }
  return v;
}

__device__ __forceinline__ float gate_value(float g, float u, const ActParams& p) {
  if (p.act == Act::clamped_swiglu) {
    g = fminf(g, p.limit);
    u = fminf(fmaxf(u, -p.limit), p.limit);
    return (u + 1.0f) * g / (1.0f + expf(-p.alpha * g));
  }
  return act_value(g, p.act) * u;
}

}  // namespace moekit::cuda::kernels
