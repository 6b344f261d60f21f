//===- BufferUtils.h - buffer helpers for the norm passes -------*- C++ -*-===//
//
// Part of normjit. Small, private helpers the residual-add passes share.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_LIB_DIALECT_NORM_TRANSFORMS_BUFFERUTILS_H
#define NORMJIT_LIB_DIALECT_NORM_TRANSFORMS_BUFFERUTILS_H

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Value.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace normjit::norm {

/// The buffer a value is a view of: follows view-like ops (subview, cast,
/// reinterpret_cast, ...) to their source. Distinct function arguments are
/// taken not to alias, as kernel arguments are (`__restrict__`).
inline mlir::Value getUnderlyingBuffer(mlir::Value value) {
  while (auto view = value.getDefiningOp<mlir::ViewLikeOpInterface>()) {
    if (view.getViewSource() == value)
      break;
    value = view.getViewSource();
  }
  return value;
}

/// True if `a` and `b` may overlap without being the very same buffer, the
/// case an op that reads before it writes cannot honour.
inline bool mayPartiallyAlias(mlir::Value a, mlir::Value b) {
  return a && b && a != b && getUnderlyingBuffer(a) == getUnderlyingBuffer(b);
}

/// Whether `op` verifies, its diagnostics swallowed: a rewrite checks the
/// ops it built before it commits to them.
inline bool verifiesQuietly(mlir::Operation *op) {
  mlir::ScopedDiagnosticHandler quiet(
      op->getContext(), [](mlir::Diagnostic &) { return mlir::success(); });
  return mlir::succeeded(mlir::verify(op));
}

} // namespace normjit::norm

#endif // NORMJIT_LIB_DIALECT_NORM_TRANSFORMS_BUFFERUTILS_H
