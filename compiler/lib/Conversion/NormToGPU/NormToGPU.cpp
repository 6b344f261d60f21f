//===- NormToGPU.cpp - lower norm ops inside gpu.func to SIMT code --------===//
//
// Part of normjit. Implements convert-norm-to-gpu: a norm op with a GPU
// config inside a gpu.func becomes the kernel's body, driven by the config:
// threads per row, rows per block, vector accesses, where the row stays
// between passes, and a persistent grid. All arithmetic in f32.
//
//===----------------------------------------------------------------------===//

#include "../Common/LayerNormShift.h"
#include "normjit/Conversion/Passes.h"
#include "normjit/Dialect/Norm/IR/NormOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"

#include "llvm/Support/MathExtras.h"

#include <functional>
#include <limits>
#include <numeric>

namespace normjit {
#define GEN_PASS_DEF_CONVERTNORMTOGPUPASS
#include "normjit/Conversion/Passes.h.inc"
} // namespace normjit

using namespace mlir;
using namespace normjit;
using namespace normjit::norm;

namespace {

/// Full steps per block of a thread's blocked sums (see RowEmitter::sweep).
constexpr int64_t kBlock = 16;

/// Static shared memory a thread block may have (CUDA's limit without an
/// opt-in to more).
constexpr int64_t kMaxStaticSharedBytes = 48 * 1024;

/// Emits the SIMT code of one norm op: vector accesses of a thread's
/// columns, sweeps over them and reductions over a row's threads.
class GpuEmitter {
public:
  using StepFn = std::function<SmallVector<Value>(Value col, bool guarded,
                                                  ValueRange state)>;

  GpuEmitter(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func, int64_t cols,
             const GpuKnobs &knobs)
      : b(b), func(func), cols(cols), k(knobs), f32(b.getF32Type()),
        vecType(VectorType::get({knobs.vectorWidth}, f32)) {}

  Value index(int64_t value) {
    return arith::ConstantIndexOp::create(b, value);
  }
  Value f32Const(double value) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(value));
  }
  Value zeroVector() {
    return arith::ConstantOp::create(b,
                                     cast<TypedAttr>(b.getZeroAttr(vecType)));
  }
  Value splat(Value scalar) {
    return vector::BroadcastOp::create(b, vecType, scalar);
  }
  Value add(Value l, Value r) {
    return arith::AddFOp::create(b, l, r, arith::FastMathFlags::contract);
  }
  Value sub(Value l, Value r) {
    return arith::SubFOp::create(b, l, r, arith::FastMathFlags::contract);
  }
  Value mul(Value l, Value r) {
    return arith::MulFOp::create(b, l, r, arith::FastMathFlags::contract);
  }
  Value addIndex(Value l, int64_t r) {
    return r == 0 ? l : arith::AddIOp::create(b, l, index(r)).getResult();
  }
  Value ult(Value l, Value r) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ult, l, r);
  }
  Value both(Value l, Value r) {
    if (!l)
      return r;
    if (!r)
      return l;
    return arith::AndIOp::create(b, l, r);
  }
  Value reduce(Value vector) {
    return vector::ReductionOp::create(b, vector::CombiningKind::ADD, vector);
  }

  /// Sets up the thread's place: its lane in the row and the row of the
  /// block it works on.
  void setUpThread() {
    Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    Value tpr = index(k.threadsPerRow);
    lane = arith::RemUIOp::create(b, tid, tpr);
    rowInBlock = arith::DivUIOp::create(b, tid, tpr);
    laneOffset = arith::MulIOp::create(b, lane, index(k.vectorWidth));
  }

  /// The lanes of the vector at `col` inside the row (null when all are).
  Value laneMask(Value col, bool guarded) {
    if (!guarded)
      return Value();
    // lane j is in when j < cols - col (vector.create_mask has no NVVM
    // lowering: compare with the lane numbers instead).
    Value left = arith::IndexCastOp::create(
        b, b.getI32Type(), arith::SubIOp::create(b, index(cols), col));
    auto lanesType = VectorType::get({k.vectorWidth}, b.getI32Type());
    SmallVector<int32_t> laneNumbers;
    for (int64_t j = 0; j < k.vectorWidth; ++j)
      laneNumbers.push_back(static_cast<int32_t>(j));
    Value lanes = arith::ConstantOp::create(
        b, DenseElementsAttr::get(lanesType, ArrayRef<int32_t>(laneNumbers)));
    return arith::CmpIOp::create(
        b, arith::CmpIPredicate::slt, lanes,
        vector::BroadcastOp::create(b, lanesType, left));
  }
  Value maskOff(Value vector, Value mask) {
    return mask ? arith::SelectOp::create(b, mask, vector, zeroVector())
                      .getResult()
                : vector;
  }

  int64_t vectorBytes(Value buffer) {
    auto type = cast<MemRefType>(buffer.getType());
    return k.vectorWidth * type.getElementTypeBitWidth() / 8;
  }

  /// The alignment `buffer`'s vectors may claim: a whole vector's bytes
  /// (the base pointer, and offsets and row strides not known here, are
  /// the caller's to keep aligned: the JIT checks them at launch and takes
  /// a scalar twin otherwise), less where the type's static offset or row
  /// stride says they are not.
  uint64_t vectorAlignment(Value buffer) {
    auto type = cast<MemRefType>(buffer.getType());
    uint64_t elementBytes = type.getElementTypeBitWidth() / 8;
    uint64_t alignment = vectorBytes(buffer);
    SmallVector<int64_t> strides;
    int64_t offset = 0;
    if (failed(type.getStridesAndOffset(strides, offset)))
      return elementBytes;
    // (Products modulo 2^64 keep the low bits, all a power of two needs.)
    auto meet = [&](int64_t elements) {
      if (!ShapedType::isDynamic(elements))
        alignment =
            std::gcd(alignment, static_cast<uint64_t>(elements) * elementBytes);
    };
    meet(offset);
    if (strides.size() == 2)
      meet(strides[0]);
    return alignment;
  }

  /// Loads the thread's vector at `col` (of row `row`, or of a 1-D buffer
  /// when `row` is null) widened to f32. A guarded vector may reach past
  /// the row: its lanes beyond the row read 0, and no address outside the
  /// row is touched.
  Value load(Value buffer, Value row, Value col, bool guarded) {
    auto type = cast<MemRefType>(buffer.getType());
    Type element = type.getElementType();
    auto rawType = VectorType::get({k.vectorWidth}, element);
    auto indices = [&](Value c) {
      return row ? SmallVector<Value>{row, c} : SmallVector<Value>{c};
    };
    auto widen = [&](Value raw) -> Value {
      return element.isF32() ? raw : arith::ExtFOp::create(b, vecType, raw);
    };
    auto vectorLoad = [&](Value c) {
      return widen(vector::LoadOp::create(
          b, rawType, buffer, indices(c), /*nontemporal=*/false,
          llvm::MaybeAlign(vectorAlignment(buffer))));
    };
    if (!guarded)
      return vectorLoad(col);
    if (cols % k.vectorWidth == 0) {
      // Whole vectors are in or out: load a clamped vector, keep it if in.
      Value clamped =
          arith::MinUIOp::create(b, col, index(cols - k.vectorWidth));
      Value in = ult(col, index(cols));
      return arith::SelectOp::create(b, in, vectorLoad(clamped), zeroVector());
    }
    // The row's last vector is partial: element by element.
    SmallVector<Value> elements;
    for (int64_t j = 0; j < k.vectorWidth; ++j) {
      Value c = addIndex(col, j);
      Value clamped = arith::MinUIOp::create(b, c, index(cols - 1));
      Value value = memref::LoadOp::create(b, buffer, indices(clamped));
      if (!element.isF32())
        value = arith::ExtFOp::create(b, f32, value);
      elements.push_back(
          arith::SelectOp::create(b, ult(c, index(cols)), value, f32Const(0)));
    }
    return vector::FromElementsOp::create(b, vecType, elements);
  }

  /// Rounds `value` to `buffer`'s element type and stores the lanes inside
  /// the row, when `cond` (if any) holds.
  void store(Value buffer, Value row, Value col, Value value, Value cond,
             bool guarded) {
    auto type = cast<MemRefType>(buffer.getType());
    Type element = type.getElementType();
    auto rawType = VectorType::get({k.vectorWidth}, element);
    if (!element.isF32())
      value = arith::TruncFOp::create(b, rawType, value);
    auto indices = [&](Value c) {
      return row ? SmallVector<Value>{row, c} : SmallVector<Value>{c};
    };
    auto vectorStore = [&] {
      vector::StoreOp::create(b, value, buffer, indices(col),
                              /*nontemporal=*/false,
                              llvm::MaybeAlign(vectorAlignment(buffer)));
    };
    auto when = [&](Value condition, function_ref<void()> body) {
      if (!condition) {
        body();
        return;
      }
      auto ifOp = scf::IfOp::create(b, condition, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      body();
    };
    if (!guarded) {
      when(cond, vectorStore);
      return;
    }
    if (cols % k.vectorWidth == 0) {
      when(both(cond, ult(col, index(cols))), vectorStore);
      return;
    }
    Value full =
        arith::CmpIOp::create(b, arith::CmpIPredicate::ule,
                              addIndex(col, k.vectorWidth), index(cols));
    auto ifOp = scf::IfOp::create(b, both(cond, full), /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    vectorStore();
    b.setInsertionPointToStart(ifOp.elseBlock());
    for (int64_t j = 0; j < k.vectorWidth; ++j) {
      Value c = addIndex(col, j);
      when(both(cond, ult(c, index(cols))), [&] {
        Value lane = vector::ExtractOp::create(b, value, ArrayRef<int64_t>{j});
        memref::StoreOp::create(b, lane, buffer, indices(c));
      });
    }
  }

  /// The columns of the thread's `chunk`-th vector when the row is held in
  /// registers, and whether it may reach past the row.
  int64_t numRegisterChunks() const {
    return std::min(
        k.elementsPerThread / k.vectorWidth,
        llvm::divideCeilSigned(cols, k.threadsPerRow * k.vectorWidth));
  }
  std::pair<Value, bool> registerChunk(int64_t chunk) {
    int64_t start = chunk * k.threadsPerRow * k.vectorWidth;
    Value col = addIndex(laneOffset, start);
    return {col, start + k.threadsPerRow * k.vectorWidth > cols};
  }

  /// Moves the builder to the end of `loop`'s body, for a body that ends in
  /// its own yield (the builder may have added an empty one: it goes).
  void enterBody(scf::ForOp loop) {
    if (!loop.getBody()->empty())
      loop.getBody()->getTerminator()->erase();
    b.setInsertionPointToEnd(loop.getBody());
  }

  /// Runs `step` over the thread's vectors of a row: a loop of full steps
  /// of `elements_per_thread` elements per thread, then the rest unrolled.
  /// A state is a set of sums: when a thread takes more than kBlock full
  /// steps (few threads on a long row), they are summed kBlock steps at a
  /// time from zero and each block added to the total, which bounds the
  /// rounding error by O(kBlock + steps / kBlock) instead of O(steps).
  SmallVector<Value> sweep(ValueRange init, const StepFn &step) {
    int64_t vectorsPerStep = k.elementsPerThread / k.vectorWidth;
    int64_t stride = k.threadsPerRow * k.vectorWidth;
    int64_t perStep = stride * vectorsPerStep;
    int64_t fullSteps = cols / perStep;
    SmallVector<Value> state(init.begin(), init.end());
    // A loop of full steps from `begin` to `end` (indices), from `from`.
    auto steps = [&](Value begin, Value end,
                     ValueRange from) -> SmallVector<Value> {
      auto loop = scf::ForOp::create(b, begin, end, index(perStep), from);
      OpBuilder::InsertionGuard guard(b);
      enterBody(loop);
      Value base = arith::AddIOp::create(b, loop.getInductionVar(), laneOffset);
      SmallVector<Value> inner(loop.getRegionIterArgs().begin(),
                               loop.getRegionIterArgs().end());
      for (int64_t u = 0; u < vectorsPerStep; ++u)
        inner = step(addIndex(base, u * stride), false, inner);
      scf::YieldOp::create(b, inner);
      return SmallVector<Value>(loop.getResults().begin(),
                                loop.getResults().end());
    };
    if (fullSteps > kBlock && !state.empty()) {
      int64_t blockElements = kBlock * perStep;
      auto blocks = scf::ForOp::create(b, index(0), index(fullSteps * perStep),
                                       index(blockElements), state);
      OpBuilder::InsertionGuard guard(b);
      enterBody(blocks);
      Value begin = blocks.getInductionVar();
      Value end = arith::MinSIOp::create(b, addIndex(begin, blockElements),
                                         index(fullSteps * perStep));
      SmallVector<Value> zeros;
      for (Value value : state)
        zeros.push_back(arith::ConstantOp::create(
            b, cast<TypedAttr>(b.getZeroAttr(value.getType()))));
      SmallVector<Value> block = steps(begin, end, zeros);
      SmallVector<Value> totals;
      for (auto [total, part] :
           llvm::zip_equal(blocks.getRegionIterArgs(), block))
        totals.push_back(add(total, part));
      scf::YieldOp::create(b, totals);
      state.assign(blocks.getResults().begin(), blocks.getResults().end());
    } else if (fullSteps > 0) {
      state = steps(index(0), index(fullSteps * perStep), state);
    }
    for (int64_t u = 0; u < vectorsPerStep; ++u) {
      int64_t start = fullSteps * perStep + u * stride;
      if (start >= cols)
        break;
      state = step(addIndex(laneOffset, start), start + stride > cols, state);
    }
    return state;
  }

  /// A new workgroup (shared memory) buffer of `type` on the kernel,
  /// aligned for 128-bit accesses.
  Value addSharedBuffer(MemRefType type) {
    BlockArgument buffer = func.addWorkgroupAttribution(type, b.getLoc());
    func.setWorkgroupAttributionAttr(func.getNumWorkgroupAttributions() - 1,
                                     "llvm.align", b.getI64IntegerAttr(16));
    return buffer;
  }

  /// Sums each of `values` over the threads of the row: xor shuffles in a
  /// warp, then, for rows of several warps, one slot per warp in shared
  /// memory and a barrier. Every thread of the row gets the same sums.
  SmallVector<Value> rowReduce(SmallVector<Value> values) {
    int64_t width = std::min(k.threadsPerRow, kWarpSize);
    // The shuffle's lanes: the warp, or the whole block when it is smaller
    // than a warp (lanes that do not exist must not take part).
    int64_t lanes = std::min(k.threadsPerRow * k.rowsPerBlock, kWarpSize);
    for (int64_t offset = width / 2; offset >= 1; offset /= 2)
      for (Value &value : values) {
        auto shuffle = gpu::ShuffleOp::create(
            b, value, static_cast<int32_t>(offset), static_cast<int32_t>(lanes),
            gpu::ShuffleMode::XOR);
        value = add(value, shuffle.getShuffleResult());
      }
    if (k.threadsPerRow <= kWarpSize)
      return values;
    int64_t warps = k.threadsPerRow / kWarpSize;
    auto slotsType = MemRefType::get(
        {k.rowsPerBlock, warps}, f32, MemRefLayoutAttrInterface(),
        gpu::AddressSpaceAttr::get(b.getContext(),
                                   gpu::AddressSpace::Workgroup));
    Value warpInRow = arith::DivUIOp::create(b, lane, index(kWarpSize));
    Value first = arith::CmpIOp::create(
        b, arith::CmpIPredicate::eq,
        arith::RemUIOp::create(b, lane, index(kWarpSize)), index(0));
    SmallVector<Value> slots;
    for (size_t i = 0; i < values.size(); ++i)
      slots.push_back(addSharedBuffer(slotsType));
    {
      auto ifOp = scf::IfOp::create(b, first, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      for (auto [value, slot] : llvm::zip(values, slots))
        memref::StoreOp::create(b, value, slot,
                                ValueRange{rowInBlock, warpInRow});
    }
    gpu::BarrierOp::create(b);
    usedBarrier = true;
    for (auto [value, slot] : llvm::zip(values, slots)) {
      value = memref::LoadOp::create(b, slot, ValueRange{rowInBlock, index(0)});
      for (int64_t w = 1; w < warps; ++w)
        value = add(value, memref::LoadOp::create(
                               b, slot, ValueRange{rowInBlock, index(w)}));
    }
    return values;
  }

  /// The shared-memory rows of `row_storage = shared`, each padded to
  /// whole vectors so that every row starts aligned for them.
  Value sharedRows() {
    if (!shared) {
      auto type = MemRefType::get(
          {k.rowsPerBlock, getSharedRowLength(cols, k.vectorWidth)}, f32,
          MemRefLayoutAttrInterface(),
          gpu::AddressSpaceAttr::get(b.getContext(),
                                     gpu::AddressSpace::Workgroup));
      shared = addSharedBuffer(type);
    }
    return shared;
  }

  ImplicitLocOpBuilder &b;
  gpu::GPUFuncOp func;
  int64_t cols;
  GpuKnobs k;
  Type f32;
  VectorType vecType;
  Value lane, rowInBlock, laneOffset, shared;
  bool usedBarrier = false;
};

template <typename NormOpT>
LogicalResult lowerNormOp(NormOpT op, RewriterBase &rewriter,
                          bool isLayerNorm) {
  std::optional<ConfigAttr> config = op.getConfig();
  if (!config || !config->isGPU())
    return op.emitOpError("needs a #norm.config<gpu, ...> to be lowered to "
                          "the GPU");
  auto func = op->template getParentOfType<gpu::GPUFuncOp>();
  if (!func || !func.isKernel())
    return op.emitOpError("with a gpu config must be inside a gpu.func "
                          "kernel");
  // Its barriers and shuffles need every thread of the block: the op must
  // be where all of them pass, the kernel's entry block (not under an
  // scf.if, a loop or a branch, which may depend on the thread).
  if (op->getBlock() != &func.getBody().front())
    return op.emitOpError("with a gpu config must be in the entry block of "
                          "its gpu.func kernel, where every thread of the "
                          "block reaches it (it has barriers and warp "
                          "shuffles); not under control flow");
  int64_t cols = op.getNumColumns();
  GpuKnobs k = resolveGpuKnobs(*config, cols);
  int64_t blockSize = k.threadsPerRow * k.rowsPerBlock;
  if (auto known = func.getKnownBlockSizeAttr()) {
    if (known.asArrayRef() !=
        ArrayRef<int32_t>{static_cast<int32_t>(blockSize), 1, 1})
      return op.emitOpError("needs blocks of ")
             << blockSize << " threads, but the kernel's known_block_size "
             << "differs";
  }
  // The NVVM bounds a kernel may carry already: blocks of blockSize
  // threads must meet them.
  if (auto maxThreads = func->template getAttrOfType<DenseI32ArrayAttr>("nvvm.maxntid")) {
    // (In 128-bit arithmetic: three extents of 2^21 make 2^63.)
    __int128 allowed = 1;
    for (int32_t extent : maxThreads.asArrayRef()) {
      if (extent < 1)
        return op.emitOpError("is in a kernel whose nvvm.maxntid has an "
                              "extent below 1: ")
               << extent;
      allowed *= extent;
    }
    if (allowed < blockSize)
      return op.emitOpError("needs blocks of ")
             << blockSize << " threads, but the kernel's nvvm.maxntid allows "
             << static_cast<int64_t>(allowed);
  }
  if (auto required =
          func->template getAttrOfType<DenseI32ArrayAttr>("nvvm.reqntid")) {
    // One to three extents; those not given are 1.
    SmallVector<int32_t, 3> extents(required.asArrayRef());
    extents.resize(std::max<size_t>(extents.size(), 3), 1);
    if (ArrayRef<int32_t>(extents) !=
        ArrayRef<int32_t>{static_cast<int32_t>(blockSize), 1, 1})
      return op.emitOpError("needs blocks of ")
             << blockSize << " threads, but the kernel's nvvm.reqntid "
             << "differs";
  }
  func.setKnownBlockSizeAttr(
      rewriter.getDenseI32ArrayAttr({static_cast<int32_t>(blockSize), 1, 1}));
  // min_blocks_per_sm: PTX .minnctapersm (the NVVM lowering's
  // nvvm.minctasm), which ptxas meets by capping registers.
  if (k.minBlocksPerSm > 0)
    func->setAttr("nvvm.minctasm", rewriter.getI32IntegerAttr(
                                       static_cast<int32_t>(k.minBlocksPerSm)));

  rewriter.setInsertionPoint(op);
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  GpuEmitter e(b, func, cols, k);
  e.setUpThread();
  Value x = op.getX(), residual = op.getResidual(), sum = op.getSum();
  Value gamma = op.getGamma(), beta = op.getBeta(), y = op.getY();
  Value meanOut = op.getMean(), rstdOut = op.getRstd();
  Type sumElement =
      sum ? cast<MemRefType>(sum.getType()).getElementType() : Type();
  Value rows = memref::DimOp::create(b, x, e.index(0));
  Value invCols = e.f32Const(1.0 / static_cast<double>(cols));
  Value eps = arith::ConstantOp::create(b, op.getEpsilonAttr());
  bool inRegisters = k.storage == RowStorage::Registers;

  // gamma and beta are the same for every row: a persistent kernel holding
  // the row in registers loads its share once, when registers allow (32
  // values per thread for the row and them).
  SmallVector<Value> gammaRegs, betaRegs;
  int64_t preloaded = (gamma ? 1 : 0) + (beta ? 1 : 0);
  if (inRegisters && k.persistent && preloaded > 0 &&
      (1 + preloaded) * e.numRegisterChunks() * k.vectorWidth <= 32)
    for (int64_t chunk = 0; chunk < e.numRegisterChunks(); ++chunk) {
      auto [col, guarded] = e.registerChunk(chunk);
      if (gamma)
        gammaRegs.push_back(e.load(gamma, Value(), col, guarded));
      if (beta)
        betaRegs.push_back(e.load(beta, Value(), col, guarded));
    }

  auto emitRows = [&](Value rowBase) {
    Value row = arith::AddIOp::create(b, rowBase, e.rowInBlock);
    // Rows past the end are clamped, not skipped: every thread takes part
    // in the shuffles and barriers; only stores are guarded.
    Value valid = e.ult(row, rows);
    Value lastRow = arith::SubIOp::create(b, rows, e.index(1));
    row = arith::SelectOp::create(b, valid, row, lastRow);

    // s = x + residual, stored (rounded) into sum when asked, and used
    // rounded like the CPU kernels do.
    auto firstS = [&](Value col, bool guarded) -> Value {
      Value s = e.load(x, row, col, guarded);
      if (residual)
        s = e.add(s, e.load(residual, row, col, guarded));
      if (!sum)
        return s;
      e.store(sum, row, col, s, valid, guarded);
      if (sumElement.isF32())
        return s;
      auto narrow = VectorType::get({k.vectorWidth}, sumElement);
      Value rounded = arith::TruncFOp::create(b, narrow, s);
      return arith::ExtFOp::create(b, e.vecType, rounded);
    };
    // s again, in the output pass of row_storage = global.
    auto laterS = [&](Value col, bool guarded) -> Value {
      if (sum)
        return e.load(sum, row, col, guarded);
      Value s = e.load(x, row, col, guarded);
      return residual ? e.add(s, e.load(residual, row, col, guarded)) : s;
    };
    Value shared = k.storage == RowStorage::Shared ? e.sharedRows() : Value();
    auto keepS = [&](Value col, bool guarded, Value s) {
      if (shared)
        e.store(shared, e.rowInBlock, col, s, Value(), guarded);
    };
    auto keptS = [&](Value col, bool guarded) -> Value {
      return shared ? e.load(shared, e.rowInBlock, col, guarded)
                    : laterS(col, guarded);
    };

    // The shift of LayerNorm (buildLayerNormShift), so that the sums of
    // d = s - s0 keep the spread when the mean dwarfs it.
    Value s0, shift;
    if (isLayerNorm) {
      s0 = buildLayerNormShift(b, x, residual, sumElement, row, cols);
      shift = e.splat(s0);
      // sum may be x or residual itself (an in-place residual stream): the
      // threads that store sum[row][0..2] must wait until every thread of
      // the row has read the elements of the shift.
      if (residual && sum)
        gpu::BarrierOp::create(b);
    }

    Value meanD, rstd;
    // The output of one vector: y = (s - mean) * rstd * gamma + beta.
    auto output = [&](Value col, bool guarded, Value s, Value g, Value bt) {
      Value centred = isLayerNorm ? e.sub(e.sub(s, shift), e.splat(meanD)) : s;
      Value out = e.mul(centred, e.splat(rstd));
      if (gamma)
        out = e.mul(out, g ? g : e.load(gamma, Value(), col, guarded));
      if (beta)
        out = e.add(out, bt ? bt : e.load(beta, Value(), col, guarded));
      e.store(y, row, col, out, valid, guarded);
    };
    // The corrected two-pass algorithm: the centred sweep's sums of
    // d = s - shift - mean and d^2 give the mean's rounding error (the sum
    // of d over n), added to the mean, and M2 = sum(d^2) - sum(d) * that.
    // Without it a shift far from the mean (an outlier among the first
    // three values) left the mean of thousands of shifted values some ulps
    // of the shift off, an offset of every y (emulator fuzz, 3000-4760
    // columns with outliers of 1e3: 2-3 ulps of f16).
    // (Only for a finite mean: an infinite input's mean stays +-inf, as
    // the contract's sum / C, and its M2 as it was.)
    auto correctMean = [&](Value sumD, Value sumSquares) -> Value {
      Value finite = arith::CmpFOp::create(
          b, arith::CmpFPredicate::OLT, math::AbsFOp::create(b, meanD),
          e.f32Const(std::numeric_limits<float>::infinity()));
      Value correction = arith::DivFOp::create(
          b, sumD, e.f32Const(static_cast<double>(cols)));
      meanD = arith::SelectOp::create(
          b, finite, arith::AddFOp::create(b, meanD, correction), meanD);
      Value m2 = arith::MaximumFOp::create(
          b,
          arith::SubFOp::create(b, sumSquares,
                                arith::MulFOp::create(b, sumD, correction)),
          e.f32Const(0.0));
      return arith::SelectOp::create(b, finite, m2, sumSquares);
    };
    // The first mean becomes the shift of the centred sweep (its mean is
    // then 0 plus the correction): the mean of d is as large as the shift
    // is far from the mean, and a correction added to it would round at
    // that magnitude, not the mean's (f32 rows of mean 0.42 whose first
    // three values were 1e4 kept a mean 6e-4 off on the CPU, which had
    // the same form). An infinite or NaN mean stays as it is.
    auto recentre = [&] {
      Value finite = arith::CmpFOp::create(
          b, arith::CmpFPredicate::OLT, math::AbsFOp::create(b, meanD),
          e.f32Const(std::numeric_limits<float>::infinity()));
      s0 = arith::SelectOp::create(b, finite,
                                   arith::AddFOp::create(b, s0, meanD), s0);
      meanD = arith::SelectOp::create(b, finite, e.f32Const(0.0), meanD);
      shift = e.splat(s0);
    };
    auto rstdOf = [&](Value meanSquare) -> Value {
      return arith::DivFOp::create(
          b, e.f32Const(1.0),
          math::SqrtOp::create(b, arith::AddFOp::create(b, meanSquare, eps)));
    };

    if (inRegisters) {
      int64_t chunks = e.numRegisterChunks();
      SmallVector<Value> values, chunkCols;
      SmallVector<bool> guards;
      for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        auto [col, guarded] = e.registerChunk(chunk);
        chunkCols.push_back(col);
        guards.push_back(guarded);
        values.push_back(firstS(col, guarded));
      }
      if (isLayerNorm) {
        Value total = e.zeroVector();
        for (int64_t c = 0; c < chunks; ++c)
          total = e.add(total, e.maskOff(e.sub(values[c], shift),
                                         e.laneMask(chunkCols[c], guards[c])));
        meanD = e.mul(e.rowReduce({e.reduce(total)})[0], invCols);
        recentre();
        Value squares = e.zeroVector(), deviations = e.zeroVector();
        Value meanVec = e.splat(meanD);
        for (int64_t c = 0; c < chunks; ++c) {
          Value d = e.maskOff(e.sub(e.sub(values[c], shift), meanVec),
                              e.laneMask(chunkCols[c], guards[c]));
          deviations = e.add(deviations, d);
          squares = e.add(squares, e.mul(d, d));
        }
        SmallVector<Value> sums =
            e.rowReduce({e.reduce(deviations), e.reduce(squares)});
        rstd = rstdOf(e.mul(correctMean(sums[0], sums[1]), invCols));
      } else {
        // Lanes past the row loaded 0: they add nothing to the squares.
        Value squares = e.zeroVector();
        for (int64_t c = 0; c < chunks; ++c)
          squares = e.add(squares, e.mul(values[c], values[c]));
        rstd = rstdOf(e.mul(e.rowReduce({e.reduce(squares)})[0], invCols));
      }
      for (int64_t c = 0; c < chunks; ++c) {
        Value g = gammaRegs.empty() ? Value() : gammaRegs[c];
        Value bt = betaRegs.empty() ? Value() : betaRegs[c];
        output(chunkCols[c], guards[c], values[c], g, bt);
      }
    } else if (isLayerNorm) {
      // Centred two-pass statistics over the row in shared memory, or read
      // again from global memory (L2). Not one pass of shifted sums and
      // sums of squares: E[d^2] - E[d]^2 cancels when the shift (the first
      // element) lies far from the mean, as an outlier channel does.
      SmallVector<Value> total = e.sweep(
          {e.zeroVector()}, [&](Value col, bool guarded, ValueRange acc) {
            Value s = firstS(col, guarded);
            keepS(col, guarded, s);
            Value d = e.maskOff(e.sub(s, shift), e.laneMask(col, guarded));
            return SmallVector<Value>{e.add(acc[0], d)};
          });
      meanD = e.mul(e.rowReduce({e.reduce(total[0])})[0], invCols);
      recentre();
      Value meanVec = e.splat(meanD);
      SmallVector<Value> centred = e.sweep(
          {e.zeroVector(), e.zeroVector()},
          [&](Value col, bool guarded, ValueRange acc) {
            Value d =
                e.maskOff(e.sub(e.sub(keptS(col, guarded), shift), meanVec),
                          e.laneMask(col, guarded));
            return SmallVector<Value>{e.add(acc[0], d),
                                      e.add(acc[1], e.mul(d, d))};
          });
      SmallVector<Value> sums =
          e.rowReduce({e.reduce(centred[0]), e.reduce(centred[1])});
      rstd = rstdOf(e.mul(correctMean(sums[0], sums[1]), invCols));
    } else {
      SmallVector<Value> squares = e.sweep(
          {e.zeroVector()}, [&](Value col, bool guarded, ValueRange acc) {
            Value s = firstS(col, guarded);
            keepS(col, guarded, s);
            return SmallVector<Value>{e.add(acc[0], e.mul(s, s))};
          });
      rstd = rstdOf(e.mul(e.rowReduce({e.reduce(squares[0])})[0], invCols));
    }

    if (meanOut || rstdOut) {
      Value leader =
          e.both(valid, arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                              e.lane, e.index(0)));
      auto ifOp = scf::IfOp::create(b, leader, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      if (meanOut)
        memref::StoreOp::create(b, arith::AddFOp::create(b, s0, meanD), meanOut,
                                ValueRange{row});
      if (rstdOut)
        memref::StoreOp::create(b, rstd, rstdOut, ValueRange{row});
    }

    if (!inRegisters)
      e.sweep({}, [&](Value col, bool guarded, ValueRange) {
        output(col, guarded, keptS(col, guarded), Value(), Value());
        return SmallVector<Value>{};
      });
  };

  Value blockId = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value firstRow = arith::MulIOp::create(b, blockId, e.index(k.rowsPerBlock));
  if (!k.persistent) {
    emitRows(firstRow);
  } else {
    Value grid = gpu::GridDimOp::create(b, gpu::Dimension::x);
    Value step = arith::MulIOp::create(b, grid, e.index(k.rowsPerBlock));
    auto loop = scf::ForOp::create(b, firstRow, rows, step);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    emitRows(loop.getInductionVar());
    // The reduction slots are reused by the next row group: wait until
    // every thread has read them.
    if (e.usedBarrier)
      gpu::BarrierOp::create(b);
  }
  rewriter.eraseOp(op);
  return success();
}

struct ConvertNormToGPUPass
    : normjit::impl::ConvertNormToGPUPassBase<ConvertNormToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<LayerNormOp, RMSNormOp, AddOp>(op))
        ops.push_back(op);
    });
    // One norm op per kernel: the threads and blocks are mapped to that
    // op's rows (threads per row, rows per block), and nothing would order
    // a second op's reads after the first one's writes across threads.
    llvm::DenseMap<Operation *, Operation *> firstInKernel;
    bool tooMany = false;
    for (Operation *op : ops) {
      if (!isa<LayerNormOp, RMSNormOp>(op))
        continue;
      auto func = op->getParentOfType<gpu::GPUFuncOp>();
      if (!func)
        continue;
      auto [it, inserted] = firstInKernel.try_emplace(func, op);
      if (!inserted) {
        InFlightDiagnostic diagnostic =
            op->emitOpError("is a second norm op in kernel @")
            << func.getName()
            << "; a GPU kernel holds one (its threads are mapped to that "
               "op's rows)";
        diagnostic.attachNote(it->second->getLoc()) << "the first one";
        tooMany = true;
      }
    }
    if (tooMany)
      return signalPassFailure();
    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      LogicalResult result = failure();
      if (auto layerNorm = dyn_cast<LayerNormOp>(op))
        result = lowerNormOp(layerNorm, rewriter, /*isLayerNorm=*/true);
      else if (auto rmsNorm = dyn_cast<RMSNormOp>(op))
        result = lowerNormOp(rmsNorm, rewriter, /*isLayerNorm=*/false);
      else
        op->emitOpError("is not lowered to the GPU: the GPU backend fuses "
                        "the residual add into the norm kernel");
      if (failed(result))
        return signalPassFailure();
    }
    // The kernels' static shared memory, the buffers they had and those
    // the lowering added: a block may have 48 KiB.
    for (auto [func, op] : firstInKernel) {
      auto kernel = cast<gpu::GPUFuncOp>(func);
      // (In 128-bit arithmetic, so that huge buffers do not wrap.)
      __int128 bytes = 0;
      for (BlockArgument buffer : kernel.getWorkgroupAttributions()) {
        auto type = cast<MemRefType>(buffer.getType());
        if (!type.hasStaticShape()) {
          kernel.emitOpError("has a workgroup (shared) buffer of dynamic "
                             "shape, ")
              << type << ": a kernel with a norm op keeps static shared "
              << "memory only";
          return signalPassFailure();
        }
        __int128 elements = 1;
        for (int64_t extent : type.getShape())
          elements = std::min<__int128>(elements * extent, INT64_MAX);
        bytes += elements * llvm::divideCeil(type.getElementTypeBitWidth(), 8);
      }
      if (bytes > kMaxStaticSharedBytes) {
        kernel.emitOpError("keeps ")
            << (bytes > INT64_MAX ? std::string("over 2^63")
                                  : std::to_string(static_cast<int64_t>(bytes)))
            << " bytes in workgroup (shared) buffers, its own and "
            << "those its norm op was lowered to, more than the "
            << kMaxStaticSharedBytes << " bytes of static shared memory a "
            << "block may have";
        return signalPassFailure();
      }
    }
  }
};

} // namespace
