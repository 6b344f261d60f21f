//===- Passes.h - passes of the norm dialect --------------------*- C++ -*-===//
//
// Part of normjit. Declares the norm dialect's passes and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_TRANSFORMS_PASSES_H
#define NORMJIT_DIALECT_NORM_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Pass/Pass.h"

#include "normjit/Dialect/Norm/IR/NormDialect.h"

namespace normjit::norm {

#define GEN_PASS_DECL
#include "normjit/Dialect/Norm/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "normjit/Dialect/Norm/Transforms/Passes.h.inc"

} // namespace normjit::norm

#endif // NORMJIT_DIALECT_NORM_TRANSFORMS_PASSES_H
