//===- DTypeTest.cpp - element types and f16/bf16 conversions -------------===//
//
// Part of normjit. Checks the conversions bit for bit: f16 against the
// compiler's _Float16 where it has one, and both formats exhaustively for
// round trips, ties to even, Inf, NaN and subnormals.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

namespace {
uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}
float floatOf(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
} // namespace

TEST(DTypeTest, SizesNamesAndParsing) {
  EXPECT_EQ(normjit_dtype_size(NORMJIT_F32), 4u);
  EXPECT_EQ(normjit_dtype_size(NORMJIT_F16), 2u);
  EXPECT_EQ(normjit_dtype_size(NORMJIT_BF16), 2u);
  EXPECT_EQ(normjit_dtype_size(static_cast<normjit_dtype_t>(7)), 0u);
  EXPECT_STREQ(normjit_dtype_name(NORMJIT_BF16), "bf16");
  EXPECT_EQ(normjit_dtype_name(static_cast<normjit_dtype_t>(7)), nullptr);

  normjit_dtype_t dtype = NORMJIT_F32;
  EXPECT_EQ(normjit_dtype_parse("bfloat16", &dtype), NORMJIT_OK);
  EXPECT_EQ(dtype, NORMJIT_BF16);
  EXPECT_EQ(normjit_dtype_parse("f16", &dtype), NORMJIT_OK);
  EXPECT_EQ(dtype, NORMJIT_F16);
  EXPECT_EQ(normjit_dtype_parse("f64", &dtype), NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("f64"), std::string::npos);
  EXPECT_EQ(normjit_dtype_parse(nullptr, &dtype), NORMJIT_INVALID_ARGUMENT);
}

TEST(DTypeTest, F16RoundTripsEveryValue) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    float value = normjit_f16_to_f32(static_cast<uint16_t>(bits));
    bool isNaN = (bits & 0x7c00u) == 0x7c00u && (bits & 0x3ffu);
    if (isNaN) {
      EXPECT_TRUE(std::isnan(value)) << bits;
      EXPECT_TRUE(std::isnan(normjit_f16_to_f32(normjit_f32_to_f16(value))));
      continue;
    }
    EXPECT_EQ(normjit_f32_to_f16(value), bits) << "f16 bits " << bits;
  }
  EXPECT_EQ(normjit_f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(normjit_f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(normjit_f16_to_f32(0x7bff), 65504.0f);
}

#if defined(__FLT16_MAX__)
TEST(DTypeTest, F16MatchesTheCompilerOnManyFloats) {
  // A stride through all f32 bit patterns, plus the neighbourhood of every
  // f16 rounding boundary, compared with the compiler's conversion.
  auto check = [](uint32_t bits) {
    float value = floatOf(bits);
    _Float16 half = static_cast<_Float16>(value);
    uint16_t expected;
    std::memcpy(&expected, &half, sizeof expected);
    uint16_t got = normjit_f32_to_f16(value);
    if (std::isnan(value))
      EXPECT_TRUE(std::isnan(normjit_f16_to_f32(got)));
    else
      EXPECT_EQ(got, expected) << "f32 bits 0x" << std::hex << bits;
  };
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 9973)
    check(static_cast<uint32_t>(bits));
  for (uint32_t half = 0; half < 0x7c00; ++half) {
    // For normal f16 values, base + 0x1000 is the f32 halfway point to the
    // next f16 value.
    uint32_t base = bitsOf(normjit_f16_to_f32(static_cast<uint16_t>(half)));
    for (uint32_t delta : {0u, 1u, 0xfffu, 0x1000u, 0x1001u})
      check(base + delta);
  }
}
#endif

TEST(DTypeTest, F16RoundsToNearestEven) {
  // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to even (1).
  EXPECT_EQ(normjit_f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3 * 2^-11 is halfway between odd and even: rounds up to even.
  EXPECT_EQ(normjit_f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(normjit_f32_to_f16(65520.0f), 0x7c00); // rounds to Inf
  EXPECT_EQ(normjit_f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(normjit_f32_to_f16(-std::numeric_limits<float>::infinity()),
            0xfc00);
  EXPECT_EQ(normjit_f32_to_f16(std::ldexp(1.0f, -25)), 0x0000); // tie to 0
  EXPECT_EQ(normjit_f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(normjit_f32_to_f16(-0.0f), 0x8000);
}

TEST(DTypeTest, BF16RoundTripsEveryValue) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    float value = normjit_bf16_to_f32(static_cast<uint16_t>(bits));
    EXPECT_EQ(bitsOf(value), bits << 16);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(normjit_bf16_to_f32(normjit_f32_to_bf16(value))));
      continue;
    }
    EXPECT_EQ(normjit_f32_to_bf16(value), bits) << "bf16 bits " << bits;
  }
}

TEST(DTypeTest, BF16RoundsToNearestEven) {
  EXPECT_EQ(normjit_f32_to_bf16(floatOf(0x3f808000u)), 0x3f80); // tie, even
  EXPECT_EQ(normjit_f32_to_bf16(floatOf(0x3f818000u)), 0x3f82); // tie, up
  EXPECT_EQ(normjit_f32_to_bf16(floatOf(0x3f808001u)), 0x3f81);
  EXPECT_EQ(normjit_f32_to_bf16(floatOf(0x7f7fffffu)), 0x7f80); // to Inf
  // A NaN whose payload sits in the low half must stay NaN, not become Inf.
  EXPECT_TRUE(std::isnan(normjit_bf16_to_f32(normjit_f32_to_bf16(
      floatOf(0x7f800001u)))));
}
