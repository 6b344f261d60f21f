//===- KernelTest.cpp - JIT kernels against the fp64 reference ------------===//
//
// Part of normjit. A matrix of ops x variants x dtype combinations x shapes x
// configs, each kernel JIT-compiled and compared with the fp64 reference:
// f32 outputs within 1e-5 relative, f16/bf16 outputs within one ulp of the
// rounded reference, stored sums bit-exact, padding between strided rows
// untouched, NaN/Inf propagated, and rows whose mean is 1e4 times their
// spread no worse than a careful f32 two-pass implementation.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/Reference.h"

#include "normjit/JIT/Context.h"

#include <gtest/gtest.h>

#include <random>
#include <sstream>

using namespace normjit;
using namespace normjit::tuner;

namespace {

enum class Data { Normal, FarMean, Constant, Special };

struct Case {
  normjit_kernel_spec_t spec;
  int64_t rows;
  int64_t padding; // extra elements per row stride (0: contiguous)
  Data data;
  std::optional<CpuConfig> config;
  std::string name;
};

const char *dtypeName(normjit_dtype_t dtype) { return normjit_dtype_name(dtype); }

std::string describe(const Case &c) {
  std::ostringstream os;
  const normjit_kernel_spec_t &s = c.spec;
  os << (s.op == NORMJIT_LAYER_NORM ? "ln" : "rms") << "_c" << s.cols << "_r"
     << c.rows << "_x" << dtypeName(s.x_dtype) << "_y" << dtypeName(s.y_dtype);
  if (s.has_residual)
    os << "_res" << dtypeName(s.residual_dtype);
  if (s.store_sum)
    os << "_sum" << dtypeName(s.sum_dtype);
  if (s.has_gamma)
    os << "_g" << dtypeName(s.gamma_dtype);
  if (s.has_beta)
    os << "_b" << dtypeName(s.beta_dtype);
  if (s.store_mean)
    os << "_mean";
  if (s.store_rstd)
    os << "_rstd";
  if (c.padding)
    os << "_pad" << c.padding;
  static const char *dataNames[] = {"", "_farmean", "_const", "_special"};
  os << dataNames[static_cast<int>(c.data)];
  if (c.config)
    os << "_v" << c.config->vectorWidth << "a" << c.config->accumulators
       << (c.config->welford ? "w" : "") << (c.config->streamingStores ? "nt" : "")
       << (c.config->fuseResidual ? "" : "split") << "t"
       << c.config->rowsPerTask;
  return os.str();
}

/// A spec with the optional parts chosen by flags.
normjit_kernel_spec_t makeSpec(normjit_op_t op, int64_t cols, normjit_dtype_t x,
                               normjit_dtype_t y, bool residual, bool sum,
                               bool gamma, bool beta, bool stats,
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

std::vector<Case> allCases() {
  std::vector<Case> cases;
  auto add = [&](normjit_kernel_spec_t spec, int64_t rows, int64_t padding,
                 Data data = Data::Normal,
                 std::optional<CpuConfig> config = std::nullopt) {
    Case c{spec, rows, padding, data, config, ""};
    c.name = describe(c);
    // Loops below overlap; each combination is tested once.
    for (const Case &existing : cases)
      if (existing.name == c.name)
        return;
    cases.push_back(c);
  };
  const normjit_op_t ops[] = {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM};
  const int64_t allCols[] = {1,    3,    7,    31,   64,    100,
                             768,  1000, 1024, 4097, 12288, 65536};

  // Every column count, including primes and tails shorter than a vector.
  for (normjit_op_t op : ops)
    for (int64_t cols : allCols)
      add(makeSpec(op, cols, NORMJIT_F32, NORMJIT_F32, false, false, true,
                   true, true),
          cols >= 12288 ? 3 : 5, cols % 2 ? 3 : 0);
  // Row counts 0, 1 and 1024 (many thread-pool tasks).
  for (normjit_op_t op : ops)
    for (int64_t rows : {0, 1, 1024})
      add(makeSpec(op, 768, NORMJIT_BF16, NORMJIT_BF16, true, true, true,
                   true, true, NORMJIT_BF16),
          rows, 0);

  // Variants x dtype combinations.
  struct DTypes {
    normjit_dtype_t x, y, other;
  };
  const DTypes dtypes[] = {
      {NORMJIT_F32, NORMJIT_F32, NORMJIT_F32},
      {NORMJIT_F16, NORMJIT_F16, NORMJIT_F16},
      {NORMJIT_BF16, NORMJIT_BF16, NORMJIT_BF16},
      {NORMJIT_BF16, NORMJIT_BF16, NORMJIT_F32},
      {NORMJIT_F32, NORMJIT_BF16, NORMJIT_F16},
      {NORMJIT_F16, NORMJIT_F32, NORMJIT_BF16},
  };
  struct Variant {
    bool residual, sum, gamma, beta, stats;
  };
  const Variant variants[] = {
      {false, false, false, false, false}, {false, false, true, false, false},
      {false, false, true, true, true},    {true, false, true, true, false},
      {true, true, true, true, true},      {true, true, false, false, true},
  };
  for (normjit_op_t op : ops)
    for (const DTypes &d : dtypes)
      for (const Variant &v : variants)
        for (int64_t cols : {100, 1024})
          add(makeSpec(op, cols, d.x, d.y, v.residual, v.sum, v.gamma, v.beta,
                       v.stats, d.other),
              5, cols == 100 ? 28 : 0);

  // Hard inputs.
  for (normjit_op_t op : ops) {
    add(makeSpec(op, 768, NORMJIT_F32, NORMJIT_F32, false, false, true, true,
                 true),
        6, 0, Data::Constant);
    for (normjit_dtype_t dtype : {NORMJIT_F32, NORMJIT_BF16})
      add(makeSpec(op, 100, dtype, dtype, true, true, true, true, true, dtype),
          6, 0, Data::Special);
  }
  for (int64_t cols : {1024, 4096, 4097})
    for (bool welford : {false, true}) {
      CpuConfig config = getDefaultCpuConfig(makeSpec(
          NORMJIT_LAYER_NORM, cols, NORMJIT_F32, NORMJIT_F32, false, false,
          false, false, true));
      config.welford = welford;
      add(makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_F32, NORMJIT_F32, false,
                   false, false, false, true),
          8, 0, Data::FarMean, config);
    }

  // Every config the tuner may choose: vector widths, accumulators, the
  // algorithm, streaming stores, fusion, rows per task.
  for (int64_t width : {1, 2, 4, 8, 16, 32})
    for (int64_t accumulators : {1, 3, 4, 8})
      for (bool welford : {false, true}) {
        CpuConfig config;
        config.vectorWidth = width;
        config.accumulators = accumulators;
        config.welford = welford;
        config.rowsPerTask = 3;
        add(makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16,
                     true, true, true, true, true, NORMJIT_F32),
            17, 5, Data::Normal, config);
      }
  for (normjit_op_t op : ops)
    for (bool streaming : {false, true})
      for (bool fuse : {false, true})
        for (bool sum : {false, true}) {
          CpuConfig config;
          config.vectorWidth = 16;
          config.accumulators = 2;
          config.streamingStores = streaming;
          config.fuseResidual = fuse;
          config.rowsPerTask = 8;
          config.threads = 2;
          add(makeSpec(op, 4096, NORMJIT_BF16, NORMJIT_BF16, true, sum, true,
                       false, true, NORMJIT_BF16),
              33, 0, Data::Normal, config);
        }
  return cases;
}

Context &sharedContext() {
  static Context *context = new Context();
  return *context;
}

void fill(Buffer &buffer, int64_t rows, int64_t cols, Data data,
          std::mt19937 &rng, double center = 0.5) {
  std::normal_distribution<float> normal(static_cast<float>(center), 1.0f);
  std::uniform_real_distribution<float> spread(-1.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float value = normal(rng);
      if (data == Data::FarMean)
        value = 1e4f + spread(rng);
      else if (data == Data::Constant)
        value = 0.1f * static_cast<float>(r + 1);
      buffer.set(r, c, value);
    }
  if (data == Data::Special && rows >= 6 && cols >= 3) {
    buffer.set(1, cols / 2, NAN);
    buffer.set(2, 0, INFINITY);
    buffer.set(3, cols - 1, -INFINITY);
    buffer.set(4, 1, INFINITY);
    buffer.set(4, 2, -INFINITY);
  }
}

class KernelTest : public ::testing::TestWithParam<Case> {};

} // namespace

TEST_P(KernelTest, MatchesReference) {
  const Case &c = GetParam();
  const normjit_kernel_spec_t &spec = c.spec;
  int64_t rows = c.rows, cols = spec.cols, stride = cols + c.padding;
  auto kernel = sharedContext().getKernel(spec, c.config);
  ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());

  std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>()(c.name)));
  Buffer x(spec.x_dtype, rows, cols, stride);
  Buffer residual(spec.residual_dtype, rows, cols, stride);
  Buffer gamma(spec.gamma_dtype, 1, cols, cols);
  Buffer beta(spec.beta_dtype, 1, cols, cols);
  Buffer y(spec.y_dtype, rows, cols, stride);
  Buffer sum(spec.sum_dtype, rows, cols, stride);
  std::vector<float> mean(static_cast<size_t>(rows) + 1, -7.0f);
  std::vector<float> rstd(static_cast<size_t>(rows) + 1, -7.0f);
  fill(x, rows, cols, c.data, rng);
  fill(residual, rows, cols, c.data == Data::Special ? Data::Normal : c.data,
       rng, 0.0);
  fill(gamma, 1, cols, Data::Normal, rng, 1.0);
  fill(beta, 1, cols, Data::Normal, rng, 0.0);

  normjit_run_args_t args =
      makeRunArgs(spec, rows, x, residual, gamma, beta, y, sum, mean.data(),
                  rstd.data());
  ASSERT_FALSE(!!(*kernel)->run(args));

  ReferenceResult ref =
      reference(spec, rows, x, spec.has_residual ? &residual : nullptr,
                spec.has_gamma ? &gamma : nullptr,
                spec.has_beta ? &beta : nullptr);

  // Values against the reference (ill-conditioned rows: y and rstd are
  // judged against a careful f32 implementation below instead).
  bool farMean = c.data == Data::FarMean;
  Comparison comparison = compareWithReference(
      spec, ref, rows, y, spec.store_sum ? &sum : nullptr,
      spec.store_mean ? mean.data() : nullptr,
      spec.store_rstd && !farMean ? rstd.data() : nullptr,
      spec.has_gamma ? &gamma : nullptr, spec.has_beta ? &beta : nullptr,
      /*checkY=*/!farMean);
  for (const std::string &example : comparison.examples)
    ADD_FAILURE() << example;
  EXPECT_EQ(comparison.mismatches, 0)
      << comparison.mismatches << " mismatches in " << c.name;

  // Padding between rows is never written.
  int64_t elementBytes = static_cast<int64_t>(normjit_dtype_size(spec.y_dtype));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t col = cols; col < stride; ++col)
      for (int64_t byte = 0; byte < elementBytes; ++byte)
        ASSERT_EQ(static_cast<const unsigned char *>(
                      y.data())[(r * stride + col) * elementBytes + byte],
                  0xAB)
            << "y padding written at row " << r;
  // Statistics buffers are written for exactly `rows` rows.
  if (spec.store_mean) {
    EXPECT_EQ(mean[rows], -7.0f);
  }
  if (spec.store_rstd) {
    EXPECT_EQ(rstd[rows], -7.0f);
  }

  if (c.data == Data::FarMean) {
    // Ill-conditioned rows: judge against a careful f32 two-pass kernel.
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> s(static_cast<size_t>(cols));
      for (int64_t col = 0; col < cols; ++col)
        s[col] = x.get(r, col);
      std::vector<float> careful = carefulF32LayerNorm(s, spec.epsilon);
      double ourError = 0, carefulError = 0;
      for (int64_t col = 0; col < cols; ++col) {
        double expected = ref.y[r * cols + col];
        ourError = std::max(ourError, std::fabs(y.get(r, col) - expected));
        carefulError =
            std::max(carefulError, std::fabs(careful[col] - expected));
      }
      EXPECT_LE(ourError, carefulError + 1e-5)
          << "row " << r << ": normjit error " << ourError
          << ", careful f32 two-pass error " << carefulError;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, KernelTest, ::testing::ValuesIn(allCases()),
    [](const ::testing::TestParamInfo<Case> &info) { return info.param.name; });
