//===- GpuEmulator.h - GPU kernels executed on the CPU ----------*- C++ -*-===//
//
// Part of normjit. A small SIMT emulator for the tests: the gpu.module of a
// GPU kernel request, after convert-norm-to-gpu, is rewritten into host
// functions (thread and block ids, barriers and shuffles become calls into
// the emulator, and every memory access is checked first), lowered like the
// CPU JIT's kernels and run block by block, every GPU thread a fiber or a
// thread of its own, with the launch the CUDA runtime would make: the same
// parameters, the scalar twin for misaligned buffers, the same grid (a
// persistent grid capped at a few blocks).
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TESTS_UNIT_GPU_GPUEMULATOR_H
#define NORMJIT_TESTS_UNIT_GPU_GPUEMULATOR_H

#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/runtime/kernel.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace normjit::test::emu {

/// How the threads of a block run.
enum class Schedule {
  /// Each GPU thread a fiber, all on the calling thread: a thread runs until
  /// it waits at a barrier or shuffle (or returns), then the next; released
  /// threads resume in an order drawn from the launch's seed. Deterministic,
  /// and a thread runs as far ahead of the others as a barrier lets it.
  Fibers,
  /// Each GPU thread an OS thread, all running at once.
  Threads,
};

struct LaunchOptions {
  Schedule schedule = Schedule::Fibers;
  /// Blocks of a persistent grid (the SMs times the resident blocks of the
  /// emulated GPU): small, so that the grid-stride loop goes round.
  int persistentBlocks = 3;
  /// The order in which fibers resume.
  uint64_t seed = 0;
  /// The entry to run; "" runs the one the runtime would (the kernel, or
  /// its scalar twin for misaligned buffers).
  std::string entry;
};

/// What a launch ran.
struct LaunchReport {
  std::string entry;     ///< the kernel or its scalar twin; "" for 0 rows
  int64_t grid = 0;      ///< blocks
  int64_t blockSize = 0; ///< threads per block
};

/// One kernel request compiled for the host: the kernel and its scalar twin.
class EmulatedGpuKernel {
public:
  /// Builds the gpu.module of `request` as the GPU compiler does, runs
  /// convert-norm-to-gpu and its cleanups, turns each gpu.func into a host
  /// function and JIT-compiles it.
  static llvm::Expected<std::unique_ptr<EmulatedGpuKernel>>
  compile(const GpuKernelRequest &request);

  ~EmulatedGpuKernel();
  EmulatedGpuKernel(const EmulatedGpuKernel &) = delete;
  EmulatedGpuKernel &operator=(const EmulatedGpuKernel &) = delete;

  /// Runs the kernel over `args` as normjit_cuda_launch would launch it on
  /// the GPU (args must be valid for the spec). Fails on what would fault
  /// or be undefined on a GPU: an access outside its memref, to a NULL
  /// buffer or misaligned for its vector; threads of a block (of a warp)
  /// meeting at different barriers (shuffles), or some returning while
  /// others wait; a shuffle reading a lane that does not exist; more than
  /// 48 KiB of static shared memory; a known_block_size other than the
  /// launch's. Bad accesses are skipped (loads give NaN).
  llvm::Expected<LaunchReport> launch(const normjit_run_args_t &args,
                                      const LaunchOptions &options) const;

  const GpuKernelRequest &getRequest() const { return request; }

  /// A host function made from one gpu.func.
  struct Entry {
    std::string name;
    int64_t blockSize = 0; ///< its known_block_size
    /// Shapes of its workgroup buffers (f32), passed after the 8 kernel
    /// arguments.
    std::vector<std::vector<int64_t>> workgroupShapes;
  };

  /// A function that checks the accesses of memrefs of one type: its name
  /// and the memrefs' rank.
  struct Checker {
    std::string name;
    int64_t rank = 0;
  };

private:
  struct State;
  EmulatedGpuKernel();
  /// The packed host function of entries[index], JIT-compiled on first use.
  llvm::Expected<void (*)(void **)> getFunction(size_t index) const;

  GpuKernelRequest request;
  std::vector<Entry> entries;
  /// The barriers, shuffles and memory accesses errors may name.
  std::vector<std::string> sites;
  std::vector<Checker> checkers;
  std::unique_ptr<State> state;
};

} // namespace normjit::test::emu

#endif // NORMJIT_TESTS_UNIT_GPU_GPUEMULATOR_H
