//===- KernelPipeline.h - kernel IR shared by the JIT and AOT ---*- C++ -*-===//
//
// Part of normjit. The pieces of KernelCompiler.cpp that the JIT and the
// ahead-of-time compiler share, so that both turn a spec and a config into
// the same IR, lowering and LLVM optimization: private to the compiler.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_LIB_JIT_KERNELPIPELINE_H
#define NORMJIT_LIB_JIT_KERNELPIPELINE_H

#include "normjit/Dialect/Norm/IR/NormAttrs.h"
#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/JIT/KernelCompiler.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/CodeGen.h"

#include <functional>
#include <memory>
#include <string>

namespace llvm {
class Module;
} // namespace llvm

namespace mlir {
class DialectRegistry;
class MLIRContext;
} // namespace mlir

namespace normjit::detail {

/// The dialects (and their LLVM IR translations) kernels are built from.
mlir::DialectRegistry &getKernelDialectRegistry();

/// Parses `text`, all of it, as a `#norm.config` attribute and returns the
/// knobs it sets (absent ones empty). NORMJIT_INVALID_ARGUMENT "invalid
/// config 'TEXT': WHY" otherwise. The backend is not checked: callers say
/// which one they expect.
llvm::Expected<normjit::norm::ConfigKnobs>
parseConfigKnobs(llvm::StringRef text);

/// The GPU config's row storage for the dialect's enum, and back.
GpuRowStorage toGpuRowStorage(normjit::norm::RowStorage storage);
normjit::norm::RowStorage toNormRowStorage(GpuRowStorage storage);

/// The MLIR element type of a dtype.
mlir::Type elementType(mlir::MLIRContext *context, normjit_dtype_t dtype);

/// The types of a kernel's eight memref arguments (x, residual, gamma,
/// beta, y, sum, mean, rstd), unused ones typed like their role: the ABI of
/// CPU and GPU kernels alike.
llvm::SmallVector<mlir::Type>
getKernelArgTypes(mlir::MLIRContext *context,
                  const normjit_kernel_spec_t &spec);

/// Creates the norm op of `spec` on the eight kernel arguments `args`.
void createNormOp(mlir::OpBuilder &b, mlir::Location loc,
                  const normjit_kernel_spec_t &spec, mlir::ValueRange args,
                  normjit::norm::ConfigAttr config);

/// Checks a spec and a config before anything is compiled.
llvm::Error checkKernelInputs(const normjit_kernel_spec_t &spec,
                              const CpuConfig &config);

/// Builds the module holding one function `functionName` for `spec`: eight
/// memref arguments (the kernel ABI), one norm op carrying `config`, and the
/// C interface `_mlir_ciface_<functionName>`.
mlir::OwningOpRef<mlir::ModuleOp>
buildKernelModule(mlir::MLIRContext *context, const normjit_kernel_spec_t &spec,
                  const CpuConfig &config,
                  llvm::StringRef functionName = "normjit_kernel");

/// Adds the lowering of scf + vector + arith + memref functions (what
/// convert-norm-to-vector produces) to the LLVM dialect; bf16 conversions
/// are expanded to integer code unless `nativeBf16`.
void addVectorToLLVMPasses(mlir::OpPassManager &pm, bool nativeBf16);

/// Adds the lowering from `norm` IR to the LLVM dialect to `pm`.
void buildCpuLoweringPipeline(mlir::OpPassManager &pm,
                              const normjit_kernel_spec_t &spec,
                              const CpuConfig &config, bool nativeBf16 = false);

/// The LLVM IR optimization run on every translated kernel module, the JIT's
/// and AOT's alike: MLIR already emitted the vector code, so LLVM's O0
/// pipeline (no IR optimization) goes straight to code generation at O2,
/// whose DAG combines and machine passes do the rest. Measured on
/// LayerNorm bf16 x 4096: 20 ms per compile instead of 26 ms with O1, and
/// the kernels' GB/s within noise of O1's on f32/bf16, 16 to 8192 rows.
/// First the kernel `kernelName` is inlined into its C interface (made
/// internal and always-inline; the O0 pipeline runs the always-inliner):
/// one function to generate, and the same function for the JIT and for
/// AOT, so that their code is the same instruction for instruction.
std::function<llvm::Error(llvm::Module *)>
makeKernelLLVMOptimizer(llvm::StringRef kernelName);

/// The code generation level of kernels.
constexpr llvm::CodeGenOptLevel kKernelCodeGenOptLevel =
    llvm::CodeGenOptLevel::Default;

/// Whether the JIT's lowering pipelines verify the IR after every pass: in
/// debug builds only (the kernel IR is verified when built, and the lit
/// tests run every lowering pass with verification).
#ifdef NDEBUG
constexpr bool kVerifyLoweringPasses = false;
#else
constexpr bool kVerifyLoweringPasses = true;
#endif

/// Initializes LLVM's native target (once per process).
void initializeLLVMOnce();

/// Collects the error diagnostics of a scope into one string.
class DiagnosticCollector {
public:
  explicit DiagnosticCollector(mlir::MLIRContext *context);
  const std::string &str() const { return text; }

private:
  std::string text;
  mlir::ScopedDiagnosticHandler handler;
};

/// A kernel's MLIR context, the error diagnostics it collects, and its
/// module: the context outlives the module, so they live together. The
/// context holds `registry`'s dialects (the CPU kernels' by default).
struct KernelIR {
  explicit KernelIR(
      const mlir::DialectRegistry &registry = getKernelDialectRegistry());
  mlir::MLIRContext context;
  DiagnosticCollector diagnostics;
  mlir::OwningOpRef<mlir::ModuleOp> module;
};

/// Checks `spec` and `config`, builds @`functionName` and verifies it: the
/// common start of the JIT, the AOT compiler and buildKernelIR.
llvm::Expected<std::unique_ptr<KernelIR>>
buildVerifiedKernelIR(const normjit_kernel_spec_t &spec,
                      const CpuConfig &config,
                      llvm::StringRef functionName = "normjit_kernel");

//===----------------------------------------------------------------------===//
// GPU kernels (GpuKernelCompiler.cpp)
//===----------------------------------------------------------------------===//

/// The dialects (and translations, and ConvertToLLVM interfaces) GPU
/// kernels are built from.
mlir::DialectRegistry &getGpuDialectRegistry();

/// A GPU kernel module's IR: a KernelIR over the GPU registry, whose module
/// is `module attributes {gpu.container_module}` holding
/// `gpu.module @normjit_kernels`.
struct GpuKernelIR : KernelIR {
  GpuKernelIR() : KernelIR(getGpuDialectRegistry()) {}
};

/// Checks the requests and builds and verifies their gpu.module: one
/// gpu.func per kernel and per scalar twin, each holding one norm op.
llvm::Expected<std::unique_ptr<GpuKernelIR>>
buildVerifiedGpuIR(llvm::ArrayRef<GpuKernelRequest> kernels);

/// Adds convert-norm-to-gpu and its cleanups to a gpu.module pass manager:
/// the target-independent half of the GPU pipeline.
void addNormToGpuPasses(mlir::OpPassManager &gpuModulePM);

} // namespace normjit::detail

#endif // NORMJIT_LIB_JIT_KERNELPIPELINE_H
