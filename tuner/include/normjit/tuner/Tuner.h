//===- Tuner.h - tune one kernel spec on this CPU ----------------*- C++ -*-===//
//
// Part of normjit. Compiles the candidates of the search space (in
// parallel), checks each against the fp64 reference before it is timed,
// searches with a strategy under a time budget, and reports the winner, the
// runner-up, the default heuristic's speed and the fusion decision.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TUNER_TUNER_H
#define NORMJIT_TUNER_TUNER_H

#include "normjit/JIT/Context.h"
#include "normjit/tuner/Strategy.h"
#include "normjit/tuner/TuningCache.h"

#include <functional>
#include <string>
#include <vector>

namespace normjit::tuner {

struct TuneOptions {
  StrategyOptions strategy;
  /// Wall-clock budget for one spec, compilation included. The search
  /// stops drawing new candidates once it is spent (the finalists are still
  /// measured).
  double budgetSeconds = 2.0;
  bool coldCache = false;
  /// Threads compiling candidates (0: all cores).
  unsigned compileThreads = 0;
};

/// What one tuning run found.
struct TuneResult {
  CpuConfig best;
  double bestGbps = 0;
  std::optional<CpuConfig> runnerUp;
  double runnerUpGbps = 0;
  CpuConfig defaultConfig;
  double defaultGbps = 0;
  /// "fused"/"split" for residual specs (which form won), else empty;
  /// margin = winner GB/s / best GB/s of the other form.
  std::string fusion;
  double fusionMargin = 0;
  int64_t candidates = 0;            ///< configs compiled and considered
  std::vector<std::string> failures; ///< "config: why", compile or check
  double seconds = 0;                ///< wall time of the whole run
};

/// Tunes `spec` for `rows` rows on this CPU.
llvm::Expected<TuneResult> tuneCpu(Context &context,
                                   const normjit_kernel_spec_t &spec,
                                   int64_t rows, const TuneOptions &options);

/// The cache key of `spec` at `rows` rows on this machine with this build.
CacheKey makeCacheKey(const normjit_kernel_spec_t &spec, int64_t rows);

/// The cache entry recording `result`.
CacheEntry makeCacheEntry(const normjit_kernel_spec_t &spec, int64_t rows,
                          const TuneResult &result);

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_TUNER_H
