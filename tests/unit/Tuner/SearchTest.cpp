//===- SearchTest.cpp - search space, strategies, measurement, tuning -----===//
//
// Part of normjit. The search space only holds configs that compile and run;
// strategies are deterministic for a seed and find the best of a synthetic
// landscape; a wrong or failing candidate is rejected, never chosen; tuning
// a real spec produces a checked winner and a cache entry; the policies of
// TunedKernels.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/Measure.h"
#include "normjit/tuner/SearchSpace.h"
#include "normjit/tuner/Strategy.h"
#include "normjit/tuner/TunedKernels.h"
#include "normjit/tuner/Tuner.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

using namespace normjit;
using namespace normjit::tuner;

namespace {
normjit_kernel_spec_t layerNormSpec(int64_t cols, bool residual = false) {
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
  spec.x_dtype = spec.y_dtype = NORMJIT_BF16;
  spec.has_gamma = spec.has_beta = 1;
  spec.has_residual = spec.store_sum = residual;
  spec.residual_dtype = spec.sum_dtype = NORMJIT_BF16;
  return spec;
}

HostCpu avx512Host() {
  HostCpu host;
  host.name = "test";
  host.avx2 = host.avx512f = true;
  host.cores = 4;
  return host;
}
} // namespace

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
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 24);
  for (const CpuConfig &config : buildCpuSearchSpace(spec, 16, avx512Host())) {
    EXPECT_FALSE(config.welford);
    EXPECT_TRUE(config.fuseResidual);
    EXPECT_TRUE(config.accumulators == 1 ||
                config.vectorWidth * config.accumulators <= 24)
        << config.str();
    EXPECT_FALSE(config.streamingStores);
  }
  // Streaming stores only for outputs larger than the threshold.
  bool streaming = false;
  for (const CpuConfig &config :
       buildCpuSearchSpace(spec, 1 << 22, avx512Host(), 1 << 20))
    streaming |= config.streamingStores;
  EXPECT_TRUE(streaming);
}

TEST(StrategyTest, DeterministicForASeed) {
  auto landscape = [](size_t i, int effort) -> std::optional<double> {
    return static_cast<double>((i * 7919) % 101) + 0.01 * effort;
  };
  for (StrategyKind kind : {StrategyKind::Random, StrategyKind::SuccessiveHalving}) {
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

  TunedKernels heuristic(context, cache, TuningPolicy::Heuristic);
  kernel = heuristic.getKernel(spec, 100, &source);
  ASSERT_TRUE(!!kernel);
  EXPECT_EQ(source, ConfigSource::Default);
  EXPECT_EQ((*kernel)->getConfig(), getDefaultCpuConfig(spec));

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
  std::system(("rm -rf '" + dir + "'").c_str());
}
