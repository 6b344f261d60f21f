//===- DType.cpp - element types and f16/bf16 conversions -----------------===//
//
// Part of normjit. Bit-exact conversions written out by hand, so that the
// runtime needs no compiler support for _Float16 or __bf16 and gives the same
// bits on every host.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/Error.h"
#include "normjit/runtime/dtype.h"

#include <cstring>
#include <string>

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

extern "C" size_t normjit_dtype_size(normjit_dtype_t dtype) {
  switch (dtype) {
  case NORMJIT_F32:
    return 4;
  case NORMJIT_F16:
  case NORMJIT_BF16:
    return 2;
  }
  return 0;
}

extern "C" const char *normjit_dtype_name(normjit_dtype_t dtype) {
  switch (dtype) {
  case NORMJIT_F32:
    return "f32";
  case NORMJIT_F16:
    return "f16";
  case NORMJIT_BF16:
    return "bf16";
  }
  return nullptr;
}

extern "C" normjit_status_t normjit_dtype_parse(const char *name,
                                                normjit_dtype_t *out) {
  using normjit::runtime::setError;
  if (!name || !out)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "normjit_dtype_parse: name and out must not be null");
  std::string text(name);
  if (text == "f32" || text == "float32")
    *out = NORMJIT_F32;
  else if (text == "f16" || text == "float16")
    *out = NORMJIT_F16;
  else if (text == "bf16" || text == "bfloat16")
    *out = NORMJIT_BF16;
  else
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "unknown dtype '" + text + "'; expected f32, f16 or bf16");
  return NORMJIT_OK;
}

extern "C" uint16_t normjit_f32_to_f16(float value) {
  uint32_t bits = bitsOf(value);
  uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t exponent = (bits >> 23) & 0xffu;
  uint32_t mantissa = bits & 0x7fffffu;
  if (exponent == 0xffu) // Inf stays Inf; NaN stays a quiet NaN.
    return static_cast<uint16_t>(sign | 0x7c00u |
                                 (mantissa ? 0x200u | (mantissa >> 13) : 0u));
  int32_t halfExponent = static_cast<int32_t>(exponent) - 127 + 15;
  if (halfExponent >= 0x1f) // Overflow rounds to Inf.
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (halfExponent <= 0) {
    // Subnormal or zero in f16: shift the full significand into place and
    // round to nearest even on the bits shifted out.
    if (halfExponent < -10)
      return static_cast<uint16_t>(sign);
    uint32_t significand = mantissa | 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - halfExponent);
    uint32_t half = significand >> shift;
    uint32_t rest = significand & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u)))
      ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(halfExponent) << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
    ++half; // A carry into the exponent is still correct (up to Inf).
  return static_cast<uint16_t>(sign | half);
}

extern "C" float normjit_f16_to_f32(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1fu)
    return floatOf(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0)
      return floatOf(sign);
    // Subnormal: normalize.
    int32_t e = -1;
    do {
      ++e;
      mantissa <<= 1;
    } while (!(mantissa & 0x400u));
    mantissa &= 0x3ffu;
    return floatOf(sign | (static_cast<uint32_t>(127 - 15 - e) << 23) |
                   (mantissa << 13));
  }
  return floatOf(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

extern "C" uint16_t normjit_f32_to_bf16(float value) {
  uint32_t bits = bitsOf(value);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu))
    return static_cast<uint16_t>((bits >> 16) | 0x40u); // quiet NaN
  uint32_t roundingBias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + roundingBias) >> 16);
}

extern "C" float normjit_bf16_to_f32(uint16_t bits) {
  return floatOf(static_cast<uint32_t>(bits) << 16);
}
