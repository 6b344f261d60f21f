//===- Context.cpp - the in-memory kernel cache and Kernel::run -----------===//
//
// Part of normjit. Implements Context and Kernel.
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/Context.h"

#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <cstdlib>
#include <optional>
#include <thread>

using namespace normjit;

namespace {
/// Set when this thread's thread-local objects are being destroyed: at the
/// end of a thread, and on the main thread when exit() destroys them before
/// it runs the atexit handlers and static destructors. MLIR's uniquer
/// caches are thread-local objects, so a compile after that point would
/// use freed memory. `ThreadEndWatch` is armed before the thread's first
/// compile, so it is destroyed after the MLIR objects that compile creates.
thread_local bool threadEnding = false;
struct ThreadEndWatch {
  bool armed = false;
  ~ThreadEndWatch() {
    if (armed)
      threadEnding = true;
  }
};
thread_local ThreadEndWatch threadEndWatch;

/// Set by an exit handler registered at the end of each of the first
/// compiles: LLVM creates static objects as it first compiles, and exit()
/// destroys them before it runs the handlers registered earlier (or the
/// destructors of static objects constructed earlier). A compile asked for
/// from those would use freed memory; it is refused instead. Handlers
/// registered after the first compiles run while LLVM is whole.
std::atomic<bool> processExiting{false};
std::atomic<int> exitMarkersLeft{8};
void markProcessExiting() { processExiting = true; }

/// Runs `compile` on this thread, or on a thread of its own where this
/// one's thread-local objects are gone (a kernel asked for by an atexit
/// handler or a static destructor), or refuses it where the compiler's
/// static objects may be gone.
llvm::Expected<std::shared_ptr<const void>> compileOnLiveThread(
    llvm::function_ref<llvm::Expected<std::shared_ptr<const void>>()>
        compile) {
  if (processExiting)
    return makeError(NORMJIT_UNSUPPORTED,
                     "cannot compile a kernel while the process exits "
                     "(from an exit handler registered, or a static object "
                     "constructed, before normjit first compiled): the "
                     "compiler's static objects are gone; get the kernel "
                     "before exit");
  threadEndWatch.armed = true;
  std::optional<llvm::Expected<std::shared_ptr<const void>>> result;
  if (!threadEnding)
    result.emplace(compile());
  else
    std::thread([&] { result.emplace(compile()); }).join();
  if (exitMarkersLeft.fetch_sub(1) > 0)
    std::atexit(markProcessExiting);
  return std::move(*result);
}
} // namespace

Kernel::Kernel(const normjit_kernel_spec_t &spec,
               std::unique_ptr<CompiledCpuKernel> compiled)
    : spec(spec), compiled(std::move(compiled)) {}

llvm::Error Kernel::run(const normjit_run_args_t &args) const {
  const CpuConfig &config = getConfig();
  normjit_cpu_launch_t launch{config.rowsPerTask, config.threads};
  return statusToError(
      normjit_cpu_launch(getFunction(), &spec, &args, &launch));
}

/// One cache entry: the first thread to ask compiles it while later ones
/// wait on `mutex`.
struct Context::Slot {
  std::mutex mutex;
  bool done = false;
  std::shared_ptr<const void> kernel;
  normjit_status_t status = NORMJIT_OK;
  std::string error;
};

Context::Context() = default;
Context::~Context() = default;

std::string normjit::getSpecKey(const normjit_kernel_spec_t &spec) {
  std::string key;
  llvm::raw_string_ostream os(key);
  auto dtype = [](bool used, normjit_dtype_t dtype) {
    return used ? static_cast<int>(dtype) : -1;
  };
  os << (spec.op == NORMJIT_LAYER_NORM ? "layer_norm" : "rms_norm") << ":"
     << spec.cols << ":x" << dtype(true, spec.x_dtype) << ":y"
     << dtype(true, spec.y_dtype) << ":r"
     << dtype(spec.has_residual, spec.residual_dtype) << ":s"
     << dtype(spec.store_sum, spec.sum_dtype) << ":g"
     << dtype(spec.has_gamma, spec.gamma_dtype) << ":b"
     << dtype(spec.has_beta, spec.beta_dtype) << ":m" << (spec.store_mean != 0)
     << ":rs" << (spec.store_rstd != 0) << ":eps";
  os.write_hex(llvm::bit_cast<uint32_t>(spec.epsilon));
  return key;
}

llvm::Expected<std::shared_ptr<const Kernel>>
Context::getKernel(const normjit_kernel_spec_t &spec,
                   std::optional<CpuConfig> config) {
  if (llvm::Error error = statusToError(normjit_kernel_spec_validate(&spec)))
    return std::move(error);
  CpuConfig chosen = config ? *config : getDefaultCpuConfig(spec);
  if (llvm::Error error = validateCpuConfig(chosen))
    return std::move(error);
  std::string key = getSpecKey(spec) + "|" + chosen.str();
  auto kernel = getOrCompile(
      key, [&]() -> llvm::Expected<std::shared_ptr<const void>> {
        auto compiled = compileCpuKernel(spec, chosen);
        if (!compiled)
          return compiled.takeError();
        return std::make_shared<const Kernel>(spec, std::move(*compiled));
      });
  if (!kernel)
    return kernel.takeError();
  return std::static_pointer_cast<const Kernel>(*kernel);
}

llvm::Expected<std::shared_ptr<const CompiledGpuKernel>>
Context::getGpuKernel(const normjit_kernel_spec_t &spec, int device,
                      std::optional<GpuConfig> config) {
  if (llvm::Error error = statusToError(normjit_kernel_spec_validate(&spec)))
    return std::move(error);
  GpuConfig chosen;
  if (config) {
    chosen = *config;
  } else {
    auto target = getGpuTarget(device);
    if (!target)
      return target.takeError();
    chosen = getDefaultGpuConfig(spec, *target);
  }
  std::string key = getSpecKey(spec) + "|cuda:" + std::to_string(device) +
                    "|" + chosen.str();
  auto kernel = getOrCompile(
      key, [&]() -> llvm::Expected<std::shared_ptr<const void>> {
        auto compiled = compileGpuKernel(spec, chosen, device);
        if (!compiled)
          return compiled.takeError();
        return std::shared_ptr<const CompiledGpuKernel>(std::move(*compiled));
      });
  if (!kernel)
    return kernel.takeError();
  return std::static_pointer_cast<const CompiledGpuKernel>(*kernel);
}

llvm::Expected<std::shared_ptr<const void>> Context::getOrCompile(
    const std::string &key,
    llvm::function_ref<llvm::Expected<std::shared_ptr<const void>>()>
        compile) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(mutex);
    std::shared_ptr<Slot> &entry = cache[key];
    if (!entry)
      entry = std::make_shared<Slot>();
    slot = entry;
  }
  std::lock_guard<std::mutex> lock(slot->mutex);
  if (!slot->done) {
    auto compiled = compileOnLiveThread(compile);
    if (compiled) {
      slot->kernel = std::move(*compiled);
    } else {
      llvm::handleAllErrors(
          compiled.takeError(),
          [&](const StatusError &e) {
            slot->status = e.getStatus();
            slot->error = e.getMessage();
          },
          [&](const llvm::ErrorInfoBase &e) {
            slot->status = NORMJIT_INTERNAL;
            slot->error = e.message();
          });
    }
    // A device error (no driver yet, a device busy or reset) or a device
    // out of memory (a module load, a context) may pass: the next request
    // tries again. Compile errors are remembered.
    slot->done = slot->kernel || (slot->status != NORMJIT_DEVICE_ERROR &&
                                  slot->status != NORMJIT_OUT_OF_MEMORY);
    if (!slot->done)
      return makeError(slot->status, slot->error);
  }
  if (!slot->kernel)
    return makeError(slot->status, slot->error);
  return slot->kernel;
}

size_t Context::getCacheSize() const {
  std::lock_guard<std::mutex> lock(mutex);
  return cache.size();
}
