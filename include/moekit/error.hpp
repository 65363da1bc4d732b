// moekit: errors that callers can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace moekit {

enum class Errc {
  invalid_argument,  // bad shape, dtype, stride, id or option
  unsupported,       // a valid call that this backend or build cannot run
  not_found,         // unknown backend, preset, file
  out_of_memory,     // an allocation failed
  device,            // a device runtime failure
};

const char* errc_name(Errc code);

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

}  // namespace moekit
