//===- NormDialect.td - the norm dialect -------------------*- tablegen -*-===//
//
// Part of normjit. The `norm` dialect declaration: normalization layers
// (LayerNorm, RMSNorm) and the residual add before them, on buffers.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_IR_NORMDIALECT_TD
#define NORMJIT_DIALECT_NORM_IR_NORMDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Norm_Dialect : Dialect {
  let name = "norm";
  let cppNamespace = "::normjit::norm";
  let summary = "Normalization layers (LayerNorm, RMSNorm) and residual adds";
  let description = [{
    The `norm` dialect describes the normalization layers of deep networks at
    the level a kernel compiler needs: one op per kernel, on row-major 2-D
    buffers with a dynamic row count, a static column count and a row stride.
    Ops are in destination-passing style: every operand is a buffer the
    kernel reads or writes, so a function of `norm` ops is exactly the
    signature of the kernels it becomes.

    Tuning decisions travel on the ops as a `#norm.config` attribute, so the
    tuner, the JIT and the ahead-of-time compiler share one pipeline and every
    knob is visible in `normjit-opt` output.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

class Norm_Op<string mnemonic, list<Trait> traits = []>
    : Op<Norm_Dialect, mnemonic, traits>;

class Norm_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Norm_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // NORMJIT_DIALECT_NORM_IR_NORMDIALECT_TD
