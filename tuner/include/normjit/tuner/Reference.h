//===- Reference.h - fp64 reference norms and comparison helpers -*- C++ -*-===//
//
// Part of normjit. The reference every backend and every tuning candidate is
// checked against: the contract of DESIGN.md in double precision (s rounded
// exactly as the contract says), the comparison with its stated tolerances,
// a careful f32 two-pass implementation used to judge ill-conditioned rows,
// and typed buffers with f32/f16/bf16 storage.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TUNER_REFERENCE_H
#define NORMJIT_TUNER_REFERENCE_H

#include "normjit/runtime/dtype.h"
#include "normjit/runtime/kernel.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace normjit::tuner {

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

/// A std::allocator aligned to a page. Buffers of a framework (PyTorch,
/// NumPy for large arrays) start on a cache line at least: kernels with
/// streaming stores take them only in rows of y aligned to their vector, so
/// candidates must be timed, and tested, on buffers like the ones they will
/// run on. A page fixes more: where y starts relative to x modulo 4 KiB
/// decides whether stores of y falsely delay later loads of x (4K
/// aliasing, up to 20% on L3-resident shapes), and on the heap that offset
/// depends on what was allocated before (a sweep's earlier specs). Every
/// buffer on a page (as large allocations, mmap'd, are) times each
/// candidate alike in every run.
template <typename T> struct PageAlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{4096};
  PageAlignedAllocator() = default;
  template <typename U>
  PageAlignedAllocator(const PageAlignedAllocator<U> &) noexcept {}
  T *allocate(size_t n) {
    return static_cast<T *>(::operator new(n * sizeof(T), kAlignment));
  }
  void deallocate(T *p, size_t) noexcept { ::operator delete(p, kAlignment); }
  template <typename U>
  bool operator==(const PageAlignedAllocator<U> &) const noexcept {
    return true;
  }
  template <typename U>
  bool operator!=(const PageAlignedAllocator<U> &) const noexcept {
    return false;
  }
};

/// A row-major buffer of `rows` rows with a row stride, stored in `dtype`,
/// starting on a page.
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
  int64_t getRows() const { return rows; }
  int64_t getCols() const { return cols; }
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
  std::vector<uint8_t, PageAlignedAllocator<uint8_t>> bytes;
};

/// The call arguments over these buffers, each passed only where the spec
/// uses it, with the buffers' row strides.
inline normjit_run_args_t makeRunArgs(const normjit_kernel_spec_t &spec,
                                      int64_t rows, Buffer &x,
                                      Buffer &residual, Buffer &gamma,
                                      Buffer &beta, Buffer &y, Buffer &sum,
                                      float *mean, float *rstd) {
  normjit_run_args_t args{};
  args.rows = rows;
  args.x = x.data();
  args.x_stride = x.getStride();
  args.y = y.data();
  args.y_stride = y.getStride();
  if (spec.has_residual) {
    args.residual = residual.data();
    args.residual_stride = residual.getStride();
  }
  if (spec.store_sum) {
    args.sum = sum.data();
    args.sum_stride = sum.getStride();
  }
  if (spec.has_gamma)
    args.gamma = gamma.data();
  if (spec.has_beta)
    args.beta = beta.data();
  if (spec.store_mean)
    args.mean = mean;
  if (spec.store_rstd)
    args.rstd = rstd;
  return args;
}

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

/// The outcome of comparing a kernel's outputs with the reference.
struct Comparison {
  int64_t mismatches = 0;
  std::vector<std::string> examples; ///< the first few, described
  bool ok() const { return mismatches == 0; }
};

/// Compares the outputs of `rows` rows with `ref`, with the tolerances of
/// the contract:
/// - y in f32: |y - ref| <= 1e-5 * (|ref| + |gamma|);
/// - y in f16/bf16: within one ulp of the rounded reference, or, where y
///   is near 0 (s - mean cancels, or the product cancels against beta),
///   the f32 criterion on the terms (1e-5 of |y - beta| + |beta| +
///   |gamma|): a rounded f32 result cannot be closer than the f32 one;
/// - NaN where the reference is NaN, the same infinity where it is infinite;
/// - a stored sum bit-exact; rstd within 1e-5 relative; the mean within
///   1e-5 of |mean| + the row's standard deviation.
/// `checkY`/`checkStats` off skip those (ill-conditioned rows are judged
/// against carefulF32LayerNorm instead).
inline Comparison compareWithReference(
    const normjit_kernel_spec_t &spec, const ReferenceResult &ref,
    int64_t rows, const Buffer &y, const Buffer *sum, const float *mean,
    const float *rstd, const Buffer *gamma, const Buffer *beta,
    bool checkY = true, bool checkStats = true) {
  Comparison result;
  int64_t cols = spec.cols;
  auto report = [&](const std::string &what) {
    if (++result.mismatches <= 5)
      result.examples.push_back(what);
  };
  auto describe = [](const char *name, int64_t r, int64_t c, double got,
                     double expected) {
    return std::string(name) + "[" + std::to_string(r) + "][" +
           std::to_string(c) + "] = " + std::to_string(got) +
           ", reference " + std::to_string(expected);
  };
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; checkY && c < cols; ++c) {
      double expected = ref.y[r * cols + c];
      float got = y.get(r, c);
      if (std::isnan(expected) || std::isnan(got)) {
        if (std::isnan(expected) != std::isnan(got))
          report(describe("y", r, c, got, expected) + " (NaN mismatch)");
        continue;
      }
      if (std::isinf(expected)) {
        if (static_cast<double>(got) != expected)
          report(describe("y", r, c, got, expected));
        continue;
      }
      // The f32 criterion's floor: (s - mean) * rstd is computed from
      // terms of order one, so where it cancels to nearly 0 its f32 error
      // is about 1e-5 of gamma, not of y.
      double scale = gamma ? std::fabs(gamma->get(0, c)) : 1.0;
      if (spec.y_dtype == NORMJIT_F32) {
        if (std::fabs(got - expected) > 1e-5 * (std::fabs(expected) + scale))
          report(describe("y", r, c, got, expected));
      } else {
        Buffer rounded(spec.y_dtype, 1, 1, 1);
        rounded.set(0, 0, static_cast<float>(expected));
        int64_t ulps = ulpDistance16(y.bits16(r, c), rounded.bits16(0, 0));
        double shift = beta ? beta->get(0, c) : 0.0;
        double terms =
            std::fabs(expected - shift) + std::fabs(shift) + scale;
        if (ulps > 1 && std::fabs(got - expected) > 1e-5 * terms)
          report(describe("y", r, c, got, expected) + " (" +
                 std::to_string(ulps) + " ulps)");
      }
    }
    for (int64_t c = 0; sum && c < cols; ++c) {
      float stored = sum->get(r, c);
      float expected = ref.sum[r * cols + c];
      if (!(stored == expected || (std::isnan(stored) && std::isnan(expected))))
        report(describe("sum", r, c, stored, expected));
    }
    // `scale`: what the error is relative to.
    auto checkStat = [&](const char *name, float got, double expected,
                         double scale) {
      if (std::isnan(expected) || std::isnan(got) || std::isinf(expected) ||
          std::isinf(got)) {
        bool same = (std::isnan(expected) && std::isnan(got)) ||
                    static_cast<double>(got) == expected;
        if (!same)
          report(describe(name, r, 0, got, expected) + " (non-finite)");
        return;
      }
      if (std::fabs(got - expected) > 1e-5 * scale + 1e-30)
        report(describe(name, r, 0, got, expected));
    };
    // The mean of f32 sums is not within 1e-5 relative of a mean near 0:
    // its error scales with the row's spread (1 / rstd = sqrt(var + eps)),
    // and so does its effect on y = (s - mean) * rstd.
    if (checkStats && mean) {
      double spread = ref.rstd[r] > 0 ? 1.0 / ref.rstd[r] : 0.0;
      checkStat("mean", mean[r], ref.mean[r],
                std::fabs(ref.mean[r]) + (std::isfinite(spread) ? spread : 0));
    }
    if (checkStats && rstd)
      checkStat("rstd", rstd[r], ref.rstd[r], std::fabs(ref.rstd[r]));
  }
  return result;
}

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_REFERENCE_H
