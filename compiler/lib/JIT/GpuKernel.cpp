//===- GpuKernel.cpp - GPU kernels loaded through the CUDA driver ---------===//
//
// Part of normjit. Compiles a spec to PTX for a device's chip, loads it with
// the runtime's driver layer and launches it. No MLIR header is needed.
//
//===----------------------------------------------------------------------===//

#include "normjit/JIT/GpuKernelCompiler.h"

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
  if (module)
    normjit_cuda_module_release(module);
}

llvm::Error CompiledGpuKernel::synchronize() const {
  return statusToError(normjit_cuda_module_synchronize(module));
}

llvm::Error CompiledGpuKernel::run(const normjit_run_args_t &args,
                                   void *stream) const {
  return statusToError(normjit_cuda_launch(&launch, &spec, &args, stream));
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
  if (normjit_status_t status = normjit_cuda_module_load(
          ordinal, kernel->ptx.data(), kernel->ptx.size(), &kernel->module))
    return statusToError(status);
  void *function = nullptr, *unaligned = nullptr;
  if (normjit_status_t status = normjit_cuda_module_get_function(
          kernel->module, name.c_str(), &function))
    return statusToError(status);
  if (normjit_status_t status = normjit_cuda_module_get_function(
          kernel->module, getUnalignedEntryName(name, config).c_str(),
          &unaligned))
    return statusToError(status);
  kernel->launch.function = function;
  kernel->launch.function_unaligned = unaligned;
  kernel->launch.threads_per_row = static_cast<int>(config.threadsPerRow);
  kernel->launch.rows_per_block = static_cast<int>(config.rowsPerBlock);
  kernel->launch.vector_width = static_cast<int>(config.vectorWidth);
  kernel->launch.persistent = config.persistent ? 1 : 0;
  kernel->compileMillis = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start)
                              .count();
  return std::move(kernel);
}
