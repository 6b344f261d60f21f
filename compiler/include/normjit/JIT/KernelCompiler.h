//===- KernelCompiler.h - compile one norm kernel for the host --*- C++ -*-===//
//
// Part of normjit. The compiler's public C++ entry point: from a kernel spec
// and a CPU config to `norm` IR, and to machine code for the host CPU through
// LLVM's ORC JIT. No MLIR header is included here.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_JIT_KERNELCOMPILER_H
#define NORMJIT_JIT_KERNELCOMPILER_H

#include "normjit/runtime/kernel.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir {
class ExecutionEngine;
} // namespace mlir

namespace normjit {

/// The CPU knobs of one kernel: what #norm.config<cpu, ...> carries.
/// The most rows one thread-pool task may take (`rows_per_task` of
/// `#norm.config` has the same bound).
constexpr int64_t kMaxRowsPerTask = 65536;
/// The farthest software prefetch, in rows (`prefetch_rows` of
/// `#norm.config` has the same bound).
constexpr int64_t kMaxPrefetchRows = 16;
/// The most rows normalized together (`row_group` of `#norm.config` has
/// the same bound).
constexpr int64_t kMaxRowGroup = 64;

struct CpuConfig {
  int64_t vectorWidth = 8;   ///< f32 lanes per vector (power of two, 1-64)
  int64_t accumulators = 4;  ///< independent partial sums (1-16)
  int64_t rowsPerTask = 64;  ///< rows per thread-pool task, [1, kMaxRowsPerTask]
  int threads = 0;           ///< worker threads; 0 means all cores
  bool welford = false;      ///< Welford updates instead of shifted sums
  bool streamingStores = false; ///< non-temporal stores of y
  bool fuseResidual = true;  ///< one kernel vs norm.add then the norm
  /// Software prefetches of the inputs this many rows ahead, [0,
  /// kMaxPrefetchRows]; 0: none.
  int64_t prefetchRows = 0;
  /// Rows normalized together, [0, kMaxRowGroup]; 0: the lowering's
  /// default (pairs where gamma, beta and a row overflow 32 KiB).
  int64_t rowGroup = 0;

  /// The config as `#norm.config<cpu, ...>` text (prefetch_rows and
  /// row_group only when they are not 0).
  std::string str() const;
  bool operator==(const CpuConfig &other) const;
};

/// What code generation needs to know of the host CPU.
struct HostCpu {
  std::string name;         ///< LLVM's name for it, e.g. "znver5"
  bool avx2 = false;
  bool avx512f = false;
  bool f16c = false;
  bool avx512bf16 = false; ///< f32 -> bf16 rounding in one instruction
  unsigned cores = 1;
  /// Bytes of the largest cache a core reports (Linux sysfs); 0 where
  /// unknown (a named AOT target), taken as kAssumedLastLevelCacheBytes.
  int64_t lastLevelCacheBytes = 0;
  /// f32 lanes of the widest vector unit worth using.
  int64_t nativeVectorWidth() const;
};

/// The host, detected once per process (less the features
/// NORMJIT_DISABLE_CPU_FEATURES turns off: see getHostCpuFeatures).
const HostCpu &getHostCpu();

/// LLVM's features of the host CPU (llvm::sys::getHostCPUFeatures), less
/// those NORMJIT_DISABLE_CPU_FEATURES names (comma-separated LLVM feature
/// names, read once per process) and every feature that needs one of them
/// (`avx2` takes the AVX-512 features with it): what the JIT and AOT's
/// `native` target compile for, so that an AVX-512 machine can run the
/// code an AVX2 or SSE machine would get. Names the host lacks are
/// ignored.
const llvm::StringMap<bool> &getHostCpuFeatures();

/// The host features NORMJIT_DISABLE_CPU_FEATURES turned off, sorted
/// (empty without it).
const std::vector<std::string> &getDisabledHostCpuFeatures();

/// The heuristic config for a spec on this host: what a kernel gets when
/// no tuned config is known.
CpuConfig getDefaultCpuConfig(const normjit_kernel_spec_t &spec,
                              const HostCpu &host = getHostCpu());

/// The lowering's default `row_group` for `spec` (getDefaultRowGroup of
/// RowGroup.h on its op, columns and x, gamma and beta element sizes):
/// groups of 8 or 16 short rows finished in lanes (kLaneRowGroup; the
/// lowering takes single rows where it cannot: Welford's LayerNorm, bf16
/// rows summed by vdpbf16ps), 2 where gamma, beta and a row overflow 32
/// KiB, else 1.
int64_t getDefaultRowGroup(const normjit_kernel_spec_t &spec);

/// The spec's per-buffer dtype fields by buffer name: what the CLI's
/// `--NAME-dtype` options and spec files' `NAME_dtype` keys set, and the
/// flag that says whether the spec has the buffer (null: always).
struct SpecBufferDtype {
  const char *buffer;
  normjit_dtype_t normjit_kernel_spec_t::*field;
  int normjit_kernel_spec_t::*present;
};
inline constexpr SpecBufferDtype kSpecBufferDtypes[] = {
    {"x", &normjit_kernel_spec_t::x_dtype, nullptr},
    {"y", &normjit_kernel_spec_t::y_dtype, nullptr},
    {"residual", &normjit_kernel_spec_t::residual_dtype,
     &normjit_kernel_spec_t::has_residual},
    {"sum", &normjit_kernel_spec_t::sum_dtype,
     &normjit_kernel_spec_t::store_sum},
    {"gamma", &normjit_kernel_spec_t::gamma_dtype,
     &normjit_kernel_spec_t::has_gamma},
    {"beta", &normjit_kernel_spec_t::beta_dtype,
     &normjit_kernel_spec_t::has_beta}};

/// Rows per group of the tiled row grouping (`row_group`) that the CPU
/// heuristics choose (the rows-aware default below, the tuner's space).
constexpr int64_t kTiledRowGroup = 8;

/// `config` with rows normalized `group` at a time; the rows of a task
/// rounded up to a whole number of groups (a group cannot outgrow its
/// task, nor prefetch past it: on two threads, tiles of 8 rows in tasks
/// of 1 row are single rows; in tasks of 64, 512x12288 f32 LayerNorm ran
/// 1.25x single rows in tasks of 4).
CpuConfig withRowGroup(CpuConfig config, int64_t group);

/// Inputs (x and the residual) of up to this many bytes per call are taken
/// to stay in the caches: the rows-aware default and the tuner's space
/// (its streaming threshold) plan for them so.
constexpr int64_t kCacheResidentInputBytes = int64_t(4) << 20;

/// The last-level cache assumed where the host does not say (HostCpu::
/// lastLevelCacheBytes 0).
constexpr int64_t kAssumedLastLevelCacheBytes = int64_t(32) << 20;

/// Calls that move at least this many bytes (rows x and residual read, y
/// and the sum written), and twice the last-level cache, stream their
/// stores (and prefetch) in the rows-aware default: the smallest such call's y is more
/// than kCacheResidentInputBytes at the bottom of its row bucket, so the
/// tuner's space has the config too.
constexpr int64_t kStreamingDefaultMinBytes = int64_t(64) << 20;

/// Whether kTiledRowGroup rows of `spec`'s x and residual fit in 32 KiB
/// (bf16 rows of up to 2048 columns, f32 of up to 1024, half that with a
/// residual): beyond, tiles lost to single rows on every input measured.
bool rowTilesFitL1(const normjit_kernel_spec_t &spec);

/// The heuristic config for `spec` called with `rows` rows: the spec's
/// (getDefaultCpuConfig), with rows normalized in groups (rows per task
/// rounded up to whole groups) where those are known to pay: where the
/// default takes single rows, with gamma or beta, 2 rows or more, every
/// row count of `rows`' power-of-two bucket within
/// kCacheResidentInputBytes, and a host with AVX2. Tiles of kTiledRowGroup
/// rows where rowTilesFitL1 and the sum is not stored (f32 rows: with
/// AVX-512, without a residual, up to 16 rows); pairs of 16-bit rows of up
/// to 8 KiB a pair (x and residual: 1024 bf16 columns) where the sum is
/// stored. A row is a chain of dependent steps
/// (its sums, reduction, division and output) that leaves the core mostly
/// idle; the rows of a group overlap them. Streaming stores and
/// prefetches one row ahead (rows one by one where the default pairs
/// them) where a call of the row bucket's rows moves at least
/// kStreamingDefaultMinBytes and twice the host's last-level cache, and
/// y's rows are whole multiples of the streaming alignment (its output
/// would not stay in the caches for the next call anyway). What a kernel
/// gets where the
/// row count is known and no tuned config is: TunedKernels' fallback
/// (`normjit_kernel_get_tuned`), AOT's `--rows-hint`.
CpuConfig getDefaultCpuConfigForRows(const normjit_kernel_spec_t &spec,
                                     int64_t rows,
                                     const HostCpu &host = getHostCpu());

/// Parses `#norm.config<cpu, ...>` text (as CpuConfig::str() writes it, or
/// written by hand: absent knobs keep the values of `base`).
llvm::Expected<CpuConfig> parseCpuConfig(llvm::StringRef text,
                                         const CpuConfig &base = CpuConfig());

/// Checks a config's knobs without compiling (ranges, powers of two).
llvm::Error validateCpuConfig(const CpuConfig &config);

/// The `norm` IR of a kernel: one function @normjit_kernel whose eight
/// memref arguments are the kernel's ABI, holding one norm op that carries
/// the config.
llvm::Expected<std::string> buildKernelIR(const normjit_kernel_spec_t &spec,
                                          const CpuConfig &config);

/// A kernel compiled for the host CPU. Owns the JIT'd code.
class CompiledCpuKernel {
public:
  ~CompiledCpuKernel();
  normjit_cpu_kernel_fn getFunction() const { return function; }
  const CpuConfig &getConfig() const { return config; }
  /// Milliseconds from spec to callable code.
  double getCompileMillis() const { return compileMillis; }

private:
  friend llvm::Expected<std::unique_ptr<CompiledCpuKernel>>
  compileCpuKernel(const normjit_kernel_spec_t &, const CpuConfig &);
  CompiledCpuKernel() = default;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  normjit_cpu_kernel_fn function = nullptr;
  CpuConfig config;
  double compileMillis = 0;
};

/// Compiles a kernel for the host. Invalid specs or configs and compiler
/// diagnostics come back as an llvm::Error carrying their text.
llvm::Expected<std::unique_ptr<CompiledCpuKernel>>
compileCpuKernel(const normjit_kernel_spec_t &spec, const CpuConfig &config);

/// Whether this thread's thread-local objects are destroyed: it is ending,
/// or it called exit() and runs the exit handlers.
bool isThreadEnding();

/// Whether exit() has destroyed (some of) the compiler's static objects:
/// set by exit handlers registered when normjit loads and after each
/// compile (see Context.cpp).
bool isProcessExiting();

/// Runs `body` on a new thread and waits for it; false if no thread could
/// be started (then `body` did not run).
bool runOnFreshThread(llvm::function_ref<void()> body);

/// Runs `body`, work of MLIR or LLVM (a compile, a config parse), on a
/// thread of its own, where MLIR's thread-local objects are made and
/// destroyed with that thread, never on a caller's thread that may be
/// ending; then registers an exit marker (see Context.cpp). Where no
/// thread can be started, runs it here unless this thread is ending.
/// Errors (then `body` did not run): NORMJIT_UNSUPPORTED once the process
/// exits past the compiler's objects (checkThreadMayCompile in Context.h),
/// NORMJIT_INTERNAL where no thread could be started.
llvm::Error runCompilerWork(llvm::function_ref<void()> body);

/// runCompilerWork for work with a result.
template <typename T>
llvm::Expected<T>
runCompilerWork(llvm::function_ref<llvm::Expected<T>()> work) {
  std::optional<llvm::Expected<T>> result;
  if (llvm::Error error = runCompilerWork([&] { result.emplace(work()); }))
    return std::move(error);
  return std::move(*result);
}

/// An error with the C ABI status it maps to, so that the C API returns
/// the right code for each failure.
class StatusError : public llvm::ErrorInfo<StatusError> {
public:
  static char ID;
  StatusError(normjit_status_t status, std::string message)
      : status(status), message(std::move(message)) {}
  void log(llvm::raw_ostream &os) const override { os << message; }
  std::error_code convertToErrorCode() const override {
    return llvm::inconvertibleErrorCode();
  }
  normjit_status_t getStatus() const { return status; }
  const std::string &getMessage() const { return message; }

private:
  normjit_status_t status;
  std::string message;
};

/// Makes a StatusError.
llvm::Error makeError(normjit_status_t status, const llvm::Twine &message);

/// Converts a failing runtime status and its last-error text into an
/// llvm::Error (success for NORMJIT_OK).
llvm::Error statusToError(normjit_status_t status);

/// Consumes an error into a C ABI status, leaving its text as the thread's
/// last error.
normjit_status_t errorToStatus(llvm::Error error);

} // namespace normjit

#endif // NORMJIT_JIT_KERNELCOMPILER_H
