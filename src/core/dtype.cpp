#include "moekit/dtype.hpp"

#include <cmath>

#include "moekit/error.hpp"

namespace moekit {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return "invalid argument";
    case Errc::unsupported: return "unsupported";
    case Errc::not_found: return "not found";
    case Errc::out_of_memory: return "out of memory";
    case Errc::device: return "device error";
  }
  return "error";
}

std::size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::bf16:
    case DType::f16: return 2;
    case DType::f32:
    case DType::i32: return 4;
    case DType::f64:
    case DType::i64: return 8;
  }
  return 0;
}

std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view n) {
  if (n == "bf16" || n == "bfloat16") return DType::bf16;
  if (n == "f16" || n == "fp16" || n == "float16" || n == "half") return DType::f16;
  if (n == "f32" || n == "fp32" || n == "float32" || n == "float") return DType::f32;
  if (n == "f64" || n == "fp64" || n == "float64" || n == "double") return DType::f64;
  if (n == "int32" || n == "i32") return DType::i32;
  if (n == "int64" || n == "i64") return DType::i64;
  return std::nullopt;
}

float to_float(f16 v) noexcept {
  const std::uint32_t sign = std::uint32_t(v.bits & 0x8000u) << 16;
  const std::uint32_t exp = (v.bits >> 10) & 0x1fu;
  const std::uint32_t man = v.bits & 0x3ffu;
  std::uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal half: exact in float
    float f = std::ldexp(float(man), -24);
    std::memcpy(&u, &f, 4);
    u |= sign;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

f16 to_f16(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16{std::uint16_t(sign | 0x7e00u)};  // NaN
  if (abs >= 0x477ff000u) return f16{std::uint16_t(sign | 0x7c00u)};  // rounds to >= 65536: inf
  if (abs < 0x38800000u) {
    // Subnormal or zero in half: count in units of 2^-24 (exact in float), round half to even.
    // A result of 1024 is the smallest normal, whose encoding is the same integer.
    float a;
    std::memcpy(&a, &abs, 4);
    const float rounded = std::nearbyint(a * 16777216.0f);
    return f16{std::uint16_t(sign | std::uint16_t(rounded))};
  }
  // Normal: rebias exponent, round the 13 dropped bits to nearest even.
  std::uint32_t h = ((abs >> 13) - (112u << 10));
  const std::uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return f16{std::uint16_t(sign | h)};
}

}  // namespace moekit
