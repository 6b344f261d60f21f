//===- SplitResidualAdd.cpp - split the residual add out of a norm op -----===//
//
// Part of normjit. Implements norm-split-residual-add, the inverse of
// norm-fuse-residual-add: the add-then-norm form the tuner times against the
// fused kernel.
//
//===----------------------------------------------------------------------===//

#include "normjit/Dialect/Norm/IR/NormOps.h"
#include "normjit/Dialect/Norm/Transforms/Passes.h"

#include "BufferUtils.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"

namespace normjit::norm {
#define GEN_PASS_DEF_NORMSPLITRESIDUALADDPASS
#include "normjit/Dialect/Norm/Transforms/Passes.h.inc"
} // namespace normjit::norm

using namespace mlir;
using namespace normjit::norm;

namespace {

template <typename NormOpT>
bool trySplit(NormOpT op) {
  Value residual = op.getResidual();
  if (!residual)
    return false;
  // A GPU kernel always fuses the residual (its config has no other form),
  // and a config that says fuse_residual = true keeps it fused (as the fuse
  // pass leaves one that says false split).
  if (ConfigAttr config = op.getConfigAttr();
      config && (config.isGPU() || config.getFuseResidual().value_or(false)))
    return false;
  OpBuilder builder(op);
  Location loc = op.getLoc();
  Value x = op.getX();
  Value sum = op.getSum();
  Value temp;
  Operation *dim = nullptr;
  if (!sum) {
    // No sum output: keep s in f32, as the fused op does.
    auto xType = cast<MemRefType>(x.getType());
    auto tempType =
        MemRefType::get(xType.getShape(), builder.getF32Type());
    SmallVector<Value> dynamicSizes;
    if (xType.isDynamicDim(0)) {
      auto size = memref::DimOp::create(builder, loc, x, 0);
      dim = size;
      dynamicSizes.push_back(size);
    }
    temp = memref::AllocOp::create(builder, loc, tempType, dynamicSizes);
    sum = temp;
  }
  auto add = AddOp::create(builder, loc, x, residual, sum);
  auto norm = NormOpT::create(builder, loc, sum, Value(), op.getGamma(),
                              op.getBeta(), op.getY(), Value(), op.getMean(),
                              op.getRstd(), op.getEpsilonAttr(),
                              op.getConfigAttr());
  for (NamedAttribute attr : op->getDiscardableAttrs())
    norm->setAttr(attr.getName(), attr.getValue());
  // The split ops must verify as the fused one did; otherwise it stays.
  if (!verifiesQuietly(add) || !verifiesQuietly(norm)) {
    norm.erase();
    add.erase();
    if (temp)
      temp.getDefiningOp()->erase();
    if (dim)
      dim->erase();
    return false;
  }
  if (temp) {
    builder.setInsertionPointAfter(norm);
    memref::DeallocOp::create(builder, loc, temp);
  }
  op.erase();
  return true;
}

struct NormSplitResidualAddPass
    : normjit::norm::impl::NormSplitResidualAddPassBase<
          NormSplitResidualAddPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> candidates;
    getOperation().walk([&](Operation *op) {
      if (isa<LayerNormOp, RMSNormOp>(op))
        candidates.push_back(op);
    });
    for (Operation *op : candidates) {
      bool split = false;
      if (auto layerNorm = dyn_cast<LayerNormOp>(op))
        split = trySplit(layerNorm);
      else if (auto rmsNorm = dyn_cast<RMSNormOp>(op))
        split = trySplit(rmsNorm);
      if (split)
        ++numSplit;
    }
  }
};

} // namespace
