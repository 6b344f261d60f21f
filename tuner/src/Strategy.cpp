//===- Strategy.cpp - search strategies over a candidate list -------------===//
//
// Part of normjit. Implements exhaustive search, random sampling and
// successive halving. The random choices use std::mt19937_64 with a plain
// modulo (no std::uniform_int_distribution, whose results differ between
// standard libraries), so a seed picks the same candidates everywhere.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/Strategy.h"

#include <algorithm>
#include <cmath>
#include <random>

using namespace normjit::tuner;

std::optional<StrategyKind>
normjit::tuner::parseStrategyKind(const std::string &name) {
  if (name == "exhaustive")
    return StrategyKind::Exhaustive;
  if (name == "random")
    return StrategyKind::Random;
  if (name == "halving")
    return StrategyKind::SuccessiveHalving;
  return std::nullopt;
}

const char *normjit::tuner::getStrategyName(StrategyKind kind) {
  switch (kind) {
  case StrategyKind::Exhaustive:
    return "exhaustive";
  case StrategyKind::Random:
    return "random";
  case StrategyKind::SuccessiveHalving:
    return "halving";
  }
  return "unknown";
}

namespace {
/// Candidate 0 and a seeded random sample of the others, `count` in all.
std::vector<size_t> samplePool(size_t numCandidates, size_t count,
                               uint64_t seed) {
  std::vector<size_t> others;
  for (size_t i = 1; i < numCandidates; ++i)
    others.push_back(i);
  std::mt19937_64 rng(seed);
  for (size_t i = others.size(); i > 1; --i)
    std::swap(others[i - 1], others[rng() % i]);
  std::vector<size_t> pool = {0};
  for (size_t i = 0; i < others.size() && pool.size() < count; ++i)
    pool.push_back(others[i]);
  return pool;
}

/// Evaluates `pool` at `effort`; returns the survivors sorted best first.
std::vector<std::pair<size_t, double>>
evaluateAll(const std::vector<size_t> &pool, int effort,
            const Evaluator &evaluate, const std::function<bool()> &outOfBudget,
            SearchResult &result, size_t mustEvaluate) {
  std::vector<std::pair<size_t, double>> scored;
  for (size_t i = 0; i < pool.size(); ++i) {
    if (i >= mustEvaluate && outOfBudget()) {
      result.budgetExhausted = true;
      break;
    }
    ++result.evaluations;
    std::optional<double> score = evaluate(pool[i], effort);
    if (!score || !std::isfinite(*score)) {
      if (std::find(result.failed.begin(), result.failed.end(), pool[i]) ==
          result.failed.end())
        result.failed.push_back(pool[i]);
      continue;
    }
    scored.push_back({pool[i], *score});
  }
  // Best first; ties keep the pool's order (stable), so results are
  // deterministic for deterministic scores.
  std::stable_sort(
      scored.begin(), scored.end(),
      [](const auto &a, const auto &b) { return a.second > b.second; });
  return scored;
}
} // namespace

std::vector<size_t>
normjit::tuner::drawCandidates(size_t numCandidates,
                               const StrategyOptions &options) {
  if (options.kind != StrategyKind::Exhaustive)
    return samplePool(numCandidates, std::max<size_t>(options.maxCandidates, 1),
                      options.seed);
  std::vector<size_t> all;
  for (size_t i = 0; i < numCandidates; ++i)
    all.push_back(i);
  return all;
}

SearchResult normjit::tuner::search(size_t numCandidates,
                                    const StrategyOptions &options,
                                    const Evaluator &evaluate,
                                    const std::function<bool()> &outOfBudget) {
  return searchPool(drawCandidates(numCandidates, options), options, evaluate,
                    outOfBudget);
}

SearchResult normjit::tuner::searchPool(
    const std::vector<size_t> &candidates, const StrategyOptions &options,
    const Evaluator &evaluate, const std::function<bool()> &outOfBudget) {
  SearchResult result;
  if (candidates.empty())
    return result;
  std::vector<size_t> pool = candidates;
  if (options.kind != StrategyKind::SuccessiveHalving) {
    result.ranking = evaluateAll(pool, 2, evaluate, outOfBudget, result, 1);
    return result;
  }

  // Successive halving: a quick look at everyone, a closer look at the best
  // third, a careful measurement of the finalists.
  size_t finalists = std::max<size_t>(options.finalists, 1);
  int effort = 0;
  while (true) {
    bool last = pool.size() <= finalists || effort == 2;
    std::vector<std::pair<size_t, double>> scored =
        evaluateAll(pool, last ? 2 : effort, evaluate, outOfBudget, result,
                    last ? std::min<size_t>(pool.size(), 1)
                         : std::min(pool.size(), finalists));
    if (last || scored.empty()) {
      result.ranking = std::move(scored);
      return result;
    }
    size_t keep = std::max(finalists, (scored.size() + 2) / 3);
    if (result.budgetExhausted)
      keep = std::min(keep, finalists);
    pool.clear();
    for (size_t i = 0; i < std::min(keep, scored.size()); ++i)
      pool.push_back(scored[i].first);
    ++effort;
  }
}

std::optional<size_t> normjit::tuner::pickFinalWinner(
    const std::vector<std::optional<double>> &medians, double margin) {
  std::optional<double> best;
  for (const std::optional<double> &median : medians)
    if (median && (!best || *median > *best))
      best = median;
  if (!best)
    return std::nullopt;
  for (size_t i = 0; i < medians.size(); ++i)
    if (medians[i] && *medians[i] * (1 + margin) >= *best)
      return i;
  return std::nullopt;
}

FinalResult normjit::tuner::runFinal(const std::vector<size_t> &finalists,
                                     int rounds, int minRounds, double margin,
                                     const Evaluator &evaluate,
                                     const std::function<bool()> &outOfBudget) {
  FinalResult result;
  size_t n = finalists.size();
  std::vector<std::vector<double>> scores(n);
  for (int round = 0; round < rounds && n > 0; ++round) {
    if (round >= minRounds && outOfBudget())
      break;
    for (size_t k = 0; k < n; ++k) {
      size_t i = (static_cast<size_t>(round) + k) % n;
      std::optional<double> score = evaluate(finalists[i], 1);
      if (score && std::isfinite(*score))
        scores[i].push_back(*score);
    }
    ++result.rounds;
  }
  for (std::vector<double> &values : scores) {
    if (values.empty()) {
      result.medians.push_back(std::nullopt);
      continue;
    }
    std::sort(values.begin(), values.end());
    size_t middle = values.size() / 2;
    result.medians.push_back(values.size() % 2
                                 ? values[middle]
                                 : (values[middle - 1] + values[middle]) / 2);
  }
  result.winner = pickFinalWinner(result.medians, margin);
  return result;
}
