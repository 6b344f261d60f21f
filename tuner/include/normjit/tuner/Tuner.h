//===- Tuner.h - tune one kernel spec on the CPU or a GPU --------*- C++ -*-===//
//
// Part of normjit. Compiles the candidates of the search space (in
// parallel), checks each against the fp64 reference before it is timed,
// searches with a strategy under a time budget, and reports the winner, the
// runner-up, the default heuristic's speed and (CPU) the fusion decision.
// The CPU and the GPU share the strategies, the checks and the final (the
// default and the best few timed in turns); they differ in how a candidate runs and is timed (host clock on the
// CPU, CUDA events on a stream on the GPU).
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TUNER_TUNER_H
#define NORMJIT_TUNER_TUNER_H

#include "normjit/JIT/Context.h"
#include "normjit/tuner/Strategy.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/ADT/StringRef.h"

#include <functional>
#include <string>
#include <vector>

namespace normjit::tuner {

struct TuneOptions {
  StrategyOptions strategy;
  /// Wall-clock budget for one spec, compilation included. Candidates are
  /// compiled in the strategy's order until 40% of it is spent (the rest
  /// are left out; the default is always compiled); the search stops
  /// drawing new candidates once three quarters of it are spent; the rest
  /// is for the final (which still runs its minimum rounds when late).
  double budgetSeconds = 2.0;
  /// Cold-cache timing. CPU: evict the caches before every sample. GPU:
  /// flush L2 before every timed launch (each sample is then one launch).
  bool coldCache = false;
  /// Threads compiling candidates (0: all cores).
  unsigned compileThreads = 0;
  /// CPU: the worker threads every candidate runs on (0: all cores, the
  /// search space's choice). The cache entry records it (getCacheThreads).
  int threads = 0;
};

/// What one tuning run found, for the configs of one backend.
template <typename Config> struct BasicTuneResult {
  Config best;
  double bestGbps = 0;
  std::optional<Config> runnerUp;
  double runnerUpGbps = 0;
  Config defaultConfig;
  double defaultGbps = 0;
  /// CPU: the default for the row count (getDefaultCpuConfigForRows, what
  /// TunedKernels gives without a cache entry) where it is another config
  /// than defaultConfig, and its GB/s in the final (0 when the final did
  /// not time it). The winner beats it by more than the noise or is it.
  std::optional<Config> rowsDefault;
  double rowsDefaultGbps = 0;
  /// CPU: "fused"/"split" for residual specs (which form won), else empty;
  /// margin = winner GB/s / best GB/s of the other form. GPU: always empty
  /// (its kernels always fuse the residual add; there is no choice).
  std::string fusion;
  double fusionMargin = 0;
  int64_t candidates = 0;            ///< configs compiled and considered
  std::vector<std::string> failures; ///< "config: why", compile or check
  double seconds = 0;                ///< wall time of the whole run
  int threads = 0; ///< CPU: TuneOptions::threads of the run (0: all cores)
  bool coldCache = false; ///< TuneOptions::coldCache of the run
};

/// A CPU tuning result.
using TuneResult = BasicTuneResult<CpuConfig>;

/// A GPU tuning result, with the device it was measured on.
struct GpuTuneResult : BasicTuneResult<GpuConfig> {
  int device = 0;          ///< CUDA ordinal
  std::string deviceName;  ///< e.g. "NVIDIA H100 80GB HBM3"
  std::string fingerprint; ///< the device key of its cache entry
};

/// The most bytes the row buffers of a tuning workload (x, y, the residual
/// and the sum) may take: a spec is tuned for more rows than fit on as
/// many as fit (at least one; a spec whose single row does not fit is
/// refused).
constexpr int64_t kMaxWorkloadBytes = int64_t(512) << 20;

/// The workload cap for a budget: 256 MiB per second of budget, at least
/// 64 MiB (past any last-level cache, so a large spec's measurement still
/// streams from memory) and at most kMaxWorkloadBytes. A call on 512 MiB
/// takes tens of milliseconds: a search and its final time dozens of
/// calls, which a short budget cannot pay for.
int64_t getWorkloadBytes(double budgetSeconds);

/// Rows of `spec` a tuning for `rows` rows within `budgetSeconds`
/// measures: `rows`, or as many as fit in getWorkloadBytes (at least 1).
int64_t getMeasuredRows(const normjit_kernel_spec_t &spec, int64_t rows,
                        double budgetSeconds);

/// Whether `spec` can be tuned: a valid spec whose one row fits in
/// kMaxWorkloadBytes.
llvm::Error checkTunable(const normjit_kernel_spec_t &spec);

/// Tunes `spec` for `rows` rows on this CPU (measured on getMeasuredRows).
llvm::Expected<TuneResult> tuneCpu(Context &context,
                                   const normjit_kernel_spec_t &spec,
                                   int64_t rows, const TuneOptions &options);

/// Tunes `spec` for `rows` rows on CUDA device `device`: candidates from
/// buildGpuSearchSpace for the device's target, compiled to PTX and loaded
/// (a failure is recorded, not fatal), each checked against the fp64
/// reference (outputs copied back) before it is timed with CUDA events on a
/// stream. Without a driver or device: NORMJIT_DEVICE_ERROR, saying so.
llvm::Expected<GpuTuneResult> tuneGpu(Context &context,
                                      const normjit_kernel_spec_t &spec,
                                      int64_t rows, int device,
                                      const TuneOptions &options);

/// The cache key of `spec` at `rows` rows on this machine's CPU with this
/// build, for kernels run on `threads` worker threads (getCacheThreads).
CacheKey makeCacheKey(const normjit_kernel_spec_t &spec, int64_t rows,
                      int threads = 0);

/// The thread count a CPU cache key records for kernels run on `threads`
/// worker threads: 0 (all cores) for 0, or for as many threads as the host
/// has cores or more; else `threads`.
int64_t getCacheThreads(int threads);

/// The cache key of `spec` at `rows` rows on the device whose fingerprint
/// (DeviceFingerprint::key() or a CUDA fingerprint) is `deviceKey`, with
/// this build.
CacheKey makeCacheKey(const normjit_kernel_spec_t &spec, int64_t rows,
                      llvm::StringRef deviceKey);

/// The fingerprint of CUDA device `device` (normjit_cuda_device_fingerprint):
/// the device key of its cache entries.
llvm::Expected<std::string> getGpuFingerprint(int device);

/// The cache key of `spec` at `rows` rows on CUDA device `device`.
llvm::Expected<CacheKey> makeGpuCacheKey(const normjit_kernel_spec_t &spec,
                                         int64_t rows, int device);

/// The cache entry recording `result`.
CacheEntry makeCacheEntry(const normjit_kernel_spec_t &spec, int64_t rows,
                          const TuneResult &result);

/// The cache entry recording a GPU `result` (keyed by its fingerprint).
CacheEntry makeGpuCacheEntry(const normjit_kernel_spec_t &spec, int64_t rows,
                             const GpuTuneResult &result);

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_TUNER_H
