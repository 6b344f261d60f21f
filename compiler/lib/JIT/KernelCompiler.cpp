//===- KernelCompiler.cpp - spec -> norm IR -> host machine code ----------===//
//
// Part of normjit. Builds the `norm` IR of a kernel, lowers it through
// convert-norm-to-vector and MLIR's LLVM conversions, and JIT-compiles it
// for the host CPU with LLVM ORC (mlir::ExecutionEngine).
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/KernelCompiler.h"
#include "KernelPipeline.h"

#include "normjit/Conversion/NormToVector/RowGroup.h"
#include "normjit/Conversion/Passes.h"
#include "normjit/Dialect/Norm/IR/NormOps.h"
#include "normjit/Dialect/Norm/Transforms/Passes.h"
#include "normjit/runtime/Error.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/MathExtras.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/InstIterator.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/TargetParser/Triple.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

using namespace mlir;

char normjit::StatusError::ID = 0;

llvm::Error normjit::makeError(normjit_status_t status,
                               const llvm::Twine &message) {
  return llvm::make_error<StatusError>(status, message.str());
}

llvm::Error normjit::statusToError(normjit_status_t status) {
  if (status == NORMJIT_OK)
    return llvm::Error::success();
  return makeError(status, normjit_last_error());
}

normjit_status_t normjit::errorToStatus(llvm::Error error) {
  normjit_status_t status = NORMJIT_OK;
  std::string message;
  llvm::handleAllErrors(
      std::move(error),
      [&](const StatusError &e) {
        status = e.getStatus();
        message = e.getMessage();
      },
      [&](const llvm::ErrorInfoBase &e) {
        status = NORMJIT_INTERNAL;
        message = e.message();
      });
  if (status != NORMJIT_OK)
    normjit::runtime::setError(status, message);
  return status;
}

//===----------------------------------------------------------------------===//
// Configs and the host
//===----------------------------------------------------------------------===//

std::string normjit::CpuConfig::str() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "#norm.config<cpu, vector_width = " << vectorWidth
     << ", fuse_residual = " << (fuseResidual ? "true" : "false")
     << ", accumulators = " << accumulators
     << ", rows_per_task = " << rowsPerTask;
  if (threads > 0)
    os << ", threads = " << threads;
  os << ", algorithm = " << (welford ? "welford" : "two_pass")
     << ", streaming_stores = " << (streamingStores ? "true" : "false");
  if (prefetchRows > 0)
    os << ", prefetch_rows = " << prefetchRows;
  if (rowGroup > 0)
    os << ", row_group = " << rowGroup;
  os << ">";
  return text;
}

bool normjit::CpuConfig::operator==(const CpuConfig &other) const {
  return vectorWidth == other.vectorWidth &&
         accumulators == other.accumulators &&
         rowsPerTask == other.rowsPerTask && threads == other.threads &&
         welford == other.welford && streamingStores == other.streamingStores &&
         fuseResidual == other.fuseResidual &&
         prefetchRows == other.prefetchRows && rowGroup == other.rowGroup;
}

int64_t normjit::HostCpu::nativeVectorWidth() const {
  if (avx512f)
    return 16;
  if (avx2)
    return 8;
  return 4;
}

namespace {
struct HostFeatures {
  llvm::StringMap<bool> features;
  std::vector<std::string> disabled;
  /// The subtarget feature string of what is left, for the JIT's target
  /// machine (empty when nothing is turned off).
  std::string targetFeatures;
};

/// One line on stderr about NORMJIT_DISABLE_CPU_FEATURES.
void warnDisabledFeature(const llvm::Twine &message) {
  llvm::errs() << "normjit: warning: NORMJIT_DISABLE_CPU_FEATURES: "
               << message << "\n";
}

const HostFeatures &getHostFeatures() {
  // Never destroyed: asked for by exit-time code too (the objects of a
  // static destructor outlive it).
  static const HostFeatures &host = *new HostFeatures([] {
    HostFeatures result;
    result.features = llvm::sys::getHostCPUFeatures();
    const char *list = std::getenv("NORMJIT_DISABLE_CPU_FEATURES");
    if (!list || !*list)
      return result;
    std::vector<std::string> names;
    llvm::SmallVector<llvm::StringRef> parts;
    llvm::StringRef(list).split(parts, ',');
    for (llvm::StringRef part : parts)
      if (!part.trim().empty())
        names.push_back(part.trim().str());
    if (names.empty())
      return result;
    normjit::detail::initializeLLVMOnce();
    llvm::Triple triple(llvm::sys::getProcessTriple());
    std::string error;
    const llvm::Target *target =
        llvm::TargetRegistry::lookupTarget(triple, error);
    llvm::StringRef baselineCpu =
        triple.getArch() == llvm::Triple::x86_64 ? "x86-64" : "generic";
    llvm::StringRef cpu = llvm::sys::getHostCPUName();
    std::unique_ptr<llvm::MCSubtargetInfo> plain, baseline;
    if (target) {
      plain.reset(target->createMCSubtargetInfo(triple, cpu, ""));
      baseline.reset(target->createMCSubtargetInfo(triple, baselineCpu, ""));
    }
    if (!plain || !baseline) {
      warnDisabledFeature("LLVM has no subtarget for " + triple.str() +
                          ": ignored");
      return result;
    }
    llvm::StringSet<> known;
    for (const llvm::SubtargetFeatureKV &feature :
         plain->getAllProcessorFeatures())
      known.insert(feature.Key);
    // LLVM's subtarget for the host less the features named, which also
    // clears every feature that implies one of them. The baseline's own
    // features (x86-64: SSE2, x87, 64-bit mode, ...) stay: every kernel
    // needs them, and LLVM cannot generate code without some of them.
    llvm::SubtargetFeatures subtarget;
    for (const auto &feature : result.features)
      if (known.contains(feature.first()))
        subtarget.AddFeature(feature.first(), feature.second);
    bool any = false;
    for (const std::string &name : names) {
      if (!known.contains(name)) {
        warnDisabledFeature("'" + name +
                            "' is not a feature LLVM knows for this CPU "
                            "(LLVM's names, e.g. avx512f, avx2, avx): "
                            "ignored");
        continue;
      }
      if (baseline->checkFeatures("+" + name)) {
        warnDisabledFeature("'" + name + "' is part of the " + baselineCpu +
                            " baseline, which every kernel needs: ignored");
        continue;
      }
      if (!result.features.lookup(name))
        continue; // this CPU lacks it anyway
      subtarget.AddFeature(name, false);
      any = true;
    }
    if (!any)
      return result;
    std::unique_ptr<llvm::MCSubtargetInfo> reduced(
        target->createMCSubtargetInfo(triple, cpu, subtarget.getString()));
    if (!reduced)
      return result;
    for (auto &feature : result.features)
      if (feature.second && known.contains(feature.first()) &&
          !reduced->checkFeatures("+" + feature.first().str())) {
        feature.second = false;
        result.disabled.push_back(feature.first().str());
      }
    llvm::sort(result.disabled);
    result.targetFeatures = subtarget.getString();
    return result;
  }());
  return host;
}
} // namespace

const llvm::StringMap<bool> &normjit::getHostCpuFeatures() {
  return getHostFeatures().features;
}

const std::vector<std::string> &normjit::getDisabledHostCpuFeatures() {
  return getHostFeatures().disabled;
}

namespace {
/// The size of the highest-level data or unified cache that CPU 0 lists in
/// Linux's sysfs ("32768K", "1M"); 0 where there is none (another OS, a
/// container without /sys).
int64_t readLastLevelCacheBytes() {
  auto read = [](const std::string &path) {
    std::ifstream file(path);
    std::string text;
    std::getline(file, text);
    return llvm::StringRef(text).trim().str();
  };
  int64_t bytes = 0;
  unsigned bestLevel = 0;
  for (int index = 0; index < 32; ++index) {
    std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" +
                      std::to_string(index) + "/";
    std::string levelText = read(dir + "level");
    unsigned level = 0;
    if (levelText.empty())
      break; // the indices are numbered from 0 without gaps
    if (llvm::StringRef(levelText).getAsInteger(10, level) ||
        read(dir + "type") == "Instruction")
      continue;
    llvm::StringRef size = read(dir + "size");
    int64_t scale = 1;
    if (size.consume_back("K"))
      scale = int64_t(1) << 10;
    else if (size.consume_back("M"))
      scale = int64_t(1) << 20;
    else if (size.consume_back("G"))
      scale = int64_t(1) << 30;
    int64_t count = 0;
    if (size.getAsInteger(10, count) || count <= 0 || count > (1 << 20))
      continue;
    if (level > bestLevel || (level == bestLevel && count * scale > bytes)) {
      bestLevel = level;
      bytes = count * scale;
    }
  }
  return bytes;
}
} // namespace

const normjit::HostCpu &normjit::getHostCpu() {
  // Never destroyed (as getHostFeatures).
  static const HostCpu &host = *new HostCpu([] {
    HostCpu cpu;
    cpu.name = llvm::sys::getHostCPUName().str();
    const llvm::StringMap<bool> &features = getHostCpuFeatures();
    cpu.avx2 = features.lookup("avx2");
    cpu.avx512f = features.lookup("avx512f");
    cpu.f16c = features.lookup("f16c");
    // vdpbf16ps and vcvtneps2bf16 on 128- and 256-bit vectors need
    // AVX512VL too (every CPU with AVX512-BF16 has it; only
    // NORMJIT_DISABLE_CPU_FEATURES=avx512vl leaves BF16 without it).
    cpu.avx512bf16 =
        features.lookup("avx512bf16") && features.lookup("avx512vl");
    cpu.cores = std::max(1u, std::thread::hardware_concurrency());
    cpu.lastLevelCacheBytes = readLastLevelCacheBytes();
    return cpu;
  }());
  return host;
}

normjit::CpuConfig
normjit::getDefaultCpuConfig(const normjit_kernel_spec_t &spec,
                             const HostCpu &host) {
  CpuConfig config;
  config.vectorWidth = host.nativeVectorWidth();
  int64_t vectors = (spec.cols + config.vectorWidth - 1) / config.vectorWidth;
  config.accumulators = vectors >= 16 ? 4 : vectors >= 4 ? 2 : 1;
  // Kernels whose rows are bf16 widen and narrow in the paired lane order
  // (convert-norm-to-vector: the statistics sweeps, and the output sweep
  // too when gamma, beta and y are bf16), which pays off with vectors of
  // two registers: 1.1-1.5x faster than one-register vectors on the
  // transformer shapes measured (Zen 4, one thread), the same 64 columns
  // per group.
  bool bf16Rows = spec.x_dtype == NORMJIT_BF16 &&
                  (!spec.has_residual || spec.residual_dtype == NORMJIT_BF16) &&
                  (!spec.store_sum || spec.sum_dtype == NORMJIT_BF16);
  if (bf16Rows && spec.cols >= 2 * config.vectorWidth) {
    config.vectorWidth *= 2;
    vectors = (spec.cols + config.vectorWidth - 1) / config.vectorWidth;
    config.accumulators = vectors >= 8 ? 2 : 1;
    // With AVX512-BF16 the statistics of bf16 rows are dot products
    // (vdpbf16ps), whose latency wants more independent sums: 8 were
    // 1.08-1.23x faster than 2 on LayerNorm and RMSNorm of 768-4096
    // columns, 1 to 4096 rows, one thread (Zen 5, `normjit bench --versus`;
    // the tuner chose 4 or 8 for 28 of 60 such specs on Zen 4 too). Not
    // with a residual (the sum is added in f32 first: 0.96-1.01x), nor
    // without the instruction (0.65-1.09x at the AVX-512 and AVX2 levels).
    if (host.avx512bf16 && !spec.has_residual && vectors >= 8)
      config.accumulators = 8;
  }
  // About 64 KiB of input per task: enough work to amortize a dispatch,
  // small enough to balance the cores.
  int64_t rowBytes = std::max<int64_t>(
      1, spec.cols * static_cast<int64_t>(normjit_dtype_size(spec.x_dtype)));
  config.rowsPerTask = std::max<int64_t>(1, (64 << 10) / rowBytes);
  // LayerNorm: the statistics from one sweep of shifted sums (two_pass)
  // need fewer vector operations per element than Welford's updates:
  // 1.15-1.3x faster on cache-resident rows (f32 and bf16, Zen 4, one
  // thread), within -9%..+5% on f32 rows streamed from DRAM (8192x1024,
  // 65536x1024), where the tuner may still pick Welford.
  config.welford = false;
  return config;
}

namespace {
/// Bytes per element of x and the residual: what a row's statistics read.
int64_t rowInputBytes(const normjit_kernel_spec_t &spec) {
  return static_cast<int64_t>(
      normjit_dtype_size(spec.x_dtype) +
      (spec.has_residual ? normjit_dtype_size(spec.residual_dtype) : 0));
}
} // namespace

int64_t normjit::getDefaultRowGroup(const normjit_kernel_spec_t &spec) {
  auto bytes = [](bool present, normjit_dtype_t dtype) -> int64_t {
    return present ? static_cast<int64_t>(normjit_dtype_size(dtype)) : 0;
  };
  return getDefaultRowGroup(spec.cols, bytes(true, spec.x_dtype),
                            bytes(spec.has_gamma, spec.gamma_dtype),
                            bytes(spec.has_beta, spec.beta_dtype),
                            spec.op == NORMJIT_LAYER_NORM);
}

normjit::CpuConfig normjit::withRowGroup(CpuConfig config, int64_t group) {
  config.rowGroup = group;
  config.rowsPerTask =
      std::min<int64_t>(llvm::alignTo(config.rowsPerTask, group),
                        kMaxRowsPerTask / group * group);
  return config;
}

bool normjit::rowTilesFitL1(const normjit_kernel_spec_t &spec) {
  // (Columns capped: only the comparison with 32 KiB matters.)
  int64_t cols = std::min<int64_t>(spec.cols, int64_t(1) << 20);
  return kTiledRowGroup * cols * rowInputBytes(spec) <= (32 << 10);
}

namespace {
/// For getDefaultCpuConfigForRows: the config of a call (`rows` rows, in
/// the row bucket `bucket`) that moves too many bytes for the rest of its
/// rules: `config` with streaming stores where the call is far beyond the
/// last-level cache, `config` as it is where its bytes overflow or its
/// rows of y cannot stream; none where the call stays near the caches.
///
/// Streaming stores and prefetches one row ahead for calls far beyond
/// the last-level cache, rows normalized one by one where the default
/// pairs them. Over the example sweep (240 specs, two threads, the Zen 5
/// of bench/README.md, two runs), the tuner's winners streamed on 91 and
/// 89 of the 96 specs that move 64 MiB or more (x, residual, y and sum;
/// the others kept the default within noise), 72 of them prefetching;
/// from 8 to 48 MiB they went either way. Timed against the spec's
/// default (bench/README.md, "Streaming by default beyond the cache"),
/// streaming alone lost on f32 LayerNorm of 1024 columns (0.91-0.99x),
/// which the prefetches turn into 1.43-1.55x; single rows with
/// prefetches beat pairs with them on 4096-16384 columns. Rows of y
/// of any length stream (from their first aligned column): 1000 f32
/// columns 0.96-1.29x, 4097 1.09-1.10x, 3000 (RMSNorm) 1.16-1.28x, bf16
/// LayerNorm of 1000 columns 1.03-1.13x. The bytes
/// of `rows` itself must fit int64_t (beyond, the runtime refuses the
/// call).
std::optional<normjit::CpuConfig>
getFarBeyondCacheConfig(const normjit_kernel_spec_t &spec, int64_t rows,
                        int64_t bucket, normjit::CpuConfig config,
                        const normjit::HostCpu &host) {
  bool storesSum = spec.has_residual && spec.store_sum;
  uint64_t elementBytes = static_cast<uint64_t>(rowInputBytes(spec)) +
                          normjit_dtype_size(spec.y_dtype) +
                          (storesSum ? normjit_dtype_size(spec.sum_dtype) : 0);
  bool rowOverflow = false, callOverflow = false;
  uint64_t perRow = llvm::SaturatingMultiply<uint64_t>(
      static_cast<uint64_t>(spec.cols), elementBytes, &rowOverflow);
  uint64_t callBytes = llvm::SaturatingMultiply<uint64_t>(
      static_cast<uint64_t>(rows), perRow, &callOverflow);
  if (rowOverflow || callOverflow ||
      callBytes > static_cast<uint64_t>(INT64_MAX))
    return config;
  uint64_t bucketBytes = llvm::SaturatingMultiply<uint64_t>(
      static_cast<uint64_t>(bucket), perRow);
  int64_t cache =
      host.lastLevelCacheBytes > 0
          ? std::min<int64_t>(host.lastLevelCacheBytes, int64_t(1) << 50)
          : normjit::kAssumedLastLevelCacheBytes;
  uint64_t threshold = static_cast<uint64_t>(
      std::max<int64_t>(normjit::kStreamingDefaultMinBytes, 2 * cache));
  if (bucketBytes < threshold)
    return std::nullopt;
  // The lowering streams rows of y from any start, except where the output
  // sweep reads copies of gamma and beta in the paired bf16 order (bf16
  // rows, y and parameters, copies within 8 KiB): only rows of whole
  // streaming vectors (a vector of y, at most 64 bytes) stream there,
  // others alternate with ordinary ones (0.85-0.96x).
  auto isBf16 = [](normjit_dtype_t dtype) { return dtype == NORMJIT_BF16; };
  int64_t params = (spec.has_gamma ? 1 : 0) + (spec.has_beta ? 1 : 0);
  bool pairedCopies =
      isBf16(spec.x_dtype) && isBf16(spec.y_dtype) &&
      (!spec.has_residual || isBf16(spec.residual_dtype)) &&
      (!storesSum || isBf16(spec.sum_dtype)) && params > 0 &&
      spec.cols <= normjit::kMaxWidenedColumnBytes / (4 * params);
  int64_t yBytes = normjit_dtype_size(spec.y_dtype);
  int64_t alignment = std::min<int64_t>(config.vectorWidth * yBytes, 64);
  if (pairedCopies && spec.cols % std::max<int64_t>(1, alignment / yBytes) != 0)
    return config;
  config.streamingStores = true;
  config.prefetchRows = 1;
  if (normjit::getDefaultRowGroup(spec) == 2)
    config.rowGroup = 1;
  return config;
}
} // namespace

normjit::CpuConfig
normjit::getDefaultCpuConfigForRows(const normjit_kernel_spec_t &spec,
                                    int64_t rows, const HostCpu &host) {
  CpuConfig config = getDefaultCpuConfig(spec, host);
  // Measured on the Zen 5 (`normjit bench --config '#norm.config<cpu,
  // row_group = G, rows_per_task = R>' --versus '#norm.config<cpu>'`, R the
  // default's rows per task rounded up to G; 2-2048 rows of 768-2048
  // columns, inputs up to 4 MiB, 1 and 2 threads; bench/README.md, "A
  // default that knows the row count"), over single rows:
  // - tiles of 8: LayerNorm bf16 1.16-1.42x at 768-1024 columns and
  //   1.01-1.17x at 2048 (bf16 or f32 gamma and beta alike), f16
  //   1.04-1.27x, RMSNorm bf16 1.03-1.65x, with a residual not stored bf16
  //   1.03-1.19x at 768-1024 columns; f32 rows 1.11-1.43x at 2-16 rows of
  //   768-1024 columns but 0.75-1.25x from 64 rows on. Left out by
  //   rowTilesFitL1: f32 rows of 2048 columns (0.60-0.79x from 4 rows on),
  //   f32 with a residual (0.75-0.94x from 8 rows on);
  // - with the sum stored, tiles write 8 sum rows and read them back from
  //   farther caches; pairs of bf16 rows: 1.01-1.13x at 768 columns,
  //   0.95-1.09x at 1024, 0.85-1.08x at 2048 (left out: at most 8 KiB of
  //   x and residual a pair); of f32 rows 0.73-1.00x (left out);
  // - other x86 levels (NORMJIT_DISABLE_CPU_FEATURES): AVX2 bf16 tiles
  //   1.01-1.11x, f32 0.96-1.35x; SSE bf16 0.99-1.03x, f32 0.94-0.98x at
  //   768-1024 columns. Hence groups from AVX2 on, f32 tiles with AVX-512.
  // A single row is a group of one (1.00x): the spec's default stays.
  if (rows < 2 || spec.cols < 1 || rowInputBytes(spec) < 1)
    return config;
  // Every row count of the tuning cache's row bucket (the next power of
  // two) decides alike.
  int64_t bucket = static_cast<int64_t>(llvm::PowerOf2Ceil(
      static_cast<uint64_t>(std::min<int64_t>(rows, int64_t(1) << 40))));
  // Calls far beyond the last-level cache (see getFarBeyondCacheConfig);
  // groups are for rows within the caches.
  if (std::optional<CpuConfig> far =
          getFarBeyondCacheConfig(spec, rows, bucket, config, host))
    return *far;
  // Short f32 rows within the caches, without a residual: groups whose
  // statistics are finished in lanes (the spec's default keeps them for
  // rows of up to 32 columns: beyond the L3 longer ones lost, 0.5-1.0x).
  // On the Zen 4 at the AVX2 level, 1M elements (`normjit bench --config
  // '#norm.config<cpu, row_group = 16>' --versus '#norm.config<cpu>'`, 1
  // and 2 threads): LayerNorm 1.15-1.52x at 64-256 columns, 0.92x at 512;
  // RMSNorm 1.26-1.42x at 64-96 columns, 0.96x at 128.
  if (spec.x_dtype == NORMJIT_F32 && !spec.has_residual &&
      spec.cols <= (spec.op == NORMJIT_LAYER_NORM ? 256 : 96) &&
      getDefaultRowGroup(spec) == 1 &&
      bucket <= kCacheResidentInputBytes / (spec.cols * rowInputBytes(spec)))
    return withRowGroup(config, kLaneRowGroup);
  if (!(spec.has_gamma || spec.has_beta) || !host.avx2)
    return config;
  if (getDefaultRowGroup(spec) != 1)
    return config;
  bool sixteenBit = normjit_dtype_size(spec.x_dtype) == 2;
  bool storesSum = spec.has_residual && spec.store_sum;
  int64_t group = 0;
  if (!storesSum && rowTilesFitL1(spec))
    group = kTiledRowGroup;
  else if (storesSum && sixteenBit &&
           normjit_dtype_size(spec.sum_dtype) == 2 &&
           2 * std::min<int64_t>(spec.cols, int64_t(1) << 20) *
                   rowInputBytes(spec) <= (8 << 10))
    group = 2;
  if (!group ||
      bucket > kCacheResidentInputBytes / (spec.cols * rowInputBytes(spec)) ||
      (!sixteenBit && (spec.has_residual || bucket > 16 || !host.avx512f)))
    return config;
  return withRowGroup(config, group);
}

namespace normjit::detail {
namespace {
llvm::Expected<normjit::norm::ConfigKnobs>
parseConfigKnobsHere(llvm::StringRef text) {
  // Text from a user or a file is checked before MLIR's parser sees it: the
  // parser recurses per nested bracket (about 1 KiB of stack a level), so
  // "[[[[..." thousands deep would overflow the stack, and hundreds deep a
  // small thread's. A config nests one level (#norm.config<...>); its
  // longest form is a few hundred bytes.
  constexpr size_t kMaxConfigBytes = 4096;
  constexpr int kMaxConfigNesting = 4;
  auto quoted = [&] {
    return text.size() <= 200 ? "'" + text.str() + "'"
                              : "'" + text.take_front(200).str() + "...' (" +
                                    std::to_string(text.size()) + " bytes)";
  };
  if (text.size() > kMaxConfigBytes)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "invalid config " + quoted() + ": longer than " +
                         std::to_string(kMaxConfigBytes) +
                         " bytes; expected #norm.config<cpu|gpu, ...>");
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') { // a string literal (no comment in it), as MLIR lexes it
      while (++i < text.size() && text[i] != '"' && text[i] != '\n')
        i += text[i] == '\\';
      continue;
    }
    if (text.substr(i).starts_with("//")) { // a comment, to the line's end
      i = std::min(text.find('\n', i), text.size());
      continue;
    }
    depth += llvm::StringRef("<([{").contains(c);
    if (depth > kMaxConfigNesting)
      return makeError(NORMJIT_INVALID_ARGUMENT,
                       "invalid config " + quoted() +
                           ": brackets nested more than " +
                           std::to_string(kMaxConfigNesting) +
                           " deep; expected #norm.config<cpu|gpu, ...>");
    depth -= depth > 0 && llvm::StringRef(">)]}").contains(c);
  }
  MLIRContext context(getKernelDialectRegistry(),
                      MLIRContext::Threading::DISABLED);
  context.loadDialect<normjit::norm::NormDialect>();
  DiagnosticCollector diagnostics(&context);
  // Spaces around the attribute are not part of it.
  llvm::StringRef trimmed = text.trim();
  size_t consumed = 0;
  Attribute attribute =
      mlir::parseAttribute(trimmed, &context, Type(), &consumed);
  auto config = llvm::dyn_cast_or_null<normjit::norm::ConfigAttr>(attribute);
  if (!config || consumed != trimmed.size())
    return makeError(
        NORMJIT_INVALID_ARGUMENT,
        "invalid config '" + text + "': " +
            (!diagnostics.str().empty() ? diagnostics.str()
             : !config ? std::string("expected #norm.config<cpu|gpu, ...>")
                       : std::string("unexpected text after the attribute")));
  normjit::norm::ConfigKnobs knobs;
  knobs.backend = config.getBackend();
  knobs.vectorWidth = config.getVectorWidth();
  knobs.fuseResidual = config.getFuseResidual();
  knobs.accumulators = config.getAccumulators();
  knobs.rowsPerTask = config.getRowsPerTask();
  knobs.threads = config.getThreads();
  knobs.algorithm = config.getAlgorithm();
  knobs.streamingStores = config.getStreamingStores();
  knobs.prefetchRows = config.getPrefetchRows();
  knobs.rowGroup = config.getRowGroup();
  knobs.threadsPerRow = config.getThreadsPerRow();
  knobs.rowsPerBlock = config.getRowsPerBlock();
  knobs.elementsPerThread = config.getElementsPerThread();
  knobs.rowStorage = config.getRowStorage();
  knobs.persistent = config.getPersistent();
  knobs.minBlocksPerSm = config.getMinBlocksPerSm();
  return knobs;
}
} // namespace
} // namespace normjit::detail

llvm::Expected<normjit::norm::ConfigKnobs>
normjit::detail::parseConfigKnobs(llvm::StringRef text) {
  // MLIR's work, off the caller's thread.
  return runCompilerWork<normjit::norm::ConfigKnobs>(
      [&] { return parseConfigKnobsHere(text); });
}

llvm::Expected<normjit::CpuConfig>
normjit::parseCpuConfig(llvm::StringRef text, const CpuConfig &base) {
  auto knobs = detail::parseConfigKnobs(text);
  if (!knobs)
    return knobs.takeError();
  if (knobs->backend != normjit::norm::Backend::CPU)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "config '" + text + "' is not a cpu config");
  CpuConfig result = base;
  if (auto v = knobs->vectorWidth)
    result.vectorWidth = *v;
  if (auto v = knobs->accumulators)
    result.accumulators = *v;
  if (auto v = knobs->rowsPerTask)
    result.rowsPerTask = *v;
  if (auto v = knobs->threads)
    result.threads = static_cast<int>(*v);
  if (auto v = knobs->algorithm)
    result.welford = *v == normjit::norm::Algorithm::Welford;
  if (auto v = knobs->streamingStores)
    result.streamingStores = *v;
  if (auto v = knobs->prefetchRows)
    result.prefetchRows = *v;
  if (auto v = knobs->rowGroup)
    result.rowGroup = *v;
  if (auto v = knobs->fuseResidual)
    result.fuseResidual = *v;
  if (llvm::Error error = validateCpuConfig(result))
    return std::move(error);
  return result;
}

llvm::Error normjit::validateCpuConfig(const CpuConfig &config) {
  if (config.vectorWidth < 1 || config.vectorWidth > 64 ||
      !llvm::isPowerOf2_64(static_cast<uint64_t>(config.vectorWidth)))
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "vector_width must be a power of two in [1, 64], got " +
                         llvm::Twine(config.vectorWidth));
  if (config.accumulators < 1 || config.accumulators > 16)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "accumulators must be in [1, 16], got " +
                         llvm::Twine(config.accumulators));
  // The same bounds as #norm.config's, so that a config's text always
  // parses back.
  if (config.rowsPerTask < 1 || config.rowsPerTask > kMaxRowsPerTask)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "rows_per_task must be in [1, " +
                         llvm::Twine(kMaxRowsPerTask) + "], got " +
                         llvm::Twine(config.rowsPerTask));
  if (config.threads < 0 || config.threads > 1024)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "threads must be in [0, 1024], got " +
                         llvm::Twine(config.threads));
  if (config.prefetchRows < 0 || config.prefetchRows > kMaxPrefetchRows)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "prefetch_rows must be in [0, " +
                         llvm::Twine(kMaxPrefetchRows) + "], got " +
                         llvm::Twine(config.prefetchRows));
  if (config.rowGroup < 0 || config.rowGroup > kMaxRowGroup)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "row_group must be in [0, " + llvm::Twine(kMaxRowGroup) +
                         "] (0: the default), got " +
                         llvm::Twine(config.rowGroup));
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// IR
//===----------------------------------------------------------------------===//

DialectRegistry &normjit::detail::getKernelDialectRegistry() {
  static DialectRegistry *registry = [] {
    auto *r = new DialectRegistry();
    r->insert<normjit::norm::NormDialect, arith::ArithDialect,
              cf::ControlFlowDialect, func::FuncDialect, LLVM::LLVMDialect,
              math::MathDialect, memref::MemRefDialect, scf::SCFDialect,
              ub::UBDialect, vector::VectorDialect,
              x86vector::X86VectorDialect>();
    registerBuiltinDialectTranslation(*r);
    registerLLVMDialectTranslation(*r);
    return r;
  }();
  return *registry;
}

Type normjit::detail::elementType(MLIRContext *context, normjit_dtype_t dtype) {
  switch (dtype) {
  case NORMJIT_F16:
    return Float16Type::get(context);
  case NORMJIT_BF16:
    return BFloat16Type::get(context);
  case NORMJIT_F32:
    break;
  }
  return Float32Type::get(context);
}

namespace {
normjit::norm::ConfigAttr toConfigAttr(MLIRContext *context,
                                       const normjit::CpuConfig &config) {
  normjit::norm::ConfigKnobs knobs;
  knobs.backend = normjit::norm::Backend::CPU;
  knobs.vectorWidth = config.vectorWidth;
  knobs.fuseResidual = config.fuseResidual;
  knobs.accumulators = config.accumulators;
  knobs.rowsPerTask = config.rowsPerTask;
  if (config.threads > 0)
    knobs.threads = config.threads;
  knobs.algorithm = config.welford ? normjit::norm::Algorithm::Welford
                                   : normjit::norm::Algorithm::TwoPass;
  knobs.streamingStores = config.streamingStores;
  if (config.prefetchRows > 0)
    knobs.prefetchRows = config.prefetchRows;
  if (config.rowGroup > 0)
    knobs.rowGroup = config.rowGroup;
  return normjit::norm::getConfigChecked(
      [&] { return emitError(UnknownLoc::get(context)); }, context, knobs);
}
} // namespace

normjit::detail::DiagnosticCollector::DiagnosticCollector(MLIRContext *context)
    : handler(context, [this](Diagnostic &diag) {
        if (diag.getSeverity() == DiagnosticSeverity::Error) {
          llvm::raw_string_ostream os(text);
          if (!text.empty())
            os << "; ";
          os << diag;
        }
        return success();
      }) {}

SmallVector<Type>
normjit::detail::getKernelArgTypes(MLIRContext *context,
                                   const normjit_kernel_spec_t &spec) {
  int64_t cols = spec.cols;
  auto rowsType = [&](normjit_dtype_t dtype) {
    return MemRefType::get(
        {ShapedType::kDynamic, cols}, elementType(context, dtype),
        StridedLayoutAttr::get(context, 0, {ShapedType::kDynamic, 1}));
  };
  auto columnsType = [&](normjit_dtype_t dtype) {
    return MemRefType::get({cols}, elementType(context, dtype));
  };
  auto statsType =
      MemRefType::get({ShapedType::kDynamic}, Float32Type::get(context));
  // The fixed ABI: all eight operands, unused ones typed like their role.
  return {rowsType(spec.x_dtype),
          rowsType(spec.residual_dtype),
          columnsType(spec.gamma_dtype),
          columnsType(spec.beta_dtype),
          rowsType(spec.y_dtype),
          rowsType(spec.sum_dtype),
          statsType,
          statsType};
}

void normjit::detail::createNormOp(OpBuilder &b, Location loc,
                                   const normjit_kernel_spec_t &spec,
                                   ValueRange args,
                                   normjit::norm::ConfigAttr config) {
  auto arg = [&](unsigned i, bool used) { return used ? args[i] : Value(); };
  Value x = arg(0, true), residual = arg(1, spec.has_residual);
  Value gamma = arg(2, spec.has_gamma), beta = arg(3, spec.has_beta);
  Value y = arg(4, true), sum = arg(5, spec.store_sum);
  Value mean = arg(6, spec.store_mean), rstd = arg(7, spec.store_rstd);
  FloatAttr eps = b.getF32FloatAttr(spec.epsilon);
  if (spec.op == NORMJIT_LAYER_NORM)
    normjit::norm::LayerNormOp::create(b, loc, x, residual, gamma, beta, y, sum,
                                       mean, rstd, eps, config);
  else
    normjit::norm::RMSNormOp::create(b, loc, x, residual, gamma, beta, y, sum,
                                     mean, rstd, eps, config);
}

OwningOpRef<ModuleOp> normjit::detail::buildKernelModule(
    MLIRContext *context, const normjit_kernel_spec_t &spec,
    const normjit::CpuConfig &config, llvm::StringRef functionName) {
  Location loc = NameLoc::get(StringAttr::get(context, functionName));
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  OpBuilder b(module->getBodyRegion());
  SmallVector<Type> argTypes = getKernelArgTypes(context, spec);
  auto func = func::FuncOp::create(b, loc, functionName,
                                   b.getFunctionType(argTypes, {}));
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                UnitAttr::get(context));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  createNormOp(b, loc, spec, entry->getArguments(),
               toConfigAttr(context, config));
  func::ReturnOp::create(b, loc);
  return module;
}

llvm::Error
normjit::detail::checkKernelInputs(const normjit_kernel_spec_t &spec,
                                   const normjit::CpuConfig &config) {
  if (llvm::Error error =
          normjit::statusToError(normjit_kernel_spec_validate(&spec)))
    return error;
  return normjit::validateCpuConfig(config);
}

void normjit::detail::initializeLLVMOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

void normjit::detail::buildCpuLoweringPipeline(
    OpPassManager &pm, const normjit_kernel_spec_t &spec,
    const normjit::CpuConfig &config, bool nativeBf16) {
  OpPassManager &funcPM = pm.nest<func::FuncOp>();
  if (spec.has_residual && !config.fuseResidual)
    funcPM.addPass(normjit::norm::createNormSplitResidualAddPass());
  normjit::ConvertNormToVectorPassOptions lowering;
  lowering.vectorWidth = config.vectorWidth;
  lowering.accumulators = config.accumulators;
  lowering.welford = config.welford;
  lowering.dotBf16 = nativeBf16;
  funcPM.addPass(normjit::createConvertNormToVectorPass(lowering));
  funcPM.addPass(createCanonicalizerPass());
  funcPM.addPass(createCSEPass());
  funcPM.addPass(createLoopInvariantCodeMotionPass());
  addVectorToLLVMPasses(pm, nativeBf16);
}

void normjit::detail::addVectorToLLVMPasses(OpPassManager &pm,
                                            bool nativeBf16) {
  // bf16 conversions: with AVX512-BF16 LLVM rounds f32 -> bf16 in one
  // instruction (vcvtneps2bf16, round to nearest even); without it they
  // become integer code with the same rounding: never a libcall.
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = !nativeBf16;
  pm.addNestedPass<func::FuncOp>(arith::createArithExpandOpsPass(expand));
  pm.addPass(createSCFToControlFlowPass());
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.reassociateFPReductions = true;
  vectorToLLVM.x86Vector = nativeBf16; // x86vector.avx512.dot (vdpbf16ps)
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

namespace {
/// The i16 type of as many lanes as `type` (bf16 or a vector of bf16), or
/// null for other types.
llvm::Type *bf16AsI16(llvm::Type *type) {
  llvm::Type *i16 = llvm::Type::getInt16Ty(type->getContext());
  if (type->isBFloatTy())
    return i16;
  if (auto *vector = llvm::dyn_cast<llvm::FixedVectorType>(type))
    if (vector->getElementType()->isBFloatTy())
      return llvm::FixedVectorType::get(i16, vector->getNumElements());
  return nullptr;
}

/// `value` as `words` (its i16 type): the value a bitcast made from such
/// words, a lane of the words of a vector a lane was extracted from (the
/// GPU emulator's stores of single lanes), a shuffle of the words of a
/// shuffle's operands (a piece of a
/// wider vector, stored under a mask that lets the backend store lane by
/// lane: a shuffled bf16 lane would be rounded through __truncsfbf2 there,
/// x86-64-v3 with a mask known only at run time), or a new bitcast.
llvm::Value *asWords(llvm::IRBuilder<> &b, llvm::Value *value,
                     llvm::Type *words) {
  if (auto *cast = llvm::dyn_cast<llvm::BitCastInst>(value))
    if (cast->getSrcTy() == words)
      return cast->getOperand(0);
  if (auto *shuffle = llvm::dyn_cast<llvm::ShuffleVectorInst>(value))
    if (llvm::Type *operandWords = bf16AsI16(shuffle->getOperand(0)->getType()))
      return b.CreateShuffleVector(
          asWords(b, shuffle->getOperand(0), operandWords),
          asWords(b, shuffle->getOperand(1), operandWords),
          shuffle->getShuffleMask());
  if (auto *extract = llvm::dyn_cast<llvm::ExtractElementInst>(value))
    if (llvm::Type *vectorWords =
            bf16AsI16(extract->getVectorOperand()->getType()))
      return b.CreateExtractElement(
          asWords(b, extract->getVectorOperand(), vectorWords),
          extract->getIndexOperand());
  return b.CreateBitCast(value, words);
}

/// Loads and stores of bf16 values (plain and masked) become loads and
/// stores of i16 ones, the same bytes (phis and selects of them too): the
/// kernels only move bf16 bits in and out of memory (conversions are integer
/// code or native instructions). On a target without bf16 arithmetic
/// (x86-64-v3) the backend would otherwise legalize a stored bf16 vector as
/// floats and round each lane back through a libcall (__truncsfbf2) that
/// neither the JIT's process nor an AOT host can count on (libgcc has it from
/// GCC 13).
void bf16MemoryAsI16(llvm::Module &module) {
  llvm::SmallVector<llvm::Instruction *> accesses;
  for (llvm::Function &function : module)
    for (llvm::Instruction &instruction : llvm::instructions(function)) {
      auto *call = llvm::dyn_cast<llvm::IntrinsicInst>(&instruction);
      if (llvm::isa<llvm::LoadInst, llvm::StoreInst>(instruction) ||
          (call && (call->getIntrinsicID() == llvm::Intrinsic::masked_load ||
                    call->getIntrinsicID() == llvm::Intrinsic::masked_store)))
        accesses.push_back(&instruction);
    }
  for (llvm::Instruction *access : accesses) {
    llvm::IRBuilder<> b(access);
    if (auto *store = llvm::dyn_cast<llvm::StoreInst>(access)) {
      llvm::Type *words = bf16AsI16(store->getValueOperand()->getType());
      if (!words)
        continue;
      llvm::StoreInst *narrow =
          b.CreateAlignedStore(asWords(b, store->getValueOperand(), words),
                               store->getPointerOperand(), store->getAlign(),
                               store->isVolatile());
      narrow->copyMetadata(*store);
    } else if (auto *load = llvm::dyn_cast<llvm::LoadInst>(access)) {
      llvm::Type *words = bf16AsI16(load->getType());
      if (!words)
        continue;
      llvm::LoadInst *narrow =
          b.CreateAlignedLoad(words, load->getPointerOperand(),
                              load->getAlign(), load->isVolatile());
      narrow->copyMetadata(*load);
      load->replaceAllUsesWith(b.CreateBitCast(narrow, load->getType()));
    } else {
      auto *call = llvm::cast<llvm::IntrinsicInst>(access);
      bool isStore = call->getIntrinsicID() == llvm::Intrinsic::masked_store;
      llvm::Type *type =
          isStore ? call->getArgOperand(0)->getType() : call->getType();
      llvm::Type *words = bf16AsI16(type);
      if (!words)
        continue;
      if (isStore) {
        b.CreateMaskedStore(asWords(b, call->getArgOperand(0), words),
                            call->getArgOperand(1),
                            call->getParamAlign(1).valueOrOne(),
                            call->getArgOperand(2));
      } else {
        llvm::CallInst *narrow = b.CreateMaskedLoad(
            words, call->getArgOperand(0), call->getParamAlign(0).valueOrOne(),
            call->getArgOperand(1), asWords(b, call->getArgOperand(2), words));
        call->replaceAllUsesWith(b.CreateBitCast(narrow, type));
      }
    }
    access->eraseFromParent();
  }
  // Phis and selects of bf16 values carry the same bits as i16 ones: the
  // backend would otherwise widen them to floats and round them back
  // through that libcall (the GPU emulator's masked load, a branch to
  // the load and one to its pass-through NaN, joined by a phi).
  llvm::SmallVector<llvm::Instruction *> joins;
  for (llvm::Function &function : module)
    for (llvm::Instruction &instruction : llvm::instructions(function))
      if (llvm::isa<llvm::PHINode, llvm::SelectInst>(instruction) &&
          bf16AsI16(instruction.getType()))
        joins.push_back(&instruction);
  for (llvm::Instruction *join : joins) {
    llvm::Type *words = bf16AsI16(join->getType());
    llvm::Value *narrow;
    if (auto *phi = llvm::dyn_cast<llvm::PHINode>(join)) {
      llvm::IRBuilder<> b(phi);
      llvm::PHINode *wordsPhi = b.CreatePHI(words, phi->getNumIncomingValues());
      for (unsigned i = 0; i < phi->getNumIncomingValues(); ++i) {
        llvm::BasicBlock *from = phi->getIncomingBlock(i);
        llvm::IRBuilder<> atEnd(from->getTerminator());
        wordsPhi->addIncoming(asWords(atEnd, phi->getIncomingValue(i), words),
                              from);
      }
      llvm::IRBuilder<> after(phi->getParent(),
                              phi->getParent()->getFirstInsertionPt());
      narrow = after.CreateBitCast(wordsPhi, phi->getType());
    } else {
      auto *select = llvm::cast<llvm::SelectInst>(join);
      llvm::IRBuilder<> b(select);
      narrow = b.CreateBitCast(
          b.CreateSelect(select->getCondition(),
                         asWords(b, select->getTrueValue(), words),
                         asWords(b, select->getFalseValue(), words)),
          select->getType());
    }
    join->replaceAllUsesWith(narrow);
    join->eraseFromParent();
  }
}
} // namespace

std::function<llvm::Error(llvm::Module *)>
normjit::detail::makeKernelLLVMOptimizer(llvm::StringRef kernelName) {
  auto optimize = makeOptimizingTransformer(/*optLevel=*/0, /*sizeLevel=*/0,
                                            /*targetMachine=*/nullptr);
  return [optimize, name = kernelName.str()](llvm::Module *module) {
    bf16MemoryAsI16(*module);
    if (llvm::Function *kernel = module->getFunction(name))
      if (!kernel->isDeclaration() &&
          module->getFunction("_mlir_ciface_" + name)) {
        kernel->setLinkage(llvm::GlobalValue::InternalLinkage);
        kernel->addFnAttr(llvm::Attribute::AlwaysInline);
      }
    return optimize(module);
  };
}

using namespace normjit::detail;

normjit::detail::KernelIR::KernelIR(const DialectRegistry &registry)
    : context(registry, MLIRContext::Threading::DISABLED),
      diagnostics(&context) {
  context.loadAllAvailableDialects();
}

llvm::Expected<std::unique_ptr<KernelIR>>
normjit::detail::buildVerifiedKernelIR(const normjit_kernel_spec_t &spec,
                                       const CpuConfig &config,
                                       llvm::StringRef functionName) {
  if (llvm::Error error = checkKernelInputs(spec, config))
    return std::move(error);
  auto ir = std::make_unique<KernelIR>();
  ir->module = buildKernelModule(&ir->context, spec, config, functionName);
  if (failed(verify(*ir->module)))
    return makeError(NORMJIT_COMPILE_ERROR,
                     "invalid kernel IR: " + ir->diagnostics.str());
  return std::move(ir);
}

llvm::Expected<std::string>
normjit::buildKernelIR(const normjit_kernel_spec_t &spec,
                       const CpuConfig &config) {
  auto ir = buildVerifiedKernelIR(spec, config);
  if (!ir)
    return ir.takeError();
  std::string text;
  llvm::raw_string_ostream os(text);
  (*ir)->module->print(os);
  return text;
}

normjit::CompiledCpuKernel::~CompiledCpuKernel() {
  // Released by an exit handler or a static destructor (a host's clean-up
  // at exit) after LLVM's objects the JIT's destruction uses were
  // destroyed (it crashed or printed LLVM errors there): the process is
  // ending, its memory goes with it. Released where this thread's own
  // objects are gone: destroyed on a thread of its own.
  if (isProcessExiting()) {
    (void)engine.release();
    return;
  }
  if (engine && isThreadEnding()) {
    mlir::ExecutionEngine *released = engine.release();
    if (!runOnFreshThread([&] { delete released; }))
      return; // (no thread: left to the process's end)
  }
}

llvm::Expected<std::unique_ptr<normjit::CompiledCpuKernel>>
normjit::compileCpuKernel(const normjit_kernel_spec_t &spec,
                          const CpuConfig &config) {
  auto start = std::chrono::steady_clock::now();
  // The kernel's name in the module (buildVerifiedKernelIR's default).
  static constexpr llvm::StringLiteral kKernelName = "normjit_kernel";
  auto ir = buildVerifiedKernelIR(spec, config, kKernelName);
  if (!ir)
    return ir.takeError();
  initializeLLVMOnce();
  MLIRContext &context = (*ir)->context;
  const DiagnosticCollector &diagnostics = (*ir)->diagnostics;
  OwningOpRef<ModuleOp> &module = (*ir)->module;

  PassManager pm(&context);
  // The kernel IR was verified when built; re-verifying after every
  // lowering pass cost 0.5-1.5 ms of a 25 ms compile (debug builds keep it).
  pm.enableVerifier(kVerifyLoweringPasses);
  buildCpuLoweringPipeline(pm, spec, config, getHostCpu().avx512bf16);
  if (failed(pm.run(*module)))
    return makeError(NORMJIT_COMPILE_ERROR,
                     "lowering failed: " + diagnostics.str());

  // MLIR already emitted the vector code: no LLVM IR optimization, code
  // generation at O2 (see makeKernelLLVMOptimizer).
  auto optimize = makeKernelLLVMOptimizer(kKernelName);
  auto transformer = [&optimize](llvm::Module *llvmModule) -> llvm::Error {
    // The engine adds a packed `_mlir_<name>` wrapper to every function; the
    // JIT calls the C interface only, so those go before code generation
    // (and the optimizer inlines the kernel into its C interface): one
    // function to generate instead of four.
    for (llvm::Function &function : llvm::make_early_inc_range(*llvmModule))
      if (!function.isDeclaration() && function.use_empty() &&
          function.getName().starts_with("_mlir_") &&
          !function.getName().starts_with("_mlir_ciface_"))
        function.eraseFromParent();
    return optimize(llvmModule);
  };
  ExecutionEngineOptions options;
  options.transformer = transformer;
  options.jitCodeGenOptLevel = kKernelCodeGenOptLevel;
  options.enableGDBNotificationListener = false;
  options.enablePerfNotificationListener = false;
  // NORMJIT_DUMP_OBJECTS=DIR writes each kernel's machine code to
  // DIR/normjit-<n>.o, for llvm-objdump -d.
  const char *dumpDir = std::getenv("NORMJIT_DUMP_OBJECTS");
  options.enableObjectDump = dumpDir && *dumpDir;
  // The host's target machine, built here only when features are turned
  // off (otherwise the engine's own: the same CPU and features).
  std::unique_ptr<llvm::TargetMachine> machine;
  if (!getDisabledHostCpuFeatures().empty()) {
    auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
    if (!builder)
      return makeError(NORMJIT_COMPILE_ERROR,
                       "JIT setup failed: " +
                           llvm::toString(builder.takeError()));
    builder->getFeatures() =
        llvm::SubtargetFeatures(getHostFeatures().targetFeatures);
    builder->setCodeGenOptLevel(kKernelCodeGenOptLevel);
    auto created = builder->createTargetMachine();
    if (!created)
      return makeError(NORMJIT_COMPILE_ERROR,
                       "JIT setup failed: " +
                           llvm::toString(created.takeError()));
    machine = std::move(*created);
  }
  auto engine = ExecutionEngine::create(*module, options, std::move(machine));
  if (!engine)
    return makeError(NORMJIT_COMPILE_ERROR,
                     "JIT setup failed: " + llvm::toString(engine.takeError()));
  auto symbol = (*engine)->lookup(("_mlir_ciface_" + kKernelName).str());
  if (!symbol)
    return makeError(NORMJIT_COMPILE_ERROR,
                     "JIT compilation failed: " +
                         llvm::toString(symbol.takeError()));

  if (options.enableObjectDump) {
    static std::atomic<int> counter{0};
    (*engine)->dumpToObjectFile(std::string(dumpDir) + "/normjit-" +
                                std::to_string(counter++) + ".o");
  }

  std::unique_ptr<CompiledCpuKernel> kernel(new CompiledCpuKernel());
  kernel->engine = std::move(*engine);
  kernel->function = reinterpret_cast<normjit_cpu_kernel_fn>(*symbol);
  kernel->config = config;
  kernel->compileMillis = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start)
                              .count();
  return std::move(kernel);
}
