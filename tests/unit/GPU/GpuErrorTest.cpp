//===- GpuErrorTest.cpp - bad input and missing devices on the GPU path ---===//
//
// Part of normjit. Every failure of the GPU path is a status and a message,
// never a crash:
// - without a CUDA driver (here: NORMJIT_CUDA_DRIVER pointing nowhere),
//   compiling a GPU kernel fails with NORMJIT_DEVICE_ERROR naming the
//   driver, and the CPU path keeps working in the same process (these tests
//   need no GPU and run everywhere);
// - configs and specs that are invalid are rejected before any device work;
// - on a GPU, bad call arguments (null x, negative rows, a stride below
//   cols, host memory, misaligned elements, buffers the spec does not use),
//   an invalid config, an invalid device ordinal and an invalid spec each
//   give their status and message, and the kernel still runs afterwards.
//
// The no-driver tests come first in this binary (plain tests run before
// parameterized ones, and this file is linked first): they can only
// pretend the driver is missing while no other test has loaded it.
//
//===----------------------------------------------------------------------===//

#include "GpuTestSupport.h"

#include "normjit/normjit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <optional>

using namespace normjit;
using namespace normjit::test;

namespace {

/// The status and message of a failed llvm::Error (NORMJIT_OK, "" for
/// success).
struct Failure {
  normjit_status_t status = NORMJIT_OK;
  std::string message;
};

Failure takeFailure(llvm::Error error) {
  Failure failure;
  failure.status = errorToStatus(std::move(error));
  if (failure.status != NORMJIT_OK)
    failure.message = normjit_last_error();
  return failure;
}

template <typename T> Failure takeFailure(llvm::Expected<T> value) {
  if (value)
    return Failure();
  return takeFailure(value.takeError());
}

/// Checks a failure's status and that its message contains `text`.
::testing::AssertionResult failsWith(const Failure &failure,
                                     normjit_status_t status,
                                     const std::string &text) {
  if (failure.status == NORMJIT_OK)
    return ::testing::AssertionFailure()
           << "succeeded; expected " << normjit_status_name(status)
           << " with a message containing '" << text << "'";
  if (failure.status != status ||
      failure.message.find(text) == std::string::npos)
    return ::testing::AssertionFailure()
           << "failed with " << normjit_status_name(failure.status) << ": '"
           << failure.message << "'; expected " << normjit_status_name(status)
           << " with a message containing '" << text << "'";
  return ::testing::AssertionSuccess();
}

normjit_kernel_spec_t layerNormSpec() {
  return makeSpec(NORMJIT_LAYER_NORM, 768, NORMJIT_F32, NORMJIT_F32, false,
                  false, true, true, true);
}

/// Sets an environment variable for the scope, then restores it.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (const char *old = std::getenv(name))
      previous = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (previous)
      setenv(name, previous->c_str(), 1);
    else
      unsetenv(name);
  }

private:
  const char *name;
  std::optional<std::string> previous;
};

/// A CPU kernel compiled and run in this process matches the reference.
void expectCpuPathWorks() {
  normjit_kernel_spec_t spec =
      makeSpec(NORMJIT_LAYER_NORM, 768, NORMJIT_BF16, NORMJIT_BF16, true, true,
               true, true, true, NORMJIT_F32);
  Context context;
  auto kernel = context.getKernel(spec);
  ASSERT_TRUE(!!kernel) << "the CPU path fails after the GPU path did: "
                        << llvm::toString(kernel.takeError());
  HostCall call(spec, 33, 768 + 8, Data::Normal, "cpu_after_gpu_failure");
  llvm::Error error = (*kernel)->run(call.args());
  ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
  checkOutputs(call, "CPU kernel after a failed GPU request");
}

} // namespace

//===----------------------------------------------------------------------===//
// Without a driver (no GPU needed)
//===----------------------------------------------------------------------===//

TEST(GpuNoDriverTest, MissingDriverIsDeviceErrorAndCpuStillWorks) {
  if (const char *path = normjit_cuda_driver_path())
    GTEST_SKIP() << "the CUDA driver " << path
                 << " is already loaded in this process, so its absence "
                    "cannot be simulated; run this test alone (as ctest "
                    "does) to check the no-driver path";
  const char *missing = "/nonexistent/normjit-test/libcuda.so.1";
  normjit_kernel_spec_t spec = layerNormSpec();
  GpuConfig config = getDefaultGpuConfig(spec);
  {
    ScopedEnv env("NORMJIT_CUDA_DRIVER", missing);
    auto expectNoDriver = [&](const Failure &failure, const char *what) {
      EXPECT_TRUE(failsWith(failure, NORMJIT_DEVICE_ERROR, "no CUDA driver"))
          << what;
      EXPECT_NE(failure.message.find(missing), std::string::npos)
          << what
          << ": the message does not name the driver: " << failure.message;
    };
    Failure init;
    init.status = normjit_cuda_init();
    init.message = normjit_last_error();
    expectNoDriver(init, "normjit_cuda_init");
    int count = -1;
    Failure countFailure;
    countFailure.status = normjit_cuda_device_count(&count);
    countFailure.message = normjit_last_error();
    expectNoDriver(countFailure, "normjit_cuda_device_count");

    expectNoDriver(takeFailure(getGpuTarget(0)), "getGpuTarget");
    expectNoDriver(takeFailure(compileGpuKernel(spec, config, 0)),
                   "compileGpuKernel");
    Context context;
    expectNoDriver(takeFailure(context.getGpuKernel(spec, 0)),
                   "Context::getGpuKernel with the default config");
    expectNoDriver(takeFailure(context.getGpuKernel(spec, 0, config)),
                   "Context::getGpuKernel with a config");
    // Asked again: the same answer, not a crash or a stale kernel.
    expectNoDriver(takeFailure(context.getGpuKernel(spec, 0, config)),
                   "Context::getGpuKernel asked again");
    void *pointer = reinterpret_cast<void *>(1);
    Failure malloc;
    malloc.status = normjit_cuda_malloc(0, 1024, &pointer);
    malloc.message = normjit_last_error();
    expectNoDriver(malloc, "normjit_cuda_malloc");
    EXPECT_EQ(pointer, nullptr);
    EXPECT_EQ(normjit_cuda_driver_path(), nullptr);
  }
  // The CPU path in the same process.
  expectCpuPathWorks();
}

TEST(GpuNoDriverTest, WithoutGpuTheGpuPathFailsCleanly) {
  const GpuAvailability &gpu = getGpuAvailability();
  if (gpu.available)
    GTEST_SKIP() << "a CUDA device is present (" << gpu.description
                 << "): this test checks machines without one";
  normjit_kernel_spec_t spec = layerNormSpec();
  // No driver: NORMJIT_DEVICE_ERROR. A driver without devices: no device 0.
  normjit_status_t expected = normjit_cuda_driver_path()
                                  ? NORMJIT_INVALID_ARGUMENT
                                  : NORMJIT_DEVICE_ERROR;
  const char *text =
      normjit_cuda_driver_path() ? "no CUDA device 0" : "CUDA driver";
  Context context;
  EXPECT_TRUE(
      failsWith(takeFailure(context.getGpuKernel(spec, 0)), expected, text));
  EXPECT_TRUE(failsWith(
      takeFailure(context.getGpuKernel(spec, 0, getDefaultGpuConfig(spec))),
      expected, text));
  EXPECT_TRUE(failsWith(
      takeFailure(compileGpuKernel(spec, getDefaultGpuConfig(spec), 0)),
      expected, text));
  expectCpuPathWorks();
}

//===----------------------------------------------------------------------===//
// Configs and specs, checked before any device work (no GPU needed)
//===----------------------------------------------------------------------===//

TEST(GpuConfigErrorTest, ParseRejectsWhatIsNotAGpuConfig) {
  EXPECT_TRUE(failsWith(
      takeFailure(parseGpuConfig("#norm.config<cpu, vector_width = 16, "
                                 "accumulators = 4>")),
      NORMJIT_INVALID_ARGUMENT, "is not a gpu config"));
  EXPECT_TRUE(failsWith(takeFailure(parseGpuConfig("threads_per_row = 32")),
                        NORMJIT_INVALID_ARGUMENT, "invalid config"));
  EXPECT_TRUE(failsWith(
      takeFailure(parseGpuConfig("#norm.config<gpu, accumulators = 4>")),
      NORMJIT_INVALID_ARGUMENT, "'accumulators' is a cpu knob"));
  EXPECT_TRUE(failsWith(
      takeFailure(parseGpuConfig("#norm.config<gpu, threads_per_row = 48>")),
      NORMJIT_INVALID_ARGUMENT, "must be a power of two"));
  EXPECT_TRUE(failsWith(
      takeFailure(parseGpuConfig("#norm.config<gpu, fuse_residual = false>")),
      NORMJIT_UNSUPPORTED, "always fuses"));
  EXPECT_TRUE(failsWith(
      takeFailure(parseGpuConfig("#norm.config<gpu, min_blocks_per_sm = 33>")),
      NORMJIT_INVALID_ARGUMENT, "'min_blocks_per_sm' must be in [0, 32]"));
  // And good ones, for contrast: text round trips, min_blocks_per_sm with it.
  auto good = parseGpuConfig(getDefaultGpuConfig(layerNormSpec()).str());
  ASSERT_TRUE(!!good) << llvm::toString(good.takeError());
  EXPECT_EQ(*good, getDefaultGpuConfig(layerNormSpec()));
  GpuConfig capped = getDefaultGpuConfig(layerNormSpec());
  capped.minBlocksPerSm = 3;
  auto cappedParsed = parseGpuConfig(capped.str());
  ASSERT_TRUE(!!cappedParsed) << llvm::toString(cappedParsed.takeError());
  EXPECT_EQ(*cappedParsed, capped) << capped.str();
  EXPECT_FALSE(*cappedParsed == *good);
}

// A user's knobs over the default: elements per thread follow the threads
// per row, vector width and row storage set, unless set too; every result
// is a config the backend takes.
TEST(GpuConfigErrorTest, KnobsNotGivenFollowThoseGiven) {
  auto spec = [](int64_t cols) {
    normjit_kernel_spec_t s = layerNormSpec();
    s.cols = cols;
    s.x_dtype = s.y_dtype = s.gamma_dtype = s.beta_dtype = NORMJIT_BF16;
    return s;
  };
  struct Case {
    int64_t cols;
    const char *knobs;
    const char *config;
  } cases[] = {
      // The default holds 32 per thread; 512 threads need 8, in blocks of
      // one row (about 256 threads, as the default's blocks).
      {4096, "threads_per_row = 512",
       "vector_width = 8, threads_per_row = 512, rows_per_block = 1, "
       "elements_per_thread = 8, row_storage = registers"},
      // 1024 threads: 4 each, in vectors of 4; one row per block.
      {4096, "threads_per_row = 1024",
       "vector_width = 4, threads_per_row = 1024, rows_per_block = 1, "
       "elements_per_thread = 4, row_storage = registers"},
      // 64 per thread is past what the default holds: read from global.
      {2048, "threads_per_row = 32, rows_per_block = 4",
       "vector_width = 8, threads_per_row = 32, rows_per_block = 4, "
       "elements_per_thread = 16, row_storage = global"},
      // Unless registers were asked for.
      {2048, "threads_per_row = 32, row_storage = registers",
       "vector_width = 8, threads_per_row = 32, rows_per_block = 8, "
       "elements_per_thread = 64, row_storage = registers"},
      // A long row the default reads from global, held in registers.
      {65536, "row_storage = registers",
       "vector_width = 8, threads_per_row = 1024, rows_per_block = 1, "
       "elements_per_thread = 64, row_storage = registers"},
      // Narrower vectors: whole vectors still.
      {1000, "vector_width = 2, threads_per_row = 64",
       "vector_width = 2, threads_per_row = 64, rows_per_block = 4, "
       "elements_per_thread = 16, row_storage = registers"},
      // A short row: two elements per thread, vectors of two.
      {64, "threads_per_row = 32",
       "vector_width = 2, threads_per_row = 32, rows_per_block = 8, "
       "elements_per_thread = 2, row_storage = registers"},
      // Given knobs are kept, vector width included.
      {4096, "threads_per_row = 512, elements_per_thread = 16",
       "vector_width = 8, threads_per_row = 512, rows_per_block = 1, "
       "elements_per_thread = 16, row_storage = registers"},
      {4096, "vector_width = 8, threads_per_row = 1024, rows_per_block = 1",
       "vector_width = 8, threads_per_row = 1024, rows_per_block = 1, "
       "elements_per_thread = 8, row_storage = registers"},
      // Rows per block given: threads per row fit the block (16 threads
      // would hold 64 each: read from global).
      {1000, "rows_per_block = 64",
       "vector_width = 8, threads_per_row = 16, rows_per_block = 64, "
       "elements_per_thread = 16, row_storage = global"},
      // Elements per thread given: vectors that divide them, threads that
      // hold the row with them.
      {1000, "elements_per_thread = 6",
       "vector_width = 2, threads_per_row = 256, rows_per_block = 1, "
       "elements_per_thread = 6, row_storage = registers"},
      {4096, "elements_per_thread = 8, rows_per_block = 2",
       "vector_width = 8, threads_per_row = 512, rows_per_block = 2, "
       "elements_per_thread = 8, row_storage = registers"},
      // Knobs that do not bear on them leave the default's.
      {4096, "rows_per_block = 4, persistent = true",
       "vector_width = 8, threads_per_row = 128, rows_per_block = 4, "
       "elements_per_thread = 32, row_storage = registers, persistent = true"},
      // min_blocks_per_sm given, rows per block not: fewer rows per block
      // where the blocks would pass 2048 threads (16 of 256 would).
      {4096, "min_blocks_per_sm = 16",
       "vector_width = 8, threads_per_row = 128, rows_per_block = 1, "
       "elements_per_thread = 32, row_storage = registers, "
       "persistent = false, min_blocks_per_sm = 16"},
      {4096, "min_blocks_per_sm = 5",
       "vector_width = 8, threads_per_row = 128, rows_per_block = 2, "
       "elements_per_thread = 32, row_storage = registers, "
       "persistent = false, min_blocks_per_sm = 5"},
  };
  for (const Case &c : cases) {
    std::string text = std::string("#norm.config<gpu, ") + c.knobs + ">";
    auto config = parseGpuConfigFor(text, spec(c.cols), GpuTarget());
    ASSERT_TRUE(!!config) << text << ": " << llvm::toString(config.takeError());
    std::string want = std::string("#norm.config<gpu, ") + c.config;
    if (!llvm::StringRef(c.config).contains("persistent"))
      want += ", persistent = false";
    EXPECT_EQ(config->str(), want + ">") << c.cols << " columns, " << text;
    EXPECT_FALSE(validateGpuConfig(spec(c.cols), *config))
        << c.cols << " columns, " << text;
  }
  // A row too long for the registers asked for: the knob stays in its
  // range, and the check says that the row does not fit, not that a knob
  // the user never gave is out of range.
  const int64_t tooLong = (int64_t(1) << 20) + 8;
  auto config = parseGpuConfigFor("#norm.config<gpu, row_storage = registers>",
                                  spec(tooLong), GpuTarget());
  ASSERT_TRUE(!!config) << llvm::toString(config.takeError());
  EXPECT_EQ(config->elementsPerThread, 1024);
  EXPECT_TRUE(failsWith(takeFailure(validateGpuConfig(spec(tooLong), *config)),
                        NORMJIT_INVALID_ARGUMENT,
                        "less than the 1048584 columns"));
}

// min_blocks_per_sm: a value out of range is refused on every path (a
// C++ GpuConfig too); blocks a chip's multiprocessors cannot run are
// refused when compiling for that chip, naming its limits.
TEST(GpuConfigErrorTest, MinBlocksPerSmIsCheckedForTheChip) {
  normjit_kernel_spec_t spec = layerNormSpec();
  GpuConfig config = getDefaultGpuConfig(spec);
  config.minBlocksPerSm = -5;
  EXPECT_TRUE(failsWith(takeFailure(validateGpuConfig(spec, config)),
                        NORMJIT_INVALID_ARGUMENT,
                        "'min_blocks_per_sm' must be in [0, 32], got -5"));
  config.threadsPerRow = 32;
  config.rowsPerBlock = 8; // 256 threads
  config.minBlocksPerSm = 6;
  struct Chip {
    int major, minor;
    bool six; // 6 blocks of 256 threads fit
  } chips[] = {{7, 5, false}, {8, 0, true}, {8, 6, true},
               {8, 9, true},  {9, 0, true}, {12, 0, true}};
  for (const Chip &chip : chips) {
    GpuTarget target;
    target.ccMajor = chip.major;
    target.ccMinor = chip.minor;
    llvm::Error error = checkMinBlocksPerSm(config, target);
    EXPECT_EQ(static_cast<bool>(error), !chip.six) << target.chip();
    llvm::consumeError(std::move(error));
  }
  GpuTarget sm86;
  sm86.ccMajor = 8;
  sm86.ccMinor = 6;
  config.minBlocksPerSm = 7; // 1792 threads: more than sm_86's 1536
  EXPECT_TRUE(failsWith(takeFailure(checkMinBlocksPerSm(config, sm86)),
                        NORMJIT_INVALID_ARGUMENT,
                        "min_blocks_per_sm = 7 blocks of 256 threads, but an "
                        "sm_86 multiprocessor runs at most 16 blocks and "
                        "1536 threads"));
  EXPECT_TRUE(failsWith(takeFailure(compileGpuPtx(
                            {{spec, config, "k"}}, sm86)),
                        NORMJIT_INVALID_ARGUMENT, "sm_86 multiprocessor"));
  config.rowsPerBlock = 1; // 32 threads: blocks are sm_86's limit
  config.minBlocksPerSm = 17;
  EXPECT_TRUE(failsWith(takeFailure(checkMinBlocksPerSm(config, sm86)),
                        NORMJIT_INVALID_ARGUMENT, "at most 16 blocks"));
  config.minBlocksPerSm = 16;
  EXPECT_FALSE(checkMinBlocksPerSm(config, sm86));
  config.minBlocksPerSm = 0; // no cap: nothing to check
  EXPECT_FALSE(checkMinBlocksPerSm(config, sm86));
}

TEST(GpuConfigErrorTest, ValidateRejectsConfigsThatDoNotFitTheSpec) {
  normjit_kernel_spec_t spec = layerNormSpec();
  GpuConfig wide = getDefaultGpuConfig(spec);
  wide.vectorWidth = 8; // 256-bit f32 vectors
  wide.elementsPerThread = 8;
  EXPECT_TRUE(failsWith(takeFailure(validateGpuConfig(spec, wide)),
                        NORMJIT_INVALID_ARGUMENT, "128-bit"));
  GpuConfig short_;
  short_.threadsPerRow = 32;
  short_.vectorWidth = 4;
  short_.elementsPerThread = 8; // 256 of 768 columns in registers
  short_.rowStorage = GpuRowStorage::Registers;
  EXPECT_TRUE(failsWith(takeFailure(validateGpuConfig(spec, short_)),
                        NORMJIT_INVALID_ARGUMENT, "less than the 768 columns"));
  GpuConfig bigBlock = getDefaultGpuConfig(spec);
  bigBlock.threadsPerRow = 1024;
  bigBlock.rowsPerBlock = 2;
  EXPECT_TRUE(failsWith(takeFailure(validateGpuConfig(spec, bigBlock)),
                        NORMJIT_INVALID_ARGUMENT, "exceeds 1024 threads"));
  GpuConfig sharedRows = getDefaultGpuConfig(spec);
  sharedRows.rowStorage = GpuRowStorage::Shared;
  sharedRows.threadsPerRow = 32;
  sharedRows.rowsPerBlock = 32; // 32 rows of 768 f32: 96 KiB
  EXPECT_TRUE(failsWith(takeFailure(validateGpuConfig(spec, sharedRows)),
                        NORMJIT_INVALID_ARGUMENT, "shared memory"));
  EXPECT_FALSE(validateGpuConfig(spec, getDefaultGpuConfig(spec)));
}

TEST(GpuConfigErrorTest, InvalidSpecIsRejectedBeforeTheDevice) {
  // The spec is checked first, so the answer is the same with or without
  // a GPU.
  Context context;
  normjit_kernel_spec_t noColumns = layerNormSpec();
  noColumns.cols = 0;
  EXPECT_TRUE(failsWith(takeFailure(context.getGpuKernel(noColumns, 0)),
                        NORMJIT_INVALID_ARGUMENT, "cols must be at least 1"));
  for (float epsilon : {0.0f, -1e-5f, NAN, INFINITY}) {
    normjit_kernel_spec_t spec = layerNormSpec();
    spec.epsilon = epsilon;
    EXPECT_TRUE(failsWith(takeFailure(context.getGpuKernel(spec, 0)),
                          NORMJIT_INVALID_ARGUMENT, "epsilon must be positive"))
        << "epsilon " << epsilon;
    EXPECT_TRUE(failsWith(takeFailure(context.getGpuKernel(
                              spec, 0, getDefaultGpuConfig(layerNormSpec()))),
                          NORMJIT_INVALID_ARGUMENT, "epsilon must be positive"))
        << "epsilon " << epsilon << ", explicit config";
  }
  normjit_kernel_spec_t rmsMean =
      makeSpec(NORMJIT_RMS_NORM, 768, NORMJIT_F32, NORMJIT_F32, false, false,
               true, false, true);
  rmsMean.store_mean = 1;
  EXPECT_TRUE(failsWith(takeFailure(context.getGpuKernel(rmsMean, 0)),
                        NORMJIT_INVALID_ARGUMENT, "rms_norm computes no mean"));
}

TEST(GpuConfigErrorTest, ConfigTextIsCheckedBeforeTheDevice) {
  // Text that is no GPU config is the caller's error with or without a
  // GPU (it was reported as the missing driver), as on the CPU path.
  normjit_context_t *context = nullptr;
  ASSERT_EQ(normjit_context_create(&context), NORMJIT_OK);
  normjit_kernel_spec_t spec = layerNormSpec();
  struct {
    const char *config;
    normjit_status_t status;
    const char *message;
  } cases[] = {
      {"#norm.config<gpu, threads_per_row = 3>", NORMJIT_INVALID_ARGUMENT,
       "'threads_per_row' must be a power of two, got 3"},
      {"#norm.config<cpu, vector_width = 8>", NORMJIT_INVALID_ARGUMENT,
       "is not a gpu config"},
      {"threads_per_row = 32", NORMJIT_INVALID_ARGUMENT, "invalid config"},
      {"#norm.config<gpu, fuse_residual = false>", NORMJIT_UNSUPPORTED,
       "always fuses the residual add"},
  };
  for (const auto &c : cases) {
    normjit_kernel_t *kernel = nullptr;
    EXPECT_EQ(normjit_kernel_get_for_device(context, &spec, "cuda:0",
                                            c.config, &kernel),
              c.status)
        << c.config;
    EXPECT_NE(std::string(normjit_last_error()).find(c.message),
              std::string::npos)
        << c.config << ": " << normjit_last_error();
    EXPECT_EQ(kernel, nullptr);
  }
  normjit_context_destroy(context);
}

//===----------------------------------------------------------------------===//
// Bad input on a GPU
//===----------------------------------------------------------------------===//

namespace {

/// A LayerNorm kernel with gamma, beta, mean and rstd, valid device
/// buffers for 4 rows, and a check that a bad call fails as it should and
/// leaves the kernel and the device working.
class GpuBadInputTest : public GpuTest {
protected:
  static constexpr int64_t kRows = 4;

  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    spec = layerNormSpec();
    auto compiled = getGpuKernel(spec, std::nullopt);
    ASSERT_TRUE(!!compiled) << llvm::toString(compiled.takeError());
    kernel = *compiled;
    call.emplace(spec, kRows, spec.cols, Data::Normal, "bad_input");
    size_t rowBytes = call->rowBytes(NORMJIT_F32);
    ASSERT_TRUE(x.allocate(rowBytes));
    ASSERT_TRUE(x.upload(call->x.data(), rowBytes));
    ASSERT_TRUE(y.allocate(rowBytes));
    ASSERT_TRUE(gamma.allocate(call->vectorBytes(NORMJIT_F32)));
    ASSERT_TRUE(
        gamma.upload(call->gamma.data(), call->vectorBytes(NORMJIT_F32)));
    ASSERT_TRUE(beta.allocate(call->vectorBytes(NORMJIT_F32)));
    ASSERT_TRUE(beta.upload(call->beta.data(), call->vectorBytes(NORMJIT_F32)));
    ASSERT_TRUE(mean.allocate(call->statBytes()));
    ASSERT_TRUE(rstd.allocate(call->statBytes()));
    ASSERT_TRUE(other.allocate(rowBytes));
  }

  normjit_run_args_t validArgs() {
    normjit_run_args_t args{};
    args.rows = kRows;
    args.x = x.data();
    args.y = y.data();
    args.gamma = gamma.data();
    args.beta = beta.data();
    args.mean = static_cast<float *>(mean.data());
    args.rstd = static_cast<float *>(rstd.data());
    return args;
  }

  /// Runs `args` through CompiledGpuKernel::run and normjit_cuda_launch,
  /// expects `status` and `text` in the message, then checks that a valid
  /// call still runs and gives the right results.
  void expectRunFails(const normjit_run_args_t &args, normjit_status_t status,
                      const std::string &text, const char *hint = "") {
    EXPECT_TRUE(failsWith(takeFailure(kernel->run(args)), status, text))
        << hint;
    EXPECT_TRUE(failsWith(takeFailure(statusToError(normjit_cuda_launch(
                              &kernel->getLaunch(), &spec, &args, nullptr))),
                          status, text))
        << "through normjit_cuda_launch" << hint;
    expectStillWorks();
  }

  /// The kernel and the device still work: a valid call gives the right
  /// results.
  void expectStillWorks() {
    if (normjit_cuda_synchronize(0) != NORMJIT_OK) {
      std::string why =
          std::string("after a bad call: ") + normjit_last_error();
      markContextBroken(why);
      FAIL() << why;
    }
    ASSERT_NO_FATAL_FAILURE(
        runOnGpu(*kernel, *call, GpuLayout(), "valid call after a bad one"));
    checkOutputs(*call, "valid call after a bad one");
  }

  normjit_kernel_spec_t spec;
  std::shared_ptr<const CompiledGpuKernel> kernel;
  std::optional<HostCall> call;
  DeviceArray x, y, gamma, beta, mean, rstd, other;
};

} // namespace

TEST_F(GpuBadInputTest, NullX) {
  normjit_run_args_t args = validArgs();
  args.x = nullptr;
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT, "x must not be null");
}

TEST_F(GpuBadInputTest, NullY) {
  normjit_run_args_t args = validArgs();
  args.y = nullptr;
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT, "y must not be null");
}

TEST_F(GpuBadInputTest, NegativeRows) {
  normjit_run_args_t args = validArgs();
  args.rows = -1;
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT,
                 "rows must not be negative, got -1");
}

TEST_F(GpuBadInputTest, StrideBelowCols) {
  normjit_run_args_t args = validArgs();
  args.x_stride = spec.cols - 1;
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT,
                 "x_stride (767) is less than cols (768)");
  args = validArgs();
  args.y_stride = 1;
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT,
                 "y_stride (1) is less than cols (768)");
}

TEST_F(GpuBadInputTest, HostPointerInsteadOfDeviceMemory) {
  // Pageable host memory: cuPointerGetAttribute knows no device address for
  // it. (The host buffers are large enough for the call, should a driver
  // that lets kernels reach pageable memory accept them.)
  const char *hint = " (if the launch was accepted: does this driver let "
                     "kernels access pageable host memory (HMM/ATS)?)";
  normjit_run_args_t args = validArgs();
  args.x = call->x.data();
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT, "is not CUDA device memory",
                 hint);
  args = validArgs();
  std::vector<float> hostY(static_cast<size_t>(kRows * spec.cols));
  args.y = hostY.data();
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT, "y (0x", hint);
  args = validArgs();
  std::vector<float> hostRstd(kRows + 1);
  args.rstd = hostRstd.data();
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT, "rstd (0x", hint);
}

TEST_F(GpuBadInputTest, MisalignedElements) {
  normjit_run_args_t args = validArgs();
  args.x = static_cast<const char *>(x.data()) + 1;
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT,
                 "x is not aligned to its f32 elements");
}

TEST_F(GpuBadInputTest, BuffersTheSpecDoesNotUse) {
  normjit_run_args_t args = validArgs();
  args.residual = other.data();
  args.residual_stride = spec.cols;
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT,
                 "residual is given but the kernel spec does not use it");
  args = validArgs();
  args.sum = other.data();
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT,
                 "sum is given but the kernel spec does not use it");
  args = validArgs();
  args.rstd = args.mean;
  expectRunFails(args, NORMJIT_INVALID_ARGUMENT,
                 "mean and rstd must be different buffers");
}

TEST_F(GpuBadInputTest, InvalidConfig) {
  GpuConfig wide = getDefaultGpuConfig(spec);
  wide.vectorWidth = 8; // 256-bit f32 vectors
  wide.elementsPerThread = 8;
  EXPECT_TRUE(failsWith(takeFailure(compileGpuKernel(spec, wide, 0)),
                        NORMJIT_INVALID_ARGUMENT, "128-bit"));
  EXPECT_TRUE(
      failsWith(takeFailure(getSharedContext().getGpuKernel(spec, 0, wide)),
                NORMJIT_INVALID_ARGUMENT, "128-bit"));
  GpuConfig bigBlock = getDefaultGpuConfig(spec);
  bigBlock.threadsPerRow = 1024;
  bigBlock.rowsPerBlock = 4;
  EXPECT_TRUE(failsWith(takeFailure(compileGpuKernel(spec, bigBlock, 0)),
                        NORMJIT_INVALID_ARGUMENT, "exceeds 1024 threads"));
  // A CPU config given to the GPU parser never becomes a kernel.
  EXPECT_TRUE(failsWith(
      takeFailure(parseGpuConfig("#norm.config<cpu, vector_width = 16>")),
      NORMJIT_INVALID_ARGUMENT, "is not a gpu config"));
  expectStillWorks();
}

TEST_F(GpuBadInputTest, InvalidDeviceOrdinal) {
  GpuConfig config = getDefaultGpuConfig(spec);
  for (int ordinal : {99, -1}) {
    std::string text = "no CUDA device " + std::to_string(ordinal);
    EXPECT_TRUE(failsWith(takeFailure(getGpuTarget(ordinal)),
                          NORMJIT_INVALID_ARGUMENT, text));
    EXPECT_TRUE(failsWith(takeFailure(compileGpuKernel(spec, config, ordinal)),
                          NORMJIT_INVALID_ARGUMENT, text));
    EXPECT_TRUE(
        failsWith(takeFailure(getSharedContext().getGpuKernel(spec, ordinal)),
                  NORMJIT_INVALID_ARGUMENT, text));
    EXPECT_TRUE(failsWith(
        takeFailure(getSharedContext().getGpuKernel(spec, ordinal, config)),
        NORMJIT_INVALID_ARGUMENT, text));
    void *pointer = nullptr;
    Failure malloc;
    malloc.status = normjit_cuda_malloc(ordinal, 1024, &pointer);
    malloc.message = malloc.status ? normjit_last_error() : "";
    EXPECT_TRUE(failsWith(malloc, NORMJIT_INVALID_ARGUMENT, text));
    normjit_cuda_free(pointer);
  }
  expectStillWorks();
}

TEST_F(GpuBadInputTest, InvalidSpec) {
  GpuConfig config = getDefaultGpuConfig(spec);
  normjit_kernel_spec_t noColumns = spec;
  noColumns.cols = 0;
  EXPECT_TRUE(failsWith(takeFailure(compileGpuKernel(noColumns, config, 0)),
                        NORMJIT_INVALID_ARGUMENT, "cols must be at least 1"));
  for (float epsilon : {0.0f, -1e-5f, NAN}) {
    normjit_kernel_spec_t bad = spec;
    bad.epsilon = epsilon;
    EXPECT_TRUE(failsWith(takeFailure(compileGpuKernel(bad, config, 0)),
                          NORMJIT_INVALID_ARGUMENT, "epsilon must be positive"))
        << "epsilon " << epsilon;
    // A launch with a valid kernel but an invalid spec is refused too.
    normjit_run_args_t args = validArgs();
    EXPECT_TRUE(failsWith(takeFailure(statusToError(normjit_cuda_launch(
                              &kernel->getLaunch(), &bad, &args, nullptr))),
                          NORMJIT_INVALID_ARGUMENT, "epsilon must be positive"))
        << "normjit_cuda_launch, epsilon " << epsilon;
  }
  expectStillWorks();
}
