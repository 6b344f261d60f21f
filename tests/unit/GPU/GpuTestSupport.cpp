//===- GpuTestSupport.cpp - what the GPU kernel tests share ---------------===//
//
// Part of normjit. The GPU test fixture, device buffers with guard bytes,
// one call on the GPU, and parallel compilation of a suite's kernels.
//
//===----------------------------------------------------------------------===//

#include "GpuTestSupport.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

using namespace normjit;
using namespace normjit::test;

const GpuAvailability &normjit::test::getGpuAvailability() {
  static const GpuAvailability availability = [] {
    GpuAvailability result;
    if (normjit_cuda_init() != NORMJIT_OK) {
      result.why = std::string("no CUDA device: ") + normjit_last_error();
      return result;
    }
    int count = 0;
    if (normjit_cuda_device_count(&count) != NORMJIT_OK) {
      result.why = std::string("no CUDA device: ") + normjit_last_error();
      return result;
    }
    if (count < 1) {
      const char *path = normjit_cuda_driver_path();
      result.why = std::string("no CUDA device: the CUDA driver (") +
                   (path ? path : "libcuda.so.1") + ") reports 0 devices";
      return result;
    }
    normjit_cuda_device_info_t info;
    if (normjit_cuda_device_info(0, &info) != NORMJIT_OK) {
      result.why =
          std::string("no CUDA device: device 0: ") + normjit_last_error();
      return result;
    }
    auto target = getGpuTarget(0);
    if (!target) {
      result.why =
          "no usable CUDA device: " + llvm::toString(target.takeError());
      return result;
    }
    std::ostringstream os;
    os << info.name << ", " << target->chip() << ", " << info.sm_count
       << " SMs, " << (info.total_memory >> 20) << " MiB, driver "
       << info.driver_version << ", " << count
       << (count == 1 ? " device" : " devices");
    result.available = true;
    result.description = os.str();
    std::printf("[ normjit  ] GPU tests run on CUDA device 0: %s\n",
                result.description.c_str());
    std::fflush(stdout);
    return result;
  }();
  return availability;
}

bool normjit::test::isGpuRequired() {
  const char *value = std::getenv("NORMJIT_REQUIRE_GPU");
  return value && *value && std::strcmp(value, "0") != 0;
}

namespace {
std::mutex brokenMutex;
std::string &brokenBy() {
  static std::string *why = new std::string();
  return *why;
}
} // namespace

void normjit::test::markContextBroken(const std::string &why) {
  std::lock_guard<std::mutex> lock(brokenMutex);
  if (brokenBy().empty())
    brokenBy() = why;
}

std::string normjit::test::getContextBroken() {
  std::lock_guard<std::mutex> lock(brokenMutex);
  return brokenBy();
}

void GpuTest::SetUp() {
  const GpuAvailability &gpu = getGpuAvailability();
  if (!gpu.available) {
    if (isGpuRequired())
      GTEST_FAIL() << gpu.why
                   << " (NORMJIT_REQUIRE_GPU is set: a failure, not a skip)";
    GTEST_SKIP() << gpu.why;
  }
  if (!getContextBroken().empty())
    GTEST_FAIL() << "not run: the CUDA context is unusable since an earlier "
                    "test's kernel faulted: "
                 << getContextBroken();
}

Context &normjit::test::getSharedContext() {
  static Context *context = new Context();
  return *context;
}

llvm::Expected<std::shared_ptr<const CompiledGpuKernel>>
normjit::test::getGpuKernel(const normjit_kernel_spec_t &spec,
                            const std::optional<GpuConfig> &config) {
  return getSharedContext().getGpuKernel(spec, /*device=*/0, config);
}

void normjit::test::precompile(const std::vector<KernelKey> &kernels) {
  if (kernels.empty() || !getGpuAvailability().available ||
      !getContextBroken().empty())
    return;
  unsigned threads =
      std::min(16u, std::max(1u, std::thread::hardware_concurrency()));
  if (const char *env = std::getenv("NORMJIT_TEST_COMPILE_THREADS");
      env && std::atoi(env) > 0)
    threads = static_cast<unsigned>(std::atoi(env));
  threads = std::min<unsigned>(threads, static_cast<unsigned>(kernels.size()));
  auto start = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0}, failed{0};
  auto worker = [&] {
    for (size_t i = next++; i < kernels.size(); i = next++) {
      auto kernel = getGpuKernel(kernels[i].first, kernels[i].second);
      if (!kernel) {
        llvm::consumeError(kernel.takeError());
        ++failed;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &thread : pool)
    thread.join();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("[ normjit  ] compiled %zu GPU kernels (%zu failed) in %.1f s "
              "on %u threads\n",
              kernels.size(), failed.load(), seconds, threads);
  std::fflush(stdout);
}

std::vector<std::string> normjit::test::getSelectedParamNames() {
  std::vector<std::string> names;
  const ::testing::TestSuite *suite =
      ::testing::UnitTest::GetInstance()->current_test_suite();
  if (!suite)
    return names;
  for (int i = 0; i < suite->total_test_count(); ++i) {
    const ::testing::TestInfo *info = suite->GetTestInfo(i);
    if (!info->should_run())
      continue;
    std::string name = info->name();
    size_t slash = name.find('/');
    names.push_back(slash == std::string::npos ? name : name.substr(slash + 1));
  }
  return names;
}

//===----------------------------------------------------------------------===//
// Device memory
//===----------------------------------------------------------------------===//

DeviceArray::~DeviceArray() {
  if (base)
    normjit_cuda_free(base);
}

::testing::AssertionResult DeviceArray::allocate(size_t size,
                                                 size_t offsetBytes) {
  if (base)
    return ::testing::AssertionFailure() << "DeviceArray allocated twice";
  bytes = size;
  offset = offsetBytes;
  total = kGuardBytes + offset + bytes + kGuardBytes;
  if (normjit_cuda_malloc(0, total, &base) != NORMJIT_OK)
    return ::testing::AssertionFailure()
           << "normjit_cuda_malloc of " << total
           << " bytes failed: " << normjit_last_error();
  if (normjit_cuda_memset(base, 0xAB, total) != NORMJIT_OK)
    return ::testing::AssertionFailure()
           << "normjit_cuda_memset failed: " << normjit_last_error();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult DeviceArray::upload(const void *host, size_t count) {
  if (count > bytes)
    return ::testing::AssertionFailure()
           << "upload of " << count << " bytes into " << bytes;
  if (normjit_cuda_memcpy_htod(data(), host, count) != NORMJIT_OK)
    return ::testing::AssertionFailure()
           << "normjit_cuda_memcpy_htod of " << count
           << " bytes failed: " << normjit_last_error();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult DeviceArray::download(void *host,
                                                 size_t count) const {
  if (count > bytes)
    return ::testing::AssertionFailure()
           << "download of " << count << " bytes from " << bytes;
  if (normjit_cuda_memcpy_dtoh(host, data(), count) != NORMJIT_OK)
    return ::testing::AssertionFailure()
           << "normjit_cuda_memcpy_dtoh of " << count
           << " bytes failed: " << normjit_last_error();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult DeviceArray::guardsIntact(const char *name) const {
  if (!base)
    return ::testing::AssertionSuccess();
  std::vector<unsigned char> all(total);
  if (normjit_cuda_memcpy_dtoh(all.data(), base, total) != NORMJIT_OK)
    return ::testing::AssertionFailure()
           << "normjit_cuda_memcpy_dtoh of " << name
           << " failed: " << normjit_last_error();
  size_t begin = kGuardBytes + offset, end = begin + bytes;
  for (size_t i = 0; i < total; ++i) {
    if (i == begin)
      i = end;
    if (i < total && all[i] != 0xAB)
      return ::testing::AssertionFailure()
             << name << ": a byte "
             << (i < begin ? std::to_string(begin - i) + " before"
                           : std::to_string(i - end + 1) + " after")
             << " the buffer was written (0x" << std::hex
             << static_cast<int>(all[i]) << std::dec << ")";
  }
  return ::testing::AssertionSuccess();
}

//===----------------------------------------------------------------------===//
// One call on the GPU
//===----------------------------------------------------------------------===//

namespace {
/// Fails unless `device` holds the same `count` bytes as `host`.
::testing::AssertionResult unchanged(const char *name,
                                     const DeviceArray &device,
                                     const void *host, size_t count) {
  std::vector<unsigned char> now(count);
  if (::testing::AssertionResult result = device.download(now.data(), count);
      !result)
    return result;
  const auto *before = static_cast<const unsigned char *>(host);
  for (size_t i = 0; i < count; ++i)
    if (now[i] != before[i])
      return ::testing::AssertionFailure()
             << "input " << name << " was modified at byte " << i;
  return ::testing::AssertionSuccess();
}
} // namespace

void normjit::test::runOnGpu(const CompiledGpuKernel &kernel, HostCall &call,
                             const GpuLayout &layout, const std::string &name,
                             normjit_run_args_t *usedArgs) {
  const normjit_kernel_spec_t &spec = call.spec;
  auto size = [](normjit_dtype_t dtype) { return normjit_dtype_size(dtype); };
  if (layout.yIsX) {
    ASSERT_EQ(spec.x_dtype, spec.y_dtype) << "y in place of x needs one dtype";
  }
  if (layout.sumIsX) {
    ASSERT_EQ(spec.x_dtype, spec.sum_dtype)
        << "sum in place of x needs one dtype";
  }

  size_t xBytes = call.rowBytes(spec.x_dtype);
  DeviceArray x, residual, gamma, beta, y, sum, mean, rstd;
  ASSERT_TRUE(x.allocate(xBytes, layout.xOffset * size(spec.x_dtype)));
  ASSERT_TRUE(x.upload(call.x.data(), xBytes));
  if (spec.has_residual) {
    size_t bytes = call.rowBytes(spec.residual_dtype);
    ASSERT_TRUE(residual.allocate(bytes, layout.residualOffset *
                                             size(spec.residual_dtype)));
    ASSERT_TRUE(residual.upload(call.residual.data(), bytes));
  }
  if (spec.has_gamma) {
    size_t bytes = call.vectorBytes(spec.gamma_dtype);
    ASSERT_TRUE(
        gamma.allocate(bytes, layout.gammaOffset * size(spec.gamma_dtype)));
    ASSERT_TRUE(gamma.upload(call.gamma.data(), bytes));
  }
  if (spec.has_beta) {
    size_t bytes = call.vectorBytes(spec.beta_dtype);
    ASSERT_TRUE(
        beta.allocate(bytes, layout.betaOffset * size(spec.beta_dtype)));
    ASSERT_TRUE(beta.upload(call.beta.data(), bytes));
  }
  if (!layout.yIsX) {
    ASSERT_TRUE(y.allocate(call.rowBytes(spec.y_dtype),
                           layout.yOffset * size(spec.y_dtype)));
  }
  if (spec.store_sum && !layout.sumIsX) {
    ASSERT_TRUE(sum.allocate(call.rowBytes(spec.sum_dtype),
                             layout.sumOffset * size(spec.sum_dtype)));
  }
  if (spec.store_mean) {
    ASSERT_TRUE(mean.allocate(call.statBytes()));
    ASSERT_TRUE(mean.upload(call.mean.data(), call.statBytes()));
  }
  if (spec.store_rstd) {
    ASSERT_TRUE(rstd.allocate(call.statBytes()));
    ASSERT_TRUE(rstd.upload(call.rstd.data(), call.statBytes()));
  }

  normjit_run_args_t args = call.args();
  args.x = x.data();
  if (spec.has_residual)
    args.residual = residual.data();
  if (spec.has_gamma)
    args.gamma = gamma.data();
  if (spec.has_beta)
    args.beta = beta.data();
  args.y = layout.yIsX ? x.data() : y.data();
  if (spec.store_sum)
    args.sum = layout.sumIsX ? x.data() : sum.data();
  if (spec.store_mean)
    args.mean = static_cast<float *>(mean.data());
  if (spec.store_rstd)
    args.rstd = static_cast<float *>(rstd.data());
  if (usedArgs)
    *usedArgs = args;

  if (llvm::Error error = kernel.run(args, layout.stream))
    FAIL() << "launch failed: " << llvm::toString(std::move(error)) << " ("
           << name << ")";
  if (normjit_cuda_synchronize(0) != NORMJIT_OK) {
    std::string why = name + ": " + normjit_last_error();
    markContextBroken(why);
    FAIL() << "the kernel failed on the device: " << why;
  }

  const DeviceArray &yArray = layout.yIsX ? x : y;
  ASSERT_TRUE(yArray.download(call.y.data(), call.rowBytes(spec.y_dtype)));
  if (spec.store_sum) {
    const DeviceArray &sumArray = layout.sumIsX ? x : sum;
    ASSERT_TRUE(
        sumArray.download(call.sum.data(), call.rowBytes(spec.sum_dtype)));
  }
  if (spec.store_mean) {
    ASSERT_TRUE(mean.download(call.mean.data(), call.statBytes()));
  }
  if (spec.store_rstd) {
    ASSERT_TRUE(rstd.download(call.rstd.data(), call.statBytes()));
  }

  // Nothing written outside the buffers, and inputs left alone.
  for (auto [array, label] :
       {std::pair<const DeviceArray *, const char *>{&x, "x"},
        {&residual, "residual"},
        {&gamma, "gamma"},
        {&beta, "beta"},
        {&y, "y"},
        {&sum, "sum"},
        {&mean, "mean"},
        {&rstd, "rstd"}})
    EXPECT_TRUE(array->guardsIntact(label)) << name;
  if (!layout.yIsX && !layout.sumIsX) {
    EXPECT_TRUE(unchanged("x", x, call.x.data(), xBytes)) << name;
  }
  if (spec.has_residual) {
    EXPECT_TRUE(unchanged("residual", residual, call.residual.data(),
                          call.rowBytes(spec.residual_dtype)))
        << name;
  }
  if (spec.has_gamma) {
    EXPECT_TRUE(unchanged("gamma", gamma, call.gamma.data(),
                          call.vectorBytes(spec.gamma_dtype)))
        << name;
  }
  if (spec.has_beta) {
    EXPECT_TRUE(unchanged("beta", beta, call.beta.data(),
                          call.vectorBytes(spec.beta_dtype)))
        << name;
  }
}

std::string normjit::test::describeConfig(const GpuConfig &config) {
  const char *storage = config.rowStorage == GpuRowStorage::Registers ? "reg"
                        : config.rowStorage == GpuRowStorage::Shared  ? "sh"
                                                                      : "gl";
  std::ostringstream os;
  os << "_t" << config.threadsPerRow << "r" << config.rowsPerBlock << "e"
     << config.elementsPerThread << "v" << config.vectorWidth << storage
     << (config.persistent ? "p" : "");
  return os.str();
}
