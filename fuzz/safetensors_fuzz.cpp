// libFuzzer target: the safetensors header checks and the index weight-map parser on any bytes.
// Build and run: `make fuzz FUZZ_SECONDS=60` (see fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "io/safetensors_index.hpp"
#include "moekit/error.hpp"
#include "moekit/safetensors.hpp"

namespace {

// Reads every byte a view claims, so ASan sees any view that reaches past the input.
unsigned touch(const moekit::TensorView& v) {
  const auto* p = static_cast<const std::uint8_t*>(v.data);
  unsigned sum = 0;
  for (std::size_t i = 0; i < v.nbytes(); ++i) sum += p[i];
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace moekit::safetensors;
  // An exact-size heap copy: a read one byte past the input is an ASan report.
  auto bytes = std::make_shared<const std::vector<std::uint8_t>>(data, data + size);
  OpenOptions options;
  options.max_header_bytes = 1 << 20;
  volatile unsigned sink = 0;
  try {
    const File f = File::from_memory(bytes, "fuzz", options);
    for (const TensorInfo& t : f.tensors()) {
      if (f.find(t.name) != &t) __builtin_trap();  // names are unique and findable
      try {
        sink = sink + touch(f.view(t.name));
      } catch (const moekit::Error&) {
      }
    }
  } catch (const moekit::Error&) {
  }
  try {
    const auto map = detail::parse_weight_map(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz index");
    sink = sink + unsigned(map.size());
  } catch (const moekit::Error&) {
  }
  return 0;
}
