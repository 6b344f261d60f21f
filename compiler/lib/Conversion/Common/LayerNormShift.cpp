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
  // med(a, b, c) = max(min(a, b), min(max(a, b), c)), with min and max as
  // a compare and a select: one vminss/vmaxss each on x86. Any finite
  // shift is a valid one, so NaN need not propagate (a NaN operand gives
  // the other one, or a NaN median, replaced by 0 below; a NaN row still
  // gives NaN statistics through its values). arith.minimumf/maximumf
  // propagate NaN at 21 instructions for the four, among them a setp of a
  // byte register that waited on the previous row's statistics (Zen does
  // not rename byte registers): LayerNorm of 8 f32 columns ran 2.4x slower.
  auto select = [&](arith::CmpFPredicate predicate, Value l, Value r) {
    return arith::SelectOp::create(b, arith::CmpFOp::create(b, predicate, l, r),
                                   l, r);
  };
  auto min = [&](Value l, Value r) {
    return select(arith::CmpFPredicate::OLT, l, r);
  };
  auto max = [&](Value l, Value r) {
    return select(arith::CmpFPredicate::OGT, l, r);
  };
  Value median = max(min(first, second), min(max(first, second), third));
  Value finite = arith::CmpFOp::create(
      b, arith::CmpFPredicate::OLT, math::AbsFOp::create(b, median),
      arith::ConstantOp::create(
          b, b.getF32FloatAttr(std::numeric_limits<float>::infinity())));
  return arith::SelectOp::create(
      b, finite, median, arith::ConstantOp::create(b, b.getF32FloatAttr(0)));
}
