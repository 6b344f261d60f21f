//===- ApiTest.cpp - the C++ and C embedding APIs and bad input -----------===//
//
// Part of normjit. The kernel cache (one compile per spec, even under
// concurrent requests), compile latency bookkeeping, the C ABI's kernels
// from the tuning cache, and every bad input through both APIs: a status
// and a message, never a crash.
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/Context.h"
#include "normjit/normjit.h"
#include "normjit/tuner/Reference.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <pthread.h>
#include <string>
#include <thread>
#include <vector>

using namespace normjit;

namespace {
normjit_kernel_spec_t layerNorm(int64_t cols) {
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
  spec.has_gamma = 1;
  return spec;
}

/// A LayerNorm with every buffer: residual, sum, gamma, beta, mean, rstd.
normjit_kernel_spec_t everyBufferLayerNorm(int64_t cols) {
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
  spec.has_residual = spec.store_sum = 1;
  spec.has_gamma = spec.has_beta = 1;
  spec.store_mean = spec.store_rstd = 1;
  return spec;
}

std::string messageOf(llvm::Error error) {
  return llvm::toString(std::move(error));
}

/// Points the CUDA driver loader at a file that does not exist for one
/// scope (so that the no-driver path shows on GPU machines too).
class NoCudaDriver {
public:
  NoCudaDriver() {
    if (const char *value = std::getenv("NORMJIT_CUDA_DRIVER"))
      saved = value;
    setenv("NORMJIT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  }
  ~NoCudaDriver() {
    if (saved)
      setenv("NORMJIT_CUDA_DRIVER", saved->c_str(), 1);
    else
      unsetenv("NORMJIT_CUDA_DRIVER");
  }

private:
  std::optional<std::string> saved;
};
} // namespace

TEST(ContextTest, CachesKernels) {
  Context context;
  auto first = context.getKernel(layerNorm(64));
  ASSERT_TRUE(!!first) << messageOf(first.takeError());
  auto second = context.getKernel(layerNorm(64));
  ASSERT_TRUE(!!second);
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ(context.getCacheSize(), 1u);
  EXPECT_GT((*first)->getCompileMillis(), 0.0);
  // A different config is a different kernel.
  CpuConfig config = (*first)->getConfig();
  config.accumulators = config.accumulators == 1 ? 2 : 1;
  auto third = context.getKernel(layerNorm(64), config);
  ASSERT_TRUE(!!third);
  EXPECT_NE(first->get(), third->get());
  EXPECT_EQ(context.getCacheSize(), 2u);
}

TEST(ContextTest, ConcurrentRequestsCompileOnce) {
  Context context;
  std::vector<const Kernel *> seen(8, nullptr);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      auto kernel = context.getKernel(layerNorm(257));
      if (kernel)
        seen[i] = kernel->get();
      else
        llvm::consumeError(kernel.takeError());
    });
  for (std::thread &thread : threads)
    thread.join();
  EXPECT_EQ(context.getCacheSize(), 1u);
  for (const Kernel *kernel : seen) {
    ASSERT_NE(kernel, nullptr);
    EXPECT_EQ(kernel, seen[0]);
  }
}

TEST(ContextTest, IdenticalSpecsShareDespiteUnusedFields) {
  Context context;
  normjit_kernel_spec_t a = layerNorm(32), b = layerNorm(32);
  b.residual_dtype = NORMJIT_BF16; // unused: no residual
  ASSERT_TRUE(!!context.getKernel(a));
  ASSERT_TRUE(!!context.getKernel(b));
  EXPECT_EQ(context.getCacheSize(), 1u);
}

TEST(ContextTest, BadSpecsAreErrors) {
  Context context;
  auto expectError = [&](normjit_kernel_spec_t spec, const char *needle) {
    auto kernel = context.getKernel(spec);
    ASSERT_FALSE(!!kernel);
    std::string message = messageOf(kernel.takeError());
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  };
  normjit_kernel_spec_t spec = layerNorm(0);
  expectError(spec, "cols must be at least 1");
  spec = layerNorm(8);
  spec.epsilon = 0;
  expectError(spec, "epsilon must be positive");
  spec.epsilon = -1e-5f;
  expectError(spec, "epsilon must be positive");
  // Small values are shown as they are, not rounded to six decimals.
  spec.epsilon = -1e-7f;
  expectError(spec, "epsilon must be positive and finite, got -1.00000001e-07");
  spec.epsilon = NAN;
  expectError(spec, "epsilon must be positive");
  spec = layerNorm(8);
  spec.x_dtype = static_cast<normjit_dtype_t>(9);
  expectError(spec, "unknown dtype 9 for x");
  spec = layerNorm(8);
  spec.store_sum = 1;
  expectError(spec, "store_sum needs a residual");
  spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 8);
  spec.store_mean = 1;
  expectError(spec, "computes no mean");
  spec = layerNorm(8);
  spec.op = static_cast<normjit_op_t>(5);
  expectError(spec, "unknown op");
}

TEST(ContextTest, BadConfigsAreErrorsNotAborts) {
  Context context;
  CpuConfig config;
  config.vectorWidth = 3;
  auto kernel = context.getKernel(layerNorm(8), config);
  ASSERT_FALSE(!!kernel);
  EXPECT_NE(messageOf(kernel.takeError()).find("power of two"),
            std::string::npos);
  config = CpuConfig();
  config.accumulators = 0;
  kernel = context.getKernel(layerNorm(8), config);
  ASSERT_FALSE(!!kernel);
  llvm::consumeError(kernel.takeError());
  // The struct takes what the config text takes, so that a kernel's
  // reported config always parses back.
  config = CpuConfig();
  config.rowsPerTask = kMaxRowsPerTask + 1;
  kernel = context.getKernel(layerNorm(8), config);
  ASSERT_FALSE(!!kernel);
  EXPECT_NE(messageOf(kernel.takeError())
                .find("rows_per_task must be in [1, 65536], got 65537"),
            std::string::npos);
  config.rowsPerTask = kMaxRowsPerTask;
  kernel = context.getKernel(layerNorm(8), config);
  ASSERT_TRUE(!!kernel) << messageOf(kernel.takeError());
  auto parsed = parseCpuConfig((*kernel)->getConfig().str(), CpuConfig());
  ASSERT_TRUE(!!parsed) << messageOf(parsed.takeError());
  EXPECT_EQ(*parsed, (*kernel)->getConfig());
}

TEST(KernelRunTest, BadArgumentsAreErrors) {
  Context context;
  normjit_kernel_spec_t spec = layerNorm(16);
  auto kernel = context.getKernel(spec);
  ASSERT_TRUE(!!kernel);
  std::vector<float> x(64, 1.0f), y(64), gamma(16, 1.0f);
  auto args = [&] {
    normjit_run_args_t a{};
    a.rows = 4;
    a.x = x.data();
    a.y = y.data();
    a.gamma = gamma.data();
    return a;
  };
  auto expectError = [&](normjit_run_args_t a, const char *needle) {
    llvm::Error error = (*kernel)->run(a);
    ASSERT_TRUE(!!error) << needle;
    std::string message = messageOf(std::move(error));
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  };
  EXPECT_FALSE(!!(*kernel)->run(args()));
  normjit_run_args_t a = args();
  a.x = nullptr;
  expectError(a, "x must not be null");
  a = args();
  a.y = nullptr;
  expectError(a, "y must not be null");
  a = args();
  a.gamma = nullptr;
  expectError(a, "gamma must not be null");
  a = args();
  a.rows = -1;
  expectError(a, "rows must not be negative");
  a = args();
  a.x_stride = 8;
  expectError(a, "x_stride (8) is less than cols (16)");
  a = args();
  a.residual = x.data();
  expectError(a, "residual is given but the kernel spec does not use it");
  a = args();
  a.x = reinterpret_cast<const char *>(x.data()) + 1;
  expectError(a, "x is not aligned");
  a = args();
  a.rows = 0;
  a.x = a.y = nullptr; // rows = 0 still needs the buffers named
  expectError(a, "x must not be null");
  // Strides and row counts whose byte offsets overflow (they would wrap
  // around to other memory) are refused, not run.
  a = args();
  a.rows = 2;
  a.x_stride = int64_t(1) << 62;
  expectError(a, "x: 2 rows of stride 4611686018427387904 reach past the "
                 "end of the address space");
  a = args();
  a.rows = 2;
  a.y_stride = INT64_MAX;
  expectError(a, "y: 2 rows of stride");
  a = args();
  a.rows = INT64_MAX;
  expectError(a, "reach past the end of the address space");
  a = args();
  a.rows = int64_t(1) << 59; // 2^59 rows of 16 f32: 2^65 bytes
  expectError(a, "x: 576460752303423488 rows of stride 16 reach past");
}

// In place needs an output that overlays its input element for element:
// f16 rows over f32 ones would overwrite input other rows have not read.
TEST(KernelRunTest, InPlaceNeedsTheInputsLayout) {
  Context context;
  normjit_kernel_spec_t spec = layerNorm(16);
  spec.has_beta = 1;
  spec.y_dtype = NORMJIT_F16;
  auto narrow = context.getKernel(spec);
  ASSERT_TRUE(!!narrow) << messageOf(narrow.takeError());
  std::vector<float> x(64, 1.0f), gamma(16, 1.0f), beta(16, 0.0f);
  normjit_run_args_t a{};
  a.rows = 4;
  a.x = x.data();
  a.y = x.data();
  a.gamma = gamma.data();
  a.beta = beta.data();
  llvm::Error error = (*narrow)->run(a);
  ASSERT_TRUE(!!error);
  EXPECT_NE(messageOf(std::move(error))
                .find("y is the same buffer as x, but its elements (f16) "
                      "are not the size of x's (f32)"),
            std::string::npos);

  spec.y_dtype = NORMJIT_F32;
  auto same = context.getKernel(spec);
  ASSERT_TRUE(!!same) << messageOf(same.takeError());
  a.y_stride = 32;
  a.x_stride = 16;
  a.rows = 2;
  error = (*same)->run(a);
  ASSERT_TRUE(!!error);
  EXPECT_NE(messageOf(std::move(error))
                .find("y is the same buffer as x, but its row stride (32) is "
                      "not x's (16)"),
            std::string::npos);
  // The same layout, spelled as 0 or as cols, runs in place.
  a.y_stride = 0;
  EXPECT_FALSE(!!(*same)->run(a));
  for (int c = 0; c < 32; ++c)
    EXPECT_EQ(x[static_cast<size_t>(c)], 0.0f) << c; // constant rows: beta

  // The residual stream too: a bf16 sum over an f16 residual is in place
  // (elements of one size); over an f32 one it is not.
  normjit_kernel_spec_t residual = layerNorm(16);
  residual.has_beta = 1;
  residual.has_residual = residual.store_sum = 1;
  residual.residual_dtype = NORMJIT_F32;
  residual.sum_dtype = NORMJIT_BF16;
  auto mixed = context.getKernel(residual);
  ASSERT_TRUE(!!mixed) << messageOf(mixed.takeError());
  std::vector<float> y(64), r(64, 0.5f);
  normjit_run_args_t b{};
  b.rows = 4;
  b.x = x.data();
  b.y = y.data();
  b.residual = r.data();
  b.sum = r.data();
  b.gamma = gamma.data();
  b.beta = beta.data();
  error = (*mixed)->run(b);
  ASSERT_TRUE(!!error);
  EXPECT_NE(messageOf(std::move(error))
                .find("sum is the same buffer as residual, but its elements "
                      "(bf16)"),
            std::string::npos);
}

// Outputs over gamma or beta, which every row reads, and statistics over a
// row buffer would be read back by later rows: refused, with the two
// buffers named.
TEST(KernelRunTest, OutputsOverParametersOrStatisticsOverRowsAreRefused) {
  Context context;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 16);
  spec.has_gamma = spec.has_beta = 1;
  spec.store_mean = spec.store_rstd = 1;
  auto kernel = context.getKernel(spec);
  ASSERT_TRUE(!!kernel) << messageOf(kernel.takeError());
  std::vector<float> x(64, 1.0f), y(64), gamma(64, 1.0f), beta(64),
      mean(64), rstd(64);
  auto args = [&] {
    normjit_run_args_t a{};
    a.rows = 4;
    a.x = x.data();
    a.y = y.data();
    a.gamma = gamma.data();
    a.beta = beta.data();
    a.mean = mean.data();
    a.rstd = rstd.data();
    return a;
  };
  ASSERT_FALSE(!!(*kernel)->run(args()));
  struct {
    std::function<void(normjit_run_args_t &)> change;
    const char *message;
  } cases[] = {
      {[&](normjit_run_args_t &a) { a.mean = gamma.data(); },
       "mean and gamma must be different buffers: every row reads gamma"},
      {[&](normjit_run_args_t &a) { a.rstd = beta.data(); },
       "rstd and beta must be different buffers: every row reads beta"},
      {[&](normjit_run_args_t &a) { a.y = gamma.data(); },
       "y and gamma must be different buffers"},
      {[&](normjit_run_args_t &a) { a.mean = x.data(); },
       "mean and x must be different buffers: mean holds one value per row"},
      {[&](normjit_run_args_t &a) { a.rstd = y.data(); },
       "rstd and y must be different buffers"},
  };
  for (const auto &c : cases) {
    normjit_run_args_t a = args();
    c.change(a);
    llvm::Error error = (*kernel)->run(a);
    ASSERT_TRUE(!!error) << c.message;
    EXPECT_NE(messageOf(std::move(error)).find(c.message), std::string::npos)
        << c.message;
    EXPECT_EQ(normjit_run_args_validate(&spec, &a), NORMJIT_INVALID_ARGUMENT);
  }
  // Inputs may share: gamma and beta one buffer, x read as the residual.
  normjit_run_args_t shared = args();
  shared.beta = gamma.data();
  EXPECT_FALSE(!!(*kernel)->run(shared));
}

// Outputs that partly overlap another buffer are refused, by both checks;
// rows that interleave in one allocation share no element and run.
TEST(KernelRunTest, PartialOverlapsAreRefusedInterleavedRowsRun) {
  Context context;
  const int64_t cols = 16, rows = 4;
  normjit_kernel_spec_t spec = everyBufferLayerNorm(cols);
  auto kernel = context.getKernel(spec);
  ASSERT_TRUE(!!kernel) << messageOf(kernel.takeError());
  // One allocation for everything, rows three times cols apart.
  std::vector<float> pool(4096);
  for (size_t i = 0; i < pool.size(); ++i)
    pool[i] = static_cast<float>((i * 37) % 101) / 17.0f;
  float *base = pool.data();
  auto args = [&] {
    normjit_run_args_t a{};
    a.rows = rows;
    a.x = base;
    a.x_stride = 3 * cols;
    a.y = base + cols; // between x's rows
    a.y_stride = 3 * cols;
    a.residual = base + 2 * cols; // and between again
    a.residual_stride = 3 * cols;
    a.sum = base + 1024;
    a.gamma = base + 2048;
    a.beta = base + 2048 + cols;
    a.mean = base + 3000;
    a.rstd = base + 3000 + rows;
    return a;
  };
  // Interleaved rows run, and give what separate buffers give.
  normjit_run_args_t ok = args();
  ASSERT_EQ(normjit_run_args_validate(&spec, &ok), NORMJIT_OK)
      << normjit_last_error();
  std::vector<float> x(rows * cols), r(rows * cols), y(rows * cols),
      sum(rows * cols), mean(rows), rstd(rows);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      x[i * cols + j] = base[i * 3 * cols + j];
      r[i * cols + j] = base[i * 3 * cols + 2 * cols + j];
    }
  normjit_run_args_t separate{};
  separate.rows = rows;
  separate.x = x.data();
  separate.residual = r.data();
  separate.y = y.data();
  separate.sum = sum.data();
  separate.gamma = ok.gamma;
  separate.beta = ok.beta;
  separate.mean = mean.data();
  separate.rstd = rstd.data();
  ASSERT_FALSE(!!(*kernel)->run(separate));
  ASSERT_FALSE(!!(*kernel)->run(ok));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      EXPECT_EQ(base[i * 3 * cols + cols + j], y[i * cols + j]);
  // Strides that differ and still share no element: sum's rows, 6 * cols
  // apart, in the gaps of rows 3 * cols apart.
  normjit_run_args_t gaps = args();
  gaps.y = base + 1024;
  gaps.y_stride = 0;
  gaps.sum = base + cols;
  gaps.sum_stride = 6 * cols;
  EXPECT_EQ(normjit_run_args_validate(&spec, &gaps), NORMJIT_OK)
      << normjit_last_error();
  struct {
    std::function<void(normjit_run_args_t &)> change;
    const char *message;
  } cases[] = {
      {[&](normjit_run_args_t &a) { a.y = base + 1; },
       "y partly overlaps x"},
      {[&](normjit_run_args_t &a) { a.y = base + 2 * cols - 3; },
       "y partly overlaps residual"},
      {[&](normjit_run_args_t &a) {
         // Rows 5 * cols apart from half a row into x's fourth: the first
         // meets y's fourth row (other strides than y's).
         a.sum = base + 9 * cols + 8;
         a.sum_stride = 5 * cols;
       },
       "y partly overlaps sum"},
      {[&](normjit_run_args_t &a) { a.sum = base + 2040; },
       "sum partly overlaps gamma"},
      {[&](normjit_run_args_t &a) { a.rstd = base + 3001; },
       "mean partly overlaps rstd"},
      {[&](normjit_run_args_t &a) { a.mean = base + 2 * cols + 5; },
       "mean partly overlaps residual"},
      {[&](normjit_run_args_t &a) {
         a.y = base + 1024 + 5;
         a.y_stride = 0;
       },
       "y partly overlaps sum"},
  };
  for (const auto &c : cases) {
    normjit_run_args_t a = args();
    c.change(a);
    llvm::Error error = (*kernel)->run(a);
    ASSERT_TRUE(!!error) << c.message;
    std::string message = messageOf(std::move(error));
    EXPECT_NE(message.find(c.message), std::string::npos) << message;
    EXPECT_NE(message.find("may only be an input's very buffer"),
              std::string::npos)
        << message;
    EXPECT_EQ(normjit_run_args_validate(&spec, &a), NORMJIT_INVALID_ARGUMENT);
  }
  // In place, the very buffer, stays allowed.
  normjit_run_args_t inPlace = args();
  inPlace.y = base;
  inPlace.sum = base + 2 * cols;
  inPlace.sum_stride = inPlace.residual_stride;
  EXPECT_FALSE(!!(*kernel)->run(inPlace));
}

// A post-norm row wide enough that the kernel keeps s = x + r in y's row
// between its sweeps: in place over x or over the residual, the results
// are those of separate buffers, bit for bit.
TEST(KernelRunTest, PostNormInPlaceMatchesSeparateBuffers) {
  Context context;
  for (normjit_op_t op : {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM}) {
    const int64_t cols = 4100, rows = 5;
    normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
    spec.has_residual = 1;
    spec.has_gamma = 1;
    spec.has_beta = op == NORMJIT_LAYER_NORM;
    auto kernel = context.getKernel(spec);
    ASSERT_TRUE(!!kernel) << messageOf(kernel.takeError());
    size_t n = static_cast<size_t>(rows * cols);
    std::vector<float> x(n), r(n), gamma(cols), beta(cols), y(n);
    for (size_t i = 0; i < n; ++i) {
      x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f + 1e3f;
      r[i] = std::cos(0.11f * static_cast<float>(i));
    }
    for (int64_t c = 0; c < cols; ++c) {
      gamma[c] = 1.0f + 0.001f * static_cast<float>(c % 97);
      beta[c] = 0.01f * static_cast<float>(c % 13);
    }
    normjit_run_args_t args{};
    args.rows = rows;
    args.x = x.data();
    args.residual = r.data();
    args.gamma = gamma.data();
    args.beta = spec.has_beta ? beta.data() : nullptr;
    args.y = y.data();
    ASSERT_FALSE(!!(*kernel)->run(args));
    std::vector<float> overX = x, overR = r;
    normjit_run_args_t inX = args, inR = args;
    inX.x = inX.y = overX.data();
    inR.residual = inR.y = overR.data();
    ASSERT_FALSE(!!(*kernel)->run(inX));
    ASSERT_FALSE(!!(*kernel)->run(inR));
    EXPECT_EQ(overX, y) << "y over x";
    EXPECT_EQ(overR, y) << "y over the residual";
    // And the reference: LayerNorm's mean of about 1e3 in f32 rows.
    for (int64_t row = 0; row < rows; ++row) {
      double mean = 0, square = 0;
      for (int64_t c = 0; c < cols; ++c) {
        double s = static_cast<double>(x[row * cols + c]) + r[row * cols + c];
        mean += s;
        square += s * s;
      }
      mean /= cols;
      double var = op == NORMJIT_LAYER_NORM ? 0 : square / cols;
      if (op == NORMJIT_LAYER_NORM)
        for (int64_t c = 0; c < cols; ++c) {
          double d = static_cast<double>(x[row * cols + c]) +
                     r[row * cols + c] - mean;
          var += d * d / cols;
        }
      double rstd = 1.0 / std::sqrt(var + spec.epsilon);
      for (int64_t c = 0; c < cols; c += 97) {
        double s = static_cast<double>(x[row * cols + c]) + r[row * cols + c];
        double want = (op == NORMJIT_LAYER_NORM ? (s - mean) : s) * rstd *
                          gamma[c] +
                      (spec.has_beta ? beta[c] : 0.0);
        EXPECT_NEAR(y[row * cols + c], want, 2e-4 * (std::fabs(want) + 1))
            << "row " << row << " col " << c;
      }
    }
  }
}

TEST(KernelRunTest, MisalignedButElementAlignedBuffersWork) {
  // Buffers need only element alignment, not vector alignment.
  Context context;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 33);
  auto kernel = context.getKernel(spec);
  ASSERT_TRUE(!!kernel);
  std::vector<float> x(3 * 33 + 1), y(3 * 33 + 1);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(i % 7) - 3.0f;
  normjit_run_args_t args{};
  args.rows = 3;
  args.x = x.data() + 1;
  args.y = y.data() + 1;
  ASSERT_FALSE(!!(*kernel)->run(args));
  double squares = 0;
  for (int i = 0; i < 33; ++i)
    squares += double(x[1 + i]) * x[1 + i];
  double rstd = 1.0 / std::sqrt(squares / 33 + double(spec.epsilon));
  EXPECT_NEAR(y[1], x[1] * rstd, 1e-5);
}

TEST(KernelRunTest, InPlaceResidualStream) {
  // vLLM-style: y overwrites x, the sum overwrites the residual stream.
  Context context;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 300);
  spec.has_residual = spec.store_sum = 1;
  auto kernel = context.getKernel(spec);
  ASSERT_TRUE(!!kernel);
  int64_t rows = 7;
  std::vector<float> x(rows * 300), h(rows * 300);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = std::sin(0.1f * i);
    h[i] = std::cos(0.07f * i);
  }
  std::vector<float> x0 = x, h0 = h;
  normjit_run_args_t args{};
  args.rows = rows;
  args.x = x.data();
  args.y = x.data();
  args.residual = h.data();
  args.sum = h.data();
  ASSERT_FALSE(!!kernel->get()->run(args));
  for (int64_t r = 0; r < rows; ++r) {
    double squares = 0;
    for (int c = 0; c < 300; ++c) {
      float s = x0[r * 300 + c] + h0[r * 300 + c];
      EXPECT_EQ(h[r * 300 + c], s);
      squares += double(s) * s;
    }
    double rstd = 1.0 / std::sqrt(squares / 300 + double(spec.epsilon));
    for (int c = 0; c < 300; ++c)
      EXPECT_NEAR(x[r * 300 + c], h[r * 300 + c] * rstd,
                  1e-5 * (1 + std::fabs(h[r * 300 + c] * rstd)));
  }
}

TEST(KernelRunTest, InPlaceResidualStreamInRowPairs) {
  // Rows long enough that gamma, beta and a row overflow L1 are normalized
  // in pairs; in place (y over x, the sum over the residual), with an odd
  // row count (the last row alone), against the fp64 reference.
  using tuner::Buffer;
  Context context;
  const int64_t cols = 4099, rows = 5;
  normjit_kernel_spec_t spec = everyBufferLayerNorm(cols);
  auto kernel = context.getKernel(spec);
  ASSERT_TRUE(!!kernel);
  Buffer x(NORMJIT_F32, rows, cols, cols), h(NORMJIT_F32, rows, cols, cols);
  Buffer gamma(NORMJIT_F32, 1, cols, cols), beta(NORMJIT_F32, 1, cols, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float i = static_cast<float>(r * cols + c);
      x.set(r, c, std::sin(0.1f * i) + 0.01f * static_cast<float>(r));
      h.set(r, c, std::cos(0.07f * i));
    }
  for (int64_t c = 0; c < cols; ++c) {
    gamma.set(0, c, 1.0f + 0.001f * static_cast<float>(c));
    beta.set(0, c, 0.5f - 0.0001f * static_cast<float>(c));
  }
  tuner::ReferenceResult want =
      tuner::reference(spec, rows, x, &h, &gamma, &beta);
  std::vector<float> mean(rows), rstd(rows);
  normjit_run_args_t args = tuner::makeRunArgs(spec, rows, x, h, gamma, beta, x,
                                               h, mean.data(), rstd.data());
  ASSERT_FALSE(!!kernel->get()->run(args));
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_NEAR(mean[r], want.mean[r], 1e-5 * (1 + std::fabs(want.mean[r])));
    EXPECT_NEAR(rstd[r], want.rstd[r], 1e-5 * want.rstd[r]);
    for (int64_t c = 0; c < cols; ++c) {
      size_t i = static_cast<size_t>(r * cols + c);
      ASSERT_EQ(h.get(r, c), want.sum[i]) << "row " << r << " col " << c;
      ASSERT_NEAR(x.get(r, c), want.y[i], 1e-5 * (1 + std::fabs(want.y[i])))
          << "row " << r << " col " << c;
    }
  }
}

TEST(KernelIRTest, CarriesTheConfig) {
  CpuConfig config;
  config.vectorWidth = 16;
  config.accumulators = 2;
  config.welford = true;
  auto ir = buildKernelIR(layerNorm(768), config);
  ASSERT_TRUE(!!ir) << messageOf(ir.takeError());
  EXPECT_NE(ir->find("norm.layer_norm"), std::string::npos) << *ir;
  EXPECT_NE(ir->find("vector_width = 16"), std::string::npos) << *ir;
  EXPECT_NE(ir->find("algorithm = welford"), std::string::npos) << *ir;
  EXPECT_NE(ir->find("llvm.emit_c_interface"), std::string::npos) << *ir;
}

TEST(CApiTest, EndToEnd) {
  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 5);
  normjit_kernel_t *kernel = nullptr;
  ASSERT_EQ(normjit_kernel_get(context, &spec, &kernel), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_NE(std::string(normjit_kernel_config(kernel)).find("#norm.config<cpu"),
            std::string::npos);
  float x[10] = {1, 2, 3, 4, 5, 5, 5, 5, 5, 5}, y[10];
  normjit_run_args_t args{};
  args.rows = 2;
  args.x = x;
  args.y = y;
  ASSERT_EQ(normjit_kernel_run(kernel, &args), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_NEAR(y[0], -1.41420715, 1e-5);
  EXPECT_NEAR(y[4], 1.41420715, 1e-5);
  EXPECT_EQ(y[7], 0.0f); // a constant row normalizes to 0

  normjit_cpu_config_t config;
  ASSERT_EQ(normjit_default_cpu_config(&spec, &config), NORMJIT_OK);
  config.vector_width = 4;
  normjit_kernel_t *tuned = nullptr;
  ASSERT_EQ(normjit_kernel_get_with_config(context, &spec, &config, &tuned),
            NORMJIT_OK);
  EXPECT_NE(std::string(normjit_kernel_config(tuned)).find("vector_width = 4"),
            std::string::npos);
  normjit_kernel_release(tuned);
  // A kernel with `knob` in its config computes what the default did.
  auto expectSameWith = [&](const char *knob) {
    ASSERT_EQ(normjit_kernel_get_with_config(context, &spec, &config, &tuned),
              NORMJIT_OK);
    EXPECT_NE(std::string(normjit_kernel_config(tuned)).find(knob),
              std::string::npos)
        << knob;
    float again[10] = {0};
    args.y = again;
    ASSERT_EQ(normjit_kernel_run(tuned, &args), NORMJIT_OK)
        << normjit_last_error();
    for (int i = 0; i < 10; ++i)
      EXPECT_EQ(again[i], y[i]) << knob << " " << i;
    normjit_kernel_release(tuned);
  };
  // Prefetches: none by default.
  EXPECT_EQ(config.prefetch_rows, 0);
  config.prefetch_rows = 1;
  expectSameWith("prefetch_rows = 1");
  // Row groups: the default's 0; groups of 3 (column tiles).
  EXPECT_EQ(config.row_group, 0);
  config.row_group = 3;
  expectSameWith("row_group = 3");
  normjit_kernel_release(kernel);
  normjit_context_destroy(context);
}

TEST(CApiTest, BadInputIsAStatusAndAMessage) {
  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_t *kernel = nullptr;
  EXPECT_EQ(normjit_kernel_get(context, nullptr, &kernel),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("must not be null"),
            std::string::npos);
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 0);
  EXPECT_EQ(normjit_kernel_get(context, &spec, &kernel),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("cols"), std::string::npos);
  EXPECT_EQ(kernel, nullptr);
  spec = normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 8);
  spec.y_dtype = static_cast<normjit_dtype_t>(17);
  EXPECT_EQ(normjit_kernel_get(context, &spec, &kernel),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("unknown dtype 17 for y"),
            std::string::npos);

  normjit_cpu_config_t config{3, 1, 1, 0, 0, 0, 1, 0};
  spec = normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 8);
  EXPECT_EQ(normjit_kernel_get_with_config(context, &spec, &config, &kernel),
            NORMJIT_INVALID_ARGUMENT);
  config = normjit_cpu_config_t{4, 1, 1, 0, 0, 0, 1, 17};
  EXPECT_EQ(normjit_kernel_get_with_config(context, &spec, &config, &kernel),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("prefetch_rows"),
            std::string::npos)
      << normjit_last_error();
  config = normjit_cpu_config_t{4, 1, 1, 0, 0, 0, 1, 0, 65};
  EXPECT_EQ(normjit_kernel_get_with_config(context, &spec, &config, &kernel),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("row_group"),
            std::string::npos)
      << normjit_last_error();

  ASSERT_EQ(normjit_kernel_get(context, &spec, &kernel), NORMJIT_OK);
  EXPECT_EQ(normjit_kernel_run(kernel, nullptr), NORMJIT_INVALID_ARGUMENT);
  normjit_run_args_t args{};
  args.rows = -3;
  float data[8] = {0};
  args.x = data;
  args.y = data;
  EXPECT_EQ(normjit_kernel_run(kernel, &args), NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("rows"), std::string::npos);
  EXPECT_EQ(normjit_kernel_run(nullptr, &args), NORMJIT_INVALID_ARGUMENT);
  normjit_kernel_release(kernel);
  normjit_kernel_release(nullptr);
  normjit_context_destroy(context);
}

// normjit_kernel_get_for_device: a CPU kernel from config text, device
// names, and the GPU path's errors without a usable driver (the driver is
// pointed at a file that does not exist, so this holds on GPU machines too).
TEST(CApiTest, KernelsForDevices) {
  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 6);
  normjit_kernel_t *kernel = nullptr;
  ASSERT_EQ(normjit_kernel_get_for_device(context, &spec, "cpu",
                                          "#norm.config<cpu, vector_width = 4>",
                                          &kernel),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_STREQ(normjit_kernel_device(kernel), "cpu");
  EXPECT_NE(std::string(normjit_kernel_config(kernel)).find("vector_width = 4"),
            std::string::npos);
  float x[6] = {3, 4, 3, 4, 3, 4}, y[6];
  normjit_run_args_t args{};
  args.rows = 1;
  args.x = x;
  args.y = y;
  EXPECT_EQ(normjit_kernel_run_on_stream(kernel, &args, nullptr), NORMJIT_OK);
  EXPECT_NEAR(y[1], 4 / std::sqrt(12.5 + 1e-5), 1e-5);
  int stream = 0;
  EXPECT_EQ(normjit_kernel_run_on_stream(kernel, &args, &stream),
            NORMJIT_INVALID_ARGUMENT); // a CPU kernel has no stream
  normjit_kernel_release(kernel);

  kernel = nullptr;
  EXPECT_EQ(normjit_kernel_get_for_device(
                context, &spec, "cpu",
                "#norm.config<gpu, threads_per_row = 32>", &kernel),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("not a cpu config"),
            std::string::npos);
  EXPECT_EQ(
      normjit_kernel_get_for_device(context, &spec, "gpu7", nullptr, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("unknown device 'gpu7'"),
            std::string::npos);
  EXPECT_EQ(
      normjit_kernel_get_for_device(context, &spec, nullptr, nullptr, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  // A bad spec is an invalid argument on every device, with or without a
  // config, whether or not the device is there.
  normjit_kernel_spec_t bad = spec;
  bad.cols = 0;
  for (const char *device : {"cpu", "cuda", "cuda:1"})
    for (const char *config :
         {static_cast<const char *>(nullptr), "#norm.config<cpu>",
          "#norm.config<gpu>"}) {
      EXPECT_EQ(normjit_kernel_get_for_device(context, &bad, device, config,
                                              &kernel),
                NORMJIT_INVALID_ARGUMENT)
          << device << " " << (config ? config : "no config");
      EXPECT_NE(std::string(normjit_last_error()).find("cols"),
                std::string::npos)
          << normjit_last_error();
    }

  {
    NoCudaDriver noDriver;
    for (const char *device : {"cuda", "cuda:0", "cuda:3"}) {
      EXPECT_EQ(normjit_kernel_get_for_device(context, &spec, device, nullptr,
                                              &kernel),
                NORMJIT_DEVICE_ERROR)
          << device;
      EXPECT_NE(std::string(normjit_last_error()).find("no CUDA driver"),
                std::string::npos)
          << normjit_last_error();
      EXPECT_EQ(kernel, nullptr);
    }
  }
  normjit_context_destroy(context);
}

namespace {
/// A fresh directory for one test's tuning cache.
std::string makeCacheDir(const char *name) {
  std::string pattern = ::testing::TempDir() + "normjit-" + name + "-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  EXPECT_NE(mkdtemp(buffer.data()), nullptr);
  return buffer.data();
}

bool fileExists(const std::string &path) { return std::ifstream(path).good(); }
} // namespace

// Config text as a host may pass it from a user or a file: nesting that
// would take MLIR's recursive parser through the stack, on the caller's
// thread or a small one, is refused with a message; threads = 0 and
// row_group = 0 mean what they mean in normjit_cpu_config_t (absent).
TEST(CApiTest, ConfigTextIsCheckedBeforeParsing) {
  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 8);
  auto get = [&](const std::string &text) {
    normjit_kernel_t *kernel = nullptr;
    normjit_status_t status = normjit_kernel_get_for_device(
        context, &spec, "cpu", text.c_str(), &kernel);
    std::string config = kernel ? normjit_kernel_config(kernel) : "";
    normjit_kernel_release(kernel);
    return std::make_pair(status, config);
  };
  for (const std::string &text :
       {std::string(100000, '['), std::string(100000, '('),
        "#norm.config<cpu, vector_width = " + std::string(5000, '[') + ">",
        std::string(8, '<'),
        // A "//" in a string is no comment: the brackets after it count.
        "[\"//\", " + std::string(1900, '[') + std::string(1900, ']') + "]",
        "[\"\\\"//\", " + std::string(1900, '[') + "]"}) {
    // On a thread of 128 KiB of stack: about 100 levels of the parser.
    std::pair<normjit_status_t, std::string> result;
    std::string message;
    pthread_attr_t attributes;
    ASSERT_EQ(pthread_attr_init(&attributes), 0);
    ASSERT_EQ(pthread_attr_setstacksize(&attributes, 128 << 10), 0);
    struct Job {
      std::function<void()> run;
    } job{[&] {
      result = get(text);
      message = normjit_last_error();
    }};
    pthread_t thread;
    ASSERT_EQ(pthread_create(
                  &thread, &attributes,
                  [](void *arg) -> void * {
                    static_cast<Job *>(arg)->run();
                    return nullptr;
                  },
                  &job),
              0);
    pthread_join(thread, nullptr);
    pthread_attr_destroy(&attributes);
    EXPECT_EQ(result.first, NORMJIT_INVALID_ARGUMENT) << text.substr(0, 40);
    EXPECT_NE(message.find("invalid config"), std::string::npos) << message;
    EXPECT_LT(message.size(), 600u) << "the text is cut in the message";
  }
  EXPECT_EQ(get(std::string(5000, ' ') + "#norm.config<cpu>").first,
            NORMJIT_INVALID_ARGUMENT)
      << "longer than any config";
  // Brackets in a comment after the config are no nesting.
  EXPECT_EQ(get("#norm.config<cpu, vector_width = 4> // <<<<<< ((((").first,
            NORMJIT_OK)
      << normjit_last_error();

  auto [status, config] =
      get("#norm.config<cpu, threads = 0, row_group = 0, vector_width = 4>");
  EXPECT_EQ(status, NORMJIT_OK) << normjit_last_error();
  EXPECT_EQ(config, get("#norm.config<cpu, vector_width = 4>").second);
  EXPECT_EQ(config.find("threads"), std::string::npos) << config;
  EXPECT_EQ(config.find("row_group = 0"), std::string::npos) << config;
  EXPECT_EQ(get("#norm.config<gpu, threads = 0>").first,
            NORMJIT_INVALID_ARGUMENT)
      << "a CPU knob in a GPU config, 0 or not";
  EXPECT_EQ(get("#norm.config<cpu, threads = -1>").first,
            NORMJIT_INVALID_ARGUMENT);
  normjit_context_destroy(context);
}

// Every normjit_kernel_get* sets *out to NULL when it fails, its argument
// checks too, so that a host may release it whatever the status.
TEST(CApiTest, FailedGetsLeaveNoHandle) {
  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 8);
  normjit_cpu_config_t config;
  ASSERT_EQ(normjit_default_cpu_config(&spec, &config), NORMJIT_OK);
  normjit_tuning_options_t options = normjit_tuning_options_default();
  options.policy = NORMJIT_TUNING_HEURISTIC;
  auto *stale = reinterpret_cast<normjit_kernel_t *>(uintptr_t(1));
  const normjit_kernel_spec_t *someSpec = &spec, *noSpec = nullptr;
  normjit_context_t *noContext = nullptr;
  for (normjit_context_t *ctx : {context, noContext})
    for (const normjit_kernel_spec_t *s : {someSpec, noSpec}) {
      if (ctx && s)
        continue;
      normjit_kernel_t *kernel = stale;
      EXPECT_EQ(normjit_kernel_get(ctx, s, &kernel), NORMJIT_INVALID_ARGUMENT);
      EXPECT_EQ(kernel, nullptr);
      kernel = stale;
      EXPECT_EQ(normjit_kernel_get_with_config(ctx, s, &config, &kernel),
                NORMJIT_INVALID_ARGUMENT);
      EXPECT_EQ(kernel, nullptr);
      kernel = stale;
      EXPECT_EQ(normjit_kernel_get_for_device(ctx, s, "cpu", nullptr, &kernel),
                NORMJIT_INVALID_ARGUMENT);
      EXPECT_EQ(kernel, nullptr);
      kernel = stale;
      EXPECT_EQ(
          normjit_kernel_get_tuned(ctx, s, 16, "cpu", &options, &kernel),
          NORMJIT_INVALID_ARGUMENT);
      EXPECT_EQ(kernel, nullptr);
    }
  normjit_kernel_t *kernel = stale;
  EXPECT_EQ(normjit_kernel_get_with_config(context, &spec, nullptr, &kernel),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(kernel, nullptr);
  kernel = stale;
  EXPECT_EQ(normjit_kernel_get_for_device(context, &spec, nullptr, nullptr,
                                          &kernel),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(kernel, nullptr);
  normjit_context_destroy(context);
}

// normjit_kernel_get_tuned: each policy, the cache file written by a tune
// and read by another context, and bad input.
TEST(CApiTest, TunedKernelsFollowThePolicyAndTheCache) {
  std::string dir = makeCacheDir("capi-tuned");
  std::string cacheFile = dir + "/tuning.toml";
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 384);
  spec.has_gamma = 1;
  normjit_tuning_options_t options = normjit_tuning_options_default();
  EXPECT_EQ(options.policy, NORMJIT_TUNING_CACHE_ONLY);
  EXPECT_EQ(options.cache_file, nullptr);
  EXPECT_GT(options.budget_seconds, 0);
  EXPECT_EQ(options.threads, 0);
  options.cache_file = cacheFile.c_str();
  options.budget_seconds = 0.3;

  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_t *kernel = nullptr;
  // Cache-only with an empty cache: the default config, nothing written.
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_OK)
      << normjit_last_error();
  EXPECT_STREQ(normjit_kernel_config_source(kernel), "default heuristic");
  normjit_cpu_config_t defaults;
  ASSERT_EQ(normjit_default_cpu_config(&spec, &defaults), NORMJIT_OK);
  normjit_kernel_t *byDefault = nullptr;
  ASSERT_EQ(normjit_kernel_get(context, &spec, &byDefault), NORMJIT_OK);
  EXPECT_STREQ(normjit_kernel_config(kernel), normjit_kernel_config(byDefault));
  EXPECT_STREQ(normjit_kernel_config_source(byDefault), "default heuristic");
  normjit_kernel_release(byDefault);
  normjit_kernel_release(kernel);
  EXPECT_FALSE(fileExists(cacheFile));

  // Tune-on-miss: tunes, stores, and runs correctly.
  options.policy = NORMJIT_TUNING_TUNE_ON_MISS;
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, nullptr, &options, &kernel),
      NORMJIT_OK)
      << normjit_last_error();
  EXPECT_STREQ(normjit_kernel_config_source(kernel), "tuned now");
  EXPECT_STREQ(normjit_kernel_device(kernel), "cpu");
  std::string tunedConfig = normjit_kernel_config(kernel);
  EXPECT_TRUE(fileExists(cacheFile));
  std::vector<float> x(2 * 384), y(2 * 384), gamma(384, 2.0f);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(i % 7) - 3.0f;
  normjit_run_args_t args{};
  args.rows = 2;
  args.x = x.data();
  args.y = y.data();
  args.gamma = gamma.data();
  ASSERT_EQ(normjit_kernel_run(kernel, &args), NORMJIT_OK);
  double squares = 0;
  for (int c = 0; c < 384; ++c)
    squares += x[c] * x[c];
  EXPECT_NEAR(y[5], 2.0 * x[5] / std::sqrt(squares / 384 + 1e-6), 1e-5);
  normjit_kernel_release(kernel);
  // The same request again: now from the cache.
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_OK);
  EXPECT_STREQ(normjit_kernel_config_source(kernel), "tuning cache");
  EXPECT_EQ(normjit_kernel_config(kernel), tunedConfig);
  normjit_kernel_release(kernel);
  normjit_context_destroy(context);

  // Another context reads the file: cache-only finds the entry for this
  // row bucket (50 and 64 rows share it), not for another.
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  options.policy = NORMJIT_TUNING_CACHE_ONLY;
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 50, "cpu", &options, &kernel),
      NORMJIT_OK);
  EXPECT_STREQ(normjit_kernel_config_source(kernel), "tuning cache");
  EXPECT_EQ(normjit_kernel_config(kernel), tunedConfig);
  normjit_kernel_release(kernel);
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 4096, "cpu", &options, &kernel),
      NORMJIT_OK);
  EXPECT_STREQ(normjit_kernel_config_source(kernel), "default heuristic");
  normjit_kernel_release(kernel);
  // The heuristic policy ignores the cache.
  options.policy = NORMJIT_TUNING_HEURISTIC;
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_OK);
  EXPECT_STREQ(normjit_kernel_config_source(kernel), "default heuristic");
  normjit_kernel_release(kernel);

  // Bad input: a status and a message, no kernel.
  kernel = nullptr;
  options.policy = static_cast<normjit_tuning_policy_t>(7);
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("unknown tuning policy"),
            std::string::npos);
  options.policy = NORMJIT_TUNING_CACHE_ONLY;
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, &spec, -1, "cpu", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("rows"), std::string::npos);
  options.threads = -1;
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("threads must be in"),
            std::string::npos);
  options.threads = 1;
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cuda", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("must be 0 for a GPU"),
            std::string::npos);
  // One thread asked: the kernel runs on one thread.
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_OK)
      << normjit_last_error();
  EXPECT_NE(std::string(normjit_kernel_config(kernel)).find("threads = 1"),
            std::string::npos)
      << normjit_kernel_config(kernel);
  normjit_kernel_release(kernel);
  kernel = nullptr;
  options.threads = 0;
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "tpu", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, nullptr, 64, "cpu", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(
      normjit_kernel_get_tuned(nullptr, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, nullptr),
      NORMJIT_INVALID_ARGUMENT);
  normjit_kernel_spec_t bad = spec;
  bad.cols = 0;
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, &bad, 64, "cpu", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(kernel, nullptr);
  EXPECT_STREQ(normjit_kernel_config_source(nullptr), "");
  normjit_context_destroy(context);
  std::filesystem::remove_all(dir);
}

// A cache file that cannot be trusted is set aside, and the kernel comes
// from the default heuristic; without a CUDA driver the GPU path says so.
// Tune-on-miss with a cache file that cannot be written still hands out
// the config it tuned (said so by its source, the reason on stderr), and
// the context keeps it: a second request does not tune again. An empty
// cache_file is no path.
TEST(CApiTest, TunedKernelsSurviveAnUnwritableCache) {
  std::string dir = makeCacheDir("capi-unwritable");
  std::string cacheFile = dir + "/tuning.toml";
  // The lock file cannot be created: a directory stands in its place.
  std::filesystem::create_directory(cacheFile + ".lock");
  normjit_tuning_options_t options = normjit_tuning_options_default();
  options.policy = NORMJIT_TUNING_TUNE_ON_MISS;
  options.budget_seconds = 0.2;
  options.cache_file = cacheFile.c_str();
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 48);
  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_t *kernel = nullptr;
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_OK)
      << normjit_last_error();
  EXPECT_STREQ(normjit_kernel_config_source(kernel), "tuned now, not saved");
  std::string config = normjit_kernel_config(kernel);
  normjit_kernel_release(kernel);
  EXPECT_FALSE(fileExists(cacheFile));

  kernel = nullptr;
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_OK)
      << normjit_last_error();
  EXPECT_STREQ(normjit_kernel_config_source(kernel),
               "tuned earlier, not saved");
  EXPECT_EQ(normjit_kernel_config(kernel), config);
  normjit_kernel_release(kernel);

  options.cache_file = "";
  kernel = nullptr;
  EXPECT_EQ(
      normjit_kernel_get_tuned(context, &spec, 64, "cpu", &options, &kernel),
      NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("cache_file must be a path"),
            std::string::npos)
      << normjit_last_error();
  EXPECT_EQ(kernel, nullptr);
  normjit_context_destroy(context);
  std::filesystem::remove_all(dir);
}

TEST(CApiTest, TunedKernelsSurviveABadCacheAndNoDriver) {
  std::string dir = makeCacheDir("capi-corrupt");
  std::string cacheFile = dir + "/tuning.toml";
  {
    std::ofstream out(cacheFile, std::ios::binary);
    out << "schema_version = 1\n[[entry]\nspec = \x01\x02 garbage";
  }
  normjit_tuning_options_t options = normjit_tuning_options_default();
  options.cache_file = cacheFile.c_str();
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 32);
  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_t *kernel = nullptr;
  ASSERT_EQ(
      normjit_kernel_get_tuned(context, &spec, 8, "cpu", &options, &kernel),
      NORMJIT_OK)
      << normjit_last_error();
  EXPECT_STREQ(normjit_kernel_config_source(kernel), "default heuristic");
  normjit_kernel_release(kernel);
  EXPECT_FALSE(fileExists(cacheFile)); // renamed aside, not deleted
  bool setAside = false;
  for (const auto &entry : std::filesystem::directory_iterator(dir))
    setAside |=
        entry.path().filename().string().find("tuning.toml.corrupt-") == 0;
  EXPECT_TRUE(setAside);

  {
    NoCudaDriver noDriver;
    kernel = nullptr;
    EXPECT_EQ(normjit_kernel_get_tuned(context, &spec, 8, "cuda:0", &options,
                                       &kernel),
              NORMJIT_DEVICE_ERROR);
    EXPECT_NE(std::string(normjit_last_error()).find("no CUDA driver"),
              std::string::npos)
        << normjit_last_error();
    EXPECT_EQ(kernel, nullptr);
  }
  normjit_context_destroy(context);
  std::filesystem::remove_all(dir);
}

namespace {
/// The context and kernel main got, for the exit handlers.
normjit_context_t *exitContext = nullptr;
normjit_kernel_t *exitKernel = nullptr;

/// Runs `kernel` (an RMSNorm of 8 columns) on one row and checks it.
bool runsCorrectly(const normjit_kernel_t *kernel) {
  float x[8] = {1, -2, 3, -4, 5, -6, 7, -8}, y[8] = {};
  normjit_run_args_t args{};
  args.rows = 1;
  args.x = x;
  args.y = y;
  double rstd = 1.0 / std::sqrt(204.0 / 8 + 1e-6);
  return normjit_kernel_run(kernel, &args) == NORMJIT_OK &&
         std::fabs(y[7] - (-8 * rstd)) <= 1e-5;
}

normjit_kernel_spec_t exitSpec(int64_t cols) {
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, cols);
  spec.epsilon = 1e-6f;
  return spec;
}

/// What an exit handler gets: the kernel main got (run and checked), the
/// same spec again from main's context, and a new one (which would need a
/// compile); each said on stderr.
void useKernelsAtExit(const char *who, int64_t newCols) {
  std::fprintf(stderr, "%s: kernel got before %s\n", who,
               runsCorrectly(exitKernel) ? "runs" : "FAILS");
  normjit_kernel_spec_t same = exitSpec(8), other = exitSpec(newCols);
  normjit_kernel_t *kernel = nullptr;
  normjit_status_t status = normjit_kernel_get(exitContext, &same, &kernel);
  std::fprintf(stderr, "%s: same spec %s\n", who,
               status == NORMJIT_OK && runsCorrectly(kernel) ? "handed out"
                                                             : "FAILS");
  normjit_kernel_release(kernel);
  kernel = nullptr;
  status = normjit_kernel_get(exitContext, &other, &kernel);
  if (status == NORMJIT_OK)
    std::fprintf(stderr, "%s: new spec compiled\n", who);
  else
    std::fprintf(stderr, "%s: new spec %s: %s\n", who,
                 normjit_status_name(status), normjit_last_error());
  normjit_kernel_release(kernel);
}
void earlyExitHandler() {
  useKernelsAtExit("early handler", 24);
  normjit_kernel_release(exitKernel);
  normjit_context_destroy(exitContext);
}
void lateExitHandler() { useKernelsAtExit("late handler", 16); }
} // namespace

TEST(ApiDeathTest, KernelsAskedForAtExit) {
  // exit() destroys the exiting thread's thread-local objects (the last
  // error's text, MLIR's objects of the thread), then runs the exit
  // handlers, and destroys the compiler's static objects before the
  // handlers registered ahead of their making. A handler registered after
  // the compiles gets a new kernel (compiled on a thread of its own); one
  // registered before gets a clear refusal; both run the kernel got
  // before, get the context's kernels, and read the last error; the
  // second releases everything (its JIT left to the process's end). A
  // fresh process (threadsafe style), so that nothing compiled before the
  // first handler.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::atexit(earlyExitHandler);
        normjit_kernel_spec_t spec = exitSpec(8);
        if (normjit_context_create(&exitContext) != NORMJIT_OK ||
            normjit_kernel_get(exitContext, &spec, &exitKernel) != NORMJIT_OK ||
            !runsCorrectly(exitKernel))
          std::_Exit(3);
        normjit_kernel_spec_t bad =
            normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 0);
        if (normjit_kernel_spec_validate(&bad) == NORMJIT_OK)
          std::_Exit(4); // (a message set on this thread before exit)
        std::atexit(lateExitHandler);
        std::exit(0);
      },
      ::testing::ExitedWithCode(0),
      "late handler: kernel got before runs\n"
      "late handler: same spec handed out\n"
      "late handler: new spec compiled\n"
      "early handler: kernel got before runs\n"
      "early handler: same spec handed out\n"
      "early handler: new spec unsupported: cannot compile a kernel while "
      "the process exits");
}

namespace {
/// A thread-local object whose destructor asks for a new kernel, with a
/// config text, and runs it. With `early`, its constructor makes a context
/// (normjit's thread-local objects come before it, MLIR's after: a host's
/// per-thread holder); else it is made before the thread's first normjit
/// call (normjit's and MLIR's objects after it).
struct AtThreadEnd {
  std::atomic<int> *outcome = nullptr;
  normjit_context_t *held = nullptr;
  void holdEarly() { normjit_context_create(&held); }
  ~AtThreadEnd() {
    if (!outcome)
      return;
    normjit_context_t *context = held;
    normjit_kernel_t *kernel = nullptr;
    normjit_kernel_spec_t spec = exitSpec(40);
    bool ok = (context || normjit_context_create(&context) == NORMJIT_OK) &&
              normjit_kernel_get_for_device(
                  context, &spec, "cpu",
                  "#norm.config<cpu, vector_width = 8, accumulators = 2>",
                  &kernel) == NORMJIT_OK;
    if (ok) {
      std::vector<float> x(40, 1.0f), y(40, 0.0f);
      normjit_run_args_t args{};
      args.rows = 1;
      args.x = x.data();
      args.y = y.data();
      ok = normjit_kernel_run(kernel, &args) == NORMJIT_OK &&
           std::fabs(y[0] - 1.0f / std::sqrt(1.0f + 1e-6f)) < 1e-6f;
    }
    normjit_kernel_release(kernel);
    normjit_context_destroy(context);
    *outcome = ok ? 1 : 2;
  }
};
thread_local AtThreadEnd atThreadEnd;
} // namespace

TEST(ApiThreadEndTest, KernelsAskedForAsAThreadEnds) {
  // A thread's thread-local objects are destroyed at its end, the most
  // recent first. MLIR's work (the config's parse, the compile) runs on a
  // thread of its own, so a request from a host's thread-local destructor
  // finds it whole in either order: an ordinary thread end, no refusal.
  // (Parsed on the ending thread, the config crashed in MLIR's dialect
  // loading; compiled there, the kernel crashed in MLIRContext.)
  for (bool early : {false, true}) {
    std::atomic<int> outcome{0};
    std::thread([&] {
      atThreadEnd.outcome = &outcome;
      if (early)
        atThreadEnd.holdEarly();
      normjit_context_t *context = nullptr;
      normjit_kernel_t *kernel = nullptr;
      normjit_kernel_spec_t spec = exitSpec(8);
      ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
      ASSERT_EQ(normjit_kernel_get_for_device(
                    context, &spec, "cpu",
                    "#norm.config<cpu, vector_width = 16>", &kernel),
                NORMJIT_OK);
      EXPECT_TRUE(runsCorrectly(kernel));
      normjit_kernel_release(kernel);
      normjit_context_destroy(context);
    }).join();
    EXPECT_EQ(outcome.load(), 1) << (early ? "early holder" : "late holder");
  }
}
