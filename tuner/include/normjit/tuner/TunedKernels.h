//===- TunedKernels.h - kernels with the tuned config when known -*- C++ -*-===//
//
// Part of normjit. Wraps a Context with the tuning cache and a policy: use
// the cached config for this device and build when there is one; on a miss,
// either use the default heuristic, or tune within a budget and remember
// the result. CPU kernels come from entries of this CPU, GPU kernels from
// entries of that CUDA device (by its fingerprint), never the other's.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TUNER_TUNEDKERNELS_H
#define NORMJIT_TUNER_TUNEDKERNELS_H

#include "normjit/tuner/Tuner.h"

#include <mutex>
#include <optional>
#include <string>

namespace normjit::tuner {

/// What a miss in the tuning cache leads to.
enum class TuningPolicy {
  /// ignore the cache: always the default heuristic for the row count
  /// (getDefaultCpuConfigForRows; the GPU's for the spec)
  Heuristic,
  CacheOnly,  ///< the cached config, else the default heuristic
  TuneOnMiss, ///< the cached config, else tune (with a budget) and store;
              ///< a spec the CPU tuner cannot take (a row over its
              ///< workload limit) gets the default, with a warning
};

/// Parses "heuristic", "cache-only" or "tune-on-miss".
std::optional<TuningPolicy> parseTuningPolicy(const std::string &name);

/// Where a kernel's config came from. TunedNotSaved: tuned now, but the
/// cache file could not be written (the entry is kept in memory, and the
/// reason warned about on stderr); TunedEarlierNotSaved: that entry, asked
/// for again.
enum class ConfigSource {
  Default,
  Cache,
  Tuned,
  TunedNotSaved,
  TunedEarlierNotSaved
};
const char *getConfigSourceName(ConfigSource source);

/// Hands out kernels configured by the cache and the policy. Thread-safe.
class TunedKernels {
public:
  TunedKernels(Context &context, TuningCache &cache, TuningPolicy policy,
               TuneOptions options = {});

  /// The kernel for `spec` at `rows` rows (the row count picks the cache's
  /// row bucket). `source`, if given, says where its config came from.
  llvm::Expected<std::shared_ptr<const Kernel>>
  getKernel(const normjit_kernel_spec_t &spec, int64_t rows,
            ConfigSource *source = nullptr);

  /// The kernel for `spec` at `rows` rows on CUDA device `device`, by the
  /// same policy, from (and, tuning, into) that device's cache entries.
  /// Without a driver or device: NORMJIT_DEVICE_ERROR.
  llvm::Expected<std::shared_ptr<const CompiledGpuKernel>>
  getGpuKernel(const normjit_kernel_spec_t &spec, int64_t rows, int device,
               ConfigSource *source = nullptr);

private:
  /// Stores `entry`; when the file cannot be written, keeps it in memory
  /// and warns on stderr.
  ConfigSource storeOrRemember(const CacheEntry &entry);
  /// Where an entry `cache` found came from: the file, or a tuning here
  /// the file did not take.
  ConfigSource sourceOf(const CacheEntry &found) const;

  Context &context;
  TuningCache &cache;
  TuningPolicy policy;
  TuneOptions options;
  std::mutex mutex; ///< guards `cache`; held by a tuning run
};

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_TUNEDKERNELS_H
