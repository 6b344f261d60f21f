//===- GpuTunerTest.cpp - GPU tuning, timing and cache keys ---------------===//
//
// Part of normjit. GPU tuning without a GPU: with no driver every entry
// point says so; against the fake driver (FakeCudaDriver.cpp, which runs no
// kernel, and whose events are 0.25 ms apart per record) the workload is
// uploaded, checked and freed, timing follows the events, the L2 is flushed
// for cold-cache timing, a kernel that computes nothing is rejected by the
// reference check, and GPU cache keys never meet CPU ones. On a real CUDA
// device: GPU/GpuTuneTest.cpp (in the GPU test binary and the bundle).
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/CudaLaunch.h"
#include "normjit/tuner/Measure.h"
#include "normjit/tuner/SearchSpace.h"
#include "normjit/tuner/TunedKernels.h"
#include "normjit/tuner/Tuner.h"

#include "../Runtime/FakeCudaDriver.h"

#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <unistd.h>

using namespace normjit;
using namespace normjit::tuner;
namespace nc = normjit::runtime::cuda;

namespace {

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

/// The message of an error (consumed), or "" for success.
std::string takeMessage(llvm::Error error) {
  if (!error)
    return "";
  return llvm::toString(std::move(error));
}

/// The status of an error (consumed).
normjit_status_t takeStatus(llvm::Error error) {
  normjit_status_t status = NORMJIT_OK;
  llvm::handleAllErrors(
      std::move(error), [&](const StatusError &e) { status = e.getStatus(); },
      [&](const llvm::ErrorInfoBase &) { status = NORMJIT_INTERNAL; });
  return status;
}

normjit_kernel_spec_t rmsSpec(int64_t cols, bool residual = false) {
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, cols);
  spec.x_dtype = spec.y_dtype = spec.gamma_dtype = NORMJIT_BF16;
  spec.has_gamma = 1;
  spec.has_residual = spec.store_sum = residual;
  spec.residual_dtype = spec.sum_dtype = NORMJIT_BF16;
  spec.store_rstd = 1;
  return spec;
}

/// Points NORMJIT_CUDA_DRIVER somewhere (nullptr: unset, the real driver)
/// and forgets any loaded driver; restores both at the end. Contexts and
/// workloads of a test must be gone before TearDown.
class GpuTunerTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (const char *old = std::getenv("NORMJIT_CUDA_DRIVER"))
      saved = old;
  }
  void TearDown() override {
    unsetenv("FAKE_CUDA_NO_GRAPHS");
    nc::resetDriverForTesting();
    if (saved)
      setenv("NORMJIT_CUDA_DRIVER", saved->c_str(), 1);
    else
      unsetenv("NORMJIT_CUDA_DRIVER");
  }
  void useDriver(const char *path) {
    nc::resetDriverForTesting();
    if (path)
      setenv("NORMJIT_CUDA_DRIVER", path, 1);
    else
      unsetenv("NORMJIT_CUDA_DRIVER");
  }
  /// Loads the fake driver and returns its counters.
  fake_cuda_counters_t fakeCounters() {
    fake_cuda_counters_t counters{};
    void *handle =
        dlopen(NORMJIT_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    EXPECT_NE(handle, nullptr) << "the fake driver is not loaded";
    if (!handle)
      return counters;
    auto fn = reinterpret_cast<fake_cuda_counters_fn>(
        dlsym(handle, "fake_cuda_counters"));
    EXPECT_NE(fn, nullptr);
    if (fn)
      fn(&counters);
    dlclose(handle);
    return counters;
  }
  void useFake() {
    useDriver(NORMJIT_FAKE_CUDA_DRIVER);
    ASSERT_EQ(normjit_cuda_init(), NORMJIT_OK) << normjit_last_error();
  }

private:
  std::optional<std::string> saved;
};

} // namespace

//===----------------------------------------------------------------------===//
// No driver
//===----------------------------------------------------------------------===//

TEST_F(GpuTunerTest, WithoutADriverEverythingSaysSo) {
  useDriver("/nonexistent/libcuda.so.1");
  normjit_kernel_spec_t spec = rmsSpec(256);
  Context context;
  TuneOptions options;
  options.budgetSeconds = 0.1;

  auto tuned = tuneGpu(context, spec, 64, 0, options);
  ASSERT_FALSE(!!tuned);
  std::string message = takeMessage(tuned.takeError());
  EXPECT_TRUE(contains(message, "no CUDA driver: ")) << message;
  EXPECT_TRUE(contains(message, "/nonexistent/libcuda.so.1")) << message;

  auto status = tuneGpu(context, spec, 64, 0, options);
  EXPECT_EQ(takeStatus(status.takeError()), NORMJIT_DEVICE_ERROR);
  auto key = makeGpuCacheKey(spec, 64, 0);
  EXPECT_TRUE(contains(takeMessage(key.takeError()), "no CUDA driver"));
  auto workload = GpuWorkload::create(spec, 64, 0);
  EXPECT_TRUE(contains(takeMessage(workload.takeError()), "no CUDA driver"));

  // Bad arguments are reported before the device is looked for.
  auto noRows = tuneGpu(context, spec, 0, 0, options);
  EXPECT_TRUE(contains(takeMessage(noRows.takeError()), "at least one row"));

  // Every policy but the heuristic asks the device for its fingerprint;
  // all of them fail, saying why, and none touches the cache file.
  std::string dir = ::testing::TempDir() + "normjit-gpu-nodriver-" +
                    std::to_string(::getpid());
  TuningCache cache(dir + "/tuning.toml");
  for (TuningPolicy policy : {TuningPolicy::Heuristic, TuningPolicy::CacheOnly,
                              TuningPolicy::TuneOnMiss}) {
    TunedKernels kernels(context, cache, policy, options);
    auto kernel = kernels.getGpuKernel(spec, 64, 0);
    ASSERT_FALSE(!!kernel);
    EXPECT_TRUE(contains(takeMessage(kernel.takeError()), "no CUDA driver"));
  }
  EXPECT_NE(::access((dir + "/tuning.toml").c_str(), F_OK), 0);
}

//===----------------------------------------------------------------------===//
// The fake driver
//===----------------------------------------------------------------------===//

TEST_F(GpuTunerTest, GpuCacheKeysNeverMatchCpuKeys) {
  useFake();
  normjit_kernel_spec_t spec = rmsSpec(512, /*residual=*/true);
  auto gpu0 = makeGpuCacheKey(spec, 1000, 0);
  auto gpu1 = makeGpuCacheKey(spec, 1000, 1);
  ASSERT_TRUE(!!gpu0) << takeMessage(gpu0.takeError());
  ASSERT_TRUE(!!gpu1) << takeMessage(gpu1.takeError());
  CacheKey cpu = makeCacheKey(spec, 1000);
  EXPECT_TRUE(isGpuDeviceKey(gpu0->device)) << gpu0->device;
  EXPECT_TRUE(contains(gpu0->device, "normjit Fake GPU")) << gpu0->device;
  EXPECT_FALSE(isGpuDeviceKey(cpu.device));
  EXPECT_FALSE(*gpu0 == cpu);
  EXPECT_FALSE(*gpu0 == *gpu1); // two devices, two fingerprints
  // Everything else about the keys is the same.
  EXPECT_EQ(gpu0->spec, cpu.spec);
  EXPECT_EQ(gpu0->rowBucket, cpu.rowBucket);
  EXPECT_EQ(gpu0->normjitVersion, cpu.normjitVersion);
  EXPECT_EQ(gpu0->llvmVersion, cpu.llvmVersion);
  auto fingerprint = getGpuFingerprint(0);
  ASSERT_TRUE(!!fingerprint);
  EXPECT_EQ(*fingerprint, gpu0->device);
  EXPECT_FALSE(!!getGpuFingerprint(5)); // no such device
  EXPECT_FALSE(!!makeGpuCacheKey(spec, 1000, 5));

  // A GPU entry built from a result carries its fingerprint and configs.
  GpuTuneResult result;
  result.fingerprint = *fingerprint;
  result.best.threadsPerRow = 64;
  result.bestGbps = 100;
  result.runnerUp = GpuConfig();
  result.runnerUpGbps = 90;
  result.defaultGbps = 80;
  result.candidates = 7;
  CacheEntry entry = makeGpuCacheEntry(spec, 1000, result);
  EXPECT_TRUE(entry.key == *gpu0);
  EXPECT_TRUE(entry.isGpu());
  EXPECT_TRUE(entry.gpuConfig == result.best);
  ASSERT_TRUE(entry.gpuRunnerUp.has_value());
  EXPECT_EQ(entry.runnerUpGbps, 90);
  EXPECT_FALSE(entry.runnerUp.has_value());
  EXPECT_EQ(entry.fusion, "");
}

TEST_F(GpuTunerTest, WorkloadUploadsChecksAndFrees) {
  useFake();
  normjit_kernel_spec_t spec = rmsSpec(256, /*residual=*/true);
  long before = fakeCounters().allocations;
  {
    auto workload = GpuWorkload::create(spec, 40, 0);
    ASSERT_TRUE(!!workload) << takeMessage(workload.takeError());
    // x, residual, gamma, y, sum, rstd.
    EXPECT_EQ(fakeCounters().allocations, before + 6);
    const normjit_run_args_t &args = (*workload)->getArgs();
    EXPECT_NE(args.x, nullptr);
    EXPECT_NE(args.residual, nullptr);
    EXPECT_NE(args.gamma, nullptr);
    EXPECT_EQ(args.beta, nullptr);
    EXPECT_NE(args.sum, nullptr);
    EXPECT_EQ(args.mean, nullptr);
    EXPECT_NE(args.rstd, nullptr);
    EXPECT_EQ(args.rows, 40);
    EXPECT_EQ((*workload)->getBytes(), Workload::getBytes(spec, 40));

    // The fake runs nothing: the poisoned outputs come back and the
    // reference check rejects the kernel.
    Context context;
    auto kernel = context.getGpuKernel(spec, 0);
    ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
    long launches = fakeCounters().launches;
    std::string message = takeMessage((*workload)->check(**kernel));
    EXPECT_TRUE(contains(message, "wrong result")) << message;
    EXPECT_TRUE(contains(message, "mismatches against the fp64 reference"))
        << message;
    EXPECT_EQ(fakeCounters().launches, launches + 1);
  }
  EXPECT_EQ(fakeCounters().allocations, before);
}

TEST_F(GpuTunerTest, JitKernelRunsInTheContextOfItsStream) {
  useFake();
  void *fake =
      dlopen(NORMJIT_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  ASSERT_NE(fake, nullptr);
  auto symbol = [&](const char *name) {
    void *found = dlsym(fake, name);
    EXPECT_NE(found, nullptr) << name;
    return found;
  };
  auto pushUserContext = reinterpret_cast<fake_cuda_push_user_context_fn>(
      symbol("fake_cuda_push_user_context"));
  auto popContext =
      reinterpret_cast<fake_cuda_pop_context_fn>(symbol("fake_cuda_pop_context"));
  auto primaryContext = reinterpret_cast<fake_cuda_primary_context_fn>(
      symbol("fake_cuda_primary_context"));
  auto lastLaunch =
      reinterpret_cast<fake_cuda_last_launch_fn>(symbol("fake_cuda_last_launch"));
  auto lastSync = reinterpret_cast<fake_cuda_last_sync_context_fn>(
      symbol("fake_cuda_last_sync_context"));
  ASSERT_TRUE(pushUserContext && popContext && primaryContext && lastLaunch &&
              lastSync);

  normjit_kernel_spec_t spec = rmsSpec(256);
  auto workload = GpuWorkload::create(spec, 8, 0);
  ASSERT_TRUE(!!workload) << takeMessage(workload.takeError());
  const normjit_run_args_t &args = (*workload)->getArgs();
  Context context;
  long loads = fakeCounters().module_loads;
  auto kernel = context.getGpuKernel(spec, 0); // loaded in the primary one
  ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
  EXPECT_EQ(fakeCounters().module_loads, loads + 1);

  // The host's own context, with its own buffers (contexts do not share
  // allocations).
  void *user = pushUserContext(0);
  void *stream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &stream), NORMJIT_OK);
  auto userWorkload = GpuWorkload::create(spec, 8, 0);
  ASSERT_TRUE(!!userWorkload) << takeMessage(userWorkload.takeError());
  popContext();
  const normjit_run_args_t &userArgs = (*userWorkload)->getArgs();
  fake_cuda_launch_t launch;
  for (int i = 0; i < 2; ++i) {
    llvm::Error error = (*kernel)->run(userArgs, stream);
    ASSERT_FALSE(!!error) << takeMessage(std::move(error));
    lastLaunch(&launch);
    EXPECT_EQ(launch.context, user);
    EXPECT_EQ(launch.stream, stream);
  }
  EXPECT_EQ(fakeCounters().module_loads, loads + 2); // once in `user`
  std::string message = takeMessage((*kernel)->run(args, stream));
  EXPECT_TRUE(contains(message, "belongs to another CUDA context")) << message;

  // The default stream: the primary context, where it was first loaded;
  // synchronize() waits for the default stream a run without one uses.
  llvm::Error error = (*kernel)->run(args, nullptr);
  ASSERT_FALSE(!!error) << takeMessage(std::move(error));
  lastLaunch(&launch);
  EXPECT_EQ(launch.context, primaryContext(0));
  long syncs = fakeCounters().stream_syncs;
  error = (*kernel)->synchronize();
  ASSERT_FALSE(!!error) << takeMessage(std::move(error));
  EXPECT_EQ(lastSync(), primaryContext(0));
  EXPECT_EQ(fakeCounters().stream_syncs, syncs + 1); // its stream only
  void *other = pushUserContext(0);
  error = (*kernel)->synchronize();
  ASSERT_FALSE(!!error) << takeMessage(std::move(error));
  EXPECT_EQ(lastSync(), other);
  popContext();
  EXPECT_EQ(fakeCounters().module_loads, loads + 2); // nothing loaded to wait
  EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
  dlclose(fake);
}

TEST_F(GpuTunerTest, TimingFollowsTheEvents) {
  useFake();
  normjit_kernel_spec_t spec = rmsSpec(1024);
  Context context;
  auto kernel = context.getGpuKernel(spec, 0);
  ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
  auto workload = GpuWorkload::create(spec, 300, 0);
  ASSERT_TRUE(!!workload) << takeMessage(workload.takeError());

  // The fake's events are 0.25 ms apart: one launch per sample (0.25 ms is
  // longer than a sample must be), a median of 0.25 ms.
  TimingOptions options;
  options.warmup = 2;
  options.minSamples = 4;
  options.maxSamples = 6;
  long launches = fakeCounters().launches;
  auto timing = timeGpuKernel(**kernel, **workload, options);
  ASSERT_TRUE(!!timing) << takeMessage(timing.takeError());
  EXPECT_DOUBLE_EQ(timing->medianSeconds, 0.25e-3);
  EXPECT_DOUBLE_EQ(timing->minSeconds, 0.25e-3);
  EXPECT_DOUBLE_EQ(timing->gbps, (*workload)->getBytes() / 0.25e-3 / 1e9);
  EXPECT_EQ(timing->spread, 0.0);
  EXPECT_GE(timing->samples, 4);
  long warm = fakeCounters().launches - launches;
  // Warm-up, the batch-sizing launch and one per sample.
  EXPECT_EQ(warm, 2 + 1 + timing->samples);

  // timeLaunches gives the seconds between its two events, whatever the
  // number of launches between them.
  auto batch = (*workload)->timeLaunches(**kernel, 10, false);
  ASSERT_TRUE(!!batch) << takeMessage(batch.takeError());
  EXPECT_DOUBLE_EQ(*batch, 0.25e-3);

  // Cold cache: an L2 flush on the stream before every sample.
  long flushes = fakeCounters().async_memsets;
  options.coldCache = true;
  timing = timeGpuKernel(**kernel, **workload, options);
  ASSERT_TRUE(!!timing) << takeMessage(timing.takeError());
  EXPECT_EQ(fakeCounters().async_memsets - flushes, 1 + timing->samples);

  // Events that give a negative or non-finite time are a device error,
  // not a measurement (normjit bench looped forever on them).
  options.coldCache = false;
  for (const char *ms : {"-0.001", "nan", "inf"}) {
    setenv("FAKE_CUDA_EVENT_MS", ms, 1);
    timing = timeGpuKernel(**kernel, **workload, options);
    unsetenv("FAKE_CUDA_EVENT_MS");
    ASSERT_FALSE(!!timing) << ms;
    EXPECT_NE(takeMessage(timing.takeError()).find("CUDA events gave"),
              std::string::npos)
        << ms;
  }
}

TEST_F(GpuTunerTest, ShortKernelsAreTimedFromAGraph) {
  useFake();
  normjit_kernel_spec_t spec = rmsSpec(1024);
  Context context;
  auto kernel = context.getGpuKernel(spec, 0);
  ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
  auto workload = GpuWorkload::create(spec, 300, 0);
  ASSERT_TRUE(!!workload) << takeMessage(workload.takeError());

  // The fake's events are 0.25 ms apart. Samples of at least 10 ms: the
  // single launch sizes a batch of 40, recorded into a graph; that graph's
  // sample (0.25 ms for 40 launches) sizes it again, to the most a batch
  // holds (1000), recorded anew and replayed once per sample.
  TimingOptions options;
  options.warmup = 1;
  options.minSamples = 3;
  options.maxSamples = 3;
  options.minSampleSeconds = 0.01;
  fake_cuda_counters_t before = fakeCounters();
  auto timing = timeGpuKernel(**kernel, **workload, options);
  ASSERT_TRUE(!!timing) << takeMessage(timing.takeError());
  fake_cuda_counters_t after = fakeCounters();
  EXPECT_TRUE((*workload)->isBatchGraph(**kernel));
  EXPECT_EQ(timing->samples, 3);
  EXPECT_DOUBLE_EQ(timing->medianSeconds, 0.25e-3 / 1000);
  EXPECT_EQ(after.captured_launches - before.captured_launches, 40 + 1000);
  // An untimed replay of each recording (a graph's first launch uploads
  // it), the sizing replay, then one per sample.
  EXPECT_EQ(after.graph_launches - before.graph_launches, 2 + 1 + 3);
  // Warm-up, the single launch, the graphs' launches.
  EXPECT_EQ(after.launches - before.launches,
            1 + 1 + 40 + 40 + 1000 + 3 * 1000);

  // Cold: single launches after a flush, never a graph.
  options.coldCache = true;
  before = fakeCounters();
  timing = timeGpuKernel(**kernel, **workload, options);
  ASSERT_TRUE(!!timing) << takeMessage(timing.takeError());
  after = fakeCounters();
  EXPECT_EQ(after.graph_launches, before.graph_launches);
  EXPECT_EQ(after.captured_launches, before.captured_launches);
  EXPECT_DOUBLE_EQ(timing->medianSeconds, 0.25e-3);
}

TEST_F(GpuTunerTest, WithoutGraphsTheBatchIsLaunchedDirectly) {
  setenv("FAKE_CUDA_NO_GRAPHS", "1", 1); // unset by TearDown
  useFake();
  EXPECT_EQ(normjit_cuda_graphs_available(), 0);
  {
    normjit_kernel_spec_t spec = rmsSpec(1024);
    Context context;
    auto kernel = context.getGpuKernel(spec, 0);
    ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
    auto workload = GpuWorkload::create(spec, 300, 0);
    ASSERT_TRUE(!!workload) << takeMessage(workload.takeError());
    TimingOptions options;
    options.warmup = 0;
    options.minSamples = 2;
    options.maxSamples = 2;
    options.minSampleSeconds = 0.01;
    fake_cuda_counters_t before = fakeCounters();
    auto timing = timeGpuKernel(**kernel, **workload, options);
    ASSERT_TRUE(!!timing) << takeMessage(timing.takeError());
    fake_cuda_counters_t after = fakeCounters();
    EXPECT_FALSE((*workload)->isBatchGraph(**kernel));
    EXPECT_EQ(after.graph_launches, before.graph_launches);
    // The single launch, then 40 launches per sample.
    EXPECT_EQ(after.launches - before.launches, 1 + 2 * 40);
    EXPECT_DOUBLE_EQ(timing->medianSeconds, 0.25e-3 / 40);
    normjit_cuda_graph_t *graph = nullptr;
    EXPECT_EQ(normjit_cuda_capture_begin((*workload)->getStream()),
              NORMJIT_UNSUPPORTED);
    EXPECT_EQ(normjit_cuda_capture_end((*workload)->getStream(), &graph),
              NORMJIT_UNSUPPORTED);
    EXPECT_EQ(graph, nullptr);
  }
}

TEST_F(GpuTunerTest, KernelsThatComputeNothingAreRejected) {
  useFake();
  normjit_kernel_spec_t spec = rmsSpec(384, /*residual=*/true);
  Context context;
  TuneOptions options;
  options.budgetSeconds = 5;
  options.strategy.maxCandidates = 3;
  long before = fakeCounters().allocations;
  auto result = tuneGpu(context, spec, 500, 0, options);
  ASSERT_FALSE(!!result);
  std::string message = takeMessage(result.takeError());
  EXPECT_TRUE(contains(message, "no candidate compiled, passed the "
                                "reference check and was timed (3 failures; "
                                "first: "
                                "#norm.config<gpu, "))
      << message;
  EXPECT_TRUE(contains(message, "wrong result")) << message;
  // The device buffers are freed on the way out (the L2 flush buffer was
  // never needed).
  EXPECT_EQ(fakeCounters().allocations, before);
}

TEST_F(GpuTunerTest, TunedKernelsServeGpuEntriesOnlyToThatGpu) {
  useFake();
  std::string dir =
      ::testing::TempDir() + "normjit-gpu-tuned-" + std::to_string(::getpid());
  TuningCache cache(dir + "/tuning.toml");
  ASSERT_EQ(takeMessage(cache.load()), "");
  Context context;
  normjit_kernel_spec_t spec = rmsSpec(512);
  auto target = getGpuTarget(0);
  ASSERT_TRUE(!!target) << takeMessage(target.takeError());
  GpuConfig fallback = getDefaultGpuConfig(spec, *target);

  // A CPU entry for the spec is never a GPU config.
  CacheEntry cpu;
  cpu.key = makeCacheKey(spec, 100);
  cpu.config.vectorWidth = 4;
  cpu.gbps = cpu.defaultGbps = 1;
  cpu.tunedAt = getUtcTimestamp();
  ASSERT_EQ(takeMessage(cache.store({cpu})), "");
  ConfigSource source = ConfigSource::Tuned;
  TunedKernels cacheOnly(context, cache, TuningPolicy::CacheOnly);
  auto kernel = cacheOnly.getGpuKernel(spec, 100, 0, &source);
  ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
  EXPECT_EQ(source, ConfigSource::Default);
  EXPECT_TRUE((*kernel)->getConfig() == fallback);

  // A GPU entry for device 0 serves device 0, not device 1 (another
  // fingerprint), and not the CPU.
  GpuConfig chosen = fallback;
  chosen.rowsPerBlock = 1;
  chosen.persistent = true;
  ASSERT_FALSE(chosen == fallback);
  CacheEntry gpu;
  auto key = makeGpuCacheKey(spec, 100, 0);
  ASSERT_TRUE(!!key);
  gpu.key = *key;
  gpu.gpuConfig = chosen;
  gpu.gbps = gpu.defaultGbps = 1;
  gpu.tunedAt = getUtcTimestamp();
  ASSERT_EQ(takeMessage(cache.store({gpu})), "");
  kernel = cacheOnly.getGpuKernel(spec, 100, 0, &source);
  ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
  EXPECT_EQ(source, ConfigSource::Cache);
  EXPECT_TRUE((*kernel)->getConfig() == chosen) << (*kernel)->getConfig().str();
  kernel = cacheOnly.getGpuKernel(spec, 100, 1, &source);
  ASSERT_TRUE(!!kernel) << takeMessage(kernel.takeError());
  EXPECT_EQ(source, ConfigSource::Default);
  auto cpuKernel = cacheOnly.getKernel(spec, 100, &source);
  ASSERT_TRUE(!!cpuKernel) << takeMessage(cpuKernel.takeError());
  EXPECT_EQ(source, ConfigSource::Cache);
  EXPECT_EQ((*cpuKernel)->getConfig().vectorWidth, 4);

  // The heuristic ignores the cache.
  TunedKernels heuristic(context, cache, TuningPolicy::Heuristic);
  kernel = heuristic.getGpuKernel(spec, 100, 0, &source);
  ASSERT_TRUE(!!kernel);
  EXPECT_EQ(source, ConfigSource::Default);
  EXPECT_TRUE((*kernel)->getConfig() == fallback);
  llvm::sys::fs::remove_directories(dir);
}
