//===- NormOps.cpp - verifiers of the norm ops ----------------------------===//
//
// Part of normjit. The structural rules ODS cannot express: buffer shapes and
// layouts, operand lengths, epsilon, outputs that make sense for the op, and
// the consistency of a #norm.config with the op it is attached to.
//
//===----------------------------------------------------------------------===//

#include "normjit/Dialect/Norm/IR/NormOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace normjit::norm;

namespace {
/// Checks a 2-D row buffer: static, non-zero column count, unit stride along
/// a row, and a row stride that does not make rows overlap.
LogicalResult verifyRowBuffer(Operation *op, StringRef name, Value value) {
  auto type = cast<MemRefType>(value.getType());
  int64_t cols = type.getDimSize(1);
  if (ShapedType::isDynamic(cols))
    return op->emitOpError("expects a static column count for ")
           << name << ", got " << type;
  if (cols == 0)
    return op->emitOpError("expects at least one column in ") << name;
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)))
    return op->emitOpError("expects a strided layout for ")
           << name << ", got " << type;
  if (strides[1] != 1) {
    InFlightDiagnostic diag = op->emitOpError(
        "expects unit stride along the rows of ");
    diag << name << ", got stride ";
    if (ShapedType::isDynamic(strides[1]))
      diag << "? (dynamic)";
    else
      diag << strides[1];
    return diag;
  }
  if (!ShapedType::isDynamic(strides[0]) && strides[0] < cols &&
      type.getDimSize(0) != 1)
    return op->emitOpError("expects the row stride of ")
           << name << " (" << strides[0] << ") to be at least its column count ("
           << cols << ")";
  return success();
}

/// Checks that `value` is a row buffer with the columns of the reference
/// one (rows: verifySameRows, over all of them).
LogicalResult verifySameColumns(Operation *op, StringRef refName, Value ref,
                                StringRef name, Value value) {
  if (failed(verifyRowBuffer(op, name, value)))
    return failure();
  auto refType = cast<MemRefType>(ref.getType());
  auto type = cast<MemRefType>(value.getType());
  if (type.getDimSize(1) != refType.getDimSize(1))
    return op->emitOpError("expects ")
           << name << " to have " << refType.getDimSize(1)
           << " columns like " << refName << ", got " << type.getDimSize(1);
  return success();
}

/// Checks that the row buffers (null ones skipped) that give their row
/// count statically all give the same, the first of them the reference
/// (x's rows may be dynamic where the others' are not). Sets `rows` to that
/// count (dynamic when none gives it).
LogicalResult
verifySameRows(Operation *op,
               ArrayRef<std::pair<const char *, Value>> buffers,
               int64_t &rows) {
  rows = ShapedType::kDynamic;
  const char *from = nullptr;
  for (auto [name, buffer] : buffers) {
    if (!buffer)
      continue;
    int64_t count = cast<MemRefType>(buffer.getType()).getDimSize(0);
    if (ShapedType::isDynamic(count))
      continue;
    if (!from) {
      rows = count;
      from = name;
    } else if (count != rows) {
      return op->emitOpError("expects ")
             << name << " to have " << rows << " rows like " << from
             << ", got " << count;
    }
  }
  return success();
}

/// Checks a contiguous 1-D buffer of an expected length (dynamic: unknown).
LogicalResult verifyVector(Operation *op, StringRef name, Value value,
                           int64_t expected, StringRef what) {
  auto type = cast<MemRefType>(value.getType());
  if (!type.getLayout().isIdentity() && !type.isLastDimUnitStride())
    return op->emitOpError("expects a contiguous ")
           << name << ", got " << type;
  int64_t length = type.getDimSize(0);
  if (!ShapedType::isDynamic(length) && !ShapedType::isDynamic(expected) &&
      length != expected)
    return op->emitOpError("expects ")
           << name << " of length " << expected << " (" << what << "), got "
           << length;
  return success();
}

unsigned elementBits(Value value) {
  return cast<MemRefType>(value.getType()).getElementTypeBitWidth();
}

/// Checks the knobs of a config that depend on the op: element widths for
/// GPU vector loads and whether a row fits in registers.
LogicalResult verifyConfigForOp(Operation *op, ConfigAttr config,
                                int64_t cols, ArrayRef<Value> buffers) {
  if (!config.isGPU())
    return success();
  unsigned maxBits = 0;
  for (Value buffer : buffers)
    if (buffer)
      maxBits = std::max(maxBits, elementBits(buffer));
  if (std::optional<int64_t> width = config.getVectorWidth();
      width && *width * maxBits > 128)
    return op->emitOpError("config vector_width = ")
           << *width << " of " << maxBits
           << "-bit elements exceeds 128-bit vector accesses";
  // The knobs the lowering will use: absent ones as it fills them in.
  GpuKnobs k = resolveGpuKnobs(config, cols);
  if (k.threadsPerRow * k.rowsPerBlock > 1024)
    return op->emitOpError("config gives threads_per_row * rows_per_block = ")
           << k.threadsPerRow << " * " << k.rowsPerBlock << " = "
           << k.threadsPerRow * k.rowsPerBlock
           << " threads per block (absent knobs as the lowering fills "
              "them in), more than 1024";
  if (k.minBlocksPerSm * k.threadsPerRow * k.rowsPerBlock > kMaxThreadsPerSm)
    return op->emitOpError("config asks for min_blocks_per_sm = ")
           << k.minBlocksPerSm << " blocks of "
           << k.threadsPerRow * k.rowsPerBlock << " threads on a "
           << "multiprocessor, "
           << k.minBlocksPerSm * k.threadsPerRow * k.rowsPerBlock
           << " threads, more than the " << kMaxThreadsPerSm << " it holds";
  if (k.storage == RowStorage::Registers) {
    // (In 128-bit arithmetic: the elements per thread the lowering fills in
    // for columns near 2^63 make a product past int64.)
    if (static_cast<__int128>(k.threadsPerRow) * k.elementsPerThread < cols)
      return op->emitOpError("config keeps the row in registers, but "
                             "threads_per_row * elements_per_thread = ")
             << k.threadsPerRow * k.elementsPerThread << " is less than the "
             << cols << " columns";
    if (k.elementsPerThread > 1024)
      return op->emitOpError("config keeps the row in registers: ")
             << k.elementsPerThread << " elements per thread over "
             << k.threadsPerRow << " threads_per_row for " << cols
             << " columns, more than 1024; give more threads_per_row, or "
                "row_storage = shared or global";
  }
  if (k.storage == RowStorage::Shared) {
    // In 128-bit arithmetic: columns near 2^62 must not wrap to a size that
    // fits.
    __int128 bytes = static_cast<__int128>(k.rowsPerBlock) *
                     getSharedRowLength(cols, k.vectorWidth) * 4;
    if (bytes > kMaxSharedRowBytes) {
      std::string size = bytes > INT64_MAX
                             ? std::string("over 2^63")
                             : std::to_string(static_cast<int64_t>(bytes));
      return op->emitOpError("config keeps rows in shared memory: ")
             << k.rowsPerBlock << " rows of " << cols
             << " f32 columns (padded to whole vectors) take " << size
             << " bytes, more than the " << kMaxSharedRowBytes
             << " bytes a block may keep rows in";
    }
  }
  return success();
}

template <typename NormOpT>
LogicalResult verifyNormOp(NormOpT op, bool isLayerNorm) {
  Operation *operation = op.getOperation();
  // ODS checks the optional groups of operandSegmentSizes but not that x
  // and y, required, have exactly one operand each (a generic-form op can
  // say otherwise): checked before anything reads them.
  llvm::ArrayRef<int32_t> segments = op.getProperties().operandSegmentSizes;
  for (auto [index, name] : {std::pair<unsigned, const char *>{0, "x"},
                             std::pair<unsigned, const char *>{4, "y"}})
    if (segments[index] != 1)
      return op.emitOpError("requires exactly one '")
             << name << "' operand, but operandSegmentSizes gives "
             << segments[index];
  Value x = op.getX();
  if (failed(verifyRowBuffer(operation, "x", x)))
    return failure();
  int64_t cols = op.getNumColumns();
  int64_t rows = 0; // the row buffers' static row count: verifySameRows

  if (Value residual = op.getResidual())
    if (failed(verifySameColumns(operation, "x", x, "residual", residual)))
      return failure();
  if (failed(verifySameColumns(operation, "x", x, "y", op.getY())))
    return failure();
  if (Value sum = op.getSum()) {
    if (!op.getResidual())
      return op.emitOpError("has a sum output but no residual operand; the "
                            "sum would only copy x");
    if (failed(verifySameColumns(operation, "x", x, "sum", sum)))
      return failure();
    if (sum == op.getY())
      return op.emitOpError("expects distinct buffers for y and sum");
  }
  if (failed(verifySameRows(operation,
                            {{"x", x},
                             {"residual", op.getResidual()},
                             {"y", op.getY()},
                             {"sum", op.getSum()}},
                            rows)))
    return failure();
  if (Value gamma = op.getGamma())
    if (failed(verifyVector(operation, "gamma", gamma, cols, "the columns")))
      return failure();
  if (Value beta = op.getBeta())
    if (failed(verifyVector(operation, "beta", beta, cols, "the columns")))
      return failure();
  if (Value mean = op.getMean()) {
    if (!isLayerNorm)
      return op.emitOpError("computes no mean; remove the mean output");
    if (failed(verifyVector(operation, "mean", mean, rows, "one per row")))
      return failure();
  }
  if (Value rstd = op.getRstd()) {
    if (failed(verifyVector(operation, "rstd", rstd, rows, "one per row")))
      return failure();
    if (rstd == op.getMean())
      return op.emitOpError("expects distinct buffers for mean and rstd");
    int64_t rstdLength = cast<MemRefType>(rstd.getType()).getDimSize(0);
    if (Value mean = op.getMean()) {
      int64_t meanLength = cast<MemRefType>(mean.getType()).getDimSize(0);
      if (!ShapedType::isDynamic(meanLength) &&
          !ShapedType::isDynamic(rstdLength) && meanLength != rstdLength)
        return op.emitOpError("expects mean and rstd of one length (one per "
                              "row), got ")
               << meanLength << " and " << rstdLength;
    }
  }
  // The statistics are written row by row while every row reads gamma and
  // beta: written over them, later rows would read the statistics.
  for (auto [statName, stat] : {std::pair<const char *, Value>{"mean",
                                                               op.getMean()},
                                {"rstd", op.getRstd()}})
    for (auto [paramName, param] :
         {std::pair<const char *, Value>{"gamma", op.getGamma()},
          {"beta", op.getBeta()}})
      if (stat && stat == param)
        return op.emitOpError("expects ")
               << statName << " in a buffer other than " << paramName
               << ": every row reads " << paramName << ", and " << statName
               << " is written row by row";

  float eps = op.getEpsilon().convertToFloat();
  if (!(eps > 0.0f) || !std::isfinite(eps))
    return op.emitOpError("expects a positive, finite epsilon, got ") << eps;

  if (std::optional<ConfigAttr> config = op.getConfig()) {
    // The GPU backend has one form of the residual add: fused.
    if (config->isGPU() && op.getResidual() &&
        config->getFuseResidual() == false)
      return op.emitOpError("config asks for fuse_residual = false; the GPU "
                            "backend always fuses the residual add");
    return verifyConfigForOp(operation, *config, cols,
                             {x, op.getResidual(), op.getGamma(), op.getBeta(),
                              op.getY(), op.getSum()});
  }
  return success();
}
} // namespace

LogicalResult LayerNormOp::verify() {
  return verifyNormOp(*this, /*isLayerNorm=*/true);
}

LogicalResult RMSNormOp::verify() {
  return verifyNormOp(*this, /*isLayerNorm=*/false);
}

LogicalResult AddOp::verify() {
  Operation *op = getOperation();
  int64_t rows = 0;
  if (failed(verifyRowBuffer(op, "lhs", getLhs())) ||
      failed(verifySameColumns(op, "lhs", getLhs(), "rhs", getRhs())) ||
      failed(verifySameColumns(op, "lhs", getLhs(), "sum", getSum())) ||
      failed(verifySameRows(
          op, {{"lhs", getLhs()}, {"rhs", getRhs()}, {"sum", getSum()}},
          rows)))
    return failure();
  return success();
}

#define GET_OP_CLASSES
#include "normjit/Dialect/Norm/IR/NormOps.cpp.inc"
