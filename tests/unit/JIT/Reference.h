//===- Reference.h - fp64 reference norms and comparison helpers -*- C++ -*-===//
//
// Part of normjit. The reference every backend is checked against: the
// contract of DESIGN.md in double precision (s rounded exactly as the
// contract says), plus a careful f32 two-pass implementation used to judge
// ill-conditioned rows, and typed buffers with f32/f16/bf16 storage.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TESTS_UNIT_JIT_REFERENCE_H
#define NORMJIT_TESTS_UNIT_JIT_REFERENCE_H

#include "normjit/runtime/dtype.h"
#include "normjit/runtime/kernel.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace normjit::testing {

/// Rounds an f32 value to `dtype` and back.
inline float roundTo(normjit_dtype_t dtype, float value) {
  switch (dtype) {
  case NORMJIT_F16:
    return normjit_f16_to_f32(normjit_f32_to_f16(value));
  case NORMJIT_BF16:
    return normjit_bf16_to_f32(normjit_f32_to_bf16(value));
  case NORMJIT_F32:
    break;
  }
  return value;
}

/// A row-major buffer of `rows` rows with a row stride, stored in `dtype`.
class Buffer {
public:
  Buffer() = default;
  Buffer(normjit_dtype_t dtype, int64_t rows, int64_t cols, int64_t stride)
      : dtype(dtype), rows(rows), cols(cols), stride(stride),
        bytes(static_cast<size_t>(std::max<int64_t>(rows, 1) * stride) *
                  normjit_dtype_size(dtype),
              0xAB) {}

  normjit_dtype_t getDType() const { return dtype; }
  int64_t getStride() const { return stride; }
  void *data() { return bytes.data(); }
  const void *data() const { return bytes.data(); }

  float get(int64_t row, int64_t col) const {
    size_t index = static_cast<size_t>(row * stride + col);
    if (dtype == NORMJIT_F32) {
      float value;
      std::memcpy(&value, bytes.data() + 4 * index, 4);
      return value;
    }
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * index, 2);
    return dtype == NORMJIT_F16 ? normjit_f16_to_f32(bits)
                                : normjit_bf16_to_f32(bits);
  }
  uint16_t bits16(int64_t row, int64_t col) const {
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * (row * stride + col), 2);
    return bits;
  }
  void set(int64_t row, int64_t col, float value) {
    size_t index = static_cast<size_t>(row * stride + col);
    if (dtype == NORMJIT_F32) {
      std::memcpy(bytes.data() + 4 * index, &value, 4);
      return;
    }
    uint16_t bits = dtype == NORMJIT_F16 ? normjit_f32_to_f16(value)
                                         : normjit_f32_to_bf16(value);
    std::memcpy(bytes.data() + 2 * index, &bits, 2);
  }

private:
  normjit_dtype_t dtype = NORMJIT_F32;
  int64_t rows = 0, cols = 0, stride = 0;
  std::vector<uint8_t> bytes;
};

/// The reference outputs of one call.
struct ReferenceResult {
  std::vector<double> y;    ///< rows * cols, unrounded
  std::vector<float> sum;   ///< rows * cols, as stored (exact)
  std::vector<double> mean; ///< per row
  std::vector<double> rstd; ///< per row
};

/// The contract in double precision. `s` is x + residual computed in f32
/// (both are exact f32 values), rounded to the sum type when stored.
inline ReferenceResult reference(const normjit_kernel_spec_t &spec,
                                 int64_t rows, const Buffer &x,
                                 const Buffer *residual, const Buffer *gamma,
                                 const Buffer *beta) {
  int64_t cols = spec.cols;
  ReferenceResult out;
  out.y.resize(static_cast<size_t>(rows * cols));
  out.sum.resize(static_cast<size_t>(rows * cols));
  out.mean.resize(static_cast<size_t>(rows));
  out.rstd.resize(static_cast<size_t>(rows));
  std::vector<double> s(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float value = x.get(r, c);
      if (residual)
        value = value + residual->get(r, c);
      if (spec.store_sum)
        value = roundTo(spec.sum_dtype, value);
      out.sum[r * cols + c] = value;
      s[c] = value;
    }
    double mean = 0, rstd;
    if (spec.op == NORMJIT_LAYER_NORM) {
      for (double v : s)
        mean += v;
      mean /= static_cast<double>(cols);
      double var = 0;
      for (double v : s)
        var += (v - mean) * (v - mean);
      var /= static_cast<double>(cols);
      rstd = 1.0 / std::sqrt(var + static_cast<double>(spec.epsilon));
    } else {
      double squares = 0;
      for (double v : s)
        squares += v * v;
      rstd = 1.0 / std::sqrt(squares / static_cast<double>(cols) +
                             static_cast<double>(spec.epsilon));
    }
    out.mean[r] = mean;
    out.rstd[r] = rstd;
    for (int64_t c = 0; c < cols; ++c) {
      double y = (s[c] - mean) * rstd;
      if (gamma)
        y *= gamma->get(0, c);
      if (beta)
        y += beta->get(0, c);
      out.y[r * cols + c] = y;
    }
  }
  return out;
}

/// A careful f32 LayerNorm of one row (two passes, f32 accumulation in
/// sequence): the yardstick for rows whose mean dwarfs their spread.
inline std::vector<float> carefulF32LayerNorm(const std::vector<float> &s,
                                              float eps) {
  float sum = 0;
  for (float v : s)
    sum += v;
  float mean = sum / static_cast<float>(s.size());
  float squares = 0;
  for (float v : s)
    squares += (v - mean) * (v - mean);
  float rstd = 1.0f / std::sqrt(squares / static_cast<float>(s.size()) + eps);
  std::vector<float> y(s.size());
  for (size_t i = 0; i < s.size(); ++i)
    y[i] = (s[i] - mean) * rstd;
  return y;
}

/// Distance in units in the last place between two 16-bit float patterns.
inline int64_t ulpDistance16(uint16_t a, uint16_t b) {
  auto ordered = [](uint16_t bits) -> int64_t {
    return (bits & 0x8000) ? -static_cast<int64_t>(bits & 0x7fff)
                           : static_cast<int64_t>(bits);
  };
  int64_t diff = ordered(a) - ordered(b);
  return diff < 0 ? -diff : diff;
}

} // namespace normjit::testing

#endif // NORMJIT_TESTS_UNIT_JIT_REFERENCE_H
