//===- Tuner.cpp - tune one kernel spec on this CPU -----------------------===//
//
// Part of normjit. Implements tuneCpu and the cache-entry helpers.
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

/// Alternating timings of the winner and the default before the winner may
/// replace the default, and by how much it must be faster.
constexpr int kHeadToHeadRounds = 5;
constexpr double kWinMargin = 0.02;

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

/// Compiles every candidate, a few at a time.
std::vector<std::shared_ptr<const Kernel>>
compileAll(Context &context, const normjit_kernel_spec_t &spec,
           const std::vector<CpuConfig> &configs, unsigned threads,
           std::vector<std::string> &errors) {
  std::vector<std::shared_ptr<const Kernel>> kernels(configs.size());
  errors.assign(configs.size(), "");
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < configs.size(); i = next++) {
      auto kernel = context.getKernel(spec, configs[i]);
      if (kernel)
        kernels[i] = std::move(*kernel);
      else
        errors[i] = "compile error: " + llvm::toString(kernel.takeError());
    }
  };
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &thread : pool)
    thread.join();
  return kernels;
}
} // namespace

llvm::Expected<TuneResult>
normjit::tuner::tuneCpu(Context &context, const normjit_kernel_spec_t &spec,
                        int64_t rows, const TuneOptions &options) {
  auto start = Clock::now();
  if (llvm::Error error = statusToError(normjit_kernel_spec_validate(&spec)))
    return std::move(error);
  if (rows < 1)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "tuning needs at least one row, got " +
                         std::to_string(rows));

  std::vector<CpuConfig> space = buildCpuSearchSpace(spec, rows);
  // The candidates the strategy will look at (space index 0: the default),
  // compiled up front, in parallel.
  std::vector<size_t> pool = drawCandidates(space.size(), options.strategy);
  std::vector<CpuConfig> candidates;
  for (size_t index : pool)
    candidates.push_back(space[index]);

  TuneResult result;
  result.defaultConfig = candidates.front();
  std::vector<std::string> compileErrors;
  std::vector<std::shared_ptr<const Kernel>> kernels = compileAll(
      context, spec, candidates, options.compileThreads, compileErrors);

  Workload timingWorkload(spec, rows);
  Workload checkWorkload(spec, std::min<int64_t>(rows, 97), 99);
  std::vector<int> checked(candidates.size(), 0); // 0 unknown, 1 ok, -1 bad
  std::map<std::pair<size_t, int>, double> scores;
  auto describe = [&](size_t i) { return candidates[i].str(); };

  // The strategy sees candidates by their position in `candidates`.
  Evaluator evaluate = [&](size_t i, int effort) -> std::optional<double> {
    if (!kernels[i]) {
      if (!compileErrors[i].empty()) {
        result.failures.push_back(describe(i) + ": " + compileErrors[i]);
        compileErrors[i].clear();
      }
      return std::nullopt;
    }
    if (checked[i] == 0) {
      if (llvm::Error error = checkWorkload.check(*kernels[i])) {
        result.failures.push_back(describe(i) + ": " +
                                  llvm::toString(std::move(error)));
        checked[i] = -1;
      } else {
        checked[i] = 1;
      }
    }
    if (checked[i] < 0)
      return std::nullopt;
    auto timing = timeKernel(*kernels[i], timingWorkload,
                             timingFor(effort, options.coldCache));
    if (!timing) {
      result.failures.push_back(describe(i) + ": " +
                                llvm::toString(timing.takeError()));
      checked[i] = -1;
      return std::nullopt;
    }
    scores[{i, effort}] = timing->gbps;
    return timing->gbps;
  };
  auto outOfBudget = [&] {
    return std::chrono::duration<double>(Clock::now() - start).count() >
           options.budgetSeconds;
  };
  std::vector<size_t> positions;
  for (size_t i = 0; i < candidates.size(); ++i)
    positions.push_back(i);
  SearchResult found =
      searchPool(positions, options.strategy, evaluate, outOfBudget);
  result.candidates = static_cast<int64_t>(candidates.size());
  if (found.ranking.empty())
    return makeError(NORMJIT_INTERNAL,
                     "no candidate compiled and passed the reference check (" +
                         std::to_string(result.failures.size()) +
                         " failures; first: " +
                         (result.failures.empty() ? std::string("none")
                                                  : result.failures.front()) +
                         ")");

  auto careful = [&](size_t i) -> double {
    auto it = scores.find({i, 2});
    if (it != scores.end())
      return it->second;
    std::optional<double> score = evaluate(i, 2);
    return score ? *score : 0.0;
  };
  result.best = candidates[found.ranking[0].first];
  result.bestGbps = found.ranking[0].second;
  if (found.ranking.size() > 1) {
    result.runnerUp = candidates[found.ranking[1].first];
    result.runnerUpGbps = found.ranking[1].second;
  }
  result.defaultGbps = careful(0);

  if (spec.has_residual) {
    // Which form won the search, and by how much: the best of the other
    // form, measured as carefully (decided before the head-to-head below,
    // which only ever falls back to the default, a fused config).
    bool bestFused = result.best.fuseResidual;
    std::optional<size_t> other;
    for (const auto &[index, score] : found.ranking)
      if (candidates[index].fuseResidual != bestFused) {
        other = index;
        break;
      }
    if (!other) {
      double bestEarly = -1;
      for (const auto &[key, score] : scores)
        if (candidates[key.first].fuseResidual != bestFused &&
            score > bestEarly) {
          bestEarly = score;
          other = key.first;
        }
    }
    result.fusion = bestFused ? "fused" : "split";
    if (other) {
      double otherGbps = careful(*other);
      result.fusionMargin = otherGbps > 0 ? result.bestGbps / otherGbps : 0;
    }
  }
  // The winner must beat the default in a head-to-head: alternate timings
  // of the two (so both see the same machine state) and keep the default
  // unless the winner's median is ahead by more than the noise margin. A
  // tuned config is then never slower than the default it replaces.
  size_t winner = found.ranking[0].first;
  if (winner != 0 && kernels[0] && checked[0] > 0) {
    std::vector<double> winnerRuns, defaultRuns;
    for (int round = 0; round < kHeadToHeadRounds; ++round) {
      if (round >= 3 && outOfBudget())
        break; // three alternations are enough to decide within budget
      auto forWinner = timeKernel(*kernels[winner], timingWorkload,
                                  timingFor(1, options.coldCache));
      auto forDefault = timeKernel(*kernels[0], timingWorkload,
                                   timingFor(1, options.coldCache));
      if (!forWinner || !forDefault) {
        llvm::consumeError(forWinner.takeError());
        llvm::consumeError(forDefault.takeError());
        continue;
      }
      winnerRuns.push_back(forWinner->gbps);
      defaultRuns.push_back(forDefault->gbps);
    }
    if (!winnerRuns.empty()) {
      auto median = [](std::vector<double> values) {
        std::sort(values.begin(), values.end());
        return values[values.size() / 2];
      };
      double winnerGbps = median(winnerRuns), defaultGbps = median(defaultRuns);
      result.defaultGbps = defaultGbps;
      if (winnerGbps > defaultGbps * (1 + kWinMargin)) {
        result.bestGbps = winnerGbps;
      } else {
        result.runnerUp = result.best;
        result.runnerUpGbps = winnerGbps;
        result.best = candidates[0];
        result.bestGbps = defaultGbps;
        if (spec.has_residual && result.fusion == "split") {
          result.fusion = "fused";
          result.fusionMargin = defaultGbps / winnerGbps;
        }
      }
    }
  } else if (winner == 0) {
    result.defaultGbps = result.bestGbps;
  }

  result.seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

CacheKey normjit::tuner::makeCacheKey(const normjit_kernel_spec_t &spec,
                                      int64_t rows) {
  static const std::string device = detectCpuFingerprint().key();
  CacheKey key;
  key.spec = getSpecKey(spec);
  key.rowBucket = getRowBucket(rows);
  key.device = device;
  key.normjitVersion = "0.1.0";
  key.llvmVersion = LLVM_VERSION_STRING;
  return key;
}

CacheEntry normjit::tuner::makeCacheEntry(const normjit_kernel_spec_t &spec,
                                          int64_t rows,
                                          const TuneResult &result) {
  CacheEntry entry;
  entry.key = makeCacheKey(spec, rows);
  entry.config = result.best;
  entry.gbps = result.bestGbps;
  entry.defaultGbps = result.defaultGbps;
  entry.runnerUp = result.runnerUp;
  entry.runnerUpGbps = result.runnerUpGbps;
  entry.fusion = result.fusion;
  entry.fusionMargin = result.fusionMargin;
  entry.candidates = result.candidates;
  entry.tunedAt = getUtcTimestamp();
  return entry;
}
