//===- NormBench.cpp - normjit against oneDNN, a naive loop and memcpy ----===//
//
// Part of normjit. Google Benchmark cases for LayerNorm and RMSNorm on the
// transformer shapes of the CPU issue, f32 and bf16, 1 and 2 threads:
// normjit's JIT kernels (default heuristic config), oneDNN's
// layer_normalization, a naive scalar loop, and a memcpy of the same bytes
// as the ceiling; normjit also with the config its tuner finds and, in bf16,
// with bf16 gamma/beta; plus the residual form fused vs add-then-norm (in one
// kernel, and as two calls: a vectorized add, then the norm), the JIT's
// compile and cache-hit latency, and what a call costs beside its kernel. Every case reports GB/s (bytes read +
// written) as a counter.
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/Context.h"
#include "normjit/runtime/ThreadPool.h"
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

/// The kernel for `spec` and `config`, or null after marking the case
/// skipped with the compile error.
std::shared_ptr<const normjit::Kernel>
compileOrSkip(benchmark::State &state, const normjit_kernel_spec_t &spec,
              const normjit::CpuConfig &config) {
  auto kernel = context().getKernel(spec, config);
  if (!kernel) {
    state.SkipWithError(llvm::toString(kernel.takeError()).c_str());
    return nullptr;
  }
  return std::move(*kernel);
}

/// Args: rows, cols, dtype (0 f32, 1 bf16), threads.
/// `narrowParams`: gamma and beta in the rows' dtype (bf16 as a bf16 model
/// stores them) instead of f32 (what oneDNN takes).
/// `keepSum` (with `residual`): the sum is stored, in place over the
/// residual, as a pre-norm block keeps its residual stream; without it
/// only y is written, as in a post-norm block (y = norm(x + r)).
void BM_layer_norm_normjit(benchmark::State &state, normjit_op_t op,
                           bool residual, bool fuse, bool tuned = false,
                           bool narrowParams = false, bool keepSum = true,
                           bool rowsDefault = false) {
  int64_t rows = state.range(0), cols = state.range(1);
  normjit_dtype_t dtype = dtypeArg(state.range(2));
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
  spec.x_dtype = spec.y_dtype = spec.residual_dtype = spec.sum_dtype = dtype;
  if (narrowParams)
    spec.gamma_dtype = spec.beta_dtype = dtype;
  spec.has_gamma = 1;
  spec.has_beta = op == NORMJIT_LAYER_NORM;
  spec.has_residual = residual;
  spec.store_sum = residual && keepSum;
  // The spec's default (Context::getKernel), or with rowsDefault the
  // default for the row count (TunedKernels without a cache entry).
  normjit::CpuConfig config =
      rowsDefault ? normjit::getDefaultCpuConfigForRows(spec, rows)
                  : normjit::getDefaultCpuConfig(spec);
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
  auto kernel = compileOrSkip(state, spec, config);
  if (!kernel)
    return;
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
    args.sum = spec.store_sum ? r.data : nullptr;
  }
  for (auto _ : state) {
    if (llvm::Error error = kernel->run(args)) {
      state.SkipWithError(llvm::toString(std::move(error)).c_str());
      return;
    }
    benchmark::ClobberMemory();
  }
  // gamma and beta are vectors read once per call.
  double bytes =
      static_cast<double>(matrix) * (residual ? (spec.store_sum ? 4 : 3) : 2) +
      static_cast<double>(normjit_dtype_size(spec.gamma_dtype)) * cols *
          (spec.has_beta ? 2 : 1);
  setCounters(state, bytes);
  state.SetLabel(kernel->getConfig().str());
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

} // namespace

// The add of a framework that runs the residual add and the norm as two
// operations: out = x + r elementwise (out may be r: the add in place),
// vectorized for the CPU at hand (clones chosen at load time), outside the
// anonymous namespace so that the clones' resolver has external linkage.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void
normjitBenchAddF32(const float *x, const float *r, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i)
    out[i] = x[i] + r[i];
}

/// The same for bf16 (as bit patterns): widened to f32, added, rounded to
/// nearest even (the values are finite). With AVX-512, 32 a step as pairs
/// in 32-bit lanes (GCC's clone of the plain loop takes 8 a step and
/// spends four times the instructions); the plain loop where AVX-512 is
/// absent.
__attribute__((target_clones("arch=x86-64-v3", "default"))) void
normjitBenchAddBf16Loop(const uint16_t *x, const uint16_t *r, uint16_t *out,
                        size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    uint32_t a = static_cast<uint32_t>(x[i]) << 16,
             b = static_cast<uint32_t>(r[i]) << 16;
    float fa, fb;
    std::memcpy(&fa, &a, 4);
    std::memcpy(&fb, &b, 4);
    float sum = fa + fb;
    uint32_t bits;
    std::memcpy(&bits, &sum, 4);
    out[i] = static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
  }
}

typedef uint32_t BenchWords __attribute__((vector_size(64), aligned(2)));
typedef float BenchFloats __attribute__((vector_size(64)));

/// a + b for f32 lanes given as bits, rounded to bf16 in the high halves.
__attribute__((target("avx512f,avx512bw"), always_inline)) static inline BenchWords
roundedSum(BenchWords a, BenchWords b) {
  BenchWords bits = __builtin_bit_cast(
      BenchWords,
      __builtin_bit_cast(BenchFloats, a) + __builtin_bit_cast(BenchFloats, b));
  return bits + 0x7fff + ((bits >> 16) & 1);
}

__attribute__((target("avx512f,avx512bw,prefer-vector-width=512"))) static void
addBf16Avx512(const uint16_t *x, const uint16_t *r, uint16_t *out, size_t n) {
  // 32 bf16 as 16 words: a word's high half is already an f32 once its low
  // half is cleared, its low half one once shifted up.
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    BenchWords wx, wr;
    std::memcpy(&wx, x + i, sizeof wx);
    std::memcpy(&wr, r + i, sizeof wr);
    BenchWords high = roundedSum(wx & 0xffff0000u, wr & 0xffff0000u),
               low = roundedSum(wx << 16, wr << 16);
    BenchWords sum = (high & 0xffff0000u) | (low >> 16);
    std::memcpy(out + i, &sum, sizeof sum);
  }
  normjitBenchAddBf16Loop(x + i, r + i, out + i, n - i);
}

void normjitBenchAddBf16(const uint16_t *x, const uint16_t *r, uint16_t *out,
                         size_t n) {
  static const bool avx512 = __builtin_cpu_supports("avx512bw");
  if (avx512)
    addBf16Avx512(x, r, out, n);
  else
    normjitBenchAddBf16Loop(x, r, out, n);
}

namespace {

/// The residual form as a host without a fused kernel runs it: two calls,
/// each over the whole tensor. A vectorized add updates the residual stream
/// in place (r = x + r; with `keepSum` false, as a post-norm block, into a
/// temporary t = x + r that nothing reads after the norm), split into tasks
/// on normjit's own thread pool as normjit's kernels are (a second thread
/// runtime beside it, such as oneDNN's OpenMP, would fight it for the two
/// cores); then normjit's RMSNorm (default config, no residual) normalizes
/// r (or t) into y. Same buffers, threads and bytes counted as the fused
/// case, so the GB/s ratio is the time ratio.
void addThenRmsNormTwoCalls(benchmark::State &state, bool keepSum) {
  int64_t rows = state.range(0), cols = state.range(1);
  normjit_dtype_t dtype = dtypeArg(state.range(2));
  int threads = static_cast<int>(state.range(3));
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, cols);
  spec.x_dtype = spec.y_dtype = dtype;
  spec.has_gamma = 1;
  normjit::CpuConfig config = normjit::getDefaultCpuConfig(spec);
  config.threads = threads;
  auto kernel = compileOrSkip(state, spec, config);
  if (!kernel)
    return;
  size_t element = normjit_dtype_size(dtype);
  size_t matrix = static_cast<size_t>(rows * cols) * element;
  Aligned x(matrix), y(matrix, yShift()), r(matrix), t(keepSum ? 0 : matrix);
  void *sum = keepSum ? r.data : t.data;
  AlignedFloats gamma(cols);
  fillFloats(gamma.data(), gamma.size());
  auto addRows = [&](int64_t begin, int64_t end) {
    size_t first = static_cast<size_t>(begin * cols),
           count = static_cast<size_t>((end - begin) * cols);
    if (dtype == NORMJIT_BF16)
      normjitBenchAddBf16(reinterpret_cast<const uint16_t *>(x.data) + first,
                          reinterpret_cast<const uint16_t *>(r.data) + first,
                          static_cast<uint16_t *>(sum) + first, count);
    else
      normjitBenchAddF32(reinterpret_cast<const float *>(x.data) + first,
                         reinterpret_cast<const float *>(r.data) + first,
                         static_cast<float *>(sum) + first, count);
  };
  normjit_run_args_t args{};
  args.rows = rows;
  args.x = sum;
  args.y = y.data;
  args.gamma = gamma.data();
  auto &pool = normjit::runtime::ThreadPool::global();
  for (auto _ : state) {
    if (threads == 1 || rows <= config.rowsPerTask)
      addRows(0, rows);
    else
      pool.parallelFor(rows, config.rowsPerTask,
                       static_cast<unsigned>(threads), addRows);
    if (llvm::Error error = kernel->run(args)) {
      state.SkipWithError(llvm::toString(std::move(error)).c_str());
      return;
    }
    benchmark::ClobberMemory();
  }
  setCounters(state, static_cast<double>(matrix) * (keepSum ? 4 : 3) +
                         static_cast<double>(sizeof(float)) * cols);
  state.SetLabel(kernel->getConfig().str());
}

void BM_add_then_rms_norm_two_calls(benchmark::State &state) {
  addThenRmsNormTwoCalls(state, true);
}

void BM_add_then_rms_norm_two_calls_post_norm(benchmark::State &state) {
  addThenRmsNormTwoCalls(state, false);
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

/// What a call costs beside its kernel: one row of `cols` f32 LayerNorm
/// (in L1) through Kernel::run (argument checks, the launch, the kernel),
/// the compiled function alone on descriptors made once (`bare`), or the
/// argument checks alone (`checks`).
void BM_call_overhead(benchmark::State &state, int part) {
  int64_t cols = state.range(0);
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
  spec.has_gamma = spec.has_beta = 1;
  auto kernel = context().getKernel(spec);
  if (!kernel) {
    state.SkipWithError(llvm::toString(kernel.takeError()).c_str());
    return;
  }
  size_t bytes = static_cast<size_t>(cols) * sizeof(float);
  Aligned x(bytes), y(bytes), gamma(bytes), beta(bytes);
  normjit_run_args_t args{};
  args.rows = 1;
  args.x = x.data;
  args.y = y.data;
  args.gamma = gamma.data;
  args.beta = beta.data;
  normjit_memref2d_t xDesc{x.data, x.data, 0, {1, cols}, {cols, 1}};
  normjit_memref2d_t yDesc{y.data, y.data, 0, {1, cols}, {cols, 1}};
  normjit_memref2d_t none2d{};
  normjit_memref1d_t gammaDesc{gamma.data, gamma.data, 0, {cols}, {1}};
  normjit_memref1d_t betaDesc{beta.data, beta.data, 0, {cols}, {1}};
  normjit_memref1d_t none1d{}, noneStats{};
  normjit_memref2d_t noneSum{};
  normjit_cpu_kernel_fn fn = (*kernel)->getFunction();
  for (auto _ : state) {
    if (part == 0) {
      if (llvm::Error error = (*kernel)->run(args)) {
        state.SkipWithError(llvm::toString(std::move(error)).c_str());
        return;
      }
    } else if (part == 1) {
      fn(&xDesc, &none2d, &gammaDesc, &betaDesc, &yDesc, &noneSum, &none1d,
         &noneStats);
    } else {
      benchmark::DoNotOptimize(normjit_run_args_validate(&spec, &args));
    }
    benchmark::ClobberMemory();
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
BENCHMARK_CAPTURE(BM_layer_norm_normjit, normjit_rows_default,
                  NORMJIT_LAYER_NORM, false, true, false, false, true, true)
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
BENCHMARK(BM_add_then_rms_norm_two_calls)
    ->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
// The post-norm form (y = norm(x + r), the sum not kept), fused and as two
// calls through a temporary.
BENCHMARK_CAPTURE(BM_layer_norm_normjit, add_rms_norm_fused_post_norm,
                  NORMJIT_RMS_NORM, true, true, false, false, false)
    ->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
BENCHMARK(BM_add_then_rms_norm_two_calls_post_norm)
    ->Apply([](benchmark::internal::Benchmark *b) { shapes(b); });
BENCHMARK(BM_jit_compile)->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(BM_jit_cache_hit);
BENCHMARK_CAPTURE(BM_call_overhead, run, 0)->ArgName("cols")->Arg(16)->Arg(768);
BENCHMARK_CAPTURE(BM_call_overhead, bare, 1)->ArgName("cols")->Arg(16)->Arg(768);
BENCHMARK_CAPTURE(BM_call_overhead, checks, 2)->ArgName("cols")->Arg(16);

BENCHMARK_MAIN();
