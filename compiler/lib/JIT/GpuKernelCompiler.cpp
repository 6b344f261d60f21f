//===- GpuKernelCompiler.cpp - spec -> norm IR -> PTX ---------------------===//
//
// Part of normjit. Builds gpu.func kernels holding one norm op each, lowers
// them with convert-norm-to-gpu and MLIR's NVVM conversions, translates the
// gpu.module to LLVM IR and runs LLVM's NVPTX back end for the chip. No
// CUDA toolkit is involved: nothing is resolved from libdevice (math ops go
// to LLVM intrinsics before the NVVM conversion).
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/GpuKernelCompiler.h"
#include "KernelPipeline.h"

#include "normjit/Conversion/Passes.h"
#include "normjit/Dialect/Norm/IR/NormOps.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVM.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVM.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/bit.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/OptimizationLevel.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"

#include "mlir/ExecutionEngine/OptUtils.h"

#include <chrono>
#include <mutex>

using namespace mlir;
using normjit::GpuConfig;
using normjit::GpuRowStorage;
using namespace normjit::detail;

namespace {

constexpr int64_t kMaxBlockThreads = 1024;
/// The most elements per thread the default heuristic holds in registers.
constexpr int64_t kMaxRegisterElements = 32;
/// The most elements per thread a config takes (#norm.config's range).
constexpr int64_t kMaxElementsPerThread = 1024;
/// About how many threads the default heuristic puts in a block.
constexpr int64_t kDefaultBlockThreads = 256;

} // namespace

DialectRegistry &normjit::detail::getGpuDialectRegistry() {
  static DialectRegistry *registry = [] {
    // The CPU kernels' dialects and translations, plus the GPU's.
    auto *r = new DialectRegistry();
    getKernelDialectRegistry().appendTo(*r);
    r->insert<gpu::GPUDialect, NVVM::NVVMDialect>();
    // convert-gpu-to-nvvm lowers the ops of these dialects through their
    // ConvertToLLVM interfaces.
    arith::registerConvertArithToLLVMInterface(*r);
    cf::registerConvertControlFlowToLLVMInterface(*r);
    registerConvertFuncToLLVMInterface(*r);
    registerConvertMathToLLVMInterface(*r);
    registerConvertMemRefToLLVMInterface(*r);
    registerConvertNVVMToLLVMInterface(*r);
    ub::registerConvertUBToLLVMInterface(*r);
    vector::registerConvertVectorToLLVMInterface(*r);
    registerGPUDialectTranslation(*r);
    registerNVVMDialectTranslation(*r);
    return r;
  }();
  return *registry;
}

namespace {
normjit::norm::ConfigAttr toConfigAttr(MLIRContext *context,
                                       const GpuConfig &config) {
  normjit::norm::ConfigKnobs knobs;
  knobs.backend = normjit::norm::Backend::GPU;
  knobs.vectorWidth = config.vectorWidth;
  knobs.threadsPerRow = config.threadsPerRow;
  knobs.rowsPerBlock = config.rowsPerBlock;
  knobs.elementsPerThread = config.elementsPerThread;
  knobs.rowStorage = toNormRowStorage(config.rowStorage);
  knobs.persistent = config.persistent;
  // (Any value but 0 goes to the verifier, which refuses one out of range.)
  if (config.minBlocksPerSm != 0)
    knobs.minBlocksPerSm = config.minBlocksPerSm;
  return normjit::norm::getConfigChecked(
      [&] { return emitError(UnknownLoc::get(context)); }, context, knobs);
}

/// The scalar twin of a config, for buffers not aligned for its vectors. It
/// keeps the launch shape (threads per row, rows per block, persistence),
/// so that the runtime launches either the same way, and the number of
/// accesses per thread and step; a row that would take more than 8 scalar
/// registers per thread is looped over instead (in shared memory when it
/// fits), since that many scalar chunks, each with its own addresses,
/// spill in a persistent kernel.
GpuConfig scalarTwin(const normjit_kernel_spec_t &spec, GpuConfig config) {
  int64_t vectors = config.elementsPerThread / config.vectorWidth;
  config.vectorWidth = 1;
  if (config.rowStorage == GpuRowStorage::Registers) {
    int64_t held =
        (spec.cols + config.threadsPerRow - 1) / config.threadsPerRow;
    if (held <= 8) {
      config.elementsPerThread = held;
      return config;
    }
    config.rowStorage =
        normjit::sharedRowsFit(spec.cols, config.rowsPerBlock, 1)
            ? GpuRowStorage::Shared
            : GpuRowStorage::Global;
    vectors = 4;
  }
  config.elementsPerThread = std::max<int64_t>(1, vectors);
  return config;
}

llvm::Error checkRequest(const normjit::GpuKernelRequest &request) {
  if (llvm::Error error =
          normjit::statusToError(normjit_kernel_spec_validate(&request.spec)))
    return error;
  if (request.name.empty())
    return normjit::makeError(NORMJIT_INVALID_ARGUMENT,
                              "a GPU kernel needs an entry name");
  return llvm::Error::success();
}

} // namespace

void normjit::detail::addNormToGpuPasses(OpPassManager &gpuModulePM) {
  gpuModulePM.addPass(normjit::createConvertNormToGPUPass());
  gpuModulePM.addPass(createCanonicalizerPass());
  gpuModulePM.addPass(createCSEPass());
}

llvm::Expected<std::unique_ptr<normjit::detail::GpuKernelIR>>
normjit::detail::buildVerifiedGpuIR(
    llvm::ArrayRef<normjit::GpuKernelRequest> kernels) {
  if (kernels.empty())
    return normjit::makeError(NORMJIT_INVALID_ARGUMENT,
                              "no GPU kernel to compile");
  auto ir = std::make_unique<GpuKernelIR>();
  MLIRContext *context = &ir->context;
  Location loc = NameLoc::get(StringAttr::get(context, "normjit_kernels"));
  ir->module = ModuleOp::create(loc);
  (*ir->module)
      ->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                UnitAttr::get(context));
  OpBuilder b(ir->module->getBodyRegion());
  auto gpuModule = gpu::GPUModuleOp::create(b, loc, "normjit_kernels");
  b.setInsertionPointToStart(gpuModule.getBody());
  llvm::StringSet<> names;
  // The kernels first, then (once they are valid, so that a bad config is
  // reported once) their scalar twins.
  for (bool twins : {false, true}) {
    for (const normjit::GpuKernelRequest &request : kernels) {
      if (llvm::Error error = checkRequest(request))
        return std::move(error);
      std::string twin =
          normjit::getUnalignedEntryName(request.name, request.config);
      SmallVector<std::pair<std::string, GpuConfig>, 1> entries;
      if (!twins)
        entries.push_back({request.name, request.config});
      else if (twin != request.name)
        entries.push_back({twin, scalarTwin(request.spec, request.config)});
      for (auto &[name, config] : entries) {
        if (!names.insert(name).second)
          return normjit::makeError(NORMJIT_INVALID_ARGUMENT,
                                    "two GPU kernels are named '" + name + "'");
        normjit::norm::ConfigAttr configAttr = toConfigAttr(context, config);
        if (!configAttr)
          return normjit::makeError(NORMJIT_INVALID_ARGUMENT,
                                    "invalid gpu config " + config.str() +
                                        ": " + ir->diagnostics.str());
        Location kernelLoc = NameLoc::get(StringAttr::get(context, name));
        auto func = gpu::GPUFuncOp::create(
            b, kernelLoc, name,
            b.getFunctionType(
                normjit::detail::getKernelArgTypes(context, request.spec), {}));
        func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                      UnitAttr::get(context));
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&func.getBody().front());
        normjit::detail::createNormOp(b, kernelLoc, request.spec,
                                      func.getArguments(), configAttr);
        gpu::ReturnOp::create(b, kernelLoc);
      }
    }
    if (failed(verify(*ir->module)))
      return normjit::makeError(NORMJIT_INVALID_ARGUMENT,
                                "invalid GPU kernel: " + ir->diagnostics.str());
  }
  return std::move(ir);
}

namespace {

/// The NVVM conversion turns math ops into calls of libdevice functions
/// (`__nv_sqrtf`), and marks the LLVM intrinsics they would otherwise
/// become illegal. Defining the few the kernels use with LLVM intrinsics
/// (which the NVPTX back end lowers to IEEE-rounded instructions) keeps
/// the CUDA toolkit's libdevice out of the picture.
void defineLibdeviceFunctions(llvm::Module &module) {
  struct Shim {
    const char *name;
    llvm::Intrinsic::ID intrinsic;
  };
  for (Shim shim : {Shim{"__nv_sqrtf", llvm::Intrinsic::sqrt},
                    Shim{"__nv_fabsf", llvm::Intrinsic::fabs}}) {
    llvm::Function *function = module.getFunction(shim.name);
    if (!function || !function->isDeclaration())
      continue;
    function->setLinkage(llvm::GlobalValue::InternalLinkage);
    function->addFnAttr(llvm::Attribute::AlwaysInline);
    llvm::IRBuilder<> builder(
        llvm::BasicBlock::Create(module.getContext(), "entry", function));
    llvm::Value *arg = function->getArg(0);
    builder.CreateRet(builder.CreateUnaryIntrinsic(shim.intrinsic, arg));
  }
}

void initializeNVPTXOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
  });
}

} // namespace

//===----------------------------------------------------------------------===//
// Configs and targets
//===----------------------------------------------------------------------===//

const char *normjit::getGpuRowStorageName(GpuRowStorage storage) {
  switch (storage) {
  case GpuRowStorage::Registers:
    return "registers";
  case GpuRowStorage::Shared:
    return "shared";
  case GpuRowStorage::Global:
    return "global";
  }
  return "global";
}

std::optional<normjit::GpuRowStorage>
normjit::parseGpuRowStorage(llvm::StringRef name) {
  for (GpuRowStorage storage :
       {GpuRowStorage::Registers, GpuRowStorage::Shared, GpuRowStorage::Global})
    if (name == getGpuRowStorageName(storage))
      return storage;
  return std::nullopt;
}

std::string normjit::GpuConfig::str() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  const char *storage = getGpuRowStorageName(rowStorage);
  os << "#norm.config<gpu, vector_width = " << vectorWidth
     << ", threads_per_row = " << threadsPerRow
     << ", rows_per_block = " << rowsPerBlock
     << ", elements_per_thread = " << elementsPerThread
     << ", row_storage = " << storage
     << ", persistent = " << (persistent ? "true" : "false");
  if (minBlocksPerSm != 0)
    os << ", min_blocks_per_sm = " << minBlocksPerSm;
  os << ">";
  return text;
}

bool normjit::GpuConfig::operator==(const GpuConfig &other) const {
  return threadsPerRow == other.threadsPerRow &&
         rowsPerBlock == other.rowsPerBlock &&
         elementsPerThread == other.elementsPerThread &&
         vectorWidth == other.vectorWidth && rowStorage == other.rowStorage &&
         persistent == other.persistent &&
         minBlocksPerSm == other.minBlocksPerSm;
}

unsigned normjit::getWidestElementBits(const normjit_kernel_spec_t &spec) {
  size_t bytes = std::max(normjit_dtype_size(spec.x_dtype),
                          normjit_dtype_size(spec.y_dtype));
  auto use = [&](bool used, normjit_dtype_t dtype) {
    if (used)
      bytes = std::max(bytes, normjit_dtype_size(dtype));
  };
  use(spec.has_residual, spec.residual_dtype);
  use(spec.store_sum, spec.sum_dtype);
  use(spec.has_gamma, spec.gamma_dtype);
  use(spec.has_beta, spec.beta_dtype);
  return static_cast<unsigned>(8 * bytes);
}

bool normjit::sharedRowsFit(int64_t cols, int64_t rowsPerBlock,
                            int64_t vectorWidth) {
  return static_cast<__int128>(rowsPerBlock) *
             normjit::norm::getSharedRowLength(cols, vectorWidth) * 4 <=
         normjit::norm::kMaxSharedRowBytes;
}

std::string normjit::GpuTarget::chip() const {
  return "sm_" + std::to_string(ccMajor) + std::to_string(ccMinor);
}

namespace {
/// The NVPTX target, or null after setting `error`.
const llvm::Target *lookupNvptx(std::string &error) {
  initializeNVPTXOnce();
  return llvm::TargetRegistry::lookupTarget(
      llvm::Triple("nvptx64-nvidia-cuda"), error);
}
} // namespace

unsigned normjit::getPlainChipNumber(llvm::StringRef name) {
  unsigned value = 0;
  if (!name.consume_front("sm_") || name.getAsInteger(10, value))
    return 0;
  return value;
}

const llvm::MCSubtargetInfo *normjit::getNvptxSubtargetInfo(std::string &error) {
  // Never destroyed: exit-time code may still ask.
  static std::once_flag once;
  static llvm::MCSubtargetInfo *info = nullptr;
  static std::string &failure = *new std::string;
  std::call_once(once, [] {
    const llvm::Target *target = lookupNvptx(failure);
    if (target)
      info = target->createMCSubtargetInfo(llvm::Triple("nvptx64-nvidia-cuda"),
                                           "", "");
    if (!info && failure.empty())
      failure = "no NVPTX subtarget information";
  });
  error = failure;
  return info;
}

llvm::Expected<normjit::GpuTarget>
normjit::getCodegenTarget(const GpuTarget &device) {
  std::string error;
  const llvm::MCSubtargetInfo *info = getNvptxSubtargetInfo(error);
  if (!info)
    return makeError(NORMJIT_UNSUPPORTED,
                     "this LLVM has no NVPTX back end: " + error);
  if (info->isCPUStringValid(device.chip()))
    return device;
  // A chip newer than this LLVM: PTX for the newest chip it knows that is
  // not newer than the device, which the driver compiles forward.
  unsigned wanted = static_cast<unsigned>(device.ccMajor * 10 + device.ccMinor);
  unsigned best = 0;
  for (const llvm::SubtargetSubTypeKV &kv : info->getAllProcessorDescriptions())
    if (unsigned value = getPlainChipNumber(kv.Key); value <= wanted)
      best = std::max(best, value);
  if (best < 80)
    return makeError(NORMJIT_UNSUPPORTED,
                     "no GPU chip of this LLVM's NVPTX back end is "
                     "compatible with " +
                         device.chip());
  GpuTarget target = device;
  target.ccMajor = static_cast<int>(best / 10);
  target.ccMinor = static_cast<int>(best % 10);
  return target;
}

llvm::Expected<normjit::GpuTarget> normjit::parseGpuChip(llvm::StringRef chip) {
  llvm::StringRef digits = chip;
  if (!digits.consume_front("sm_"))
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "GPU chip '" + chip +
                         "': expected sm_<major><minor>, "
                         "e.g. sm_80 or sm_90");
  digits.consume_back("a");
  unsigned value = 0;
  if (digits.size() < 2 || digits.getAsInteger(10, value) || value < 80)
    return makeError(NORMJIT_UNSUPPORTED, "GPU chip '" + chip +
                                              "': normjit generates code for "
                                              "sm_80 and newer");
  GpuTarget target;
  target.ccMajor = static_cast<int>(value / 10);
  target.ccMinor = static_cast<int>(value % 10);
  return target;
}

normjit::GpuConfig
normjit::getDefaultGpuConfig(const normjit_kernel_spec_t &spec,
                             const GpuTarget &target) {
  (void)target;
  GpuConfig config;
  int64_t cols = std::max<int64_t>(1, spec.cols);
  // 128-bit accesses of the widest element, narrowed until the vectors
  // tile the row (so contiguous rows stay aligned for them).
  unsigned bits = std::max(8u, getWidestElementBits(spec));
  config.vectorWidth = std::min<int64_t>(8, 128 / bits);
  while (config.vectorWidth > 1 && cols % config.vectorWidth != 0)
    config.vectorWidth /= 2;
  // About four vectors per thread held in registers: enough loads in
  // flight per thread, and rows of many threads for long rows.
  int64_t vectors = llvm::divideCeilSigned(cols, config.vectorWidth);
  config.threadsPerRow = std::clamp<int64_t>(
      static_cast<int64_t>(llvm::PowerOf2Ceil(
          static_cast<uint64_t>(llvm::divideCeilSigned(vectors, 4)))),
      1, kMaxBlockThreads);
  int64_t chunks = llvm::divideCeilSigned(vectors, config.threadsPerRow);
  config.elementsPerThread = chunks * config.vectorWidth;
  if (config.elementsPerThread > kMaxRegisterElements) {
    // Too long to hold: loop over the row and read it again from L2.
    config.rowStorage = GpuRowStorage::Global;
    config.elementsPerThread = 2 * config.vectorWidth;
  }
  // Blocks of about 256 threads.
  config.rowsPerBlock =
      std::max<int64_t>(1, kDefaultBlockThreads / config.threadsPerRow);
  config.persistent = false;
  return config;
}

namespace {
/// fitGpuKnobs for the knobs that shape the row's split over threads.
void fitRowKnobs(GpuConfig &config, int64_t cols,
                 const normjit::GpuKnobsGiven &given) {
  if (given.threadsPerRow && !given.rowsPerBlock)
    config.rowsPerBlock = std::max<int64_t>(
        1, kDefaultBlockThreads / std::max<int64_t>(1, config.threadsPerRow));
  // Rows per block given, threads per row not: fewer threads per row where
  // the default's would make the block too large.
  bool threadsSet = given.threadsPerRow;
  if (given.rowsPerBlock && !given.threadsPerRow && config.rowsPerBlock > 0 &&
      config.threadsPerRow * config.rowsPerBlock > kMaxBlockThreads) {
    config.threadsPerRow = static_cast<int64_t>(llvm::bit_floor(
        static_cast<uint64_t>(std::max<int64_t>(
            1, kMaxBlockThreads / config.rowsPerBlock))));
    threadsSet = true;
  }
  if (given.elementsPerThread) {
    // Vectors that divide the elements given (a user's 6 with the
    // default's vectors of 4 takes vectors of 2), and, for a row held in
    // registers, enough threads per row to hold it.
    while (!given.vectorWidth && config.vectorWidth > 1 &&
           config.elementsPerThread % config.vectorWidth != 0)
      config.vectorWidth /= 2;
    if (config.rowStorage == GpuRowStorage::Registers && !threadsSet) {
      int64_t needed = llvm::divideCeilSigned(
          std::max<int64_t>(1, cols),
          std::max<int64_t>(1, config.elementsPerThread));
      config.threadsPerRow = std::clamp<int64_t>(
          static_cast<int64_t>(llvm::PowerOf2Ceil(
              static_cast<uint64_t>(needed))),
          1, kMaxBlockThreads);
      if (!given.rowsPerBlock)
        config.rowsPerBlock = std::max<int64_t>(
            1, kDefaultBlockThreads / config.threadsPerRow);
    }
    return;
  }
  if (!(threadsSet || given.vectorWidth || given.rowStorage))
    return;
  int64_t width = std::max<int64_t>(1, config.vectorWidth);
  if (config.rowStorage == GpuRowStorage::Registers) {
    int64_t perThread = llvm::divideCeilSigned(
        std::max<int64_t>(1, cols), std::max<int64_t>(1, config.threadsPerRow));
    // Vectors no wider than a thread's share (narrower ones still tile the
    // row the default's did).
    while (!given.vectorWidth && width > 1 && perThread < width)
      width /= 2;
    config.vectorWidth = width;
    // (At most what a config takes: a row too long for the registers then
    // fails to verify saying so, not over a knob the user never gave.)
    config.elementsPerThread = std::min<int64_t>(
        static_cast<int64_t>(llvm::alignTo(perThread, width)),
        kMaxElementsPerThread);
    if (config.elementsPerThread <= kMaxRegisterElements || given.rowStorage)
      return;
    config.rowStorage = GpuRowStorage::Global;
    config.elementsPerThread = 2 * width;
    return;
  }
  config.elementsPerThread = static_cast<int64_t>(
      llvm::alignTo(std::max<int64_t>(1, config.elementsPerThread), width));
}
} // namespace

void normjit::fitGpuKnobs(GpuConfig &config, int64_t cols,
                          const GpuKnobsGiven &given) {
  fitRowKnobs(config, cols, given);
  // min_blocks_per_sm given, rows per block not: fewer rows per block
  // where the blocks asked for would pass the threads a multiprocessor
  // holds.
  if (given.minBlocksPerSm && !given.rowsPerBlock && config.minBlocksPerSm > 0)
    while (config.rowsPerBlock > 1 &&
           config.minBlocksPerSm * config.blockSize() >
               normjit::norm::kMaxThreadsPerSm)
      config.rowsPerBlock /= 2;
}

normjit::SmResidency normjit::getSmResidency(const GpuTarget &target) {
  switch (target.ccMajor * 10 + target.ccMinor) {
  case 75:
    return {16, 1024};
  case 86:
  case 87:
    return {16, 1536};
  case 89:
  case 120:
    return {24, 1536};
  default:
    return {32, 2048};
  }
}

bool normjit::fitsSmResidency(const GpuConfig &config,
                              const GpuTarget &target) {
  SmResidency sm = getSmResidency(target);
  return config.minBlocksPerSm <= 0 ||
         (config.minBlocksPerSm <= sm.maxBlocks &&
          config.minBlocksPerSm * config.blockSize() <= sm.maxThreads);
}

llvm::Error normjit::checkMinBlocksPerSm(const GpuConfig &config,
                                         const GpuTarget &target) {
  if (fitsSmResidency(config, target))
    return llvm::Error::success();
  SmResidency sm = getSmResidency(target);
  return makeError(NORMJIT_INVALID_ARGUMENT,
                   "config " + config.str() + ": min_blocks_per_sm = " +
                       std::to_string(config.minBlocksPerSm) +
                       " blocks of " + std::to_string(config.blockSize()) +
                       " threads, but an " + target.chip() +
                       " multiprocessor runs at most " +
                       std::to_string(sm.maxBlocks) + " blocks and " +
                       std::to_string(sm.maxThreads) + " threads");
}

normjit::GpuRowStorage
normjit::detail::toGpuRowStorage(normjit::norm::RowStorage storage) {
  switch (storage) {
  case normjit::norm::RowStorage::Registers:
    return GpuRowStorage::Registers;
  case normjit::norm::RowStorage::Shared:
    return GpuRowStorage::Shared;
  case normjit::norm::RowStorage::Global:
    break;
  }
  return GpuRowStorage::Global;
}

normjit::norm::RowStorage
normjit::detail::toNormRowStorage(GpuRowStorage storage) {
  switch (storage) {
  case GpuRowStorage::Registers:
    return normjit::norm::RowStorage::Registers;
  case GpuRowStorage::Shared:
    return normjit::norm::RowStorage::Shared;
  case GpuRowStorage::Global:
    break;
  }
  return normjit::norm::RowStorage::Global;
}

namespace {

/// `knobs` (parsed from `text`) over `base`, refused when they are not a
/// GPU config.
llvm::Expected<normjit::GpuConfig>
applyGpuKnobs(const normjit::norm::ConfigKnobs &knobs, llvm::StringRef text,
              const normjit::GpuConfig &base) {
  using namespace normjit;
  if (knobs.backend != normjit::norm::Backend::GPU)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "config '" + text + "' is not a gpu config");
  if (knobs.fuseResidual == false)
    return makeError(NORMJIT_UNSUPPORTED,
                     "config '" + text +
                         "': the GPU backend always fuses "
                         "the residual add (fuse_residual = false is a CPU "
                         "choice)");
  GpuConfig result = base;
  if (auto v = knobs.vectorWidth)
    result.vectorWidth = *v;
  if (auto v = knobs.threadsPerRow)
    result.threadsPerRow = *v;
  if (auto v = knobs.rowsPerBlock)
    result.rowsPerBlock = *v;
  if (auto v = knobs.elementsPerThread)
    result.elementsPerThread = *v;
  if (auto v = knobs.rowStorage)
    result.rowStorage = toGpuRowStorage(*v);
  if (auto v = knobs.persistent)
    result.persistent = *v;
  if (auto v = knobs.minBlocksPerSm)
    result.minBlocksPerSm = *v;
  return result;
}

} // namespace

llvm::Expected<normjit::GpuConfig>
normjit::parseGpuConfig(llvm::StringRef text, const GpuConfig &base) {
  auto knobs = parseConfigKnobs(text);
  if (!knobs)
    return knobs.takeError();
  return applyGpuKnobs(*knobs, text, base);
}

namespace {
/// `knobs` (parsed from `text`) over the default config of `spec` on
/// `target`, the others fitted to them.
llvm::Expected<normjit::GpuConfig>
gpuConfigFor(const normjit::norm::ConfigKnobs &knobs, llvm::StringRef text,
             const normjit_kernel_spec_t &spec,
             const normjit::GpuTarget &target) {
  auto config =
      applyGpuKnobs(knobs, text, normjit::getDefaultGpuConfig(spec, target));
  if (!config)
    return config.takeError();
  normjit::fitGpuKnobs(*config, spec.cols, normjit::getKnobsGiven(knobs));
  return config;
}
} // namespace

llvm::Expected<normjit::GpuConfig>
normjit::parseGpuConfigFor(llvm::StringRef text,
                           const normjit_kernel_spec_t &spec,
                           const GpuTarget &target) {
  auto knobs = parseConfigKnobs(text);
  if (!knobs)
    return knobs.takeError();
  return gpuConfigFor(*knobs, text, spec, target);
}

llvm::Expected<normjit::GpuConfig>
normjit::parseGpuConfigForDevice(llvm::StringRef text,
                                 const normjit_kernel_spec_t &spec,
                                 int device) {
  auto knobs = parseConfigKnobs(text);
  if (!knobs)
    return knobs.takeError();
  // What is no GPU config is refused before the device is asked for.
  if (auto checked = applyGpuKnobs(*knobs, text, GpuConfig()); !checked)
    return checked.takeError();
  auto target = getGpuTarget(device);
  if (!target)
    return target.takeError();
  return gpuConfigFor(*knobs, text, spec, *target);
}

llvm::Error normjit::validateGpuConfig(const normjit_kernel_spec_t &spec,
                                       const GpuConfig &config) {
  GpuKernelRequest request{spec, config, "normjit_kernel"};
  auto ir = buildVerifiedGpuIR(request);
  if (!ir)
    return ir.takeError();
  return llvm::Error::success();
}

std::string normjit::getUnalignedEntryName(const std::string &name,
                                           const GpuConfig &config) {
  return config.vectorWidth == 1 ? name : name + "_unaligned";
}

//===----------------------------------------------------------------------===//
// IR and PTX
//===----------------------------------------------------------------------===//

llvm::Expected<std::string>
normjit::buildGpuKernelIR(llvm::ArrayRef<GpuKernelRequest> kernels) {
  auto ir = buildVerifiedGpuIR(kernels);
  if (!ir)
    return ir.takeError();
  std::string text;
  llvm::raw_string_ostream os(text);
  (*ir)->module->print(os);
  return text;
}

llvm::Expected<normjit::GpuModuleImage>
normjit::compileGpuPtx(llvm::ArrayRef<GpuKernelRequest> kernels,
                       const GpuTarget &target) {
  auto start = std::chrono::steady_clock::now();
  for (const GpuKernelRequest &kernel : kernels)
    if (llvm::Error error = checkMinBlocksPerSm(kernel.config, target))
      return std::move(error);
  auto ir = buildVerifiedGpuIR(kernels);
  if (!ir)
    return ir.takeError();
  MLIRContext &context = (*ir)->context;
  ModuleOp module = *(*ir)->module;

  PassManager pm(&context);
  pm.enableVerifier(kVerifyLoweringPasses);
  OpPassManager &gpm = pm.nest<gpu::GPUModuleOp>();
  addNormToGpuPasses(gpm);
  gpm.addPass(createSCFToControlFlowPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.indexBitwidth = 64;
  gpm.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  gpm.addPass(createCanonicalizerPass());
  gpm.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  if (failed(pm.run(module)))
    return makeError(NORMJIT_COMPILE_ERROR,
                     "GPU lowering failed: " + (*ir)->diagnostics.str());

  auto gpuModule = *module.getOps<gpu::GPUModuleOp>().begin();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(gpuModule, llvmContext, "normjit_kernels");
  if (!llvmModule)
    return makeError(NORMJIT_COMPILE_ERROR, "translation to LLVM IR failed: " +
                                                (*ir)->diagnostics.str());

  defineLibdeviceFunctions(*llvmModule);
  llvm::Triple triple("nvptx64-nvidia-cuda");
  std::string lookupError;
  const llvm::Target *nvptx = lookupNvptx(lookupError);
  if (!nvptx)
    return makeError(NORMJIT_UNSUPPORTED,
                     "this LLVM has no NVPTX back end: " + lookupError);
  std::unique_ptr<llvm::TargetMachine> machine(nvptx->createTargetMachine(
      triple, target.chip(),
      // No +ptx feature: LLVM writes the lowest PTX ISA version that knows
      // the chip (7.8 for sm_90, 8.8 for sm_103), so older drivers load it;
      // a lower one is a fatal error in the back end.
      "", llvm::TargetOptions(),
      std::nullopt, std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return makeError(NORMJIT_UNSUPPORTED,
                     "no NVPTX target machine for " + target.chip());
  llvmModule->setTargetTriple(triple);
  llvmModule->setDataLayout(machine->createDataLayout());
  if (llvm::Error error = makeOptimizingTransformer(
          /*optLevel=*/3, /*sizeLevel=*/0, machine.get())(llvmModule.get()))
    return makeError(NORMJIT_COMPILE_ERROR,
                     "LLVM optimization failed: " +
                         llvm::toString(std::move(error)));
  // Every function must be defined here: a call left to libdevice (or any
  // other library) could not be resolved by the driver.
  for (llvm::Function &function : *llvmModule)
    if (function.isDeclaration() && !function.isIntrinsic())
      return makeError(NORMJIT_COMPILE_ERROR,
                       "GPU kernel calls external function '" +
                           function.getName() + "'");

  GpuModuleImage image;
  image.chip = target.chip();
  {
    llvm::raw_string_ostream os(image.ptx);
    llvm::buffer_ostream bos(os);
    llvm::legacy::PassManager codegen;
    if (machine->addPassesToEmitFile(codegen, bos, nullptr,
                                     llvm::CodeGenFileType::AssemblyFile))
      return makeError(NORMJIT_COMPILE_ERROR,
                       "the NVPTX back end cannot emit PTX for " +
                           target.chip());
    codegen.run(*llvmModule);
  }
  image.compileMillis = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start)
                            .count();
  return image;
}
