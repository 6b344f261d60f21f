//===- Tuner.cpp - tune one kernel spec on the CPU or a GPU ---------------===//
//
// Part of normjit. Implements tuneCpu, tuneGpu and the cache-entry helpers.
// Both backends run the same search (CandidateSearch): check a candidate
// before its first timing, score it by GB/s, rank with the strategy, and
// let a final among the best few and the default decide the winner.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/Tuner.h"

#include "normjit/tuner/Measure.h"
#include "normjit/tuner/SearchSpace.h"

#include "llvm/Config/llvm-config.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

using namespace normjit;
using namespace normjit::tuner;

namespace {
using Clock = std::chrono::steady_clock;

/// The final of a search: the best kFinalists candidates besides the
/// default, timed in kFinalRounds rounds (kMinFinalRounds when out of budget);
/// a finalist must beat those preferred to it by more than kWinMargin.
constexpr size_t kFinalists = 3;
constexpr int kFinalRounds = 5;
constexpr int kMinFinalRounds = 3;
constexpr double kWinMargin = 0.02;
/// The share of the budget the search may spend before it stops drawing
/// candidates: the rest is for the final (and, on the CPU, the careful
/// timing of the other fusion form), so that a spec tunes in about the
/// budget (2048x4096 RMSNorm + residual, 128 MiB of workload: 2.8-3.1 s
/// with a 2 s budget when the search could spend all of it).
constexpr double kSearchShare = 0.75;
/// Rows of the workload candidates are checked on (every one distinct).
constexpr int64_t kCheckRows = 97;
/// On the GPU a sample lasts at least this long (a batch of launches
/// between two events): long against the events' resolution of about half
/// a microsecond.
constexpr double kGpuMinSampleSeconds = 100e-6;

TimingOptions timingFor(int effort, bool coldCache) {
  TimingOptions options;
  options.coldCache = coldCache;
  switch (effort) {
  case 0:
    options.warmup = 1;
    options.minSamples = 3;
    options.maxSamples = 5;
    options.maxSeconds = 0.02;
    break;
  case 1:
    options.minSamples = 5;
    options.maxSamples = 25;
    options.maxSeconds = 0.06;
    break;
  default:
    options.warmup = 3;
    options.minSamples = 9;
    options.maxSamples = 80;
    options.maxSeconds = 0.2;
    break;
  }
  return options;
}

/// The share of the budget compiling may take: candidates not compiled
/// by then are left out (the default is always compiled), so that a tiny
/// budget or a large exhaustive space still ends near the budget.
constexpr double kCompileShare = 0.4;

/// Compiles the candidates in order, a few at a time, with `compile` (which
/// must be thread-safe), until `outOfTime` says so (the first `always`
/// candidates are compiled regardless: the default, and on the CPU the
/// default for the row count). A candidate left out has no kernel and no
/// error.
template <typename KernelPtr, typename Config, typename Compile>
std::vector<KernelPtr>
compileAll(const std::vector<Config> &configs, unsigned threads,
           std::vector<std::string> &errors,
           Compile compile, const std::function<bool()> &outOfTime,
           size_t always = 1) {
  std::vector<KernelPtr> kernels(configs.size());
  errors.assign(configs.size(), "");
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < configs.size(); i = next++) {
      if (i >= always && outOfTime())
        break;
      auto kernel = compile(configs[i]);
      if (kernel)
        kernels[i] = std::move(*kernel);
      else
        errors[i] = "compile error: " + llvm::toString(kernel.takeError());
    }
  };
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(
      std::min<size_t>(threads, std::max<size_t>(configs.size(), 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &thread : pool)
    thread.join();
  return kernels;
}

/// How a backend checks and times candidate `i` (its position in the
/// candidate list; 0 is the default config).
struct CandidateHooks {
  /// Whether candidate i compiled.
  std::function<bool(size_t)> compiled;
  /// Runs candidate i once and compares with the reference.
  std::function<llvm::Error(size_t)> check;
  /// Times candidate i.
  std::function<llvm::Expected<Timing>(size_t, const TimingOptions &)> time;
  /// The timing options for an effort (0 quick .. 2 careful).
  std::function<TimingOptions(int)> timing;
};

/// The search both backends share, filling the common fields of a
/// BasicTuneResult.
template <typename Config> class CandidateSearch {
public:
  CandidateSearch(const std::vector<Config> &candidates,
                  std::vector<std::string> compileErrors, CandidateHooks hooks,
                  const TuneOptions &options, Clock::time_point start,
                  BasicTuneResult<Config> &result)
      : candidates(candidates), compileErrors(std::move(compileErrors)),
        hooks(std::move(hooks)), options(options), start(start), result(result),
        checked(candidates.size(), 0) {}

  /// Searches; sets best, runner-up, the default's careful GB/s and the
  /// candidate count. Fails when no candidate compiled and passed.
  llvm::Error run() {
    // Candidates compiled, or tried and failed (not those left out when
    // compiling ran out of its share of the budget); counted before the
    // search records, and clears, the compile errors.
    int64_t tried = 0;
    for (size_t i = 0; i < candidates.size(); ++i)
      tried += hooks.compiled(i) || !compileErrors[i].empty();
    std::vector<size_t> positions;
    for (size_t i = 0; i < candidates.size(); ++i)
      positions.push_back(i);
    found = searchPool(
        positions, options.strategy,
        [&](size_t i, int effort) { return evaluate(i, effort); },
        [&] { return outOfBudget(kSearchShare); });
    result.candidates = tried;
    if (found.ranking.empty())
      return makeError(
          NORMJIT_INTERNAL,
          "no candidate compiled, passed the reference check and was "
          "timed (" +
              std::to_string(result.failures.size()) + " failures; first: " +
              (result.failures.empty() ? std::string("none")
                                       : result.failures.front()) +
              ")");
    result.best = candidates[found.ranking[0].first];
    result.bestGbps = found.ranking[0].second;
    if (found.ranking.size() > 1) {
      result.runnerUp = candidates[found.ranking[1].first];
      result.runnerUpGbps = found.ranking[1].second;
    }
    result.defaultGbps = careful(0);
    return llvm::Error::success();
  }

  /// The score of candidate i at the highest effort (measured now if it
  /// was not yet); 0 if it fails.
  double careful(size_t i) {
    auto it = scores.find({i, 2});
    if (it != scores.end())
      return it->second;
    std::optional<double> score = evaluate(i, 2);
    return score ? *score : 0.0;
  }

  /// The final: the default and the best few of the search, timed in
  /// turns so that they all see the same machine state, decide the winner.
  /// Finalists other than the default are the search's best kFinalists
  /// (however close their scores: one noisy score must not decide), taken
  /// in candidate order (the seeded draw, not the noisy ranking), and a
  /// finalist must beat every one before it by more than the noise margin: the
  /// default stays unless beaten, so a tuned config is never slower than the
  /// default it replaces, and near-ties are settled the same way each time
  /// a spec is tuned again.
  /// With `baseline` (the CPU's default for the row count, where it is
  /// another config), that candidate runs in the final too, right after
  /// the default (checked first if the search did not get to it), so that
  /// its GB/s is measured beside the default's and the winner's; a
  /// finalist after it must beat it too.
  void runFinal() {
    std::vector<size_t> finalists;
    if (hooks.compiled(0) && checked[0] > 0)
      finalists.push_back(0);
    if (baseline && *baseline != 0 && hooks.compiled(*baseline)) {
      if (checked[*baseline] == 0)
        (void)evaluate(*baseline, 0);
      if (checked[*baseline] > 0)
        finalists.push_back(*baseline);
    }
    // Past the budget already: the best one alone against the default.
    size_t wanted = outOfBudget() ? 1 : kFinalists;
    std::vector<size_t> others;
    for (const auto &[index, score] : found.ranking)
      if (index != 0 && index != baseline && others.size() < wanted)
        others.push_back(index);
    std::sort(others.begin(), others.end());
    finalists.insert(finalists.end(), others.begin(), others.end());
    if (finalists.size() < 2) {
      if (found.ranking[0].first == 0)
        result.defaultGbps = result.bestGbps;
      return;
    }
    FinalResult final = tuner::runFinal(
        finalists, kFinalRounds, kMinFinalRounds, kWinMargin,
        [&](size_t i, int effort) -> std::optional<double> {
          auto timing = hooks.time(i, hooks.timing(effort));
          if (!timing) {
            llvm::consumeError(timing.takeError());
            return std::nullopt;
          }
          return timing->gbps;
        },
        [&] { return outOfBudget(); });
    if (!final.winner)
      return; // every final timing failed: keep the search's ranking
    for (size_t k = 0; k < finalists.size(); ++k)
      if (final.medians[k])
        finalScores[finalists[k]] = *final.medians[k];
    size_t winner = finalists[*final.winner];
    result.best = candidates[winner];
    result.bestGbps = finalScores[winner];
    std::optional<size_t> second;
    for (const auto &[index, gbps] : finalScores)
      if (index != winner && (!second || gbps > finalScores[*second]))
        second = index;
    if (second) {
      result.runnerUp = candidates[*second];
      result.runnerUpGbps = finalScores[*second];
    }
    if (finalScores.count(0))
      result.defaultGbps = finalScores[0];
  }

  /// Whether `share` of the budget is spent.
  bool outOfBudget(double share = 1.0) const {
    return std::chrono::duration<double>(Clock::now() - start).count() >
           share * options.budgetSeconds;
  }

  const std::vector<Config> &candidates;
  /// A candidate the final always times (see runFinal).
  std::optional<size_t> baseline;
  SearchResult found;
  /// Median GB/s of the finalists in the final, by candidate.
  std::map<size_t, double> finalScores;
  /// Scores by (candidate, effort).
  std::map<std::pair<size_t, int>, double> scores;

private:
  std::optional<double> evaluate(size_t i, int effort) {
    if (!hooks.compiled(i)) {
      if (!compileErrors[i].empty()) {
        result.failures.push_back(candidates[i].str() + ": " +
                                  compileErrors[i]);
        compileErrors[i].clear();
      }
      return std::nullopt;
    }
    if (checked[i] == 0) {
      if (llvm::Error error = hooks.check(i)) {
        result.failures.push_back(candidates[i].str() + ": " +
                                  llvm::toString(std::move(error)));
        checked[i] = -1;
      } else {
        checked[i] = 1;
      }
    }
    if (checked[i] < 0)
      return std::nullopt;
    auto timing = hooks.time(i, hooks.timing(effort));
    if (!timing) {
      result.failures.push_back(candidates[i].str() + ": " +
                                llvm::toString(timing.takeError()));
      checked[i] = -1;
      return std::nullopt;
    }
    scores[{i, effort}] = timing->gbps;
    return timing->gbps;
  }

  std::vector<std::string> compileErrors;
  CandidateHooks hooks;
  const TuneOptions &options;
  Clock::time_point start;
  BasicTuneResult<Config> &result;
  std::vector<int> checked; ///< 0 unknown, 1 ok, -1 bad
};

/// Bytes of one row of the workload's row buffers.
int64_t getRowBytes(const normjit_kernel_spec_t &spec) {
  int64_t element = static_cast<int64_t>(normjit_dtype_size(spec.x_dtype) +
                                         normjit_dtype_size(spec.y_dtype));
  if (spec.has_residual)
    element += static_cast<int64_t>(normjit_dtype_size(spec.residual_dtype) +
                                    normjit_dtype_size(spec.sum_dtype));
  return spec.cols * element;
}

llvm::Error checkTuneArguments(const normjit_kernel_spec_t &spec,
                               int64_t rows) {
  if (llvm::Error error = checkTunable(spec))
    return error;
  if (rows < 1)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "tuning needs at least one row, got " +
                         std::to_string(rows));
  return llvm::Error::success();
}

} // namespace

int64_t normjit::tuner::getWorkloadBytes(double budgetSeconds) {
  constexpr double kBytesPerSecond = double(int64_t(256) << 20);
  constexpr int64_t kMinBytes = int64_t(64) << 20;
  if (!(budgetSeconds > 0))
    return kMaxWorkloadBytes;
  return static_cast<int64_t>(
      std::clamp(budgetSeconds * kBytesPerSecond, double(kMinBytes),
                 double(kMaxWorkloadBytes)));
}

int64_t normjit::tuner::getMeasuredRows(const normjit_kernel_spec_t &spec,
                                        int64_t rows, double budgetSeconds) {
  return std::max<int64_t>(
      1, std::min(rows, getWorkloadBytes(budgetSeconds) /
                            std::max<int64_t>(getRowBytes(spec), 1)));
}

llvm::Error normjit::tuner::checkTunable(const normjit_kernel_spec_t &spec) {
  if (llvm::Error error = statusToError(normjit_kernel_spec_validate(&spec)))
    return error;
  int64_t rowBytes = getRowBytes(spec);
  if (rowBytes > kMaxWorkloadBytes)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "one row of " + std::to_string(spec.cols) +
                         " columns takes " + std::to_string(rowBytes >> 20) +
                         " MiB of buffers, more than the " +
                         std::to_string(kMaxWorkloadBytes >> 20) +
                         " MiB a tuning workload may use");
  return llvm::Error::success();
}

namespace {
double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}
} // namespace

llvm::Expected<TuneResult>
normjit::tuner::tuneCpu(Context &context, const normjit_kernel_spec_t &spec,
                        int64_t rows, const TuneOptions &options) {
  auto start = Clock::now();
  if (llvm::Error error = checkTuneArguments(spec, rows))
    return std::move(error);
  rows = getMeasuredRows(spec, rows, options.budgetSeconds);

  // The candidates the strategy will look at (the default first), compiled
  // up front, in parallel.
  std::vector<CpuConfig> candidates =
      pickCpuCandidates(buildCpuSearchSpace(spec, rows), options.strategy);
  if (options.threads > 0) {
    // Every candidate on the caller's thread count (configs that differed
    // only in threads become one).
    std::vector<CpuConfig> onThreads;
    for (CpuConfig config : candidates) {
      config.threads = options.threads;
      if (llvm::find(onThreads, config) == onThreads.end())
        onThreads.push_back(config);
    }
    candidates = std::move(onThreads);
  }
  TuneResult result;
  result.threads = options.threads;
  result.coldCache = options.coldCache;
  result.defaultConfig = candidates.front();
  // The default for the row count (what TunedKernels gives without a cache
  // entry), where it is another config: the second candidate, always
  // compiled and timed in the final, so that reports can say what tuning
  // gains over it too.
  CpuConfig rowsDefault = getDefaultCpuConfigForRows(spec, rows);
  if (options.threads > 0)
    rowsDefault.threads = options.threads;
  std::optional<size_t> baseline;
  if (!(rowsDefault == candidates.front())) {
    // (Where the strategy did not pick it, it comes on top of those it
    // picked, which all stay: a residual spec keeps its other fusion form.)
    auto at = llvm::find(candidates, rowsDefault);
    if (at != candidates.end())
      candidates.erase(at);
    candidates.insert(candidates.begin() + 1, rowsDefault);
    baseline = 1;
    result.rowsDefault = rowsDefault;
  }
  std::vector<std::string> compileErrors;
  auto kernels = compileAll<std::shared_ptr<const Kernel>>(
      candidates, options.compileThreads, compileErrors,
      [&](const CpuConfig &config) { return context.getKernel(spec, config); },
      [&] {
        return secondsSince(start) > kCompileShare * options.budgetSeconds;
      },
      baseline ? 2 : 1);

  Workload timingWorkload(spec, rows);
  Workload checkWorkload(spec, std::min<int64_t>(rows, kCheckRows), 99);
  CandidateHooks hooks;
  hooks.compiled = [&](size_t i) { return kernels[i] != nullptr; };
  hooks.check = [&](size_t i) { return checkWorkload.check(*kernels[i]); };
  hooks.time = [&](size_t i, const TimingOptions &timing) {
    return timeKernel(*kernels[i], timingWorkload, timing);
  };
  hooks.timing = [&](int effort) {
    return timingFor(effort, options.coldCache);
  };
  CandidateSearch<CpuConfig> search(candidates, std::move(compileErrors),
                                    std::move(hooks), options, start, result);
  search.baseline = baseline;
  if (llvm::Error error = search.run())
    return std::move(error);

  search.runFinal();
  if (baseline && search.finalScores.count(*baseline))
    result.rowsDefaultGbps = search.finalScores[*baseline];

  if (spec.has_residual) {
    // Which form won, and by how much: against the best finalist of the
    // other form, or else the best the search saw of it, measured now as
    // carefully as the winner.
    bool bestFused = result.best.fuseResidual;
    result.fusion = bestFused ? "fused" : "split";
    std::optional<double> otherGbps;
    for (const auto &[index, gbps] : search.finalScores)
      if (candidates[index].fuseResidual != bestFused &&
          (!otherGbps || gbps > *otherGbps))
        otherGbps = gbps;
    if (!otherGbps) {
      std::optional<size_t> other;
      for (const auto &[index, score] : search.found.ranking)
        if (candidates[index].fuseResidual != bestFused) {
          other = index;
          break;
        }
      if (!other) {
        double bestEarly = -1;
        for (const auto &[key, score] : search.scores)
          if (candidates[key.first].fuseResidual != bestFused &&
              score > bestEarly) {
            bestEarly = score;
            other = key.first;
          }
      }
      if (other)
        otherGbps = search.careful(*other);
    }
    if (otherGbps && *otherGbps > 0)
      result.fusionMargin = result.bestGbps / *otherGbps;
  }

  result.seconds = secondsSince(start);
  return result;
}

llvm::Expected<GpuTuneResult>
normjit::tuner::tuneGpu(Context &context, const normjit_kernel_spec_t &spec,
                        int64_t rows, int device, const TuneOptions &options) {
  auto start = Clock::now();
  if (llvm::Error error = checkTuneArguments(spec, rows))
    return std::move(error);
  rows = getMeasuredRows(spec, rows, options.budgetSeconds);
  // The device first: its target shapes the search space, its fingerprint
  // keys the result.
  auto target = getGpuTarget(device);
  if (!target)
    return target.takeError();
  normjit_cuda_device_info_t info;
  if (normjit_status_t status = normjit_cuda_device_info(device, &info))
    return statusToError(status);
  auto fingerprint = getGpuFingerprint(device);
  if (!fingerprint)
    return fingerprint.takeError();

  std::vector<GpuConfig> candidates = pickGpuCandidates(
      buildGpuSearchSpace(spec, rows, *target), options.strategy);
  GpuTuneResult result;
  result.coldCache = options.coldCache;
  result.device = device;
  result.deviceName = info.name;
  result.fingerprint = *fingerprint;
  result.defaultConfig = candidates.front();
  std::vector<std::string> compileErrors;
  auto kernels = compileAll<std::shared_ptr<const CompiledGpuKernel>>(
      candidates, options.compileThreads, compileErrors,
      [&](const GpuConfig &config) {
        return context.getGpuKernel(spec, device, config);
      },
      [&] {
        return secondsSince(start) > kCompileShare * options.budgetSeconds;
      });

  // Device buffers, allocated and uploaded once for all candidates.
  auto timingWorkload = GpuWorkload::create(spec, rows, device);
  if (!timingWorkload)
    return timingWorkload.takeError();
  auto checkWorkload = GpuWorkload::create(
      spec, std::min<int64_t>(rows, kCheckRows), device, 99);
  if (!checkWorkload)
    return checkWorkload.takeError();
  CandidateHooks hooks;
  hooks.compiled = [&](size_t i) { return kernels[i] != nullptr; };
  hooks.check = [&](size_t i) { return (*checkWorkload)->check(*kernels[i]); };
  hooks.time = [&](size_t i, const TimingOptions &timing) {
    return timeGpuKernel(*kernels[i], **timingWorkload, timing);
  };
  hooks.timing = [&](int effort) {
    TimingOptions timing = timingFor(effort, options.coldCache);
    timing.minSampleSeconds = kGpuMinSampleSeconds;
    return timing;
  };
  CandidateSearch<GpuConfig> search(candidates, std::move(compileErrors),
                                    std::move(hooks), options, start, result);
  if (llvm::Error error = search.run())
    return std::move(error);
  // GPU kernels always fuse the residual add: no fusion decision to record.
  search.runFinal();
  result.seconds = secondsSince(start);
  return result;
}

CacheKey normjit::tuner::makeCacheKey(const normjit_kernel_spec_t &spec,
                                      int64_t rows, llvm::StringRef deviceKey) {
  CacheKey key;
  key.spec = getSpecKey(spec);
  key.rowBucket = getRowBucket(rows);
  key.device = deviceKey.str();
  key.normjitVersion = NORMJIT_VERSION_STRING;
  key.llvmVersion = LLVM_VERSION_STRING;
  return key;
}

CacheKey normjit::tuner::makeCacheKey(const normjit_kernel_spec_t &spec,
                                      int64_t rows, int threads) {
  static const std::string &device = // never destroyed (exit-time callers)
      *new std::string(detectCpuFingerprint().key());
  CacheKey key = makeCacheKey(spec, rows, device);
  key.threads = getCacheThreads(threads);
  return key;
}

int64_t normjit::tuner::getCacheThreads(int threads) {
  if (threads <= 0 || threads >= static_cast<int>(getHostCpu().cores))
    return 0;
  return threads;
}

llvm::Expected<std::string> normjit::tuner::getGpuFingerprint(int device) {
  char buffer[NORMJIT_CUDA_FINGERPRINT_SIZE];
  if (normjit_status_t status =
          normjit_cuda_device_fingerprint(device, buffer, sizeof buffer))
    return statusToError(status);
  std::string fingerprint = buffer;
  // The cache tells GPU entries by their device key; a driver layer that
  // wrote something else must not make a GPU entry look like a CPU one.
  if (!isGpuDeviceKey(fingerprint))
    return makeError(NORMJIT_INTERNAL, "CUDA device fingerprint '" +
                                           fingerprint +
                                           "' does not start with \"cuda\"");
  return fingerprint;
}

llvm::Expected<CacheKey>
normjit::tuner::makeGpuCacheKey(const normjit_kernel_spec_t &spec, int64_t rows,
                                int device) {
  auto fingerprint = getGpuFingerprint(device);
  if (!fingerprint)
    return fingerprint.takeError();
  return makeCacheKey(spec, rows, *fingerprint);
}

namespace {
/// The fields a CPU and a GPU entry share.
template <typename Config>
CacheEntry makeEntry(const normjit_kernel_spec_t &spec, int64_t rows,
                     llvm::StringRef deviceKey,
                     const BasicTuneResult<Config> &result) {
  CacheEntry entry;
  entry.key = makeCacheKey(spec, rows, deviceKey);
  entry.key.coldCache = result.coldCache;
  entry.gbps = result.bestGbps;
  entry.defaultGbps = result.defaultGbps;
  entry.runnerUpGbps = result.runnerUp ? result.runnerUpGbps : 0;
  entry.fusion = result.fusion;
  entry.fusionMargin = result.fusionMargin;
  entry.candidates = result.candidates;
  entry.tunedAt = getUtcTimestamp();
  return entry;
}
} // namespace

CacheEntry normjit::tuner::makeCacheEntry(const normjit_kernel_spec_t &spec,
                                          int64_t rows,
                                          const TuneResult &result) {
  CacheEntry entry =
      makeEntry(spec, rows, makeCacheKey(spec, rows).device, result);
  entry.key.threads = getCacheThreads(result.threads);
  entry.config = result.best;
  entry.runnerUp = result.runnerUp;
  return entry;
}

CacheEntry normjit::tuner::makeGpuCacheEntry(const normjit_kernel_spec_t &spec,
                                             int64_t rows,
                                             const GpuTuneResult &result) {
  CacheEntry entry = makeEntry(spec, rows, result.fingerprint, result);
  entry.gpuConfig = result.best;
  entry.gpuRunnerUp = result.runnerUp;
  return entry;
}
