//===- Commands.h - the subcommands of the normjit tool ---------*- C++ -*-===//
//
// Part of normjit. Each subcommand takes the words after its name, writes
// its results to `out` and returns an llvm::Error that main() turns into one
// line on stderr and exit code 1.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TOOLS_NORMJIT_COMMANDS_H
#define NORMJIT_TOOLS_NORMJIT_COMMANDS_H

#include "normjit/runtime/kernel.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace normjit::tuner {
class TuningCache;
} // namespace normjit::tuner

namespace normjit::tool {

/// `normjit run`: computes a norm on .npy inputs and writes .npy outputs.
llvm::Error runCommand(llvm::ArrayRef<std::string> args,
                       llvm::raw_ostream &out);

/// `normjit bench`: times one kernel spec against a memcpy of its bytes.
llvm::Error benchCommand(llvm::ArrayRef<std::string> args,
                         llvm::raw_ostream &out);

/// `normjit tune`: tunes one spec, or a sweep from a TOML file, into the
/// tuning cache, with progress, a report and a plot.
llvm::Error tuneCommand(llvm::ArrayRef<std::string> args,
                        llvm::raw_ostream &out);

/// `normjit cache show|path|merge|clear`.
llvm::Error cacheCommand(llvm::ArrayRef<std::string> args,
                         llvm::raw_ostream &out);

/// `normjit aot`: compiles one spec, or the kernels of a spec file, ahead of
/// time into objects, a static library, a C header and a manifest.
llvm::Error aotCommand(llvm::ArrayRef<std::string> args,
                       llvm::raw_ostream &out);

/// `normjit devices`: lists the devices kernels can be compiled for.
llvm::Error devicesCommand(llvm::ArrayRef<std::string> args,
                           llvm::raw_ostream &out);

/// Parses the value of `flag` as an op ("layer_norm" or "rms_norm").
llvm::Expected<normjit_op_t> parseOp(llvm::StringRef flag,
                                     llvm::StringRef text);

/// Parses the value of `flag` as a dtype ("f32", "f16", "bf16" and their
/// long names).
llvm::Expected<normjit_dtype_t> parseDType(llvm::StringRef flag,
                                           llvm::StringRef text);

class ParsedOptions;

/// The spec described by the options that `bench`, `tune` and `aot` share:
/// --op and --cols (required), --dtype (every buffer; default f32) and the
/// dtype of each buffer over it (--x-dtype, ...), --residual (the sum is
/// stored too unless --no-store-sum), --[no-]gamma (default on), --[no-]beta
/// (default on for layer_norm), --store-mean, --store-rstd, --eps (default
/// 1e-5, rms_norm 1e-6). `command` names the command in messages.
llvm::Expected<normjit_kernel_spec_t>
parseSpecOptions(const ParsedOptions &options, llvm::StringRef command);

/// The entries of NORMJIT_SPEC_DETAIL_OPTIONS for an option table (after
/// --op, --cols, --dtype, --residual, --gamma and --beta): each buffer's
/// dtype, whether the sum is stored, the row statistics. Every command with
/// parseSpecOptions lists them.
#define NORMJIT_SPEC_DETAIL_OPTIONS                                            \
  {"x-dtype", OptionKind::String, "DTYPE", "dtype of x (default --dtype)"},    \
      {"y-dtype", OptionKind::String, "DTYPE",                                 \
       "dtype of y (default --dtype)"},                                        \
      {"residual-dtype", OptionKind::String, "DTYPE",                          \
       "dtype of the residual (default --dtype)"},                             \
      {"sum-dtype", OptionKind::String, "DTYPE",                               \
       "dtype of the stored sum (default --dtype)"},                           \
      {"gamma-dtype", OptionKind::String, "DTYPE",                             \
       "dtype of gamma (default --dtype)"},                                    \
      {"beta-dtype", OptionKind::String, "DTYPE",                              \
       "dtype of beta (default --dtype)"},                                     \
      {"store-sum", OptionKind::NegatableFlag, "",                             \
       "store x + residual (default on with --residual)"},                     \
      {"store-mean", OptionKind::Flag, "",                                     \
       "store the f32 mean of each row (layer_norm)"},                         \
      {"store-rstd", OptionKind::Flag, "",                                     \
       "store the f32 reciprocal standard deviation of each row"}

/// The device that `--device` names (absent: "cpu"): -1 for the CPU, else
/// the CUDA ordinal ("cuda" is cuda:0). Other names are an error that says
/// what is accepted.
llvm::Expected<int> parseDeviceOption(const ParsedOptions &options);

/// --eps as an f32: `otherwise` when absent, an error unless it is positive
/// and finite once rounded to f32 (1e-50 and 1e39 are not).
llvm::Expected<float> parseEpsilonOption(const ParsedOptions &options,
                                         float otherwise);

/// "cpu" for -1, else "cuda:N".
std::string getDeviceName(int device);

/// Prints the warnings `cache` has not handed over yet ("normjit: warning:
/// ...", one line each): after a load, a store or a merge.
void printCacheWarnings(tuner::TuningCache &cache);

/// Fails, saying so, when the `#norm.config<...>` text given with `flag` is
/// for the other kind of device than `device` (a gpu config with --device
/// cpu, or a cpu config with --device cuda:N). Other text passes: the
/// config parser judges it.
llvm::Error checkConfigDevice(llvm::StringRef flag, llvm::StringRef text,
                              int device);

/// Fails, with the driver layer's reason ("no CUDA driver: ...", "no CUDA
/// device 3 ...", a chip older than sm_80), unless CUDA device `device` can
/// run normjit's kernels: so commands say so before doing any work for it.
llvm::Error checkGpuDevice(int device);

/// The op's name as on the command line.
llvm::StringRef getOpName(normjit_op_t op);

/// `value` as printf's %g writes it (1e-05, 0.001).
std::string formatNumber(double value);

/// A one-line, human-readable description of a spec for `rows` rows.
std::string describeSpec(const normjit_kernel_spec_t &spec, int64_t rows);

} // namespace normjit::tool

#endif // NORMJIT_TOOLS_NORMJIT_COMMANDS_H
