//===- LayerNormShift.cpp - the shift of LayerNorm's statistics -----------===//
//
// Part of normjit. Implements buildLayerNormShift.
//
//===----------------------------------------------------------------------===//

#include "LayerNormShift.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include <algorithm>
#include <limits>

using namespace mlir;

Value normjit::buildLayerNormShift(ImplicitLocOpBuilder &b, Value x,
                                   Value residual, Type sumElement, Value row,
                                   int64_t cols) {
  Type f32 = b.getF32Type();
  auto load = [&](Value buffer, int64_t col) -> Value {
    Value column = arith::ConstantIndexOp::create(b, col);
    Value value = memref::LoadOp::create(b, buffer, ValueRange{row, column});
    return value.getType().isF32() ? value
                                   : arith::ExtFOp::create(b, f32, value);
  };
  auto sampleAt = [&](int64_t col) -> Value {
    Value s = load(x, col);
    if (!residual)
      return s;
    s = arith::AddFOp::create(b, s, load(residual, col));
    if (sumElement && !sumElement.isF32())
      s = arith::ExtFOp::create(
          b, f32, arith::TruncFOp::create(b, sumElement, s).getResult());
    return s;
  };
  Value first = sampleAt(0), second = sampleAt(std::min<int64_t>(1, cols - 1)),
        third = sampleAt(std::min<int64_t>(2, cols - 1));
  // med(a, b, c) = max(min(a, b), min(max(a, b), c)); NaN propagates.
  Value median = arith::MaximumFOp::create(
      b, arith::MinimumFOp::create(b, first, second),
      arith::MinimumFOp::create(b, arith::MaximumFOp::create(b, first, second),
                                third));
  Value finite = arith::CmpFOp::create(
      b, arith::CmpFPredicate::OLT, math::AbsFOp::create(b, median),
      arith::ConstantOp::create(
          b, b.getF32FloatAttr(std::numeric_limits<float>::infinity())));
  return arith::SelectOp::create(
      b, finite, median, arith::ConstantOp::create(b, b.getF32FloatAttr(0)));
}
