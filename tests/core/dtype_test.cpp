#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "moekit/dtype.hpp"

namespace moekit {
namespace {

TEST(DType, NamesRoundTrip) {
  for (DType t : {DType::bf16, DType::f16, DType::f32, DType::f64, DType::i32, DType::i64})
    EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::bf16);
  EXPECT_FALSE(parse_dtype("f8").has_value());
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(to_bf16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(to_bf16(1.0f + 1.0f / 256).bits, 0x3f80);
  EXPECT_EQ(to_bf16(1.0f + 3.0f / 256).bits, 0x3f82);
  EXPECT_TRUE(std::isnan(to_float(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(to_float(to_bf16(-std::numeric_limits<float>::infinity())), -std::numeric_limits<float>::infinity());
}

TEST(DType, F16EveryPatternRoundTrips) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const f16 h{std::uint16_t(b)};
    const float f = to_float(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(to_float(to_f16(f))));
      continue;
    }
    ASSERT_EQ(to_f16(f).bits, h.bits) << "pattern " << b;
  }
}

TEST(DType, F16RoundingAndRange) {
  EXPECT_EQ(to_float(to_f16(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(to_float(to_f16(65520.0f))));  // halfway to 65536 rounds up to inf
  EXPECT_EQ(to_float(to_f16(65519.0f)), 65504.0f);
  EXPECT_EQ(to_float(to_f16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(to_float(to_f16(std::ldexp(1.0f, -26))), 0.0f);  // below half of it
  EXPECT_EQ(to_f16(1.0f + std::ldexp(1.0f, -11)).bits, 0x3c00);  // tie to even
  EXPECT_EQ(to_f16(1.0f + 3 * std::ldexp(1.0f, -11)).bits, 0x3c02);
}

}  // namespace
}  // namespace moekit
