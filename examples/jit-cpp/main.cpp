//===- main.cpp - a C++ host embedding the normjit JIT --------------------===//
//
// Part of normjit's examples. A pre-norm transformer step: the residual
// stream is updated in place (stream += x) and normalized (RMSNorm) in one
// fused kernel; several threads ask for the kernel at once and it is
// compiled once. The kernel run takes the config `normjit tune` stored in
// the tuning cache for this spec and row count, if there is one.
//
//===----------------------------------------------------------------------===//

#include <normjit/JIT/Context.h>
#include <normjit/tuner/TunedKernels.h>

#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

int main() {
  constexpr int64_t rows = 256, cols = 1024;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, cols);
  spec.has_residual = 1;
  spec.store_sum = 1;
  spec.has_gamma = 1;
  spec.epsilon = 1e-6f;

  normjit::Context context;
  std::vector<std::thread> askers;
  for (int i = 0; i < 4; ++i)
    askers.emplace_back([&] {
      auto kernel = context.getKernel(spec);
      if (!kernel)
        std::fprintf(stderr, "%s\n",
                     llvm::toString(kernel.takeError()).c_str());
    });
  for (std::thread &t : askers)
    t.join();
  std::printf("kernels compiled: %zu\n", context.getCacheSize());

  // Cache-only: the tuned config when the default tuning cache has one for
  // this CPU, else the default heuristic's (never tuning here).
  normjit::tuner::TuningCache cache(
      normjit::tuner::TuningCache::getDefaultPath());
  if (llvm::Error error = cache.load()) {
    std::fprintf(stderr, "normjit: %s\n",
                 llvm::toString(std::move(error)).c_str());
    return 1;
  }
  normjit::tuner::TunedKernels tuned(context, cache,
                                     normjit::tuner::TuningPolicy::CacheOnly);
  normjit::tuner::ConfigSource source;
  auto kernel = tuned.getKernel(spec, rows, &source);
  if (!kernel) {
    std::fprintf(stderr, "normjit: %s\n",
                 llvm::toString(kernel.takeError()).c_str());
    return 1;
  }
  std::printf("config %s (from the %s), %.1f ms\n",
              (*kernel)->getConfig().str().c_str(),
              normjit::tuner::getConfigSourceName(source),
              (*kernel)->getCompileMillis());

  std::vector<float> x(rows * cols), stream(rows * cols), gamma(cols, 1.5f),
      y(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    x[i] = std::sin(0.01f * static_cast<float>(i));
    stream[i] = std::cos(0.003f * static_cast<float>(i));
  }
  std::vector<float> expectedStream(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i)
    expectedStream[i] = x[i] + stream[i];

  normjit_run_args_t args{};
  args.rows = rows;
  args.x = x.data();
  args.residual = stream.data();
  args.sum = stream.data(); // in place: the stream is updated
  args.gamma = gamma.data();
  args.y = y.data();
  if (llvm::Error error = (*kernel)->run(args)) {
    std::fprintf(stderr, "normjit: %s\n",
                 llvm::toString(std::move(error)).c_str());
    return 1;
  }

  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double squares = 0;
    for (int64_t c = 0; c < cols; ++c)
      squares +=
          double(expectedStream[r * cols + c]) * expectedStream[r * cols + c];
    double rstd = 1.0 / std::sqrt(squares / cols + 1e-6);
    for (int64_t c = 0; c < cols; ++c) {
      if (stream[r * cols + c] != expectedStream[r * cols + c])
        worst = 1e9;
      double expected = expectedStream[r * cols + c] * rstd * 1.5;
      worst = std::max(worst, std::fabs(y[r * cols + c] - expected));
    }
  }
  std::printf("largest error %.3g\n", worst);
  bool ok = worst < 1e-4 && context.getCacheSize() == 1;
  std::puts(ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
