//===- SearchTest.cpp - search space, strategies, measurement, tuning -----===//
//
// Part of normjit. The search space only holds configs that compile and run;
// strategies are deterministic for a seed and find the best of a synthetic
// landscape; a wrong or failing candidate is rejected, never chosen; tuning
// a real spec produces a checked winner and a cache entry; the policies of
// TunedKernels.
//
//===----------------------------------------------------------------------===//

#include "normjit/Conversion/NormToVector/RowGroup.h"
#include "normjit/tuner/Measure.h"
#include "normjit/tuner/SearchSpace.h"
#include "normjit/tuner/Strategy.h"
#include "normjit/tuner/TunedKernels.h"
#include "normjit/tuner/Tuner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <cstdlib>
#include <set>

#include <unistd.h>

using namespace normjit;
using namespace normjit::tuner;

namespace {
normjit_kernel_spec_t layerNormSpec(int64_t cols, bool residual = false) {
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
  spec.x_dtype = spec.y_dtype = NORMJIT_BF16;
  spec.has_gamma = spec.has_beta = 1;
  spec.has_residual = spec.store_sum = residual;
  spec.residual_dtype = spec.sum_dtype = NORMJIT_BF16;
  return spec;
}

/// A LayerNorm (gamma and beta) or RMSNorm (gamma) spec whose row buffers
/// are `dtype` and gamma and beta `params`, with a residual (its sum stored
/// or not) if asked.
normjit_kernel_spec_t normSpec(normjit_op_t op, int64_t cols,
                               normjit_dtype_t dtype, normjit_dtype_t params,
                               bool residual, bool storeSum) {
  normjit_kernel_spec_t s = normjit_kernel_spec_default(op, cols);
  s.x_dtype = s.y_dtype = s.residual_dtype = s.sum_dtype = dtype;
  s.gamma_dtype = s.beta_dtype = params;
  s.has_gamma = 1;
  s.has_beta = op == NORMJIT_LAYER_NORM;
  s.has_residual = residual;
  s.store_sum = residual && storeSum;
  return s;
}

HostCpu avx512Host() {
  HostCpu host;
  host.name = "test";
  host.avx2 = host.avx512f = true;
  host.cores = 4;
  return host;
}
} // namespace

TEST(SearchSpaceTest, CandidatesTryEachSingleChangeOfTheDefaultFirst) {
  // 8192x1024 f32 with a residual: y is 32 MiB, so streaming stores and
  // prefetches are in the space; a budget-limited search must meet them
  // early.
  normjit_kernel_spec_t spec = layerNormSpec(1024, /*residual=*/true);
  std::vector<CpuConfig> space = buildCpuSearchSpace(spec, 8192, avx512Host());
  StrategyOptions strategy;
  strategy.maxCandidates = 24;
  std::vector<CpuConfig> candidates = pickCpuCandidates(space, strategy);
  ASSERT_EQ(candidates.size(), 24u);
  EXPECT_EQ(candidates.front(), space.front());
  size_t neighbours = 0;
  for (const CpuConfig &config : space)
    neighbours += knobsApart(config, space.front()) == 1;
  ASSERT_GE(neighbours, 7u);
  ASSERT_LT(neighbours + 1, candidates.size());
  CpuConfig streaming = space.front();
  streaming.streamingStores = true;
  CpuConfig streamingAhead = streaming;
  streamingAhead.prefetchRows = 2;
  CpuConfig ahead1 = space.front(), ahead2 = space.front();
  ahead1.prefetchRows = 1;
  ahead2.prefetchRows = 2;
  CpuConfig welford = space.front();
  welford.welford = true;
  CpuConfig split = space.front();
  split.fuseResidual = false;
  // In this order: the other fusion form (both forms must be timed),
  // streaming stores, streaming stores with prefetches two rows ahead
  // (the one pair of changes tried early), prefetches, the other
  // algorithm; then the other neighbours. (Rows of 1024 bf16 are not
  // paired by default, and a spec that stores the residual's sum gets
  // no tiles: no other row group.)
  EXPECT_EQ(candidates[1], split);
  EXPECT_EQ(candidates[2], streaming);
  EXPECT_EQ(candidates[3], streamingAhead);
  EXPECT_EQ(candidates[4], ahead1);
  EXPECT_EQ(candidates[5], ahead2);
  EXPECT_EQ(candidates[6], welford);
  for (const CpuConfig &config : space)
    EXPECT_EQ(config.rowGroup, 0) << config.str();
  // Prefetches only in fused kernels (the split form's norm reads the sum
  // the add has just written).
  for (const CpuConfig &config : space)
    EXPECT_TRUE(config.fuseResidual || config.prefetchRows == 0)
        << config.str();
  for (size_t i = 4; i <= neighbours + 1; ++i)
    EXPECT_EQ(knobsApart(candidates[i], space.front()), 1)
        << i << ": " << candidates[i].str();
  // No duplicates; the same strategy gives the same order; exhaustive
  // keeps the whole space.
  for (size_t i = 0; i < candidates.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      EXPECT_FALSE(candidates[i] == candidates[j]) << candidates[i].str();
  EXPECT_EQ(pickCpuCandidates(space, strategy), candidates);
  strategy.kind = StrategyKind::Exhaustive;
  EXPECT_EQ(pickCpuCandidates(space, strategy).size(), space.size());
}

TEST(SearchSpaceTest, GpuSpaceCapsRegistersOfRowsHeldInRegisters) {
  // 2048x4096 bf16 LayerNorm on sm_90: the default holds 32 values a thread
  // in blocks of 256 (ptxas: 62 registers, 4 blocks per multiprocessor).
  // The space has it capped for 1280 threads per multiprocessor (5
  // blocks), not for 1536 (40 registers for 32 values spilled 100-200
  // bytes); the capped default is among the first candidates, after the
  // changes of threads per row and block size.
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 4096);
  spec.x_dtype = spec.y_dtype = spec.gamma_dtype = spec.beta_dtype =
      NORMJIT_BF16;
  GpuTarget target;
  target.ccMajor = 9;
  target.smCount = 132;
  std::vector<GpuConfig> space = buildGpuSearchSpace(spec, 2048, target);
  const GpuConfig &base = space.front();
  ASSERT_EQ(base.blockSize(), 256);
  ASSERT_EQ(base.elementsPerThread, 32);
  EXPECT_EQ(base.minBlocksPerSm, 0);
  GpuConfig capped = base;
  capped.minBlocksPerSm = 5;
  EXPECT_NE(std::find(space.begin(), space.end(), capped), space.end());
  capped.minBlocksPerSm = 6;
  EXPECT_EQ(std::find(space.begin(), space.end(), capped), space.end());
  for (const GpuConfig &config : space) {
    if (config.minBlocksPerSm == 0)
      continue;
    // Only rows in registers, 16 values a thread or more, not persistent;
    // 1280 threads, or 1536 for 24 values or fewer.
    EXPECT_EQ(config.rowStorage, GpuRowStorage::Registers) << config.str();
    EXPECT_FALSE(config.persistent) << config.str();
    EXPECT_GE(config.elementsPerThread, 16) << config.str();
    int64_t threads = config.minBlocksPerSm * config.blockSize();
    EXPECT_TRUE(threads == 1280 ||
                (threads == 1536 && config.elementsPerThread <= 24))
        << config.str();
    GpuConfig uncapped = config;
    uncapped.minBlocksPerSm = 0;
    EXPECT_NE(std::find(space.begin(), space.end(), uncapped), space.end())
        << config.str();
  }
  // On every chip, only caps its multiprocessors run (sm_75 holds 1024
  // threads: none).
  for (auto [major, minor] : {std::pair{7, 5}, {8, 0}, {8, 6}, {8, 9},
                              {9, 0}, {12, 0}}) {
    GpuTarget chip;
    chip.ccMajor = major;
    chip.ccMinor = minor;
    for (int64_t cols : {768, 1024, 4096})
      for (normjit_dtype_t dtype : {NORMJIT_F32, NORMJIT_BF16}) {
        normjit_kernel_spec_t s = spec;
        s.cols = cols;
        s.x_dtype = s.y_dtype = s.gamma_dtype = s.beta_dtype = dtype;
        size_t caps = 0;
        for (const GpuConfig &config : buildGpuSearchSpace(s, 4096, chip)) {
          caps += config.minBlocksPerSm > 0;
          llvm::Error error = checkMinBlocksPerSm(config, chip);
          EXPECT_FALSE(static_cast<bool>(error))
              << chip.chip() << ": " << config.str();
          llvm::consumeError(std::move(error));
        }
        if (major == 7) {
          EXPECT_EQ(caps, 0u) << cols;
        }
      }
  }
  StrategyOptions strategy;
  strategy.maxCandidates = 12;
  std::vector<GpuConfig> candidates = pickGpuCandidates(space, strategy);
  capped.minBlocksPerSm = 5;
  auto at = std::find(candidates.begin(), candidates.end(), capped);
  ASSERT_NE(at, candidates.end());
  for (auto it = candidates.begin() + 1; it != at; ++it)
    EXPECT_TRUE(it->threadsPerRow != base.threadsPerRow ||
                it->blockSize() != base.blockSize())
        << it->str();
}

TEST(SearchSpaceTest, GpuCandidatesTryEachSingleChangeOfTheDefaultFirst) {
  // 2048x4096 bf16 RMSNorm on an H200-like sm_90: the default holds the
  // row in 128 threads of four vectors; 256 threads of two vectors (one
  // move: elements per thread follow) ran 13-17% faster there, and a
  // random draw of the space missed it.
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 4096);
  spec.x_dtype = spec.y_dtype = spec.gamma_dtype = NORMJIT_BF16;
  spec.has_gamma = 1;
  GpuTarget target;
  target.ccMajor = 9;
  target.smCount = 132;
  std::vector<GpuConfig> space = buildGpuSearchSpace(spec, 2048, target);
  StrategyOptions strategy;
  strategy.maxCandidates = 12;
  std::vector<GpuConfig> candidates = pickGpuCandidates(space, strategy);
  ASSERT_EQ(candidates.size(), 12u);
  const GpuConfig &base = space.front();
  EXPECT_EQ(candidates.front(), base);
  ASSERT_EQ(base.rowStorage, GpuRowStorage::Registers);
  size_t neighbours = 0;
  for (const GpuConfig &config : space)
    neighbours += knobsApart(config, base) == 1;
  ASSERT_GE(neighbours, 4u);
  ASSERT_LT(neighbours, space.size());
  for (size_t i = 1; i <= std::min(neighbours, candidates.size() - 1); ++i)
    EXPECT_EQ(knobsApart(candidates[i], base), 1)
        << i << ": " << candidates[i].str();
  // Threads per row first: twice the default's, the row still in
  // registers (half the default's would need 64 registers of the row per
  // thread: the row then loops, two knobs away).
  GpuConfig wider = base;
  wider.threadsPerRow *= 2;
  wider.rowsPerBlock =
      std::max<int64_t>(1, base.blockSize() / wider.threadsPerRow);
  wider.elementsPerThread /= 2;
  EXPECT_EQ(candidates[1], wider) << candidates[1].str();
  // No duplicates; the same strategy gives the same order; exhaustive
  // keeps the whole space.
  for (size_t i = 0; i < candidates.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      EXPECT_FALSE(candidates[i] == candidates[j]) << candidates[i].str();
  EXPECT_EQ(pickGpuCandidates(space, strategy), candidates);
  strategy.kind = StrategyKind::Exhaustive;
  EXPECT_EQ(pickGpuCandidates(space, strategy).size(), space.size());
}

TEST(SearchSpaceTest, DefaultFirstAllValidNoDuplicates) {
  normjit_kernel_spec_t spec = layerNormSpec(1024, /*residual=*/true);
  std::vector<CpuConfig> space = buildCpuSearchSpace(spec, 4096, avx512Host());
  ASSERT_FALSE(space.empty());
  EXPECT_EQ(space.front(), getDefaultCpuConfig(spec, avx512Host()));
  for (size_t i = 0; i < space.size(); ++i) {
    EXPECT_FALSE(!!validateCpuConfig(space[i])) << space[i].str();
    for (size_t j = 0; j < i; ++j)
      EXPECT_FALSE(space[i] == space[j]) << space[i].str();
    EXPECT_LE(space[i].vectorWidth, 32);
  }
  bool fused = false, split = false, welford = false;
  for (const CpuConfig &config : space) {
    fused |= config.fuseResidual;
    split |= !config.fuseResidual;
    welford |= config.welford;
  }
  EXPECT_TRUE(fused && split && welford);
}

TEST(SearchSpaceTest, ConstraintsFollowTheSpec) {
  // RMSNorm has no Welford variant, no residual: no split form; a narrow
  // row has no group of vectors wider than itself.
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 24);
  for (const CpuConfig &config : buildCpuSearchSpace(spec, 16, avx512Host())) {
    EXPECT_FALSE(config.welford);
    EXPECT_TRUE(config.fuseResidual);
    EXPECT_TRUE(config.accumulators == 1 ||
                config.vectorWidth * config.accumulators <= 24)
        << config.str();
    EXPECT_FALSE(config.streamingStores);
    EXPECT_EQ(config.prefetchRows, 0);
  }
  // Streaming stores and prefetches only for outputs and inputs larger
  // than the threshold; prefetches 0, 1 and 2 rows ahead.
  bool streaming = false;
  std::set<int64_t> prefetch;
  for (const CpuConfig &config :
       buildCpuSearchSpace(spec, 1 << 22, avx512Host(), 1 << 20)) {
    streaming |= config.streamingStores;
    prefetch.insert(config.prefetchRows);
  }
  EXPECT_TRUE(streaming);
  EXPECT_EQ(prefetch, (std::set<int64_t>{0, 1, 2}));
  // A residual counts as input: 2^15 rows of 24 f32 are 3 MiB of x alone,
  // 6 MiB with the residual, over a 4 MiB threshold.
  normjit_kernel_spec_t residual = spec;
  residual.has_residual = 1;
  residual.residual_dtype = NORMJIT_F32;
  auto hasPrefetch = [](const std::vector<CpuConfig> &space) {
    return std::any_of(space.begin(), space.end(), [](const CpuConfig &c) {
      return c.prefetchRows > 0;
    });
  };
  EXPECT_FALSE(hasPrefetch(buildCpuSearchSpace(spec, 1 << 15, avx512Host())));
  EXPECT_TRUE(
      hasPrefetch(buildCpuSearchSpace(residual, 1 << 15, avx512Host())));
  // Welford only where each lane takes at most 4096 values of a row (its
  // running sums lose precision beyond): at 65536 columns, 16 lanes or
  // more; at 1024, any.
  for (int64_t cols : {1024, 65536}) {
    normjit_kernel_spec_t layerNorm =
        normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
    int64_t fewestLanes = INT64_MAX;
    for (const CpuConfig &config :
         buildCpuSearchSpace(layerNorm, 64, avx512Host()))
      if (config.welford)
        fewestLanes =
            std::min(fewestLanes, config.vectorWidth * config.accumulators);
    EXPECT_EQ(fewestLanes, cols == 1024 ? 4 : 16) << cols << " columns";
  }
}

TEST(SearchSpaceTest, RowGroupsForInputsBeyondTheCache) {
  auto groupsOf = [](const std::vector<CpuConfig> &space) {
    std::set<int64_t> groups;
    for (const CpuConfig &config : space) {
      groups.insert(config.rowGroup);
      // Only configs meant for inputs beyond the cache change the group;
      // tiles only with prefetches.
      if (config.rowGroup != 0) {
        EXPECT_TRUE(config.streamingStores || config.prefetchRows > 0)
            << config.str();
      }
      if (config.rowGroup == 8) {
        EXPECT_GT(config.prefetchRows, 0) << config.str();
        EXPECT_EQ(config.rowsPerTask % 8, 0) << config.str();
      }
    }
    return groups;
  };
  auto f32 = [](normjit_op_t op, int64_t cols) {
    normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
    spec.has_gamma = 1;
    spec.has_beta = op == NORMJIT_LAYER_NORM;
    return spec;
  };
  // 4096 f32 columns with gamma and beta (48 KiB): the default pairs the
  // rows; single rows and tiles of 8 are tried.
  normjit_kernel_spec_t ln4096 = f32(NORMJIT_LAYER_NORM, 4096);
  std::vector<CpuConfig> space =
      buildCpuSearchSpace(ln4096, 2048, avx512Host());
  EXPECT_EQ(groupsOf(space), (std::set<int64_t>{0, 1, 8}));
  // ... early: right after streaming stores with prefetches two rows
  // ahead, the same one row ahead in single rows, then in tiles.
  StrategyOptions strategy;
  strategy.maxCandidates = 24;
  std::vector<CpuConfig> candidates = pickCpuCandidates(space, strategy);
  CpuConfig single = space.front();
  single.streamingStores = true;
  single.prefetchRows = 1;
  single.rowGroup = 1;
  CpuConfig tiles = single;
  tiles.rowGroup = 8;
  tiles.rowsPerTask = (tiles.rowsPerTask + 7) / 8 * 8; // whole groups
  ASSERT_GE(candidates.size(), 5u);
  EXPECT_EQ(candidates[3], single) << candidates[3].str();
  EXPECT_EQ(candidates[4], tiles) << candidates[4].str();
  // RMSNorm of 4096 f32 (gamma and the row: 32 KiB, not over it): the
  // default already takes single rows; tiles are tried.
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(f32(NORMJIT_RMS_NORM, 4096), 8192,
                                         avx512Host())),
            (std::set<int64_t>{0, 8}));
  // Inputs within the cache: the default alone.
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(ln4096, 16, avx512Host())),
            (std::set<int64_t>{0}));
  // Without gamma and beta nothing pairs.
  normjit_kernel_spec_t bare = ln4096;
  bare.has_gamma = bare.has_beta = 0;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(bare, 8192, avx512Host())),
            (std::set<int64_t>{0, 8}));
  // A residual whose sum is stored: single rows, no tiles; without the
  // stored sum, tiles again.
  normjit_kernel_spec_t residual = ln4096;
  residual.has_residual = residual.store_sum = 1;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(residual, 2048, avx512Host())),
            (std::set<int64_t>{0, 1}));
  residual.store_sum = 0;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(residual, 2048, avx512Host())),
            (std::set<int64_t>{0, 1, 8}));
}

TEST(SearchSpaceTest, RowsAwareDefaultGroupsRowsWithinTheCache) {
  HostCpu host = avx512Host();
  auto spec = normSpec;
  auto groupOf = [&](const normjit_kernel_spec_t &s, int64_t rows) {
    CpuConfig config = getDefaultCpuConfigForRows(s, rows, host);
    // Only the grouping (and the task size, to whole groups) differs from
    // the spec's default.
    CpuConfig plain = getDefaultCpuConfig(s, host);
    CpuConfig same = config;
    same.rowGroup = plain.rowGroup;
    same.rowsPerTask = plain.rowsPerTask;
    EXPECT_EQ(same, plain) << config.str();
    if (config.rowGroup > 0) {
      EXPECT_EQ(config.rowsPerTask % config.rowGroup, 0) << config.str();
      EXPECT_GE(config.rowsPerTask, plain.rowsPerTask) << config.str();
      EXPECT_LT(config.rowsPerTask - plain.rowsPerTask, config.rowGroup);
    }
    // The tuner tries it.
    std::vector<CpuConfig> space = buildCpuSearchSpace(s, rows, host);
    EXPECT_NE(std::find(space.begin(), space.end(), config), space.end())
        << config.str() << " at " << rows << " rows";
    return config.rowGroup;
  };
  auto ln = [&](int64_t cols, normjit_dtype_t dtype,
                normjit_dtype_t params) {
    return spec(NORMJIT_LAYER_NORM, cols, dtype, params, false, false);
  };
  // bf16 rows (bf16 or f32 gamma and beta) and f16 rows: tiles of 8 from
  // 2 rows up to 4 MiB of x (2048 rows of 1024 columns; 4096 rows take
  // 8 MiB), while 8 rows fit in 32 KiB (2048 columns).
  for (normjit_dtype_t params : {NORMJIT_BF16, NORMJIT_F32}) {
    EXPECT_EQ(groupOf(ln(768, NORMJIT_BF16, params), 1), 0);
    EXPECT_EQ(groupOf(ln(768, NORMJIT_BF16, params), 2), 8);
    EXPECT_EQ(groupOf(ln(1024, NORMJIT_BF16, params), 2048), 8);
    EXPECT_EQ(groupOf(ln(1024, NORMJIT_BF16, params), 1500), 8);
    EXPECT_EQ(groupOf(ln(1024, NORMJIT_BF16, params), 2049), 0);
    EXPECT_EQ(groupOf(ln(2048, NORMJIT_BF16, params), 16), 8);
    EXPECT_EQ(groupOf(ln(2049, NORMJIT_BF16, params), 16), 0);
  }
  EXPECT_EQ(groupOf(ln(768, NORMJIT_F16, NORMJIT_F16), 512), 8);
  // The default's pairs stand (4096 bf16 columns with f32 gamma and beta
  // overflow the L1).
  EXPECT_EQ(groupOf(ln(4096, NORMJIT_BF16, NORMJIT_F32), 16), 0);
  // f32 rows: up to 16 rows of up to 1024 columns.
  EXPECT_EQ(groupOf(ln(768, NORMJIT_F32, NORMJIT_F32), 16), 8);
  EXPECT_EQ(groupOf(ln(768, NORMJIT_F32, NORMJIT_F32), 9), 8);
  EXPECT_EQ(groupOf(ln(768, NORMJIT_F32, NORMJIT_F32), 17), 0);
  EXPECT_EQ(groupOf(ln(1025, NORMJIT_F32, NORMJIT_F32), 8), 0);
  // RMSNorm alike.
  EXPECT_EQ(groupOf(spec(NORMJIT_RMS_NORM, 1024, NORMJIT_BF16, NORMJIT_BF16,
                         false, false),
                    64),
            8);
  // A residual not stored: tiles while 8 rows of x and residual fit in
  // 32 KiB, 16-bit rows only.
  EXPECT_EQ(groupOf(spec(NORMJIT_LAYER_NORM, 1024, NORMJIT_BF16, NORMJIT_BF16,
                         true, false),
                    64),
            8);
  EXPECT_EQ(groupOf(spec(NORMJIT_LAYER_NORM, 2048, NORMJIT_BF16, NORMJIT_BF16,
                         true, false),
                    64),
            0);
  EXPECT_EQ(groupOf(spec(NORMJIT_LAYER_NORM, 256, NORMJIT_F32, NORMJIT_F32,
                         true, false),
                    8),
            0);
  // The sum stored: pairs of 16-bit rows of up to 1024 columns, never
  // tiles; f32 rows alone.
  EXPECT_EQ(groupOf(spec(NORMJIT_LAYER_NORM, 1024, NORMJIT_BF16, NORMJIT_BF16,
                         true, true),
                    64),
            2);
  EXPECT_EQ(groupOf(spec(NORMJIT_LAYER_NORM, 1025, NORMJIT_BF16, NORMJIT_BF16,
                         true, true),
                    64),
            0);
  EXPECT_EQ(groupOf(spec(NORMJIT_RMS_NORM, 768, NORMJIT_BF16, NORMJIT_F32,
                         true, true),
                    3),
            2);
  EXPECT_EQ(groupOf(spec(NORMJIT_LAYER_NORM, 4096, NORMJIT_BF16, NORMJIT_BF16,
                         true, true),
                    64),
            0);
  EXPECT_EQ(groupOf(spec(NORMJIT_LAYER_NORM, 768, NORMJIT_F32, NORMJIT_F32,
                         true, true),
                    8),
            0);
  // Neither gamma nor beta: nothing shared, nothing measured.
  normjit_kernel_spec_t bare = ln(768, NORMJIT_BF16, NORMJIT_BF16);
  bare.has_gamma = bare.has_beta = 0;
  EXPECT_EQ(groupOf(bare, 64), 0);
  // Other x86 levels: 16-bit rows from AVX2 on, f32 rows with AVX-512.
  HostCpu avx2 = host;
  avx2.avx512f = false;
  HostCpu sse = avx2;
  sse.avx2 = false;
  normjit_kernel_spec_t bf16Rows = ln(768, NORMJIT_BF16, NORMJIT_BF16);
  normjit_kernel_spec_t f32Rows = ln(768, NORMJIT_F32, NORMJIT_F32);
  EXPECT_EQ(getDefaultCpuConfigForRows(bf16Rows, 64, avx2).rowGroup, 8);
  EXPECT_EQ(getDefaultCpuConfigForRows(f32Rows, 16, avx2).rowGroup, 0);
  EXPECT_EQ(getDefaultCpuConfigForRows(bf16Rows, 64, sse),
            getDefaultCpuConfig(bf16Rows, sse));
  // Row counts the runtime rejects, specs it rejects: the spec's default.
  normjit_kernel_spec_t tiled = ln(768, NORMJIT_BF16, NORMJIT_BF16);
  EXPECT_EQ(getDefaultCpuConfigForRows(tiled, 0, host),
            getDefaultCpuConfig(tiled, host));
  EXPECT_EQ(getDefaultCpuConfigForRows(tiled, -5, host),
            getDefaultCpuConfig(tiled, host));
  EXPECT_EQ(getDefaultCpuConfigForRows(tiled, INT64_MAX, host),
            getDefaultCpuConfig(tiled, host));
  normjit_kernel_spec_t invalid = tiled;
  invalid.cols = 0;
  EXPECT_EQ(getDefaultCpuConfigForRows(invalid, 64, host).rowGroup, 0);
  invalid = tiled;
  invalid.x_dtype = static_cast<normjit_dtype_t>(77);
  EXPECT_EQ(getDefaultCpuConfigForRows(invalid, 64, host).rowGroup, 0);
}

TEST(SearchSpaceTest, RowsAwareDefaultStreamsFarBeyondTheCache) {
  // Streaming stores and prefetches one row ahead (single rows where the
  // default pairs them), nothing else changed, where a call of the row
  // bucket's rows moves at least 64 MiB and twice the last-level cache,
  // and y's rows keep the streaming alignment.
  HostCpu host = avx512Host();
  host.lastLevelCacheBytes = int64_t(32) << 20;
  auto streams = [&](const normjit_kernel_spec_t &s, int64_t rows,
                     const HostCpu &on) {
    CpuConfig config = getDefaultCpuConfigForRows(s, rows, on);
    CpuConfig plain = getDefaultCpuConfig(s, on);
    if (!config.streamingStores) {
      EXPECT_EQ(config.prefetchRows, 0) << config.str();
    } else {
      plain.streamingStores = true;
      plain.prefetchRows = 1;
      if (getDefaultRowGroup(s) == 2)
        plain.rowGroup = 1;
      EXPECT_EQ(config, plain) << config.str();
      // The tuner's space has it, at the bottom of the bucket too.
      std::vector<CpuConfig> space = buildCpuSearchSpace(s, rows, on);
      EXPECT_NE(std::find(space.begin(), space.end(), config), space.end())
          << config.str() << " at " << rows << " rows";
    }
    return config.streamingStores;
  };
  // LayerNorm f32, 1024 columns: 8 bytes an element (x and y).
  normjit_kernel_spec_t ln = normSpec(NORMJIT_LAYER_NORM, 1024, NORMJIT_F32,
                                      NORMJIT_F32, false, false);
  EXPECT_FALSE(streams(ln, 4096, host));  // 32 MiB
  EXPECT_TRUE(streams(ln, 8192, host));   // 64 MiB
  EXPECT_TRUE(streams(ln, 4097, host));   // the bucket of 8192 rows
  EXPECT_TRUE(streams(ln, 65536, host));
  EXPECT_FALSE(streams(ln, 1, host));
  // Twice a larger cache; an unknown cache is taken as 32 MiB; a small
  // cache does not go below 64 MiB.
  HostCpu large = host;
  large.lastLevelCacheBytes = int64_t(64) << 20;
  EXPECT_FALSE(streams(ln, 8192, large));
  EXPECT_TRUE(streams(ln, 16384, large));
  HostCpu unknown = host;
  unknown.lastLevelCacheBytes = 0;
  EXPECT_FALSE(streams(ln, 4096, unknown));
  EXPECT_TRUE(streams(ln, 8192, unknown));
  HostCpu small = host;
  small.lastLevelCacheBytes = int64_t(2) << 20;
  EXPECT_FALSE(streams(ln, 4096, small));
  EXPECT_TRUE(streams(ln, 8192, small));
  // The residual and the stored sum count: bf16 x, residual, y and sum
  // are 8 bytes an element; without the stored sum, 6.
  normjit_kernel_spec_t residual = normSpec(
      NORMJIT_RMS_NORM, 1024, NORMJIT_BF16, NORMJIT_BF16, true, true);
  EXPECT_TRUE(streams(residual, 8192, host));
  residual.store_sum = 0;
  EXPECT_FALSE(streams(residual, 8192, host));
  EXPECT_TRUE(streams(residual, 16384, host));
  // Mixed dtypes: f32 x, residual and sum, a bf16 y (14 bytes an
  // element), at the bottom of the smallest bucket that streams.
  normjit_kernel_spec_t mixed = normSpec(NORMJIT_LAYER_NORM, 4800, NORMJIT_F32,
                                         NORMJIT_F32, true, true);
  mixed.y_dtype = NORMJIT_BF16;
  EXPECT_FALSE(streams(mixed, 512, host));  // 32.8 MiB
  EXPECT_TRUE(streams(mixed, 513, host));   // the bucket of 1024 rows
  // Without AVX2, without gamma and beta: streaming all the same (groups
  // need both).
  HostCpu sse = host;
  sse.avx2 = sse.avx512f = false;
  EXPECT_TRUE(streams(ln, 8192, sse));
  normjit_kernel_spec_t bare = ln;
  bare.has_gamma = bare.has_beta = 0;
  EXPECT_TRUE(streams(bare, 8192, host));
  // Rows of y that are not whole streaming vectors (64 bytes here; 32
  // with AVX2) stream from their first aligned column...
  normjit_kernel_spec_t odd = normSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_F32,
                                       NORMJIT_F32, false, false);
  HostCpu avx2 = host;
  avx2.avx512f = false;
  EXPECT_TRUE(streams(odd, 65536, host));
  EXPECT_TRUE(streams(odd, 65536, avx2));
  odd.cols = 777;
  EXPECT_TRUE(streams(odd, 65536, avx2));
  EXPECT_TRUE(streams(odd, 65536, host));
  // ... except bf16 rows whose output sweep reads gamma and beta from
  // copies in the paired order (at most 8 KiB of f32 copies): there only
  // aligned rows stream, so only whole vectors do by default.
  normjit_kernel_spec_t paired = normSpec(
      NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16, false, false);
  paired.gamma_dtype = paired.beta_dtype = NORMJIT_BF16;
  EXPECT_EQ(getDefaultCpuConfigForRows(paired, 65536, host),
            getDefaultCpuConfig(paired, host));
  paired.cols = 1024;
  EXPECT_TRUE(streams(paired, 65536, host));
  paired.cols = 2000; // 16 KiB of copies: none, any row streams
  EXPECT_TRUE(streams(paired, 65536, host));
  // Rows the default pairs (gamma, beta and a row of 4096 f32 columns
  // overflow 32 KiB) are normalized one by one.
  normjit_kernel_spec_t wide = normSpec(NORMJIT_LAYER_NORM, 4096, NORMJIT_F32,
                                        NORMJIT_F32, false, false);
  ASSERT_EQ(getDefaultRowGroup(wide), 2);
  EXPECT_TRUE(streams(wide, 2048, host));
  EXPECT_EQ(getDefaultCpuConfigForRows(wide, 2048, host).rowGroup, 1);
  // Calls whose bytes overflow (which the runtime refuses): the spec's
  // default.
  EXPECT_EQ(getDefaultCpuConfigForRows(ln, INT64_MAX / 4096, host),
            getDefaultCpuConfig(ln, host));
  EXPECT_TRUE(streams(ln, INT64_MAX / 8192, host));
  // The host's own cache, as detected (0 where sysfs says nothing).
  EXPECT_GE(getHostCpu().lastLevelCacheBytes, 0);
}

TEST(SearchSpaceTest, ShortRowsGoInLanes) {
  HostCpu host = avx512Host();
  auto spec = [](normjit_op_t op, int64_t cols, normjit_dtype_t dtype) {
    return normSpec(op, cols, dtype, dtype, false, false);
  };
  // The spec's default: 16-bit rows of up to 128 columns in groups of 16,
  // up to 256 in groups of 8; f32 LayerNorm rows of up to 32 columns and
  // RMSNorm ones of up to 16 in groups of 16; others as before.
  EXPECT_EQ(getDefaultRowGroup(spec(NORMJIT_RMS_NORM, 1, NORMJIT_BF16)),
            kLaneRowGroup);
  EXPECT_EQ(getDefaultRowGroup(spec(NORMJIT_RMS_NORM, 128, NORMJIT_F16)),
            kLaneRowGroup);
  EXPECT_EQ(getDefaultRowGroup(spec(NORMJIT_LAYER_NORM, 256, NORMJIT_BF16)), 8);
  EXPECT_EQ(getDefaultRowGroup(spec(NORMJIT_LAYER_NORM, 257, NORMJIT_BF16)), 1);
  EXPECT_EQ(getDefaultRowGroup(spec(NORMJIT_LAYER_NORM, 32, NORMJIT_F32)),
            kLaneRowGroup);
  EXPECT_EQ(getDefaultRowGroup(spec(NORMJIT_LAYER_NORM, 33, NORMJIT_F32)), 1);
  EXPECT_EQ(getDefaultRowGroup(spec(NORMJIT_RMS_NORM, 16, NORMJIT_F32)),
            kLaneRowGroup);
  EXPECT_EQ(getDefaultRowGroup(spec(NORMJIT_RMS_NORM, 17, NORMJIT_F32)), 1);
  // The default for the row count: f32 rows without a residual within the
  // caches (4 MiB of x) in groups of 16, LayerNorm up to 256 columns,
  // RMSNorm up to 96; beyond, the spec's default.
  auto forRows = [&](const normjit_kernel_spec_t &s, int64_t rows) {
    return getDefaultCpuConfigForRows(s, rows, host).rowGroup;
  };
  EXPECT_EQ(forRows(spec(NORMJIT_LAYER_NORM, 256, NORMJIT_F32), 4096),
            kLaneRowGroup);
  EXPECT_EQ(forRows(spec(NORMJIT_LAYER_NORM, 256, NORMJIT_F32), 8192), 0);
  EXPECT_EQ(forRows(spec(NORMJIT_LAYER_NORM, 257, NORMJIT_F32), 64), 0);
  EXPECT_EQ(forRows(spec(NORMJIT_RMS_NORM, 96, NORMJIT_F32), 64),
            kLaneRowGroup);
  EXPECT_EQ(forRows(spec(NORMJIT_RMS_NORM, 97, NORMJIT_F32), 64), 0);
  EXPECT_EQ(forRows(normSpec(NORMJIT_RMS_NORM, 64, NORMJIT_F32, NORMJIT_F32,
                             true, true),
                    64),
            0);
  EXPECT_EQ(forRows(spec(NORMJIT_RMS_NORM, 64, NORMJIT_F32), 1), 0);
  CpuConfig lanes = getDefaultCpuConfigForRows(
      spec(NORMJIT_LAYER_NORM, 100, NORMJIT_F32), 1000, host);
  EXPECT_EQ(lanes.rowsPerTask % kLaneRowGroup, 0) << lanes.str();
  // The tuner's space: groups of 16 for rows of up to 512 columns (not
  // with Welford's algorithm), single rows where the default takes lanes;
  // every config valid.
  for (int64_t cols : {16, 100, 512, 513})
    for (normjit_dtype_t dtype : {NORMJIT_F32, NORMJIT_BF16}) {
      normjit_kernel_spec_t s = spec(NORMJIT_LAYER_NORM, cols, dtype);
      std::vector<CpuConfig> space = buildCpuSearchSpace(s, 4096, host);
      bool sixteen = false, single = false;
      for (const CpuConfig &config : space) {
        EXPECT_FALSE(!!validateCpuConfig(config)) << config.str();
        sixteen |= config.rowGroup == kLaneRowGroup;
        single |= config.rowGroup == 1;
        if (config.rowGroup == kLaneRowGroup) {
          EXPECT_FALSE(config.welford) << config.str();
          EXPECT_EQ(config.rowsPerTask % kLaneRowGroup, 0) << config.str();
        }
      }
      EXPECT_EQ(sixteen, cols <= kMaxLaneStatsColumns) << cols;
      EXPECT_EQ(single, getDefaultRowGroup(s) > 2) << cols;
    }
}

TEST(SearchSpaceTest, RowsAwareDefaultKernelsMatchTheReference) {
  // The host's own default for each row count, compiled and run against
  // the fp64 reference: row counts around the groups (a last group of 1-7
  // rows, of 1 row in a pair), on all cores and on one thread, 16-bit and
  // f32 rows, with a residual stored or not, 16-bit gamma widened within
  // the first row's sweep.
  Context context;
  auto spec = [](normjit_op_t op, int64_t cols, normjit_dtype_t dtype,
                 normjit_dtype_t params, bool residual, bool storeSum) {
    normjit_kernel_spec_t s =
        normSpec(op, cols, dtype, params, residual, storeSum);
    s.store_rstd = 1;
    return s;
  };
  const normjit_kernel_spec_t specs[] = {
      spec(NORMJIT_LAYER_NORM, 768, NORMJIT_BF16, NORMJIT_BF16, false, false),
      spec(NORMJIT_RMS_NORM, 1024, NORMJIT_BF16, NORMJIT_F32, true, true),
      spec(NORMJIT_LAYER_NORM, 100, NORMJIT_F16, NORMJIT_F16, true, false),
      spec(NORMJIT_LAYER_NORM, 257, NORMJIT_F32, NORMJIT_F32, false, false),
      spec(NORMJIT_RMS_NORM, 64, NORMJIT_BF16, NORMJIT_BF16, false, false)};
  int grouped = 0;
  for (const normjit_kernel_spec_t &s : specs)
    for (int64_t rows : {1, 2, 3, 7, 9, 16, 17, 33, 100})
      for (int threads : {0, 1}) {
        CpuConfig config = getDefaultCpuConfigForRows(s, rows);
        config.threads = threads;
        // (Short rows: the lowering's own default groups them, in lanes.)
        grouped += config.rowGroup > 0 ||
                   (config.rowGroup == 0 && getDefaultRowGroup(s) > 2);
        auto kernel = context.getKernel(s, config);
        ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
        Workload workload(s, rows, static_cast<unsigned>(rows * 31 + threads));
        llvm::Error error = workload.check(**kernel);
        EXPECT_FALSE(!!error) << config.str() << " on " << rows << " rows of "
                              << s.cols << ": "
                              << llvm::toString(std::move(error));
      }
  // (On a host without AVX2 every config is the spec's default.)
  if (getHostCpu().avx2) {
    EXPECT_GT(grouped, 40);
  }
}

TEST(SearchSpaceTest, RowGroupsForInputsWithinTheCache) {
  auto groupsOf = [](const std::vector<CpuConfig> &space) {
    std::set<int64_t> groups;
    for (const CpuConfig &config : space)
      groups.insert(config.rowGroup);
    return groups;
  };
  // 512 rows of 768 bf16 with bf16 gamma and beta (768 KiB of x): the
  // default takes single rows; every config is tried in pairs and in tiles
  // of 8 too, in tasks of whole groups, and the default so right after it.
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 768);
  spec.x_dtype = spec.y_dtype = spec.gamma_dtype = spec.beta_dtype =
      NORMJIT_BF16;
  spec.has_gamma = spec.has_beta = 1;
  std::vector<CpuConfig> space = buildCpuSearchSpace(spec, 512, avx512Host());
  EXPECT_EQ(groupsOf(space), (std::set<int64_t>{0, 2, 8}));
  std::map<int64_t, size_t> perGroup;
  for (const CpuConfig &config : space) {
    ++perGroup[config.rowGroup];
    if (config.rowGroup == 0)
      continue;
    EXPECT_FALSE(config.streamingStores || config.prefetchRows > 0)
        << config.str();
    EXPECT_EQ(config.rowsPerTask % config.rowGroup, 0) << config.str();
    // The config it groups is in the space, its rows per task perhaps
    // rounded up to whole groups.
    bool found = false;
    for (int64_t fewer = 0; fewer < config.rowGroup; ++fewer) {
      CpuConfig ungrouped = config;
      ungrouped.rowGroup = 0;
      ungrouped.rowsPerTask -= fewer;
      found |= std::find(space.begin(), space.end(), ungrouped) != space.end();
    }
    EXPECT_TRUE(found) << config.str();
  }
  EXPECT_EQ(perGroup[2], perGroup[0]);
  EXPECT_EQ(perGroup[8], perGroup[0]);
  StrategyOptions strategy;
  strategy.maxCandidates = 24;
  std::vector<CpuConfig> candidates = pickCpuCandidates(space, strategy);
  ASSERT_GE(candidates.size(), 3u);
  auto grouped = [&](int64_t group) {
    CpuConfig config = space.front();
    config.rowGroup = group;
    config.rowsPerTask = (config.rowsPerTask + group - 1) / group * group;
    return config;
  };
  EXPECT_EQ(candidates[1], grouped(2)) << candidates[1].str();
  EXPECT_EQ(candidates[2], grouped(8)) << candidates[2].str();
  for (int64_t group : {2, 8})
    EXPECT_EQ(std::count(candidates.begin(), candidates.end(), grouped(group)),
              1);
  // Pairs only where 8 rows of x overflow 32 KiB: 512 rows of 4096 bf16
  // (8 KiB a row, 4 MiB in all, the threshold), or of 2048 f32.
  normjit_kernel_spec_t wideBf16 = spec;
  wideBf16.cols = 4096;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(wideBf16, 512, avx512Host())),
            (std::set<int64_t>{0, 2}));
  normjit_kernel_spec_t f32Rows =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 2048);
  f32Rows.has_gamma = f32Rows.has_beta = 1;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(f32Rows, 64, avx512Host())),
            (std::set<int64_t>{0, 2}));
  f32Rows.cols = 1024;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(f32Rows, 64, avx512Host())),
            (std::set<int64_t>{0, 2, 8}));
  // Pairs only when the spec stores the residual's sum (no tiles then).
  normjit_kernel_spec_t residual = spec;
  residual.has_residual = residual.store_sum = 1;
  residual.residual_dtype = residual.sum_dtype = NORMJIT_BF16;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(residual, 512, avx512Host())),
            (std::set<int64_t>{0, 2}));
  // Nothing for one row, nor without gamma and beta, nor where the
  // default pairs already (4096 f32 with gamma and beta), nor for inputs
  // past the threshold (8192 rows of 1024 bf16: 16 MiB).
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(spec, 1, avx512Host())),
            (std::set<int64_t>{0}));
  normjit_kernel_spec_t bare = spec;
  bare.has_gamma = bare.has_beta = 0;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(bare, 512, avx512Host())),
            (std::set<int64_t>{0}));
  normjit_kernel_spec_t wide =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 4096);
  wide.has_gamma = wide.has_beta = 1;
  EXPECT_EQ(groupsOf(buildCpuSearchSpace(wide, 16, avx512Host())),
            (std::set<int64_t>{0}));
  normjit_kernel_spec_t large = spec;
  large.cols = 1024;
  for (const CpuConfig &config :
       buildCpuSearchSpace(large, 8192, avx512Host()))
    EXPECT_TRUE(config.rowGroup == 0 || config.prefetchRows > 0)
        << config.str();
}

TEST(StrategyTest, DeterministicForASeed) {
  auto landscape = [](size_t i, int effort) -> std::optional<double> {
    return static_cast<double>((i * 7919) % 101) + 0.01 * effort;
  };
  for (StrategyKind kind :
       {StrategyKind::Random, StrategyKind::SuccessiveHalving}) {
    StrategyOptions options;
    options.kind = kind;
    options.seed = 42;
    options.maxCandidates = 20;
    SearchResult a = search(500, options, landscape, [] { return false; });
    SearchResult b = search(500, options, landscape, [] { return false; });
    ASSERT_EQ(a.ranking, b.ranking) << getStrategyName(kind);
    EXPECT_EQ(a.evaluations, b.evaluations);
    options.seed = 43;
    SearchResult c = search(500, options, landscape, [] { return false; });
    EXPECT_NE(a.ranking, c.ranking) << getStrategyName(kind);
    std::vector<size_t> pool = drawCandidates(500, options);
    EXPECT_EQ(pool.size(), 20u);
    EXPECT_EQ(pool.front(), 0u); // the default is always measured
  }
}

TEST(StrategyTest, FindsTheBestAndSkipsFailures) {
  // Candidate 5 is best; multiples of 3 fail (they would score highest).
  auto landscape = [](size_t i, int) -> std::optional<double> {
    if (i % 3 == 0 && i != 0)
      return std::nullopt;
    return i == 5 ? 100.0 : static_cast<double>(i % 7);
  };
  for (StrategyKind kind : {StrategyKind::Exhaustive, StrategyKind::Random,
                            StrategyKind::SuccessiveHalving}) {
    StrategyOptions options;
    options.kind = kind;
    options.maxCandidates = 40;
    SearchResult result = search(30, options, landscape, [] { return false; });
    ASSERT_FALSE(result.ranking.empty());
    EXPECT_EQ(result.ranking.front().first, 5u) << getStrategyName(kind);
    for (const auto &[index, score] : result.ranking)
      EXPECT_TRUE(index % 3 != 0 || index == 0);
    EXPECT_FALSE(result.failed.empty());
  }
}

TEST(StrategyTest, HalvingMeasuresFewCarefully) {
  size_t careful = 0, quick = 0;
  auto landscape = [&](size_t i, int effort) -> std::optional<double> {
    (effort == 2 ? careful : quick)++;
    return static_cast<double>(i);
  };
  StrategyOptions options;
  options.maxCandidates = 30;
  options.finalists = 3;
  SearchResult result = search(100, options, landscape, [] { return false; });
  EXPECT_EQ(quick, 30u + 10u);
  EXPECT_LE(careful, 4u);
  EXPECT_FALSE(result.ranking.empty());
}

TEST(StrategyTest, BudgetStopsTheSearch) {
  size_t calls = 0;
  auto landscape = [&](size_t i, int) -> std::optional<double> {
    ++calls;
    return static_cast<double>(i);
  };
  StrategyOptions options;
  options.kind = StrategyKind::Exhaustive;
  SearchResult result =
      search(1000, options, landscape, [&] { return calls >= 10; });
  EXPECT_TRUE(result.budgetExhausted);
  EXPECT_EQ(calls, 10u);
  EXPECT_FALSE(result.ranking.empty());
}

TEST(FinalTest, PreferredFinalistWinsNearTies) {
  using Medians = std::vector<std::optional<double>>;
  // The default (first) stays unless beaten by more than the margin.
  EXPECT_EQ(pickFinalWinner(Medians{100, 101.9, 90}, 0.02), 0u);
  EXPECT_EQ(pickFinalWinner(Medians{100, 102.5, 90}, 0.02), 1u);
  // Among the others, the earlier one wins a near-tie, whatever the order
  // of their medians: the same finalists always settle the same way.
  EXPECT_EQ(pickFinalWinner(Medians{80, 100, 101.5}, 0.02), 1u);
  EXPECT_EQ(pickFinalWinner(Medians{80, 101.5, 100}, 0.02), 1u);
  EXPECT_EQ(pickFinalWinner(Medians{80, 100, 103}, 0.02), 2u);
  // A finalist with no successful timing never wins; all failed: none.
  EXPECT_EQ(pickFinalWinner(Medians{std::nullopt, 100, 99}, 0.02), 1u);
  EXPECT_EQ(pickFinalWinner(Medians{std::nullopt, std::nullopt}, 0.02),
            std::nullopt);
  EXPECT_EQ(pickFinalWinner(Medians{}, 0.02), std::nullopt);
}

TEST(FinalTest, TimesInTurnsAndTakesMedians) {
  // Each finalist's timings drift (the machine warms up): taken in turns,
  // every finalist sees the drift alike and medians compare fairly.
  std::vector<size_t> order;
  int call = 0;
  auto evaluate = [&](size_t i, int effort) -> std::optional<double> {
    EXPECT_EQ(effort, 1);
    order.push_back(i);
    double drift = 0.5 * call++;
    if (i == 9)
      return std::nullopt; // always fails
    if (i == 4 && call % 4 == 0)
      return 1000.0; // one outlier: the median ignores it
    return (i == 7 ? 105.0 : 100.0) + drift;
  };
  FinalResult result =
      runFinal({4, 7, 9}, 5, 3, 0.02, evaluate, [] { return false; });
  EXPECT_EQ(result.rounds, 5);
  ASSERT_EQ(order.size(), 15u);
  // Round r starts with finalist r mod 3.
  EXPECT_EQ((std::vector<size_t>(order.begin(), order.begin() + 6)),
            (std::vector<size_t>{4, 7, 9, 7, 9, 4}));
  ASSERT_EQ(result.medians.size(), 3u);
  EXPECT_FALSE(result.medians[2].has_value());
  ASSERT_TRUE(result.medians[0] && result.medians[1]);
  EXPECT_LT(*result.medians[0], 110.0);
  EXPECT_EQ(result.winner, 1u);

  // Out of budget: the minimum rounds only.
  order.clear();
  result = runFinal({4, 7}, 5, 3, 0.02, evaluate, [] { return true; });
  EXPECT_EQ(result.rounds, 3);
  EXPECT_EQ(order.size(), 6u);
}

TEST(FinalTest, DeterministicUnderShuffledNoise) {
  // Two finalists 0.5% apart, measured with noise of up to +-0.5% (the
  // medians can then never be 2% apart): whatever the noise draws, the
  // winner is the preferred one, so tuning again picks the same config.
  for (uint64_t seed = 0; seed < 50; ++seed) {
    uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
    auto noise = [&] {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return (static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5) *
             0.01;
    };
    auto evaluate = [&](size_t i, int) -> std::optional<double> {
      return (i == 2 ? 100.5 : 100.0) * (1 + noise());
    };
    FinalResult result =
        runFinal({1, 2}, 5, 3, 0.02, evaluate, [] { return false; });
    EXPECT_EQ(result.winner, 0u) << "seed " << seed;
  }
}

TEST(MeasureTest, RejectsAWrongKernel) {
  // A kernel whose spec differs (no beta) computes something else: the
  // check against the reference must catch it.
  Context context;
  normjit_kernel_spec_t spec = layerNormSpec(256);
  normjit_kernel_spec_t wrongSpec = spec;
  wrongSpec.epsilon = 0.5f; // a very different epsilon
  auto wrong = context.getKernel(wrongSpec);
  auto right = context.getKernel(spec);
  ASSERT_TRUE(!!wrong && !!right);
  Workload workload(spec, 33);
  EXPECT_FALSE(!!workload.check(**right));
  llvm::Error error = workload.check(**wrong);
  ASSERT_TRUE(!!error);
  EXPECT_NE(llvm::toString(std::move(error)).find("mismatches"),
            std::string::npos);
  // ...and a correct one still passes afterwards (outputs are poisoned
  // before each check, not left over).
  EXPECT_FALSE(!!workload.check(**right));
}

TEST(MeasureTest, TimesAKernel) {
  Context context;
  normjit_kernel_spec_t spec = layerNormSpec(512);
  auto kernel = context.getKernel(spec);
  ASSERT_TRUE(!!kernel);
  Workload workload(spec, 64);
  TimingOptions options;
  options.maxSeconds = 0.01;
  auto timing = timeKernel(**kernel, workload, options);
  ASSERT_TRUE(!!timing) << llvm::toString(timing.takeError());
  EXPECT_GE(timing->samples, options.minSamples);
  EXPECT_GT(timing->gbps, 0);
  EXPECT_LE(timing->minSeconds, timing->medianSeconds);
  options.coldCache = true;
  options.maxSamples = 3;
  EXPECT_TRUE(!!timeKernel(**kernel, workload, options));
}

TEST(TunerTest, TunesASpecAndRecordsIt) {
  Context context;
  normjit_kernel_spec_t spec = layerNormSpec(384, /*residual=*/true);
  TuneOptions options;
  options.budgetSeconds = 1.0;
  options.strategy.maxCandidates = 8;
  auto result = tuneCpu(context, spec, 200, options);
  ASSERT_TRUE(!!result) << llvm::toString(result.takeError());
  EXPECT_GT(result->bestGbps, 0);
  EXPECT_GT(result->defaultGbps, 0);
  EXPECT_EQ(result->candidates, 8);
  EXPECT_TRUE(result->fusion == "fused" || result->fusion == "split");
  EXPECT_EQ(result->best.fuseResidual, result->fusion == "fused");
  CacheEntry entry = makeCacheEntry(spec, 200, *result);
  EXPECT_EQ(entry.key.rowBucket, 256);
  EXPECT_EQ(entry.key.spec, getSpecKey(spec));
  EXPECT_EQ(entry.config, result->best);
  EXPECT_FALSE(entry.tunedAt.empty());
  EXPECT_FALSE(!!tuneCpu(context, spec, 0, options)); // no rows, no tuning
}

// A workload is capped by the budget (256 MiB a second, 64 to 512 MiB):
// many rows are measured on as many as fit; a spec whose one row does not
// fit in the largest workload is refused before anything is allocated.
TEST(TunerTest, WorkloadsFitTheBudget) {
  EXPECT_EQ(getWorkloadBytes(2.0), int64_t(512) << 20);
  EXPECT_EQ(getWorkloadBytes(10.0), int64_t(512) << 20);
  EXPECT_EQ(getWorkloadBytes(0.5), int64_t(128) << 20);
  EXPECT_EQ(getWorkloadBytes(0.01), int64_t(64) << 20);
  EXPECT_EQ(getWorkloadBytes(0.0), kMaxWorkloadBytes);
  normjit_kernel_spec_t spec = layerNormSpec(4096, /*residual=*/true);
  // x, y, residual and sum in bf16: 32 KiB a row.
  EXPECT_EQ(getMeasuredRows(spec, 100, 2.0), 100);
  EXPECT_EQ(getMeasuredRows(spec, 65536, 2.0), 16384);
  EXPECT_EQ(getMeasuredRows(spec, 65536, 0.5), 4096);
  // x and y in bf16: 1 GiB a row.
  normjit_kernel_spec_t huge = layerNormSpec(int64_t(1) << 28, false);
  EXPECT_EQ(getMeasuredRows(huge, 100, 2.0), 1);
  llvm::Error error = checkTunable(huge);
  ASSERT_TRUE(!!error);
  EXPECT_NE(llvm::toString(std::move(error))
                .find("one row of 268435456 columns takes 1024 MiB of "
                      "buffers, more than the 512 MiB"),
            std::string::npos);
  Context context;
  TuneOptions options;
  auto result = tuneCpu(context, huge, 1, options);
  ASSERT_FALSE(!!result);
  llvm::consumeError(result.takeError());
}

TEST(TunerTest, TunesOnTheThreadCountAsked) {
  // Every candidate runs on one thread, and the entry says so (on a
  // one-core host one thread is all cores: key 0).
  Context context;
  normjit_kernel_spec_t spec = layerNormSpec(384);
  TuneOptions options;
  options.budgetSeconds = 0.5;
  options.strategy.maxCandidates = 6;
  options.threads = 1;
  auto result = tuneCpu(context, spec, 300, options);
  ASSERT_TRUE(!!result) << llvm::toString(result.takeError());
  EXPECT_EQ(result->best.threads, 1);
  EXPECT_EQ(result->defaultConfig.threads, 1);
  if (result->runnerUp) {
    EXPECT_EQ(result->runnerUp->threads, 1);
  }
  int64_t cores = static_cast<int64_t>(getHostCpu().cores);
  CacheEntry entry = makeCacheEntry(spec, 300, *result);
  EXPECT_EQ(entry.key.threads, cores > 1 ? 1 : 0);
  EXPECT_EQ(entry.key, makeCacheKey(spec, 300, 1));
  EXPECT_EQ(getCacheThreads(0), 0);
  EXPECT_EQ(getCacheThreads(-2), 0);
  EXPECT_EQ(getCacheThreads(static_cast<int>(cores)), 0);
  EXPECT_EQ(getCacheThreads(static_cast<int>(cores) + 7), 0);
  EXPECT_EQ(getCacheThreads(1), cores > 1 ? 1 : 0);
}

TEST(TunerTest, CompilesNoMoreThanTheBudgetAllows) {
  // The budget counts compilation: past its share of it, no candidate is
  // compiled but the default (and the default for the row count, where
  // that is another config), which then wins alone.
  Context context;
  for (int64_t rows : {64, 1}) {
    normjit_kernel_spec_t spec = layerNormSpec(320);
    TuneOptions options;
    options.budgetSeconds = 1e-6;
    options.strategy.kind = StrategyKind::Exhaustive;
    auto result = tuneCpu(context, spec, rows, options);
    ASSERT_TRUE(!!result) << llvm::toString(result.takeError());
    // 64 rows of 320 bf16 columns: tiles of 8; one row: the spec's default.
    EXPECT_EQ(result->rowsDefault.has_value(), rows == 64);
    EXPECT_EQ(result->candidates, rows == 64 ? 2 : 1);
    EXPECT_TRUE(result->best == result->defaultConfig ||
                result->best == result->rowsDefault)
        << result->best.str();
    EXPECT_TRUE(result->failures.empty());
  }
}

TEST(TunerTest, TimesTheDefaultForTheRowCount) {
  // Where the default for the row count is another config than the
  // spec's, it is the second candidate and runs in the final: its GB/s is
  // known beside the default's, and the winner is it or beats it.
  Context context;
  normjit_kernel_spec_t spec = layerNormSpec(768);
  TuneOptions options;
  options.budgetSeconds = 0.6;
  options.strategy.maxCandidates = 5;
  auto result = tuneCpu(context, spec, 64, options);
  ASSERT_TRUE(!!result) << llvm::toString(result.takeError());
  ASSERT_TRUE(result->rowsDefault.has_value());
  EXPECT_EQ(*result->rowsDefault, getDefaultCpuConfigForRows(spec, 64));
  EXPECT_EQ(result->rowsDefault->rowGroup, 8);
  EXPECT_FALSE(*result->rowsDefault == result->defaultConfig);
  EXPECT_GT(result->rowsDefaultGbps, 0);
  EXPECT_GT(result->defaultGbps, 0);
  EXPECT_EQ(result->candidates, 5);
  // On one thread the default for the row count takes it too.
  options.threads = 1;
  result = tuneCpu(context, spec, 64, options);
  ASSERT_TRUE(!!result) << llvm::toString(result.takeError());
  ASSERT_TRUE(result->rowsDefault.has_value());
  EXPECT_EQ(result->rowsDefault->threads, 1);
  // Where both defaults are one config: nothing more.
  normjit_kernel_spec_t wide = layerNormSpec(4096);
  options.threads = 0;
  result = tuneCpu(context, wide, 64, options);
  ASSERT_TRUE(!!result) << llvm::toString(result.takeError());
  EXPECT_FALSE(result->rowsDefault.has_value());
  EXPECT_EQ(result->rowsDefaultGbps, 0);
}

TEST(TunedKernelsTest, PoliciesUseTheCacheAsTheySay) {
  char pattern[] = "/tmp/normjit-tuned-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  std::string dir = pattern;
  TuningCache cache(dir + "/tuning.toml");
  ASSERT_FALSE(!!cache.load());
  Context context;
  normjit_kernel_spec_t spec = layerNormSpec(128);

  // A hand-made entry with a distinctive config.
  CacheEntry entry;
  entry.key = makeCacheKey(spec, 100);
  entry.config.vectorWidth = 4;
  entry.config.accumulators = 3;
  entry.gbps = entry.defaultGbps = 1;
  entry.tunedAt = getUtcTimestamp();
  ASSERT_FALSE(!!cache.store({entry}));

  ConfigSource source;
  TunedKernels cached(context, cache, TuningPolicy::CacheOnly);
  auto kernel = cached.getKernel(spec, 100, &source);
  ASSERT_TRUE(!!kernel);
  EXPECT_EQ(source, ConfigSource::Cache);
  EXPECT_EQ((*kernel)->getConfig().accumulators, 3);
  // Another row bucket misses: the default heuristic.
  kernel = cached.getKernel(spec, 5000, &source);
  ASSERT_TRUE(!!kernel);
  EXPECT_EQ(source, ConfigSource::Default);
  // Kernels asked for one thread run on one thread, and an entry tuned on
  // all cores is not theirs (where the host has more than one).
  TuneOptions oneThread;
  oneThread.threads = 1;
  TunedKernels single(context, cache, TuningPolicy::CacheOnly, oneThread);
  kernel = single.getKernel(spec, 100, &source);
  ASSERT_TRUE(!!kernel);
  EXPECT_EQ((*kernel)->getConfig().threads, 1);
  if (getHostCpu().cores > 1) {
    EXPECT_EQ(source, ConfigSource::Default);
  }

  TunedKernels heuristic(context, cache, TuningPolicy::Heuristic);
  kernel = heuristic.getKernel(spec, 100, &source);
  ASSERT_TRUE(!!kernel);
  EXPECT_EQ(source, ConfigSource::Default);
  EXPECT_EQ((*kernel)->getConfig(), getDefaultCpuConfigForRows(spec, 100));

  TuneOptions quick;
  quick.budgetSeconds = 0.3;
  quick.strategy.maxCandidates = 4;
  TunedKernels tuning(context, cache, TuningPolicy::TuneOnMiss, quick);
  kernel = tuning.getKernel(spec, 3000, &source);
  ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
  EXPECT_EQ(source, ConfigSource::Tuned);
  kernel = tuning.getKernel(spec, 3000, &source);
  ASSERT_TRUE(!!kernel);
  EXPECT_EQ(source, ConfigSource::Cache);
  TuningCache reloaded(dir + "/tuning.toml");
  ASSERT_FALSE(!!reloaded.load());
  EXPECT_EQ(reloaded.getEntries().size(), 2u);
  // A spec the tuner cannot take (one row over its workload limit) still
  // gets a kernel under tune-on-miss: the default, nothing stored.
  normjit_kernel_spec_t huge = normjit_kernel_spec_default(NORMJIT_RMS_NORM,
                                                           int64_t(1) << 27);
  kernel = tuning.getKernel(huge, 1, &source);
  ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
  EXPECT_EQ(source, ConfigSource::Default);
  EXPECT_EQ((*kernel)->getConfig(), getDefaultCpuConfigForRows(huge, 1));
  ASSERT_FALSE(!!reloaded.load());
  EXPECT_EQ(reloaded.getEntries().size(), 2u);
  std::system(("rm -rf '" + dir + "'").c_str());
}
