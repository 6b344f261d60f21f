//===- NormToVector.cpp - lower norm ops to scf + vector ------------------===//
//
// Part of normjit. Implements convert-norm-to-vector: each norm op becomes a
// loop over rows; each row is swept in vectors with independent partial sums,
// all arithmetic in f32, driven by the op's #norm.config.
//
//===----------------------------------------------------------------------===//

#include "../Common/LayerNormShift.h"
#include "normjit/Conversion/NormToVector/RowGroup.h"
#include "normjit/Conversion/Passes.h"
#include "normjit/Dialect/Norm/IR/NormOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Transforms/DialectConversion.h"

#include "llvm/Support/SwapByteOrder.h"

#include <limits>
#include <type_traits>

namespace normjit {
#define GEN_PASS_DEF_CONVERTNORMTOVECTORPASS
#include "normjit/Conversion/Passes.h.inc"
} // namespace normjit

using namespace mlir;
using namespace normjit;
using namespace normjit::norm;

namespace {

/// Columns of one tile of a row group's output sweep (row_group >= 3):
/// every row of the group sweeps a tile before the next tile, so the
/// tile's gamma and beta (4 KiB each in f32) stay in L1 for all of them.
constexpr int64_t kGroupTileColumns = 1024;

/// A group loop of at most this many iterations (groups of `accumulators`
/// vectors) with constant bounds is emitted unrolled: short rows then run
/// without loop control between their few vectors.
constexpr int64_t kUnrolledGroups = 4;

/// The most rows of a group whose statistics are finished in lanes (see
/// laneStats in lowerNormOp; the most columns: kMaxLaneStatsColumns).
constexpr int64_t kMaxLaneStatsRows = 16;

/// Bytes of a cache line (x86).
constexpr int64_t kLineBytes = 64;

/// LayerNorm's one-sweep statistics take M2 = sum(d^2) - n mean(d)^2 only
/// while n mean(d)^2 <= kFarShift * M2, i.e. the shift lies within two
/// standard deviations of the mean: the cancellation then costs at most
/// a factor kFarShift + 1 of the sums' rounding error. Otherwise a second,
/// centred sweep sums (d - mean)^2.
constexpr float kFarShift = 4.0f;

/// Rows summed unshifted (vdpbf16ps: the shift is 0) whose outputs are
/// 16-bit and whose statistics are not stored take the one-sweep M2 while
/// n mean^2 <= kFarShiftNarrowOutputs * M2, the mean within 16 standard
/// deviations of 0: the cancellation then costs at most 257 times the
/// sums' rounding error, about 1e-4 of M2 and 5e-5 of y, a tenth of half
/// an ulp of f16 (4.9e-4) and less of bf16 (3.9e-3). With kFarShift
/// every row of mean beyond two standard deviations took the centred
/// sweep: bf16 LayerNorm of 1024 columns, 1.6x the time.
constexpr float kFarShiftNarrowOutputs = 256.0f;

/// vdpbf16ps flushes denormal products and partial sums to zero: each
/// flush loses less than 2^-126, so a sum of squares of n values of at
/// least n * kDotTrustedSquares (2^-102) has lost less than 2^-24 of
/// itself. Below that, the row is summed again in plain f32.
constexpr double kDotTrustedSquares = 0x1p-102;

/// The knobs one op is lowered with, after defaults are applied.
struct LoweringKnobs {
  int64_t vectorWidth;
  int64_t accumulators;
  bool welford;
  bool streaming;
  int64_t prefetchRows; ///< 0: no software prefetches
  int64_t rowGroup;     ///< rows normalized together; 0: the default
  bool dotBf16; ///< the target has AVX512-BF16 (vdpbf16ps)
};

LoweringKnobs resolveKnobs(std::optional<ConfigAttr> config,
                           const NormToVectorDefaults &defaults) {
  LoweringKnobs knobs{defaults.vectorWidth, defaults.accumulators,
                      defaults.welford, false, 0, 0, defaults.dotBf16};
  if (!config)
    return knobs;
  if (auto width = config->getVectorWidth())
    knobs.vectorWidth = *width;
  if (auto accumulators = config->getAccumulators())
    knobs.accumulators = *accumulators;
  if (auto algorithm = config->getAlgorithm())
    knobs.welford = *algorithm == Algorithm::Welford;
  if (auto streaming = config->getStreamingStores())
    knobs.streaming = *streaming;
  if (auto prefetch = config->getPrefetchRows())
    knobs.prefetchRows = *prefetch;
  if (auto group = config->getRowGroup())
    knobs.rowGroup = *group;
  return knobs;
}

/// Emits the vector code of one row: loads widened to f32, stores rounded
/// to the buffer's type, and sweeps over the columns.
class RowEmitter {
public:
  /// One step of a sweep: given the column, the lane mask (null for a full
  /// vector) and this slot's state, returns the slot's new state.
  using StepFn =
      function_ref<SmallVector<Value>(Value col, Value mask, ValueRange state)>;

  RowEmitter(ImplicitLocOpBuilder &b, int64_t cols, const LoweringKnobs &k)
      : b(b), cols(cols), width(k.vectorWidth), slots(k.accumulators),
        nativeBf16(k.dotBf16), f32(b.getF32Type()),
        vecType(VectorType::get({width}, f32)) {
    int64_t group = width * slots;
    mainIters = cols / group;
    int64_t rest = cols - mainIters * group;
    leftoverVectors = rest / width;
    tail = rest % width;
  }

  int64_t getMainIters() const { return mainIters; }
  int64_t getMainElements() const { return mainIters * width * slots; }
  int64_t getSlots() const { return slots; }
  VectorType getVectorType() const { return vecType; }

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

  // f32 arithmetic that LLVM may contract into FMAs, nothing looser: the
  // results must stay within a few ulps of an fp64 reference.
  Value add(Value l, Value r) {
    return arith::AddFOp::create(b, l, r, arith::FastMathFlags::contract);
  }
  Value sub(Value l, Value r) {
    return arith::SubFOp::create(b, l, r, arith::FastMathFlags::contract);
  }
  Value mul(Value l, Value r) {
    return arith::MulFOp::create(b, l, r, arith::FastMathFlags::contract);
  }
  Value reduce(Value vector) {
    return vector::ReductionOp::create(b, vector::CombiningKind::ADD, vector);
  }
  /// Zeroes the lanes a mask leaves out (their loads read 0, but values
  /// derived from them, like x - mean, need not be 0).
  Value maskOff(Value vector, Value mask) {
    if (!mask)
      return vector;
    return arith::SelectOp::create(b, mask, vector, zeroVector());
  }

  /// Switches full-vector bf16 loads and stores to the even/odd lane order
  /// (see load), or back. Only valid for a sweep whose buffers are all bf16,
  /// or f32 copies written by this emitter's own sweeps in that order, since
  /// f32 loads and stores keep the order they find. The words
  /// are read little-endian (the lower-addressed bf16 in the low half):
  /// kernels are compiled for the host (JIT) or for x86 targets (AOT).
  void usePairedBf16(bool use = true) {
    pairedBf16 = use && width % 2 == 0 && llvm::sys::IsLittleEndianHost;
  }

  /// Loads `width` elements at `indices` widened to f32; masked-out lanes
  /// read 0.
  ///
  /// In the paired bf16 order a full vector of bf16 is read as width/2
  /// 32-bit words: the even columns are the words shifted left by 16, the
  /// odd ones the words with their low half cleared, and the f32 vector
  /// holds the even columns, then the odd ones. That is one integer
  /// operation per f32 register where the in-order widening takes a
  /// zero-extension and a shift. Lane order does not matter to the
  /// element-wise arithmetic or to the sums, as long as every operand of a
  /// step and its stores use the same order.
  Value load(Value buffer, ValueRange indices, Value mask) {
    Type element = cast<MemRefType>(buffer.getType()).getElementType();
    auto rawType = VectorType::get({width}, element);
    if (pairedBf16 && !mask && element.isBF16())
      return widenPairedBf16(
          vector::LoadOp::create(b, rawType, buffer, indices));
    Value raw = loadRaw(buffer, indices, mask);
    return element.isF32() ? raw : arith::ExtFOp::create(b, vecType, raw);
  }

  /// A full vector of bf16 in the columns' order widened to f32 in the
  /// paired order (see load).
  Value widenPairedBf16(Value raw) {
    auto wordsType = VectorType::get({width / 2}, b.getI32Type());
    Value words = vector::BitCastOp::create(b, wordsType, raw);
    auto splatWord = [&](uint32_t value) {
      return arith::ConstantOp::create(
          b, DenseElementsAttr::get(
                 wordsType, ArrayRef<int32_t>{static_cast<int32_t>(value)}));
    };
    auto halfType = VectorType::get({width / 2}, f32);
    Value even = arith::BitcastOp::create(
        b, halfType, arith::ShLIOp::create(b, words, splatWord(16)));
    Value odd = arith::BitcastOp::create(
        b, halfType, arith::AndIOp::create(b, words, splatWord(0xffff0000u)));
    SmallVector<int64_t> concat;
    for (int64_t i = 0; i < width; ++i)
      concat.push_back(i);
    return vector::ShuffleOp::create(b, even, odd, concat);
  }

  /// Whether full bf16 vectors are read and written in the paired order.
  bool isPairedBf16() const { return pairedBf16; }

  /// A full f32 vector in the columns' order put in the paired order: the
  /// even columns, then the odd ones.
  Value toPairedOrder(Value vector) {
    SmallVector<int64_t> order;
    for (int64_t i = 0; i < width; i += 2)
      order.push_back(i);
    for (int64_t i = 1; i < width; i += 2)
      order.push_back(i);
    return vector::ShuffleOp::create(b, vector, vector, order);
  }

  /// Whether store() rounds a vector for a buffer of `element` in the
  /// integer unit (narrowPairedBf16): a full bf16 vector in the paired
  /// order on a target without a bf16 conversion instruction.
  bool narrowsPairedBf16(Type element, Value mask) const {
    return pairedBf16 && !mask && element.isBF16() && !nativeBf16;
  }

  /// Loads `width` elements at `indices` in the buffer's own type and the
  /// columns' order; masked-out lanes read 0.
  Value loadRaw(Value buffer, ValueRange indices, Value mask) {
    Type element = cast<MemRefType>(buffer.getType()).getElementType();
    auto rawType = VectorType::get({width}, element);
    if (!mask)
      return vector::LoadOp::create(b, rawType, buffer, indices);
    Value passThru =
        arith::ConstantOp::create(b, cast<TypedAttr>(b.getZeroAttr(rawType)));
    return vector::MaskedLoadOp::create(b, rawType, buffer, indices, mask,
                                        passThru);
  }

  /// The alignment, in bytes, a full-vector non-temporal store into a
  /// buffer of `element` type claims: the vector's size, at most 64 bytes
  /// (wider vectors are stored in pieces of at most 64 bytes).
  int64_t streamAlignment(Type element) const {
    return std::min<int64_t>(width * element.getIntOrFloatBitWidth() / 8, 64);
  }

  /// Rounds an f32 vector to `buffer`'s element type and stores it. With
  /// `nontemporal`, a full vector is stored non-temporally, claiming
  /// streamAlignment: the caller makes sure the row start is that aligned
  /// (x86 has no unaligned non-temporal vector store: LLVM splits one into
  /// 8-byte scalar stores, slower than an ordinary store).
  void store(Value buffer, ValueRange indices, Value value, Value mask,
             bool nontemporal = false) {
    Type element = cast<MemRefType>(buffer.getType()).getElementType();
    if (narrowsPairedBf16(element, mask)) {
      storeColumnOrder(buffer, indices, narrowPairedBf16(value), nontemporal);
      return;
    }
    storeRounded(buffer, indices, narrow(value, element), mask, nontemporal);
  }

  /// An f32 vector rounded to `element` (f32: as it is).
  Value narrow(Value value, Type element) {
    if (element.isF32())
      return value;
    if (element.isBF16())
      return truncToBf16(value);
    auto type = cast<VectorType>(value.getType());
    return arith::TruncFOp::create(
        b, VectorType::get({type.getNumElements()}, element), value);
  }

  /// An f32 vector rounded to bf16 (to nearest even), in its lanes' order.
  /// With AVX512-BF16, 8 to 32 values at a time with vcvtne2ps2bf16, which
  /// rounds two f32 vectors into one (LLVM selects a truncf of 32 values as
  /// two vcvtneps2bf16 and a vinsert: 9 uops against 4 on Zen 4 in
  /// llvm-mca's model). Same rounding, NaN and denormal handling as the
  /// instruction truncf becomes there.
  Value truncToBf16(Value value) {
    auto type = cast<VectorType>(value.getType());
    int64_t n = type.getNumElements();
    auto bf16Type = VectorType::get({n}, b.getBF16Type());
    if (!nativeBf16 || n < 8 || n % 8 != 0)
      return arith::TruncFOp::create(b, bf16Type, value);
    int64_t chunk = n % 32 == 0 ? 32 : n % 16 == 0 ? 16 : 8;
    StringAttr intrinsic = b.getStringAttr(
        "llvm.x86.avx512bf16.cvtne2ps2bf16." + std::to_string(chunk * 16));
    auto slice = [&](int64_t offset, int64_t size) -> Value {
      return vector::ExtractStridedSliceOp::create(
          b, value, ArrayRef<int64_t>{offset}, ArrayRef<int64_t>{size},
          ArrayRef<int64_t>{1});
    };
    Value result;
    for (int64_t at = 0; at < n; at += chunk) {
      // The instruction's first operand fills the upper half.
      Value part =
          LLVM::CallIntrinsicOp::create(
              b, VectorType::get({chunk}, b.getBF16Type()), intrinsic,
              ValueRange{slice(at + chunk / 2, chunk / 2), slice(at, chunk / 2)})
              .getResult(0);
      if (!result) {
        result = part;
        continue;
      }
      SmallVector<int64_t> concat;
      for (int64_t i = 0; i < at + chunk; ++i)
        concat.push_back(i);
      result = vector::ShuffleOp::create(b, result, part, concat);
    }
    return result;
  }

  /// A full f32 vector in the paired order rounded to bf16 in the columns'
  /// order, for targets without a bf16 conversion instruction: each lane
  /// rounded in the integer unit exactly as arith-expand rounds truncf
  /// (to nearest even, NaN to 0x7fc0), then each 32-bit word made of the
  /// even column's bf16 (the upper half of its rounded bits, shifted
  /// down) and the odd one's (the upper half, in place): a shift and a
  /// word blend per pair of registers, where rounding in the lanes' order
  /// and interleaving afterwards took packs, permutes and a byte shuffle.
  Value narrowPairedBf16(Value value) {
    auto bitsType = VectorType::get({width}, b.getI32Type());
    auto splat = [&](VectorType type, uint32_t word) -> Value {
      return arith::ConstantOp::create(
          b, DenseElementsAttr::get(
                 type, ArrayRef<int32_t>{static_cast<int32_t>(word)}));
    };
    Value bits = arith::BitcastOp::create(b, bitsType, value);
    Value bit16 = arith::AndIOp::create(
        b, arith::ShRUIOp::create(b, bits, splat(bitsType, 16)),
        splat(bitsType, 1));
    Value biased = arith::AddIOp::create(
        b, bits, arith::AddIOp::create(b, bit16, splat(bitsType, 0x7fff)));
    Value isNan =
        arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, value, value);
    Value rounded = arith::SelectOp::create(
        b, isNan, splat(bitsType, 0x7fc00000u), biased);
    auto half = [&](int64_t offset) -> Value {
      return vector::ExtractStridedSliceOp::create(
          b, rounded, ArrayRef<int64_t>{offset}, ArrayRef<int64_t>{width / 2},
          ArrayRef<int64_t>{1});
    };
    auto wordsType = VectorType::get({width / 2}, b.getI32Type());
    Value words = arith::OrIOp::create(
        b, arith::ShRUIOp::create(b, half(0), splat(wordsType, 16)),
        arith::AndIOp::create(b, half(width / 2),
                              splat(wordsType, 0xffff0000u)));
    return vector::BitCastOp::create(
        b, VectorType::get({width}, b.getBF16Type()), words);
  }

  /// Stores a full vector that is already in the buffer's type and the
  /// columns' order.
  void storeColumnOrder(Value buffer, ValueRange indices, Value value,
                        bool nontemporal) {
    Type element = cast<MemRefType>(buffer.getType()).getElementType();
    llvm::MaybeAlign alignment;
    if (nontemporal)
      alignment = llvm::Align(streamAlignment(element));
    vector::StoreOp::create(b, value, buffer, indices, nontemporal, alignment);
  }

  /// store() of a vector already rounded to `buffer`'s element type.
  void storeRounded(Value buffer, ValueRange indices, Value value, Value mask,
                    bool nontemporal = false) {
    Type element = cast<MemRefType>(buffer.getType()).getElementType();
    if (pairedBf16 && !mask && element.isBF16()) {
      // Back from the even/odd order to the columns' order: one word
      // shuffle of the bf16 vector.
      SmallVector<int64_t> interleave;
      for (int64_t i = 0; i < width / 2; ++i) {
        interleave.push_back(i);
        interleave.push_back(i + width / 2);
      }
      value = vector::ShuffleOp::create(b, value, value, interleave);
    }
    if (!mask) {
      storeColumnOrder(buffer, indices, value, nontemporal);
      return;
    }
    // A masked store of 16-bit elements wider than 512 bits goes in 512-bit
    // pieces: LLVM 22's x86 backend splits it itself, turns a piece with one
    // lane into a scalar bf16 store and cannot select that (an abort, e.g.
    // f32 rows to bf16 with vector_width = 64 and 33 columns in the tail).
    int64_t bits = element.getIntOrFloatBitWidth();
    int64_t piece = bits < 32 ? std::min<int64_t>(width, 512 / bits) : width;
    if (piece == width) {
      vector::MaskedStoreOp::create(b, buffer, indices, mask, value);
      return;
    }
    SmallVector<Value> at(indices.begin(), indices.end());
    Value column = at.back();
    for (int64_t offset = 0; offset < width; offset += piece) {
      auto slice = [&](Value vector) -> Value {
        return vector::ExtractStridedSliceOp::create(
            b, vector, ArrayRef<int64_t>{offset}, ArrayRef<int64_t>{piece},
            ArrayRef<int64_t>{1});
      };
      at.back() = arith::AddIOp::create(b, column, index(offset));
      vector::MaskedStoreOp::create(b, buffer, at, slice(mask), slice(value));
    }
  }

  /// Whether dotSums can sweep rows of this emitter's width: vectors of
  /// whole 128-bit vdpbf16ps operands (8, 16 or 32 bf16 each).
  bool canDot() const { return width >= 8 && width % 8 == 0; }

  /// The sum of the squares of a row of bf16 values and, with `withSum`,
  /// the sum of the values, with x86vector.avx512.dot (vdpbf16ps): one
  /// instruction per 32 values where widening to f32 takes two and the
  /// sums two more. Products of bf16 values are exact in f32 and are
  /// accumulated in f32 like the widened sweep's, except that denormal
  /// inputs, products and partial sums are flushed to zero (see
  /// kDotTrustedSquares). `rowVector(col, mask)` gives the row's values at
  /// `col` as a vector of `width` bf16 (in any lane order; masked-out lanes
  /// 0). Returns {sum of squares, sum or null}.
  using RowVectorFn = function_ref<Value(Value col, Value mask)>;
  std::pair<Value, Value> dotSums(RowVectorFn rowVector, bool withSum) {
    int64_t chunk = std::min<int64_t>(width, 32);
    int64_t chunks = width / chunk;
    Type bf16 = b.getBF16Type();
    auto accType = VectorType::get({chunk / 2}, f32);
    auto chunkType = VectorType::get({chunk}, bf16);
    Value accZero =
        arith::ConstantOp::create(b, cast<TypedAttr>(b.getZeroAttr(accType)));
    Value ones = arith::ConstantOp::create(
        b, DenseElementsAttr::get(chunkType, b.getFloatAttr(bf16, 1.0)));
    int64_t perSlot = (withSum ? 2 : 1) * chunks;
    SmallVector<Value> init(perSlot * slots, accZero);
    SmallVector<Value> sums =
        sweep(init, perSlot, [&](Value col, Value mask, ValueRange acc) {
          Value raw = rowVector(col, mask);
          SmallVector<Value> next(acc.begin(), acc.end());
          for (int64_t k = 0; k < chunks; ++k) {
            Value part = raw;
            if (chunks > 1)
              part = vector::ExtractStridedSliceOp::create(
                  b, raw, ArrayRef<int64_t>{k * chunk},
                  ArrayRef<int64_t>{chunk}, ArrayRef<int64_t>{1});
            next[k] =
                x86vector::DotBF16Op::create(b, accType, next[k], part, part);
            if (withSum)
              next[chunks + k] = x86vector::DotBF16Op::create(
                  b, accType, next[chunks + k], part, ones);
          }
          return next;
        });
    auto total = [&](int64_t first) {
      SmallVector<Value> parts;
      for (int64_t k = first; k < first + chunks; ++k)
        llvm::append_range(parts, slotField(sums, perSlot, k));
      return reduceSlots(parts);
    };
    return {total(0), withSum ? total(chunks) : Value()};
  }

  /// Sweeps the main part: groups of `slots` full vectors in an scf.for.
  /// `state` holds `stateSize` values per slot, slot after slot. With
  /// `additive`, the state is a set of sums: they are accumulated in blocks
  /// of kBlock groups, each from zero and then added to the total, which
  /// bounds the rounding error of long rows by O(kBlock + groups / kBlock)
  /// ulps instead of O(groups). Past kBlock blocks the blocks are added with
  /// a compensation (Kahan's), O(kBlock) ulps however long the row: plain
  /// additions lost 1.6e-4 of the rstd of a row of 2^20 columns summed in
  /// one lane. (Below that the compensation's seven operations a block cost
  /// 1-3% on cache-resident rows and gain nothing that matters.)
  SmallVector<Value> sweepMain(ValueRange state, int64_t stateSize, StepFn step,
                               bool additive = false) {
    SmallVector<Value> current(state.begin(), state.end());
    if (mainIters == 0)
      return current;
    if (!additive || mainIters <= 2 * kBlock)
      return emitGroupLoop(index(0), index(mainIters), current, stateSize,
                           step);
    SmallVector<Value> zeros;
    for (Value value : current)
      zeros.push_back(arith::ConstantOp::create(
          b, cast<TypedAttr>(b.getZeroAttr(value.getType()))));
    auto addInto = [&](SmallVector<Value> &total, ValueRange part) {
      for (auto [t, p] : llvm::zip_equal(total, part))
        t = add(t, p);
    };
    int64_t blocks = mainIters / kBlock, rest = mainIters % kBlock;
    bool compensated = blocks > kBlock;
    size_t n = current.size();
    // Carried: the totals, then (compensated) their compensations (what the
    // totals' roundings lost, negated).
    SmallVector<Value> carried(current);
    if (compensated)
      carried.append(zeros.begin(), zeros.end());
    auto outer = scf::ForOp::create(
        b, index(0), index(blocks), index(1), carried,
        [&](OpBuilder &nested, Location, Value block, ValueRange state) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          Value first = arith::MulIOp::create(b, block, index(kBlock));
          Value last = arith::AddIOp::create(b, first, index(kBlock));
          SmallVector<Value> part =
              emitGroupLoop(first, last, zeros, stateSize, step);
          SmallVector<Value> next(state.begin(), state.end());
          for (size_t i = 0; i < n; ++i) {
            if (!compensated) {
              next[i] = add(state[i], part[i]);
              continue;
            }
            Value total = state[i], compensation = state[n + i];
            Value y = sub(part[i], compensation);
            Value t = add(total, y);
            // Once a total is infinite (a row holding Inf, squares that
            // overflow) the compensation would be Inf - Inf: it stays 0,
            // so the sums end as plain additions end (Inf, not NaN).
            auto infinity = FloatAttr::get(
                f32, std::numeric_limits<float>::infinity());
            TypedAttr infinities = infinity;
            if (auto vector = dyn_cast<VectorType>(t.getType()))
              infinities = DenseElementsAttr::get(vector, infinity);
            Value finite = arith::CmpFOp::create(
                b, arith::CmpFPredicate::OLT, math::AbsFOp::create(b, t),
                arith::ConstantOp::create(b, infinities));
            next[n + i] = arith::SelectOp::create(b, finite,
                                                  sub(sub(t, total), y),
                                                  zeros[i]);
            next[i] = t;
          }
          scf::YieldOp::create(b, next);
        });
    for (size_t i = 0; i < n; ++i)
      current[i] = compensated
                       ? sub(outer.getResult(i), outer.getResult(n + i))
                       : outer.getResult(i);
    if (rest)
      addInto(current, emitGroupLoop(index(blocks * kBlock), index(mainIters),
                                     zeros, stateSize, step));
    return current;
  }

  /// An scf.for over groups [first, last) of `slots` vectors.
  SmallVector<Value> emitGroupLoop(Value first, Value last, ValueRange init,
                                   int64_t stateSize, StepFn step) {
    std::optional<int64_t> firstIter = getConstantIntValue(first),
                           lastIter = getConstantIntValue(last);
    if (firstIter && lastIter && *lastIter - *firstIter <= kUnrolledGroups) {
      SmallVector<Value> next(init.begin(), init.end());
      for (int64_t iter = *firstIter; iter < *lastIter; ++iter)
        for (int64_t slot = 0; slot < slots; ++slot) {
          step_ = {/*inGroupLoop=*/true, slot * width};
          SmallVector<Value> updated =
              step(index((iter * slots + slot) * width), Value(),
                   ValueRange(next).slice(slot * stateSize, stateSize));
          llvm::copy(updated, next.begin() + slot * stateSize);
        }
      return next;
    }
    auto loop = scf::ForOp::create(
        b, first, last, index(1), init,
        [&](OpBuilder &nested, Location, Value iv, ValueRange iterState) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          Value base = arith::MulIOp::create(b, iv, index(width * slots));
          SmallVector<Value> next(iterState.begin(), iterState.end());
          for (int64_t slot = 0; slot < slots; ++slot) {
            Value col = arith::AddIOp::create(b, base, index(slot * width));
            step_ = {/*inGroupLoop=*/true, slot * width};
            SmallVector<Value> updated =
                step(col, Value(),
                     ValueRange(next).slice(slot * stateSize, stateSize));
            llvm::copy(updated, next.begin() + slot * stateSize);
          }
          scf::YieldOp::create(b, next);
        });
    return SmallVector<Value>(loop.getResults());
  }

  /// Sweeps what the main part leaves: full vectors, then one masked tail.
  SmallVector<Value> sweepRest(ValueRange state, int64_t stateSize,
                               StepFn step) {
    SmallVector<Value> current(state.begin(), state.end());
    int64_t col = getMainElements();
    int64_t numSlots =
        stateSize ? static_cast<int64_t>(current.size()) / stateSize : 1;
    for (int64_t v = 0; v < leftoverVectors + (tail ? 1 : 0); ++v) {
      Value mask;
      if (v == leftoverVectors)
        mask = vector::ConstantMaskOp::create(
            b, VectorType::get({width}, b.getI1Type()),
            ArrayRef<int64_t>{tail});
      int64_t slot = v % numSlots;
      step_ = {/*inGroupLoop=*/false, col};
      SmallVector<Value> updated =
          step(index(col), mask,
               ValueRange(current).slice(slot * stateSize, stateSize));
      llvm::copy(updated, current.begin() + slot * stateSize);
      col += width;
    }
    return current;
  }

  /// Sweeps the row, without state, from column `head` (dynamic, at most
  /// `lineColumns` and the row's columns), for non-temporal stores of
  /// whole cache lines: `plain` steps over the columns before it (full
  /// vectors, then a masked one), `stream` steps over the full vectors of the
  /// whole lines of `lineColumns` from it on (groups of `slots` in an scf.for,
  /// then single ones in another), `plain` steps over the full vectors after
  /// them, and a masked `plain` step over what is left. (A line written
  /// partly by non-temporal and partly by ordinary stores, the row's own
  /// or its neighbour's, costs more than ordinary stores alone: f16 rows
  /// of 1000 columns, 0.6x.) `lineColumns` is a multiple of the width.
  /// The steps' columns are dynamic (getStepPosition says so).
  void sweepFrom(Value head, int64_t lineColumns, StepFn stream, StepFn plain) {
    auto maskType = VectorType::get({width}, b.getI1Type());
    auto maskOf = [&](Value count) -> Value {
      return vector::CreateMaskOp::create(b, maskType, ValueRange{count});
    };
    // `count` iterations of `vectors` full vectors from column `start`;
    // returns the column after them.
    auto loopOver = [&](Value start, Value count, int64_t vectors,
                        StepFn step) -> Value {
      auto loop = scf::ForOp::create(b, index(0), count, index(1));
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(loop.getBody());
        Value base = arith::AddIOp::create(
            b, start,
            arith::MulIOp::create(b, loop.getInductionVar(),
                                  index(vectors * width)));
        for (int64_t v = 0; v < vectors; ++v) {
          step_ = {/*inGroupLoop=*/false, v * width, /*dynamic=*/true};
          step(arith::AddIOp::create(b, base, index(v * width)), Value(), {});
        }
      }
      return arith::AddIOp::create(
          b, start, arith::MulIOp::create(b, count, index(vectors * width)));
    };
    // Full vectors of `vectors` from `start` to `end`.
    auto countOf = [&](Value start, Value end, int64_t vectors) -> Value {
      return arith::DivUIOp::create(b, arith::SubIOp::create(b, end, start),
                                    index(vectors * width));
    };
    Value rowEnd = index(cols);
    // The columns before head: full vectors, then a masked step.
    Value beforeHead = loopOver(index(0), countOf(index(0), head, 1), 1, plain);
    step_ = {/*inGroupLoop=*/false, /*column=*/0, /*dynamic=*/true};
    plain(beforeHead, maskOf(arith::SubIOp::create(b, head, beforeHead)), {});
    // The end of the whole lines from head on.
    Value linesEnd = arith::AddIOp::create(
        b, head,
        arith::MulIOp::create(
            b,
            arith::DivUIOp::create(b, arith::SubIOp::create(b, rowEnd, head),
                                   index(lineColumns)),
            index(lineColumns)));
    Value next = head;
    if (slots > 1)
      next = loopOver(next, countOf(next, linesEnd, slots), slots, stream);
    next = loopOver(next, countOf(next, linesEnd, 1), 1, stream);
    if (lineColumns > width)
      next = loopOver(next, countOf(next, rowEnd, 1), 1, plain);
    step_ = {/*inGroupLoop=*/false, /*column=*/0, /*dynamic=*/true};
    plain(next, maskOf(arith::SubIOp::create(b, rowEnd, next)), {});
  }

  /// Sweeps the whole row; `state` holds sums (additive) unless empty.
  SmallVector<Value> sweep(ValueRange state, int64_t stateSize, StepFn step) {
    SmallVector<Value> afterMain =
        sweepMain(state, stateSize, step, /*additive=*/stateSize > 0);
    return sweepRest(afterMain, stateSize, step);
  }

  /// Field `field` of every slot of a sweep's state (`stateSize` values per
  /// slot, slot after slot).
  static SmallVector<Value> slotField(ValueRange state, int64_t stateSize,
                                      int64_t field) {
    SmallVector<Value> values;
    for (size_t at = field; at < state.size(); at += stateSize)
      values.push_back(state[at]);
    return values;
  }

  /// Adds up one value per slot of a sweep's state into a scalar.
  Value reduceSlots(ValueRange vectors) {
    Value total = vectors.front();
    for (Value v : vectors.drop_front())
      total = add(total, v);
    return reduce(total);
  }

  /// Where the step a sweep is emitting lies, in columns: within its group
  /// of `slots` vectors (the group loop, whose groups start at multiples of
  /// width * slots), or in the row (the full vectors and tail after it).
  struct StepPosition {
    bool inGroupLoop = false;
    int64_t column = 0;
    /// A sweepFrom step: its column is not known here (`column` is its
    /// offset in its group of vectors).
    bool dynamic = false;
  };
  StepPosition getStepPosition() const { return step_; }
  int64_t getGroupElements() const { return width * slots; }
  int64_t getWidth() const { return width; }
  int64_t getColumns() const { return cols; }

  ImplicitLocOpBuilder &b;

private:
  StepPosition step_;
  /// Groups per block of a blocked (additive) sweep.
  static constexpr int64_t kBlock = 16;

  int64_t cols, width, slots;
  int64_t mainIters = 0, leftoverVectors = 0, tail = 0;
  bool pairedBf16 = false;
  bool nativeBf16; ///< the target rounds f32 to bf16 in an instruction
  Type f32;
  VectorType vecType;
};

/// Lowers one norm op (LayerNorm or RMSNorm).
template <typename NormOpT>
LogicalResult lowerNormOp(NormOpT op, PatternRewriter &rewriter,
                          const NormToVectorDefaults &defaults,
                          bool isLayerNorm) {
  std::optional<ConfigAttr> config = op.getConfig();
  if (config && config->isGPU())
    return rewriter.notifyMatchFailure(op, "has a gpu config");
  LoweringKnobs knobs = resolveKnobs(config, defaults);
  int64_t cols = op.getNumColumns();

  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  RowEmitter e(b, cols, knobs);
  // Stack buffers go at the start of the closest automatic allocation
  // scope (the function's entry block), not where the op is: an op inside
  // a loop would take more stack on every iteration.
  Operation *allocaScope =
      op->template getParentWithTrait<OpTrait::AutomaticAllocationScope>();
  auto createAlloca = [&](MemRefType type,
                          IntegerAttr alignment = {}) -> Value {
    OpBuilder::InsertionGuard guard(b);
    if (allocaScope && !allocaScope->getRegion(0).empty())
      b.setInsertionPointToStart(&allocaScope->getRegion(0).front());
    return memref::AllocaOp::create(b, type, alignment);
  };
  Value x = op.getX(), residual = op.getResidual(), sum = op.getSum();
  Value gamma = op.getGamma(), beta = op.getBeta(), y = op.getY();
  Value meanOut = op.getMean(), rstdOut = op.getRstd();
  Type sumElement =
      sum ? cast<MemRefType>(sum.getType()).getElementType() : Type();
  auto allBf16 = [](ArrayRef<Value> buffers) {
    return llvm::all_of(buffers, [](Value buffer) {
      return !buffer ||
             cast<MemRefType>(buffer.getType()).getElementType().isBF16();
    });
  };
  auto isF32 = [](Value columns) {
    return columns &&
           cast<MemRefType>(columns.getType()).getElementType().isF32();
  };
  // Bytes of an element of `columns` (0 when absent).
  auto elementBytes = [](Value columns) -> int64_t {
    if (!columns)
      return 0;
    return cast<MemRefType>(columns.getType())
               .getElementType()
               .getIntOrFloatBitWidth() /
           8;
  };
  // A post-norm block (a residual, the sum not kept) with an f32 y, whose
  // row, residual, gamma and beta overflow a 32 KiB L1: the first sweep
  // writes s = x + residual, exact in f32, into y's row, and the later
  // sweeps read it from there, as from a stored f32 sum, instead of
  // loading x and the residual again from beyond the L1 and adding them;
  // the output sweep then overwrites it. RMSNorm with gamma, f32, one
  // thread (`normjit bench --residual --no-store-sum`): 1.08-1.37x at
  // 4096-12288 columns, 1-2048 rows; at 768-1024 columns, where the
  // inputs stay in L1, 0.78-0.86x, hence the bound. Not with streaming
  // stores (the first sweep's ordinary stores would bring y's lines in),
  // nor for bf16 rows, whose sweeps take the paired order.
  int64_t inputRowBytes =
      std::min<int64_t>(cols, int64_t(1) << 40) *
      (elementBytes(x) + elementBytes(residual) + elementBytes(gamma) +
       elementBytes(beta));
  if (residual && !sum && !knobs.streaming && !allBf16({x, residual}) &&
      inputRowBytes > (32 << 10) && isF32(y)) {
    sum = y;
    sumElement = b.getF32Type();
  }
  // The statistics sweeps touch the row buffers only; the output sweep
  // also gamma, beta and y. Each uses the paired order when all it touches
  // is bf16 (the widened copies of gamma and beta are written in the output
  // sweep's order).
  bool statsPaired = allBf16({x, residual, sum});
  // f32 gamma and beta beside bf16 rows and a bf16 y (mixed precision:
  // the parameters kept in f32) are copied onto the stack in the paired
  // order, as bf16 ones are widened there, when the copies fit: the
  // output sweep then takes the paired order too. Where bf16 is rounded
  // in the integer unit (no AVX512-BF16) that is 1.2-1.3x faster than
  // widening and narrowing in the columns' order; with the instruction,
  // about the same, so it is kept for the former.
  // (Bytes of f32 copies of `count` buffers of the row's columns, capped
  // past the limit so that no column count overflows it.)
  auto f32CopyBytes = [&](int64_t count) -> int64_t {
    return cols > kMaxWidenedColumnBytes ? kMaxWidenedColumnBytes + 1
                                         : cols * 4 * count;
  };
  int64_t pairedCopyBytes = f32CopyBytes((gamma ? 1 : 0) + (beta ? 1 : 0));
  bool permuteF32Params =
      !knobs.dotBf16 && statsPaired && allBf16({y}) &&
      (isF32(gamma) || isF32(beta)) &&
      (!gamma || isF32(gamma) || allBf16({gamma})) &&
      (!beta || isF32(beta) || allBf16({beta})) &&
      pairedCopyBytes <= kMaxWidenedColumnBytes;
  bool outputPaired =
      statsPaired && (allBf16({gamma, beta, y}) || permuteF32Params);
  e.usePairedBf16(outputPaired);
  // (An odd vector width keeps the columns' order: no permuted copies.)
  permuteF32Params = permuteF32Params && e.isPairedBf16();
  Value rows = memref::DimOp::create(b, x, e.index(0));
  Value invCols = e.f32Const(1.0 / static_cast<double>(cols));
  Value eps = arith::ConstantOp::create(b, op.getEpsilonAttr());

  // gamma and beta in f16/bf16 are widened once per call, into f32 copies
  // on the stack, instead of once per row: the output pass of a narrow row
  // type is bound by conversions, not by memory. In the paired bf16 order
  // the copies are written in that order, vector by vector, and read back
  // by sweeps with the same vector boundaries, so they match the rows.
  // They are written within the first sweep of the call's first row (see
  // widenStep below), step by step, not by a sweep of their own: a call of
  // one row paid 9-30 ns for that sweep (RMSNorm, 2048 bf16 columns: 151
  // ns against 121 with f32 gamma), while the statistics sweep leaves the
  // load and store units room for it.
  auto isNarrow = [](Value columns) {
    return columns &&
           !cast<MemRefType>(columns.getType()).getElementType().isF32();
  };
  int64_t widenedBytes =
      f32CopyBytes((isNarrow(gamma) ? 1 : 0) + (isNarrow(beta) ? 1 : 0));
  struct Widening {
    Value source, copy;
    bool permute; ///< f32 put in the paired order
  };
  SmallVector<Widening> widenings;
  auto widenColumns = [&](Value columns) -> Value {
    bool permute = permuteF32Params && isF32(columns);
    if (!permute &&
        (!isNarrow(columns) || widenedBytes > kMaxWidenedColumnBytes))
      return columns;
    Value copy = createAlloca(MemRefType::get({cols}, b.getF32Type()),
                              /*alignment=*/b.getI64IntegerAttr(64));
    widenings.push_back({columns, copy, permute});
    return copy;
  };
  gamma = widenColumns(gamma);
  beta = widenColumns(beta);

  // Rows are normalized in groups of row_group: the statistics of each
  // row of a group, then the group's output sweep. A pair's output steps
  // take both rows, sharing the loads of gamma and beta; a larger group
  // sweeps column tiles, each tile row after row, so that only a tile of
  // gamma and beta need stay in L1 while the rows stream (with
  // prefetches, the next group's rows come in as this one goes out).
  // By default, rows whose gamma/beta and row data overflow the L1 cache
  // are normalized two at a time: gamma and beta are then read once per
  // pair of rows instead of once per row (they would come from L2 every
  // time).
  // (gamma and beta as the sweeps read them: widened copies are f32. Only
  // rows of 2048 columns or fewer are widened, which never pair, so the
  // spec's own dtypes give the same default: see getDefaultRowGroup.)
  // Rows of bf16 values alone (s = x) are summed with vdpbf16ps when the
  // target has it: the sums of squares, and LayerNorm's sums of the values
  // unshifted (the far-shift test below corrects a mean far from 0).
  // With a residual, s = x + r is a bf16 row when it is stored in bf16
  // (the sum is rounded to its type): summed from the rounded vector, the
  // one stored.
  bool dotRows =
      knobs.dotBf16 && e.canDot() && !(isLayerNorm && knobs.welford) &&
      (residual ? sum && sumElement.isBF16()
                : cast<MemRefType>(x.getType()).getElementType().isBF16());
  // A group of short rows finishes its statistics in lanes, one row per
  // lane: every row's sweeps first (their sums reduced to a scalar each),
  // then one vector computation of the group's means, variances and
  // reciprocal square roots. Row by row, each short row waited on its own
  // chain of reductions, checks, a square root and a division before its
  // output (about 70 cycles for 64 f32 columns), and the next row's
  // sweeps could not start while that chain filled the scheduler. Not for
  // Welford's LayerNorm nor the vdpbf16ps sums (their own checks), nor
  // for long rows, whose sweeps hide the chain.
  bool lanesPossible = cols <= kMaxLaneStatsColumns && !dotRows &&
                       !(isLayerNorm && knobs.welford);
  int64_t groupRows = knobs.rowGroup;
  if (groupRows == 0) {
    groupRows = getDefaultRowGroup(cols, elementBytes(x), elementBytes(gamma),
                                   elementBytes(beta), isLayerNorm);
    // The default's groups of short rows are for lanes; without them,
    // single rows.
    if (groupRows > 2 && !lanesPossible)
      groupRows = 1;
  }
  bool grouped = groupRows > 1;
  bool laneStats = grouped && groupRows <= kMaxLaneStatsRows && lanesPossible;

  e.usePairedBf16(statsPaired);
  auto rowLoop =
      scf::ForOp::create(b, e.index(0), rows, e.index(groupRows));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(rowLoop.getBody());
  Value row = rowLoop.getInductionVar();
  Value groupStart = row;
  // With groups: the statistics of each row of the group, kept on the
  // stack for the output sweep.
  Value groupCentre, groupRstd, groupOffset, groupCount;
  Block *statsBlock = nullptr;
  if (grouped) {
    auto statsType = MemRefType::get({groupRows}, b.getF32Type());
    groupCentre = createAlloca(statsType);
    groupRstd = createAlloca(statsType);
    groupOffset = createAlloca(statsType);
    groupCount = arith::MinSIOp::create(
        b, e.index(groupRows), arith::SubIOp::create(b, rows, groupStart));
  }
  if (grouped && !laneStats) {
    auto statsLoop = scf::ForOp::create(b, e.index(0), groupCount, e.index(1));
    statsBlock = statsLoop.getBody();
    b.setInsertionPointToStart(statsBlock);
    row = arith::AddIOp::create(b, groupStart, statsLoop.getInductionVar());
  }

  // x + residual in f32.
  auto addRows = [&](Value col, Value mask) -> Value {
    return e.add(e.load(x, {row, col}, mask),
                 e.load(residual, {row, col}, mask));
  };
  // s = x + residual rounded to the sum's type and stored into sum (with
  // a residual and a sum): the vector stored, in the sum's type.
  auto storedSum = [&](Value col, Value mask) -> Value {
    Value s = e.narrow(addRows(col, mask), sumElement);
    e.storeRounded(sum, {row, col}, s, mask);
    return s;
  };
  // The copies' step at `col` (see widenColumns), in the first sweep of
  // every row and taken by the call's first row (a uniform branch): every
  // first sweep (firstS, dotRowVector) steps through the columns as the
  // output sweeps do, and row 0's statistics, in a group too, come before
  // any output sweep.
  auto widenStep = [&](Value col, Value mask) {
    if (widenings.empty())
      return;
    OpBuilder::InsertionGuard widenGuard(b);
    auto ifFirst = scf::IfOp::create(
        b,
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq, row, e.index(0)),
        /*withElseRegion=*/false);
    b.setInsertionPointToStart(ifFirst.thenBlock());
    bool paired = e.isPairedBf16();
    e.usePairedBf16(outputPaired);
    for (const Widening &widening : widenings) {
      Value value = e.load(widening.source, {col}, mask);
      if (widening.permute && !mask)
        value = e.toPairedOrder(value);
      e.store(widening.copy, {col}, value, mask);
    }
    e.usePairedBf16(paired);
  };
  // s in the first pass, in f32: x, x + residual, or the sum stored.
  auto firstS = [&](Value col, Value mask) -> Value {
    widenStep(col, mask);
    if (!residual)
      return e.load(x, {row, col}, mask);
    if (!sum)
      return addRows(col, mask);
    if (e.narrowsPairedBf16(sumElement, mask)) {
      // Rounded in the integer unit, stored, and widened back from the
      // words stored (as a load would).
      Value rounded = e.narrowPairedBf16(addRows(col, mask));
      e.storeColumnOrder(sum, {row, col}, rounded, /*nontemporal=*/false);
      return e.widenPairedBf16(rounded);
    }
    Value stored = storedSum(col, mask);
    return sumElement.isF32()
               ? stored
               : arith::ExtFOp::create(b, e.getVectorType(), stored);
  };
  // s again in a later pass: from the cache-resident sum, or recomputed
  // (by emitter `r`: `e`, or `rare` below).
  auto laterS = [&](RowEmitter &r, Value col, Value mask) -> Value {
    if (sum)
      return r.load(sum, {row, col}, mask);
    Value s = r.load(x, {row, col}, mask);
    return residual ? r.add(s, r.load(residual, {row, col}, mask)) : s;
  };
  // The sweeps only rare rows take (a far shift, Welford's NaN mean) keep
  // one slot of partial sums: less code to compile, same precision (the
  // sums are blocked).
  LoweringKnobs rareKnobs = knobs;
  rareKnobs.accumulators = 1;
  RowEmitter rare(b, cols, rareKnobs);
  rare.usePairedBf16(statsPaired);

  SmallVector<Value> zeros(e.getSlots(), e.zeroVector());
  auto dotRowVector = [&](Value col, Value mask) -> Value {
    widenStep(col, mask);
    return residual ? storedSum(col, mask) : e.loadRaw(x, {row, col}, mask);
  };
  // Whether a sum of squares from vdpbf16ps is small enough that flushed
  // denormals may matter: the row is then summed again in plain f32.
  auto dotTooSmall = [&](Value squares) -> Value {
    return arith::CmpFOp::create(
        b, arith::CmpFPredicate::OLT, squares,
        e.f32Const(static_cast<double>(cols) * kDotTrustedSquares));
  };
  // A value of `like`'s shape from the scalar `scalar` (or `value`): f32
  // for one row's statistics, a vector of them for a group finished in
  // lanes (laneStats).
  auto splatLike = [&](Value like, Value scalar) -> Value {
    if (auto lanes = dyn_cast<VectorType>(like.getType()))
      return vector::BroadcastOp::create(b, lanes, scalar);
    return scalar;
  };
  auto constLike = [&](Value like, double value) {
    return splatLike(like, e.f32Const(value));
  };
  // RMSNorm: 1 / sqrt(mean(s^2) + eps).
  auto rmsRstd = [&](Value sumSquares) -> Value {
    Value meanSquare = e.mul(sumSquares, splatLike(sumSquares, invCols));
    return arith::DivFOp::create(
        b, constLike(sumSquares, 1.0),
        math::SqrtOp::create(
            b,
            arith::AddFOp::create(b, meanSquare, splatLike(meanSquare, eps))));
  };
  // RMSNorm: the row's sum of squares in plain f32.
  auto plainSquares = [&]() -> Value {
    SmallVector<Value> squares =
        e.sweep(zeros, 1, [&](Value col, Value mask, ValueRange acc) {
          Value s = firstS(col, mask);
          return SmallVector<Value>{e.add(acc[0], e.mul(s, s))};
        });
    return e.reduceSlots(squares);
  };
  // LayerNorm: the row's statistics are those of d = s - s0, the shift
  // s0 splatted (buildLayerNormShift): when the mean dwarfs the spread, d
  // is exact and small, so its sum (and the mean, kept as s0 + mean(d))
  // does not lose the spread to rounding.
  // (Summed with vdpbf16ps, d = s: the shift is 0.)
  Value shift;
  auto firstD = [&](Value col, Value mask) {
    return e.maskOff(e.sub(firstS(col, mask), shift), mask);
  };
  auto laterD = [&](RowEmitter &r, Value col, Value mask) {
    return r.sub(laterS(r, col, mask), shift);
  };
  // One sweep of the sums of d and d^2: mean(d) and M2 = sum(d^2) - n
  // mean(d)^2, which cancels only when the shift is far from the mean
  // (then the centred sweep below recomputes it).
  auto shiftedSums = [&]() -> std::pair<Value, Value> {
    SmallVector<Value> sumState(2 * e.getSlots(), e.zeroVector());
    SmallVector<Value> sums =
        e.sweep(sumState, 2, [&](Value col, Value mask, ValueRange acc) {
          Value d = firstD(col, mask);
          return SmallVector<Value>{e.add(acc[0], d),
                                    e.add(acc[1], e.mul(d, d))};
        });
    Value sumD = e.reduceSlots(RowEmitter::slotField(sums, 2, 0));
    Value mean = e.mul(sumD, invCols);
    return {mean, e.sub(e.reduceSlots(RowEmitter::slotField(sums, 2, 1)),
                        e.mul(sumD, mean))};
  };
  // Both algorithms lose precision when the shift is far from the mean
  // (an outlier among the first three values): the sums by cancelling in
  // sum(d^2) - n mean^2, Welford's running means by rounding at the
  // magnitude of the shift. When n mean^2 > farShift * M2 (or M2 is NaN)
  // and the mean is finite, one more sweep sums d - mean and its square,
  // and corrects both (the corrected two-pass algorithm): whether it must.
  auto farFromMean = [&](Value mean, Value m2, Value dotTiny,
                         double farShift) -> Value {
    Value nMeanSq =
        e.mul(e.mul(mean, mean), constLike(mean, static_cast<double>(cols)));
    // Not n mean^2 <= farShift * M2: greater, or unordered (M2 NaN).
    Value notNear = arith::CmpFOp::create(b, arith::CmpFPredicate::UGT, nMeanSq,
                                          e.mul(m2, constLike(m2, farShift)));
    Value inf = constLike(mean, std::numeric_limits<float>::infinity());
    Value finite = arith::CmpFOp::create(b, arith::CmpFPredicate::OLT,
                                         math::AbsFOp::create(b, mean), inf);
    if (dotTiny)
      notNear = arith::OrIOp::create(b, notNear, dotTiny);
    // Sums of squares that overflowed (M2 = +inf: the subtraction fused
    // with the product, so inf - n mean^2 stays inf and does not compare
    // as far) while the row's own spread may fit: the centred sweep
    // decides. Unshifted bf16 sums (vdpbf16ps) overflowed at |x| of
    // sqrt(FLT_MAX / n), 2.9e17 for 4096 columns, giving rstd = 0 where
    // the variance was 9e30.
    notNear = arith::OrIOp::create(
        b, notNear,
        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, m2, inf));
    return arith::AndIOp::create(b, finite, notNear);
  };
  // The centred sweep of the row (see farFromMean): the mean relative to
  // the new shift, M2, and that shift, the first estimate of the mean, s0
  // + mean rounded to f32. Far means the shift was far from the mean (an
  // outlier among the first three values; unshifted vdpbf16ps sums), so
  // the first mean (of d) is about as large as s0 - mean: adding the
  // correction to it would round both at that magnitude, not the mean's
  // (bf16 rows of mean 1000 and spread 1 came out 3e-5 off; f32 rows of
  // mean 0.42 whose first three values were 1e4, 6e-4). The correction is
  // instead the mean of s minus the new shift, which the TwoSum of centre
  // below keeps whole.
  auto centredSweep = [&](Value s0, Value mean) -> std::array<Value, 3> {
    Value inf = e.f32Const(std::numeric_limits<float>::infinity());
    Value newShift = arith::AddFOp::create(b, s0, mean);
    Value newShiftVec = rare.splat(newShift);
    SmallVector<Value> sums =
        rare.sweep({rare.zeroVector(), rare.zeroVector()}, 2,
                   [&](Value col, Value mask, ValueRange acc) {
                     Value d = rare.maskOff(
                         rare.sub(laterS(rare, col, mask), newShiftVec), mask);
                     return SmallVector<Value>{
                         rare.add(acc[0], d), rare.add(acc[1], rare.mul(d, d))};
                   });
    Value sumD = rare.reduce(sums[0]);
    // A division: n equal deviations d (a row of one value, its first
    // mean total * (1/n) an ulp off) give exactly d, and M2 exactly 0,
    // where sumD * (1/n) left a positive variance and an offset of y
    // behind. (This sweep is the rare path; the common one keeps 1/n.)
    Value correction =
        arith::DivFOp::create(b, sumD, e.f32Const(static_cast<double>(cols)));
    Value squares = rare.reduce(sums[1]);
    Value centredM2 = e.sub(squares, e.mul(sumD, correction));
    // sumD * correction <= squares (Cauchy-Schwarz): where the squares
    // overflowed, that product may too, and inf - inf is NaN unless the
    // subtraction fuses with the product (no FMA: SSE and AVX1 targets
    // gave rstd = NaN for rows of +-1e30). The squares' +inf stands.
    centredM2 = arith::SelectOp::create(
        b, arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, squares, inf),
        inf, centredM2);
    return {correction, centredM2, newShift};
  };
  // LayerNorm's rstd, centre and offset from the final mean (of d), M2
  // and shift: the row's mean as an f32 centre plus the rounding error of
  // that centre, scaled by rstd (the output is (s - centre) * rstd -
  // offset, one rounding of s - centre, then an FMA).
  auto finishLayerNorm = [&](Value mean, Value m2,
                             Value s0) -> std::tuple<Value, Value, Value> {
    // Rounding can leave M2 a little below 0 where the row is constant.
    m2 = arith::MaximumFOp::create(b, m2, constLike(m2, 0.0));
    Value var = e.mul(m2, splatLike(m2, invCols));
    Value rstd = arith::DivFOp::create(
        b, constLike(var, 1.0),
        math::SqrtOp::create(
            b, arith::AddFOp::create(b, var, splatLike(var, eps))));
    // centre = s0 + mean rounded; lo its rounding error (TwoSum, exact).
    Value centre = arith::AddFOp::create(b, s0, mean);
    Value back = arith::SubFOp::create(b, centre, s0);
    Value lo = arith::AddFOp::create(
        b, arith::SubFOp::create(b, s0, arith::SubFOp::create(b, centre, back)),
        arith::SubFOp::create(b, mean, back));
    return {rstd, centre, arith::MulFOp::create(b, lo, rstd)};
  };

  Value rstd, centre, offset;
  if (laneStats) {
    // The group's rows in lanes: each row's sweeps and sums, row after row
    // in a loop (one copy of the sweeps: unrolled per row, a group of 16
    // took 3-8x as long to compile), kept on the stack, one lane a row;
    // then the statistics of all of them at once, kept for the output
    // sweeps. The lanes start as zeros (lanes past a short last group
    // keep an earlier group's finite values), so that no lane is ever
    // undefined.
    auto laneType = VectorType::get({groupRows}, b.getF32Type());
    auto statsType = MemRefType::get({groupRows}, b.getF32Type());
    int64_t perRow = isLayerNorm ? 3 : 1;
    SmallVector<Value> slots; // LayerNorm: the mean (of d), M2, the shift
    for (int64_t k = 0; k < perRow; ++k) {
      slots.push_back(createAlloca(statsType));
      OpBuilder::InsertionGuard entryGuard(b);
      b.setInsertionPointAfter(slots.back().getDefiningOp());
      Value zeros = arith::ConstantOp::create(
          b, cast<TypedAttr>(b.getZeroAttr(laneType)));
      vector::StoreOp::create(b, zeros, slots.back(), ValueRange{e.index(0)});
    }
    auto loadLane = [&](Value buffer, Value slot) -> Value {
      return memref::LoadOp::create(b, buffer, ValueRange{slot});
    };
    {
      auto rowLoop = scf::ForOp::create(b, e.index(0), groupCount, e.index(1));
      OpBuilder::InsertionGuard loopGuard(b);
      b.setInsertionPointToStart(rowLoop.getBody());
      Value slot = rowLoop.getInductionVar();
      row = arith::AddIOp::create(b, groupStart, slot);
      SmallVector<Value> values;
      if (!isLayerNorm) {
        values = {plainSquares()};
      } else {
        Value s0 = buildLayerNormShift(b, x, residual, sumElement, row, cols);
        shift = e.splat(s0);
        auto [mean, m2] = shiftedSums();
        values = {mean, m2, s0};
      }
      for (int64_t k = 0; k < perRow; ++k)
        memref::StoreOp::create(b, values[k], slots[k], ValueRange{slot});
    }
    row = groupStart;
    auto loadLanes = [&](Value buffer) -> Value {
      return vector::LoadOp::create(b, laneType, buffer,
                                    ValueRange{e.index(0)});
    };
    SmallVector<Value> stats;
    for (Value slot : slots)
      stats.push_back(loadLanes(slot));
    auto keep = [&](Value vector, Value buffer) {
      vector::StoreOp::create(b, vector, buffer, ValueRange{e.index(0)});
    };
    if (!isLayerNorm) {
      rstd = rmsRstd(stats[0]);
    } else {
      // Rows whose shift lay far from the mean take the centred sweep one
      // by one, their lanes corrected on the stack.
      Value far = farFromMean(stats[0], stats[1], Value(), kFarShift);
      Value anyFar =
          vector::ReductionOp::create(b, vector::CombiningKind::OR, far);
      auto corrected =
          scf::IfOp::create(b, TypeRange{laneType, laneType, laneType}, anyFar,
                            /*addThenBlock=*/true, /*addElseBlock=*/true);
      {
        OpBuilder::InsertionGuard ifGuard(b);
        b.setInsertionPointToStart(corrected.thenBlock());
        Value farSlots = createAlloca(statsType);
        keep(arith::SelectOp::create(b, far, constLike(stats[0], 1.0),
                                     constLike(stats[0], 0.0)),
             farSlots);
        auto rowLoop =
            scf::ForOp::create(b, e.index(0), groupCount, e.index(1));
        {
          OpBuilder::InsertionGuard loopGuard(b);
          b.setInsertionPointToStart(rowLoop.getBody());
          Value slot = rowLoop.getInductionVar();
          row = arith::AddIOp::create(b, groupStart, slot);
          auto ifFar = scf::IfOp::create(
              b,
              arith::CmpFOp::create(b, arith::CmpFPredicate::ONE,
                                    loadLane(farSlots, slot), e.f32Const(0.0)),
              /*withElseRegion=*/false);
          b.setInsertionPointToStart(ifFar.thenBlock());
          std::array<Value, 3> again =
              centredSweep(loadLane(slots[2], slot), loadLane(slots[0], slot));
          // The mean, M2 and shift: the slots' order.
          for (int64_t k = 0; k < 3; ++k)
            memref::StoreOp::create(b, again[k], slots[k], ValueRange{slot});
          row = groupStart;
        }
        SmallVector<Value> reloaded;
        for (Value slot : slots)
          reloaded.push_back(loadLanes(slot));
        scf::YieldOp::create(b, reloaded);
        b.setInsertionPointToStart(corrected.elseBlock());
        scf::YieldOp::create(b, stats);
      }
      std::tie(rstd, centre, offset) =
          finishLayerNorm(corrected.getResult(0), corrected.getResult(1),
                          corrected.getResult(2));
      keep(centre, groupCentre);
      keep(offset, groupOffset);
    }
    keep(rstd, groupRstd);
    // The mean and rstd outputs, row by row from the slots.
    if (meanOut || rstdOut) {
      auto rowLoop = scf::ForOp::create(b, e.index(0), groupCount, e.index(1));
      OpBuilder::InsertionGuard loopGuard(b);
      b.setInsertionPointToStart(rowLoop.getBody());
      Value slot = rowLoop.getInductionVar();
      Value at = arith::AddIOp::create(b, groupStart, slot);
      if (meanOut && isLayerNorm)
        memref::StoreOp::create(
            b, memref::LoadOp::create(b, groupCentre, ValueRange{slot}),
            meanOut, ValueRange{at});
      if (rstdOut)
        memref::StoreOp::create(
            b, memref::LoadOp::create(b, groupRstd, ValueRange{slot}), rstdOut,
            ValueRange{at});
    }
  } else if (!isLayerNorm) {
    Value sumSquares;
    if (dotRows) {
      Value squares = e.dotSums(dotRowVector, /*withSum=*/false).first;
      auto redo = scf::IfOp::create(b, TypeRange{b.getF32Type()},
                                    dotTooSmall(squares),
                                    /*addThenBlock=*/true,
                                    /*addElseBlock=*/true);
      OpBuilder::InsertionGuard ifGuard(b);
      b.setInsertionPointToStart(redo.thenBlock());
      SmallVector<Value> again = rare.sweep(
          {rare.zeroVector()}, 1, [&](Value col, Value mask, ValueRange acc) {
            Value s = laterS(rare, col, mask); // masked lanes read 0
            return SmallVector<Value>{rare.add(acc[0], rare.mul(s, s))};
          });
      scf::YieldOp::create(b, rare.reduce(again[0]));
      b.setInsertionPointToStart(redo.elseBlock());
      scf::YieldOp::create(b, squares);
      sumSquares = redo.getResult(0);
    } else {
      sumSquares = plainSquares();
    }
    rstd = rmsRstd(sumSquares);
  } else {
    Value s0 = dotRows
                   ? e.f32Const(0.0)
                   : buildLayerNormShift(b, x, residual, sumElement, row, cols);
    shift = e.splat(s0);
    Value mean, m2;
    // With vdpbf16ps, a sum of squares too small to trust takes the
    // centred sweep below (plain f32), like a far shift.
    Value dotTiny;
    if (dotRows) {
      auto [squares, total] = e.dotSums(dotRowVector, /*withSum=*/true);
      dotTiny = dotTooSmall(squares);
      mean = e.mul(total, invCols);
      m2 = e.sub(squares, e.mul(total, mean));
    } else if (!knobs.welford) {
      std::tie(mean, m2) = shiftedSums();
    } else {
      // Per-lane Welford over the main part: every lane has seen the same
      // count after each iteration, so 1/n is one scalar division.
      // Per slot: the running mean, the running M2.
      SmallVector<Value> state(2 * e.getSlots(), e.zeroVector());
      Value mainMean, mainM2;
      double mainCount = static_cast<double>(e.getMainElements());
      if (e.getMainIters() > 0) {
        SmallVector<Value> lanes =
            e.sweepMain(state, 2, [&](Value col, Value mask, ValueRange acc) {
              // n = col / (width * slots) + 1 for every lane of this group.
              Value iter = arith::DivUIOp::create(
                  b, col,
                  e.index(e.getVectorType().getNumElements() * e.getSlots()));
              Value n = arith::UIToFPOp::create(
                  b, b.getF32Type(),
                  arith::IndexCastUIOp::create(
                      b, b.getI64Type(),
                      arith::AddIOp::create(b, iter, e.index(1))));
              Value invN =
                  e.splat(arith::DivFOp::create(b, e.f32Const(1.0), n));
              Value s = firstD(col, mask);
              Value delta = e.sub(s, acc[0]);
              Value newMean = e.add(acc[0], e.mul(delta, invN));
              Value newM2 = e.add(acc[1], e.mul(delta, e.sub(s, newMean)));
              return SmallVector<Value>{newMean, newM2};
            });
        // Merge lanes of equal count: mean of means, M2 sums plus the
        // spread of the lane means.
        SmallVector<Value> laneMeans = RowEmitter::slotField(lanes, 2, 0);
        SmallVector<Value> laneM2s = RowEmitter::slotField(lanes, 2, 1);
        int64_t numLanes = e.getVectorType().getNumElements() * e.getSlots();
        mainMean = e.mul(e.reduceSlots(laneMeans),
                         e.f32Const(1.0 / static_cast<double>(numLanes)));
        Value mainMeanVec = e.splat(mainMean);
        SmallVector<Value> spreads;
        for (Value laneMean : laneMeans) {
          Value d = e.sub(laneMean, mainMeanVec);
          spreads.push_back(e.mul(d, d));
        }
        Value perLaneCount =
            e.f32Const(mainCount / static_cast<double>(numLanes));
        mainM2 = e.add(e.reduceSlots(laneM2s),
                       e.mul(perLaneCount, e.reduceSlots(spreads)));
      }
      double restCount = static_cast<double>(cols) - mainCount;
      Value restMean, restM2;
      if (restCount > 0) {
        // The few columns left: exact two-pass statistics of their own.
        SmallVector<Value> restSum =
            e.sweepRest(zeros, 1, [&](Value col, Value mask, ValueRange acc) {
              return SmallVector<Value>{e.add(acc[0], firstD(col, mask))};
            });
        restMean = e.mul(e.reduceSlots(restSum), e.f32Const(1.0 / restCount));
        Value restMeanVec = e.splat(restMean);
        SmallVector<Value> restSquares =
            e.sweepRest(zeros, 1, [&](Value col, Value mask, ValueRange acc) {
              Value d =
                  e.maskOff(e.sub(laterD(e, col, mask), restMeanVec), mask);
              return SmallVector<Value>{e.add(acc[0], e.mul(d, d))};
            });
        restM2 = e.reduceSlots(restSquares);
      }
      if (!mainMean) {
        mean = restMean;
        m2 = restM2;
      } else if (!restMean) {
        mean = mainMean;
        m2 = mainM2;
      } else {
        // Chan et al.: merge (n1, mean1, M2_1) with (n2, mean2, M2_2).
        Value delta = e.sub(restMean, mainMean);
        mean = e.add(mainMean, e.mul(delta, e.f32Const(restCount / cols)));
        m2 = e.add(e.add(mainM2, restM2),
                   e.mul(e.mul(delta, delta),
                         e.f32Const(mainCount * restCount / cols)));
      }
    }
    if (knobs.welford) {
      // An infinite input makes Welford's running mean NaN (inf - inf)
      // where the contract's sum / C is +-inf. Only then, take the mean
      // from a plain sum pass over the row.
      Value isNaN =
          arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, mean, mean);
      auto fallback = scf::IfOp::create(b, TypeRange{b.getF32Type()}, isNaN,
                                        /*addThenBlock=*/true,
                                        /*addElseBlock=*/true);
      {
        OpBuilder::InsertionGuard ifGuard(b);
        b.setInsertionPointToStart(fallback.thenBlock());
        SmallVector<Value> sums = rare.sweep(
            {rare.zeroVector()}, 1, [&](Value col, Value mask, ValueRange acc) {
              return SmallVector<Value>{rare.add(
                  acc[0], rare.maskOff(laterD(rare, col, mask), mask))};
            });
        scf::YieldOp::create(b, e.mul(rare.reduceSlots(sums), invCols));
        b.setInsertionPointToStart(fallback.elseBlock());
        scf::YieldOp::create(b, mean);
      }
      mean = fallback.getResult(0);
    }
    bool narrowOutputs =
        dotRows && !meanOut && !rstdOut && elementBytes(y) == 2;
    Value far = farFromMean(mean, m2, dotTiny,
                            narrowOutputs ? kFarShiftNarrowOutputs : kFarShift);
    auto recentred = scf::IfOp::create(
        b, TypeRange{b.getF32Type(), b.getF32Type(), b.getF32Type()}, far,
        /*addThenBlock=*/true, /*addElseBlock=*/true);
    {
      OpBuilder::InsertionGuard ifGuard(b);
      b.setInsertionPointToStart(recentred.thenBlock());
      scf::YieldOp::create(b, ArrayRef<Value>(centredSweep(s0, mean)));
      b.setInsertionPointToStart(recentred.elseBlock());
      scf::YieldOp::create(b, ValueRange{mean, m2, s0});
    }
    std::tie(rstd, centre, offset) = finishLayerNorm(
        recentred.getResult(0), recentred.getResult(1), recentred.getResult(2));
    if (meanOut)
      memref::StoreOp::create(b, centre, meanOut, ValueRange{row});
  }
  if (rstdOut && !laneStats)
    memref::StoreOp::create(b, rstd, rstdOut, ValueRange{row});

  // Output pass: y = (s - mean) * rstd * gamma + beta, over one row or a
  // pair of rows sharing the loads of gamma and beta.
  struct RowStats {
    Value row, centre, offset, rstd; // vectors; centre, offset null (RMSNorm)
    Value present;                   // i1, or null: the row is always there
  };
  // With prefetch_rows = d, each row's sweep also prefetches the inputs of
  // the row d rows (d groups) ahead, the last of the task's rows at most:
  // the output pass reads the row from L1 and would leave the memory idle.
  SmallVector<Value> inputs;
  if (knobs.prefetchRows > 0) {
    inputs.push_back(x);
    if (residual)
      inputs.push_back(residual);
  }
  auto prefetchRowOf = [&](Value rowIndex) -> Value {
    Value ahead = arith::AddIOp::create(
        b, rowIndex, e.index(knobs.prefetchRows * groupRows));
    return arith::MinSIOp::create(b, ahead,
                                  arith::SubIOp::create(b, rows, e.index(1)));
  };
  // One prefetch per 64-byte line of `input` the current step covers: at
  // the step's column and every line further in a vector wider than a line
  // (within the row: a tail may end before them); for vectors narrower than
  // a line, only on the steps that start a line's worth of columns (every
  // step where the steps do not tile lines evenly).
  auto prefetchOffsets = [&](Value input, Value mask) {
    int64_t bytes = cast<MemRefType>(input.getType())
                        .getElementType()
                        .getIntOrFloatBitWidth() /
                    8;
    int64_t lineColumns = std::max<int64_t>(1, kLineBytes / bytes);
    RowEmitter::StepPosition at = e.getStepPosition();
    SmallVector<int64_t> offsets;
    // A sweepFrom step: its full vectors prefetch every line they cover, at
    // every step where they are narrower than a line (the steps start
    // anywhere in a line); its masked steps (a head and a tail, a few
    // columns) none.
    if (at.dynamic) {
      if (mask)
        return offsets;
      for (int64_t offset = 0; offset < e.getWidth(); offset += lineColumns)
        offsets.push_back(offset);
      return offsets;
    }
    if (e.getWidth() >= lineColumns) {
      for (int64_t offset = 0; offset < e.getWidth(); offset += lineColumns)
        if (!mask || at.inGroupLoop || at.column + offset < e.getColumns())
          offsets.push_back(offset);
      return offsets;
    }
    bool evenSteps = !at.inGroupLoop ||
                     e.getGroupElements() % lineColumns == 0;
    if (!evenSteps || at.column % lineColumns == 0)
      offsets.push_back(0);
    return offsets;
  };
  // The prefetches of one output step: for each input and each line the
  // step covers (prefetchOffsets), the element `at` gives for that
  // column offset in the step, as (row, column).
  auto emitPrefetches =
      [&](Value mask,
          function_ref<std::pair<Value, Value>(int64_t offset)> at) {
        for (Value input : inputs)
          for (int64_t offset : prefetchOffsets(input, mask)) {
            auto [aheadRow, aheadCol] = at(offset);
            memref::PrefetchOp::create(b, input,
                                       ValueRange{aheadRow, aheadCol},
                                       /*isWrite=*/false, /*localityHint=*/2,
                                       /*isDataCache=*/true);
          }
      };
  auto plusOffset = [&](Value index, int64_t offset) -> Value {
    return offset ? arith::AddIOp::create(b, index, e.index(offset)) : index;
  };
  // Prefetches, at one output step, of the same columns of row `aheadRow`.
  auto prefetchAhead = [&](Value aheadRow, Value col, Value mask) {
    emitPrefetches(mask, [&](int64_t offset) {
      return std::make_pair(aheadRow, plusOffset(col, offset));
    });
  };
  // One row's output step: y at `col`, from gamma and beta loaded (`g`,
  // `bt`; null where absent).
  auto outputRow = [&](const RowStats &stats, Value g, Value bt, Value col,
                       Value mask, bool stream) {
    // A row that may be absent (the second of a pair, when the row count
    // is odd) is swept under a uniform branch.
    OpBuilder::InsertionGuard rowGuard(b);
    if (stats.present) {
      auto ifPresent = scf::IfOp::create(b, stats.present,
                                         /*withElseRegion=*/false);
      b.setInsertionPointToStart(ifPresent.thenBlock());
    }
    row = stats.row;
    Value s = laterS(e, col, mask);
    Value out = stats.centre ? e.sub(e.mul(e.sub(s, stats.centre), stats.rstd),
                                     stats.offset)
                             : e.mul(s, stats.rstd);
    if (g)
      out = e.mul(out, g);
    if (bt)
      out = e.add(out, bt);
    e.store(y, {stats.row, col}, out, mask, stream);
  };
  auto loadParams = [&](Value col, Value mask) -> std::pair<Value, Value> {
    return {gamma ? e.load(gamma, {col}, mask) : Value(),
            beta ? e.load(beta, {col}, mask) : Value()};
  };
  // One row or a pair: each step covers every row, sharing gamma and beta;
  // from column `head` on where one is given (sweepFrom), else from 0.
  auto outputSweep = [&](ArrayRef<RowStats> rowStats, Value head, bool stream) {
    e.usePairedBf16(outputPaired);
    SmallVector<Value> ahead;
    if (!inputs.empty())
      for (const RowStats &stats : rowStats)
        ahead.push_back(prefetchRowOf(stats.row));
    auto stepOf = [&](bool streams) {
      return [&, streams](Value col, Value mask, ValueRange) {
        auto [g, bt] = loadParams(col, mask);
        for (const RowStats &stats : rowStats)
          outputRow(stats, g, bt, col, mask, streams);
        for (Value aheadRow : ahead)
          prefetchAhead(aheadRow, col, mask);
        return SmallVector<Value>{};
      };
    };
    auto step = stepOf(stream);
    if (head) {
      auto plain = stepOf(false);
      // Columns of y a line holds, at least a vector's.
      e.sweepFrom(head,
                  std::max<int64_t>(e.getWidth(), kLineBytes / elementBytes(y)),
                  step, plain);
    } else {
      e.sweep({}, 0, step);
    }
  };
  // A group of three rows or more: tiles of kGroupTileColumns columns (of
  // the main part, whole groups of vectors), each swept by every row of
  // the group in turn; then what the main part leaves, row by row. With
  // prefetch_rows = d, the rows d groups ahead are prefetched in their
  // memory order, one line per line written: the step that writes the
  // group's s-th element (in the order the steps write them) prefetches
  // element s of those rows, row (s / columns) and column (s % columns),
  // the last of the task's rows at most. (The same columns of the row d
  // groups ahead, as single rows and pairs take them, ran 0.7-0.8x single
  // rows on 4096 f32 columns; in this order a C++ model of the loop ran
  // 1.1-1.2x.)
  auto tiledSweep = [&](Value start, function_ref<RowStats(Value)> statsOf,
                        Value count, bool stream) {
    e.usePairedBf16(outputPaired);
    Value nextStart, lastRow;
    if (!inputs.empty()) {
      nextStart = arith::AddIOp::create(
          b, start, e.index(knobs.prefetchRows * groupRows));
      lastRow = arith::SubIOp::create(b, rows, e.index(1));
    }
    auto forEachRow = [&](function_ref<void(Value, const RowStats &)> body) {
      auto loop = scf::ForOp::create(b, e.index(0), count, e.index(1));
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      body(loop.getInductionVar(), statsOf(loop.getInductionVar()));
    };
    // A row's sweep, whose step at `col` writes the group's element
    // linearBase + (col - colStart).
    auto sweepRow = [&](const RowStats &stats, Value linearBase,
                        Value colStart,
                        function_ref<void(RowEmitter::StepFn)> sweep) {
      sweep([&](Value col, Value mask, ValueRange) {
        auto [g, bt] = loadParams(col, mask);
        outputRow(stats, g, bt, col, mask, stream);
        if (!nextStart)
          return SmallVector<Value>{};
        Value linear = arith::AddIOp::create(
            b, linearBase, arith::SubIOp::create(b, col, colStart));
        emitPrefetches(mask, [&](int64_t offset) {
          Value element = plusOffset(linear, offset);
          Value aheadRow = arith::MinSIOp::create(
              b,
              arith::AddIOp::create(
                  b, nextStart,
                  arith::DivUIOp::create(b, element, e.index(cols))),
              lastRow);
          return std::make_pair(
              aheadRow, arith::RemUIOp::create(b, element, e.index(cols))
                            .getResult());
        });
        return SmallVector<Value>{};
      });
    };
    // Columns per iteration of the group loop (a group of vectors).
    int64_t stepColumns = e.getGroupElements();
    if (int64_t mainIters = e.getMainIters()) {
      int64_t tileGroups =
          std::max<int64_t>(1, kGroupTileColumns / stepColumns);
      int64_t tiles = llvm::divideCeil(mainIters, tileGroups);
      OpBuilder::InsertionGuard guard(b);
      // One tile: constant bounds (a short row's group loop unrolls).
      Value first = e.index(0), last = e.index(mainIters);
      if (tiles > 1) {
        auto tileLoop =
            scf::ForOp::create(b, e.index(0), e.index(tiles), e.index(1));
        b.setInsertionPointToStart(tileLoop.getBody());
        first = arith::MulIOp::create(b, tileLoop.getInductionVar(),
                                      e.index(tileGroups));
        last = arith::MinSIOp::create(
            b, arith::AddIOp::create(b, first, e.index(tileGroups)),
            e.index(mainIters));
      }
      // The tile's first column, and its columns.
      Value tileStart = arith::MulIOp::create(b, first, e.index(stepColumns));
      Value tileColumns = arith::MulIOp::create(
          b, arith::SubIOp::create(b, last, first), e.index(stepColumns));
      forEachRow([&](Value k, const RowStats &stats) {
        // The tiles before this one, all rows; this tile, rows before k.
        Value linearBase = arith::AddIOp::create(
            b, arith::MulIOp::create(b, count, tileStart),
            arith::MulIOp::create(b, k, tileColumns));
        sweepRow(stats, linearBase, tileStart, [&](RowEmitter::StepFn step) {
          e.emitGroupLoop(first, last, {}, 0, step);
        });
      });
    }
    int64_t mainElements = e.getMainElements();
    if (mainElements < cols)
      forEachRow([&](Value k, const RowStats &stats) {
        Value linearBase = arith::AddIOp::create(
            b, arith::MulIOp::create(b, count, e.index(mainElements)),
            arith::MulIOp::create(b, k, e.index(cols - mainElements)));
        sweepRow(stats, linearBase, e.index(mainElements),
                 [&](RowEmitter::StepFn step) { e.sweepRest({}, 0, step); });
      });
  };
  // With streaming stores, y's full vectors are stored non-temporally where
  // they are aligned for it (x86 has no unaligned non-temporal vector
  // store). A single row or a pair (`fromHead`) is swept from its first
  // column on a cache line (sweepFrom: the vectors of whole lines stream,
  // the columns before and after take ordinary stores), when its rows
  // start at a multiple of the element size, all as far from a line: a
  // host's heap buffer, 16 bytes into a page, streams as an aligned one
  // does. A larger group (its column tiles start at column 0) streams when
  // every row is vector-aligned. Any other rows take
  // ordinary stores: `sweep` is emitted under a branch, given the head
  // (null: column 0) and whether to stream.
  // (Widened or permuted copies of gamma and beta in the paired bf16 order
  // hold that order within vectors starting at multiples of the width:
  // such rows stream only when aligned.)
  bool headsMove = !(outputPaired && !widenings.empty());
  auto emitOutput = [&](ArrayRef<Value> alignRows, bool fromHead,
                        function_ref<void(Value head, bool stream)> sweep) {
    if (!knobs.streaming)
      return sweep(Value(), false);
    fromHead = fromHead && headsMove;
    Type yElement = cast<MemRefType>(y.getType()).getElementType();
    // From a head: whole cache lines (see sweepFrom); else the vector.
    int64_t alignment = fromHead ? kLineBytes : e.streamAlignment(yElement);
    int64_t elementSize = elementBytes(y);
    auto metadata = memref::ExtractStridedMetadataOp::create(b, y);
    Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, y);
    SmallVector<Value> misalignments;
    for (Value alignRow : alignRows) {
      Value element = arith::AddIOp::create(
          b, metadata.getOffset(),
          arith::MulIOp::create(b, alignRow, metadata.getStrides()[0]));
      Value address = arith::AddIOp::create(
          b, base, arith::MulIOp::create(b, element, e.index(elementSize)));
      misalignments.push_back(
          arith::AndIOp::create(b, address, e.index(alignment - 1)));
    }
    auto equal = [&](Value l, Value r) -> Value {
      return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, l, r);
    };
    Value first = misalignments.front();
    Value streams = equal(
        fromHead ? arith::AndIOp::create(b, first, e.index(elementSize - 1))
                 : first,
        e.index(0));
    for (Value misalignment : ArrayRef<Value>(misalignments).drop_front())
      streams = arith::AndIOp::create(b, streams, equal(misalignment, first));
    auto branch = scf::IfOp::create(b, streams, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(branch.thenBlock());
    Value head;
    if (fromHead) {
      // Elements up to the next line, at most the row's.
      Value bytes = arith::AndIOp::create(
          b, arith::SubIOp::create(b, e.index(alignment), first),
          e.index(alignment - 1));
      head = arith::MinUIOp::create(
          b, arith::DivUIOp::create(b, bytes, e.index(elementSize)),
          e.index(cols));
    }
    sweep(head, true);
    b.setInsertionPointToStart(branch.elseBlock());
    sweep(Value(), false);
  };
  if (!grouped) {
    RowStats stats{row, centre ? e.splat(centre) : Value(),
                   offset ? e.splat(offset) : Value(), e.splat(rstd)};
    emitOutput({row}, /*fromHead=*/true, [&](Value head, bool stream) {
      outputSweep(stats, head, stream);
    });
  } else {
    // Keep this row's statistics (finished in lanes: kept already), then
    // sweep the group (or the last rows).
    if (!laneStats) {
      Value slot = arith::SubIOp::create(b, row, groupStart);
      memref::StoreOp::create(b, rstd, groupRstd, ValueRange{slot});
      if (centre) {
        memref::StoreOp::create(b, centre, groupCentre, ValueRange{slot});
        memref::StoreOp::create(b, offset, groupOffset, ValueRange{slot});
      }
      b.setInsertionPointAfter(statsBlock->getParentOp());
    }
    auto statsOf = [&](Value slotIndex) {
      RowStats stats;
      stats.row = arith::AddIOp::create(b, groupStart, slotIndex);
      stats.rstd =
          e.splat(memref::LoadOp::create(b, groupRstd, ValueRange{slotIndex}));
      if (centre) {
        stats.centre = e.splat(
            memref::LoadOp::create(b, groupCentre, ValueRange{slotIndex}));
        stats.offset = e.splat(
            memref::LoadOp::create(b, groupOffset, ValueRange{slotIndex}));
      }
      return stats;
    };
    // The group's second row (its first, for a group of one row): every
    // row of the group is aligned for streaming stores when the first and
    // the second are (the stride then keeps them so).
    Value second = arith::SubIOp::create(b, groupCount, e.index(1));
    Value secondRow = arith::AddIOp::create(
        b, groupStart, arith::MinSIOp::create(b, second, e.index(1)));
    if (groupRows == 2) {
      Value full = arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                         groupCount, e.index(2));
      // The second row's statistics slot, clamped to the first when the
      // row count is odd (its sweep is then skipped, but reads valid
      // values).
      RowStats first = statsOf(e.index(0)), next = statsOf(second);
      next.present = full;
      emitOutput({first.row, secondRow}, /*fromHead=*/true,
                 [&](Value head, bool stream) {
                   outputSweep({first, next}, head, stream);
                 });
    } else {
      emitOutput({groupStart, secondRow}, /*fromHead=*/false,
                 [&](Value, bool stream) {
                   tiledSweep(groupStart, statsOf, groupCount, stream);
                 });
    }
  }

  rewriter.eraseOp(op);
  return success();
}

/// Lowers norm.layer_norm or norm.rms_norm.
template <typename NormOpT> struct LowerNorm : OpRewritePattern<NormOpT> {
  LowerNorm(MLIRContext *context, const NormToVectorDefaults &defaults)
      : OpRewritePattern<NormOpT>(context), defaults(defaults) {}
  LogicalResult matchAndRewrite(NormOpT op,
                                PatternRewriter &rewriter) const override {
    return lowerNormOp(op, rewriter, defaults,
                       /*isLayerNorm=*/std::is_same_v<NormOpT, LayerNormOp>);
  }
  NormToVectorDefaults defaults;
};

struct LowerAdd : OpRewritePattern<AddOp> {
  LowerAdd(MLIRContext *context, const NormToVectorDefaults &defaults)
      : OpRewritePattern(context), defaults(defaults) {}
  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    LoweringKnobs knobs = resolveKnobs(std::nullopt, defaults);
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    int64_t cols = cast<MemRefType>(op.getLhs().getType()).getDimSize(1);
    RowEmitter e(b, cols, knobs);
    if (llvm::all_of(op->getOperands(), [](Value buffer) {
          return cast<MemRefType>(buffer.getType()).getElementType().isBF16();
        }))
      e.usePairedBf16();
    Value rows = memref::DimOp::create(b, op.getLhs(), e.index(0));
    auto rowLoop = scf::ForOp::create(b, e.index(0), rows, e.index(1));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(rowLoop.getBody());
    Value row = rowLoop.getInductionVar();
    e.sweep({}, 0, [&](Value col, Value mask, ValueRange) {
      Value s = e.add(e.load(op.getLhs(), {row, col}, mask),
                      e.load(op.getRhs(), {row, col}, mask));
      e.store(op.getSum(), {row, col}, s, mask);
      return SmallVector<Value>{};
    });
    rewriter.eraseOp(op);
    return success();
  }
  NormToVectorDefaults defaults;
};

struct ConvertNormToVectorPass
    : normjit::impl::ConvertNormToVectorPassBase<ConvertNormToVectorPass> {
  using Base::Base;

  void runOnOperation() override {
    if (vectorWidth < 1 || vectorWidth > 64 ||
        !llvm::isPowerOf2_64(static_cast<uint64_t>(vectorWidth)) ||
        accumulators < 1 || accumulators > 16) {
      getOperation().emitError("convert-norm-to-vector: vector-width must be "
                               "a power of two in [1, 64] and accumulators "
                               "in [1, 16]");
      return signalPassFailure();
    }
    // An op tuned for the GPU is said so, not left to the conversion's
    // "failed to legalize".
    WalkResult gpuOps = getOperation().walk([](Operation *op) {
      std::optional<ConfigAttr> config;
      if (auto layerNorm = dyn_cast<LayerNormOp>(op))
        config = layerNorm.getConfig();
      else if (auto rmsNorm = dyn_cast<RMSNormOp>(op))
        config = rmsNorm.getConfig();
      if (!config || !config->isGPU())
        return WalkResult::advance();
      op->emitOpError("has a #norm.config<gpu, ...>: it is lowered by "
                      "convert-norm-to-gpu inside a gpu.func kernel, not for "
                      "the CPU");
      return WalkResult::interrupt();
    });
    if (gpuOps.wasInterrupted())
      return signalPassFailure();
    NormToVectorDefaults defaults{vectorWidth, accumulators, welford,
                                  dotBf16};
    RewritePatternSet patterns(&getContext());
    populateNormToVectorPatterns(patterns, defaults);
    ConversionTarget target(getContext());
    target.addIllegalDialect<NormDialect>();
    target.addLegalDialect<arith::ArithDialect, math::MathDialect,
                           memref::MemRefDialect, scf::SCFDialect,
                           vector::VectorDialect, x86vector::X86VectorDialect>();
    // (llvm.call_intrinsic: AVX512-BF16 roundings, see truncToBf16.)
    target.addLegalOp<LLVM::CallIntrinsicOp>();
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void normjit::populateNormToVectorPatterns(
    RewritePatternSet &patterns, const NormToVectorDefaults &defaults) {
  patterns.add<LowerNorm<LayerNormOp>, LowerNorm<RMSNormOp>, LowerAdd>(
      patterns.getContext(), defaults);
}
