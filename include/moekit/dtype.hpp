// moekit: element types and their host conversions.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace moekit {

enum class DType : std::uint8_t { bf16, f16, f32, f64, i32, i64 };

std::size_t dtype_size(DType t) noexcept;
std::string_view dtype_name(DType t) noexcept;  // "bf16", "f16", "f32", "f64", "int32", "int64"
std::optional<DType> parse_dtype(std::string_view name);  // also accepts "bfloat16", "float16", "fp16", ...
inline bool is_floating(DType t) noexcept { return t == DType::bf16 || t == DType::f16 || t == DType::f32 || t == DType::f64; }
inline bool is_integer(DType t) noexcept { return t == DType::i32 || t == DType::i64; }

// Storage types for the 16-bit floats: plain bit patterns, converted explicitly.
struct bf16 { std::uint16_t bits; };
struct f16 { std::uint16_t bits; };

inline float to_float(bf16 v) noexcept {
  std::uint32_t u = std::uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; NaN stays NaN (quiet).
inline bf16 to_bf16(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{std::uint16_t((u >> 16) | 0x0040u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{std::uint16_t(u >> 16)};
}

float to_float(f16 v) noexcept;
f16 to_f16(float f) noexcept;  // round to nearest even, overflow to inf, NaN stays NaN

}  // namespace moekit
