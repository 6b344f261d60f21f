//===- AOTCompiler.h - ahead-of-time kernel libraries -----------*- C++ -*-===//
//
// Part of normjit. Compiles kernels ahead of time with the JIT's IR, lowering
// and LLVM optimization, for one or more named CPU targets, into a library a
// host links with the runtime alone: one object per target, a dispatch
// object that picks the best target at run time by the CPU's features, a
// static library of them all, a C header and a TOML manifest. No MLIR header
// is included here.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_AOT_AOTCOMPILER_H
#define NORMJIT_AOT_AOTCOMPILER_H

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

  /// Whether no knob is set.
  bool empty() const;
  /// `base` with the knobs that are set.
  CpuConfig applyTo(CpuConfig base) const;
  /// The knobs as `#norm.config<cpu, ...>` text (only those set).
  std::string str() const;
};

/// Parses `#norm.config<cpu, ...>` text into the knobs it sets.
llvm::Expected<CpuConfigKnobs> parseCpuConfigKnobs(llvm::StringRef text);

/// Where the config of a kernel comes from.
enum class ConfigSource {
  Default,  ///< the default heuristic of each target
  Cache,    ///< the tuning cache (one config for every target)
  Explicit, ///< knobs given by the user over the default heuristic
};
const char *getConfigSourceName(ConfigSource source);

/// One kernel of a library.
struct AotKernel {
  std::string name; ///< its C function; a C identifier without "__"
  normjit_kernel_spec_t spec;
  int64_t rowsHint = 4096; ///< picks the tuning cache's row bucket
  /// The tuned config for every target, if the tuning cache had one.
  std::optional<CpuConfig> tunedConfig;
  /// Knobs set by the user; they win over the tuned and default configs.
  CpuConfigKnobs knobs;

  ConfigSource getConfigSource() const;
  /// The config for `target`: the tuned config, else the target's default
  /// heuristic, with the knobs applied.
  CpuConfig getConfig(const CpuTarget &target) const;
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

/// What a spec file asks for.
struct AotSpecFile {
  std::string library;              ///< "" when the file names none
  std::vector<std::string> targets; ///< empty when the file names none
  std::vector<AotKernel> kernels;   ///< none has a tuned config yet
};

/// Parses a spec file (see docs in AOTSpecFile.cpp; a manifest is one too).
/// Errors read "malformed spec file PATH:LINE: reason".
llvm::Expected<AotSpecFile> parseAotSpecFile(llvm::StringRef path);

/// Parses spec file text; `path` names it in errors.
llvm::Expected<AotSpecFile> parseAotSpecText(llvm::StringRef text,
                                             llvm::StringRef path);

/// Checks that `name` can name a library or kernel: a C identifier of at
/// most 64 characters, no keyword, not reserved (leading "_", "__" inside,
/// "normjit_" or "_mlir" prefixes). `what` names it in the error.
llvm::Error validateName(llvm::StringRef what, llvm::StringRef name);

} // namespace normjit::aot

#endif // NORMJIT_AOT_AOTCOMPILER_H
