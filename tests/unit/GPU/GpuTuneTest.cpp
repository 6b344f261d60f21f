//===- GpuTuneTest.cpp - the tuner on a real GPU --------------------------===//
//
// Part of normjit. On a CUDA device (skipped without one, a failure with
// NORMJIT_REQUIRE_GPU=1): the default kernel of a spec passes the tuner's
// reference check and times sensibly warm and cold; the whole GPU tuner
// runs without a failed candidate; the cache entry it writes serves the
// same config back. Part of the GPU test binary, and so of the bundle's
// normjit-gpu-tests (the tuner's other GPU tests run on the fake driver).
//
//===----------------------------------------------------------------------===//

#include "GpuTestSupport.h"

#include "normjit/tuner/Measure.h"
#include "normjit/tuner/TunedKernels.h"
#include "normjit/tuner/Tuner.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <string>
#include <unistd.h>

using namespace normjit;
using namespace normjit::test;
using namespace normjit::tuner;

namespace {
/// The message of an error (consumed), or "" for success.
std::string takeMessage(llvm::Error error) {
  if (!error)
    return "";
  return llvm::toString(std::move(error));
}

/// RMSNorm + residual in bf16, storing the sum and rstd.
normjit_kernel_spec_t residualRmsSpec(int64_t cols) {
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, cols);
  spec.x_dtype = spec.y_dtype = spec.gamma_dtype = NORMJIT_BF16;
  spec.has_gamma = 1;
  spec.has_residual = spec.store_sum = 1;
  spec.residual_dtype = spec.sum_dtype = NORMJIT_BF16;
  spec.store_rstd = 1;
  return spec;
}

class GpuTuneTest : public GpuTest {};
} // namespace

TEST_F(GpuTuneTest, DefaultKernelPassesTheCheckAndTimes) {
  normjit_kernel_spec_t spec = residualRmsSpec(1024);
  Context context;
  auto kernel = context.getGpuKernel(spec, 0);
  ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
  auto check = GpuWorkload::create(spec, 97, 0, 99);
  ASSERT_TRUE(!!check) << takeMessage(check.takeError());
  EXPECT_EQ(takeMessage((*check)->check(**kernel)), "");
  auto workload = GpuWorkload::create(spec, 8192, 0);
  ASSERT_TRUE(!!workload) << takeMessage(workload.takeError());
  TimingOptions options;
  auto warm = timeGpuKernel(**kernel, **workload, options);
  ASSERT_TRUE(!!warm) << takeMessage(warm.takeError());
  options.coldCache = true;
  auto cold = timeGpuKernel(**kernel, **workload, options);
  ASSERT_TRUE(!!cold) << takeMessage(cold.takeError());
  normjit_cuda_device_info_t info;
  ASSERT_EQ(normjit_cuda_device_info(0, &info), NORMJIT_OK);
  // Sanity bounds only (a GB/s that no GPU of sm_80 or newer misses, and
  // L2 can beat DRAM when warm but never by 4x): timings are never judged.
  for (double gbps : {warm->gbps, cold->gbps}) {
    EXPECT_GT(gbps, 10.0);
    if (info.dram_bandwidth_gbps > 0) {
      EXPECT_LT(gbps, 4 * info.dram_bandwidth_gbps);
    }
  }
}

TEST_F(GpuTuneTest, TunesAndServesTheWinnerFromTheCache) {
  normjit_kernel_spec_t spec = residualRmsSpec(1024);
  Context context;
  // A budget that leaves every candidate time to compile and be timed
  // (the search stops compiling at a share of it; the test counts them).
  TuneOptions tune;
  tune.budgetSeconds = 30;
  tune.strategy.maxCandidates = 12;
  auto result = tuneGpu(context, spec, 8192, 0, tune);
  ASSERT_TRUE(!!result) << takeMessage(result.takeError());
  EXPECT_GT(result->bestGbps, 0);
  EXPECT_GT(result->defaultGbps, 0);
  EXPECT_EQ(result->candidates, 12);
  EXPECT_EQ(result->fusion, "");
  EXPECT_TRUE(isGpuDeviceKey(result->fingerprint));
  EXPECT_FALSE(result->deviceName.empty());
  std::string failures;
  for (const std::string &failure : result->failures)
    failures += failure + "\n";
  // Every candidate of the space compiles, loads and passes the check.
  EXPECT_TRUE(result->failures.empty()) << failures;

  std::string dir =
      ::testing::TempDir() + "normjit-gpu-real-" + std::to_string(::getpid());
  TuningCache cache(dir + "/tuning.toml");
  ASSERT_EQ(takeMessage(cache.load()), "");
  ASSERT_EQ(takeMessage(cache.store({makeGpuCacheEntry(spec, 8192, *result)})),
            "");
  ConfigSource source = ConfigSource::Default;
  TunedKernels kernels(context, cache, TuningPolicy::CacheOnly);
  auto served = kernels.getGpuKernel(spec, 8000, 0, &source);
  ASSERT_TRUE(!!served) << takeMessage(served.takeError());
  EXPECT_EQ(source, ConfigSource::Cache);
  EXPECT_TRUE((*served)->getConfig() == result->best);
  llvm::sys::fs::remove_directories(dir);
}
