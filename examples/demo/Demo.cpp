//===- Demo.cpp - the README's main job: JIT, run, check, measure ---------===//
//
// Part of normjit's examples. JIT-compiles a LayerNorm for a transformer-sized
// input (8192 tokens x 4096 hidden, bf16 with gamma and beta), runs it on all
// cores, checks sampled rows against an fp64 reference, and reports the
// config the JIT chose and the GB/s it reached beside this machine's memcpy.
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/Context.h"
#include "normjit/tuner/TunedKernels.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;

/// Median seconds of `fn` over repetitions filling at least `minSeconds`.
template <typename Fn> double medianSeconds(Fn fn, double minSeconds = 0.5) {
  for (int i = 0; i < 3; ++i)
    fn(); // warm up: page faults, caches, thread pool
  std::vector<double> times;
  auto start = Clock::now();
  while (times.size() < 10 ||
         std::chrono::duration<double>(Clock::now() - start).count() <
             minSeconds) {
    auto begin = Clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(Clock::now() - begin).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}
} // namespace

int main() {
  const int64_t rows = 8192, cols = 4096;
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
  spec.x_dtype = spec.y_dtype = spec.gamma_dtype = spec.beta_dtype =
      NORMJIT_BF16;
  spec.has_gamma = spec.has_beta = 1;

  const normjit::HostCpu &host = normjit::getHostCpu();
  std::printf("host: %s, %u cores, avx2=%d avx512f=%d\n", host.name.c_str(),
              host.cores, host.avx2, host.avx512f);
  std::printf("kernel: layer_norm, %lld x %lld, bf16 everywhere\n",
              static_cast<long long>(rows), static_cast<long long>(cols));

  // The tuned config from the user's tuning cache when `normjit tune` has
  // tuned this spec here; the default heuristic otherwise.
  normjit::Context context;
  normjit::tuner::TuningCache cache(
      normjit::tuner::TuningCache::getDefaultPath());
  llvm::consumeError(cache.load());
  normjit::tuner::TunedKernels kernels(context, cache,
                                       normjit::tuner::TuningPolicy::CacheOnly);
  normjit::tuner::ConfigSource source;
  auto kernel = kernels.getKernel(spec, rows, &source);
  if (!kernel) {
    std::fprintf(stderr, "normjit: error: %s\n",
                 llvm::toString(kernel.takeError()).c_str());
    return 1;
  }
  std::printf("JIT: compiled in %.1f ms\n", (*kernel)->getCompileMillis());
  std::printf("config (%s): %s\n", normjit::tuner::getConfigSourceName(source),
              (*kernel)->getConfig().str().c_str());
  if (source == normjit::tuner::ConfigSource::Default)
    std::printf("  (tune it: build/bin/normjit tune --op layer_norm --rows %lld "
                "--cols %lld --dtype bf16)\n",
                static_cast<long long>(rows), static_cast<long long>(cols));

  std::vector<uint16_t> x(rows * cols), y(rows * cols);
  std::vector<float> gamma(cols), beta(cols); // bf16-exact values
  std::vector<uint16_t> gammaBits(cols), betaBits(cols);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < rows * cols; ++i)
    x[i] = normjit_f32_to_bf16(2.0f * normal(rng) + 0.25f);
  for (int64_t c = 0; c < cols; ++c) {
    gammaBits[c] = normjit_f32_to_bf16(1.0f + 0.1f * normal(rng));
    betaBits[c] = normjit_f32_to_bf16(0.1f * normal(rng));
    gamma[c] = normjit_bf16_to_f32(gammaBits[c]);
    beta[c] = normjit_bf16_to_f32(betaBits[c]);
  }
  normjit_run_args_t args{};
  args.rows = rows;
  args.x = x.data();
  args.y = y.data();
  args.gamma = gammaBits.data();
  args.beta = betaBits.data();
  if (llvm::Error error = (*kernel)->run(args)) {
    std::fprintf(stderr, "normjit: error: %s\n",
                 llvm::toString(std::move(error)).c_str());
    return 1;
  }

  // Check every 64th row against fp64; bf16 output: at most one bf16 ulp.
  int64_t worstUlps = 0, checked = 0, cancellations = 0;
  double worstTerms = 0;
  for (int64_t r = 0; r < rows; r += 64) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c)
      mean += normjit_bf16_to_f32(x[r * cols + c]);
    mean /= cols;
    for (int64_t c = 0; c < cols; ++c) {
      double d = normjit_bf16_to_f32(x[r * cols + c]) - mean;
      var += d * d;
    }
    double rstd = 1.0 / std::sqrt(var / cols + 1e-5);
    for (int64_t c = 0; c < cols; ++c) {
      double expected =
          (normjit_bf16_to_f32(x[r * cols + c]) - mean) * rstd * gamma[c] + beta[c];
      int64_t a = normjit_f32_to_bf16(static_cast<float>(expected));
      int64_t b = y[r * cols + c];
      auto ordered = [](int64_t bits) {
        return (bits & 0x8000) ? -(bits & 0x7fff) : bits;
      };
      int64_t ulps = std::abs(ordered(a) - ordered(b));
      // Where y nearly cancels (x - mean) * rstd * gamma against beta, one
      // ulp of the tiny result is below f32's error on the terms: judge
      // those by the f32 criterion, 1e-5 of the terms.
      double terms = std::fabs(expected - beta[c]) + std::fabs(beta[c]);
      double error = std::fabs(normjit_bf16_to_f32(y[r * cols + c]) - expected);
      if (ulps > 1 && error <= 1e-5 * terms)
        ++cancellations;
      else
        worstUlps = std::max(worstUlps, ulps);
      worstTerms = std::max(worstTerms, error / terms);
      ++checked;
    }
  }
  std::printf("check: %lld values against fp64: worst %lld bf16 ulp (%lld "
              "near-cancellations within 1e-5 of their terms; worst error "
              "%.2g of the terms) -> %s\n",
              static_cast<long long>(checked), static_cast<long long>(worstUlps),
              static_cast<long long>(cancellations), worstTerms,
              worstUlps <= 1 ? "ok" : "MISMATCH");

  double bytes = 2.0 * rows * cols * 2 + 4.0 * cols;
  double seconds = medianSeconds([&] { llvm::cantFail((*kernel)->run(args)); });
  std::vector<uint16_t> copy(rows * cols);
  double copySeconds = medianSeconds([&] {
    std::memcpy(copy.data(), x.data(), x.size() * sizeof(uint16_t));
  });
  double copyBytes = 2.0 * rows * cols * 2;
  std::printf("speed: %.3f ms per call, %.1f GB/s (bytes read + written)\n",
              seconds * 1e3, bytes / seconds / 1e9);
  std::printf("memcpy of the same bytes (one thread): %.1f GB/s; normjit "
              "reaches %.0f%% of it\n",
              copyBytes / copySeconds / 1e9,
              100.0 * (bytes / seconds) / (copyBytes / copySeconds));
  return worstUlps <= 1 ? 0 : 1;
}
