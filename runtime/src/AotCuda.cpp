//===- AotCuda.cpp - ahead-of-time GPU kernels: image choice and launch ---===//
//
// Part of normjit. Implements aot_cuda.h: which image of an AOT GPU library
// a device runs, loading it once per CUDA context it runs in (thread-safe)
// through cuda.h, and the launch of a kernel with the launch shape its
// generated code records.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/CudaLaunch.h"
#include "normjit/runtime/Error.h"
#include "normjit/runtime/aot_cuda.h"
#include "normjit/runtime/cuda.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using normjit::runtime::setError;

namespace {

using normjit::runtime::cuda::ContextLaunches;

/// The runtime's state of one kernel (normjit_aot_cuda_kernel_t::state):
/// its module in each CUDA context it ran in. Never freed: launches may be
/// in flight on any stream at any time.
struct KernelState {
  explicit KernelState(int devices) : count(devices) {}
  int count;
  ContextLaunches launches;
};

/// Serializes the creation of every kernel's state.
std::mutex &stateMutex() {
  static std::mutex *mutex = new std::mutex;
  return *mutex;
}

/// "sm_80.ptx, sm_90.ptx, sm_90.cubin".
std::string listImages(const normjit_aot_cuda_kernel_t &kernel) {
  std::string list;
  for (int64_t i = 0; i < kernel.image_count; ++i)
    list += (i ? ", " : "") +
            std::string(kernel.images[i].name ? kernel.images[i].name : "?");
  return list.empty() ? "none" : list;
}

std::string kernelName(const normjit_aot_cuda_kernel_t &kernel) {
  return std::string("AOT GPU kernel '") + (kernel.name ? kernel.name : "?") +
         "'";
}

/// The kernel's state, created on first use; NULL with the error when the
/// driver cannot be loaded.
normjit_status_t getState(normjit_aot_cuda_kernel_t &kernel,
                          KernelState **out) {
  auto *state = static_cast<KernelState *>(
      __atomic_load_n(&kernel.state, __ATOMIC_ACQUIRE));
  if (!state) {
    int devices = 0;
    NORMJIT_RETURN_IF_ERROR(normjit_cuda_device_count(&devices));
    std::lock_guard<std::mutex> lock(stateMutex());
    state = static_cast<KernelState *>(
        __atomic_load_n(&kernel.state, __ATOMIC_ACQUIRE));
    if (!state) {
      state = new KernelState(devices);
      __atomic_store_n(&kernel.state, static_cast<void *>(state),
                       __ATOMIC_RELEASE);
    }
  }
  *out = state;
  return NORMJIT_OK;
}

/// Loads `image` in `context` and looks up the kernel's entries in it.
normjit_status_t loadImage(const normjit_aot_cuda_kernel_t &kernel,
                           int64_t index, void *context,
                           ContextLaunches::Entry &entry) {
  const normjit_aot_cuda_image_t &image = kernel.images[index];
  const normjit_aot_cuda_variant_t &variant = kernel.variants[index];
  normjit_cuda_module_t *module = nullptr;
  NORMJIT_RETURN_IF_ERROR(normjit_cuda_module_load_in_context(
      context, image.data, image.size, &module));
  normjit_cuda_kernel_t launch{};
  normjit_status_t status =
      normjit_cuda_module_get_function(module, variant.entry, &launch.function);
  if (status == NORMJIT_OK && variant.entry_unaligned)
    status = normjit_cuda_module_get_function(module, variant.entry_unaligned,
                                              &launch.function_unaligned);
  if (status != NORMJIT_OK) {
    std::string message = normjit_last_error();
    normjit_cuda_module_release(module);
    return setError(status, message);
  }
  launch.threads_per_row = variant.threads_per_row;
  launch.rows_per_block = variant.rows_per_block;
  launch.vector_width = variant.vector_width;
  launch.persistent = variant.persistent;
  entry.module = module;
  entry.launch = launch;
  entry.tag = &image;
  return NORMJIT_OK;
}

/// The first image that loads in `context`, a context of `device`; the
/// errors of all when none does.
normjit_status_t loadBest(const normjit_aot_cuda_kernel_t &kernel, int device,
                          void *context, ContextLaunches::Entry &entry) {
  normjit_cuda_device_info_t info;
  NORMJIT_RETURN_IF_ERROR(normjit_cuda_device_info(device, &info));
  std::string chip =
      "sm_" + std::to_string(info.cc_major) + std::to_string(info.cc_minor);
  std::vector<int64_t> order(
      static_cast<size_t>(std::max<int64_t>(kernel.image_count, 0)));
  int64_t candidates =
      normjit_aot_cuda_candidates(kernel.images, kernel.image_count,
                                  info.cc_major, info.cc_minor, order.data());
  if (candidates == 0)
    return setError(NORMJIT_UNSUPPORTED,
                    kernelName(kernel) + " has no image for CUDA device " +
                        std::to_string(device) + " (" + info.name + ", " +
                        chip + "): it has " + listImages(kernel) +
                        " (a cubin runs on its chip only, PTX on its chip and "
                        "newer ones)");
  std::string errors;
  normjit_status_t firstStatus = NORMJIT_OK;
  for (int64_t i = 0; i < candidates; ++i) {
    normjit_status_t status = loadImage(kernel, order[i], context, entry);
    if (status == NORMJIT_OK) {
      normjit_clear_error();
      return NORMJIT_OK;
    }
    // Only an image the driver rejects (or one without the kernel's
    // entries) gives way to the next: out of memory or a device error is
    // said, and the next call tries the best image again (an older one
    // loaded now would serve the rest of the process).
    if (status != NORMJIT_COMPILE_ERROR && status != NORMJIT_INVALID_ARGUMENT)
      return setError(status, kernelName(kernel) + " cannot load " +
                                  kernel.images[order[i]].name +
                                  " on CUDA device " + std::to_string(device) +
                                  " (" + chip + "): " + normjit_last_error());
    if (firstStatus == NORMJIT_OK)
      firstStatus = status;
    errors += std::string(errors.empty() ? "" : "; ") +
              kernel.images[order[i]].name + ": " + normjit_last_error();
  }
  return setError(firstStatus, kernelName(kernel) +
                                   " cannot load an image on CUDA device " +
                                   std::to_string(device) + " (" + chip +
                                   "): " + errors);
}

/// The kernel's state, and an error unless `kernel` is given and `device`
/// is one of the driver's.
normjit_status_t checkDevice(normjit_aot_cuda_kernel_t *kernel, int device,
                             KernelState **out) {
  if (!kernel)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "AOT GPU kernel must not be null");
  NORMJIT_RETURN_IF_ERROR(getState(*kernel, out));
  int count = (*out)->count;
  if (device < 0 || device >= count)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "no CUDA device " + std::to_string(device) + " (" +
                        std::to_string(count) +
                        (count == 1 ? " device)" : " devices)"));
  return NORMJIT_OK;
}

ContextLaunches::Loader loaderFor(const normjit_aot_cuda_kernel_t &kernel,
                                  int device) {
  return [&kernel, device](void *context, ContextLaunches::Entry &entry) {
    return loadBest(kernel, device, context, entry);
  };
}

/// What a launch of `kernel` on `device` and `stream` runs: its module in
/// the stream's context, loaded there on first use.
normjit_status_t getLoaded(normjit_aot_cuda_kernel_t *kernel, int device,
                           void *stream, const ContextLaunches::Entry **out) {
  *out = nullptr;
  KernelState *state = nullptr;
  NORMJIT_RETURN_IF_ERROR(checkDevice(kernel, device, &state));
  return state->launches.get(device, stream, loaderFor(*kernel, device), out);
}

} // namespace

extern "C" int64_t
normjit_aot_cuda_candidates(const normjit_aot_cuda_image_t *images,
                            int64_t count, int cc_major, int cc_minor,
                            int64_t *order) {
  if (!images || count <= 0)
    return 0;
  int cc = cc_major * 10 + cc_minor;
  std::vector<int64_t> result;
  for (int64_t i = 0; i < count; ++i)
    if (images[i].is_cubin && images[i].cc == cc)
      result.push_back(i);
  std::vector<int64_t> ptx;
  for (int64_t i = 0; i < count; ++i)
    if (!images[i].is_cubin && images[i].cc <= cc)
      ptx.push_back(i);
  std::stable_sort(ptx.begin(), ptx.end(), [&](int64_t a, int64_t b) {
    return images[a].cc > images[b].cc;
  });
  result.insert(result.end(), ptx.begin(), ptx.end());
  if (order)
    std::copy(result.begin(), result.end(), order);
  return static_cast<int64_t>(result.size());
}

extern "C" normjit_status_t
normjit_aot_cuda_load(normjit_aot_cuda_kernel_t *kernel, int device) {
  const ContextLaunches::Entry *loaded = nullptr;
  return getLoaded(kernel, device, nullptr, &loaded);
}

extern "C" const char *normjit_aot_cuda_image(normjit_aot_cuda_kernel_t *kernel,
                                              int device) {
  const ContextLaunches::Entry *loaded = nullptr;
  if (getLoaded(kernel, device, nullptr, &loaded) != NORMJIT_OK)
    return nullptr;
  return static_cast<const normjit_aot_cuda_image_t *>(loaded->tag)->name;
}

extern "C" normjit_status_t
normjit_aot_cuda_run(normjit_aot_cuda_kernel_t *kernel, int device,
                     const normjit_run_args_t *args, void *stream) {
  if (kernel && !args)
    return setError(NORMJIT_INVALID_ARGUMENT, "run arguments must not be null");
  KernelState *state = nullptr;
  NORMJIT_RETURN_IF_ERROR(checkDevice(kernel, device, &state));
  return state->launches.launch(device, stream, loaderFor(*kernel, device),
                                kernel->spec, *args);
}
