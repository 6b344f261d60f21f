//===- GpuTestSupport.h - what the GPU kernel tests share -------*- C++ -*-===//
//
// Part of normjit. The fixture that skips (or, with NORMJIT_REQUIRE_GPU=1,
// fails) GPU tests when CUDA device 0 is missing, device buffers with guard
// bytes, running one HostCall (KernelCases.h) on the GPU, and compiling the
// kernels a test suite needs on several threads before its tests run.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TESTS_UNIT_GPU_GPUTESTSUPPORT_H
#define NORMJIT_TESTS_UNIT_GPU_GPUTESTSUPPORT_H

#include "../KernelCases.h"

#include "normjit/JIT/Context.h"
#include "normjit/runtime/cuda.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace normjit::test {

/// The machine the case lists are made for (they must not depend on the
/// GPU, so that listing the tests works without one): an H100/H200.
inline GpuTarget getCaseTarget() {
  GpuTarget target;
  target.ccMajor = 9;
  target.ccMinor = 0;
  target.smCount = 132;
  return target;
}

/// Whether CUDA device 0 can run the tests, and why not. Found out once.
struct GpuAvailability {
  bool available = false;
  std::string why;         ///< "no CUDA device: ..." when not available
  std::string description; ///< "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, ..."
};
const GpuAvailability &getGpuAvailability();

/// True when NORMJIT_REQUIRE_GPU is set (not "0"): a missing GPU fails the
/// GPU tests instead of skipping them.
bool isGpuRequired();

/// Records that the CUDA context is unusable after a device fault (sticky
/// errors such as CUDA_ERROR_ILLEGAL_ADDRESS): later GPU tests fail at once,
/// naming the first failure, instead of each failing in its own way.
void markContextBroken(const std::string &why);
std::string getContextBroken();

/// Base of every test that needs a GPU.
class GpuTest : public ::testing::Test {
protected:
  void SetUp() override;
};

/// GpuTest for parameterized suites.
template <typename Param>
class GpuTestWithParam : public GpuTest,
                         public ::testing::WithParamInterface<Param> {};

/// The context every GPU test compiles through (never destroyed: kernels
/// stay loaded until the process ends).
Context &getSharedContext();

/// A kernel to compile: a spec and a config (none: the device default).
using KernelKey = std::pair<normjit_kernel_spec_t, std::optional<GpuConfig>>;

/// Compiles `kernels` on device 0 through the shared context, on
/// NORMJIT_TEST_COMPILE_THREADS threads (default: up to 16), so that the
/// tests find them compiled. Errors stay in the context's cache; the test
/// that asks reports them. Does nothing without a GPU.
void precompile(const std::vector<KernelKey> &kernels);

/// The parameter names (after "Test/") of the current suite's tests that
/// will run: for precompile() in SetUpTestSuite.
std::vector<std::string> getSelectedParamNames();

/// The kernel of `spec` with `config` on device 0, from the shared context.
llvm::Expected<std::shared_ptr<const CompiledGpuKernel>>
getGpuKernel(const normjit_kernel_spec_t &spec,
             const std::optional<GpuConfig> &config);

/// Device memory with guard bytes on both sides; every byte starts as the
/// sentinel 0xAB. Frees itself.
class DeviceArray {
public:
  static constexpr size_t kGuardBytes = 256;

  DeviceArray() = default;
  ~DeviceArray();
  DeviceArray(const DeviceArray &) = delete;
  DeviceArray &operator=(const DeviceArray &) = delete;

  /// Allocates `bytes`, starting `offsetBytes` after a 256-byte aligned
  /// address (to misalign on purpose).
  ::testing::AssertionResult allocate(size_t bytes, size_t offsetBytes = 0);
  ::testing::AssertionResult upload(const void *host, size_t count);
  ::testing::AssertionResult download(void *host, size_t count) const;
  /// Fails when a byte before or after the `bytes` given to allocate() is
  /// no longer the sentinel.
  ::testing::AssertionResult guardsIntact(const char *name) const;

  void *data() const {
    return base ? static_cast<char *>(base) + kGuardBytes + offset : nullptr;
  }

private:
  void *base = nullptr;
  size_t bytes = 0, offset = 0, total = 0;
};

/// Where the buffers of a GPU call live.
struct GpuLayout {
  /// Element offsets from 256-byte alignment, per buffer.
  int64_t xOffset = 0, residualOffset = 0, gammaOffset = 0, betaOffset = 0,
          yOffset = 0, sumOffset = 0;
  bool yIsX = false;   ///< in place: y is x's buffer
  bool sumIsX = false; ///< in place: sum is x's buffer
  void *stream = nullptr;
};

/// Uploads the inputs of `call`, runs `kernel` on device copies laid out as
/// `layout` (outputs start as 0xAB bytes, mean/rstd as kStatSentinel),
/// waits, downloads the outputs into `call` and checks that nothing was
/// written outside the buffers and that inputs not aliased by an output
/// are unchanged. Fatal failures on errors (check HasFatalFailure()).
/// `usedArgs`, when given, receives the (device) arguments of the launch.
void runOnGpu(const CompiledGpuKernel &kernel, HostCall &call,
              const GpuLayout &layout, const std::string &name,
              normjit_run_args_t *usedArgs = nullptr);

/// "_t32r4e8v4reg" (threads per row, rows per block, elements per thread,
/// vector width, row storage, "p" when persistent).
std::string describeConfig(const GpuConfig &config);

} // namespace normjit::test

/// Asserts that a normjit C call returned NORMJIT_OK, printing its status
/// and message otherwise.
#define NORMJIT_ASSERT_OK(call)                                                \
  do {                                                                         \
    normjit_status_t normjitStatus_ = (call);                                  \
    ASSERT_EQ(normjitStatus_, NORMJIT_OK)                                      \
        << #call << " failed: " << normjit_status_name(normjitStatus_) << ": " \
        << normjit_last_error();                                               \
  } while (false)

#endif // NORMJIT_TESTS_UNIT_GPU_GPUTESTSUPPORT_H
