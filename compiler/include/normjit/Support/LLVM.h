//===- LLVM.h - names normjit imports from LLVM and MLIR --------*- C++ -*-===//
//
// Part of normjit. Brings the common MLIR/LLVM names into the normjit
// namespace so that project code does not spell out `mlir::` everywhere.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_SUPPORT_LLVM_H
#define NORMJIT_SUPPORT_LLVM_H

#include "mlir/Support/LLVM.h"
#include "mlir/Support/LogicalResult.h"

namespace normjit {
using mlir::failed;
using mlir::failure;
using mlir::FailureOr;
using mlir::LogicalResult;
using mlir::succeeded;
using mlir::success;
using llvm::cast;
using llvm::dyn_cast;
using llvm::isa;
using llvm::SmallVector;
using llvm::StringRef;
} // namespace normjit

#endif // NORMJIT_SUPPORT_LLVM_H
