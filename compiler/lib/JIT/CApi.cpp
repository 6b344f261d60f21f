//===- CApi.cpp - the C ABI over Context and Kernel -----------------------===//
//
// Part of normjit. Implements normjit.h: every error becomes a status code
// and the thread's last-error message.
//
//===----------------------------------------------------------------------===//

#include "CApiHandles.h"

#include "normjit/runtime/Error.h"

#include <new>

using namespace normjit;
using normjit::runtime::setError;

normjit_status_t
normjit::capi::makeKernelHandle(std::shared_ptr<const Kernel> cpu,
                                std::shared_ptr<const CompiledGpuKernel> gpu,
                                const char *source, normjit_kernel_t **out) {
  auto *handle = new (std::nothrow) normjit_kernel;
  if (!handle)
    return setError(NORMJIT_OUT_OF_MEMORY, "cannot allocate a kernel handle");
  if (gpu) {
    handle->config = gpu->getConfig().str();
    handle->device = "cuda:" + std::to_string(gpu->getDevice());
    handle->compileMillis = gpu->getCompileMillis();
  } else {
    handle->config = cpu->getConfig().str();
    handle->device = "cpu";
    handle->compileMillis = cpu->getCompileMillis();
  }
  handle->kernel = std::move(cpu);
  handle->gpuKernel = std::move(gpu);
  handle->source = source;
  *out = handle;
  return NORMJIT_OK;
}

namespace {
const char *sourceOf(bool given) {
  return given ? "given" : "default heuristic";
}

CpuConfig fromC(const normjit_cpu_config_t &c) {
  CpuConfig config;
  config.vectorWidth = c.vector_width;
  config.accumulators = c.accumulators;
  config.rowsPerTask = c.rows_per_task;
  config.threads = c.threads;
  config.welford = c.welford != 0;
  config.streamingStores = c.streaming_stores != 0;
  config.fuseResidual = c.fuse_residual != 0;
  config.prefetchRows = c.prefetch_rows;
  config.rowGroup = c.row_group;
  return config;
}

normjit_status_t getKernel(normjit_context_t *context,
                           const normjit_kernel_spec_t *spec,
                           std::optional<CpuConfig> config,
                           normjit_kernel_t **out) {
  if (out) // null on every failure, the checks' too
    *out = nullptr;
  if (!context || !spec || !out)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "context, spec and out must not be null");
  auto kernel = context->context.getKernel(*spec, config);
  if (!kernel)
    return errorToStatus(kernel.takeError());
  return capi::makeKernelHandle(std::move(*kernel), nullptr,
                                sourceOf(config.has_value()), out);
}

normjit_status_t getGpuKernel(normjit_context_t *context,
                              const normjit_kernel_spec_t *spec, int device,
                              const char *configText, normjit_kernel_t **out) {
  std::optional<GpuConfig> config;
  if (configText) {
    // Absent knobs take the device's default for the spec (elements per
    // thread fitted to the knobs given); text that is no GPU config is
    // refused before the driver, as on the CPU path. (The spec was
    // checked by the caller.)
    auto parsed = parseGpuConfigForDevice(configText, *spec, device);
    if (!parsed)
      return errorToStatus(parsed.takeError());
    config = *parsed;
  }
  auto kernel = context->context.getGpuKernel(*spec, device, config);
  if (!kernel)
    return errorToStatus(kernel.takeError());
  return capi::makeKernelHandle(nullptr, std::move(*kernel),
                                sourceOf(config.has_value()), out);
}
} // namespace

extern "C" normjit_status_t normjit_context_create(normjit_context_t **out) {
  if (!out)
    return setError(NORMJIT_INVALID_ARGUMENT, "out must not be null");
  *out = new (std::nothrow) normjit_context;
  if (!*out)
    return setError(NORMJIT_OUT_OF_MEMORY, "cannot allocate a context");
  return NORMJIT_OK;
}

extern "C" void normjit_context_destroy(normjit_context_t *context) {
  delete context;
}

extern "C" normjit_status_t
normjit_default_cpu_config(const normjit_kernel_spec_t *spec,
                           normjit_cpu_config_t *out) {
  if (!out)
    return setError(NORMJIT_INVALID_ARGUMENT, "out must not be null");
  NORMJIT_RETURN_IF_ERROR(normjit_kernel_spec_validate(spec));
  CpuConfig config = getDefaultCpuConfig(*spec);
  *out = normjit_cpu_config_t{config.vectorWidth, config.accumulators,
                              config.rowsPerTask, config.threads,
                              config.welford,     config.streamingStores,
                              config.fuseResidual,
                              static_cast<int>(config.prefetchRows),
                              static_cast<int>(config.rowGroup)};
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_kernel_get(normjit_context_t *context,
                   const normjit_kernel_spec_t *spec, normjit_kernel_t **out) {
  return getKernel(context, spec, std::nullopt, out);
}

extern "C" normjit_status_t normjit_kernel_get_with_config(
    normjit_context_t *context, const normjit_kernel_spec_t *spec,
    const normjit_cpu_config_t *config, normjit_kernel_t **out) {
  if (out)
    *out = nullptr;
  if (!config)
    return setError(NORMJIT_INVALID_ARGUMENT, "config must not be null");
  return getKernel(context, spec, fromC(*config), out);
}

extern "C" normjit_status_t normjit_kernel_get_for_device(
    normjit_context_t *context, const normjit_kernel_spec_t *spec,
    const char *device, const char *config, normjit_kernel_t **out) {
  if (out)
    *out = nullptr;
  if (!context || !spec || !device || !out)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "context, spec, device and out must not be null");
  // A bad spec is the caller's error on every device, whether or not the
  // device is there.
  NORMJIT_RETURN_IF_ERROR(normjit_kernel_spec_validate(spec));
  auto ordinal = parseDeviceName(device);
  if (!ordinal)
    return errorToStatus(ordinal.takeError());
  if (*ordinal >= 0)
    return getGpuKernel(context, spec, *ordinal, config, out);
  std::optional<CpuConfig> cpuConfig;
  if (config) {
    auto parsed = parseCpuConfig(config, getDefaultCpuConfig(*spec));
    if (!parsed)
      return errorToStatus(parsed.takeError());
    cpuConfig = *parsed;
  }
  return getKernel(context, spec, cpuConfig, out);
}

extern "C" normjit_status_t normjit_kernel_run(const normjit_kernel_t *kernel,
                                               const normjit_run_args_t *args) {
  if (!kernel || !args)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "kernel and args must not be null");
  if (kernel->gpuKernel) {
    NORMJIT_RETURN_IF_ERROR(
        errorToStatus(kernel->gpuKernel->run(*args, nullptr)));
    // In the context it ran in (the caller's current one may be another).
    return errorToStatus(kernel->gpuKernel->synchronize());
  }
  return errorToStatus(kernel->kernel->run(*args));
}

extern "C" normjit_status_t
normjit_kernel_run_on_stream(const normjit_kernel_t *kernel,
                             const normjit_run_args_t *args, void *stream) {
  if (!kernel || !args)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "kernel and args must not be null");
  if (kernel->gpuKernel)
    return errorToStatus(kernel->gpuKernel->run(*args, stream));
  if (stream)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "a CPU kernel runs on no stream: pass NULL");
  return errorToStatus(kernel->kernel->run(*args));
}

extern "C" const char *normjit_kernel_device(const normjit_kernel_t *kernel) {
  return kernel ? kernel->device.c_str() : "";
}

extern "C" const char *normjit_kernel_config(const normjit_kernel_t *kernel) {
  return kernel ? kernel->config.c_str() : "";
}

extern "C" const char *
normjit_kernel_config_source(const normjit_kernel_t *kernel) {
  return kernel ? kernel->source.c_str() : "";
}

extern "C" double normjit_kernel_compile_ms(const normjit_kernel_t *kernel) {
  return kernel ? kernel->compileMillis : 0.0;
}

extern "C" void normjit_kernel_release(normjit_kernel_t *kernel) {
  delete kernel;
}
