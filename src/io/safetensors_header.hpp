// moekit internal: the checks on a safetensors header, separate from any file so that the
// fuzzer can run them on plain bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "moekit/safetensors.hpp"

namespace moekit::safetensors::detail {

struct Header {
  std::vector<TensorInfo> tensors;  // in the header's order
  std::map<std::string, std::string> metadata;
  std::uint64_t data_offset = 0;    // 8 + header length
  std::uint64_t data_size = 0;      // bytes after the header
};

// Reads and checks the header of the `size` bytes at `bytes` (the whole file). Reads nothing past
// byte 8 + header length. Throws Error(invalid_argument) naming `label` and the tensor at fault.
Header parse_header(const std::uint8_t* bytes, std::size_t size, const OpenOptions& options,
                    const std::string& label);

}  // namespace moekit::safetensors::detail
