//===- Passes.td - conversions out of the norm dialect -----*- tablegen -*-===//
//
// Part of normjit. Lowering of norm ops to loops and vector code.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_CONVERSION_PASSES_TD
#define NORMJIT_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertNormToVectorPass
    : Pass<"convert-norm-to-vector", "::mlir::func::FuncOp"> {
  let summary = "Lower norm ops to scf loops and vector code for the CPU";
  let description = [{
    Each norm op becomes a loop over its rows; each row is swept in vectors
    of `vector_width` f32 lanes with `accumulators` independent partial sums
    (a loop over groups of `accumulators` vectors, the leftover full
    vectors, then one masked tail vector, so any column count works).
    Element types are extended to f32 on load and rounded on store.

    LayerNorm with `algorithm = two_pass`: a sum pass (which also stores
    `sum`), a centred sum-of-squares pass and an output pass over the
    cache-resident row. With `algorithm = welford`: one pass of per-lane
    Welford updates merged with Chan's formula, then the output pass.
    RMSNorm: a sum-of-squares pass and an output pass. `streaming_stores`
    makes the full-vector stores of `y` non-temporal.

    Knobs absent from an op's `#norm.config` take the pass options. Ops
    with a GPU config are rejected.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector when the config does not say">,
    Option<"accumulators", "accumulators", "int64_t", /*default=*/"4",
           "independent partial sums when the config does not say">,
    Option<"welford", "welford", "bool", /*default=*/"false",
           "use one-pass Welford statistics when the config does not say">
  ];
}

#endif // NORMJIT_CONVERSION_PASSES_TD
