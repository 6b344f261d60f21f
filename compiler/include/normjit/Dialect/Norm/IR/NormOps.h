//===- NormOps.h - ops of the norm dialect ----------------------*- C++ -*-===//
//
// Part of normjit. Declares norm.layer_norm, norm.rms_norm and norm.add.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_IR_NORMOPS_H
#define NORMJIT_DIALECT_NORM_IR_NORMOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "normjit/Dialect/Norm/IR/NormAttrs.h"
#include "normjit/Dialect/Norm/IR/NormDialect.h"

#define GET_OP_CLASSES
#include "normjit/Dialect/Norm/IR/NormOps.h.inc"

#endif // NORMJIT_DIALECT_NORM_IR_NORMOPS_H
