//===- Measure.cpp - check and time one kernel on a workload --------------===//
//
// Part of normjit. Implements Workload and timeKernel.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/Measure.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

using namespace normjit;
using namespace normjit::tuner;

namespace {
using Clock = std::chrono::steady_clock;

void fillRandom(Buffer &buffer, int64_t rows, int64_t cols, std::mt19937 &rng,
                float center, float scale) {
  std::normal_distribution<float> normal(center, scale);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      buffer.set(r, c, normal(rng));
}

/// Rows of a workload that get values of their own (the check workload has
/// fewer, so every one of its rows is distinct).
constexpr int64_t kDistinctRows = 128;

/// Copies rows [0, distinct) over rows [distinct, rows) of a contiguous
/// buffer.
void replicateRows(Buffer &buffer, int64_t distinct, int64_t rows,
                   int64_t cols, normjit_dtype_t dtype) {
  if (distinct <= 0)
    return;
  size_t block = static_cast<size_t>(distinct * cols) * normjit_dtype_size(dtype);
  auto *bytes = static_cast<char *>(buffer.data());
  for (int64_t row = distinct; row < rows; row += distinct) {
    int64_t count = std::min(distinct, rows - row);
    std::memcpy(bytes + static_cast<size_t>(row * cols) * normjit_dtype_size(dtype),
                bytes, std::min(block, static_cast<size_t>(count * cols) *
                                           normjit_dtype_size(dtype)));
  }
}

/// Writes a buffer larger than the last-level cache, evicting the workload.
void evictCaches() {
  static std::vector<char> junk(96 << 20);
  static char value = 0;
  ++value;
  for (size_t i = 0; i < junk.size(); i += 64)
    junk[i] = value;
}
} // namespace

Workload::Workload(const normjit_kernel_spec_t &spec, int64_t rows,
                   unsigned seed)
    : spec(spec), rows(rows), x(spec.x_dtype, rows, spec.cols, spec.cols),
      residual(spec.residual_dtype, spec.has_residual ? rows : 0, spec.cols,
               spec.cols),
      gamma(spec.gamma_dtype, 1, spec.cols, spec.cols),
      beta(spec.beta_dtype, 1, spec.cols, spec.cols),
      y(spec.y_dtype, rows, spec.cols, spec.cols),
      sum(spec.sum_dtype, spec.store_sum ? rows : 0, spec.cols, spec.cols),
      mean(static_cast<size_t>(std::max<int64_t>(rows, 1))),
      rstd(static_cast<size_t>(std::max<int64_t>(rows, 1))) {
  std::mt19937 rng(seed);
  // Random rows up to kDistinctRows, then copies of them: the kernels'
  // speed does not depend on the values, and filling hundreds of MiB with
  // normal variates would cost seconds of the tuning budget.
  int64_t distinct = std::min(rows, kDistinctRows);
  fillRandom(x, distinct, spec.cols, rng, 0.5f, 1.0f);
  replicateRows(x, distinct, rows, spec.cols, spec.x_dtype);
  if (spec.has_residual) {
    fillRandom(residual, distinct, spec.cols, rng, 0.0f, 1.0f);
    replicateRows(residual, distinct, rows, spec.cols, spec.residual_dtype);
  }
  fillRandom(gamma, 1, spec.cols, rng, 1.0f, 0.5f);
  fillRandom(beta, 1, spec.cols, rng, 0.0f, 0.5f);
}

normjit_run_args_t Workload::getArgs() {
  return makeRunArgs(spec, rows, x, residual, gamma, beta, y, sum, mean.data(),
                     rstd.data());
}

double Workload::getBytes(const normjit_kernel_spec_t &spec, int64_t rows) {
  auto size = [](normjit_dtype_t dtype) {
    return static_cast<double>(normjit_dtype_size(dtype));
  };
  double perRow = size(spec.x_dtype) + size(spec.y_dtype);
  if (spec.has_residual)
    perRow += size(spec.residual_dtype);
  if (spec.store_sum)
    perRow += size(spec.sum_dtype);
  double bytes = perRow * static_cast<double>(rows * spec.cols);
  if (spec.has_gamma)
    bytes += size(spec.gamma_dtype) * spec.cols;
  if (spec.has_beta)
    bytes += size(spec.beta_dtype) * spec.cols;
  bytes += 4.0 * rows * ((spec.store_mean ? 1 : 0) + (spec.store_rstd ? 1 : 0));
  return bytes;
}

llvm::Error Workload::check(const Kernel &kernel) {
  if (!reference)
    reference = std::make_unique<ReferenceResult>(normjit::tuner::reference(
        spec, rows, x, spec.has_residual ? &residual : nullptr,
        spec.has_gamma ? &gamma : nullptr, spec.has_beta ? &beta : nullptr));
  // Poison the outputs: a candidate that skips a write cannot pass on what
  // an earlier one left behind.
  std::memset(y.data(), 0xff, static_cast<size_t>(rows * spec.cols) *
                                  normjit_dtype_size(spec.y_dtype));
  if (spec.store_sum)
    std::memset(sum.data(), 0xff, static_cast<size_t>(rows * spec.cols) *
                                      normjit_dtype_size(spec.sum_dtype));
  std::fill(mean.begin(), mean.end(), NAN);
  std::fill(rstd.begin(), rstd.end(), NAN);
  if (llvm::Error error = kernel.run(getArgs()))
    return error;
  Comparison comparison = compareWithReference(
      spec, *reference, rows, y, spec.store_sum ? &sum : nullptr,
      spec.store_mean ? mean.data() : nullptr,
      spec.store_rstd ? rstd.data() : nullptr,
      spec.has_gamma ? &gamma : nullptr, spec.has_beta ? &beta : nullptr);
  if (comparison.ok())
    return llvm::Error::success();
  std::string message = "wrong result: " +
                        std::to_string(comparison.mismatches) +
                        " mismatches against the fp64 reference";
  for (const std::string &example : comparison.examples)
    message += "; " + example;
  return makeError(NORMJIT_INTERNAL, message);
}

llvm::Expected<Timing> normjit::tuner::timeKernel(const Kernel &kernel,
                                                  Workload &workload,
                                                  const TimingOptions &options) {
  normjit_run_args_t args = workload.getArgs();
  auto call = [&]() -> llvm::Error { return kernel.run(args); };
  for (int i = 0; i < options.warmup; ++i)
    if (llvm::Error error = call())
      return std::move(error);

  // Batch calls so that one sample is long enough for the clock.
  int batch = 1;
  {
    auto begin = Clock::now();
    if (llvm::Error error = call())
      return std::move(error);
    double once = std::chrono::duration<double>(Clock::now() - begin).count();
    if (!options.coldCache && once < options.minSampleSeconds)
      batch = static_cast<int>(
          std::min(1000.0, options.minSampleSeconds / std::max(once, 1e-9)));
    batch = std::max(batch, 1);
  }

  std::vector<double> samples;
  auto start = Clock::now();
  while (true) {
    if (options.coldCache)
      evictCaches();
    auto begin = Clock::now();
    for (int i = 0; i < batch; ++i)
      if (llvm::Error error = call())
        return std::move(error);
    samples.push_back(std::chrono::duration<double>(Clock::now() - begin).count() /
                      batch);
    int count = static_cast<int>(samples.size());
    if (count >= options.maxSamples)
      break;
    if (count >= options.minSamples) {
      std::vector<double> sorted = samples;
      std::sort(sorted.begin(), sorted.end());
      double median = sorted[sorted.size() / 2];
      double iqr = sorted[sorted.size() * 3 / 4] - sorted[sorted.size() / 4];
      double elapsed =
          std::chrono::duration<double>(Clock::now() - start).count();
      if (iqr <= options.stableSpread * median || elapsed >= options.maxSeconds)
        break;
    }
  }
  std::sort(samples.begin(), samples.end());
  Timing timing;
  timing.samples = static_cast<int>(samples.size());
  timing.medianSeconds = samples[samples.size() / 2];
  timing.minSeconds = samples.front();
  timing.spread = (samples[samples.size() * 3 / 4] - samples[samples.size() / 4]) /
                  timing.medianSeconds;
  timing.gbps = workload.getBytes() / timing.medianSeconds / 1e9;
  return timing;
}
