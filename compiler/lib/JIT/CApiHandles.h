//===- CApiHandles.h - what the C ABI's handles hold ------------*- C++ -*-===//
//
// Part of normjit. The structs behind normjit.h's opaque handles, shared by
// the C ABI of the JIT (CApi.cpp) and its tuned entry point
// (tuner/src/CApi.cpp, which the JIT library cannot depend on). Internal:
// not installed.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_COMPILER_LIB_JIT_CAPIHANDLES_H
#define NORMJIT_COMPILER_LIB_JIT_CAPIHANDLES_H

#include "normjit/normjit.h"

#include "normjit/JIT/Context.h"

#include <memory>
#include <mutex>
#include <string>

namespace normjit::capi {
/// The tuning caches a context has read for normjit_kernel_get_tuned
/// (defined by the tuner).
struct TunedCaches;
} // namespace normjit::capi

struct normjit_context {
  normjit::Context context;
  /// Guards `tuned`, made (with its deleter: the JIT does not link the
  /// tuner) on the first normjit_kernel_get_tuned.
  std::mutex tunedMutex;
  std::unique_ptr<normjit::capi::TunedCaches,
                  void (*)(normjit::capi::TunedCaches *)>
      tuned{nullptr, nullptr};
};

/// A CPU kernel or a GPU kernel (exactly one is set).
struct normjit_kernel {
  std::shared_ptr<const normjit::Kernel> kernel;
  std::shared_ptr<const normjit::CompiledGpuKernel> gpuKernel;
  std::string config;
  std::string device;
  std::string source; ///< where the config came from
  double compileMillis = 0;
};

namespace normjit::capi {
/// A new handle in `*out` for the CPU kernel `cpu` or, when set, the GPU
/// kernel `gpu`, its config from `source`.
normjit_status_t makeKernelHandle(std::shared_ptr<const Kernel> cpu,
                                  std::shared_ptr<const CompiledGpuKernel> gpu,
                                  const char *source, normjit_kernel_t **out);
} // namespace normjit::capi

#endif // NORMJIT_COMPILER_LIB_JIT_CAPIHANDLES_H
