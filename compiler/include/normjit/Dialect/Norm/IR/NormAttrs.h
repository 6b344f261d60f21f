//===- NormAttrs.h - attributes of the norm dialect -------------*- C++ -*-===//
//
// Part of normjit. Declares the enums and #norm.config.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_IR_NORMATTRS_H
#define NORMJIT_DIALECT_NORM_IR_NORMATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"

#include <optional>

#include "normjit/Dialect/Norm/IR/NormEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "normjit/Dialect/Norm/IR/NormAttrs.h.inc"

namespace normjit::norm {

/// Shared memory the rows of a `row_storage = shared` GPU kernel may take
/// (bytes): the 48 KiB of static shared memory a block may declare, less
/// 1 KiB for the reduction slots.
constexpr int64_t kMaxSharedRowBytes = 47 * 1024;

/// The f32 elements of one shared-memory row of `cols` columns: padded to
/// whole vectors of `vectorWidth` so that each row starts aligned. (Columns
/// within a vector of INT64_MAX give INT64_MAX rounded down, not a wrapped
/// value: such a row never fits, which is all callers ask.)
constexpr int64_t getSharedRowLength(int64_t cols, int64_t vectorWidth) {
  if (cols > INT64_MAX - (vectorWidth - 1))
    return INT64_MAX / vectorWidth * vectorWidth;
  return (cols + vectorWidth - 1) / vectorWidth * vectorWidth;
}

/// Threads of a CUDA warp: the default threads per row of a GPU op.
constexpr int64_t kWarpSize = 32;

/// The most threads a multiprocessor holds (sm_80 and sm_90; 1536 on
/// sm_86 and sm_89): `min_blocks_per_sm` times the block size is at most
/// this.
constexpr int64_t kMaxThreadsPerSm = 2048;

/// The knobs a GPU op is lowered with: those of its #norm.config, absent
/// ones filled in as convert-norm-to-gpu does (a warp per row, one row per
/// block, scalar accesses, the row in registers, each thread a whole share
/// of the row). The verifier checks these, not only the knobs written out.
struct GpuKnobs {
  int64_t threadsPerRow;
  int64_t rowsPerBlock;
  int64_t elementsPerThread;
  int64_t vectorWidth;
  RowStorage storage;
  bool persistent;
  int64_t minBlocksPerSm; ///< 0: no .minnctapersm
};
GpuKnobs resolveGpuKnobs(ConfigAttr config, int64_t cols);

/// The knobs of a #norm.config as a plain struct, for C++ code (the tuner)
/// that fills in some knobs and leaves the rest to the default heuristic.
struct ConfigKnobs {
  Backend backend = Backend::CPU;
  std::optional<int64_t> vectorWidth;
  std::optional<bool> fuseResidual;
  std::optional<int64_t> accumulators;
  std::optional<int64_t> rowsPerTask;
  std::optional<int64_t> threads;
  std::optional<Algorithm> algorithm;
  std::optional<bool> streamingStores;
  std::optional<int64_t> prefetchRows;
  std::optional<int64_t> rowGroup;
  std::optional<int64_t> threadsPerRow;
  std::optional<int64_t> rowsPerBlock;
  std::optional<int64_t> elementsPerThread;
  std::optional<RowStorage> rowStorage;
  std::optional<bool> persistent;
  std::optional<int64_t> minBlocksPerSm;
};

/// Builds the #norm.config for `knobs`, or returns null after reporting why
/// through `emitError` when the combination is impossible.
ConfigAttr getConfigChecked(llvm::function_ref<mlir::InFlightDiagnostic()> emitError,
                            mlir::MLIRContext *context, const ConfigKnobs &knobs);

} // namespace normjit::norm

#endif // NORMJIT_DIALECT_NORM_IR_NORMATTRS_H
