//===- AotCudaTest.cpp - ahead-of-time GPU kernels without a GPU ----------===//
//
// Part of normjit. Runs the runtime side of AOT GPU kernels (aot_cuda.h)
// against no driver and against the fake driver (FakeCudaDriver.cpp, whose
// device 0 is sm_90 and device 1 sm_80): which image each device picks,
// the fallback when an image does not load, a clear error when none suits
// the device, one load per device however many calls and threads, a load
// in each context the kernel is launched in, and the launch shape and entry
// (aligned or scalar twin) of a launch.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/CudaLaunch.h"
#include "normjit/runtime/aot_cuda.h"
#include "normjit/runtime/cuda.h"

#include "FakeCudaDriver.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

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

/// Images as text the fake driver "loads": it finds ".entry NAME(" in them
/// and fails on "syntax error". Each chip's text names its chip, so two
/// images never have the same bytes (the module cache would share them).
std::string imageText(const char *chip, const char *what,
                      bool loadable = true) {
  return std::string("// ") + what + " for " + chip + "\n" +
         (loadable ? "" : "syntax error\n") +
         ".entry k(\n.entry k_unaligned(\n";
}

/// A kernel over some images, as generated code describes one: a row in
/// registers, 64 threads per row, 2 rows per block, vectors of 4.
struct Kernel {
  explicit Kernel(std::vector<normjit_aot_cuda_image_t> imageList)
      : images(std::move(imageList)) {
    for (size_t i = 0; i < images.size(); ++i)
      variants.push_back({"k", "k_unaligned", 64, 2, 4, 0});
    descriptor.name = "k";
    descriptor.spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 256);
    descriptor.spec.has_gamma = 1;
    descriptor.images = images.data();
    descriptor.variants = variants.data();
    descriptor.image_count = static_cast<int64_t>(images.size());
    descriptor.state = nullptr;
  }
  std::vector<normjit_aot_cuda_image_t> images;
  std::vector<normjit_aot_cuda_variant_t> variants;
  normjit_aot_cuda_kernel_t descriptor{};
};

normjit_aot_cuda_image_t image(const char *name, int cc, int cubin,
                               const std::string &data) {
  return {name, cc, cubin, data.c_str(), data.size() + 1};
}

std::vector<int64_t> candidates(const std::vector<normjit_aot_cuda_image_t> &i,
                                int major, int minor) {
  std::vector<int64_t> order(i.size(), -1);
  int64_t count = normjit_aot_cuda_candidates(
      i.data(), static_cast<int64_t>(i.size()), major, minor, order.data());
  order.resize(static_cast<size_t>(count));
  return order;
}

//===--- The choice of image ----------------------------------------------===//

TEST(AotCudaCandidatesTest, CubinOfTheChipThenPtxNewestFirst) {
  std::string text = "x";
  std::vector<normjit_aot_cuda_image_t> images = {
      image("sm_80.ptx", 80, 0, text), image("sm_80.cubin", 80, 1, text),
      image("sm_90.ptx", 90, 0, text), image("sm_90.cubin", 90, 1, text)};
  EXPECT_EQ(candidates(images, 9, 0), (std::vector<int64_t>{3, 2, 0}));
  EXPECT_EQ(candidates(images, 8, 0), (std::vector<int64_t>{1, 0}));
  // sm_86 and sm_89 have no cubin of their own: the sm_80 PTX.
  EXPECT_EQ(candidates(images, 8, 6), (std::vector<int64_t>{0}));
  // A newer GPU JIT-compiles the newest PTX first.
  EXPECT_EQ(candidates(images, 12, 0), (std::vector<int64_t>{2, 0}));
  // Older than every chip: nothing.
  EXPECT_TRUE(candidates(images, 7, 5).empty());
  EXPECT_EQ(normjit_aot_cuda_candidates(nullptr, 0, 9, 0, nullptr), 0);
  // Only counting.
  EXPECT_EQ(normjit_aot_cuda_candidates(images.data(), 4, 9, 0, nullptr), 3);
}

//===--- Without a driver -------------------------------------------------===//

class AotCudaNoDriverTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (const char *old = std::getenv("NORMJIT_CUDA_DRIVER"))
      saved = old;
    nc::resetDriverForTesting();
    setenv("NORMJIT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  }
  void TearDown() override {
    nc::resetDriverForTesting();
    if (saved)
      setenv("NORMJIT_CUDA_DRIVER", saved->c_str(), 1);
    else
      unsetenv("NORMJIT_CUDA_DRIVER");
  }
  std::optional<std::string> saved;
};

TEST_F(AotCudaNoDriverTest, EveryCallSaysThereIsNoDriver) {
  std::string text = imageText("sm_90", "PTX");
  Kernel kernel({image("sm_90.ptx", 90, 0, text)});
  normjit_run_args_t args{};
  EXPECT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &args, nullptr),
            NORMJIT_DEVICE_ERROR);
  EXPECT_TRUE(contains(normjit_last_error(), "no CUDA driver"))
      << normjit_last_error();
  EXPECT_EQ(normjit_aot_cuda_image(&kernel.descriptor, 0), nullptr);
  EXPECT_EQ(normjit_aot_cuda_load(&kernel.descriptor, 0), NORMJIT_DEVICE_ERROR);
  EXPECT_EQ(kernel.descriptor.state, nullptr);
  EXPECT_EQ(normjit_aot_cuda_run(nullptr, 0, &args, nullptr),
            NORMJIT_INVALID_ARGUMENT);
}

//===--- With the fake driver ---------------------------------------------===//

class AotCudaFakeTest : public AotCudaNoDriverTest {
protected:
  static void SetUpTestSuite() {
    handle = dlopen(NORMJIT_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle, nullptr) << dlerror();
    lastLaunch = reinterpret_cast<fake_cuda_last_launch_fn>(
        dlsym(handle, "fake_cuda_last_launch"));
    counters = reinterpret_cast<fake_cuda_counters_fn>(
        dlsym(handle, "fake_cuda_counters"));
    pushUserContext = reinterpret_cast<fake_cuda_push_user_context_fn>(
        dlsym(handle, "fake_cuda_push_user_context"));
    popContext = reinterpret_cast<fake_cuda_pop_context_fn>(
        dlsym(handle, "fake_cuda_pop_context"));
    primaryContext = reinterpret_cast<fake_cuda_primary_context_fn>(
        dlsym(handle, "fake_cuda_primary_context"));
    recreateContext = reinterpret_cast<fake_cuda_recreate_context_fn>(
        dlsym(handle, "fake_cuda_recreate_context"));
    ASSERT_NE(lastLaunch, nullptr);
    ASSERT_NE(counters, nullptr);
    ASSERT_NE(pushUserContext, nullptr);
    ASSERT_NE(popContext, nullptr);
    ASSERT_NE(primaryContext, nullptr);
    ASSERT_NE(recreateContext, nullptr);
  }

  void SetUp() override {
    AotCudaNoDriverTest::SetUp();
    setenv("NORMJIT_CUDA_DRIVER", NORMJIT_FAKE_CUDA_DRIVER, 1);
    ASSERT_EQ(normjit_cuda_init(), NORMJIT_OK) << normjit_last_error();
  }

  void TearDown() override {
    for (void *pointer : allocated)
      EXPECT_EQ(normjit_cuda_free(pointer), NORMJIT_OK) << normjit_last_error();
    AotCudaNoDriverTest::TearDown();
  }

  void *deviceBuffer(size_t bytes, int ordinal) {
    void *pointer = nullptr;
    EXPECT_EQ(normjit_cuda_malloc(ordinal, bytes, &pointer), NORMJIT_OK)
        << normjit_last_error();
    allocated.push_back(pointer);
    return pointer;
  }

  /// Arguments of the RMSNorm kernel (x, gamma, y) over `rows` rows of 256
  /// f32 on device `ordinal`.
  normjit_run_args_t rmsArgs(int64_t rows, int ordinal) {
    normjit_run_args_t args{};
    args.rows = rows;
    args.x = deviceBuffer(sizeof(float) * 256 * rows, ordinal);
    args.gamma = deviceBuffer(sizeof(float) * 256, ordinal);
    args.y = deviceBuffer(sizeof(float) * 256 * rows, ordinal);
    return args;
  }

  long moduleLoads() {
    fake_cuda_counters_t out;
    counters(&out);
    return out.module_loads;
  }

  static inline void *handle = nullptr;
  static inline fake_cuda_last_launch_fn lastLaunch = nullptr;
  static inline fake_cuda_counters_fn counters = nullptr;
  static inline fake_cuda_push_user_context_fn pushUserContext = nullptr;
  static inline fake_cuda_pop_context_fn popContext = nullptr;
  static inline fake_cuda_primary_context_fn primaryContext = nullptr;
  static inline fake_cuda_recreate_context_fn recreateContext = nullptr;
  std::vector<void *> allocated;
};

TEST_F(AotCudaFakeTest, EachDevicePicksItsImage) {
  std::string ptx80 = imageText("sm_80", "PTX"),
              ptx90 = imageText("sm_90", "PTX");
  std::string cubin90 = imageText("sm_90", "cubin");
  Kernel kernel({image("sm_80.ptx", 80, 0, ptx80),
                 image("sm_90.ptx", 90, 0, ptx90),
                 image("sm_90.cubin", 90, 1, cubin90)});
  const char *onSm90 = normjit_aot_cuda_image(&kernel.descriptor, 0);
  ASSERT_NE(onSm90, nullptr) << normjit_last_error();
  EXPECT_STREQ(onSm90, "sm_90.cubin");
  const char *onSm80 = normjit_aot_cuda_image(&kernel.descriptor, 1);
  ASSERT_NE(onSm80, nullptr) << normjit_last_error();
  EXPECT_STREQ(onSm80, "sm_80.ptx");
}

TEST_F(AotCudaFakeTest, FallsBackWhenAnImageDoesNotLoad) {
  std::string ptx80 = imageText("sm_80", "PTX");
  std::string ptx90 = imageText("sm_90", "PTX", /*loadable=*/false);
  std::string cubin90 = imageText("sm_90", "cubin", /*loadable=*/false);
  Kernel kernel({image("sm_80.ptx", 80, 0, ptx80),
                 image("sm_90.ptx", 90, 0, ptx90),
                 image("sm_90.cubin", 90, 1, cubin90)});
  const char *chosen = normjit_aot_cuda_image(&kernel.descriptor, 0);
  ASSERT_NE(chosen, nullptr) << normjit_last_error();
  EXPECT_STREQ(chosen, "sm_80.ptx");

  // Nothing loads: every attempt's error, the first one's status.
  Kernel broken(
      {image("sm_90.ptx", 90, 0, ptx90), image("sm_90.cubin", 90, 1, cubin90)});
  EXPECT_EQ(normjit_aot_cuda_load(&broken.descriptor, 0),
            NORMJIT_COMPILE_ERROR);
  std::string message = normjit_last_error();
  EXPECT_TRUE(contains(message, "AOT GPU kernel 'k' cannot load an image on "
                                "CUDA device 0 (sm_90): sm_90.cubin: "))
      << message;
  EXPECT_TRUE(contains(message, "; sm_90.ptx: ")) << message;
}

TEST_F(AotCudaFakeTest, NoImageForTheDeviceIsAClearError) {
  std::string ptx90 = imageText("sm_90", "PTX");
  std::string cubin90 = imageText("sm_90", "cubin");
  Kernel kernel(
      {image("sm_90.ptx", 90, 0, ptx90), image("sm_90.cubin", 90, 1, cubin90)});
  normjit_run_args_t args = rmsArgs(4, 1);
  EXPECT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 1, &args, nullptr),
            NORMJIT_UNSUPPORTED);
  EXPECT_STREQ(normjit_last_error(),
               "AOT GPU kernel 'k' has no image for CUDA device 1 (normjit "
               "Fake GPU Lite, sm_80): it has sm_90.ptx, sm_90.cubin (a cubin "
               "runs on its chip only, PTX on its chip and newer ones)");
  EXPECT_EQ(normjit_aot_cuda_image(&kernel.descriptor, 1), nullptr);
  // Device 0 still runs it, and a device that does not exist is named.
  EXPECT_STREQ(normjit_aot_cuda_image(&kernel.descriptor, 0), "sm_90.cubin");
  EXPECT_EQ(normjit_aot_cuda_load(&kernel.descriptor, 2),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_STREQ(normjit_last_error(), "no CUDA device 2 (2 devices)");
  EXPECT_EQ(normjit_aot_cuda_load(&kernel.descriptor, -1),
            NORMJIT_INVALID_ARGUMENT);
}

TEST_F(AotCudaFakeTest, LaunchesWithTheRecordedShapeAndEntry) {
  std::string ptx80 = imageText("sm_80", "PTX");
  std::string ptx90 = imageText("sm_90", "PTX");
  Kernel kernel(
      {image("sm_80.ptx", 80, 0, ptx80), image("sm_90.ptx", 90, 0, ptx90)});
  normjit_run_args_t args = rmsArgs(5, 0);
  ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &args, nullptr),
            NORMJIT_OK)
      << normjit_last_error();
  fake_cuda_launch_t launch;
  long launches = lastLaunch(&launch);
  EXPECT_EQ(launch.block[0], 128u); // 64 threads per row * 2 rows per block
  EXPECT_EQ(launch.grid[0], 3u);    // ceil(5 rows / 2)
  void *aligned = launch.function;

  // A row stride that is no multiple of the vector width: the scalar twin.
  normjit_run_args_t strided = args;
  strided.rows = 2;
  strided.x_stride = strided.y_stride = 257;
  ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &strided, nullptr),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(lastLaunch(&launch), launches + 1);
  EXPECT_NE(launch.function, aligned);
  EXPECT_EQ(launch.grid[0], 1u);

  // Arguments are validated as normjit_cuda_launch does.
  normjit_run_args_t missing = args;
  missing.gamma = nullptr;
  EXPECT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &missing, nullptr),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(lastLaunch(nullptr), launches + 1);
}

TEST_F(AotCudaFakeTest, LoadsOncePerDeviceAcrossCallsAndThreads) {
  std::string ptx80 = imageText("sm_80", "PTX (once)");
  std::string ptx90 = imageText("sm_90", "PTX (once)");
  Kernel kernel(
      {image("sm_80.ptx", 80, 0, ptx80), image("sm_90.ptx", 90, 0, ptx90)});
  normjit_run_args_t args0 = rmsArgs(8, 0), args1 = rmsArgs(8, 1);
  long before = moduleLoads();
  std::vector<std::thread> threads;
  std::vector<normjit_status_t> results(16, NORMJIT_INTERNAL);
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        normjit_status_t status = normjit_aot_cuda_run(
            &kernel.descriptor, t % 2, t % 2 ? &args1 : &args0, nullptr);
        if (i == 0 || status != NORMJIT_OK)
          results[t] = status;
      }
    });
  for (std::thread &thread : threads)
    thread.join();
  for (normjit_status_t status : results)
    EXPECT_EQ(status, NORMJIT_OK);
  EXPECT_EQ(moduleLoads() - before, 2); // one per device
  EXPECT_STREQ(normjit_aot_cuda_image(&kernel.descriptor, 0), "sm_90.ptx");
  EXPECT_STREQ(normjit_aot_cuda_image(&kernel.descriptor, 1), "sm_80.ptx");
  EXPECT_EQ(moduleLoads() - before, 2);
}

TEST_F(AotCudaFakeTest, MissingEntryIsReported) {
  std::string ptx = "// no entries\n";
  Kernel kernel({image("sm_80.ptx", 80, 0, ptx)});
  EXPECT_EQ(normjit_aot_cuda_load(&kernel.descriptor, 0),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(normjit_last_error(),
                       "AOT GPU kernel 'k' cannot load an image on CUDA "
                       "device 0 (sm_90): sm_80.ptx: "))
      << normjit_last_error();
  EXPECT_TRUE(contains(normjit_last_error(), "'k'")) << normjit_last_error();
}

TEST_F(AotCudaFakeTest, RunsInTheContextOfItsStream) {
  std::string ptx90 = imageText("sm_90", "PTX (contexts)");
  Kernel kernel({image("sm_90.ptx", 90, 0, ptx90)});
  normjit_run_args_t args = rmsArgs(4, 0);
  long loads = moduleLoads();
  fake_cuda_launch_t launch;
  ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &args, nullptr),
            NORMJIT_OK)
      << normjit_last_error();
  lastLaunch(&launch);
  EXPECT_EQ(launch.context, primaryContext(0));

  // A stream of the host's own context: the kernel is loaded there and runs
  // there (a module's functions run in its context only).
  // (Its buffers too: contexts do not share allocations.)
  void *user = pushUserContext(0);
  normjit_run_args_t argsUser = rmsArgs(4, 0);
  void *stream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &stream), NORMJIT_OK);
  popContext();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &argsUser, stream),
              NORMJIT_OK)
        << normjit_last_error();
    lastLaunch(&launch);
    EXPECT_EQ(launch.context, user);
    EXPECT_EQ(launch.stream, stream);
  }
  EXPECT_EQ(moduleLoads() - loads, 2);
  // Buffers of the primary context on a stream of the user's: said so.
  EXPECT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &args, stream),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(normjit_last_error(),
                       "belongs to another CUDA context than the one the "
                       "kernel runs in"))
      << normjit_last_error();

  // The default stream with a context of the device current: that one.
  void *other = pushUserContext(0);
  normjit_run_args_t argsOther = rmsArgs(4, 0);
  ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &argsOther, nullptr),
            NORMJIT_OK)
      << normjit_last_error();
  lastLaunch(&launch);
  EXPECT_EQ(launch.context, other);
  popContext();
  EXPECT_EQ(moduleLoads() - loads, 3);

  // A destroyed context whose handle the driver gave to a new one: the
  // kernel is loaded again rather than launched from the dead module.
  recreateContext(user);
  ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &argsUser, stream),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(moduleLoads() - loads, 4);
  // The same right after a launch in that context (the last one found,
  // which a launch checks by the context's id, not only its handle).
  ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &argsUser, stream),
            NORMJIT_OK);
  EXPECT_EQ(moduleLoads() - loads, 4);
  recreateContext(user);
  ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &argsUser, stream),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(moduleLoads() - loads, 5);
  lastLaunch(&launch);
  EXPECT_EQ(launch.context, user);

  // A stream of another device than the one asked for.
  normjit_run_args_t args1 = rmsArgs(4, 1);
  EXPECT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 1, &args1, stream),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(normjit_last_error(),
                       "the stream is on CUDA device 0, not on device 1 "
                       "that the call is for"))
      << normjit_last_error();
  EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
}

TEST_F(AotCudaFakeTest, ALaunchAsksTheDriverLittle) {
  // What a launch costs on the host thread once the kernel is loaded in
  // the context: finding that context again (its handle and id), making it
  // current around the launch, one query per distinct buffer.
  std::string ptx90 = imageText("sm_90", "PTX (cost)");
  Kernel kernel({image("sm_90.ptx", 90, 0, ptx90)});
  normjit_run_args_t args = rmsArgs(4, 0);
  void *stream = nullptr;
  ASSERT_EQ(normjit_cuda_stream_create(0, &stream), NORMJIT_OK);
  for (void *on : {static_cast<void *>(nullptr), stream}) {
    ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &args, on),
              NORMJIT_OK)
        << normjit_last_error();
    fake_cuda_counters_t before, after;
    counters(&before);
    ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &args, on),
              NORMJIT_OK);
    counters(&after);
    // cuCtxGetCurrent or cuStreamGetCtx, cuCtxGetId; cuCtxGetCurrent,
    // push, pop.
    EXPECT_EQ(after.context_calls - before.context_calls, 5) << on;
    EXPECT_EQ(after.pointer_queries - before.pointer_queries, 3) << on;
    EXPECT_EQ(after.launches - before.launches, 1);
    EXPECT_EQ(after.module_loads, before.module_loads);
  }
  // In place (y = x): x is asked about once.
  normjit_run_args_t inPlace = args;
  inPlace.y = const_cast<void *>(inPlace.x);
  fake_cuda_counters_t before, after;
  counters(&before);
  ASSERT_EQ(normjit_aot_cuda_run(&kernel.descriptor, 0, &inPlace, nullptr),
            NORMJIT_OK);
  counters(&after);
  EXPECT_EQ(after.pointer_queries - before.pointer_queries, 2);
  EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
}

TEST_F(AotCudaFakeTest, ThreadsOnStreamsOfTwoContexts) {
  std::string ptx90 = imageText("sm_90", "PTX (two contexts)");
  Kernel kernel({image("sm_90.ptx", 90, 0, ptx90)});
  void *contexts[2] = {}, *streams[2] = {};
  normjit_run_args_t args[2];
  for (int i = 0; i < 2; ++i) {
    contexts[i] = pushUserContext(0);
    args[i] = rmsArgs(4, 0);
    ASSERT_EQ(normjit_cuda_stream_create(0, &streams[i]), NORMJIT_OK);
    popContext();
  }
  long before = moduleLoads();
  std::vector<std::thread> threads;
  std::vector<int> failures(8, 0);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i)
        if (normjit_aot_cuda_run(&kernel.descriptor, 0, &args[(t + i) % 2],
                                 streams[(t + i) % 2]) != NORMJIT_OK)
          ++failures[t];
    });
  for (std::thread &thread : threads)
    thread.join();
  for (int t = 0; t < 8; ++t)
    EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_EQ(moduleLoads() - before, 2); // one per context
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(normjit_cuda_stream_destroy(streams[i]), NORMJIT_OK);
  (void)contexts;
}

} // namespace
