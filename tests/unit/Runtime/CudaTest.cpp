//===- CudaTest.cpp - the CUDA driver layer without a GPU -----------------===//
//
// Part of normjit. Runs the CUDA part of the runtime against no driver, the
// toolkit's stub library, and a fake driver (FakeCudaDriver.cpp) that
// records what a launch would have done: parameter packing, grid sizes, the
// aligned/unaligned choice, contexts, the module cache and argument checks.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/cuda.h"
#include "normjit/runtime/CudaLaunch.h"

#include "FakeCudaDriver.h"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace nc = normjit::runtime::cuda;

namespace {

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

#define EXPECT_ERROR(call, status, text)                                       \
  do {                                                                         \
    normjit_clear_error();                                                     \
    EXPECT_EQ((call), (status)) << normjit_last_error();                       \
    EXPECT_TRUE(contains(normjit_last_error(), (text)))                        \
        << "message: " << normjit_last_error() << "\nexpected: " << (text);    \
  } while (0)

bool fileExists(const char *path) {
  struct stat info;
  return stat(path, &info) == 0;
}

/// Sets NORMJIT_CUDA_DRIVER (or unsets it for nullptr) and forgets any
/// loaded driver; restores both at the end.
class CudaDriverTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (const char *old = std::getenv("NORMJIT_CUDA_DRIVER"))
      saved = old;
    nc::resetDriverForTesting();
  }
  void TearDown() override {
    nc::resetDriverForTesting();
    if (saved)
      setenv("NORMJIT_CUDA_DRIVER", saved->c_str(), 1);
    else
      unsetenv("NORMJIT_CUDA_DRIVER");
  }
  void useDriver(const char *path) {
    nc::resetDriverForTesting();
    if (path)
      setenv("NORMJIT_CUDA_DRIVER", path, 1);
    else
      unsetenv("NORMJIT_CUDA_DRIVER");
  }

private:
  std::optional<std::string> saved;
};

/// A LayerNorm spec using every operand.
normjit_kernel_spec_t fullSpec(int64_t cols) {
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, cols);
  spec.has_residual = spec.store_sum = spec.has_gamma = spec.has_beta = 1;
  spec.store_mean = spec.store_rstd = 1;
  return spec;
}

//===--- Without a driver -------------------------------------------------===//

/// Every entry point, with otherwise valid arguments, reports `text`.
void expectEveryCallFails(const std::string &text) {
  int count = -1;
  EXPECT_ERROR(normjit_cuda_init(), NORMJIT_DEVICE_ERROR, text);
  EXPECT_EQ(normjit_cuda_driver_path(), nullptr);
  EXPECT_ERROR(normjit_cuda_device_count(&count), NORMJIT_DEVICE_ERROR, text);
  EXPECT_EQ(count, 0);
  normjit_cuda_device_info_t info;
  EXPECT_ERROR(normjit_cuda_device_info(0, &info), NORMJIT_DEVICE_ERROR, text);
  char fingerprint[NORMJIT_CUDA_FINGERPRINT_SIZE];
  EXPECT_ERROR(
      normjit_cuda_device_fingerprint(0, fingerprint, sizeof fingerprint),
      NORMJIT_DEVICE_ERROR, text);
  const char ptx[] = ".version 8.0\n.entry k() { ret; }\n";
  normjit_cuda_module_t *module = nullptr;
  EXPECT_ERROR(normjit_cuda_module_load(0, ptx, sizeof ptx, &module),
               NORMJIT_DEVICE_ERROR, text);
  EXPECT_EQ(module, nullptr);
  void *pointer = nullptr;
  EXPECT_ERROR(normjit_cuda_malloc(0, 64, &pointer), NORMJIT_DEVICE_ERROR,
               text);
  EXPECT_EQ(pointer, nullptr);
  float host[16] = {};
  EXPECT_ERROR(normjit_cuda_free(host), NORMJIT_DEVICE_ERROR, text);
  EXPECT_ERROR(normjit_cuda_memcpy_htod(host, host + 8, 16),
               NORMJIT_DEVICE_ERROR, text);
  EXPECT_ERROR(normjit_cuda_memcpy_dtoh(host, host + 8, 16),
               NORMJIT_DEVICE_ERROR, text);
  EXPECT_ERROR(normjit_cuda_memcpy_dtod(host, host + 8, 16),
               NORMJIT_DEVICE_ERROR, text);
  EXPECT_ERROR(normjit_cuda_memset(host, 0, 16), NORMJIT_DEVICE_ERROR, text);
  EXPECT_ERROR(normjit_cuda_synchronize(0), NORMJIT_DEVICE_ERROR, text);
  void *stream = nullptr;
  EXPECT_ERROR(normjit_cuda_stream_create(0, &stream), NORMJIT_DEVICE_ERROR,
               text);
  normjit_cuda_event_t *event = nullptr;
  EXPECT_ERROR(normjit_cuda_event_create(0, &event), NORMJIT_DEVICE_ERROR,
               text);
  EXPECT_ERROR(normjit_cuda_flush_l2(0, nullptr), NORMJIT_DEVICE_ERROR, text);

  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 8);
  normjit_run_args_t args{};
  args.rows = 2;
  args.x = host;
  args.y = host;
  int dummy = 0;
  normjit_cuda_kernel_t kernel{&dummy, nullptr, 32, 1, 1, 0};
  EXPECT_ERROR(normjit_cuda_launch(&kernel, &spec, &args, nullptr),
               NORMJIT_DEVICE_ERROR, text);
}

TEST_F(CudaDriverTest, NoDriverAtTheGivenPath) {
  useDriver("/nonexistent/normjit/libcuda.so.1");
  expectEveryCallFails("no CUDA driver: /nonexistent/normjit/libcuda.so.1: "
                       "cannot open shared object file");
  EXPECT_TRUE(contains(normjit_last_error(), "NORMJIT_CUDA_DRIVER"));
}

TEST_F(CudaDriverTest, ImplausibleDeviceCountIsADeviceError) {
  // A driver's count sizes a table: 2^31 - 1 devices aborted the process
  // (std::bad_alloc) where it should be a device error.
  useDriver(NORMJIT_FAKE_CUDA_DRIVER);
  setenv("FAKE_CUDA_DEVICE_COUNT", "2147483647", 1);
  int count = -1;
  normjit_status_t status = normjit_cuda_device_count(&count);
  std::string message = normjit_last_error();
  unsetenv("FAKE_CUDA_DEVICE_COUNT");
  EXPECT_EQ(status, NORMJIT_DEVICE_ERROR);
  EXPECT_TRUE(contains(message.c_str(), "reports 2147483647 devices"))
      << message;
  useDriver(NORMJIT_FAKE_CUDA_DRIVER); // loaded again, believed
  EXPECT_EQ(normjit_cuda_device_count(&count), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_GT(count, 0);
}

TEST_F(CudaDriverTest, NoDriverByDefault) {
  if (void *real = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(real);
    GTEST_SKIP() << "this machine has a CUDA driver (libcuda.so.1)";
  }
  useDriver(nullptr);
  expectEveryCallFails(
      "no CUDA driver: libcuda.so.1: cannot open shared object file");
}

TEST_F(CudaDriverTest, StubLibraryIsNamed) {
  if (!fileExists(NORMJIT_CUDA_STUB_DRIVER))
    GTEST_SKIP() << "no CUDA toolkit stub library at "
                 << NORMJIT_CUDA_STUB_DRIVER;
  useDriver(NORMJIT_CUDA_STUB_DRIVER);
  expectEveryCallFails(
      "CUDA driver: cuInit failed: CUDA_ERROR_STUB_LIBRARY (34)");
  // The failure is not remembered: another driver is tried next time, and
  // the stub (whose soname is libcuda.so.1) is not left loaded.
  useDriver("/nonexistent/libcuda.so.1");
  EXPECT_ERROR(normjit_cuda_init(), NORMJIT_DEVICE_ERROR,
               "no CUDA driver: /nonexistent/libcuda.so.1");
  if (void *real =
          dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)) {
    dlclose(real);
    ADD_FAILURE() << "the stub library stayed loaded";
  }
}

//===--- Pure helpers ----------------------------------------------------===//

TEST(CudaLaunchTest, GridSize) {
  EXPECT_EQ(nc::normGridSize(1000, 4, false, 100, 2), 250);
  EXPECT_EQ(nc::normGridSize(1001, 4, false, 100, 2), 251);
  EXPECT_EQ(nc::normGridSize(1, 8, false, 100, 2), 1);
  EXPECT_EQ(nc::normGridSize(0, 8, false, 100, 2), 0);
  EXPECT_EQ(nc::normGridSize(100000, 1, true, 100, 2), 200);
  EXPECT_EQ(nc::normGridSize(150, 1, true, 100, 2), 150);
  EXPECT_EQ(nc::normGridSize(100000, 1, true, 100, 0), 100); // at least 1/SM
  EXPECT_EQ(nc::normGridSize(5, 4, true, 0, 0), 1);
  EXPECT_EQ(nc::normGridSize(int64_t(1) << 40, 1, false, 1, 1), int64_t(1)
                                                                    << 40);
}

TEST(CudaLaunchTest, Misalignment) {
  normjit_kernel_spec_t spec = fullSpec(1024);
  spec.y_dtype = NORMJIT_F16;
  alignas(64) static char memory[8][64];
  normjit_run_args_t args{};
  args.rows = 4;
  args.x = memory[0];
  args.residual = memory[1];
  args.gamma = memory[2];
  args.beta = memory[3];
  args.y = memory[4];
  args.sum = memory[5];
  args.mean = reinterpret_cast<float *>(memory[6] + 4); // never vectorized
  args.rstd = reinterpret_cast<float *>(memory[7] + 4);
  EXPECT_EQ(nc::misalignment(spec, args, 4), "");
  EXPECT_EQ(nc::misalignment(spec, args, 8), "");
  args.y = memory[4] + 8; // f16 x 8 needs 16 bytes, x 4 needs 8
  EXPECT_EQ(nc::misalignment(spec, args, 4), "");
  EXPECT_TRUE(contains(nc::misalignment(spec, args, 8),
                       "is not aligned to 16 bytes, as vector width 8"));
  EXPECT_EQ(nc::misalignment(spec, args, 8).rfind("y (0x", 0), 0u);
  args.y = memory[4];
  args.residual_stride = 1026;
  EXPECT_EQ(nc::misalignment(spec, args, 2), "");
  EXPECT_EQ(nc::misalignment(spec, args, 4),
            "residual row stride 1026 is not a multiple of vector width 4");
  args.residual_stride = 0;
  args.beta = memory[3] + 4;
  EXPECT_TRUE(contains(nc::misalignment(spec, args, 4), "beta ("));
  EXPECT_EQ(nc::misalignment(spec, args, 1), "");
  // cols is the stride of rows given with stride 0.
  normjit_kernel_spec_t odd = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 6);
  normjit_run_args_t oddArgs{};
  oddArgs.rows = 1;
  oddArgs.x = memory[0];
  oddArgs.y = memory[1];
  EXPECT_EQ(nc::misalignment(odd, oddArgs, 2), "");
  EXPECT_EQ(nc::misalignment(odd, oddArgs, 4),
            "x row stride 6 is not a multiple of vector width 4");
}

TEST(CudaLaunchTest, PacksDescriptors) {
  normjit_kernel_spec_t spec = fullSpec(1024);
  static float x[1], r[1], g[1], b[1], y[1], s[1], mean[1], rstd[1];
  normjit_run_args_t args{};
  args.rows = 10;
  args.x = x;
  args.residual = r;
  args.residual_stride = 2048;
  args.gamma = g;
  args.beta = b;
  args.y = y;
  args.y_stride = 1024;
  args.sum = s;
  args.mean = mean;
  args.rstd = rstd;
  nc::NormKernelParams params;
  nc::packNormKernelParams(spec, args, params);
  ASSERT_EQ(nc::kNormKernelParamCount, 48);
  for (int i = 0; i < 48; ++i)
    EXPECT_EQ(params.pointers[i], &params.slots[i]) << i;
  auto rowBuffer = [&](int at, const void *base, int64_t stride) {
    EXPECT_EQ(params.slots[at].pointer, base) << at;
    EXPECT_EQ(params.slots[at + 1].pointer, base) << at;
    EXPECT_EQ(params.slots[at + 2].value, 0) << at;
    EXPECT_EQ(params.slots[at + 3].value, 10) << at;
    EXPECT_EQ(params.slots[at + 4].value, 1024) << at;
    EXPECT_EQ(params.slots[at + 5].value, stride) << at;
    EXPECT_EQ(params.slots[at + 6].value, 1) << at;
  };
  auto vector = [&](int at, const void *base, int64_t size) {
    EXPECT_EQ(params.slots[at].pointer, base) << at;
    EXPECT_EQ(params.slots[at + 1].pointer, base) << at;
    EXPECT_EQ(params.slots[at + 2].value, 0) << at;
    EXPECT_EQ(params.slots[at + 3].value, size) << at;
    EXPECT_EQ(params.slots[at + 4].value, 1) << at;
  };
  rowBuffer(0, x, 1024); // stride 0 means cols
  rowBuffer(7, r, 2048);
  vector(14, g, 1024);
  vector(19, b, 1024);
  rowBuffer(24, y, 1024);
  rowBuffer(31, s, 1024);
  vector(38, mean, 10);
  vector(43, rstd, 10);
}

//===--- With the fake driver ---------------------------------------------===//

/// The fake driver, loaded as NORMJIT_CUDA_DRIVER, and its inspection
/// functions.
class FakeCudaTest : public CudaDriverTest {
protected:
  static void SetUpTestSuite() {
    handle = dlopen(NORMJIT_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle, nullptr) << dlerror();
    lastLaunch = lookup<fake_cuda_last_launch_fn>("fake_cuda_last_launch");
    counters = lookup<fake_cuda_counters_fn>("fake_cuda_counters");
    requestedVersion =
        lookup<fake_cuda_requested_version_fn>("fake_cuda_requested_version");
    primaryContext =
        lookup<fake_cuda_primary_context_fn>("fake_cuda_primary_context");
    pushUserContext =
        lookup<fake_cuda_push_user_context_fn>("fake_cuda_push_user_context");
    popContext = lookup<fake_cuda_pop_context_fn>("fake_cuda_pop_context");
    currentContext =
        lookup<fake_cuda_current_context_fn>("fake_cuda_current_context");
    lastSyncContext =
        lookup<fake_cuda_last_sync_context_fn>("fake_cuda_last_sync_context");
    pointerContext =
        lookup<fake_cuda_pointer_context_fn>("fake_cuda_pointer_context");
    recreateContext =
        lookup<fake_cuda_recreate_context_fn>("fake_cuda_recreate_context");
    lastSyncStream =
        lookup<fake_cuda_last_sync_stream_fn>("fake_cuda_last_sync_stream");
  }

  void SetUp() override {
    CudaDriverTest::SetUp();
    ASSERT_NE(handle, nullptr);
    useDriver(NORMJIT_FAKE_CUDA_DRIVER);
    ASSERT_EQ(normjit_cuda_init(), NORMJIT_OK) << normjit_last_error();
  }

  void TearDown() override {
    for (void *pointer : allocated)
      EXPECT_EQ(normjit_cuda_free(pointer), NORMJIT_OK) << normjit_last_error();
    allocated.clear();
    CudaDriverTest::TearDown();
  }

  template <typename Fn> static Fn lookup(const char *name) {
    auto fn = reinterpret_cast<Fn>(dlsym(handle, name));
    EXPECT_NE(fn, nullptr) << name;
    return fn;
  }

  void *deviceBuffer(size_t bytes, int ordinal = 0) {
    void *pointer = nullptr;
    EXPECT_EQ(normjit_cuda_malloc(ordinal, bytes, &pointer), NORMJIT_OK)
        << normjit_last_error();
    allocated.push_back(pointer);
    return pointer;
  }

  fake_cuda_counters_t count() {
    fake_cuda_counters_t out;
    counters(&out);
    return out;
  }

  static inline void *handle = nullptr;
  static inline fake_cuda_last_launch_fn lastLaunch = nullptr;
  static inline fake_cuda_counters_fn counters = nullptr;
  static inline fake_cuda_requested_version_fn requestedVersion = nullptr;
  static inline fake_cuda_primary_context_fn primaryContext = nullptr;
  static inline fake_cuda_push_user_context_fn pushUserContext = nullptr;
  static inline fake_cuda_pop_context_fn popContext = nullptr;
  static inline fake_cuda_current_context_fn currentContext = nullptr;
  static inline fake_cuda_last_sync_context_fn lastSyncContext = nullptr;
  static inline fake_cuda_pointer_context_fn pointerContext = nullptr;
  static inline fake_cuda_recreate_context_fn recreateContext = nullptr;
  static inline fake_cuda_last_sync_stream_fn lastSyncStream = nullptr;

  std::vector<void *> allocated;
};

const char kPtx[] = "//\n.version 8.0\n.target sm_90\n.address_size 64\n"
                    ".visible .entry norm_v4(\n) { ret; }\n"
                    ".visible .entry norm_v1(\n) { ret; }\n";

/// A module with the kernels norm_v4 and norm_v1 on `ordinal`.
struct LoadedKernel {
  normjit_cuda_module_t *module = nullptr;
  normjit_cuda_kernel_t kernel{};

  explicit LoadedKernel(int ordinal = 0) {
    EXPECT_EQ(normjit_cuda_module_load(ordinal, kPtx, sizeof kPtx, &module),
              NORMJIT_OK)
        << normjit_last_error();
    if (!module)
      return;
    EXPECT_EQ(
        normjit_cuda_module_get_function(module, "norm_v4", &kernel.function),
        NORMJIT_OK);
    EXPECT_EQ(normjit_cuda_module_get_function(module, "norm_v1",
                                               &kernel.function_unaligned),
              NORMJIT_OK);
    kernel.threads_per_row = 32;
    kernel.rows_per_block = 4;
    kernel.vector_width = 4;
  }
  ~LoadedKernel() {
    EXPECT_EQ(normjit_cuda_module_release(module), NORMJIT_OK);
  }
};

TEST_F(FakeCudaTest, DriverAndDevices) {
  EXPECT_STREQ(normjit_cuda_driver_path(), NORMJIT_FAKE_CUDA_DRIVER);
  EXPECT_EQ(normjit_cuda_init(), NORMJIT_OK); // once is enough, twice is fine
  int count = 0;
  ASSERT_EQ(normjit_cuda_device_count(&count), NORMJIT_OK);
  EXPECT_EQ(count, kFakeDeviceCount);

  normjit_cuda_device_info_t info;
  ASSERT_EQ(normjit_cuda_device_info(0, &info), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_STREQ(info.name, "normjit Fake GPU");
  EXPECT_EQ(info.ordinal, 0);
  EXPECT_EQ(info.cc_major, 9);
  EXPECT_EQ(info.cc_minor, 0);
  EXPECT_EQ(info.sm_count, kFakeSmCount);
  EXPECT_EQ(info.total_memory, uint64_t(80) << 30);
  EXPECT_EQ(info.driver_version, kFakeDriverVersion);
  EXPECT_EQ(info.warp_size, 32);
  EXPECT_EQ(info.max_threads_per_block, 1024);
  EXPECT_EQ(info.max_shared_memory_per_block, 48 * 1024);
  EXPECT_EQ(info.max_shared_memory_per_block_optin, 227 * 1024);
  EXPECT_EQ(info.l2_cache_bytes, kFakeL2Bytes);
  EXPECT_EQ(info.memory_clock_khz, 2619000);
  EXPECT_EQ(info.memory_bus_width_bits, 5120);
  // H100 SXM: 2 * 2.619 GHz * 640 bytes = 3352.32 GB/s.
  EXPECT_NEAR(info.dram_bandwidth_gbps, 3352.32, 1e-6);

  char text[NORMJIT_CUDA_FINGERPRINT_SIZE];
  ASSERT_EQ(normjit_cuda_device_fingerprint(0, text, sizeof text), NORMJIT_OK);
  EXPECT_STREQ(text, "cuda | normjit Fake GPU | sm_90 | 100 SMs | 80.0 GiB | "
                     "driver 13000");
  ASSERT_EQ(normjit_cuda_device_fingerprint(1, text, sizeof text), NORMJIT_OK);
  EXPECT_STREQ(text, "cuda | normjit Fake GPU Lite | sm_80 | 108 SMs | "
                     "40.0 GiB | driver 13000");
  EXPECT_ERROR(normjit_cuda_device_fingerprint(0, text, 20),
               NORMJIT_INVALID_ARGUMENT, "is too small; it needs 68");
  EXPECT_ERROR(normjit_cuda_device_info(2, &info), NORMJIT_INVALID_ARGUMENT,
               "no CUDA device 2 (2 devices)");
  EXPECT_ERROR(normjit_cuda_device_info(-1, &info), NORMJIT_INVALID_ARGUMENT,
               "no CUDA device -1");
  EXPECT_ERROR(normjit_cuda_device_count(nullptr), NORMJIT_INVALID_ARGUMENT,
               "count must not be null");
}

TEST_F(FakeCudaTest, AsksForTheCurrentAbiVersions) {
  // The _v2 entry points cuda.h maps the plain names to.
  EXPECT_GE(requestedVersion("cuMemAlloc"), 3020);
  EXPECT_GE(requestedVersion("cuMemFree"), 3020);
  EXPECT_GE(requestedVersion("cuMemcpyHtoD"), 3020);
  EXPECT_GE(requestedVersion("cuMemcpyDtoH"), 3020);
  EXPECT_GE(requestedVersion("cuMemcpyDtoD"), 3020);
  EXPECT_GE(requestedVersion("cuMemsetD8"), 3020);
  EXPECT_GE(requestedVersion("cuDeviceTotalMem"), 3020);
  EXPECT_GE(requestedVersion("cuCtxPushCurrent"), 4000);
  EXPECT_GE(requestedVersion("cuCtxPopCurrent"), 4000);
  EXPECT_GE(requestedVersion("cuStreamDestroy"), 4000);
  EXPECT_GE(requestedVersion("cuEventDestroy"), 4000);
  EXPECT_GE(requestedVersion("cuDevicePrimaryCtxRelease"), 11000);
  EXPECT_EQ(requestedVersion("cuEventElapsedTime"), 12080);
  // Ones whose newer versions change the signature stay on the old ABI.
  EXPECT_LT(requestedVersion("cuCtxGetDevice"), 13000);
  EXPECT_LT(requestedVersion("cuCtxSynchronize"), 13000);
  EXPECT_LT(requestedVersion("cuStreamGetCtx"), 12050);
  EXPECT_GT(requestedVersion("cuLaunchKernel"), 0);
  // Graphs: cuStreamBeginCapture_v2 (with a capture mode), and the
  // instantiation with flags (CUDA 11.4).
  EXPECT_EQ(requestedVersion("cuStreamBeginCapture"), 10010);
  EXPECT_EQ(requestedVersion("cuGraphInstantiateWithFlags"), 11040);
  EXPECT_GT(requestedVersion("cuGraphLaunch"), 0);
}

TEST_F(FakeCudaTest, UsesTheCurrentContextOnTheDeviceElseThePrimaryOne) {
  ASSERT_EQ(currentContext(), nullptr);
  void *a = deviceBuffer(64);
  EXPECT_EQ(pointerContext(a), primaryContext(0));
  EXPECT_EQ(currentContext(), nullptr); // pushed and popped again

  void *user = pushUserContext(0);
  void *b = deviceBuffer(64);
  EXPECT_EQ(pointerContext(b), user);
  EXPECT_EQ(currentContext(), user);
  void *c = deviceBuffer(64, 1); // other device: its primary context
  EXPECT_EQ(pointerContext(c), primaryContext(1));
  EXPECT_EQ(currentContext(), user);
  popContext();

  // Calls on a pointer use its context, whatever is current.
  void *other = pushUserContext(1);
  float data[16] = {1, 2, 3};
  EXPECT_EQ(normjit_cuda_memcpy_htod(b, data, sizeof data), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(currentContext(), other);
  popContext();
  EXPECT_EQ(count().primary_retains - count().primary_releases, 2);
}

TEST_F(FakeCudaTest, ModuleSynchronizeWaitsInTheModulesContext) {
  // A module loaded while the host had its own context current runs, and
  // is waited for, in that context, whatever is current later.
  void *user = pushUserContext(0);
  normjit_cuda_module_t *module = nullptr;
  ASSERT_EQ(normjit_cuda_module_load(0, kPtx, sizeof kPtx, &module),
            NORMJIT_OK)
      << normjit_last_error();
  popContext();
  void *other = pushUserContext(1);
  ASSERT_EQ(normjit_cuda_module_synchronize(module), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(lastSyncContext(), user);
  EXPECT_EQ(currentContext(), other); // pushed and popped again
  popContext();
  EXPECT_EQ(currentContext(), nullptr);
  ASSERT_EQ(normjit_cuda_module_synchronize(module), NORMJIT_OK);
  EXPECT_EQ(lastSyncContext(), user);
  EXPECT_ERROR(normjit_cuda_module_synchronize(nullptr),
               NORMJIT_INVALID_ARGUMENT, "module must not be null");
  EXPECT_EQ(normjit_cuda_module_release(module), NORMJIT_OK);
}

TEST_F(FakeCudaTest, MemoryHelpers) {
  const size_t bytes = 256;
  auto *a = static_cast<unsigned char *>(deviceBuffer(bytes));
  auto *b = static_cast<unsigned char *>(deviceBuffer(bytes));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 256, 0u);
  std::vector<unsigned char> in(bytes), out(bytes, 0);
  for (size_t i = 0; i < bytes; ++i)
    in[i] = static_cast<unsigned char>(i * 7);
  ASSERT_EQ(normjit_cuda_memcpy_htod(a, in.data(), bytes), NORMJIT_OK);
  ASSERT_EQ(normjit_cuda_memcpy_dtod(b, a, bytes), NORMJIT_OK);
  ASSERT_EQ(normjit_cuda_memcpy_dtoh(out.data(), b, bytes), NORMJIT_OK);
  EXPECT_EQ(in, out);
  ASSERT_EQ(normjit_cuda_memset(b + 16, 0xAB, 32), NORMJIT_OK);
  ASSERT_EQ(normjit_cuda_memcpy_dtoh(out.data(), b, bytes), NORMJIT_OK);
  EXPECT_EQ(out[15], in[15]);
  EXPECT_EQ(out[16], 0xAB);
  EXPECT_EQ(out[47], 0xAB);
  EXPECT_EQ(out[48], in[48]);
  EXPECT_EQ(normjit_cuda_synchronize(0), NORMJIT_OK);

  void *none = &none;
  EXPECT_EQ(normjit_cuda_malloc(0, 0, &none), NORMJIT_OK);
  EXPECT_EQ(none, nullptr);
  EXPECT_EQ(normjit_cuda_free(nullptr), NORMJIT_OK);
  float host[4];
  EXPECT_ERROR(normjit_cuda_free(host), NORMJIT_INVALID_ARGUMENT,
               "is not CUDA device memory");
  EXPECT_ERROR(normjit_cuda_memcpy_htod(host, in.data(), 4),
               NORMJIT_INVALID_ARGUMENT, "copy destination (0x");
  EXPECT_ERROR(normjit_cuda_memcpy_dtoh(out.data(), host, 4),
               NORMJIT_INVALID_ARGUMENT, "copy source (0x");
  EXPECT_ERROR(normjit_cuda_memset(a, 256, 4), NORMJIT_INVALID_ARGUMENT,
               "memset value must be a byte");
  EXPECT_ERROR(normjit_cuda_malloc(5, 64, &none), NORMJIT_INVALID_ARGUMENT,
               "no CUDA device 5");
}

TEST_F(FakeCudaTest, StreamsEventsAndL2Flush) {
  void *stream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &stream), NORMJIT_OK);
  ASSERT_NE(stream, nullptr);
  normjit_cuda_event_t *start = nullptr, *end = nullptr;
  ASSERT_EQ(normjit_cuda_event_create(0, &start), NORMJIT_OK);
  ASSERT_EQ(normjit_cuda_event_create(0, &end), NORMJIT_OK);
  ASSERT_EQ(normjit_cuda_event_record(start, stream), NORMJIT_OK);
  fake_cuda_counters_t before = count();
  ASSERT_EQ(normjit_cuda_flush_l2(0, stream), NORMJIT_OK)
      << normjit_last_error();
  ASSERT_EQ(normjit_cuda_flush_l2(0, nullptr), NORMJIT_OK);
  fake_cuda_counters_t after = count();
  EXPECT_EQ(after.async_memsets - before.async_memsets, 2);
  EXPECT_EQ(after.allocations - before.allocations, 1); // one scratch buffer
  ASSERT_EQ(normjit_cuda_event_record(end, nullptr), NORMJIT_OK);
  float ms = -1.0f;
  ASSERT_EQ(normjit_cuda_event_elapsed_ms(start, end, &ms), NORMJIT_OK);
  EXPECT_GT(ms, 0.0f);
  EXPECT_EQ(normjit_cuda_event_destroy(start), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_event_destroy(end), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_event_destroy(nullptr), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
  EXPECT_EQ(currentContext(), nullptr);
  // Resetting frees the scratch buffer.
  nc::resetDriverForTesting();
  EXPECT_EQ(count().allocations, before.allocations);
}

TEST_F(FakeCudaTest, GraphsRecordAndReplay) {
  EXPECT_EQ(normjit_cuda_graphs_available(), 1);
  void *stream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &stream), NORMJIT_OK);
  // Bad arguments: the legacy default stream cannot record; no graph out;
  // no recording to end.
  normjit_cuda_graph_t *graph = nullptr;
  EXPECT_EQ(normjit_cuda_capture_begin(nullptr), NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(normjit_last_error()).find("legacy default stream"),
            std::string::npos)
      << normjit_last_error();
  EXPECT_EQ(normjit_cuda_capture_end(stream, nullptr),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(normjit_cuda_capture_end(stream, &graph), NORMJIT_OK);
  EXPECT_EQ(graph, nullptr);
  EXPECT_EQ(normjit_cuda_graph_launch(nullptr, stream),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(normjit_cuda_graph_destroy(nullptr), NORMJIT_OK);

  // An empty recording is a graph too; replaying it launches nothing.
  fake_cuda_counters_t before = count();
  ASSERT_EQ(normjit_cuda_capture_begin(stream), NORMJIT_OK)
      << normjit_last_error();
  ASSERT_EQ(normjit_cuda_capture_end(stream, &graph), NORMJIT_OK)
      << normjit_last_error();
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(normjit_cuda_graph_launch(graph, stream), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_graph_launch(graph, stream), NORMJIT_OK);
  fake_cuda_counters_t after = count();
  EXPECT_EQ(after.graph_launches - before.graph_launches, 2);
  EXPECT_EQ(after.launches, before.launches);
  EXPECT_EQ(normjit_cuda_graph_destroy(graph), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
  EXPECT_EQ(currentContext(), nullptr);
}

TEST_F(FakeCudaTest, ModuleCache) {
  fake_cuda_counters_t before = count();
  normjit_cuda_module_t *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr;
  ASSERT_EQ(normjit_cuda_module_load(0, kPtx, sizeof kPtx, &a), NORMJIT_OK);
  std::string copy(kPtx, sizeof kPtx); // same bytes elsewhere
  ASSERT_EQ(normjit_cuda_module_load(0, copy.data(), copy.size(), &b),
            NORMJIT_OK);
  EXPECT_EQ(a, b);
  EXPECT_EQ(count().module_loads - before.module_loads, 1);
  // Without its NUL the image differs: another module, still loadable.
  ASSERT_EQ(normjit_cuda_module_load(0, kPtx, sizeof kPtx - 1, &c), NORMJIT_OK);
  EXPECT_NE(c, a);
  ASSERT_EQ(normjit_cuda_module_load(1, kPtx, sizeof kPtx, &d), NORMJIT_OK);
  EXPECT_NE(d, a);
  EXPECT_EQ(count().module_loads - before.module_loads, 3);

  void *function = nullptr;
  ASSERT_EQ(normjit_cuda_module_get_function(a, "norm_v4", &function),
            NORMJIT_OK);
  EXPECT_NE(function, nullptr);
  EXPECT_ERROR(normjit_cuda_module_get_function(a, "missing_kernel", &function),
               NORMJIT_INVALID_ARGUMENT,
               "CUDA module has no kernel named 'missing_kernel'");
  EXPECT_EQ(function, nullptr);

  EXPECT_EQ(normjit_cuda_module_release(a), NORMJIT_OK);
  EXPECT_EQ(count().module_unloads - before.module_unloads, 0); // b holds it
  EXPECT_EQ(normjit_cuda_module_release(b), NORMJIT_OK);
  EXPECT_EQ(count().module_unloads - before.module_unloads, 1);
  EXPECT_EQ(normjit_cuda_module_release(c), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_module_release(d), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_module_release(nullptr), NORMJIT_OK);
  EXPECT_EQ(count().module_unloads - before.module_unloads, 3);
  // After the last release the image loads afresh.
  ASSERT_EQ(normjit_cuda_module_load(0, kPtx, sizeof kPtx, &a), NORMJIT_OK);
  EXPECT_EQ(count().module_loads - before.module_loads, 4);
  EXPECT_EQ(normjit_cuda_module_release(a), NORMJIT_OK);

  EXPECT_ERROR(normjit_cuda_module_load(0, kPtx, 0, &a),
               NORMJIT_INVALID_ARGUMENT, "must not be empty");
  EXPECT_ERROR(normjit_cuda_module_load(3, kPtx, sizeof kPtx, &a),
               NORMJIT_INVALID_ARGUMENT, "no CUDA device 3");
}

TEST_F(FakeCudaTest, ModuleCacheAcrossThreads) {
  fake_cuda_counters_t before = count();
  std::vector<normjit_cuda_module_t *> modules(8, nullptr);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < modules.size(); ++i)
    threads.emplace_back([&, i] {
      EXPECT_EQ(normjit_cuda_module_load(0, kPtx, sizeof kPtx, &modules[i]),
                NORMJIT_OK);
    });
  for (std::thread &thread : threads)
    thread.join();
  for (normjit_cuda_module_t *module : modules)
    EXPECT_EQ(module, modules[0]);
  for (normjit_cuda_module_t *module : modules)
    EXPECT_EQ(normjit_cuda_module_release(module), NORMJIT_OK);
  fake_cuda_counters_t after = count();
  EXPECT_GE(after.module_loads - before.module_loads, 1);
  EXPECT_EQ(after.module_loads - before.module_loads,
            after.module_unloads - before.module_unloads);
}

TEST_F(FakeCudaTest, BadPtxLogIsInTheMessage) {
  const char bad[] = ".version 8.0\n.entry k() { syntax error bogus; }\n";
  normjit_cuda_module_t *module = nullptr;
  EXPECT_ERROR(normjit_cuda_module_load(0, bad, sizeof bad, &module),
               NORMJIT_COMPILE_ERROR,
               "CUDA driver: cuModuleLoadDataEx failed: CUDA_ERROR_INVALID_PTX "
               "(218): a PTX JIT compilation failed; JIT log: ptxas "
               "application ptx input, line 3; error   : syntax error near "
               "'bogus'; ptxas fatal   : Ptx assembly aborted due to errors");
  EXPECT_FALSE(contains(normjit_last_error(), "\n"));
  EXPECT_EQ(module, nullptr);
  EXPECT_EQ(currentContext(), nullptr);
}

TEST_F(FakeCudaTest, LaunchRefusesAStreamOfAnotherContext) {
  LoadedKernel loaded; // loaded in device 0's primary context
  normjit_kernel_spec_t spec = fullSpec(1024);
  normjit_run_args_t args{};
  args.rows = 2;
  args.x = deviceBuffer(2 * 1024 * 4);
  args.residual = deviceBuffer(2 * 1024 * 4);
  args.gamma = deviceBuffer(1024 * 4);
  args.beta = deviceBuffer(1024 * 4);
  args.y = deviceBuffer(2 * 1024 * 4);
  args.sum = deviceBuffer(2 * 1024 * 4);
  args.mean = static_cast<float *>(deviceBuffer(2 * 4));
  args.rstd = static_cast<float *>(deviceBuffer(2 * 4));
  void *user = pushUserContext(0);
  void *stream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &stream), NORMJIT_OK);
  popContext();
  long launches = lastLaunch(nullptr);
  EXPECT_ERROR(normjit_cuda_launch(&loaded.kernel, &spec, &args, stream),
               NORMJIT_INVALID_ARGUMENT,
               "the stream belongs to another CUDA context than the kernel");
  EXPECT_EQ(lastLaunch(nullptr), launches);
  EXPECT_EQ(currentContext(), nullptr);
  (void)user;
  // The default stream (null) runs in the kernel's context.
  EXPECT_EQ(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(lastLaunch(nullptr), launches + 1);
  pushUserContext(0);
  EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
  popContext();
}

TEST_F(FakeCudaTest, LaunchPacksAllOperands) {
  LoadedKernel loaded;
  normjit_kernel_spec_t spec = fullSpec(1024);
  spec.y_dtype = NORMJIT_BF16;
  normjit_run_args_t args{};
  args.rows = 10;
  args.x = deviceBuffer(10 * 1024 * 4);
  args.residual = deviceBuffer(10 * 2048 * 4);
  args.residual_stride = 2048;
  args.gamma = deviceBuffer(1024 * 4);
  args.beta = deviceBuffer(1024 * 4);
  args.y = deviceBuffer(10 * 1024 * 2);
  args.y_stride = 1024;
  args.sum = deviceBuffer(10 * 1024 * 4);
  args.mean = static_cast<float *>(deviceBuffer(10 * 4));
  args.rstd = static_cast<float *>(deviceBuffer(10 * 4));
  void *stream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &stream), NORMJIT_OK);

  long launches = lastLaunch(nullptr);
  ASSERT_EQ(normjit_cuda_launch(&loaded.kernel, &spec, &args, stream),
            NORMJIT_OK)
      << normjit_last_error();
  fake_cuda_launch_t launch;
  ASSERT_EQ(lastLaunch(&launch), launches + 1);
  EXPECT_EQ(launch.function, loaded.kernel.function);
  EXPECT_EQ(launch.block[0], 128u);
  EXPECT_EQ(launch.block[1], 1u);
  EXPECT_EQ(launch.block[2], 1u);
  EXPECT_EQ(launch.grid[0], 3u); // ceil(10 / 4)
  EXPECT_EQ(launch.grid[1], 1u);
  EXPECT_EQ(launch.grid[2], 1u);
  EXPECT_EQ(launch.shared_bytes, 0u);
  EXPECT_EQ(launch.stream, stream);
  EXPECT_EQ(launch.context, primaryContext(0));
  EXPECT_EQ(currentContext(), nullptr);

  auto p = [](const void *pointer) {
    return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(pointer));
  };
  const uint64_t expected[48] = {
      p(args.x),        p(args.x),        0, 10,   1024, 1024, 1, // x
      p(args.residual), p(args.residual), 0, 10,   1024, 2048, 1, // residual
      p(args.gamma),    p(args.gamma),    0, 1024, 1,             // gamma
      p(args.beta),     p(args.beta),     0, 1024, 1,             // beta
      p(args.y),        p(args.y),        0, 10,   1024, 1024, 1, // y
      p(args.sum),      p(args.sum),      0, 10,   1024, 1024, 1, // sum
      p(args.mean),     p(args.mean),     0, 10,   1,             // mean
      p(args.rstd),     p(args.rstd),     0, 10,   1};            // rstd
  for (int i = 0; i < 48; ++i)
    EXPECT_EQ(launch.params[i], expected[i]) << "parameter " << i;
  EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
}

TEST_F(FakeCudaTest, UnusedOperandsAreNull) {
  LoadedKernel loaded;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 96);
  normjit_run_args_t args{};
  args.rows = 7;
  args.x = deviceBuffer(7 * 128 * 4);
  args.x_stride = 128;
  args.y = deviceBuffer(7 * 96 * 4);
  ASSERT_EQ(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
            NORMJIT_OK)
      << normjit_last_error();
  fake_cuda_launch_t launch;
  lastLaunch(&launch);
  auto p = [](const void *pointer) {
    return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(pointer));
  };
  const uint64_t expected[48] = {
      p(args.x), p(args.x), 0, 7,  96, 128, 1, // x
      0,         0,         0, 7,  96, 96,  1, // residual
      0,         0,         0, 96, 1,          // gamma
      0,         0,         0, 96, 1,          // beta
      p(args.y), p(args.y), 0, 7,  96, 96,  1, // y
      0,         0,         0, 7,  96, 96,  1, // sum
      0,         0,         0, 7,  1,          // mean
      0,         0,         0, 7,  1};         // rstd
  for (int i = 0; i < 48; ++i)
    EXPECT_EQ(launch.params[i], expected[i]) << "parameter " << i;
  EXPECT_EQ(launch.stream, nullptr);
  EXPECT_EQ(launch.grid[0], 2u);
}

TEST_F(FakeCudaTest, GridSizes) {
  LoadedKernel loaded;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 64);
  normjit_run_args_t args{};
  args.x = deviceBuffer(100001 * 64 * 4);
  args.y = deviceBuffer(100001 * 64 * 4);
  struct Case {
    int64_t rows;
    int threadsPerRow, rowsPerBlock, persistent;
    unsigned grid, block;
  } cases[] = {
      {100000, 32, 1, 0, 100000, 32},
      {100000, 32, 4, 0, 25000, 128},
      {100001, 32, 4, 0, 25001, 128},
      {1, 256, 1, 0, 1, 256},
      {100000, 32, 1, 1, kFakeSmCount * kFakeBlocksPerSm, 32},
      {100000, 64, 8, 1, kFakeSmCount * kFakeBlocksPerSm, 512},
      {150, 32, 1, 1, 150, 32}, // fewer row groups than resident blocks
      {3, 32, 4, 1, 1, 128},
  };
  for (const Case &c : cases) {
    args.rows = c.rows;
    loaded.kernel.threads_per_row = c.threadsPerRow;
    loaded.kernel.rows_per_block = c.rowsPerBlock;
    loaded.kernel.persistent = c.persistent;
    ASSERT_EQ(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
              NORMJIT_OK)
        << normjit_last_error();
    fake_cuda_launch_t launch;
    lastLaunch(&launch);
    EXPECT_EQ(launch.grid[0], c.grid) << c.rows << " rows";
    EXPECT_EQ(launch.block[0], c.block) << c.rows << " rows";
  }
  // Occupancy is asked once per function and block size.
  long queries = count().occupancy_queries;
  args.rows = 5000;
  loaded.kernel.persistent = 1;
  ASSERT_EQ(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
            NORMJIT_OK);
  EXPECT_EQ(count().occupancy_queries, queries);

  // rows == 0 launches nothing.
  long launches = lastLaunch(nullptr);
  args.rows = 0;
  EXPECT_EQ(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
            NORMJIT_OK);
  EXPECT_EQ(lastLaunch(nullptr), launches);
}

TEST_F(FakeCudaTest, AlignedOrUnalignedEntry) {
  LoadedKernel loaded;
  normjit_kernel_spec_t spec = fullSpec(1000);
  spec.store_mean = spec.store_rstd = 0;
  spec.store_sum = 0;
  normjit_run_args_t args{};
  args.rows = 8;
  auto *x = static_cast<float *>(deviceBuffer(9 * 1004 * 4));
  args.x = x;
  args.residual = deviceBuffer(8 * 1000 * 4);
  auto *gamma = static_cast<float *>(deviceBuffer(1001 * 4));
  args.gamma = gamma;
  args.beta = deviceBuffer(1000 * 4);
  args.y = deviceBuffer(8 * 1000 * 4);
  fake_cuda_launch_t launch;

  auto launchWith = [&]() {
    return normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr);
  };
  ASSERT_EQ(launchWith(), NORMJIT_OK) << normjit_last_error();
  lastLaunch(&launch);
  EXPECT_EQ(launch.function, loaded.kernel.function);

  args.x = x + 1; // 4-byte aligned only
  ASSERT_EQ(launchWith(), NORMJIT_OK);
  lastLaunch(&launch);
  EXPECT_EQ(launch.function, loaded.kernel.function_unaligned);

  args.x = x;
  args.x_stride = 1002; // not a multiple of 4
  ASSERT_EQ(launchWith(), NORMJIT_OK);
  lastLaunch(&launch);
  EXPECT_EQ(launch.function, loaded.kernel.function_unaligned);

  args.x_stride = 1004;
  ASSERT_EQ(launchWith(), NORMJIT_OK);
  lastLaunch(&launch);
  EXPECT_EQ(launch.function, loaded.kernel.function);
  EXPECT_EQ(launch.params[5], 1004u);

  args.gamma = gamma + 2;
  ASSERT_EQ(launchWith(), NORMJIT_OK);
  lastLaunch(&launch);
  EXPECT_EQ(launch.function, loaded.kernel.function_unaligned);

  // vector width 2 is happy with 8-byte alignment and even strides.
  loaded.kernel.vector_width = 2;
  args.x_stride = 1002;
  ASSERT_EQ(launchWith(), NORMJIT_OK);
  lastLaunch(&launch);
  EXPECT_EQ(launch.function, loaded.kernel.function);

  // Without an unaligned entry, misaligned buffers are an error.
  loaded.kernel.vector_width = 4;
  loaded.kernel.function_unaligned = nullptr;
  long launches = lastLaunch(nullptr);
  EXPECT_ERROR(launchWith(), NORMJIT_INVALID_ARGUMENT,
               "x row stride 1002 is not a multiple of vector width 4, and "
               "the kernel has no unaligned variant");
  args.x_stride = 0;
  EXPECT_ERROR(launchWith(), NORMJIT_INVALID_ARGUMENT,
               ") is not aligned to 16 bytes, as vector width 4 needs, and the "
               "kernel has no unaligned variant");
  EXPECT_TRUE(contains(normjit_last_error(), "gamma (0x"));
  EXPECT_EQ(lastLaunch(nullptr), launches);
}

TEST_F(FakeCudaTest, HostPointersAreRejected) {
  LoadedKernel loaded;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 64);
  spec.has_gamma = 1;
  std::vector<float> host(4 * 64);
  normjit_run_args_t args{};
  args.rows = 4;
  args.x = host.data();
  args.y = deviceBuffer(4 * 64 * 4);
  args.gamma = deviceBuffer(64 * 4);
  long launches = lastLaunch(nullptr);
  EXPECT_ERROR(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "x (0x");
  EXPECT_TRUE(contains(normjit_last_error(), "is not CUDA device memory"));
  args.x = args.y;
  args.gamma = host.data();
  EXPECT_ERROR(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "gamma (0x");
  // Even with no rows to do.
  args.rows = 0;
  EXPECT_ERROR(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "is not CUDA device memory");
  EXPECT_EQ(lastLaunch(nullptr), launches);
  EXPECT_EQ(currentContext(), nullptr);
}

TEST_F(FakeCudaTest, BadArguments) {
  LoadedKernel loaded;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 64);
  normjit_run_args_t args{};
  args.rows = 4;
  args.x = deviceBuffer(4 * 64 * 4);
  args.y = deviceBuffer(4 * 64 * 4);
  normjit_cuda_kernel_t kernel = loaded.kernel;
  long launches = lastLaunch(nullptr);

  normjit_run_args_t bad = args;
  bad.x = nullptr;
  EXPECT_ERROR(normjit_cuda_launch(&kernel, &spec, &bad, nullptr),
               NORMJIT_INVALID_ARGUMENT, "x must not be null");
  bad = args;
  bad.rows = -1;
  EXPECT_ERROR(normjit_cuda_launch(&kernel, &spec, &bad, nullptr),
               NORMJIT_INVALID_ARGUMENT, "rows must not be negative");
  bad = args;
  bad.y_stride = 63;
  EXPECT_ERROR(normjit_cuda_launch(&kernel, &spec, &bad, nullptr),
               NORMJIT_INVALID_ARGUMENT, "y_stride (63) is less than cols");
  bad = args;
  bad.mean = static_cast<float *>(deviceBuffer(16));
  EXPECT_ERROR(normjit_cuda_launch(&kernel, &spec, &bad, nullptr),
               NORMJIT_INVALID_ARGUMENT,
               "mean is given but the kernel spec does not use it");
  normjit_kernel_spec_t badSpec = spec;
  badSpec.epsilon = 0.0f;
  EXPECT_ERROR(normjit_cuda_launch(&kernel, &badSpec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "epsilon must be positive");
  EXPECT_ERROR(normjit_cuda_launch(&kernel, nullptr, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "kernel spec must not be null");
  EXPECT_ERROR(normjit_cuda_launch(&kernel, &spec, nullptr, nullptr),
               NORMJIT_INVALID_ARGUMENT, "run arguments must not be null");

  EXPECT_ERROR(normjit_cuda_launch(nullptr, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "CUDA kernel must not be null");
  normjit_cuda_kernel_t badKernel = kernel;
  badKernel.function = nullptr;
  EXPECT_ERROR(normjit_cuda_launch(&badKernel, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT,
               "CUDA kernel function must not be null");
  badKernel = kernel;
  badKernel.threads_per_row = 0;
  EXPECT_ERROR(normjit_cuda_launch(&badKernel, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "of at least 1, got 0, 4 and 4");
  badKernel = kernel;
  badKernel.threads_per_row = 512;
  EXPECT_ERROR(normjit_cuda_launch(&badKernel, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT,
               "CUDA block of 2048 threads (threads_per_row * rows_per_block) "
               "is more than 1024");
  EXPECT_EQ(lastLaunch(nullptr), launches);
}

TEST_F(FakeCudaTest, ForeignFunctionNeedsACurrentContext) {
  LoadedKernel loaded;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 64);
  normjit_run_args_t args{};
  args.rows = 4;
  args.x = deviceBuffer(4 * 64 * 4);
  args.y = deviceBuffer(4 * 64 * 4);
  // A function normjit did not hand out (here: from a module released
  // meanwhile would be the same) runs in the current context.
  normjit_cuda_module_t *other = nullptr;
  const char ptx[] = ".version 8.0\n.visible .entry foreign(\n) { ret; }\n";
  ASSERT_EQ(normjit_cuda_module_load(0, ptx, sizeof ptx, &other), NORMJIT_OK);
  void *function = nullptr;
  ASSERT_EQ(normjit_cuda_module_get_function(other, "foreign", &function),
            NORMJIT_OK);
  normjit_cuda_kernel_t kernel = loaded.kernel;
  kernel.function = function;
  kernel.vector_width = 1;
  // Registered: runs in its module's context.
  ASSERT_EQ(normjit_cuda_launch(&kernel, &spec, &args, nullptr), NORMJIT_OK);
  // Unregistered (a raw CUfunction): needs a current context.
  int notAFunction = 0;
  kernel.function = &notAFunction;
  EXPECT_ERROR(normjit_cuda_launch(&kernel, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "no CUDA context is current");
  EXPECT_EQ(normjit_cuda_module_release(other), NORMJIT_OK);
}

TEST_F(FakeCudaTest, StreamContextIsTheStreamsElseTheCurrentOrPrimaryOne) {
  void *context = nullptr;
  uint64_t id = 0, primaryId = 0;
  ASSERT_EQ(normjit_cuda_stream_context(0, nullptr, &context, &primaryId),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(context, primaryContext(0));
  // The default-stream handles (legacy 0x1, per-thread 0x2) alike.
  ASSERT_EQ(normjit_cuda_stream_context(0, reinterpret_cast<void *>(0x2),
                                        &context, &id),
            NORMJIT_OK);
  EXPECT_EQ(context, primaryContext(0));
  EXPECT_EQ(id, primaryId);

  void *user = pushUserContext(0);
  void *userStream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &userStream), NORMJIT_OK);
  ASSERT_EQ(normjit_cuda_stream_context(0, nullptr, &context, &id),
            NORMJIT_OK);
  EXPECT_EQ(context, user);
  EXPECT_NE(id, primaryId);
  uint64_t userId = id;
  // Current context on another device: device 1's primary context.
  ASSERT_EQ(normjit_cuda_stream_context(1, nullptr, &context, nullptr),
            NORMJIT_OK);
  EXPECT_EQ(context, primaryContext(1));
  popContext();

  // A stream's own context, whatever is current.
  ASSERT_EQ(normjit_cuda_stream_context(0, userStream, &context, &id),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(context, user);
  EXPECT_EQ(id, userId);
  EXPECT_EQ(currentContext(), nullptr);
  // ... which must be on the device asked for.
  EXPECT_ERROR(normjit_cuda_stream_context(1, userStream, &context, &id),
               NORMJIT_INVALID_ARGUMENT,
               "the stream is on CUDA device 0, not on device 1 that the "
               "call is for");
  EXPECT_EQ(context, nullptr);
  EXPECT_ERROR(normjit_cuda_stream_context(0, nullptr, nullptr, nullptr),
               NORMJIT_INVALID_ARGUMENT, "context output must not be null");
  EXPECT_ERROR(normjit_cuda_stream_context(2, nullptr, &context, nullptr),
               NORMJIT_INVALID_ARGUMENT, "no CUDA device 2");
  pushUserContext(0);
  EXPECT_EQ(normjit_cuda_stream_destroy(userStream), NORMJIT_OK);
  popContext();
}

TEST_F(FakeCudaTest, ModuleLoadInAContext) {
  void *user = pushUserContext(0);
  popContext();
  normjit_cuda_module_t *inUser = nullptr, *again = nullptr,
                        *inPrimary = nullptr;
  long loads = count().module_loads;
  ASSERT_EQ(normjit_cuda_module_load_in_context(user, kPtx, sizeof kPtx,
                                                &inUser),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(currentContext(), nullptr);
  ASSERT_EQ(normjit_cuda_module_load_in_context(user, kPtx, sizeof kPtx,
                                                &again),
            NORMJIT_OK);
  EXPECT_EQ(again, inUser); // the same bytes in the same context
  ASSERT_EQ(normjit_cuda_module_load(0, kPtx, sizeof kPtx, &inPrimary),
            NORMJIT_OK);
  EXPECT_NE(inPrimary, inUser);
  EXPECT_EQ(count().module_loads - loads, 2);
  ASSERT_EQ(normjit_cuda_module_synchronize(inUser), NORMJIT_OK);
  EXPECT_EQ(lastSyncContext(), user);

  // The driver reuses the handle of a destroyed context for a new one: the
  // cache keys modules by context id, so the new context gets its own.
  recreateContext(user);
  normjit_cuda_module_t *renewed = nullptr;
  ASSERT_EQ(normjit_cuda_module_load_in_context(user, kPtx, sizeof kPtx,
                                                &renewed),
            NORMJIT_OK);
  EXPECT_NE(renewed, inUser);
  EXPECT_EQ(count().module_loads - loads, 3);

  EXPECT_ERROR(
      normjit_cuda_module_load_in_context(nullptr, kPtx, sizeof kPtx, &again),
      NORMJIT_INVALID_ARGUMENT, "CUDA context must not be null");
  EXPECT_ERROR(normjit_cuda_module_load_in_context(user, kPtx, 0, &again),
               NORMJIT_INVALID_ARGUMENT, "CUDA module image must not be empty");
  // The modules of the destroyed context went with it: released without
  // an unload in the new context that has its handle (the fake refuses
  // that unload, a real driver's behaviour would be undefined).
  long unloads = count().module_unloads;
  ASSERT_EQ(again, nullptr); // the failed calls cleared it
  EXPECT_EQ(normjit_cuda_module_release(inUser), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_module_release(inUser), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(count().module_unloads, unloads);
  EXPECT_EQ(normjit_cuda_module_release(inPrimary), NORMJIT_OK);
  EXPECT_EQ(normjit_cuda_module_release(renewed), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(count().module_unloads, unloads + 2);
}

TEST_F(FakeCudaTest, MemoryOfAnotherDeviceNeedsPeers) {
  LoadedKernel loaded; // device 0
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, 64);
  normjit_run_args_t args{};
  args.rows = 4;
  args.x = deviceBuffer(4 * 64 * 4, 1);
  args.y = deviceBuffer(4 * 64 * 4, 0);
  long launches = lastLaunch(nullptr);
  unsetenv("FAKE_CUDA_PEERS");
  EXPECT_ERROR(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
               NORMJIT_INVALID_ARGUMENT, "x (0x");
  EXPECT_TRUE(contains(normjit_last_error(),
                       "is memory of CUDA device 1, which the kernel's device "
                       "cannot reach (not peers)"))
      << normjit_last_error();
  EXPECT_EQ(lastLaunch(nullptr), launches);
  // Peers: the host may have enabled peer access, which cannot be asked.
  setenv("FAKE_CUDA_PEERS", "1", 1);
  EXPECT_EQ(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
            NORMJIT_OK)
      << normjit_last_error();
  unsetenv("FAKE_CUDA_PEERS");
  EXPECT_EQ(lastLaunch(nullptr), launches + 1);
  // Managed memory migrates: any device may use it.
  setenv("FAKE_CUDA_MANAGED", "1", 1);
  EXPECT_EQ(normjit_cuda_launch(&loaded.kernel, &spec, &args, nullptr),
            NORMJIT_OK)
      << normjit_last_error();
  unsetenv("FAKE_CUDA_MANAGED");
  EXPECT_EQ(lastLaunch(nullptr), launches + 2);
}

TEST_F(FakeCudaTest, L2FlushScratchPerContext) {
  fake_cuda_counters_t before = count();
  ASSERT_EQ(normjit_cuda_flush_l2(0, nullptr), NORMJIT_OK)
      << normjit_last_error();
  void *user = pushUserContext(0);
  void *userStream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &userStream), NORMJIT_OK);
  popContext();
  // The stream's context gets its own buffer, whatever is current.
  ASSERT_EQ(normjit_cuda_flush_l2(0, userStream), NORMJIT_OK)
      << normjit_last_error();
  ASSERT_EQ(normjit_cuda_flush_l2(0, userStream), NORMJIT_OK);
  ASSERT_EQ(normjit_cuda_flush_l2(0, nullptr), NORMJIT_OK);
  fake_cuda_counters_t after = count();
  EXPECT_EQ(after.async_memsets - before.async_memsets, 4);
  EXPECT_EQ(after.allocations - before.allocations, 2);
  EXPECT_EQ(currentContext(), nullptr);
  pushUserContext(0);
  EXPECT_EQ(normjit_cuda_stream_destroy(userStream), NORMJIT_OK);
  popContext();
  (void)user;
  nc::resetDriverForTesting();
  EXPECT_EQ(count().allocations, before.allocations);
}

TEST_F(FakeCudaTest, AChildForkedAfterInitIsToldCudaIsUnusable) {
  void *buffer = deviceBuffer(64); // the driver is loaded and in use
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int count = -1;
    normjit_status_t status = normjit_cuda_device_count(&count);
    bool said = status == NORMJIT_DEVICE_ERROR &&
                std::strstr(normjit_last_error(),
                            "the child of a fork() made after the parent "
                            "initialized CUDA") != nullptr;
    void *more = nullptr;
    bool refused = normjit_cuda_malloc(0, 64, &more) == NORMJIT_DEVICE_ERROR;
    _exit(said && refused ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent goes on.
  int count = 0;
  EXPECT_EQ(normjit_cuda_device_count(&count), NORMJIT_OK);
  EXPECT_EQ(count, kFakeDeviceCount);
  EXPECT_EQ(normjit_cuda_memset(buffer, 1, 64), NORMJIT_OK);
}

TEST_F(FakeCudaTest, StreamSynchronizeWaitsForOneStream) {
  long syncs = count().stream_syncs;
  void *user = pushUserContext(0);
  void *stream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &stream), NORMJIT_OK);
  popContext();
  ASSERT_EQ(normjit_cuda_stream_synchronize(0, stream), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(lastSyncContext(), user); // the stream's context
  EXPECT_EQ(lastSyncStream(), stream);
  ASSERT_EQ(normjit_cuda_stream_synchronize(0, nullptr), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(lastSyncContext(), primaryContext(0));
  EXPECT_EQ(lastSyncStream(), nullptr);
  EXPECT_EQ(currentContext(), nullptr);
  EXPECT_EQ(count().stream_syncs - syncs, 2);
  EXPECT_ERROR(normjit_cuda_stream_synchronize(1, stream),
               NORMJIT_INVALID_ARGUMENT, "the stream is on CUDA device 0");
  // The memory helpers wait for their own stream, not the whole context.
  void *buffer = deviceBuffer(64), *other = deviceBuffer(64);
  float data[16] = {};
  fake_cuda_counters_t before = count();
  ASSERT_EQ(normjit_cuda_memset(buffer, 7, 64), NORMJIT_OK);
  EXPECT_EQ(lastSyncStream(), nullptr);
  ASSERT_EQ(normjit_cuda_memcpy_htod(buffer, data, sizeof data), NORMJIT_OK);
  ASSERT_EQ(normjit_cuda_memcpy_dtod(other, buffer, 64), NORMJIT_OK);
  EXPECT_EQ(lastSyncStream(), nullptr);
  EXPECT_EQ(count().stream_syncs - before.stream_syncs, 3);
  EXPECT_EQ(count().context_syncs - before.context_syncs, 0);
  pushUserContext(0);
  EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
  popContext();
}

} // namespace
