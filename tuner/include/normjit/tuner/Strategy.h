//===- Strategy.h - search strategies over a candidate list ------*- C++
//-*-===//
//
// Part of normjit. Exhaustive search, random sampling and successive halving
// (cheap measurement of many candidates, careful measurement of the best
// few), written against an abstract evaluator so that they are deterministic
// for a given seed and testable without timing anything.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TUNER_STRATEGY_H
#define NORMJIT_TUNER_STRATEGY_H

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace normjit::tuner {

enum class StrategyKind { Exhaustive, Random, SuccessiveHalving };

/// Parses "exhaustive", "random" or "halving".
std::optional<StrategyKind> parseStrategyKind(const std::string &name);
const char *getStrategyName(StrategyKind kind);

struct StrategyOptions {
  StrategyKind kind = StrategyKind::SuccessiveHalving;
  uint64_t seed = 0;
  /// Random and successive halving draw at most this many candidates
  /// (candidate 0, the default, always among them).
  size_t maxCandidates = 40;
  /// Successive halving measures this many carefully at the end.
  size_t finalists = 3;
};

/// Measures candidate `index` with effort 0 (a quick look), 1 or 2 (careful)
/// and returns its score (higher is better), or nullopt if it failed: a
/// failed candidate scores -inf and the search goes on.
using Evaluator =
    std::function<std::optional<double>(size_t index, int effort)>;

struct SearchResult {
  /// Candidates measured at the highest effort, best first.
  std::vector<std::pair<size_t, double>> ranking;
  std::vector<size_t> failed; ///< candidates whose evaluation failed
  size_t evaluations = 0;     ///< calls to the evaluator
  bool budgetExhausted = false;
};

/// The candidates a strategy looks at, out of `numCandidates`: all of them
/// for exhaustive search; otherwise candidate 0 (the default) and a seeded
/// random draw of the others, `maxCandidates` in all.
std::vector<size_t> drawCandidates(size_t numCandidates,
                                   const StrategyOptions &options);

/// Searches the candidates in `pool`. `outOfBudget` is asked before each
/// evaluation past a round's minimum; when it says yes the search finishes
/// with what it has (the final round still measures the best one).
SearchResult searchPool(const std::vector<size_t> &pool,
                        const StrategyOptions &options,
                        const Evaluator &evaluate,
                        const std::function<bool()> &outOfBudget);

/// searchPool over drawCandidates(numCandidates, options).
SearchResult search(size_t numCandidates, const StrategyOptions &options,
                    const Evaluator &evaluate,
                    const std::function<bool()> &outOfBudget);

/// The final of a search: a few finalists timed in turns (round r starts
/// with finalist r mod n, so no one always runs first), so that they all
/// see the same state of a noisy machine, and compared by their medians.
struct FinalResult {
  /// Median score per finalist, in the order they were given; nullopt for
  /// a finalist none of whose timings succeeded.
  std::vector<std::optional<double>> medians;
  /// Position in the finalists of the winner; nullopt when all failed.
  std::optional<size_t> winner;
  int rounds = 0; ///< rounds run
};

/// The winner among `medians` (higher is better, in order of preference):
/// the first finalist whose median is within `margin` (relative) of the
/// best one. A near-tie goes to the preferred finalist, so the default
/// (given first) stays unless beaten by more than the noise, and tuning a
/// spec twice settles near-ties the same way.
std::optional<size_t>
pickFinalWinner(const std::vector<std::optional<double>> &medians,
                double margin);

/// Times `finalists` (candidate indices, in order of preference) with
/// `evaluate` at effort 1 for `rounds` rounds, or only `minRounds` once
/// `outOfBudget` says so, and picks the winner with pickFinalWinner.
FinalResult runFinal(const std::vector<size_t> &finalists, int rounds,
                     int minRounds, double margin, const Evaluator &evaluate,
                     const std::function<bool()> &outOfBudget);

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_STRATEGY_H
