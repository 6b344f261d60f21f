//===- CApi.cpp - normjit_kernel_get_tuned: the C ABI's tuned kernels -----===//
//
// Part of normjit. The tuning-cache half of normjit.h, over TunedKernels: a
// context keeps each cache file it was asked for, read once, and asks it
// under that file's lock (so tuning runs one spec at a time per file).
//
//===----------------------------------------------------------------------===//

#include "CApiHandles.h"

#include "normjit/runtime/Error.h"
#include "normjit/tuner/TunedKernels.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <map>
#include <new>

using namespace normjit;
using namespace normjit::tuner;
using normjit::runtime::setError;

struct normjit::capi::TunedCaches {
  /// One cache file, read on first use.
  struct File {
    explicit File(std::string path) : cache(std::move(path)) {}
    TuningCache cache;
    std::mutex mutex;
  };
  std::map<std::string, std::unique_ptr<File>> files;
};

namespace {
void destroyTunedCaches(capi::TunedCaches *caches) { delete caches; }

/// The file `path` of `context`, read the first time (a file set aside as
/// untrustworthy is reported on stderr).
llvm::Expected<capi::TunedCaches::File *>
getCacheFile(normjit_context_t &context, const std::string &path) {
  std::lock_guard<std::mutex> lock(context.tunedMutex);
  if (!context.tuned)
    context.tuned = {new capi::TunedCaches, destroyTunedCaches};
  std::unique_ptr<capi::TunedCaches::File> &file = context.tuned->files[path];
  if (!file) {
    auto loaded = std::make_unique<capi::TunedCaches::File>(path);
    if (llvm::Error error = loaded->cache.load())
      return std::move(error);
    for (const std::string &warning : loaded->cache.takeWarnings())
      llvm::errs() << "normjit: warning: " << warning << "\n";
    file = std::move(loaded);
  }
  return file.get();
}
} // namespace

extern "C" normjit_tuning_options_t normjit_tuning_options_default(void) {
  normjit_tuning_options_t options;
  options.policy = NORMJIT_TUNING_CACHE_ONLY;
  options.cache_file = nullptr;
  options.budget_seconds = TuneOptions().budgetSeconds;
  options.threads = 0;
  return options;
}

extern "C" normjit_status_t normjit_kernel_get_tuned(
    normjit_context_t *context, const normjit_kernel_spec_t *spec, int64_t rows,
    const char *device, const normjit_tuning_options_t *options,
    normjit_kernel_t **out) {
  if (out) // null on every failure, the checks' too
    *out = nullptr;
  if (!context || !spec || !out)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "context, spec and out must not be null");
  NORMJIT_RETURN_IF_ERROR(normjit_kernel_spec_validate(spec));
  if (rows < 0)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "rows must not be negative, got " + std::to_string(rows));
  normjit_tuning_options_t chosen =
      options ? *options : normjit_tuning_options_default();
  TuningPolicy policy;
  switch (chosen.policy) {
  case NORMJIT_TUNING_HEURISTIC:
    policy = TuningPolicy::Heuristic;
    break;
  case NORMJIT_TUNING_CACHE_ONLY:
    policy = TuningPolicy::CacheOnly;
    break;
  case NORMJIT_TUNING_TUNE_ON_MISS:
    policy = TuningPolicy::TuneOnMiss;
    break;
  default:
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "unknown tuning policy " +
                        std::to_string(static_cast<int>(chosen.policy)) +
                        "; expected heuristic (0), cache-only (1) or "
                        "tune-on-miss (2)");
  }
  if (std::isnan(chosen.budget_seconds))
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "budget_seconds must be a number");
  if (chosen.cache_file && !*chosen.cache_file)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "cache_file must be a path, or NULL for the default "
                    "cache; got an empty string");
  auto ordinal = parseDeviceName(device ? device : "cpu");
  if (!ordinal)
    return errorToStatus(ordinal.takeError());
  if (llvm::Error error = checkThreadMayCompile()) // (before the cache file)
    return errorToStatus(std::move(error));
  if (chosen.threads < 0 || chosen.threads > 1024)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "threads must be in [0, 1024], got " +
                        std::to_string(chosen.threads));
  if (chosen.threads != 0 && *ordinal >= 0)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "threads sets CPU worker threads; it must be 0 for a GPU "
                    "device");

  TuneOptions tuneOptions;
  if (chosen.budget_seconds > 0)
    tuneOptions.budgetSeconds = chosen.budget_seconds;
  tuneOptions.threads = chosen.threads;
  // The heuristic reads no cache file: TunedKernels never looks into this
  // empty one.
  TuningCache none("");
  TuningCache *cache = &none;
  std::unique_lock<std::mutex> lock;
  if (policy != TuningPolicy::Heuristic) {
    auto file = getCacheFile(*context, chosen.cache_file
                                           ? std::string(chosen.cache_file)
                                           : TuningCache::getDefaultPath());
    if (!file)
      return errorToStatus(file.takeError());
    cache = &(*file)->cache;
    lock = std::unique_lock<std::mutex>((*file)->mutex);
  }
  TunedKernels kernels(context->context, *cache, policy, tuneOptions);
  ConfigSource source = ConfigSource::Default;
  if (*ordinal >= 0) {
    auto kernel = kernels.getGpuKernel(*spec, rows, *ordinal, &source);
    if (!kernel)
      return errorToStatus(kernel.takeError());
    return capi::makeKernelHandle(nullptr, std::move(*kernel),
                                  getConfigSourceName(source), out);
  }
  auto kernel = kernels.getKernel(*spec, rows, &source);
  if (!kernel)
    return errorToStatus(kernel.takeError());
  return capi::makeKernelHandle(std::move(*kernel), nullptr,
                                getConfigSourceName(source), out);
}
