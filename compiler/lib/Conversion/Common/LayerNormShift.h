//===- LayerNormShift.h - the shift of LayerNorm's statistics ---*- C++ -*-===//
//
// Part of normjit. What convert-norm-to-vector and convert-norm-to-gpu share
// to compute LayerNorm's statistics on d = s - s0.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_COMPILER_LIB_CONVERSION_COMMON_LAYERNORMSHIFT_H
#define NORMJIT_COMPILER_LIB_CONVERSION_COMMON_LAYERNORMSHIFT_H

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace normjit {

/// The f32 shift s0 of row `row`: the median of its first three values of
/// s = x (+ residual), rounded to `sumElement` when the sum is stored in a
/// narrower type (the row normalized is the sum as stored, so a constant
/// row gets d = 0), and 0 when not finite (NaN and Inf then propagate as
/// without a shift). When the mean dwarfs the spread, d is exact and small;
/// the median keeps one outlier (a spike channel) from being the shift,
/// which would make every d large. The first three elements, not ones from
/// the middle and end of the row: those cost 15% on memory-bound CPU shapes
/// (the first sweep waited for their cache lines).
mlir::Value buildLayerNormShift(mlir::ImplicitLocOpBuilder &b, mlir::Value x,
                                mlir::Value residual, mlir::Type sumElement,
                                mlir::Value row, int64_t cols);

} // namespace normjit

#endif // NORMJIT_COMPILER_LIB_CONVERSION_COMMON_LAYERNORMSHIFT_H
