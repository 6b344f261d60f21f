//===- GpuKernelCompiler.h - norm kernels to PTX ----------------*- C++ -*-===//
//
// Part of normjit. The GPU side of the compiler: GPU configs (what
// #norm.config<gpu, ...> carries), their heuristic defaults, and the
// pipeline from a kernel spec to PTX for one compute capability (norm ->
// gpu -> nvvm -> LLVM NVPTX), without a CUDA toolkit. No MLIR header is
// included here.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_JIT_GPUKERNELCOMPILER_H
#define NORMJIT_JIT_GPUKERNELCOMPILER_H

#include "normjit/JIT/KernelCompiler.h"
#include "normjit/runtime/cuda.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class MCSubtargetInfo;
} // namespace llvm

namespace normjit {

namespace runtime::cuda {
class ContextLaunches;
} // namespace runtime::cuda

/// Where a GPU kernel keeps a row between its statistics and output passes.
enum class GpuRowStorage { Registers, Shared, Global };

/// "registers", "shared" or "global": the name #norm.config and the tuning
/// cache use.
const char *getGpuRowStorageName(GpuRowStorage storage);
/// The storage named `name`, or nullopt for any other name.
std::optional<GpuRowStorage> parseGpuRowStorage(llvm::StringRef name);

/// The GPU knobs of one kernel.
struct GpuConfig {
  int64_t threadsPerRow = 32;    ///< power of two, 1-1024
  int64_t rowsPerBlock = 4;      ///< threadsPerRow * rowsPerBlock <= 1024
  int64_t elementsPerThread = 8; ///< multiple of vectorWidth
  int64_t vectorWidth = 4;       ///< elements per access, <= 128 bits
  GpuRowStorage rowStorage = GpuRowStorage::Registers;
  bool persistent = false; ///< grid-stride loop over row groups
  /// PTX .minnctapersm: blocks ptxas must fit on a multiprocessor (its
  /// register cap); 0: none.
  int64_t minBlocksPerSm = 0;

  /// The config as `#norm.config<gpu, ...>` text.
  std::string str() const;
  bool operator==(const GpuConfig &other) const;
  int64_t blockSize() const { return threadsPerRow * rowsPerBlock; }
};

/// What code generation needs to know of a GPU.
struct GpuTarget {
  int ccMajor = 9; ///< compute capability
  int ccMinor = 0;
  int smCount = 132;
  /// "sm_90" for compute capability 9.0.
  std::string chip() const;
};

/// What one multiprocessor of a chip runs at once: the bounds of
/// min_blocks_per_sm (as ptxas 13.0 takes .minnctapersm: sm_75 16 blocks
/// and 1024 threads; sm_80, sm_90, sm_100, sm_103 32 and 2048; sm_86 and
/// sm_87 16 and 1536; sm_89 and sm_120 24 and 1536; chips it does not
/// list, 32 and 2048).
struct SmResidency {
  int64_t maxBlocks = 32;
  int64_t maxThreads = 2048;
};
SmResidency getSmResidency(const GpuTarget &target);

/// Whether `target`'s multiprocessors run the blocks `config`'s
/// min_blocks_per_sm asks for (always, without one).
bool fitsSmResidency(const GpuConfig &config, const GpuTarget &target);

/// An error when `config`'s min_blocks_per_sm asks more of `target`'s
/// multiprocessors than they run (ptxas would ignore it).
llvm::Error checkMinBlocksPerSm(const GpuConfig &config,
                                const GpuTarget &target);

/// "sm_<digits>" as its number (sm_121: 121), or 0 for anything else
/// (sm_90a, sm_100f: arch-specific chips, whose code runs on no other).
unsigned getPlainChipNumber(llvm::StringRef name);

/// LLVM's knowledge of the NVPTX chips (created once), or null after
/// setting `error` when this LLVM has no NVPTX back end.
const llvm::MCSubtargetInfo *getNvptxSubtargetInfo(std::string &error);

/// The target code is generated for on `device`: the device's own chip
/// when LLVM knows it, else the newest chip LLVM knows that is not newer
/// than it (sm_130 on an LLVM that knows sm_121: sm_121), whose PTX the
/// driver compiles for the device.
llvm::Expected<GpuTarget> getCodegenTarget(const GpuTarget &device);

/// The target for a chip name such as "sm_80" or "sm_90a".
llvm::Expected<GpuTarget> parseGpuChip(llvm::StringRef chip);

/// Bits of the widest element a GPU kernel of `spec` moves with vectors
/// (vector_width times it is at most 128).
unsigned getWidestElementBits(const normjit_kernel_spec_t &spec);

/// Whether `rowsPerBlock` rows of `cols` columns fit the shared memory a
/// `row_storage = shared` kernel may keep them in (rows padded to whole
/// vectors of `vectorWidth`).
bool sharedRowsFit(int64_t cols, int64_t rowsPerBlock, int64_t vectorWidth);

/// The heuristic config for a spec on a GPU.
GpuConfig getDefaultGpuConfig(const normjit_kernel_spec_t &spec,
                              const GpuTarget &target = GpuTarget());

/// Parses `#norm.config<gpu, ...>` text; absent knobs keep `base`'s values.
llvm::Expected<GpuConfig> parseGpuConfig(llvm::StringRef text,
                                         const GpuConfig &base = GpuConfig());

/// Which knobs a user gave (the others came from the default heuristic).
struct GpuKnobsGiven {
  bool vectorWidth = false;
  bool threadsPerRow = false;
  bool rowsPerBlock = false;
  bool elementsPerThread = false;
  bool rowStorage = false;
  bool minBlocksPerSm = false;
};

/// Which of `knobs`' optional GPU knobs are set (norm::ConfigKnobs parsed
/// from a config's text, or an AOT kernel's aot::GpuConfigKnobs).
template <typename Knobs> GpuKnobsGiven getKnobsGiven(const Knobs &knobs) {
  GpuKnobsGiven given;
  given.vectorWidth = knobs.vectorWidth.has_value();
  given.threadsPerRow = knobs.threadsPerRow.has_value();
  given.rowsPerBlock = knobs.rowsPerBlock.has_value();
  given.elementsPerThread = knobs.elementsPerThread.has_value();
  given.rowStorage = knobs.rowStorage.has_value();
  given.minBlocksPerSm = knobs.minBlocksPerSm.has_value();
  return given;
}

/// After knobs were set over a default config for rows of `cols` columns,
/// the knobs not given follow those that were, as the default heuristic
/// would have chosen them: rows_per_block, blocks of about 256 threads for
/// the threads per row given; threads_per_row, fewer where the rows per
/// block given would make the default's block pass 1024 threads;
/// elements_per_thread, when threads per row,
/// vector width or row storage were given, just enough whole vectors per
/// thread for a row held in registers (vector_width, when not given,
/// narrowed to a thread's share; past what the heuristic holds in
/// registers, and unless the row storage was given, the row is read from
/// global memory instead), or the chunk made whole vectors for a row in
/// shared or global memory; when elements_per_thread is given,
/// vector_width narrowed to divide them and, for a row in registers, the
/// threads per row (and rows per block) that hold the row with them.
/// Knobs given are never changed.
void fitGpuKnobs(GpuConfig &config, int64_t cols, const GpuKnobsGiven &given);

/// `text`'s knobs over the default config of `spec` on `target`, the others
/// fitted to them (fitGpuKnobs). What a user's `--config`, a C API config
/// and an AOT kernel's knobs mean.
llvm::Expected<GpuConfig> parseGpuConfigFor(llvm::StringRef text,
                                            const normjit_kernel_spec_t &spec,
                                            const GpuTarget &target);

/// parseGpuConfigFor on CUDA device `device`'s target, with text that is no
/// GPU config (its syntax, its ranges, another backend's knobs) refused
/// before the device is asked for: the caller's error with or without a
/// GPU.
llvm::Expected<GpuConfig>
parseGpuConfigForDevice(llvm::StringRef text,
                        const normjit_kernel_spec_t &spec, int device);

/// Checks a config against a spec without generating code: knob ranges and
/// what depends on the op (vector bits, a row in registers or shared
/// memory, the block size).
llvm::Error validateGpuConfig(const normjit_kernel_spec_t &spec,
                              const GpuConfig &config);

/// One kernel of a PTX module.
struct GpuKernelRequest {
  normjit_kernel_spec_t spec;
  GpuConfig config;
  std::string name; ///< entry point; "<name>_unaligned" is the scalar twin
};

/// A PTX module and what its kernels need at launch.
struct GpuModuleImage {
  std::string ptx;
  std::string chip;
  double compileMillis = 0;
};

/// The entry name of the scalar (vector_width = 1) twin of a kernel, which
/// the runtime launches on buffers not aligned for the vector width.
std::string getUnalignedEntryName(const std::string &name,
                                  const GpuConfig &config);

/// The `norm` IR of GPU kernels: a gpu.module holding one gpu.func per
/// request (and its scalar twin), each holding one norm op with its config.
llvm::Expected<std::string>
buildGpuKernelIR(llvm::ArrayRef<GpuKernelRequest> kernels);

/// Compiles kernels to one PTX module for `target`. Invalid specs or
/// configs and compiler diagnostics come back as an llvm::Error.
llvm::Expected<GpuModuleImage>
compileGpuPtx(llvm::ArrayRef<GpuKernelRequest> kernels,
              const GpuTarget &target);

/// The code generation target of CUDA device `ordinal` (its compute
/// capability and SM count), from the driver; for a chip this LLVM does
/// not know, the newest chip it knows below it (getCodegenTarget).
llvm::Expected<GpuTarget> getGpuTarget(int ordinal);

/// A kernel compiled to PTX for one CUDA device. Its module is loaded in
/// each context of that device it is launched in (the launch stream's; for
/// the default stream the current or the primary one), first in the one
/// current when it was compiled.
class CompiledGpuKernel {
public:
  ~CompiledGpuKernel();
  CompiledGpuKernel(const CompiledGpuKernel &) = delete;
  CompiledGpuKernel &operator=(const CompiledGpuKernel &) = delete;

  const normjit_kernel_spec_t &getSpec() const { return spec; }
  const GpuConfig &getConfig() const { return config; }
  int getDevice() const { return device; }
  const std::string &getPtx() const { return ptx; }
  /// Milliseconds from spec to a loaded module.
  double getCompileMillis() const { return compileMillis; }
  /// What normjit_cuda_launch needs to run the kernel in the context it
  /// was first loaded in.
  const normjit_cuda_kernel_t &getLaunch() const;

  /// Launches on `stream` (a CUstream, null for the default stream) with
  /// device pointers in `args`, without waiting, in the stream's context
  /// (loading the module there first if needed). Arguments are validated
  /// first (see normjit_cuda_launch).
  llvm::Error run(const normjit_run_args_t &args, void *stream = nullptr) const;
  /// Waits for the legacy default stream that run() without a stream uses
  /// from this thread (in the current context on the kernel's device, else
  /// its primary context): the kernel, and earlier work of that context's
  /// blocking streams, not its non-blocking streams.
  llvm::Error synchronize() const;

private:
  friend llvm::Expected<std::unique_ptr<CompiledGpuKernel>>
  compileGpuKernel(const normjit_kernel_spec_t &, const GpuConfig &, int);
  CompiledGpuKernel() = default;
  normjit_kernel_spec_t spec{};
  GpuConfig config;
  int device = 0;
  std::string ptx;
  double compileMillis = 0;
  std::string entryName;
  /// The module per CUDA context.
  std::unique_ptr<runtime::cuda::ContextLaunches> launches;
  friend struct GpuKernelLoader;
};

/// Compiles `spec` with `config` for CUDA device `ordinal` and loads it.
/// Without a driver or device: NORMJIT_DEVICE_ERROR, saying so.
llvm::Expected<std::unique_ptr<CompiledGpuKernel>>
compileGpuKernel(const normjit_kernel_spec_t &spec, const GpuConfig &config,
                 int ordinal = 0);

/// Parses a device name: "cpu" gives -1, "cuda" or "cuda:N" gives N (0 by
/// default).
llvm::Expected<int> parseDeviceName(llvm::StringRef name);

} // namespace normjit

#endif // NORMJIT_JIT_GPUKERNELCOMPILER_H
