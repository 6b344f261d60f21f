//===- Context.h - the embedding API: get a kernel, run it ------*- C++ -*-===//
//
// Part of normjit. What a C++ host uses: a Context hands out compiled
// kernels for specs (from its in-memory cache, compiling each spec+config
// once even when many threads ask at once), and a Kernel runs on the host's
// own buffers.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_JIT_CONTEXT_H
#define NORMJIT_JIT_CONTEXT_H

#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/JIT/KernelCompiler.h"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace normjit {

/// A compiled kernel, shared by everyone who asked for its spec and config.
class Kernel {
public:
  Kernel(const normjit_kernel_spec_t &spec,
         std::unique_ptr<CompiledCpuKernel> compiled);

  const normjit_kernel_spec_t &getSpec() const { return spec; }
  const CpuConfig &getConfig() const { return compiled->getConfig(); }
  double getCompileMillis() const { return compiled->getCompileMillis(); }
  normjit_cpu_kernel_fn getFunction() const { return compiled->getFunction(); }

  /// Runs the kernel on `args` (validated first: see normjit_run_args_t).
  llvm::Error run(const normjit_run_args_t &args) const;

private:
  normjit_kernel_spec_t spec;
  std::unique_ptr<CompiledCpuKernel> compiled;
};

/// Success, or NORMJIT_UNSUPPORTED while the process exits past the point
/// where the compiler's static objects are destroyed (an exit handler or
/// static destructor registered before normjit's last compile). Kernels got
/// before still run, and a context still hands out the kernels it has.
/// Checked by every request that compiles, parses a config or tunes.
/// (Compiles and config parses run on a thread of their own: see
/// runCompilerWork.)
llvm::Error checkThreadMayCompile();

/// Hands out kernels. Thread-safe.
class Context {
public:
  Context();
  ~Context();

  /// The kernel for `spec` with `config` (default: the host heuristic).
  /// Compiled on first request; later requests are cache hits.
  llvm::Expected<std::shared_ptr<const Kernel>>
  getKernel(const normjit_kernel_spec_t &spec,
            std::optional<CpuConfig> config = std::nullopt);

  /// The kernel for `spec` on CUDA device `device` with `config` (default:
  /// the heuristic for that device), compiled to PTX and loaded on first
  /// request. Without a driver or device: NORMJIT_DEVICE_ERROR. Device
  /// errors and NORMJIT_OUT_OF_MEMORY are not remembered (the next request
  /// tries again); compile errors are.
  llvm::Expected<std::shared_ptr<const CompiledGpuKernel>>
  getGpuKernel(const normjit_kernel_spec_t &spec, int device = 0,
               std::optional<GpuConfig> config = std::nullopt);

  /// Number of kernels compiled (or failed) so far.
  size_t getCacheSize() const;

private:
  struct Slot;
  /// The cache entry of `key`, compiled by `compile` on first request (one
  /// compilation however many threads ask at once).
  llvm::Expected<std::shared_ptr<const void>> getOrCompile(
      const std::string &key,
      llvm::function_ref<llvm::Expected<std::shared_ptr<const void>>()>
          compile);
  mutable std::mutex mutex;
  std::map<std::string, std::shared_ptr<Slot>> cache;
};

/// The cache key of a spec: every field that changes the code, with unused
/// dtypes normalized so that equal kernels share an entry.
std::string getSpecKey(const normjit_kernel_spec_t &spec);

} // namespace normjit

#endif // NORMJIT_JIT_CONTEXT_H
