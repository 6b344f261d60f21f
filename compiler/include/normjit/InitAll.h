//===- InitAll.h - register what normjit uses -------------------*- C++ -*-===//
//
// Part of normjit. Registers exactly the dialects and passes the project
// uses, for normjit-opt and for tests (registering everything costs ~26 ms
// and hides which dialects a pipeline really needs).
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_INITALL_H
#define NORMJIT_INITALL_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

#include "normjit/Conversion/Passes.h"
#include "normjit/Dialect/Norm/IR/NormDialect.h"
#include "normjit/Dialect/Norm/Transforms/Passes.h"

namespace normjit {

/// Adds the dialects normjit IR is written in to `registry`, and those its
/// lowerings produce (convert-norm-to-vector's and convert-norm-to-gpu's
/// dependent dialects), so that lowered IR reads back in.
inline void registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<norm::NormDialect, mlir::arith::ArithDialect,
                  mlir::cf::ControlFlowDialect, mlir::func::FuncDialect,
                  mlir::gpu::GPUDialect, mlir::memref::MemRefDialect,
                  mlir::math::MathDialect, mlir::scf::SCFDialect,
                  mlir::vector::VectorDialect,
                  mlir::x86vector::X86VectorDialect,
                  mlir::LLVM::LLVMDialect>();
}

/// Registers normjit's passes and the generic cleanups used around them.
inline void registerAllPasses() {
  norm::registerNormTransformsPasses();
  registerNormJITConversionPasses();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
}

} // namespace normjit

#endif // NORMJIT_INITALL_H
