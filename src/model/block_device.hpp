// moekit internal: what MoeBlock needs from its device copy. Plain C++ so that src/model stays
// free of CUDA headers; implemented in src/cuda/moe_block.cu, refused by block_device_none.cpp in a
// build without CUDA.
#pragma once

#include <memory>
#include <string_view>

#include "moekit/backend.hpp"
#include "moekit/moe_block.hpp"

namespace moekit {

class BlockDeviceState {
 public:
  virtual ~BlockDeviceState() = default;
  virtual Device device() const = 0;
  // The inputs are checked by MoeBlock::forward (shapes, dtype, device).
  virtual void forward(const MoeBlock& block, const TensorView& x, const TensorView& out, std::string_view backend,
                       const RunContext& context, const TensorView& top_k_index, const TensorView& top_k_weights) = 0;
  virtual TensorView routing_index() const = 0;
  virtual TensorView routing_weights() const = 0;
  // Synchronises the device, then copies `src` (device, contiguous) into `dst` (host, same size).
  virtual void download(const TensorView& src, const TensorView& dst) const = 0;
};

// Uploads the block's weights. Throws Errc::unsupported without CUDA or a usable device.
std::unique_ptr<BlockDeviceState> make_block_device_state(const MoeBlock& block, Device device);

}  // namespace moekit
