//===- Sweep.h - sweep files: many specs to tune --------------*- C++ -*-===//
//
// Part of normjit. A sweep file (TOML) names the ops, column counts, row
// counts, dtypes and residual forms to tune; their product is the list of
// specs, in a deterministic order, so that `--shard I/N` splits it the same
// way on every machine.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TOOLS_NORMJIT_SWEEP_H
#define NORMJIT_TOOLS_NORMJIT_SWEEP_H

#include "normjit/runtime/kernel.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace normjit::tool {

/// One spec of a sweep at one row count.
struct SweepItem {
  normjit_kernel_spec_t spec;
  int64_t rows = 0;
  double budgetSeconds = 0; ///< 0: the command line's budget
  /// Where the file names its columns ("FILE:LINE"); empty for one spec.
  std::string origin;
};

/// Reads a sweep file. Malformed files (not TOML, unknown keys, wrong
/// types, bad values) are errors naming the file, the line and the reason.
llvm::Expected<std::vector<SweepItem>> loadSweep(const std::string &path);

} // namespace normjit::tool

#endif // NORMJIT_TOOLS_NORMJIT_SWEEP_H
