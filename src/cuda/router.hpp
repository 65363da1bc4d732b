// moekit CUDA: the MoE routers on the device (the block's router step, and tests comparing them
// with the host route()). Plain C++ declarations; implemented in router.cu.
//
// Both only enqueue work on `stream` (a cudaStream_t; nullptr = the default stream): no sync, no
// allocation, capturable in a CUDA graph. Pointers are device memory of the current device.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moekit/router.hpp"
#include "moekit/tensor.hpp"

namespace moekit::cuda {

// logits [T, E] fp32 (contiguous) = x [T, H] . weight[E, H]^T (+ bias [E]), accumulated in fp32
// from the stored dtype; rounded once to x's dtype when `round_to_dtype`. x, weight and bias share
// one floating dtype and live on a CUDA device; x may have padded rows. `scratch`: device memory
// of router_logits_scratch_bytes(T, E, H, device) bytes (nullptr when that is 0), for the partial
// sums over slices of H that keep every SM busy when T x E is small.
void router_logits(const TensorView& x, const TensorView& weight, const TensorView& bias, bool round_to_dtype,
                   float* logits, float* scratch, void* stream);
std::size_t router_logits_scratch_bytes(std::int64_t tokens, std::int64_t experts, std::int64_t hidden, int device);

// What route() computes, for T tokens of logits [T, E]: idx [T, K] int32 and weights [T, K] fp32,
// contiguous, in selection order, ties to the lower index. correction_bias: [E] fp32 or nullptr
// (sigmoid_grouped only). `weights_dtype` bf16 or f16 rounds the weights to it (f32: no rounding).
// Throws moekit::Error (invalid_argument) on the configuration errors route() reports and on
// E > 1024 or K > 32; non-finite logits are not detected (see kernels/router.cuh).
void route_on_device(const RouterConfig& config, const float* logits, std::int64_t T, std::int64_t E,
                     std::int64_t K, const float* correction_bias, DType weights_dtype, std::int32_t* top_k_index,
                     float* top_k_weights, void* stream);

}  // namespace moekit::cuda
