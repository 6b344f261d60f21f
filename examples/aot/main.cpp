//===- main.cpp - a C++ host linking ahead-of-time normjit kernels --------===//
//
// Part of normjit's examples. Runs the kernels of kernels.toml, compiled
// ahead of time into libaot_kernels.a, on rows with a stride (padding between
// rows that must stay untouched), checks them against a double-precision
// reference and shows how a bad call is reported; exits 1 on a mismatch. It
// links the generated library and the normjit runtime only.
//
//===----------------------------------------------------------------------===//

#include "aot_kernels.h"

#include <normjit/runtime/dtype.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr uint16_t kPadding = 0x7e7e; // what the padding holds, before/after

/// Rows of 16-bit floats with `stride` elements between row starts.
struct Rows {
  Rows(int64_t rows, int64_t cols, int64_t stride, bool bf16)
      : rows(rows), cols(cols), stride(stride), bf16(bf16),
        bits(static_cast<size_t>(rows * stride), kPadding) {}
  float get(int64_t r, int64_t c) const {
    uint16_t b = bits[static_cast<size_t>(r * stride + c)];
    return bf16 ? normjit_bf16_to_f32(b) : normjit_f16_to_f32(b);
  }
  void set(int64_t r, int64_t c, float value) {
    bits[static_cast<size_t>(r * stride + c)] =
        bf16 ? normjit_f32_to_bf16(value) : normjit_f32_to_f16(value);
  }
  bool paddingUntouched() const {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = cols; c < stride; ++c)
        if (bits[static_cast<size_t>(r * stride + c)] != kPadding)
          return false;
    return true;
  }
  int64_t rows, cols, stride;
  bool bf16;
  std::vector<uint16_t> bits;
};

/// Counts mismatches and remembers the largest error.
struct Check {
  void expect(double got, double expected, double tolerance) {
    double error = std::fabs(got - expected);
    if (!(error <= tolerance))
      ++mismatches;
    if (error > largest)
      largest = error;
  }
  int report(const char *kernel, const char *target, int64_t rows,
             int64_t cols) const {
    std::printf("%s: %lld x %lld (strided) on %s: %s (largest error %.2g)\n",
                kernel, static_cast<long long>(rows),
                static_cast<long long>(cols), target ? target : "?",
                mismatches ? "MISMATCH" : "ok", largest);
    return mismatches != 0;
  }
  int mismatches = 0;
  double largest = 0;
};

int fail(const char *kernel, normjit_status_t status) {
  std::fprintf(stderr, "%s failed: %s: %s\n", kernel,
               normjit_status_name(status), normjit_last_error());
  return 1;
}

int checkLayerNorm(std::mt19937 &random) {
  const normjit_kernel_spec_t &spec = *layer_norm_bf16_spec();
  const int64_t rows = 123, cols = spec.cols, stride = cols + 8;
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Rows x(rows, cols, stride, true), y(rows, cols, stride, true);
  Rows gamma(1, cols, cols, true), beta(1, cols, cols, true);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      x.set(r, c, 100.0f + 4.0f * uniform(random)); // |mean| >> std
  for (int64_t c = 0; c < cols; ++c) {
    gamma.set(0, c, 1.0f + 0.25f * uniform(random));
    beta.set(0, c, 0.5f * uniform(random));
  }
  normjit_run_args_t args{};
  args.rows = rows;
  args.x = x.bits.data();
  args.x_stride = stride;
  args.y = y.bits.data();
  args.y_stride = stride;
  args.gamma = gamma.bits.data();
  args.beta = beta.bits.data();
  if (normjit_status_t status = layer_norm_bf16(&args))
    return fail("layer_norm_bf16", status);

  Check check;
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c)
      mean += x.get(r, c);
    mean /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c)
      var += (x.get(r, c) - mean) * (x.get(r, c) - mean);
    double rstd = 1.0 / std::sqrt(var / static_cast<double>(cols) +
                                  static_cast<double>(spec.epsilon));
    for (int64_t c = 0; c < cols; ++c) {
      double expected =
          (x.get(r, c) - mean) * rstd * gamma.get(0, c) + beta.get(0, c);
      check.expect(y.get(r, c), expected, std::fabs(expected) / 128 + 1e-3);
    }
  }
  if (!y.paddingUntouched())
    ++check.mismatches;
  return check.report("layer_norm_bf16", layer_norm_bf16_target(), rows, cols);
}

int checkRmsNorm(std::mt19937 &random) {
  const normjit_kernel_spec_t &spec = *rms_norm_residual_f16_spec();
  const int64_t rows = 77, cols = spec.cols, stride = cols + 3;
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Rows x(rows, cols, stride, false), residual(rows, cols, stride, false);
  Rows y(rows, cols, stride, false), sum(rows, cols, stride, false);
  Rows gamma(1, cols, cols, false);
  std::vector<float> rstd(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      x.set(r, c, uniform(random));
      residual.set(r, c, 0.5f * uniform(random));
    }
  for (int64_t c = 0; c < cols; ++c)
    gamma.set(0, c, 1.0f + 0.25f * uniform(random));
  normjit_run_args_t args{};
  args.rows = rows;
  args.x = x.bits.data();
  args.x_stride = stride;
  args.residual = residual.bits.data();
  args.residual_stride = stride;
  args.gamma = gamma.bits.data();
  args.y = y.bits.data();
  args.y_stride = stride;
  args.sum = sum.bits.data();
  args.sum_stride = stride;
  args.rstd = rstd.data();
  if (normjit_status_t status = rms_norm_residual_f16(&args))
    return fail("rms_norm_residual_f16", status);

  Check check;
  for (int64_t r = 0; r < rows; ++r) {
    double squares = 0;
    for (int64_t c = 0; c < cols; ++c) {
      // s = x + residual in f32, stored rounded to f16: exactly.
      float s = normjit_f16_to_f32(
          normjit_f32_to_f16(x.get(r, c) + residual.get(r, c)));
      check.expect(sum.get(r, c), s, 0.0);
      squares += static_cast<double>(s) * s;
    }
    double expectedRstd = 1.0 / std::sqrt(squares / static_cast<double>(cols) +
                                          static_cast<double>(spec.epsilon));
    check.expect(rstd[static_cast<size_t>(r)], expectedRstd,
                 1e-5 * expectedRstd);
    for (int64_t c = 0; c < cols; ++c) {
      double expected = sum.get(r, c) * expectedRstd * gamma.get(0, c);
      check.expect(y.get(r, c), expected, std::fabs(expected) / 1024 + 1e-4);
    }
  }
  if (!y.paddingUntouched() || !sum.paddingUntouched())
    ++check.mismatches;
  int failed = check.report("rms_norm_residual_f16",
                            rms_norm_residual_f16_target(), rows, cols);

  // A bad call is reported, not run: the residual is missing.
  args.residual = nullptr;
  normjit_status_t status = rms_norm_residual_f16(&args);
  std::string message = normjit_last_error();
  if (status != NORMJIT_INVALID_ARGUMENT ||
      message != "residual must not be null") {
    std::fprintf(stderr, "a missing residual gave %s: '%s'\n",
                 normjit_status_name(status), message.c_str());
    failed = 1;
  }
  return failed;
}

} // namespace

int main() {
  std::mt19937 random(42);
  int failures = checkLayerNorm(random) + checkRmsNorm(random);
  return failures ? 1 : 0;
}
