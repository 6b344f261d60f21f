//===- FuseResidualAdd.cpp - fold norm.add into the norm op ---------------===//
//
// Part of normjit. Implements norm-fuse-residual-add: a norm.add whose sum
// buffer is the x of the next norm op becomes that op's residual operand, so
// one kernel reads x and the residual once instead of a round trip through
// memory.
//
//===----------------------------------------------------------------------===//

#include "normjit/Dialect/Norm/IR/NormOps.h"
#include "normjit/Dialect/Norm/Transforms/Passes.h"

#include "BufferUtils.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace normjit::norm {
#define GEN_PASS_DEF_NORMFUSERESIDUALADDPASS
#include "normjit/Dialect/Norm/Transforms/Passes.h.inc"
} // namespace normjit::norm

using namespace mlir;
using namespace normjit::norm;

namespace {

/// The norm.add that last wrote `buffer` before `op`, provided nothing
/// between them has memory effects (so the write can move down to `op`).
AddOp findProducingAdd(Operation *op, Value buffer) {
  for (Operation *prev = op->getPrevNode(); prev; prev = prev->getPrevNode()) {
    if (auto add = dyn_cast<AddOp>(prev))
      if (add.getSum() == buffer)
        return add;
    if (!isMemoryEffectFree(prev))
      return {};
  }
  return {};
}

/// True if the add's sum must still be stored after fusion: somebody other
/// than the add, the norm op and its deallocation can observe it, or it
/// rounds `s` to a narrower type that the norm op must see.
bool mustKeepSum(Value sum, AddOp add, Operation *norm) {
  Operation *alloc = sum.getDefiningOp();
  if (!alloc || !isa<memref::AllocOp, memref::AllocaOp>(alloc))
    return true;
  if (!cast<MemRefType>(sum.getType()).getElementType().isF32())
    return true;
  for (Operation *user : sum.getUsers())
    if (user != add && user != norm && !isa<memref::DeallocOp>(user))
      return true;
  return false;
}

/// Erases an allocation nobody but its deallocations uses any more, and the
/// pure size computations that fed it alone.
void eraseDeadAllocation(Value buffer) {
  Operation *alloc = buffer.getDefiningOp();
  if (!alloc || !isa<memref::AllocOp, memref::AllocaOp>(alloc))
    return;
  for (Operation *user : buffer.getUsers())
    if (!isa<memref::DeallocOp>(user))
      return;
  for (Operation *user : llvm::make_early_inc_range(buffer.getUsers()))
    user->erase();
  // Erase the size computation too, as far as nothing else uses it.
  SmallVector<Operation *> worklist = {alloc};
  while (!worklist.empty()) {
    Operation *dead = worklist.pop_back_val();
    for (Value operand : dead->getOperands())
      if (Operation *def = operand.getDefiningOp();
          def && def->hasOneUse() && isPure(def))
        worklist.push_back(def);
    dead->erase();
  }
}

template <typename NormOpT>
bool tryFuse(NormOpT op) {
  if (op.getResidual() || op.getSum())
    return false;
  // A config that asks for the split form keeps it.
  if (ConfigAttr config = op.getConfigAttr())
    if (std::optional<bool> fuse = config.getFuseResidual(); fuse && !*fuse)
      return false;
  Value s = op.getX();
  AddOp add = findProducingAdd(op, s);
  if (!add)
    return false;
  Value a = add.getLhs(), b = add.getRhs();
  bool keepSum = mustKeepSum(s, add, op);

  // The fused op reads a, b, gamma and beta before it writes s, y, mean and
  // rstd. Exact aliasing keeps that meaning; partial overlap does not.
  SmallVector<Value> writes = {op.getY(), op.getMean(), op.getRstd()};
  SmallVector<Value> reads = {a, b, op.getGamma(), op.getBeta()};
  if (keepSum) {
    for (Value w : writes)
      if (w && (w == s || getUnderlyingBuffer(w) == getUnderlyingBuffer(s)))
        return false;
    for (Value r : ArrayRef<Value>(reads).drop_front(2))
      if (r && getUnderlyingBuffer(r) == getUnderlyingBuffer(s))
        return false;
    writes.push_back(s);
  }
  for (Value w : writes)
    for (Value r : reads)
      if (mayPartiallyAlias(w, r))
        return false;

  OpBuilder builder(op);
  Location loc = builder.getFusedLoc({add.getLoc(), op.getLoc()});
  auto fused = NormOpT::create(builder, loc, a, b, op.getGamma(),
                               op.getBeta(), op.getY(),
                               keepSum ? s : Value(), op.getMean(),
                               op.getRstd(), op.getEpsilonAttr(),
                               op.getConfigAttr());
  for (NamedAttribute attr : op->getDiscardableAttrs())
    fused->setAttr(attr.getName(), attr.getValue());
  // The fused op must be one the verifier (and so the lowering) accepts:
  // it reads the add's operands, whose types may not fit the config (a GPU
  // vector_width of 8 over f32 instead of bf16), or whose shapes the add
  // only assumed. Otherwise the add and the op stay as they were.
  if (!verifiesQuietly(fused)) {
    fused.erase();
    return false;
  }
  op.erase();
  add.erase();
  if (!keepSum)
    eraseDeadAllocation(s);
  return true;
}

struct NormFuseResidualAddPass
    : normjit::norm::impl::NormFuseResidualAddPassBase<
          NormFuseResidualAddPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> candidates;
    getOperation().walk([&](Operation *op) {
      if (isa<LayerNormOp, RMSNormOp>(op))
        candidates.push_back(op);
    });
    for (Operation *op : candidates) {
      bool fused = false;
      if (auto layerNorm = dyn_cast<LayerNormOp>(op))
        fused = tryFuse(layerNorm);
      else if (auto rmsNorm = dyn_cast<RMSNormOp>(op))
        fused = tryFuse(rmsNorm);
      if (fused)
        ++numFused;
    }
  }
};

} // namespace
