#include <array>
#include <utility>

#include "moekit/safetensors.hpp"

namespace moekit::safetensors {

namespace {
// The element types the safetensors format defines; only the first six have a moekit DType.
// F4/F6 packed types and others without a whole-byte size are left out: such tensors stay
// listable but their byte sizes cannot be checked.
constexpr std::array<std::pair<std::string_view, std::size_t>, 16> kSizes{{
    {"BF16", 2}, {"F16", 2}, {"F32", 4}, {"F64", 8}, {"I32", 4}, {"I64", 8},
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
    {"I16", 2}, {"U16", 2}, {"U32", 4}, {"U64", 8},
}};
}  // namespace

std::string_view file_dtype_name(DType t) noexcept {
  switch (t) {
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
  }
  return "?";
}

std::optional<std::size_t> file_dtype_size(std::string_view name) noexcept {
  for (const auto& [n, size] : kSizes)
    if (n == name) return size;
  return std::nullopt;
}

}  // namespace moekit::safetensors
