// moekit CLI: the random layer and inputs of `moekit bench --device cuda`, resident on cuda:0.
// CUDA builds only.
#pragma once

#if MOEKIT_HAVE_CUDA

#include "bench.hpp"
#include "bench_data.hpp"
#include "cuda_util.hpp"
#include "moekit/moe_block.hpp"

namespace moekit_cli {

struct DeviceWeights {
  cu::DeviceBuffer gate_up, down, gate_up_bias, down_bias;  // biases only when the shape has them
};
// The same law as the CPU bench's weights (U(-1, 1) / sqrt(fan_in)), generated on the host chunk
// by chunk and copied, so the host never holds the whole layer.
DeviceWeights upload_weights(const BenchShape& shape, std::uint64_t seed, int threads);
// Copies of a block's expert weights (and biases), e.g. a checkpoint's layer loaded on the host.
DeviceWeights upload_weights(const moekit::MoeWeights& weights);

struct DeviceInputs {
  cu::DeviceBuffer hidden, top_k_index, top_k_weights, output;
};
// Copies of the host inputs (the routing the host computed), and an output buffer.
DeviceInputs upload_inputs(const BenchInputs& host);

// The call on the device buffers; every view on cuda:0.
moekit::ExpertsCall make_device_call(const BenchShape& shape, const DeviceWeights& w, const DeviceInputs& in,
                                     std::int64_t T);

}  // namespace moekit_cli

#endif  // MOEKIT_HAVE_CUDA
