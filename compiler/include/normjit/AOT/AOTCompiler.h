//===- AOTCompiler.h - ahead-of-time kernel libraries -----------*- C++ -*-===//
//
// Part of normjit. Compiles kernels ahead of time with the JIT's IR, lowering
// and LLVM optimization into a library a host links with the runtime alone.
// CPU: for one or more named CPU targets, one object per target, a dispatch
// object that picks the best target at run time by the CPU's features, a
// static library of them all, a C header and a TOML manifest. GPU: for one
// or more chips (sm_80, sm_90, ...), PTX per chip (and a cubin per chip when
// ptxas is at hand), a generated C source embedding them with a launcher per
// kernel, a C header and a TOML manifest. No MLIR header is included here.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_AOT_AOTCOMPILER_H
#define NORMJIT_AOT_AOTCOMPILER_H

#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/JIT/KernelCompiler.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace normjit::aot {

/// A CPU that kernels are compiled for.
struct CpuTarget {
  std::string name;     ///< as requested: "x86-64-v3", "native", "znver4"
  std::string cpu;      ///< LLVM's CPU name ("znver4" for native there)
  std::string features; ///< LLVM's feature string; "" but for native
  /// The ISA features the dispatch checks at run time before choosing this
  /// target (sorted): those of the CPU that the runtime can detect.
  std::vector<std::string> checkedFeatures;
  std::string symbolSuffix; ///< the name as a C identifier: "x86_64_v3"
  HostCpu description;      ///< what the default heuristic needs to know
};

/// Resolves a target name: "native" (this machine's CPU and features),
/// "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4" or any CPU name LLVM
/// knows for this machine's architecture. Unknown names are an error,
/// reported before anything is compiled.
llvm::Expected<CpuTarget> resolveCpuTarget(llvm::StringRef name);

/// Some knobs of a CPU config; the others come from a base config.
struct CpuConfigKnobs {
  std::optional<int64_t> vectorWidth;
  std::optional<int64_t> accumulators;
  std::optional<int64_t> rowsPerTask;
  std::optional<int> threads;
  std::optional<bool> welford;
  std::optional<bool> streamingStores;
  std::optional<bool> fuseResidual;
  std::optional<int64_t> prefetchRows;
  std::optional<int64_t> rowGroup;

  /// Whether no knob is set.
  bool empty() const;
  /// `base` with the knobs that are set.
  CpuConfig applyTo(CpuConfig base) const;
  /// The knobs as `#norm.config<cpu, ...>` text (only those set).
  std::string str() const;
};

/// Parses `#norm.config<cpu, ...>` text into the knobs it sets.
llvm::Expected<CpuConfigKnobs> parseCpuConfigKnobs(llvm::StringRef text);

/// Some knobs of a GPU config; the others come from the default heuristic.
struct GpuConfigKnobs {
  std::optional<int64_t> threadsPerRow;
  std::optional<int64_t> rowsPerBlock;
  std::optional<int64_t> elementsPerThread;
  std::optional<int64_t> vectorWidth;
  std::optional<GpuRowStorage> rowStorage;
  std::optional<bool> persistent;
  std::optional<int64_t> minBlocksPerSm;

  /// Whether no knob is set.
  bool empty() const;
  /// `base` with the knobs that are set.
  GpuConfig applyTo(GpuConfig base) const;
  /// The knobs as `#norm.config<gpu, ...>` text (only those set).
  std::string str() const;
};

/// Parses `#norm.config<gpu, ...>` text into the knobs it sets.
llvm::Expected<GpuConfigKnobs> parseGpuConfigKnobs(llvm::StringRef text);

/// The backend a library is compiled for.
enum class AotDevice { CPU, CUDA };

/// "cpu" or "cuda".
const char *getAotDeviceName(AotDevice device);

/// Parses "cpu" or "cuda"; `what` names the value in the error.
llvm::Expected<AotDevice> parseAotDevice(llvm::StringRef name,
                                         llvm::StringRef what);

/// Where the config of a kernel comes from.
enum class ConfigSource {
  Default,  ///< the default heuristic of each target for rowsHint rows
  Cache,    ///< the tuning cache (one config for every target)
  Explicit, ///< knobs given by the user over the default heuristic
};
const char *getConfigSourceName(ConfigSource source);

/// One kernel of a library.
struct AotKernel {
  std::string name; ///< its C function; a C identifier without "__"
  normjit_kernel_spec_t spec;
  /// Rows per call the kernel is for (CPU): picks the tuning cache's row
  /// bucket, and the default heuristic's row grouping without one.
  int64_t rowsHint = 4096;
  /// Whether the user gave rowsHint (--rows-hint, a spec file's rows_hint).
  /// Only then may the default heuristic stream its stores for calls far
  /// beyond the cache: a kernel built for no row count in particular may
  /// serve a decode step of one row, whose output is read right away.
  bool rowsHintGiven = false;
  /// The tuned config for every target, if the tuning cache had one (CPU).
  std::optional<CpuConfig> tunedConfig;
  /// Knobs set by the user; they win over the tuned and default configs.
  CpuConfigKnobs knobs;
  /// GPU knobs set by the user, over each chip's default heuristic (GPU
  /// kernels do not read the tuning cache).
  GpuConfigKnobs gpuKnobs;
  /// Where a spec file defines it ("FILE:LINE" of its [[kernel]] table),
  /// for errors; empty otherwise.
  std::string origin;

  ConfigSource getConfigSource() const;
  /// The config for `target`: the tuned config, else the target's default
  /// heuristic, with the knobs applied.
  CpuConfig getConfig(const CpuTarget &target) const;
  /// Default or Explicit, for a GPU kernel.
  ConfigSource getGpuConfigSource() const;
  /// The GPU config for `target`: its default heuristic with the GPU knobs
  /// applied and the knobs not given fitted to them, as the JIT does
  /// (fitGpuKnobs).
  GpuConfig getGpuConfig(const GpuTarget &target) const;
};

/// One file of a library, in memory.
struct AotFile {
  std::string name; ///< a plain file name, no directory
  std::string contents;
};

/// The files of a library called `library` holding `kernels` for `targets`
/// (tried at run time in the order best first: most checked features
/// first): `<library>.h`, `<library>.<target>.o` per target,
/// `<library>.dispatch.o`, `lib<library>.a` holding those objects and
/// `<library>.manifest.toml`. Fails, compiling nothing, on a bad name, an
/// unknown or repeated target, or a bad spec or config; then fails on the
/// first kernel that does not compile.
llvm::Expected<std::vector<AotFile>>
buildAotLibrary(llvm::StringRef library, llvm::ArrayRef<std::string> targets,
                llvm::ArrayRef<AotKernel> kernels);

/// Compiles one kernel for one target into an ELF relocatable object that
/// defines `functionName` and its C interface `_mlir_ciface_<functionName>`
/// (normjit_cpu_kernel_fn).
llvm::Expected<std::string>
compileKernelObject(const normjit_kernel_spec_t &spec, const CpuConfig &config,
                    const CpuTarget &target, llvm::StringRef functionName);

/// Writes `files` into the directory `dir` so that it appears complete or
/// not at all: everything goes into a temporary directory beside it, which
/// is renamed to `dir` at the end and removed on failure. An existing `dir`
/// is an error unless `force` is set and it is empty or an earlier output
/// (it holds a normjit manifest); it is then replaced.
llvm::Error writeAotOutput(llvm::StringRef dir, llvm::ArrayRef<AotFile> files,
                           bool force);

/// A GPU chip kernels are compiled for.
struct GpuChip {
  std::string name; ///< "sm_90"
  GpuTarget target;
  /// Compute capability as major * 10 + minor (90), the runtime's order.
  int cc() const { return target.ccMajor * 10 + target.ccMinor; }
};

/// Resolves a chip name: "sm_<major><minor>" of compute capability 8.0 or
/// newer that LLVM's NVPTX back end knows (sm_80, sm_86, sm_89, sm_90,
/// ...). Arch-specific chips ("sm_90a") and unknown names are an error,
/// reported before anything is compiled.
llvm::Expected<GpuChip> resolveGpuChip(llvm::StringRef name);

/// How GPU libraries get their cubins.
struct AotGpuOptions {
  bool cubins = true; ///< assemble a cubin per chip when ptxas is found
  std::string ptxas;  ///< ptxas to use; "" finds one (findPtxas)
};

/// The ptxas that cubins are assembled with: $NORMJIT_PTXAS when set (it
/// must then be executable), else /usr/local/cuda/bin/ptxas, else ptxas on
/// PATH; "" when there is none. `why` (if given) says where it looked.
llvm::Expected<std::string> findPtxas(std::string *why = nullptr);

/// A GPU library in memory, and how its cubins were made.
struct AotGpuLibrary {
  std::vector<AotFile> files;
  bool cubins = false;      ///< whether there is a cubin per chip
  std::string ptxas;        ///< the ptxas that made them
  std::string ptxasVersion; ///< its version, "13.0.88"
  std::string cubinNote;    ///< why there are none ("--no-cubin", ...)
};

/// The files of a GPU library called `library` holding `kernels` for
/// `chips`: `<library>.h` (per kernel, the launcher `name(device, args,
/// stream)`, `name_spec()` and `name_image(device)`), `<library>.c` (C99,
/// the images as byte arrays and the launchers, which call aot_cuda.h),
/// `<library>.<chip>.ptx` per chip, `<library>.<chip>.cubin` per chip when
/// cubins are made, and `<library>.manifest.toml`. Chips are ordered by
/// compute capability. Fails, compiling nothing, on a bad name, an unknown
/// or repeated chip, a CPU config, or a spec or GPU config the backend
/// cannot compile; then fails on the first chip that does not compile or
/// assemble.
llvm::Expected<AotGpuLibrary>
buildAotGpuLibrary(llvm::StringRef library, llvm::ArrayRef<std::string> chips,
                   llvm::ArrayRef<AotKernel> kernels,
                   const AotGpuOptions &options = AotGpuOptions());

/// What a spec file asks for.
struct AotSpecFile {
  std::string library;              ///< "" when the file names none
  std::optional<AotDevice> device;  ///< its `device`, if it names one
  std::vector<std::string> targets; ///< empty when the file names none
  std::vector<AotKernel> kernels;   ///< none has a tuned config yet
};

/// Values of a spec file that the command line replaces (`--lib`,
/// `--target`): the file's own are then left out unchecked, so that a file
/// written for another machine (a target this LLVM does not know) builds
/// with other targets without being edited.
struct AotSpecReplaced {
  bool library = false;
  bool targets = false;
};

/// Parses a spec file (see docs in AOTSpecFile.cpp; a manifest is one too).
/// Configs are read for `device` when given, else for the file's device
/// (default cpu): `knobs` or `gpuKnobs` of each kernel. Errors read
/// "malformed spec file PATH:LINE: reason".
llvm::Expected<AotSpecFile>
parseAotSpecFile(llvm::StringRef path,
                 std::optional<AotDevice> device = std::nullopt,
                 AotSpecReplaced replaced = {});

/// Parses spec file text; `path` names it in errors.
llvm::Expected<AotSpecFile>
parseAotSpecText(llvm::StringRef text, llvm::StringRef path,
                 std::optional<AotDevice> device = std::nullopt,
                 AotSpecReplaced replaced = {});

/// Checks that `name` can name a kernel (a C function of the library): a
/// C identifier of at most 64 characters, no keyword, not reserved (leading
/// "_", "__" inside, the "normjit_" prefix, a "_t" suffix), no macro of a
/// standard C header, no function of the C library. `what` names it in the
/// error.
llvm::Error validateName(llvm::StringRef what, llvm::StringRef name);

/// Checks a library's name, which makes only file names and the header's
/// include guard: a C identifier of at most 64 characters without "__" or
/// the "normjit_" prefix, whose header NAME.h is not named as a standard C
/// header.
llvm::Error validateLibraryName(llvm::StringRef name);

} // namespace normjit::aot

#endif // NORMJIT_AOT_AOTCOMPILER_H
