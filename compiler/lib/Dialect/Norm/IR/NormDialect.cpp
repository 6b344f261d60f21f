//===- NormDialect.cpp - the norm dialect and #norm.config ----------------===//
//
// Part of normjit. Registers the dialect and implements the parser, printer
// and verifier of the #norm.config tuning attribute.
//
//===----------------------------------------------------------------------===//

#include "normjit/Dialect/Norm/IR/NormDialect.h"
#include "normjit/Dialect/Norm/IR/NormAttrs.h"
#include "normjit/Dialect/Norm/IR/NormOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace normjit::norm;

#include "normjit/Dialect/Norm/IR/NormDialect.cpp.inc"
#include "normjit/Dialect/Norm/IR/NormEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "normjit/Dialect/Norm/IR/NormAttrs.cpp.inc"

void NormDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "normjit/Dialect/Norm/IR/NormOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "normjit/Dialect/Norm/IR/NormAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// #norm.config
//===----------------------------------------------------------------------===//

namespace {
/// Which backend a knob belongs to; `Common` knobs are valid for both.
enum class KnobScope { Common, CPU, GPU };

/// Every knob, in the order the printer writes them.
struct KnobInfo {
  llvm::StringLiteral name;
  KnobScope scope;
};
constexpr KnobInfo kKnobs[] = {
    {"vector_width", KnobScope::Common},
    {"fuse_residual", KnobScope::Common},
    {"accumulators", KnobScope::CPU},
    {"rows_per_task", KnobScope::CPU},
    {"threads", KnobScope::CPU},
    {"algorithm", KnobScope::CPU},
    {"streaming_stores", KnobScope::CPU},
    {"prefetch_rows", KnobScope::CPU},
    {"row_group", KnobScope::CPU},
    {"threads_per_row", KnobScope::GPU},
    {"rows_per_block", KnobScope::GPU},
    {"elements_per_thread", KnobScope::GPU},
    {"row_storage", KnobScope::GPU},
    {"persistent", KnobScope::GPU},
    {"min_blocks_per_sm", KnobScope::GPU},
};

std::string knownKeys() {
  std::string keys;
  for (const KnobInfo &knob : kKnobs) {
    if (!keys.empty())
      keys += ", ";
    keys += knob.name.str();
  }
  return keys;
}

ParseResult parseBool(AsmParser &parser, StringRef key,
                      std::optional<bool> &out) {
  SMLoc loc = parser.getCurrentLocation();
  if (succeeded(parser.parseOptionalKeyword("true"))) {
    out = true;
    return success();
  }
  if (succeeded(parser.parseOptionalKeyword("false"))) {
    out = false;
    return success();
  }
  return parser.emitError(loc, "expected 'true' or 'false' for '")
         << key << "'";
}

ParseResult parseInt(AsmParser &parser, StringRef key,
                     std::optional<int64_t> &out) {
  SMLoc loc = parser.getCurrentLocation();
  // parseOptionalInteger takes true and false as 1-bit integers (true
  // would read as -1): they are not knob values.
  if (succeeded(parser.parseOptionalKeyword("true")) ||
      succeeded(parser.parseOptionalKeyword("false")))
    return parser.emitError(loc, "expected an integer for '") << key << "'";
  int64_t value = 0;
  OptionalParseResult result = parser.parseOptionalInteger(value);
  if (!result.has_value())
    return parser.emitError(loc, "expected an integer for '") << key << "'";
  if (failed(*result))
    return failure();
  out = value;
  return success();
}

template <typename EnumT>
ParseResult parseEnum(AsmParser &parser, StringRef key,
                      std::optional<EnumT> &out,
                      std::optional<EnumT> (*symbolize)(StringRef),
                      StringRef expected) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef word;
  if (failed(parser.parseOptionalKeyword(&word)))
    return parser.emitError(loc, "expected ") << expected << " for '" << key
                                              << "'";
  out = symbolize(word);
  if (!out)
    return parser.emitError(loc, "unknown value '")
           << word << "' for '" << key << "', expected " << expected;
  return success();
}

ParseResult parseKnob(AsmParser &parser, StringRef key, ConfigKnobs &f) {
  if (key == "vector_width")
    return parseInt(parser, key, f.vectorWidth);
  if (key == "fuse_residual")
    return parseBool(parser, key, f.fuseResidual);
  if (key == "accumulators")
    return parseInt(parser, key, f.accumulators);
  if (key == "rows_per_task")
    return parseInt(parser, key, f.rowsPerTask);
  // threads = 0 (all cores) and row_group = 0 (the lowering's default)
  // mean what an absent knob means, as in normjit_cpu_config_t: the same
  // config, printed without them.
  auto parseZeroAsAbsent = [&](std::optional<int64_t> &out) -> ParseResult {
    if (failed(parseInt(parser, key, out)))
      return failure();
    if (out == 0 && f.backend == Backend::CPU) // a GPU config: rejected
      out.reset();
    return success();
  };
  if (key == "threads")
    return parseZeroAsAbsent(f.threads);
  if (key == "algorithm")
    return parseEnum<Algorithm>(parser, key, f.algorithm, symbolizeAlgorithm,
                                "'two_pass' or 'welford'");
  if (key == "streaming_stores")
    return parseBool(parser, key, f.streamingStores);
  if (key == "prefetch_rows")
    return parseInt(parser, key, f.prefetchRows);
  if (key == "row_group")
    return parseZeroAsAbsent(f.rowGroup);
  if (key == "threads_per_row")
    return parseInt(parser, key, f.threadsPerRow);
  if (key == "rows_per_block")
    return parseInt(parser, key, f.rowsPerBlock);
  if (key == "elements_per_thread")
    return parseInt(parser, key, f.elementsPerThread);
  if (key == "row_storage")
    return parseEnum<RowStorage>(parser, key, f.rowStorage,
                                 symbolizeRowStorage,
                                 "'registers', 'shared' or 'global'");
  if (key == "persistent")
    return parseBool(parser, key, f.persistent);
  if (key == "min_blocks_per_sm")
    return parseInt(parser, key, f.minBlocksPerSm);
  llvm_unreachable("key was checked against kKnobs");
}

LogicalResult checkRange(function_ref<InFlightDiagnostic()> emitError,
                         StringRef key, std::optional<int64_t> value,
                         int64_t lo, int64_t hi, bool powerOfTwo = false) {
  if (!value)
    return success();
  if (*value < lo || *value > hi)
    return emitError() << "'" << key << "' must be in [" << lo << ", " << hi
                       << "], got " << *value;
  if (powerOfTwo && !llvm::isPowerOf2_64(static_cast<uint64_t>(*value)))
    return emitError() << "'" << key << "' must be a power of two, got "
                       << *value;
  return success();
}
} // namespace

Attribute ConfigAttr::parse(AsmParser &parser, Type) {
  SMLoc startLoc = parser.getCurrentLocation();
  if (parser.parseLess())
    return {};

  SMLoc backendLoc = parser.getCurrentLocation();
  StringRef backendName;
  if (failed(parser.parseOptionalKeyword(&backendName))) {
    parser.emitError(backendLoc, "expected the backend ('cpu' or 'gpu') as "
                                 "the first entry of #norm.config");
    return {};
  }
  std::optional<Backend> backend = symbolizeBackend(backendName);
  if (!backend) {
    parser.emitError(backendLoc, "expected the backend ('cpu' or 'gpu') as "
                                 "the first entry of #norm.config, got '")
        << backendName << "'";
    return {};
  }

  ConfigKnobs fields;
  fields.backend = *backend;
  llvm::StringSet<> seen;
  while (succeeded(parser.parseOptionalComma())) {
    SMLoc keyLoc = parser.getCurrentLocation();
    StringRef key;
    if (failed(parser.parseOptionalKeyword(&key))) {
      parser.emitError(keyLoc, "expected a config key");
      return {};
    }
    const KnobInfo *knob = llvm::find_if(
        kKnobs, [&](const KnobInfo &info) { return info.name == key; });
    if (knob == std::end(kKnobs)) {
      parser.emitError(keyLoc, "unknown config key '")
          << key << "'; known keys: " << knownKeys();
      return {};
    }
    if (!seen.insert(key).second) {
      parser.emitError(keyLoc, "duplicate config key '") << key << "'";
      return {};
    }
    if (parser.parseEqual() || parseKnob(parser, key, fields))
      return {};
  }
  if (parser.parseGreater())
    return {};

  return getConfigChecked([&] { return parser.emitError(startLoc); },
                          parser.getContext(), fields);
}

ConfigAttr normjit::norm::getConfigChecked(
    function_ref<InFlightDiagnostic()> emitError, MLIRContext *context,
    const ConfigKnobs &k) {
  return ConfigAttr::getChecked(
      emitError, context, k.backend, k.vectorWidth, k.fuseResidual,
      k.accumulators, k.rowsPerTask, k.threads, k.algorithm, k.streamingStores,
      k.prefetchRows, k.rowGroup, k.threadsPerRow, k.rowsPerBlock,
      k.elementsPerThread, k.rowStorage, k.persistent, k.minBlocksPerSm);
}

void ConfigAttr::print(AsmPrinter &printer) const {
  printer << "<" << stringifyBackend(getBackend());
  auto printInt = [&](StringRef key, std::optional<int64_t> value) {
    if (value)
      printer << ", " << key << " = " << *value;
  };
  auto printBool = [&](StringRef key, std::optional<bool> value) {
    if (value)
      printer << ", " << key << " = " << (*value ? "true" : "false");
  };
  printInt("vector_width", getVectorWidth());
  printBool("fuse_residual", getFuseResidual());
  printInt("accumulators", getAccumulators());
  printInt("rows_per_task", getRowsPerTask());
  printInt("threads", getThreads());
  if (getAlgorithm())
    printer << ", algorithm = " << stringifyAlgorithm(*getAlgorithm());
  printBool("streaming_stores", getStreamingStores());
  printInt("prefetch_rows", getPrefetchRows());
  printInt("row_group", getRowGroup());
  printInt("threads_per_row", getThreadsPerRow());
  printInt("rows_per_block", getRowsPerBlock());
  printInt("elements_per_thread", getElementsPerThread());
  if (getRowStorage())
    printer << ", row_storage = " << stringifyRowStorage(*getRowStorage());
  printBool("persistent", getPersistent());
  printInt("min_blocks_per_sm", getMinBlocksPerSm());
  printer << ">";
}

LogicalResult ConfigAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, Backend backend,
    std::optional<int64_t> vectorWidth, std::optional<bool> fuseResidual,
    std::optional<int64_t> accumulators, std::optional<int64_t> rowsPerTask,
    std::optional<int64_t> threads, std::optional<Algorithm> algorithm,
    std::optional<bool> streamingStores, std::optional<int64_t> prefetchRows,
    std::optional<int64_t> rowGroup, std::optional<int64_t> threadsPerRow,
    std::optional<int64_t> rowsPerBlock,
    std::optional<int64_t> elementsPerThread,
    std::optional<RowStorage> rowStorage, std::optional<bool> persistent,
    std::optional<int64_t> minBlocksPerSm) {
  (void)fuseResidual;
  // Knobs of the other backend make no sense and are rejected, so that a
  // config always means what it says.
  bool present[] = {vectorWidth.has_value(),   fuseResidual.has_value(),
                    accumulators.has_value(),  rowsPerTask.has_value(),
                    threads.has_value(),       algorithm.has_value(),
                    streamingStores.has_value(), prefetchRows.has_value(),
                    rowGroup.has_value(),
                    threadsPerRow.has_value(),
                    rowsPerBlock.has_value(),  elementsPerThread.has_value(),
                    rowStorage.has_value(),    persistent.has_value(),
                    minBlocksPerSm.has_value()};
  static_assert(std::size(present) == std::size(kKnobs),
                "one presence flag per knob");
  KnobScope wrongScope =
      backend == Backend::CPU ? KnobScope::GPU : KnobScope::CPU;
  for (auto [knob, isPresent] : llvm::zip_equal(kKnobs, present))
    if (isPresent && knob.scope == wrongScope)
      return emitError() << "'" << knob.name << "' is a "
                         << (wrongScope == KnobScope::GPU ? "gpu" : "cpu")
                         << " knob; it is not valid for backend '"
                         << stringifyBackend(backend) << "'";

  bool isCPU = backend == Backend::CPU;
  if (failed(checkRange(emitError, "vector_width", vectorWidth, 1,
                        isCPU ? 64 : 8, /*powerOfTwo=*/true)) ||
      failed(checkRange(emitError, "accumulators", accumulators, 1, 16)) ||
      failed(checkRange(emitError, "rows_per_task", rowsPerTask, 1, 65536)) ||
      failed(checkRange(emitError, "threads", threads, 1, 1024)) ||
      failed(checkRange(emitError, "prefetch_rows", prefetchRows, 0, 16)) ||
      failed(checkRange(emitError, "row_group", rowGroup, 1, 64)) ||
      failed(checkRange(emitError, "threads_per_row", threadsPerRow, 1, 1024,
                        /*powerOfTwo=*/true)) ||
      failed(checkRange(emitError, "rows_per_block", rowsPerBlock, 1, 1024)) ||
      failed(checkRange(emitError, "elements_per_thread", elementsPerThread, 1,
                        1024)) ||
      failed(checkRange(emitError, "min_blocks_per_sm", minBlocksPerSm, 0,
                        32)))
    return failure();

  if (threadsPerRow && rowsPerBlock && *threadsPerRow * *rowsPerBlock > 1024)
    return emitError() << "threads_per_row * rows_per_block = "
                       << *threadsPerRow * *rowsPerBlock
                       << " exceeds 1024 threads per block";
  if (!isCPU && vectorWidth && elementsPerThread &&
      *elementsPerThread % *vectorWidth != 0)
    return emitError() << "elements_per_thread (" << *elementsPerThread
                       << ") must be a multiple of vector_width ("
                       << *vectorWidth << ")";
  return success();
}

normjit::norm::GpuKnobs normjit::norm::resolveGpuKnobs(ConfigAttr config,
                                                       int64_t cols) {
  GpuKnobs k;
  k.vectorWidth = config.getVectorWidth().value_or(1);
  k.threadsPerRow = config.getThreadsPerRow().value_or(kWarpSize);
  k.rowsPerBlock = config.getRowsPerBlock().value_or(1);
  k.storage = config.getRowStorage().value_or(RowStorage::Registers);
  k.persistent = config.getPersistent().value_or(false);
  k.minBlocksPerSm = config.getMinBlocksPerSm().value_or(0);
  int64_t perThread = llvm::divideCeilSigned(cols, k.threadsPerRow);
  k.elementsPerThread = config.getElementsPerThread().value_or(
      k.storage == RowStorage::Registers
          ? static_cast<int64_t>(llvm::alignTo(perThread, k.vectorWidth))
          : k.vectorWidth);
  return k;
}
