//===- TunedKernels.cpp - kernels with the tuned config when known --------===//
//
// Part of normjit. Implements TunedKernels.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/TunedKernels.h"

#include "llvm/Support/raw_ostream.h"

using namespace normjit;
using namespace normjit::tuner;

std::optional<TuningPolicy>
normjit::tuner::parseTuningPolicy(const std::string &name) {
  if (name == "heuristic")
    return TuningPolicy::Heuristic;
  if (name == "cache-only")
    return TuningPolicy::CacheOnly;
  if (name == "tune-on-miss")
    return TuningPolicy::TuneOnMiss;
  return std::nullopt;
}

const char *normjit::tuner::getConfigSourceName(ConfigSource source) {
  switch (source) {
  case ConfigSource::Default:
    return "default heuristic";
  case ConfigSource::Cache:
    return "tuning cache";
  case ConfigSource::Tuned:
    return "tuned now";
  case ConfigSource::TunedNotSaved:
    return "tuned now, not saved";
  case ConfigSource::TunedEarlierNotSaved:
    return "tuned earlier, not saved";
  }
  return "unknown";
}

ConfigSource TunedKernels::sourceOf(const CacheEntry &found) const {
  return cache.isUnsaved(found.key) ? ConfigSource::TunedEarlierNotSaved
                                    : ConfigSource::Cache;
}

ConfigSource TunedKernels::storeOrRemember(const CacheEntry &entry) {
  // A tuned config that cannot be saved (a read-only cache, a full disk)
  // is still the best one found: the caller gets it, this object's cache
  // keeps it (no second tuning in this process), and stderr says why the
  // file did not.
  llvm::Error error = cache.store({entry});
  for (const std::string &warning : cache.takeWarnings())
    llvm::errs() << "normjit: warning: " << warning << "\n";
  if (!error)
    return ConfigSource::Tuned;
  cache.remember({entry});
  llvm::errs() << "normjit: warning: " << llvm::toString(std::move(error))
               << "; the tuned config is used but not saved\n";
  return ConfigSource::TunedNotSaved;
}

TunedKernels::TunedKernels(Context &context, TuningCache &cache,
                           TuningPolicy policy, TuneOptions options)
    : context(context), cache(cache), policy(policy), options(options) {}

llvm::Expected<std::shared_ptr<const Kernel>>
TunedKernels::getKernel(const normjit_kernel_spec_t &spec, int64_t rows,
                        ConfigSource *source) {
  auto finish = [&](ConfigSource from, std::optional<CpuConfig> config)
      -> llvm::Expected<std::shared_ptr<const Kernel>> {
    if (source)
      *source = from;
    // Without a tuned config, the default heuristic for this row count.
    if (!config)
      config = getDefaultCpuConfigForRows(spec, rows);
    // Kernels run on the thread count they were asked (and tuned) for.
    if (options.threads > 0)
      config->threads = options.threads;
    return context.getKernel(spec, config);
  };
  if (policy == TuningPolicy::Heuristic)
    return finish(ConfigSource::Default, std::nullopt);
  if (llvm::Error error = statusToError(normjit_kernel_spec_validate(&spec)))
    return std::move(error);
  if (llvm::Error error = checkThreadMayCompile()) // (before any tuning)
    return std::move(error);
  CacheKey key = makeCacheKey(spec, rows, options.threads);
  key.coldCache = options.coldCache; // what the tuning below would store
  // The cache object is not thread-safe: every access holds `mutex`, and so
  // does a tuning run (others asking meanwhile wait for its result rather
  // than tune the same spec again).
  std::unique_lock<std::mutex> lock(mutex);
  if (std::optional<CacheEntry> entry = cache.lookup(key)) {
    ConfigSource from = sourceOf(*entry);
    lock.unlock();
    return finish(from, entry->config);
  }
  if (policy == TuningPolicy::CacheOnly || rows < 1) {
    lock.unlock();
    return finish(ConfigSource::Default, std::nullopt);
  }
  auto tuned = tuneCpu(context, spec, rows, options);
  if (!tuned) {
    // A spec the tuner cannot take (a row too large for a tuning workload,
    // every candidate failing) still gets a kernel: the default heuristic,
    // as without the policy, and stderr says why. (A spec that cannot be
    // compiled at all fails there too, with its own error.)
    llvm::errs() << "normjit: warning: cannot tune "
                 << getSpecKey(spec) << " at " << rows << " rows ("
                 << llvm::toString(tuned.takeError())
                 << "); using the default heuristic\n";
    lock.unlock();
    return finish(ConfigSource::Default, std::nullopt);
  }
  ConfigSource from = storeOrRemember(makeCacheEntry(spec, rows, *tuned));
  lock.unlock();
  return finish(from, tuned->best);
}

llvm::Expected<std::shared_ptr<const CompiledGpuKernel>>
TunedKernels::getGpuKernel(const normjit_kernel_spec_t &spec, int64_t rows,
                           int device, ConfigSource *source) {
  auto finish = [&](ConfigSource from, std::optional<GpuConfig> config)
      -> llvm::Expected<std::shared_ptr<const CompiledGpuKernel>> {
    if (source)
      *source = from;
    return context.getGpuKernel(spec, device, config);
  };
  if (policy == TuningPolicy::Heuristic)
    return finish(ConfigSource::Default, std::nullopt);
  if (llvm::Error error = statusToError(normjit_kernel_spec_validate(&spec)))
    return std::move(error);
  if (llvm::Error error = checkThreadMayCompile()) // (before any tuning)
    return std::move(error);
  auto key = makeGpuCacheKey(spec, rows, device);
  if (!key)
    return key.takeError();
  key->coldCache = options.coldCache;
  std::unique_lock<std::mutex> lock(mutex);
  if (std::optional<CacheEntry> entry = cache.lookup(*key)) {
    ConfigSource from = sourceOf(*entry);
    lock.unlock();
    // The key's device is this GPU's fingerprint, so the entry holds a GPU
    // config (the cache reads nothing else under a CUDA device).
    if (entry->isGpu())
      return finish(from, entry->gpuConfig);
    return finish(ConfigSource::Default, std::nullopt);
  }
  if (policy == TuningPolicy::CacheOnly || rows < 1) {
    lock.unlock();
    return finish(ConfigSource::Default, std::nullopt);
  }
  auto tuned = tuneGpu(context, spec, rows, device, options);
  if (!tuned)
    return tuned.takeError();
  ConfigSource from = storeOrRemember(makeGpuCacheEntry(spec, rows, *tuned));
  lock.unlock();
  return finish(from, tuned->best);
}
