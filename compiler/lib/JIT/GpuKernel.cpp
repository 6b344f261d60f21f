//===- GpuKernel.cpp - GPU kernels loaded through the CUDA driver ---------===//
//
// Part of normjit. Compiles a spec to PTX for a device's chip, loads it with
// the runtime's driver layer and launches it. No MLIR header is needed.
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/runtime/CudaLaunch.h"
#include "normjit/runtime/Error.h"

#include <chrono>

using namespace normjit;

llvm::Expected<int> normjit::parseDeviceName(llvm::StringRef name) {
  if (name == "cpu")
    return -1;
  llvm::StringRef rest = name;
  if (rest.consume_front("cuda")) {
    if (rest.empty())
      return 0;
    unsigned ordinal = 0;
    if (rest.consume_front(":") && !rest.getAsInteger(10, ordinal) &&
        ordinal < 1024)
      return static_cast<int>(ordinal);
  }
  return makeError(NORMJIT_INVALID_ARGUMENT,
                   "unknown device '" + name +
                       "': expected cpu, cuda or cuda:N");
}

llvm::Expected<GpuTarget> normjit::getGpuTarget(int ordinal) {
  normjit_cuda_device_info_t info;
  if (normjit_status_t status = normjit_cuda_device_info(ordinal, &info))
    return statusToError(status);
  GpuTarget target;
  target.ccMajor = info.cc_major;
  target.ccMinor = info.cc_minor;
  target.smCount = info.sm_count;
  if (target.ccMajor < 8)
    return makeError(NORMJIT_UNSUPPORTED,
                     std::string("CUDA device ") + std::to_string(ordinal) +
                         " (" + info.name + ") is " + target.chip() +
                         ": normjit generates code for sm_80 and newer");
  // A chip newer than this LLVM's NVPTX back end gets the PTX of the
  // newest chip it knows (an unknown chip was a fatal error in the back
  // end: the host process exited).
  return getCodegenTarget(target);
}

CompiledGpuKernel::~CompiledGpuKernel() {
  if (launches)
    launches->releaseAll();
}

const normjit_cuda_kernel_t &CompiledGpuKernel::getLaunch() const {
  // compileGpuKernel loads the module once before handing the kernel out.
  return launches->first()->launch;
}

namespace normjit {
/// Loads a kernel's module in a context (see ContextLaunches).
struct GpuKernelLoader {
  static runtime::cuda::ContextLaunches::Loader
  get(const CompiledGpuKernel &kernel) {
    return [&kernel](void *context,
                     runtime::cuda::ContextLaunches::Entry &entry) {
      return load(kernel, context, entry);
    };
  }

  static normjit_status_t load(const CompiledGpuKernel &kernel, void *context,
                               runtime::cuda::ContextLaunches::Entry &entry) {
    const std::string &ptx = kernel.ptx, &entryName = kernel.entryName;
    const GpuConfig &config = kernel.config;
    NORMJIT_RETURN_IF_ERROR(normjit_cuda_module_load_in_context(
        context, ptx.data(), ptx.size(), &entry.module));
    void *function = nullptr, *unaligned = nullptr;
    normjit_status_t status = normjit_cuda_module_get_function(
        entry.module, entryName.c_str(), &function);
    if (status == NORMJIT_OK)
      status = normjit_cuda_module_get_function(
          entry.module, getUnalignedEntryName(entryName, config).c_str(),
          &unaligned);
    if (status != NORMJIT_OK) {
      std::string message = normjit_last_error();
      normjit_cuda_module_release(entry.module);
      return runtime::setError(status, message);
    }
    entry.launch.function = function;
    entry.launch.function_unaligned = unaligned;
    entry.launch.threads_per_row = static_cast<int>(config.threadsPerRow);
    entry.launch.rows_per_block = static_cast<int>(config.rowsPerBlock);
    entry.launch.vector_width = static_cast<int>(config.vectorWidth);
    entry.launch.persistent = config.persistent ? 1 : 0;
    return NORMJIT_OK;
  }
};
} // namespace normjit

llvm::Error CompiledGpuKernel::synchronize() const {
  // The default stream of a run without a stream: in the current context
  // on the device, else the primary one.
  return statusToError(normjit_cuda_stream_synchronize(device, nullptr));
}

llvm::Error CompiledGpuKernel::run(const normjit_run_args_t &args,
                                   void *stream) const {
  return statusToError(
      launches->launch(device, stream, GpuKernelLoader::get(*this), spec, args));
}

llvm::Expected<std::unique_ptr<CompiledGpuKernel>>
normjit::compileGpuKernel(const normjit_kernel_spec_t &spec,
                          const GpuConfig &config, int ordinal) {
  auto start = std::chrono::steady_clock::now();
  if (llvm::Error error = statusToError(normjit_kernel_spec_validate(&spec)))
    return std::move(error);
  auto target = getGpuTarget(ordinal);
  if (!target)
    return target.takeError();
  const std::string name = "normjit_kernel";
  auto image = compileGpuPtx(GpuKernelRequest{spec, config, name}, *target);
  if (!image)
    return image.takeError();
  std::unique_ptr<CompiledGpuKernel> kernel(new CompiledGpuKernel());
  kernel->spec = spec;
  kernel->config = config;
  kernel->device = ordinal;
  kernel->ptx = std::move(image->ptx);
  kernel->entryName = name;
  kernel->launches = std::make_unique<runtime::cuda::ContextLaunches>();
  // Load it now, in the context a default-stream run from this thread
  // uses: a PTX the driver rejects is an error of this call.
  const runtime::cuda::ContextLaunches::Entry *entry = nullptr;
  if (normjit_status_t status =
          kernel->launches->get(ordinal, nullptr,
                                GpuKernelLoader::get(*kernel), &entry))
    return statusToError(status);
  kernel->compileMillis = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start)
                              .count();
  return std::move(kernel);
}
