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

/// Static shared memory one GPU block may declare (bytes); the GPU lowering
/// keeps `row_storage = shared` rows within it.
constexpr int64_t kMaxStaticSharedBytes = 48 * 1024;

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
  std::optional<int64_t> threadsPerRow;
  std::optional<int64_t> rowsPerBlock;
  std::optional<int64_t> elementsPerThread;
  std::optional<RowStorage> rowStorage;
  std::optional<bool> persistent;
};

/// Builds the #norm.config for `knobs`, or returns null after reporting why
/// through `emitError` when the combination is impossible.
ConfigAttr getConfigChecked(llvm::function_ref<mlir::InFlightDiagnostic()> emitError,
                            mlir::MLIRContext *context, const ConfigKnobs &knobs);

} // namespace normjit::norm

#endif // NORMJIT_DIALECT_NORM_IR_NORMATTRS_H
