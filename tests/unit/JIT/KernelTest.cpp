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

#include "../KernelCases.h"

#include "normjit/JIT/Context.h"

#include <gtest/gtest.h>

#include <optional>
#include <sstream>

using namespace normjit;
using namespace normjit::test;

namespace {

struct Case {
  normjit_kernel_spec_t spec;
  int64_t rows;
  int64_t padding; // extra elements per row stride (0: contiguous)
  Data data;
  std::optional<CpuConfig> config;
  std::string name;
};

std::string describe(const Case &c) {
  std::ostringstream os;
  os << describeCase(c.spec, c.rows, c.padding, c.data);
  if (c.config)
    os << "_v" << c.config->vectorWidth << "a" << c.config->accumulators
       << (c.config->welford ? "w" : "")
       << (c.config->streamingStores ? "nt" : "")
       << (c.config->fuseResidual ? "" : "split") << "t"
       << c.config->rowsPerTask;
  if (c.config && c.config->prefetchRows > 0)
    os << "p" << c.config->prefetchRows;
  if (c.config && c.config->rowGroup > 0)
    os << "g" << c.config->rowGroup;
  return os.str();
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
  // Every column count, including primes and tails shorter than a vector.
  for (normjit_op_t op : ops)
    for (int64_t cols : kAllCols)
      add(makeSpec(op, cols, NORMJIT_F32, NORMJIT_F32, false, false, true, true,
                   true),
          cols >= 12288 ? 3 : 5, cols % 2 ? 3 : 0);
  // Row counts 0, 1 and 1024 (many thread-pool tasks).
  for (normjit_op_t op : ops)
    for (int64_t rows : {0, 1, 1024})
      add(makeSpec(op, 768, NORMJIT_BF16, NORMJIT_BF16, true, true, true, true,
                   true, NORMJIT_BF16),
          rows, 0);

  // Variants x dtype combinations.
  for (normjit_op_t op : ops)
    for (const DTypes &d : kDTypes)
      for (const Variant &v : kVariants)
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
      CpuConfig config = getDefaultCpuConfig(
          makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_F32, NORMJIT_F32, false,
                   false, false, false, true));
      config.welford = welford;
      add(makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_F32, NORMJIT_F32, false,
                   false, false, false, true),
          8, 0, Data::FarMean, config);
      // An outlier first column: the shift of the statistics is far from
      // the mean (in the spread's units), with gamma and beta in bf16 too.
      // Three outlier columns: the shift itself is an outlier.
      for (normjit_dtype_t dtype : {NORMJIT_F32, NORMJIT_BF16})
        for (Data data : {Data::Spike, Data::Outliers})
          add(makeSpec(NORMJIT_LAYER_NORM, cols, dtype, NORMJIT_F32, false,
                       false, true, true, true, dtype),
              8, 0, data, config);
    }

  // Rows normalized in pairs (f32 gamma, beta and a row overflow L1): odd
  // and even row counts, every optional operand, f32 and bf16 rows, hard
  // inputs.
  for (normjit_op_t op : ops)
    for (int64_t cols : {4096, 4099})
      for (const Variant &v : kVariants) {
        if (!v.gamma)
          continue;
        for (normjit_dtype_t rowType : {NORMJIT_F32, NORMJIT_BF16})
          add(makeSpec(op, cols, rowType, rowType, v.residual, v.sum, v.gamma,
                       v.beta, v.stats, NORMJIT_F32),
              cols == 4096 ? 7 : 4, 0);
      }
  for (normjit_op_t op : ops)
    add(makeSpec(op, 4096, NORMJIT_F32, NORMJIT_F32, true, true, true, true,
                 true),
        6, 0, Data::Special);
  add(makeSpec(NORMJIT_LAYER_NORM, 4097, NORMJIT_F32, NORMJIT_F32, false, false,
               true, true, true),
      5, 0, Data::FarMean);
  // bf16 rows far from zero, a few ulps of spread: LayerNorm's bf16 sums
  // (vdpbf16ps where the host has it) are unshifted, and the centred sweep
  // must keep the mean whole. Alone and through a bf16 stored sum; f32 and
  // bf16 outputs; both algorithms.
  for (int64_t cols : {17, 1000, 4097})
    for (normjit_dtype_t out : {NORMJIT_F32, NORMJIT_BF16})
      for (bool residual : {false, true})
        for (bool welford : {false, true}) {
          normjit_kernel_spec_t spec =
              makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_BF16, out, residual,
                       residual, true, true, true, NORMJIT_F32);
          CpuConfig config = getDefaultCpuConfig(spec);
          config.welford = welford;
          add(spec, 6, 0, Data::Offset, config);
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
        add(makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16, true,
                     true, true, true, true, NORMJIT_F32),
            17, 5, Data::Normal, config);
      }
  // Kernels whose buffers are all bf16 widen in the paired lane order:
  // every even width, with the widened gamma/beta copies (100 columns) and
  // without (1000), a tail after the full vectors, and the sum stored.
  for (normjit_op_t op : ops)
    for (int64_t width : {2, 4, 8, 16, 32})
      for (int64_t accumulators : {1, 3})
        for (bool welford : {false, true})
          for (int64_t cols : {100, 1000}) {
            if (welford && op == NORMJIT_RMS_NORM)
              continue;
            CpuConfig config;
            config.vectorWidth = width;
            config.accumulators = accumulators;
            config.welford = welford;
            config.rowsPerTask = 3;
            add(makeSpec(op, cols, NORMJIT_BF16, NORMJIT_BF16, true, true, true,
                         op == NORMJIT_LAYER_NORM, true, NORMJIT_BF16),
                9, cols == 100 ? 4 : 0, Data::Normal, config);
          }
  // Vectors wider than the search space's (64 lanes: 1024 bits of f32)
  // storing 16-bit outputs, with a tail (161 = 2 * 64 + 33) that leaves one
  // lane in the second 512-bit piece of the masked store: LLVM aborted on
  // that one for bf16 (the fuzz test found it).
  for (normjit_dtype_t out : {NORMJIT_BF16, NORMJIT_F16})
    for (bool streaming : {false, true}) {
      CpuConfig config;
      config.vectorWidth = 64;
      config.accumulators = 1;
      config.streamingStores = streaming;
      config.rowsPerTask = 2;
      add(makeSpec(NORMJIT_LAYER_NORM, 161, NORMJIT_F32, out, true, true, true,
                   true, true, NORMJIT_F32),
          5, 3, Data::Normal, config);
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
  // Software prefetches of the rows ahead: rows one at a time (100
  // columns) and in pairs (4096 f32 columns with gamma and beta), an odd
  // row count (the last pair has one row), tasks shorter than the distance
  // (the prefetched row is then the task's last), with and without a
  // residual, strided rows, with streaming stores.
  for (normjit_op_t op : ops)
    for (int64_t cols : {100, 4096})
      for (int64_t ahead : {1, 2, 16})
        for (bool residual : {false, true}) {
          CpuConfig config;
          config.vectorWidth = 16;
          config.accumulators = 2;
          config.prefetchRows = ahead;
          config.streamingStores = ahead == 2;
          config.rowsPerTask = ahead == 16 ? 64 : 5;
          config.threads = 2;
          add(makeSpec(op, cols, NORMJIT_F32, NORMJIT_F32, residual, residual,
                       true, op == NORMJIT_LAYER_NORM, true, NORMJIT_F32),
              ahead == 1 ? 1 : 19, cols == 100 ? 3 : 0, Data::Normal, config);
        }
  // Rows in groups (row_group): single rows where the default pairs
  // (4096 f32 columns with gamma and beta), pairs where it would not (100
  // columns), and groups of 3 and 8 swept in column tiles: fewer columns
  // than a tile, a tile and a half with leftover vectors and a tail (1600
  // = 25 groups of 64 columns), several tiles and a tail (4097); row counts
  // that leave the last group short, tasks shorter than a group, strided
  // rows, a residual, prefetches, streaming stores, narrow dtypes, and
  // the far-mean and special rows.
  for (normjit_op_t op : ops)
    for (int64_t group : {1, 2, 3, 8})
      for (int64_t cols : {100, 1600, 4097})
        for (bool residual : {false, true}) {
          if (group == 1 && cols != 4097)
            continue;
          CpuConfig config;
          config.vectorWidth = 16;
          config.accumulators = 4;
          config.rowGroup = group;
          config.prefetchRows = residual ? 1 : 0;
          config.streamingStores = cols != 1600;
          config.rowsPerTask = group == 8 ? 5 : 16;
          config.threads = 2;
          normjit_dtype_t dtype = cols == 1600 ? NORMJIT_BF16 : NORMJIT_F32;
          add(makeSpec(op, cols, dtype, dtype, residual, residual, true,
                       op == NORMJIT_LAYER_NORM, true, dtype),
              group == 8 ? 21 : 7, cols == 100 ? 3 : 0,
              residual ? Data::FarMean : Data::Normal, config);
          if (!residual && cols == 4097)
            add(makeSpec(op, cols, NORMJIT_F32, NORMJIT_F32, false, false,
                         true, op == NORMJIT_LAYER_NORM, true, NORMJIT_F32),
                11, 16, Data::Special, config);
        }
  // Groups of short rows whose statistics are finished in lanes (one row
  // a lane): groups of 3, 8 and 16 rows, the last one short, in tasks
  // longer and shorter than a group; columns from 1 to the lanes' limit
  // (512); f32, bf16 with a residual and its sum, f16 y; strided rows; and
  // groups mixing rows that take the centred sweep (outliers among the
  // first three values) with rows that do not, NaN and Inf, constant rows
  // and rows far from zero. The mean and rstd are stored.
  int64_t laneCase = 0;
  for (normjit_op_t op : ops)
    for (int64_t cols : {1, 3, 7, 16, 31, 64, 100, 257, 512})
      for (int64_t group : {3, 8, 16}) {
        ++laneCase;
        CpuConfig config;
        config.vectorWidth = laneCase % 3 == 0 ? 16 : laneCase % 3 == 1 ? 8 : 4;
        config.accumulators = 1 + laneCase % 3;
        config.rowGroup = group;
        config.rowsPerTask = laneCase % 2 ? 5 : 2 * group;
        config.threads = 2;
        normjit_dtype_t x = laneCase % 4 == 1 ? NORMJIT_BF16 : NORMJIT_F32;
        normjit_dtype_t y = laneCase % 4 == 2 ? NORMJIT_F16 : x;
        bool residual = laneCase % 4 == 1;
        int64_t rows = 2 * group + 5, padding = cols % 2 ? 3 : 0;
        normjit_kernel_spec_t spec =
            makeSpec(op, cols, x, y, residual, residual, true,
                     op == NORMJIT_LAYER_NORM, true, x);
        add(spec, rows, padding, Data::OutlierRows, config);
        const Data more[] = {Data::Normal, Data::FarMean, Data::Special,
                             Data::Constant, Data::Spike};
        add(spec, rows, padding, more[laneCase % 5], config);
      }
  return cases;
}

Context &sharedContext() {
  static Context *context = new Context();
  return *context;
}

class KernelTest : public ::testing::TestWithParam<Case> {};

} // namespace

TEST_P(KernelTest, MatchesReference) {
  const Case &c = GetParam();
  const normjit_kernel_spec_t &spec = c.spec;
  auto kernel = sharedContext().getKernel(spec, c.config);
  ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());

  HostCall call(spec, c.rows, spec.cols + c.padding, c.data, c.name);
  normjit_run_args_t args = call.args();
  llvm::Error error = (*kernel)->run(args);
  ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
  checkOutputs(call, c.name);
}

INSTANTIATE_TEST_SUITE_P(Matrix, KernelTest, ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<Case> &info) {
                           return info.param.name;
                         });

/// Runs `kernel` of `spec` on the one row of `x` into `y`; its rstd (the
/// spec stores it) and the fp64 reference of the row.
static std::pair<float, tuner::ReferenceResult>
runOneRow(const Kernel &kernel, const normjit_kernel_spec_t &spec,
          tuner::Buffer &x, tuner::Buffer &y) {
  float rstd = -1;
  normjit_run_args_t args =
      tuner::makeRunArgs(spec, 1, x, x, x, x, y, y, nullptr, &rstd);
  llvm::Error error = kernel.run(args);
  EXPECT_FALSE(!!error) << llvm::toString(std::move(error));
  return {rstd, tuner::reference(spec, 1, x, nullptr, nullptr, nullptr)};
}

TEST(KernelStreamingTest, AnyStartOfYStreamsCorrectly) {
  // Streaming stores sweep each row (or pair) of y from its first column
  // aligned for them, with masked ordinary stores before and after: y at
  // every element offset from a 64-byte boundary, contiguous rows (one
  // head for all) and strided ones (a head per row; a pair whose rows
  // differ takes ordinary stores), rows one at a time, in pairs and in a
  // group of four; nothing written outside the rows.
  Context &context = sharedContext();
  struct Shape {
    normjit_op_t op;
    int64_t cols;
    normjit_dtype_t x, y;
  };
  const Shape shapes[] = {
      {NORMJIT_RMS_NORM, 5, NORMJIT_F32, NORMJIT_F32},
      {NORMJIT_LAYER_NORM, 100, NORMJIT_F32, NORMJIT_F32},
      {NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16},
      {NORMJIT_RMS_NORM, 1024, NORMJIT_F32, NORMJIT_F16},
      {NORMJIT_LAYER_NORM, 4097, NORMJIT_F32, NORMJIT_F32}};
  constexpr unsigned char kGuard = 0xAB;
  for (const Shape &shape : shapes)
    for (int64_t width : {8, 16, 32})
      for (int64_t group : {1, 2, 4})
        for (int64_t padding : {0, 3}) {
          normjit_kernel_spec_t spec =
              makeSpec(shape.op, shape.cols, shape.x, shape.y, false, false,
                       true, shape.op == NORMJIT_LAYER_NORM, true);
          CpuConfig config;
          config.vectorWidth = width;
          config.accumulators = 2;
          config.streamingStores = true;
          config.rowGroup = group;
          config.rowsPerTask = 3;
          config.threads = 2;
          auto kernel = context.getKernel(spec, config);
          ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
          int64_t rows = 7, stride = shape.cols + padding;
          int64_t elementBytes = normjit_dtype_size(shape.y);
          size_t bytes = static_cast<size_t>(rows * stride * elementBytes);
          for (int64_t offset = 0; offset < 64 / elementBytes; ++offset) {
            std::string name = describeCase(spec, rows, padding, Data::Normal) +
                               "_v" + std::to_string(width) + "g" +
                               std::to_string(group) + "_y+" +
                               std::to_string(offset);
            HostCall call(spec, rows, stride, Data::Normal, name);
            // y `offset` elements past a 64-byte boundary, 64 guard bytes
            // on either side.
            std::vector<unsigned char> storage(bytes + 256, kGuard);
            auto start = reinterpret_cast<uintptr_t>(storage.data()) + 64;
            start = (start + 63) & ~uintptr_t(63);
            auto *y = reinterpret_cast<unsigned char *>(start) +
                      offset * elementBytes;
            normjit_run_args_t args = call.args();
            args.y = y;
            llvm::Error error = (*kernel)->run(args);
            ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
            for (auto *at = storage.data(); at < y; ++at)
              ASSERT_EQ(*at, kGuard) << "written before y in " << name;
            for (auto *at = y + bytes; at < storage.data() + storage.size();
                 ++at)
              ASSERT_EQ(*at, kGuard) << "written after y in " << name;
            std::memcpy(call.y.data(), y, bytes);
            checkOutputs(call, name);
            if (::testing::Test::HasFailure())
              return;
          }
        }
}

TEST(KernelDotTest, TinyRowsAreNotFlushed) {
  // bf16 rows are summed with vdpbf16ps where the host has AVX512-BF16,
  // which flushes denormal products: rows of 1e-20 have squares of 1e-40.
  // With an epsilon smaller still, flushed squares would make rstd
  // 1/sqrt(eps) and y hundreds of times too large; the kernel sums such
  // rows again in plain f32 (itself limited by f32's denormals here, hence
  // the loose tolerance). Elsewhere it checks the same without the dot.
  for (normjit_op_t op : {NORMJIT_RMS_NORM, NORMJIT_LAYER_NORM}) {
    normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, 1000);
    spec.x_dtype = spec.y_dtype = NORMJIT_BF16;
    spec.epsilon = 1e-45f;
    auto kernel = sharedContext().getKernel(spec);
    ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
    const int64_t rows = 3;
    tuner::Buffer x(NORMJIT_BF16, rows, spec.cols, spec.cols);
    tuner::Buffer y(NORMJIT_BF16, rows, spec.cols, spec.cols);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.5f, 1.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < spec.cols; ++c)
        x.set(r, c, normal(rng) * 1e-20f * static_cast<float>(r + 1));
    normjit_run_args_t args =
        tuner::makeRunArgs(spec, rows, x, x, x, x, y, y, nullptr, nullptr);
    llvm::Error error = (*kernel)->run(args);
    ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
    tuner::ReferenceResult ref =
        tuner::reference(spec, rows, x, nullptr, nullptr, nullptr);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < spec.cols; ++c) {
        double expected = ref.y[static_cast<size_t>(r * spec.cols + c)];
        EXPECT_NEAR(y.get(r, c), expected, 2e-2 * (1 + std::fabs(expected)))
            << (op == NORMJIT_RMS_NORM ? "rms" : "layer") << " row " << r
            << " col " << c;
      }
  }
}

TEST(KernelDotTest, RowsOfMeanManyDeviationsFromZero) {
  // bf16 rows summed unshifted (vdpbf16ps) take the one-sweep M2 with a
  // mean up to 16 standard deviations from 0 when the outputs are 16-bit
  // and no statistics are stored (2 otherwise): rows from 0 to 300
  // deviations, either side of both bounds, with and without stored
  // statistics, bf16 and f16 outputs and an f32 one, are within the
  // contract's tolerances (one ulp of the rounded reference; f32 1e-5).
  const double deviations[] = {0, 1.5, 2.5, 8, 15.5, 16.5, 40, 300};
  constexpr int64_t rows = std::size(deviations);
  for (normjit_dtype_t out : {NORMJIT_BF16, NORMJIT_F16, NORMJIT_F32})
    for (int64_t cols : {768, 1024, 4097})
      for (bool stats : {false, true}) {
        normjit_kernel_spec_t spec =
            makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_BF16, out, false, false,
                     true, true, stats);
        std::string name = describeCase(spec, rows, 0, Data::Normal);
        auto kernel = sharedContext().getKernel(spec);
        ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
        HostCall call(spec, rows, cols, Data::Normal, name);
        std::mt19937 rng(static_cast<unsigned>(cols));
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c)
            call.x.set(r, c, static_cast<float>(deviations[r]) + normal(rng));
        normjit_run_args_t args = call.args();
        llvm::Error error = (*kernel)->run(args);
        ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
        checkOutputs(call, name);
      }
}

TEST(KernelDotTest, ConstantRowsOfLargeValuesHaveZeroVariance) {
  // Rows of one large bf16 value (padding rows, a saturated feature): their
  // variance is 0, so y = 0 (beta) and rstd = 1/sqrt(eps). The vdpbf16ps
  // path took the mean as total * (1/n), an ulp off the value for some n;
  // the centred sweep's correction, again through 1/n, missed that ulp by a
  // little, which became a positive variance (rstd 3% low at eps 1e-12 for
  // 9984, 99.6% for 1e7) and an offset of every y. Hosts without
  // AVX512-BF16 take the plain path and must agree.
  for (int64_t cols : {61, 122, 2021, 4042, 15, 63, 4096}) {
    for (float value : {9984.0f, 65536.0f, 10027008.0f, -300032.0f, 1.5f}) {
      for (float epsilon : {1e-12f, 1e-5f}) {
        normjit_kernel_spec_t spec =
            normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
        spec.x_dtype = NORMJIT_BF16;
        spec.y_dtype = NORMJIT_F32;
        spec.has_gamma = spec.has_beta = 0;
        spec.store_mean = spec.store_rstd = 1;
        spec.epsilon = epsilon;
        auto kernel = sharedContext().getKernel(spec);
        ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
        const int64_t rows = 3;
        tuner::Buffer x(NORMJIT_BF16, rows, cols, cols);
        tuner::Buffer y(NORMJIT_F32, rows, cols, cols);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c)
            x.set(r, c, value * static_cast<float>(r + 1));
        float mean[rows], rstd[rows];
        normjit_run_args_t args =
            tuner::makeRunArgs(spec, rows, x, x, x, x, y, y, mean, rstd);
        llvm::Error error = (*kernel)->run(args);
        ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
        double want = 1.0 / std::sqrt(static_cast<double>(epsilon));
        for (int64_t r = 0; r < rows; ++r) {
          std::ostringstream where;
          where << cols << " columns of " << x.get(r, 0) << ", eps "
                << epsilon;
          EXPECT_EQ(mean[r], x.get(r, 0)) << where.str();
          EXPECT_NEAR(rstd[r], want, 1e-6 * want) << where.str();
          for (int64_t c = 0; c < cols; ++c)
            ASSERT_EQ(y.get(r, c), 0.0f) << where.str() << ", column " << c;
        }
      }
    }
  }
}

TEST(KernelOverflowTest, SquaresThatOverflowOnlyUncentred) {
  // Rows whose raw (or shifted) squares overflow f32 while their spread
  // about the mean fits: LayerNorm must not take rstd = 0 (the documented
  // limit is for a variance that overflows). bf16 rows summed unshifted
  // with vdpbf16ps overflowed at |x| ~ 2.9e17 for 4096 columns; f32 rows
  // alternating +-1e18 overflowed their shifted squares (d = 2e18).
  struct Row {
    normjit_dtype_t dtype;
    int64_t cols;
    float mean, spread; // spread 0: constant; < 0: alternating +-mean
  } rows[] = {{NORMJIT_BF16, 4096, 3e17f, 3e15f},
              {NORMJIT_BF16, 64, 3e18f, 0.0f},
              {NORMJIT_BF16, 1000, 1e18f, 1e16f},
              {NORMJIT_F32, 256, 1e18f, -1.0f},
              {NORMJIT_F32, 4096, 3e17f, 3e15f}};
  for (const Row &row : rows) {
    normjit_kernel_spec_t spec =
        normjit_kernel_spec_default(NORMJIT_LAYER_NORM, row.cols);
    spec.x_dtype = row.dtype;
    spec.y_dtype = NORMJIT_F32;
    spec.has_gamma = spec.has_beta = 0;
    spec.store_rstd = 1;
    auto kernel = sharedContext().getKernel(spec);
    ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
    tuner::Buffer x(row.dtype, 1, row.cols, row.cols);
    tuner::Buffer y(NORMJIT_F32, 1, row.cols, row.cols);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    for (int64_t c = 0; c < row.cols; ++c)
      x.set(0, c,
            row.spread < 0 ? (c % 2 ? row.mean : -row.mean)
                           : row.mean + row.spread * unit(rng));
    auto [rstd, ref] = runOneRow(**kernel, spec, x, y);
    std::ostringstream where;
    where << (row.dtype == NORMJIT_BF16 ? "bf16 " : "f32 ") << row.cols
          << " columns about " << row.mean;
    EXPECT_NEAR(rstd, ref.rstd[0], 1e-5 * ref.rstd[0]) << where.str();
    for (int64_t c = 0; c < row.cols; ++c) {
      double want = ref.y[static_cast<size_t>(c)];
      ASSERT_NEAR(y.get(0, c), want, 1e-5 * (1 + std::fabs(want)))
          << where.str() << ", column " << c;
    }
  }
}

TEST(KernelOutlierTest, MeanKeepsItsOwnPrecision) {
  // The first three values 1e4, the others normal(0.5, 1): LayerNorm's
  // shift (their median) lies 1e4 from the mean, and the centred sweep
  // corrects the first mean. That correction used to be added to the mean
  // of the shifted values, about -1e4, and rounded at that magnitude: the
  // mean of 70000 columns came out 6e-4 (relative) off, 4e-5 at 4096, and
  // the outputs near it as far (thousands of ulps of a 16-bit y near 0).
  // It is now the mean about the first mean: within 2e-6 of |mean| + 1
  // (the others' spread), in every CPU algorithm.
  for (int64_t cols : {4096, 70000})
    for (const char *text :
         {"#norm.config<cpu>", "#norm.config<cpu, algorithm = welford>",
          "#norm.config<cpu, vector_width = 8, accumulators = 1>",
          "#norm.config<cpu, vector_width = 32, accumulators = 8>"}) {
      normjit_kernel_spec_t spec =
          normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
      spec.store_mean = spec.store_rstd = 1;
      auto config = parseCpuConfig(text, getDefaultCpuConfig(spec));
      ASSERT_TRUE(!!config) << llvm::toString(config.takeError());
      auto kernel = sharedContext().getKernel(spec, *config);
      ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
      const int64_t rows = 2;
      tuner::Buffer x(NORMJIT_F32, rows, cols, cols);
      tuner::Buffer y(NORMJIT_F32, rows, cols, cols);
      std::mt19937 rng(static_cast<unsigned>(cols));
      std::normal_distribution<float> normal(0.5f, 1.0f);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          x.set(r, c, c < 3 ? 1e4f : normal(rng));
      float mean[rows], rstd[rows];
      normjit_run_args_t args =
          tuner::makeRunArgs(spec, rows, x, x, x, x, y, y, mean, rstd);
      llvm::Error error = (*kernel)->run(args);
      ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
      tuner::ReferenceResult ref =
          tuner::reference(spec, rows, x, nullptr, nullptr, nullptr);
      for (int64_t r = 0; r < rows; ++r) {
        std::string where = std::to_string(cols) + " columns, " + text +
                            ", row " + std::to_string(r);
        EXPECT_NEAR(mean[r], ref.mean[r], 2e-6 * (std::fabs(ref.mean[r]) + 1))
            << where;
        EXPECT_NEAR(rstd[r], ref.rstd[r], 1e-6 * ref.rstd[r]) << where;
        for (int64_t c = 0; c < cols; ++c) {
          double want = ref.y[static_cast<size_t>(r * cols + c)];
          ASSERT_NEAR(y.get(r, c), want, 1e-7 + 2e-7 * std::fabs(want))
              << where << ", column " << c;
        }
      }
    }
}

TEST(KernelOverflowTest, VarianceThatOverflowsGivesBeta) {
  // Rows of alternating +-1e30: the variance itself overflows f32, and the
  // contract is rstd = 0, y = beta. Without FMA (SSE and AVX1 targets:
  // the suite runs again at those levels) the centred sweep's
  // sum(d^2) - sumD^2 / n was inf - inf and gave rstd = NaN.
  for (normjit_dtype_t dtype : {NORMJIT_F32, NORMJIT_BF16})
    for (int64_t cols : {7, 33, 100, 1001})
      for (bool welford : {false, true}) {
        normjit_kernel_spec_t spec =
            normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
        spec.x_dtype = dtype;
        spec.y_dtype = NORMJIT_F32;
        spec.has_gamma = 0;
        spec.has_beta = 1;
        spec.store_rstd = 1;
        CpuConfig config = getDefaultCpuConfig(spec);
        config.welford = welford;
        auto kernel = sharedContext().getKernel(spec, config);
        ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
        tuner::Buffer x(dtype, 1, cols, cols);
        tuner::Buffer beta(NORMJIT_F32, 1, cols, cols);
        tuner::Buffer y(NORMJIT_F32, 1, cols, cols);
        for (int64_t c = 0; c < cols; ++c) {
          x.set(0, c, c % 2 ? -1e30f : 1e30f);
          beta.set(0, c, static_cast<float>(c) - 3.5f);
        }
        float rstd = -1;
        normjit_run_args_t args = tuner::makeRunArgs(spec, 1, x, x, x, beta, y,
                                                     y, nullptr, &rstd);
        llvm::Error error = (*kernel)->run(args);
        ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
        std::string where =
            std::string(dtype == NORMJIT_BF16 ? "bf16 " : "f32 ") +
            std::to_string(cols) + " columns" + (welford ? ", welford" : "");
        EXPECT_EQ(rstd, 0.0f) << where;
        for (int64_t c = 0; c < cols; ++c)
          ASSERT_EQ(y.get(0, c), beta.get(0, c)) << where << ", column " << c;
      }
}

TEST(KernelLongRowTest, MillionColumnsInOneLane) {
  // A row of 2^20 all-positive values summed in a single lane: 65536
  // blocks of 16 added into one total lost 1.6e-4 of rstd before the
  // blocks were added with Kahan's compensation; now as exact as the
  // default config. Two-pass LayerNorm too (Welford's running means are
  // not blocked: narrow Welford configs on such rows remain limited).
  const int64_t cols = int64_t(1) << 20;
  for (normjit_op_t op : {NORMJIT_RMS_NORM, NORMJIT_LAYER_NORM}) {
    normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
    spec.store_rstd = 1;
    CpuConfig config;
    config.vectorWidth = 1;
    config.accumulators = 1;
    config.threads = 1;
    auto kernel = sharedContext().getKernel(spec, config);
    ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
    tuner::Buffer x(NORMJIT_F32, 1, cols, cols), y(NORMJIT_F32, 1, cols, cols);
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(1e4f, 1.0f);
    for (int64_t c = 0; c < cols; ++c)
      x.set(0, c, normal(rng));
    auto [rstd, ref] = runOneRow(**kernel, spec, x, y);
    EXPECT_NEAR(rstd, ref.rstd[0], 1e-5 * ref.rstd[0])
        << (op == NORMJIT_RMS_NORM ? "rms" : "layer");
  }
}
