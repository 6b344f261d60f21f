//===- Passes.td - passes of the norm dialect --------------*- tablegen -*-===//
//
// Part of normjit. Residual-add fusion and its inverse.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_TRANSFORMS_PASSES_TD
#define NORMJIT_DIALECT_NORM_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def NormFuseResidualAddPass
    : Pass<"norm-fuse-residual-add", "::mlir::func::FuncOp"> {
  let summary = "Fold a norm.add that feeds a norm op into the op's residual";
  let description = [{
    Rewrites

    ```mlir
    norm.add %a, %b -> %s : ...
    norm.rms_norm x(%s : ...) ... -> y(%y : ...) eps = ...
    ```

    into one kernel

    ```mlir
    norm.rms_norm x(%a : ...) residual(%b : ...) ... -> y(%y : ...)
        sum(%s : ...) eps = ...
    ```

    The `sum` output is kept whenever the add's buffer can be observed
    afterwards: it is a function argument, it is read by a later op, or its
    element type is not f32 (the norm must see `s` rounded as the add stored
    it). It is dropped, with its `memref.alloc`/`memref.dealloc`, only when
    it is a local f32 temporary that nothing else reads.

    Fusing moves the add's write to the position of the norm op, so it is
    done only when no op between the two has memory effects (or unknown
    ones), the norm op has no residual already, both are in the same block,
    and the norm op does not write `y` into the add's buffer while that
    buffer must be kept. Anything else is left alone.
  }];
  let dependentDialects = [
    "::normjit::norm::NormDialect",
    "::mlir::memref::MemRefDialect"
  ];
  let statistics = [
    Statistic<"numFused", "num-fused", "Number of residual adds fused">
  ];
}

def NormSplitResidualAddPass
    : Pass<"norm-split-residual-add", "::mlir::func::FuncOp"> {
  let summary = "Split a fused residual norm op into norm.add and the norm";
  let description = [{
    The inverse of `norm-fuse-residual-add`, so the tuner can time both
    forms. A norm op with a `residual` becomes a `norm.add` followed by the
    norm op on the sum. The add writes into the op's `sum` output when it has
    one; otherwise into a new f32 temporary (`memref.alloc` with the rows of
    `x`, freed after the norm op), which keeps `s` unrounded exactly as the
    fused op computes it. An op whose config says `fuse_residual = true`,
    or is a GPU config (a GPU kernel always fuses), is left fused.
  }];
  let dependentDialects = [
    "::normjit::norm::NormDialect",
    "::mlir::memref::MemRefDialect"
  ];
  let statistics = [
    Statistic<"numSplit", "num-split", "Number of fused norm ops split">
  ];
}

#endif // NORMJIT_DIALECT_NORM_TRANSFORMS_PASSES_TD
