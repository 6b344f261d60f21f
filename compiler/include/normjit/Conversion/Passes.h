//===- Passes.h - conversions out of the norm dialect -----------*- C++ -*-===//
//
// Part of normjit. Declares the conversion passes and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_CONVERSION_PASSES_H
#define NORMJIT_CONVERSION_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/Pass/Pass.h"

#include "normjit/Conversion/NormToVector/NormToVector.h"

namespace normjit {

#define GEN_PASS_DECL
#include "normjit/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "normjit/Conversion/Passes.h.inc"

} // namespace normjit

#endif // NORMJIT_CONVERSION_PASSES_H
