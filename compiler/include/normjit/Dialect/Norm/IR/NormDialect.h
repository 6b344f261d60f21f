//===- NormDialect.h - the norm dialect -------------------------*- C++ -*-===//
//
// Part of normjit. Declares the `norm` dialect class.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_IR_NORMDIALECT_H
#define NORMJIT_DIALECT_NORM_IR_NORMDIALECT_H

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Dialect.h"

#include "normjit/Dialect/Norm/IR/NormDialect.h.inc"

#endif // NORMJIT_DIALECT_NORM_IR_NORMDIALECT_H
