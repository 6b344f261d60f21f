//===- NormBench.cpp - normjit against oneDNN, a naive loop and memcpy ----===//
//
// Part of normjit. Google Benchmark cases for LayerNorm and RMSNorm on the
// transformer shapes of the CPU issue, f32 and bf16, 1 and 2 threads:
// normjit's JIT kernels (default heuristic config), oneDNN's
// layer_normalization, a naive scalar loop, and a memcpy of the same bytes
// as the ceiling; normjit also with the config its tuner finds and, in bf16,
// with bf16 gamma/beta; plus the residual form fused vs add-then-norm, and the JIT's
// compile and cache-hit latency. Every case reports GB/s (bytes read +
// written) as a counter.
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/Context.h"
#include "normjit/tuner/TunedKernels.h"

#include <benchmark/benchmark.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

namespace {

constexpr int64_t kShapes[][2] = {{4096, 768},  {8192, 1024}, {2048, 4096},
                                  {512, 12288}, {256, 1024},  {65536, 1024},
                                  {1, 4096},    {16, 4096}};

normjit::Context &context() {
  static normjit::Context *shared = new normjit::Context();
  return *shared;
}

/// Deterministically filled bytes that start on a page, `shift` bytes
/// further when asked. Every case places its buffers alike, whatever the
/// heap did before: where y starts relative to x modulo 4 KiB decides
/// whether stores of y falsely delay later loads of x (4K aliasing), which
/// moves normjit's L3-resident shapes by up to 20% (y 64-512 bytes past x
/// is the bad case on the Zen 4 here). NORMJIT_BENCH_Y_OFFSET=BYTES shifts
/// y (normjit's and oneDNN's alike) to measure that.
struct Aligned {
  static constexpr size_t kPage = 4096;
  explicit Aligned(size_t bytes, size_t shift = 0)
      : size(bytes),
        base(static_cast<char *>(std::aligned_alloc(
            kPage, (bytes + shift + kPage - 1) / kPage * kPage))),
        data(base + shift) {
    std::mt19937 rng(static_cast<unsigned>(bytes));
    auto *words = reinterpret_cast<uint16_t *>(data);
    for (size_t i = 0; i < bytes / 2; ++i)
      words[i] = static_cast<uint16_t>(0x3c00 + (rng() & 0x3ff)); // [1, 2)
  }
  Aligned(const Aligned &) = delete;
  Aligned &operator=(const Aligned &) = delete;
  ~Aligned() { std::free(base); }
  size_t size;
  char *base, *data;
};

/// Where y starts past its page (NORMJIT_BENCH_Y_OFFSET, a multiple of 64
/// below 4096; 0 when unset).
size_t yShift() {
  static const size_t shift = [] {
    const char *text = std::getenv("NORMJIT_BENCH_Y_OFFSET");
    size_t value = text ? std::strtoul(text, nullptr, 10) : 0;
    return value % Aligned::kPage / 64 * 64;
  }();
  return shift;
}

/// `count` floats starting on a page (the caller fills them).
struct AlignedFloats {
  explicit AlignedFloats(size_t count) : bytes(count * sizeof(float)) {}
  float *data() { return reinterpret_cast<float *>(bytes.data); }
  size_t size() const { return bytes.size / sizeof(float); }
  float &operator[](size_t i) { return data()[i]; }
  Aligned bytes;
};

void fillFloats(float *values, size_t count) {
  for (size_t i = 0; i < count; ++i)
    values[i] = std::sin(0.001f * static_cast<float>(i)) + 0.5f;
}

normjit_dtype_t dtypeArg(int64_t arg) {
  return arg == 0 ? NORMJIT_F32 : NORMJIT_BF16;
}

void setCounters(benchmark::State &state, double bytes) {
  state.counters["GB/s"] = benchmark::Counter(
      bytes, benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
  state.counters["bytes"] = bytes;
}

/// The config the tuner finds for `spec` at `rows` on `threads` worker
/// threads (tuned on first use, on those threads, remembered in
/// $NORMJIT_BENCH_CACHE or /tmp/normjit-bench-cache.toml).
llvm::Expected<normjit::CpuConfig> tunedConfig(const normjit_kernel_spec_t &spec,
                                               int64_t rows, int threads) {
  using namespace normjit::tuner;
  static TuningCache *cache = [] {
    const char *path = std::getenv("NORMJIT_BENCH_CACHE");
    auto *c = new TuningCache(path ? path : "/tmp/normjit-bench-cache.toml");
    llvm::consumeError(c->load());
    return c;
  }();
  TuneOptions options;
  options.budgetSeconds = 2.0;
  options.threads = threads;
  TunedKernels kernels(context(), *cache, TuningPolicy::TuneOnMiss, options);
  auto kernel = kernels.getKernel(spec, rows);
  if (!kernel)
    return kernel.takeError();
  return (*kernel)->getConfig();
}

/// Args: rows, cols, dtype (0 f32, 1 bf16), threads.
/// `narrowParams`: gamma and beta in the rows' dtype (bf16 as a bf16 model
/// stores them) instead of f32 (what oneDNN takes).
void BM_layer_norm_normjit(benchmark::State &state, normjit_op_t op,
                           bool residual, bool fuse, bool tuned = false,
                           bool narrowParams = false) {
  int64_t rows = state.range(0), cols = state.range(1);
  normjit_dtype_t dtype = dtypeArg(state.range(2));
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
  spec.x_dtype = spec.y_dtype = spec.residual_dtype = spec.sum_dtype = dtype;
  if (narrowParams)
    spec.gamma_dtype = spec.beta_dtype = dtype;
  spec.has_gamma = 1;
  spec.has_beta = op == NORMJIT_LAYER_NORM;
  spec.has_residual = spec.store_sum = residual;
  normjit::CpuConfig config = normjit::getDefaultCpuConfig(spec);
  if (tuned) {
    auto found =
        tunedConfig(spec, rows, static_cast<int>(state.range(3)));
    if (!found) {
      state.SkipWithError(llvm::toString(found.takeError()).c_str());
      return;
    }
    config = *found;
  } else {
    config.fuseResidual = fuse;
  }
  config.threads = static_cast<int>(state.range(3));
  auto kernel = context().getKernel(spec, config);
  if (!kernel) {
    state.SkipWithError(llvm::toString(kernel.takeError()).c_str());
    return;
  }
  size_t element = normjit_dtype_size(dtype);
  size_t matrix = static_cast<size_t>(rows * cols) * element;
  Aligned x(matrix), y(matrix, yShift()), r(residual ? matrix : 0);
  // gamma and beta start on a page, so on a cache line as oneDNN's scale
  // and shift (and a framework's tensors) do: a vector load of a row-long
  // parameter that straddles two lines costs twice.
  AlignedFloats gamma(cols), beta(cols);
  fillFloats(gamma.data(), gamma.size());
  fillFloats(beta.data(), beta.size());
  if (narrowParams && dtype == NORMJIT_BF16) {
    // bf16 values in place, in the vectors' first halves (round to nearest
    // even; the values are finite).
    auto *words = reinterpret_cast<uint16_t *>(gamma.data());
    auto *shiftWords = reinterpret_cast<uint16_t *>(beta.data());
    for (int64_t i = 0; i < cols; ++i) {
      auto toBf16 = [](float value) {
        uint32_t bits;
        std::memcpy(&bits, &value, 4);
        return static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >>
                                     16);
      };
      words[i] = toBf16(gamma[static_cast<size_t>(i)]);
      shiftWords[i] = toBf16(beta[static_cast<size_t>(i)]);
    }
  }
  normjit_run_args_t args{};
  args.rows = rows;
  args.x = x.data;
  args.y = y.data;
  args.gamma = gamma.data();
  args.beta = spec.has_beta ? beta.data() : nullptr;
  if (residual) {
    // The residual stream is read and updated in place, as in a model.
    args.residual = r.data;
    args.sum = r.data;
  }
  for (auto _ : state) {
    if (llvm::Error error = (*kernel)->run(args)) {
      state.SkipWithError(llvm::toString(std::move(error)).c_str());
      return;
    }
    benchmark::ClobberMemory();
  }
  // gamma and beta are vectors read once per call.
  double bytes =
      static_cast<double>(matrix) * (residual ? 4 : 2) +
      static_cast<double>(normjit_dtype_size(spec.gamma_dtype)) * cols *
          (spec.has_beta ? 2 : 1);
  setCounters(state, bytes);
  state.SetLabel((*kernel)->getConfig().str());
}

void BM_layer_norm_onednn(benchmark::State &state) {
  int64_t rows = state.range(0), cols = state.range(1);
  bool bf16 = state.range(2) != 0;
  omp_set_num_threads(static_cast<int>(state.range(3)));
  using namespace dnnl;
  try {
    engine eng(engine::kind::cpu, 0);
    stream strm(eng);
    memory::desc data(
        {rows, cols}, bf16 ? memory::data_type::bf16 : memory::data_type::f32,
        memory::format_tag::ab);
    layer_normalization_forward::desc desc(
        prop_kind::forward_inference, data, 1e-5f,
        normalization_flags::use_scale | normalization_flags::use_shift);
    layer_normalization_forward::primitive_desc pd(desc, eng);
    Aligned xBuf(data.get_size()), yBuf(data.get_size(), yShift());
    memory src(data, eng, xBuf.data), dst(data, eng, yBuf.data);
    memory scale(pd.weights_desc(), eng), shift(pd.weights_desc(), eng);
    fillFloats(static_cast<float *>(scale.get_data_handle()), cols);
    fillFloats(static_cast<float *>(shift.get_data_handle()), cols);
    layer_normalization_forward prim(pd);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src},
                                            {DNNL_ARG_DST, dst},
                                            {DNNL_ARG_SCALE, scale},
                                            {DNNL_ARG_SHIFT, shift}};
    for (auto _ : state) {
      prim.execute(strm, args);
      strm.wait();
    }
    setCounters(state, 2.0 * static_cast<double>(data.get_size()) + 8.0 * cols);
  } catch (const dnnl::error &e) {
    state.SkipWithError(e.what());
  }
}

/// A straightforward C++ LayerNorm, f32 only: what a user writes by hand.
void BM_layer_norm_naive(benchmark::State &state) {
  int64_t rows = state.range(0), cols = state.range(1);
  std::vector<float> x(rows * cols), y(rows * cols), gamma(cols), beta(cols);
  fillFloats(x.data(), x.size());
  fillFloats(gamma.data(), cols);
  fillFloats(beta.data(), cols);
  for (auto _ : state) {
    for (int64_t r = 0; r < rows; ++r) {
      const float *row = x.data() + r * cols;
      float sum = 0;
      for (int64_t c = 0; c < cols; ++c)
        sum += row[c];
      float mean = sum / cols, var = 0;
      for (int64_t c = 0; c < cols; ++c)
        var += (row[c] - mean) * (row[c] - mean);
      float rstd = 1.0f / std::sqrt(var / cols + 1e-5f);
      for (int64_t c = 0; c < cols; ++c)
        y[r * cols + c] = (row[c] - mean) * rstd * gamma[c] + beta[c];
    }
    benchmark::ClobberMemory();
  }
  setCounters(state, 8.0 * rows * cols + 8.0 * cols);
}

/// memcpy of the bytes a LayerNorm moves (x read and y written, plus the f32
/// gamma and beta that oneDNN's and the default normjit cases read): half
/// of them read, half written. The ceiling for a memory-bound kernel (one
/// thread; with two the copy is split in halves). On large shapes gamma and
/// beta are noise; on decode shapes they are half the bytes, and a copy of
/// x alone would stay in L1 where the kernel's working set cannot.
void BM_memcpy(benchmark::State &state) {
  int64_t rows = state.range(0), cols = state.range(1);
  size_t matrix = static_cast<size_t>(rows * cols) *
                  normjit_dtype_size(dtypeArg(state.range(2)));
  size_t bytes = (2 * matrix + 8 * static_cast<size_t>(cols)) / 2 / 64 * 64;
  int threads = static_cast<int>(state.range(3));
  Aligned from(bytes), to(bytes);
  for (auto _ : state) {
    if (threads == 1 || bytes < (1 << 20)) {
      std::memcpy(to.data, from.data, bytes);
    } else {
      size_t half = bytes / 2 / 64 * 64;
#pragma omp parallel for num_threads(2)
      for (int part = 0; part < 2; ++part) {
        size_t begin = part == 0 ? 0 : half;
        size_t end = part == 0 ? half : bytes;
        std::memcpy(to.data + begin, from.data + begin, end - begin);
      }
    }
    benchmark::ClobberMemory();
  }
  setCounters(state, 2.0 * static_cast<double>(bytes));
}

void BM_jit_compile(benchmark::State &state) {
  // A fresh spec every iteration (epsilon varies, also across repetitions),
  // so every call compiles.
  static float epsilon = 1e-5f;
  for (auto _ : state) {
    normjit_kernel_spec_t spec =
        normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 4096);
    spec.x_dtype = spec.y_dtype = NORMJIT_BF16;
    spec.has_gamma = spec.has_beta = 1;
    spec.epsilon = epsilon;
    epsilon = std::nextafter(epsilon, 1.0f);
    auto kernel = context().getKernel(spec);
    if (!kernel) {
      state.SkipWithError(llvm::toString(kernel.takeError()).c_str());
      return;
    }
  }
}

void BM_jit_cache_hit(benchmark::State &state) {
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 4096);
  llvm::cantFail(context().getKernel(spec).takeError());
  for (auto _ : state) {
    auto kernel = context().getKernel(spec);
    benchmark::DoNotOptimize(kernel->get());
  }
}

void shapes(benchmark::internal::Benchmark *b, bool bf16 = true) {
  b->ArgNames({"rows", "cols", "bf16", "threads"});
  for (const auto &shape : kShapes)
    for (int64_t dtype : {0, 1})
      if (dtype == 0 || bf16)
        for (int64_t threads : {1, 2})
          b->Args({shape[0], shape[1], dtype, threads});
  b->UseRealTime();
}

void f32Shapes(benchmark::internal::Benchmark *b) { shapes(b, false); }

void bf16Shapes(benchmark::internal::Benchmark *b) {
  b->ArgNames({"rows", "cols", "bf16", "threads"});
  for (const auto &shape : kShapes)
    for (int64_t threads : {1, 2})
      b->Args({shape[0], shape[1], 1, threads});
  b->UseRealTime();
}

} // namespace

BENCHMARK_CAPTURE(BM_layer_norm_normjit, normjit, NORMJIT_LAYER_NORM, false,
                  true)
    ->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
BENCHMARK_CAPTURE(BM_layer_norm_normjit, normjit_tuned, NORMJIT_LAYER_NORM,
                  false, true, true)
    ->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
BENCHMARK_CAPTURE(BM_layer_norm_normjit, normjit_bf16_params,
                  NORMJIT_LAYER_NORM, false, true, false, true)
    ->Apply(bf16Shapes);
BENCHMARK(BM_layer_norm_onednn)->Apply([](benchmark::internal::Benchmark *b) {
  shapes(b);
});
BENCHMARK(BM_layer_norm_naive)->Apply(f32Shapes);
BENCHMARK(BM_memcpy)->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
BENCHMARK_CAPTURE(BM_layer_norm_normjit, rms_norm, NORMJIT_RMS_NORM, false,
                  true)
    ->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
BENCHMARK_CAPTURE(BM_layer_norm_normjit, add_rms_norm_fused, NORMJIT_RMS_NORM,
                  true, true)
    ->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
BENCHMARK_CAPTURE(BM_layer_norm_normjit, add_then_rms_norm, NORMJIT_RMS_NORM,
                  true, false)
    ->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
BENCHMARK(BM_jit_compile)->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(BM_jit_cache_hit);

BENCHMARK_MAIN();
