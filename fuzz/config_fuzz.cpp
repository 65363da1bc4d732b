// libFuzzer target: moekit::parse_model_config on any text. It may refuse the text with a
// moekit::Error; anything else (another exception, a crash, a sanitizer report) is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "moekit/error.hpp"
#include "moekit/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const moekit::ModelConfig config =
        moekit::parse_model_config(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)config;
  } catch (const moekit::Error&) {
  }
  return 0;
}
