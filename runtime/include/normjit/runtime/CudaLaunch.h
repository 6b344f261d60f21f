//===- CudaLaunch.h - the pure parts of a CUDA launch -----------*- C++ -*-===//
//
// Part of normjit. Internal to normjit (and its tests): how
// normjit_cuda_launch packs the kernel parameters, picks the aligned or the
// unaligned entry and sizes the grid, as functions that need no GPU; and the
// per-context table of loaded modules that normjit's GPU kernels launch
// from.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_RUNTIME_CUDALAUNCH_H
#define NORMJIT_RUNTIME_CUDALAUNCH_H

#include "normjit/runtime/cuda.h"
#include "normjit/runtime/kernel.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace normjit::runtime::cuda {

/// Kernel parameters of a norm kernel: the expanded memref descriptors of
/// x, residual (2-D, 7 each), gamma, beta (1-D, 5 each), y, sum (2-D), mean,
/// rstd (1-D).
constexpr int kNormKernelParamCount = 7 + 7 + 5 + 5 + 7 + 7 + 5 + 5;

/// One kernel parameter: every one is 8 bytes (a pointer or an index).
union KernelParamSlot {
  void *pointer;
  int64_t value;
};

/// The values and the pointer array that cuLaunchKernel takes
/// (`kernelParams[i]` points at `slots[i]`). Not copyable: the pointers
/// point into the object itself.
struct NormKernelParams {
  KernelParamSlot slots[kNormKernelParamCount];
  void *pointers[kNormKernelParamCount];

  NormKernelParams() = default;
  NormKernelParams(const NormKernelParams &) = delete;
  NormKernelParams &operator=(const NormKernelParams &) = delete;
};

/// Fills `params` for a launch over all rows of `args` (assumed valid for
/// `spec`). A stride of 0 becomes cols; unused buffers get NULL pointers
/// with the sizes and strides they would have.
void packNormKernelParams(const normjit_kernel_spec_t &spec,
                          const normjit_run_args_t &args,
                          NormKernelParams &params);

/// Why the buffers of `args` do not suit an entry compiled for
/// `vectorWidth` elements per access ("x_stride 1001 is not a multiple of
/// vector width 4"), or "" when they do: every row operand's base is aligned
/// to vectorWidth elements and its stride is a multiple of vectorWidth, and
/// gamma/beta bases are aligned.
std::string misalignment(const normjit_kernel_spec_t &spec,
                         const normjit_run_args_t &args, int vectorWidth);

/// Grid size (blocks) for `rows` rows: ceil(rows / rowsPerBlock), and for a
/// persistent kernel at most smCount * blocksPerSm, at least 1.
int64_t normGridSize(int64_t rows, int rowsPerBlock, bool persistent,
                     int smCount, int blocksPerSm);

/// A kernel's module loaded in each CUDA context it is launched in, so that a
/// launch on a stream runs in the stream's context (a module and its
/// functions belong to one context). What normjit's JIT and AOT GPU kernels
/// launch from. Thread-safe; an entry lives as long as the table (entries
/// of contexts the host destroyed stay: a host that creates contexts
/// without end should create its kernels with them).
///
/// A kernel's first launch in a context loads its module there: not a thing
/// to do during a stream capture in the global capture mode.
class ContextLaunches {
public:
  struct Entry {
    uint64_t contextId = 0; ///< normjit_cuda_stream_context's id
    void *context = nullptr;
    int ordinal = 0; ///< the device's ordinal
    int device = 0;  ///< its CUdevice
    bool primary = false; ///< the device's primary context
    normjit_cuda_module_t *module = nullptr;
    normjit_cuda_kernel_t launch{};
    const void *tag = nullptr; ///< what the loader chose (AOT: the image)
  };
  /// Loads the kernel in `context`: fills the entry's module, launch and
  /// tag, and on failure releases what it loaded and sets the error.
  using Loader = std::function<normjit_status_t(void *context, Entry &entry)>;

  ContextLaunches() = default;
  ContextLaunches(const ContextLaunches &) = delete;
  ContextLaunches &operator=(const ContextLaunches &) = delete;

  /// The entry for the context work for device `ordinal` on `stream` runs
  /// in (normjit_cuda_stream_context), loaded with `load` the first time.
  /// A failed load is not remembered.
  normjit_status_t get(int ordinal, void *stream, const Loader &load,
                       const Entry **out);
  /// get(), then normjit_cuda_launch of the entry's kernel on `stream`
  /// (without asking the driver again what it already said).
  normjit_status_t launch(int ordinal, void *stream, const Loader &load,
                          const normjit_kernel_spec_t &spec,
                          const normjit_run_args_t &args);
  /// The first entry loaded, or null.
  const Entry *first() const;
  /// Drops the module reference of every entry (when no launch of the
  /// kernel can be in flight any more) and forgets them.
  void releaseAll();

private:
  mutable std::mutex mutex;
  std::vector<std::unique_ptr<Entry>> entries;
  /// The entry found last: most hosts use one context per device, and
  /// finding it again takes two driver calls and no lock of the table.
  std::atomic<const Entry *> last{nullptr};
};

/// Unloads everything normjit loaded through the driver and closes it, so
/// the next call loads a driver again (maybe another NORMJIT_CUDA_DRIVER).
/// For tests only: no other thread may use the CUDA runtime meanwhile, and
/// modules, memory and events from before must not be used afterwards.
void resetDriverForTesting();

} // namespace normjit::runtime::cuda

#endif // NORMJIT_RUNTIME_CUDALAUNCH_H
