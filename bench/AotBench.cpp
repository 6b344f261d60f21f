//===- AotBench.cpp - AOT kernels against JIT kernels of the same config --===//
//
// Part of normjit. Google Benchmark cases that time a kernel compiled ahead
// of time (by `normjit aot` at build time, linked as a static library,
// dispatched by the runtime) against the JIT kernel of the same spec and
// config, on the same buffers: LayerNorm and RMSNorm, alone and with the
// fused residual add, f32 and bf16, on transformer shapes, 1 and 2 threads.
// Both are called as a host calls them (the generated C function, and
// Kernel::run) and timed in alternating batches so that noise hits both
// alike. Each case reports aot_GB/s, jit_GB/s (bytes read + written / time)
// and aot/jit, the ratio of the two.
//
//===----------------------------------------------------------------------===//

#include "aot_bench_kernels.h"

#include "normjit/JIT/Context.h"
#include "normjit/runtime/dtype.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

/// One kernel of aot_bench_kernels.h with the config it was compiled with.
struct AotBenchKernel {
  const char *name;
  const char *benchCase; ///< "add_rms_norm/bf16": BM_<case>
  int64_t cols;
  int threads;
  const char *config; ///< what the JIT gets too
  normjit_status_t (*run)(const normjit_run_args_t *);
  const normjit_kernel_spec_t *(*spec)();
  const char *(*target)();
};

#define NORMJIT_AOT_BENCH_KERNEL(NAME, CASE, COLS, THREADS, CONFIG)           \
  {#NAME, CASE, COLS, THREADS, CONFIG, &NAME, &NAME##_spec, &NAME##_target},
const AotBenchKernel kKernels[] = {
#include "AotBenchKernels.inc"
};
#undef NORMJIT_AOT_BENCH_KERNEL

/// rows, cols; the last one for f32 only (its bf16 twin adds little).
struct Shape {
  int64_t rows, cols;
  bool f32Only;
};
constexpr Shape kShapes[] = {{4096, 768, false},
                             {8192, 1024, false},
                             {2048, 4096, false},
                             {1, 4096, false},
                             {65536, 1024, true}};

/// Calls per timed batch: about 4 MiB moved, so that the clock's cost and
/// resolution do not matter for the small shapes.
constexpr double kBatchBytes = 4 << 20;

normjit::Context &context() {
  static normjit::Context *shared = new normjit::Context();
  return *shared;
}

const AotBenchKernel *findKernel(const std::string &benchCase, int64_t cols,
                                 int threads) {
  for (const AotBenchKernel &kernel : kKernels)
    if (benchCase == kernel.benchCase && cols == kernel.cols &&
        threads == kernel.threads)
      return &kernel;
  return nullptr;
}

/// 64-byte aligned memory.
struct Aligned {
  explicit Aligned(size_t bytes)
      : size(bytes), data(bytes ? static_cast<char *>(std::aligned_alloc(
                                      64, (bytes + 63) / 64 * 64))
                                : nullptr) {}
  ~Aligned() { std::free(data); }
  Aligned(const Aligned &) = delete;
  Aligned &operator=(const Aligned &) = delete;
  size_t size;
  char *data;
};

/// Fills `count` elements of `dtype` with offset + scale * u, u uniform in
/// [-1, 1) from a fixed seed (cheap enough for 64M elements).
void fill(void *data, normjit_dtype_t dtype, size_t count, uint64_t seed,
          float offset, float scale) {
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < count; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    float u = static_cast<float>(state >> 40) * 0x1p-23f - 1.0f;
    float value = offset + scale * u;
    switch (dtype) {
    case NORMJIT_F32:
      static_cast<float *>(data)[i] = value;
      break;
    case NORMJIT_BF16:
      static_cast<uint16_t *>(data)[i] = normjit_f32_to_bf16(value);
      break;
    case NORMJIT_F16:
      static_cast<uint16_t *>(data)[i] = normjit_f32_to_f16(value);
      break;
    }
  }
}

/// The buffers of one call of a kernel of `spec` on `rows` rows, filled the
/// same way for the same spec and rows. The residual stream is read and
/// updated in place (sum = residual), as in a model.
struct Buffers {
  Buffers(const normjit_kernel_spec_t &spec, int64_t rows)
      : elements(static_cast<size_t>(rows * spec.cols)),
        x(elements * normjit_dtype_size(spec.x_dtype)),
        y(elements * normjit_dtype_size(spec.y_dtype)),
        residual(spec.has_residual
                     ? elements * normjit_dtype_size(spec.residual_dtype)
                     : 0),
        gamma(spec.has_gamma ? spec.cols * normjit_dtype_size(spec.gamma_dtype)
                             : 0),
        beta(spec.has_beta ? spec.cols * normjit_dtype_size(spec.beta_dtype)
                           : 0) {
    size_t cols = static_cast<size_t>(spec.cols);
    fill(x.data, spec.x_dtype, elements, 1, 0.5f, 2.0f);
    std::memset(y.data, 0, y.size);
    if (residual.data)
      fill(residual.data, spec.residual_dtype, elements, 2, 0.0f, 1.0f);
    if (gamma.data)
      fill(gamma.data, spec.gamma_dtype, cols, 3, 1.0f, 0.25f);
    if (beta.data)
      fill(beta.data, spec.beta_dtype, cols, 4, 0.0f, 0.5f);
    args.rows = rows;
    args.x = x.data;
    args.y = y.data;
    args.residual = residual.data;
    args.sum = spec.store_sum ? residual.data : nullptr;
    args.gamma = gamma.data;
    args.beta = beta.data;
    // Each element once: x, y, the residual read and the sum written (the
    // same buffer), gamma and beta.
    bytes = static_cast<double>(x.size + y.size + gamma.size + beta.size) +
            static_cast<double>(residual.size) * (spec.store_sum ? 2 : 1);
  }

  /// Whether the outputs (y, the residual stream) equal those of `other`.
  bool sameOutputs(const Buffers &other) const {
    return std::memcmp(y.data, other.y.data, y.size) == 0 &&
           (!residual.data ||
            std::memcmp(residual.data, other.residual.data, residual.size) ==
                0);
  }

  size_t elements;
  Aligned x, y, residual, gamma, beta;
  normjit_run_args_t args{};
  double bytes = 0;
};

/// Seconds for `calls` calls of `run`, or a negative number when one fails.
template <typename Run> double timeBatch(int64_t calls, Run &&run) {
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < calls; ++i)
    if (!run())
      return -1;
  benchmark::ClobberMemory();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

/// Args: rows, cols, threads.
void BM_aot_vs_jit(benchmark::State &state, const std::string &benchCase) {
  int64_t rows = state.range(0), cols = state.range(1);
  int threads = static_cast<int>(state.range(2));
  const AotBenchKernel *aot = findKernel(benchCase, cols, threads);
  if (!aot) {
    state.SkipWithError("no AOT kernel for this case, cols and threads");
    return;
  }
  // The JIT gets the spec the AOT kernel was compiled for and the same
  // explicit config over the same default ("native" is this host).
  const normjit_kernel_spec_t &spec = *aot->spec();
  auto config =
      normjit::parseCpuConfig(aot->config, normjit::getDefaultCpuConfig(spec));
  if (!config) {
    state.SkipWithError(llvm::toString(config.takeError()).c_str());
    return;
  }
  auto jit = context().getKernel(spec, *config);
  if (!jit) {
    state.SkipWithError(llvm::toString(jit.takeError()).c_str());
    return;
  }
  auto runAot = [&](const normjit_run_args_t &args) {
    return aot->run(&args) == NORMJIT_OK;
  };
  auto runJit = [&](const normjit_run_args_t &args) {
    if (llvm::Error error = (*jit)->run(args)) {
      llvm::consumeError(std::move(error));
      return false;
    }
    return true;
  };

  // The same kernel: bit-identical outputs on the same inputs (a few rows).
  {
    int64_t checkRows = std::min<int64_t>(rows, 64);
    Buffers forAot(spec, checkRows), forJit(spec, checkRows);
    if (!runAot(forAot.args) || !runJit(forJit.args)) {
      state.SkipWithError(normjit_last_error());
      return;
    }
    if (!forAot.sameOutputs(forJit)) {
      state.SkipWithError("the AOT and JIT kernels give different outputs");
      return;
    }
  }

  Buffers buffers(spec, rows);
  const normjit_run_args_t &args = buffers.args;
  int64_t calls = std::max<int64_t>(
      1, static_cast<int64_t>(kBatchBytes / buffers.bytes));
  // Warm up both (pages, caches, the thread pool, the AOT dispatch).
  if (!runAot(args) || !runJit(args)) {
    state.SkipWithError(normjit_last_error());
    return;
  }
  double aotSeconds = 0, jitSeconds = 0;
  bool aotFirst = true;
  for (auto _ : state) {
    // Alternate which goes first, so that neither always follows the other.
    double first = timeBatch(calls, [&] {
      return aotFirst ? runAot(args) : runJit(args);
    });
    double second = timeBatch(calls, [&] {
      return aotFirst ? runJit(args) : runAot(args);
    });
    if (first < 0 || second < 0) {
      state.SkipWithError(normjit_last_error());
      return;
    }
    aotSeconds += aotFirst ? first : second;
    jitSeconds += aotFirst ? second : first;
    aotFirst = !aotFirst;
    state.SetIterationTime(first + second);
  }
  double bytes = buffers.bytes * static_cast<double>(calls) *
                 static_cast<double>(state.iterations());
  state.counters["aot_GB/s"] = bytes / aotSeconds / 1e9;
  state.counters["jit_GB/s"] = bytes / jitSeconds / 1e9;
  state.counters["aot/jit"] = jitSeconds / aotSeconds;
  state.counters["calls"] = static_cast<double>(calls);
  state.SetLabel(std::string(aot->target() ? aot->target() : "?") + " " +
                 (*jit)->getConfig().str());
}

/// One benchmark per case (BM_<case>), on every shape of its column counts.
void registerCases() {
  std::vector<std::string> cases;
  for (const AotBenchKernel &kernel : kKernels)
    if (std::find(cases.begin(), cases.end(), kernel.benchCase) == cases.end())
      cases.push_back(kernel.benchCase);
  for (const std::string &benchCase : cases) {
    const AotBenchKernel *first = nullptr;
    for (const AotBenchKernel &kernel : kKernels)
      if (benchCase == kernel.benchCase && !first)
        first = &kernel;
    bool f32 = first->spec()->x_dtype == NORMJIT_F32;
    benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(
        ("BM_" + benchCase).c_str(),
        [benchCase](benchmark::State &state) {
          BM_aot_vs_jit(state, benchCase);
        });
    b->ArgNames({"rows", "cols", "threads"});
    for (const Shape &shape : kShapes)
      if (f32 || !shape.f32Only)
        for (int64_t threads : {1, 2})
          b->Args({shape.rows, shape.cols, threads});
    b->UseManualTime();
  }
}

} // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  registerCases();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
