//===- CudaLaunch.h - the pure parts of a CUDA launch -----------*- C++ -*-===//
//
// Part of normjit. Internal to the runtime (and its tests): how
// normjit_cuda_launch packs the kernel parameters, picks the aligned or the
// unaligned entry and sizes the grid, as functions that need no GPU.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_RUNTIME_CUDALAUNCH_H
#define NORMJIT_RUNTIME_CUDALAUNCH_H

#include "normjit/runtime/kernel.h"

#include <cstdint>
#include <string>

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

/// Unloads everything normjit loaded through the driver and closes it, so
/// the next call loads a driver again (maybe another NORMJIT_CUDA_DRIVER).
/// For tests only: no other thread may use the CUDA runtime meanwhile, and
/// modules, memory and events from before must not be used afterwards.
void resetDriverForTesting();

} // namespace normjit::runtime::cuda

#endif // NORMJIT_RUNTIME_CUDALAUNCH_H
