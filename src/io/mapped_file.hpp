// moekit internal: a whole file mapped read-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace moekit::io {

struct Bytes {
  std::shared_ptr<const void> owner;  // keeps the mapping (or buffer) alive
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};

// Maps `path` read-only; nothing is read until a page is touched. Throws Error(not_found) when it
// cannot be opened, Error(invalid_argument) when it is not a regular file.
Bytes map_file(const std::string& path);

}  // namespace moekit::io
