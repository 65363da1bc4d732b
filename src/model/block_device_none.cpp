// MoeBlock::to(cuda) in a build without CUDA (src/cuda/moe_block.cu otherwise).
#include "model/block_device.hpp"

#include "moekit/error.hpp"

#if !MOEKIT_HAVE_CUDA
namespace moekit {

std::unique_ptr<BlockDeviceState> make_block_device_state(const MoeBlock&, Device device) {
  throw Error(Errc::unsupported, "moe block: cannot move to " + device_name(device) + ": this build has no CUDA support");
}

}  // namespace moekit
#endif
