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
#include <pthread.h>

using namespace normjit;

namespace {
/// Set at process exit by the exit handlers registered when normjit loads
/// and after compiler work (noteCompilerUse). LLVM makes static objects as
/// it first uses its parts (a first compile, a first GPU compile), and
/// exit() destroys each before it runs the handlers (and static
/// destructors) registered ahead of it. Those run after a marker: they get
/// no compile, and the kernels they release leave their JIT to the
/// process's end. Handlers registered after the last marker run before
/// every marker, with LLVM whole. Set process-wide: an exit handler's work
/// handed to another thread is refused too.
std::atomic<bool> processExiting{false};
void markProcessExiting() { processExiting = true; }
void registerExitMarker() { std::atexit(markProcessExiting); }
[[maybe_unused]] const bool markedAtLoad = (registerExitMarker(), true);

/// Registers a marker after a piece of compiler work: after each of the
/// first kEveryMarkedUses, then after the 2^k-th (LLVM makes its static
/// objects on the first uses of its parts; a marker a compile would grow
/// the exit list by 32 bytes a compile for the process's life).
constexpr uint64_t kEveryMarkedUses = 256;
std::atomic<uint64_t> compilerUses{0};
void noteCompilerUse() {
  uint64_t uses = ++compilerUses;
  if (uses <= kEveryMarkedUses || (uses & (uses - 1)) == 0)
    registerExitMarker();
}

/// Set when this thread's thread-local objects are destroyed: at the end of
/// a thread, and for the thread that calls exit(), before exit() runs the
/// handlers (glibc). Compiles and parses never run on a caller's thread
/// (runCompilerWork); a JIT destroyed here is destroyed on a thread of its
/// own too. The watch is armed on the thread that loads normjit and on
/// each thread that makes a context or asks for a kernel.
thread_local bool threadEnding = false;
struct ThreadEndWatch {
  bool armed = false;
  ~ThreadEndWatch() {
    if (armed)
      threadEnding = true;
  }
};
thread_local ThreadEndWatch threadEndWatch;

void armThreadEndWatch() {
  if (!threadEnding) // (not once the watch itself is destroyed)
    threadEndWatch.armed = true;
}
[[maybe_unused]] const bool armedAtLoad = (armThreadEndWatch(), true);
} // namespace

bool normjit::isProcessExiting() { return processExiting; }

bool normjit::isThreadEnding() {
  armThreadEndWatch();
  return threadEnding;
}

llvm::Error normjit::runCompilerWork(llvm::function_ref<void()> body) {
  if (llvm::Error error = checkThreadMayCompile())
    return error;
  if (!runOnFreshThread(body)) {
    if (isThreadEnding())
      return makeError(NORMJIT_INTERNAL,
                       "cannot start a thread for the compiler's work (this "
                       "thread's own objects are being destroyed)");
    body();
  }
  noteCompilerUse(); // after the objects this work made
  return llvm::Error::success();
}

bool normjit::runOnFreshThread(llvm::function_ref<void()> body) {
  pthread_t thread;
  auto run = [](void *arg) -> void * {
    (*static_cast<llvm::function_ref<void()> *>(arg))();
    return nullptr;
  };
  if (pthread_create(&thread, nullptr, run, &body) != 0)
    return false;
  pthread_join(thread, nullptr);
  return true;
}

llvm::Error normjit::checkThreadMayCompile() {
  armThreadEndWatch();
  if (!processExiting)
    return llvm::Error::success();
  return makeError(NORMJIT_UNSUPPORTED,
                   "cannot compile a kernel while the process exits, from "
                   "an exit handler or a static object's destructor that "
                   "runs after the compiler's objects are destroyed; get "
                   "the kernel before (a kernel got before runs)");
}

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

Context::Context() { armThreadEndWatch(); }
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
    // (A kernel compiled before is handed out on any thread.)
    auto compiled = runCompilerWork<std::shared_ptr<const void>>(compile);
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
