//===- KernelCases.h - the kernel test matrix of both backends --*- C++ -*-===//
//
// Part of normjit. What the CPU (JIT/KernelTest.cpp) and GPU
// (GPU/GpuKernelTest.cpp) kernel tests share: the kinds of input data, specs
// built from flags, case names, the column counts and the op variant x dtype
// tables of the matrix, the host buffers of one call (filled the same way
// for both backends), and the checks of that call's outputs against the
// fp64 reference of tuner/Reference.h with its tolerances.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TESTS_UNIT_KERNELCASES_H
#define NORMJIT_TESTS_UNIT_KERNELCASES_H

#include "normjit/tuner/Reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace normjit::test {

using tuner::Buffer;

/// The kinds of input rows.
enum class Data {
  Normal,     ///< normal(0.5, 1) (residual: normal(0, 1))
  FarMean,    ///< 1e4 + uniform(-1, 1): the mean dwarfs the spread
  Constant,   ///< every element of row r is 0.1 * (r + 1): zero variance
  Special,    ///< normal, with NaN and +-Inf in rows 1-4
  Spike,      ///< normal, but the first column 1e3 (an outlier channel):
              ///< statistics shifted by the first element must not cancel
  Outliers,   ///< normal, but the first three columns 1e3: LayerNorm's
              ///< shift (their median) is itself far from the mean, so the
              ///< CPU's one-sweep statistics take their centred second sweep
  Offset,     ///< 1e3 + normal(0, 1), as the dtype rounds it: a bf16 row far
              ///< from zero (its spread a few ulps), judged against the fp64
              ///< reference like normal rows (the bf16 dot path's unshifted
              ///< sums once lost the mean's low bits: 3e-5 off)
  OutlierRows ///< normal, but every third row (rows 1, 4, 7, ...) as
              ///< Outliers: a group of rows mixes rows that take the
              ///< centred second sweep with rows that do not
};

/// A spec with the optional parts chosen by flags: `other` is the dtype of
/// residual, gamma and beta, the sum is stored in x's dtype, beta and the
/// mean only for LayerNorm.
inline normjit_kernel_spec_t makeSpec(normjit_op_t op, int64_t cols,
                                      normjit_dtype_t x, normjit_dtype_t y,
                                      bool residual, bool sum, bool gamma,
                                      bool beta, bool stats,
                                      normjit_dtype_t other = NORMJIT_F32) {
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
  spec.x_dtype = x;
  spec.y_dtype = y;
  spec.has_residual = residual;
  spec.residual_dtype = other;
  spec.store_sum = sum;
  spec.sum_dtype = x;
  spec.has_gamma = gamma;
  spec.gamma_dtype = other;
  spec.has_beta = beta && op == NORMJIT_LAYER_NORM;
  spec.beta_dtype = other;
  spec.store_mean = stats && op == NORMJIT_LAYER_NORM;
  spec.store_rstd = stats;
  return spec;
}

/// "ln_c100_r5_xf32_ybf16_resf16_g..._pad28_special": a case's name, less
/// the backend's config.
inline std::string describeCase(const normjit_kernel_spec_t &s, int64_t rows,
                                int64_t padding, Data data) {
  auto name = [](normjit_dtype_t dtype) { return normjit_dtype_name(dtype); };
  std::ostringstream os;
  os << (s.op == NORMJIT_LAYER_NORM ? "ln" : "rms") << "_c" << s.cols << "_r"
     << rows << "_x" << name(s.x_dtype) << "_y" << name(s.y_dtype);
  if (s.has_residual)
    os << "_res" << name(s.residual_dtype);
  if (s.store_sum)
    os << "_sum" << name(s.sum_dtype);
  if (s.has_gamma)
    os << "_g" << name(s.gamma_dtype);
  if (s.has_beta)
    os << "_b" << name(s.beta_dtype);
  if (s.store_mean)
    os << "_mean";
  if (s.store_rstd)
    os << "_rstd";
  if (padding)
    os << "_pad" << padding;
  static const char *dataNames[] = {"",         "_farmean",    "_const",
                                    "_special", "_spike",      "_outliers",
                                    "_offset",  "_outlierrows"};
  os << dataNames[static_cast<int>(data)];
  return os.str();
}

/// Column counts: a single column, primes and tails shorter than a vector,
/// powers of two, and rows longer than any cache or register budget.
inline constexpr int64_t kAllCols[] = {1,   3,    7,    31,   64,    100,
                                       768, 1000, 1024, 4097, 12288, 65536};

/// Element types of x, y and the other operands (residual, gamma, beta).
struct DTypes {
  normjit_dtype_t x, y, other;
};
inline constexpr DTypes kDTypes[] = {
    {NORMJIT_F32, NORMJIT_F32, NORMJIT_F32},
    {NORMJIT_F16, NORMJIT_F16, NORMJIT_F16},
    {NORMJIT_BF16, NORMJIT_BF16, NORMJIT_BF16},
    {NORMJIT_BF16, NORMJIT_BF16, NORMJIT_F32},
    {NORMJIT_F32, NORMJIT_BF16, NORMJIT_F16},
    {NORMJIT_F16, NORMJIT_F32, NORMJIT_BF16},
};

/// Which optional operands and outputs a spec has.
struct Variant {
  bool residual, sum, gamma, beta, stats;
};
inline constexpr Variant kVariants[] = {
    {false, false, false, false, false}, {false, false, true, false, false},
    {false, false, true, true, true},    {true, false, true, true, false},
    {true, true, true, true, true},      {true, true, false, false, true},
};

/// Which output overwrites which input (same dtype and stride): y over x,
/// the sum over x or over the residual (a residual stream updated in place).
enum class InPlace { None, YIsX, SumIsX, SumIsResidual };

inline const char *inPlaceName(InPlace what) {
  switch (what) {
  case InPlace::None:
    return "";
  case InPlace::YIsX:
    return "_y_is_x";
  case InPlace::SumIsX:
    return "_sum_is_x";
  case InPlace::SumIsResidual:
    return "_sum_is_residual";
  }
  return "?";
}

/// What keeps a GPU kernel's vector entry from running (the GPU tests): a
/// buffer one element off the vectors' alignment, or a row stride one
/// element longer than the row.
enum class Misalign { None, X, Residual, Gamma, Beta, Y, Sum, Stride };

inline const char *misalignName(Misalign what) {
  switch (what) {
  case Misalign::None:
    return "";
  case Misalign::X:
    return "x";
  case Misalign::Residual:
    return "residual";
  case Misalign::Gamma:
    return "gamma";
  case Misalign::Beta:
    return "beta";
  case Misalign::Y:
    return "y";
  case Misalign::Sum:
    return "sum";
  case Misalign::Stride:
    return "stride";
  }
  return "?";
}

/// Whether `spec` has the buffer `what` misaligns (x, y and the stride it
/// always has).
inline bool hasMisalignedBuffer(const normjit_kernel_spec_t &spec,
                                Misalign what) {
  return what == Misalign::Residual ? spec.has_residual != 0
         : what == Misalign::Gamma  ? spec.has_gamma != 0
         : what == Misalign::Beta   ? spec.has_beta != 0
         : what == Misalign::Sum    ? spec.store_sum != 0
                                    : true;
}

/// A case drawn at random (the seeded fuzz tests of both backends): a spec
/// with every buffer's dtype drawn on its own and any subset of the
/// optional operands, its rows, padding, kind of data and in-place use.
struct DrawnCase {
  normjit_kernel_spec_t spec;
  int64_t rows, padding;
  Data data;
  InPlace inPlace;
  /// "ln_c100_r5_..._sum_is_x_eps1e6": describeCase plus what it omits.
  std::string describe() const;
};

/// Limits of a draw: the longest row and the most elements of a call.
struct DrawLimits {
  int64_t maxCols = 20000;
  int64_t maxElements = 160000;
};

/// Draws a case from `rng`: column counts from 1 to limits.maxCols, more of
/// them short or near the vector, L1 and row-pair boundaries; mostly a few
/// rows (decode, odd counts), sometimes up to 40; padded strides; normal,
/// constant, special, far-mean and spike rows; epsilons from 1e-12 to 0.1.
inline DrawnCase drawCase(std::mt19937 &rng, const DrawLimits &limits = {}) {
  auto between = [&](int64_t lo, int64_t hi) {
    hi = std::max(lo, std::min(hi, limits.maxCols));
    return lo +
           static_cast<int64_t>(rng() % static_cast<unsigned>(hi - lo + 1));
  };
  auto dtype = [&] {
    static const normjit_dtype_t dtypes[] = {NORMJIT_F32, NORMJIT_F16,
                                             NORMJIT_BF16};
    return dtypes[rng() % 3];
  };
  normjit_op_t op = rng() % 2 ? NORMJIT_LAYER_NORM : NORMJIT_RMS_NORM;
  int64_t cols = 1;
  switch (rng() % 10) {
  case 0:
  case 1:
  case 2:
    cols = between(1, 70); // shorter than a few vectors
    break;
  case 3:
  case 4:
    cols = between(71, 600);
    break;
  case 5:
  case 6:
    cols = between(601, 3000);
    break;
  case 7: // where gamma, beta and a row start to overflow L1 (row pairs)
    cols = between(1900, 2200) * (1 + static_cast<int64_t>(rng() % 2));
    break;
  case 8:
    cols = between(4000, 4200);
    break;
  default:
    cols = between(3001, 20000);
    break;
  }
  cols = std::min(cols, limits.maxCols);
  DrawnCase c;
  normjit_kernel_spec_t &spec = c.spec;
  spec = normjit_kernel_spec_default(op, cols);
  spec.x_dtype = dtype();
  spec.y_dtype = dtype();
  spec.has_residual = rng() % 2;
  spec.residual_dtype = dtype();
  spec.store_sum = spec.has_residual && rng() % 2;
  spec.sum_dtype = dtype();
  spec.has_gamma = rng() % 4 != 0;
  spec.gamma_dtype = dtype();
  spec.has_beta = op == NORMJIT_LAYER_NORM && rng() % 3 != 0;
  spec.beta_dtype = dtype();
  spec.store_mean = op == NORMJIT_LAYER_NORM && rng() % 3 == 0;
  spec.store_rstd = rng() % 3 == 0;
  static const float epsilons[] = {1e-5f, 1e-6f, 1e-12f, 0.1f};
  spec.epsilon = epsilons[rng() % 4];

  c.rows = rng() % 4 == 0 ? static_cast<int64_t>(rng() % 41)
                          : static_cast<int64_t>(rng() % 8);
  c.rows = std::min<int64_t>(c.rows,
                             std::max<int64_t>(1, limits.maxElements / cols));
  c.padding = rng() % 3 == 0 ? 1 + static_cast<int64_t>(rng() % 37) : 0;

  c.data = Data::Normal;
  switch (rng() % 8) {
  case 0:
    c.data = Data::Constant;
    break;
  case 1:
    if (c.rows >= 6 && cols >= 3)
      c.data = Data::Special;
    break;
  case 2:
    // The far-mean check compares the unscaled f32 output of the row alone
    // with a careful f32 LayerNorm of it.
    if (op == NORMJIT_LAYER_NORM) {
      c.data = Data::FarMean;
      spec.has_residual = spec.store_sum = false;
      spec.has_gamma = spec.has_beta = false;
      spec.y_dtype = NORMJIT_F32;
    }
    break;
  case 3:
    c.data = Data::Spike;
    break;
  case 4:
    c.data = Data::Outliers;
    break;
  default:
    break;
  }

  c.inPlace = InPlace::None;
  switch (rng() % 6) {
  case 0:
    if (c.data != Data::FarMean || spec.x_dtype == NORMJIT_F32) {
      spec.y_dtype = spec.x_dtype;
      c.inPlace = InPlace::YIsX;
    }
    break;
  case 1:
    if (spec.store_sum) {
      spec.sum_dtype = spec.x_dtype;
      c.inPlace = InPlace::SumIsX;
    }
    break;
  case 2:
    if (spec.store_sum) {
      spec.sum_dtype = spec.residual_dtype;
      c.inPlace = InPlace::SumIsResidual;
    }
    break;
  default:
    break;
  }
  return c;
}

/// An unsigned number from the environment variable `name`, or `fallback`
/// (NORMJIT_FUZZ_SEED, NORMJIT_FUZZ_CASES: another set of drawn cases).
inline unsigned unsignedFromEnv(const char *name, unsigned fallback) {
  const char *text = std::getenv(name);
  return text && *text ? static_cast<unsigned>(std::strtoul(text, nullptr, 10))
                       : fallback;
}

/// Fills rows [0, rows) x columns [0, cols) of `buffer` (padding keeps the
/// buffer's 0xAB bytes).
inline void fill(Buffer &buffer, int64_t rows, int64_t cols, Data data,
                 std::mt19937 &rng, double center = 0.5) {
  std::normal_distribution<float> normal(static_cast<float>(center), 1.0f);
  std::uniform_real_distribution<float> spread(-1.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float value = normal(rng);
      if (data == Data::FarMean)
        value = 1e4f + spread(rng);
      else if (data == Data::Offset)
        value = 1e3f + (value - static_cast<float>(center));
      else if (data == Data::Constant)
        value = 0.1f * static_cast<float>(r + 1);
      buffer.set(r, c, value);
    }
  if (data == Data::Spike || data == Data::Outliers ||
      data == Data::OutlierRows)
    for (int64_t r = data == Data::OutlierRows ? 1 : 0; r < rows;
         r += data == Data::OutlierRows ? 3 : 1)
      for (int64_t c = 0; c < (data == Data::Spike ? 1 : 3) && c < cols; ++c)
        buffer.set(r, c, 1000.0f);
  if (data == Data::Special && rows >= 6 && cols >= 3) {
    buffer.set(1, cols / 2, NAN);
    buffer.set(2, 0, INFINITY);
    buffer.set(3, cols - 1, -INFINITY);
    buffer.set(4, 1, INFINITY);
    buffer.set(4, 2, -INFINITY);
  }
}

/// The value of the statistics entry after the last row: never written.
inline constexpr float kStatSentinel = -7.0f;

/// The host buffers of one call: inputs filled from a generator seeded with
/// the case name, outputs filled with 0xAB bytes (row buffers) or
/// kStatSentinel (mean and rstd, one entry more than rows).
struct HostCall {
  HostCall(const normjit_kernel_spec_t &spec, int64_t rows, int64_t stride,
           Data data, const std::string &seedName)
      : spec(spec), rows(rows), stride(stride), data(data),
        x(spec.x_dtype, rows, spec.cols, stride),
        residual(spec.residual_dtype, rows, spec.cols, stride),
        gamma(spec.gamma_dtype, 1, spec.cols, spec.cols),
        beta(spec.beta_dtype, 1, spec.cols, spec.cols),
        y(spec.y_dtype, rows, spec.cols, stride),
        sum(spec.sum_dtype, rows, spec.cols, stride),
        mean(static_cast<size_t>(rows) + 1, kStatSentinel),
        rstd(static_cast<size_t>(rows) + 1, kStatSentinel) {
    std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>()(seedName)));
    int64_t cols = spec.cols;
    fill(x, rows, cols, data, rng);
    fill(residual, rows, cols, data == Data::Special ? Data::Normal : data, rng,
         0.0);
    fill(gamma, 1, cols, Data::Normal, rng, 1.0);
    fill(beta, 1, cols, Data::Normal, rng, 0.0);
  }

  /// Arguments over the host buffers (each only where the spec uses it).
  normjit_run_args_t args() {
    return tuner::makeRunArgs(spec, rows, x, residual, gamma, beta, y, sum,
                              mean.data(), rstd.data());
  }

  /// Bytes of a row buffer of `dtype` (at least one row, as Buffer has).
  size_t rowBytes(normjit_dtype_t dtype) const {
    return static_cast<size_t>(std::max<int64_t>(rows, 1) * stride) *
           normjit_dtype_size(dtype);
  }
  size_t vectorBytes(normjit_dtype_t dtype) const {
    return static_cast<size_t>(spec.cols) * normjit_dtype_size(dtype);
  }
  size_t statBytes() const { return mean.size() * sizeof(float); }

  normjit_kernel_spec_t spec;
  int64_t rows, stride;
  Data data;
  Buffer x, residual, gamma, beta, y, sum;
  std::vector<float> mean, rstd;
};

/// Bytes of `buffer` outside the first `cols` elements of each of `rows`
/// rows that are not 0xAB: padding between rows written. Reports the first
/// few with `ADD_FAILURE`.
inline int64_t checkPaddingUntouched(const char *what, const Buffer &buffer,
                                     int64_t rows, int64_t cols, int64_t stride,
                                     const std::string &name) {
  int64_t elementBytes =
      static_cast<int64_t>(normjit_dtype_size(buffer.getDType()));
  const auto *bytes = static_cast<const unsigned char *>(buffer.data());
  int64_t written = 0;
  for (int64_t r = 0; r < std::max<int64_t>(rows, 1); ++r)
    for (int64_t col = rows == 0 ? 0 : cols; col < stride; ++col)
      for (int64_t byte = 0; byte < elementBytes; ++byte)
        if (bytes[(r * stride + col) * elementBytes + byte] != 0xAB &&
            ++written <= 3)
          ADD_FAILURE() << what << (rows == 0 ? " (0 rows)" : " padding")
                        << " written at row " << r << ", column " << col
                        << " in " << name;
  return written;
}

/// Checks the outputs of `call` against the fp64 reference, with the
/// tolerances of compareWithReference: values,
/// padding between rows (and with 0 rows, the whole buffer) untouched,
/// statistics written for exactly `rows` rows, and rows whose mean is 1e4
/// times their spread no worse than a careful f32 two-pass implementation.
/// Failures name `name`.
inline void checkOutputs(const HostCall &call, const std::string &name) {
  const normjit_kernel_spec_t &spec = call.spec;
  int64_t rows = call.rows, cols = spec.cols;
  tuner::ReferenceResult ref = tuner::reference(
      spec, rows, call.x, spec.has_residual ? &call.residual : nullptr,
      spec.has_gamma ? &call.gamma : nullptr,
      spec.has_beta ? &call.beta : nullptr);

  // Values against the reference (ill-conditioned rows: y and rstd are
  // judged against a careful f32 implementation below instead).
  bool farMean = call.data == Data::FarMean;
  tuner::Comparison comparison = tuner::compareWithReference(
      spec, ref, rows, call.y, spec.store_sum ? &call.sum : nullptr,
      spec.store_mean ? call.mean.data() : nullptr,
      spec.store_rstd && !farMean ? call.rstd.data() : nullptr,
      spec.has_gamma ? &call.gamma : nullptr,
      spec.has_beta ? &call.beta : nullptr,
      /*checkY=*/!farMean);
  for (const std::string &example : comparison.examples)
    ADD_FAILURE() << example;
  EXPECT_EQ(comparison.mismatches, 0)
      << comparison.mismatches << " mismatches in " << name;

  // Padding between rows is never written.
  EXPECT_EQ(checkPaddingUntouched("y", call.y, rows, cols, call.stride, name),
            0);
  if (spec.store_sum) {
    EXPECT_EQ(
        checkPaddingUntouched("sum", call.sum, rows, cols, call.stride, name),
        0);
  }
  // Statistics buffers are written for exactly `rows` rows.
  if (spec.store_mean) {
    EXPECT_EQ(call.mean[rows], kStatSentinel) << "mean[rows] written";
  }
  if (spec.store_rstd) {
    EXPECT_EQ(call.rstd[rows], kStatSentinel) << "rstd[rows] written";
  }

  if (farMean) {
    // Ill-conditioned rows: judge against a careful f32 two-pass kernel.
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> s(static_cast<size_t>(cols));
      for (int64_t col = 0; col < cols; ++col)
        s[col] = call.x.get(r, col);
      std::vector<float> careful = tuner::carefulF32LayerNorm(s, spec.epsilon);
      double ourError = 0, carefulError = 0;
      for (int64_t col = 0; col < cols; ++col) {
        double expected = ref.y[r * cols + col];
        ourError = std::max(ourError, std::fabs(call.y.get(r, col) - expected));
        carefulError =
            std::max(carefulError, std::fabs(careful[col] - expected));
      }
      EXPECT_LE(ourError, carefulError + 1e-5)
          << "row " << r << ": normjit error " << ourError
          << ", careful f32 two-pass error " << carefulError << " in " << name;
    }
  }
}

inline std::string DrawnCase::describe() const {
  std::string name =
      describeCase(spec, rows, padding, data) + inPlaceName(inPlace);
  if (spec.epsilon != 1e-5f)
    name += spec.epsilon == 1e-6f    ? "_eps1e6"
            : spec.epsilon == 1e-12f ? "_eps1e12"
            : spec.epsilon == 0.1f   ? "_eps0p1"
                                     : "_eps";
  return name;
}

} // namespace normjit::test

#endif // NORMJIT_TESTS_UNIT_KERNELCASES_H
