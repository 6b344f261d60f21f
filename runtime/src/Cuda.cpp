//===- Cuda.cpp - the CUDA driver, loaded at run time ---------------------===//
//
// Part of normjit. Implements cuda.h and CudaLaunch.h: dlopen of the driver,
// entry points through cuGetProcAddress, contexts, a module cache, memory,
// events and the norm kernel launcher. No cuda.h: the few driver types,
// enumerators and signatures it needs are declared below, with the values and
// ABI versions of the CUDA 13.0 cuda.h.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/cuda.h"
#include "normjit/runtime/CudaLaunch.h"
#include "normjit/runtime/Error.h"

#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

using normjit::runtime::setError;

//===----------------------------------------------------------------------===//
// The driver API subset (cuda.h, CUDA 13.0)
//===----------------------------------------------------------------------===//

namespace {
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
using CUcontext = CUctx_st *;
using CUmodule = CUmod_st *;
using CUfunction = CUfunc_st *;
using CUstream = CUstream_st *;
using CUevent = CUevent_st *;
using CUgraph = CUgraph_st *;
using CUgraphExec = CUgraphExec_st *;

static_assert(sizeof(void *) == 8, "the CUDA driver needs a 64-bit host");
static_assert(sizeof(CUdeviceptr) == sizeof(void *), "CUdeviceptr is 64-bit");

// CUresult
constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_INVALID_VALUE = 1;
constexpr CUresult CUDA_ERROR_OUT_OF_MEMORY = 2;
constexpr CUresult CUDA_ERROR_INVALID_IMAGE = 200;
constexpr CUresult CUDA_ERROR_INVALID_CONTEXT = 201;
constexpr CUresult CUDA_ERROR_NO_BINARY_FOR_GPU = 209;
constexpr CUresult CUDA_ERROR_INVALID_PTX = 218;
constexpr CUresult CUDA_ERROR_JIT_COMPILER_NOT_FOUND = 221;
constexpr CUresult CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222;
constexpr CUresult CUDA_ERROR_JIT_COMPILATION_DISABLED = 223;
constexpr CUresult CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND = 302;
constexpr CUresult CUDA_ERROR_SHARED_OBJECT_INIT_FAILED = 303;
constexpr CUresult CUDA_ERROR_NOT_SUPPORTED = 801;
constexpr CUresult CUDA_ERROR_INVALID_SOURCE = 300;
constexpr CUresult CUDA_ERROR_NOT_FOUND = 500;
constexpr CUresult CUDA_ERROR_CONTEXT_IS_DESTROYED = 709;

/// The most devices a driver's count is believed for.
constexpr int kMaxDevices = 4096;

// CUdevice_attribute
constexpr int CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1;
constexpr int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8;
constexpr int CU_DEVICE_ATTRIBUTE_WARP_SIZE = 10;
constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
constexpr int CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE = 36;
constexpr int CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37;
constexpr int CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;

// CUpointer_attribute
constexpr int CU_POINTER_ATTRIBUTE_CONTEXT = 1;
constexpr int CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2;
constexpr int CU_POINTER_ATTRIBUTE_DEVICE_POINTER = 3;
constexpr int CU_POINTER_ATTRIBUTE_IS_MANAGED = 8;
constexpr int CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9;

// CUjit_option
constexpr int CU_JIT_INFO_LOG_BUFFER = 3;
constexpr int CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4;
constexpr int CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr int CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

// cuGetProcAddress flags and CUdriverProcAddressQueryResult
constexpr unsigned long long CU_GET_PROC_ADDRESS_LEGACY_STREAM = 1;
constexpr int CU_GET_PROC_ADDRESS_SUCCESS = 0;
constexpr int CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND = 1;
constexpr int CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT = 2;

// CUmemorytype
constexpr unsigned CU_MEMORYTYPE_DEVICE = 2;

constexpr unsigned CU_STREAM_NON_BLOCKING = 1;
constexpr int CU_STREAM_CAPTURE_MODE_RELAXED = 2;
constexpr unsigned CU_EVENT_DEFAULT = 0;

/// The entry points normjit calls, with the signatures of the ABI version
/// requested from cuGetProcAddress (the cuda.h name they map to is noted
/// where it is versioned).
struct Driver {
  void *handle = nullptr;
  std::string path;
  int version = 0;

  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuGetErrorName)(CUresult, const char **) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char **) = nullptr;
  CUresult (*cuDriverGetVersion)(int *) = nullptr;
  CUresult (*cuDeviceGetCount)(int *) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice *, int) = nullptr;
  CUresult (*cuDeviceGetName)(char *, int, CUdevice) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice) = nullptr;
  CUresult (*cuDeviceTotalMem)(size_t *, CUdevice) = nullptr; // _v2
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice) = nullptr; // _v2
  CUresult (*cuCtxGetCurrent)(CUcontext *) = nullptr;
  CUresult (*cuCtxGetDevice)(CUdevice *) = nullptr;   // the 2.0 one
  CUresult (*cuCtxPushCurrent)(CUcontext) = nullptr;  // _v2
  CUresult (*cuCtxPopCurrent)(CUcontext *) = nullptr; // _v2
  CUresult (*cuCtxSynchronize)() = nullptr;           // the 2.0 one
  CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *,
                                 void **) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule,
                                  const char *) = nullptr;
  CUresult (*cuOccupancyMaxActiveBlocksPerMultiprocessor)(int *, CUfunction,
                                                          int,
                                                          size_t) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, CUstream, void **,
                             void **) = nullptr;
  CUresult (*cuPointerGetAttribute)(void *, int, CUdeviceptr) = nullptr;
  CUresult (*cuPointerGetAttributes)(unsigned, int *, void **,
                                     CUdeviceptr) = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t) = nullptr;               // _v2
  CUresult (*cuMemFree)(CUdeviceptr) = nullptr;                          // _v2
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t) = nullptr; // _v2
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t) = nullptr;       // _v2
  CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t) = nullptr;  // _v2
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t) = nullptr;  // _v2
  CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t,
                              CUstream) = nullptr;
  CUresult (*cuStreamCreate)(CUstream *, unsigned) = nullptr;
  CUresult (*cuStreamDestroy)(CUstream) = nullptr;             // _v2
  CUresult (*cuStreamGetCtx)(CUstream, CUcontext *) = nullptr; // the 9.2 one
  CUresult (*cuStreamSynchronize)(CUstream) = nullptr;
  CUresult (*cuEventCreate)(CUevent *, unsigned) = nullptr;
  CUresult (*cuEventRecord)(CUevent, CUstream) = nullptr;
  CUresult (*cuEventSynchronize)(CUevent) = nullptr;
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent) = nullptr; // _v2
  CUresult (*cuEventDestroy)(CUevent) = nullptr;                       // _v2
  // Graphs, optional (null when the driver lacks them).
  CUresult (*cuStreamBeginCapture)(CUstream, int) = nullptr; // _v2
  CUresult (*cuStreamEndCapture)(CUstream, CUgraph *) = nullptr;
  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph,
                                          unsigned long long) = nullptr;
  CUresult (*cuGraphLaunch)(CUgraphExec, CUstream) = nullptr;
  CUresult (*cuGraphExecDestroy)(CUgraphExec) = nullptr;
  CUresult (*cuGraphDestroy)(CUgraph) = nullptr;
  // Optional: a context's process-unique id (CUDA 12.0), whether one
  // device may reach another's memory, whether a primary context exists.
  CUresult (*cuCtxGetId)(CUcontext, unsigned long long *) = nullptr;
  CUresult (*cuDeviceCanAccessPeer)(int *, CUdevice, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxGetState)(CUdevice, unsigned *,
                                         int *) = nullptr;

  bool hasGraphs() const {
    return cuStreamBeginCapture && cuStreamEndCapture &&
           cuGraphInstantiateWithFlags && cuGraphLaunch &&
           cuGraphExecDestroy && cuGraphDestroy;
  }
};

//===----------------------------------------------------------------------===//
// Error text
//===----------------------------------------------------------------------===//

/// Names of the results a missing or stub driver cannot name itself.
const char *builtinName(CUresult result) {
  static const struct {
    CUresult result;
    const char *name;
  } names[] = {
      {0, "CUDA_SUCCESS"},
      {1, "CUDA_ERROR_INVALID_VALUE"},
      {2, "CUDA_ERROR_OUT_OF_MEMORY"},
      {3, "CUDA_ERROR_NOT_INITIALIZED"},
      {4, "CUDA_ERROR_DEINITIALIZED"},
      {34, "CUDA_ERROR_STUB_LIBRARY"},
      {35, "CUDA_ERROR_INSUFFICIENT_DRIVER"},
      {36, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER"},
      {46, "CUDA_ERROR_DEVICE_UNAVAILABLE"},
      {100, "CUDA_ERROR_NO_DEVICE"},
      {101, "CUDA_ERROR_INVALID_DEVICE"},
      {200, "CUDA_ERROR_INVALID_IMAGE"},
      {201, "CUDA_ERROR_INVALID_CONTEXT"},
      {209, "CUDA_ERROR_NO_BINARY_FOR_GPU"},
      {218, "CUDA_ERROR_INVALID_PTX"},
      {221, "CUDA_ERROR_JIT_COMPILER_NOT_FOUND"},
      {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
      {300, "CUDA_ERROR_INVALID_SOURCE"},
      {400, "CUDA_ERROR_INVALID_HANDLE"},
      {500, "CUDA_ERROR_NOT_FOUND"},
      {600, "CUDA_ERROR_NOT_READY"},
      {700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
      {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"},
      {719, "CUDA_ERROR_LAUNCH_FAILED"},
      {999, "CUDA_ERROR_UNKNOWN"},
  };
  for (const auto &entry : names)
    if (entry.result == result)
      return entry.name;
  return nullptr;
}

const char *builtinDescription(CUresult result) {
  switch (result) {
  case 34:
    return "the loaded libcuda is the CUDA toolkit's stub library, not a "
           "driver (no NVIDIA driver is installed)";
  case 35:
    return "the installed NVIDIA driver is older than the CUDA runtime";
  case 100:
    return "no CUDA-capable device is detected";
  default:
    return nullptr;
  }
}

/// "CUDA_ERROR_STUB_LIBRARY (34): what it means".
std::string resultText(const Driver &driver, CUresult result) {
  const char *name = nullptr;
  const char *text = nullptr;
  if (!driver.cuGetErrorName ||
      driver.cuGetErrorName(result, &name) != CUDA_SUCCESS)
    name = nullptr;
  if (!driver.cuGetErrorString ||
      driver.cuGetErrorString(result, &text) != CUDA_SUCCESS)
    text = nullptr;
  if (!name)
    name = builtinName(result);
  if (!text)
    text = builtinDescription(result);
  std::string out = name ? name : "CUDA error";
  out += " (" + std::to_string(result) + ")";
  if (text && *text)
    out += std::string(": ") + text;
  return out;
}

normjit_status_t statusFor(CUresult result) {
  return result == CUDA_ERROR_OUT_OF_MEMORY ? NORMJIT_OUT_OF_MEMORY
                                            : NORMJIT_DEVICE_ERROR;
}

/// "CUDA driver: cuMemAlloc failed: CUDA_ERROR_... (2): out of memory".
normjit_status_t driverError(const Driver &driver, const std::string &call,
                             CUresult result) {
  return setError(statusFor(result), "CUDA driver: " + call + " failed: " +
                                         resultText(driver, result));
}

normjit_status_t invalid(const std::string &message) {
  return setError(NORMJIT_INVALID_ARGUMENT, message);
}

/// Waits on the legacy default stream for the copy or memset `what` just
/// queued. A failure there is named as the wait's: it is where an error
/// of an earlier kernel surfaces, not necessarily the copy's.
normjit_status_t synchronizeAfter(const Driver &d, const char *what) {
  CUresult result = d.cuStreamSynchronize(nullptr);
  if (result == CUDA_SUCCESS)
    return NORMJIT_OK;
  return driverError(d,
                     std::string("cuStreamSynchronize (after ") + what +
                         "; the error may be an earlier kernel's)",
                     result);
}

/// Driver messages (a JIT log) on one line.
std::string oneLine(const char *text) {
  std::string out;
  for (const char *c = text; *c; ++c) {
    if (*c == '\n' || *c == '\r') {
      if (!out.empty() && out.back() != ' ')
        out += "; ";
    } else {
      out += *c;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';'))
    out.pop_back();
  return out;
}

std::string hexPointer(const void *pointer) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "0x%" PRIxPTR,
                reinterpret_cast<uintptr_t>(pointer));
  return buffer;
}

CUdeviceptr devicePtr(const void *pointer) {
  return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(pointer));
}

//===----------------------------------------------------------------------===//
// Process-wide state
//===----------------------------------------------------------------------===//

/// The buffer normjit_cuda_flush_l2 writes, one per context it flushed in.
struct L2Scratch {
  uint64_t contextId = 0;
  CUcontext context = nullptr;
  CUdeviceptr pointer = 0;
  size_t bytes = 0;
};

struct DeviceState {
  CUdevice device = 0;
  CUcontext primary = nullptr; ///< retained on first use
  std::vector<L2Scratch> l2Scratch;
  unsigned l2FlushValue = 0;
};

struct FunctionEntry {
  normjit_cuda_module_t *module = nullptr;
  /// Resident blocks per SM by block size, as the driver computed them.
  std::vector<std::pair<int, int>> occupancy;
};
} // namespace

struct normjit_cuda_module_t {
  CUmodule module = nullptr;
  CUcontext context = nullptr;
  uint64_t contextId = 0; ///< see getContextId()
  CUdevice device = 0;
  int ordinal = 0;
  uint64_t hash = 0;
  std::string image;
  int references = 0;
  std::vector<CUfunction> functions;
};

struct normjit_cuda_event_t {
  CUevent event = nullptr;
  CUcontext context = nullptr;
};

struct normjit_cuda_graph_t {
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  CUcontext context = nullptr;
};

namespace {
struct State {
  std::mutex initMutex;
  std::atomic<Driver *> driver{nullptr};
  /// The last cuInit said CUDA_ERROR_NO_DEVICE: device_count reports 0.
  std::atomic<bool> driverWithoutDevices{false};
  /// This process is the child of a fork() made after the driver was
  /// initialized (or while it was being loaded): CUDA cannot be used in it.
  std::atomic<bool> forkedAfterInit{false};
  /// Threads in the driver's first load (about to take, or holding,
  /// initMutex).
  std::atomic<int> loading{0};
  /// Guards everything below.
  std::mutex mutex;
  std::vector<DeviceState> devices;
  std::unordered_multimap<uint64_t, normjit_cuda_module_t *> modules;
  std::unordered_map<CUfunction, FunctionEntry> functions;
};

/// Never destroyed: threads and atexit handlers may still call in.
State &state() {
  static State *instance = new State;
  return *instance;
}

//===----------------------------------------------------------------------===//
// Loading the driver
//===----------------------------------------------------------------------===//

using GetProcAddressV2 = CUresult (*)(const char *, void **, int,
                                      unsigned long long, int *);
using GetProcAddressV1 = CUresult (*)(const char *, void **, int,
                                      unsigned long long);

class Loader {
public:
  explicit Loader(Driver &driver) : driver(driver) {
    v2 = reinterpret_cast<GetProcAddressV2>(
        dlsym(driver.handle, "cuGetProcAddress_v2"));
    if (!v2)
      v1 = reinterpret_cast<GetProcAddressV1>(
          dlsym(driver.handle, "cuGetProcAddress"));
  }

  /// Resolves `name` with the ABI of CUDA `version` (falling back to
  /// `fallback`, when not 0, for a driver older than `version`); without
  /// cuGetProcAddress, looks up `symbol` (the versioned export) directly.
  template <typename Fn>
  normjit_status_t get(Fn &slot, const char *name, int version,
                       const char *symbol = nullptr, int fallback = 0) {
    void *pointer = nullptr;
    std::string why;
    for (int v : {version, fallback}) {
      if (v == 0)
        continue;
      why = query(name, v, &pointer);
      if (pointer)
        break;
    }
    if (!pointer && !v1 && !v2) {
      pointer = dlsym(driver.handle, symbol ? symbol : name);
      why = "the driver exports neither cuGetProcAddress nor " +
            std::string(symbol ? symbol : name);
    }
    if (!pointer)
      return setError(NORMJIT_DEVICE_ERROR,
                      "CUDA driver " + driver.path + " lacks " + name +
                          " (CUDA " + std::to_string(version / 1000) + "." +
                          std::to_string(version % 1000 / 10) +
                          " ABI): " + why + "; a newer driver is needed");
    slot = reinterpret_cast<Fn>(pointer);
    return NORMJIT_OK;
  }

  /// Resolves `name` like get(), leaving `slot` null without an error
  /// when the driver lacks it.
  template <typename Fn>
  void getOptional(Fn &slot, const char *name, int version,
                   const char *symbol = nullptr) {
    void *pointer = nullptr;
    if (v1 || v2)
      query(name, version, &pointer);
    else
      pointer = dlsym(driver.handle, symbol ? symbol : name);
    slot = reinterpret_cast<Fn>(pointer);
  }

private:
  std::string query(const char *name, int version, void **pointer) {
    *pointer = nullptr;
    if (!v1 && !v2)
      return "no cuGetProcAddress";
    int found = CU_GET_PROC_ADDRESS_SUCCESS;
    CUresult result =
        v2 ? v2(name, pointer, version, CU_GET_PROC_ADDRESS_LEGACY_STREAM,
                &found)
           : v1(name, pointer, version, CU_GET_PROC_ADDRESS_LEGACY_STREAM);
    if (result == CUDA_SUCCESS && found == CU_GET_PROC_ADDRESS_SUCCESS &&
        *pointer)
      return "";
    *pointer = nullptr;
    if (found == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND)
      return "symbol not found";
    if (found == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT)
      return "version not sufficient";
    return "cuGetProcAddress failed: " + resultText(driver, result);
  }

  Driver &driver;
  GetProcAddressV2 v2 = nullptr;
  GetProcAddressV1 v1 = nullptr;
};

normjit_status_t resolveAll(Driver &d) {
  Loader l(d);
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuDriverGetVersion, "cuDriverGetVersion", 2020));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuDeviceGetCount, "cuDeviceGetCount", 2000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuDeviceGet, "cuDeviceGet", 2000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuDeviceGetName, "cuDeviceGetName", 2000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuDeviceGetAttribute, "cuDeviceGetAttribute", 2000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuDeviceTotalMem, "cuDeviceTotalMem", 3020,
                                "cuDeviceTotalMem_v2"));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", 7000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuDevicePrimaryCtxRelease,
                                "cuDevicePrimaryCtxRelease", 11000,
                                "cuDevicePrimaryCtxRelease_v2", 7000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuCtxGetCurrent, "cuCtxGetCurrent", 4000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuCtxGetDevice, "cuCtxGetDevice", 2000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuCtxPushCurrent, "cuCtxPushCurrent", 4000,
                                "cuCtxPushCurrent_v2"));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuCtxPopCurrent, "cuCtxPopCurrent", 4000, "cuCtxPopCurrent_v2"));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuCtxSynchronize, "cuCtxSynchronize", 2000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuModuleLoadDataEx, "cuModuleLoadDataEx", 2010));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuModuleUnload, "cuModuleUnload", 2000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuModuleGetFunction, "cuModuleGetFunction", 2000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuOccupancyMaxActiveBlocksPerMultiprocessor,
                                "cuOccupancyMaxActiveBlocksPerMultiprocessor",
                                6050));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuLaunchKernel, "cuLaunchKernel", 4000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuPointerGetAttribute, "cuPointerGetAttribute", 4000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuPointerGetAttributes, "cuPointerGetAttributes", 7000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuMemAlloc, "cuMemAlloc", 3020, "cuMemAlloc_v2"));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuMemFree, "cuMemFree", 3020, "cuMemFree_v2"));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuMemcpyHtoD, "cuMemcpyHtoD", 3020, "cuMemcpyHtoD_v2"));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuMemcpyDtoH, "cuMemcpyDtoH", 3020, "cuMemcpyDtoH_v2"));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuMemcpyDtoD, "cuMemcpyDtoD", 3020, "cuMemcpyDtoD_v2"));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuMemsetD8, "cuMemsetD8", 3020, "cuMemsetD8_v2"));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuMemsetD8Async, "cuMemsetD8Async", 3020));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuStreamCreate, "cuStreamCreate", 2000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuStreamDestroy, "cuStreamDestroy", 4000, "cuStreamDestroy_v2"));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuStreamGetCtx, "cuStreamGetCtx", 9020));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuStreamSynchronize, "cuStreamSynchronize", 2000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuEventCreate, "cuEventCreate", 2000));
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuEventRecord, "cuEventRecord", 2000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuEventSynchronize, "cuEventSynchronize", 2000));
  // cuda.h maps cuEventElapsedTime to _v2 (CUDA 12.8, same signature); an
  // older driver has only the first one.
  NORMJIT_RETURN_IF_ERROR(l.get(d.cuEventElapsedTime, "cuEventElapsedTime",
                                12080, "cuEventElapsedTime", 2000));
  NORMJIT_RETURN_IF_ERROR(
      l.get(d.cuEventDestroy, "cuEventDestroy", 4000, "cuEventDestroy_v2"));
  l.getOptional(d.cuStreamBeginCapture, "cuStreamBeginCapture", 10010,
                "cuStreamBeginCapture_v2");
  l.getOptional(d.cuStreamEndCapture, "cuStreamEndCapture", 10000);
  l.getOptional(d.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags",
                11040);
  l.getOptional(d.cuGraphLaunch, "cuGraphLaunch", 10000);
  l.getOptional(d.cuGraphExecDestroy, "cuGraphExecDestroy", 10000);
  l.getOptional(d.cuGraphDestroy, "cuGraphDestroy", 10000);
  l.getOptional(d.cuCtxGetId, "cuCtxGetId", 12000);
  l.getOptional(d.cuDeviceCanAccessPeer, "cuDeviceCanAccessPeer", 4000);
  l.getOptional(d.cuDevicePrimaryCtxGetState, "cuDevicePrimaryCtxGetState",
                7000);
  return NORMJIT_OK;
}

/// dlopen, cuInit, entry points, devices. On failure everything is undone.
normjit_status_t loadDriver(Driver &d, std::vector<DeviceState> &devices) {
  const char *env = std::getenv("NORMJIT_CUDA_DRIVER");
  bool fromEnv = env && *env;
  d.path = fromEnv ? env : "libcuda.so.1";
  dlerror();
  d.handle = dlopen(d.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!d.handle) {
    const char *why = dlerror();
    return setError(NORMJIT_DEVICE_ERROR,
                    std::string("no CUDA driver: ") +
                        (why ? why : d.path + ": cannot be loaded") +
                        (fromEnv ? " (from NORMJIT_CUDA_DRIVER)" : ""));
  }
  // cuInit and the error names have one ABI version since CUDA 2.0/6.0 and
  // are exported as such; calling cuInit before cuGetProcAddress makes a stub
  // library say what it is.
  d.cuInit =
      reinterpret_cast<CUresult (*)(unsigned)>(dlsym(d.handle, "cuInit"));
  d.cuGetErrorName = reinterpret_cast<CUresult (*)(CUresult, const char **)>(
      dlsym(d.handle, "cuGetErrorName"));
  d.cuGetErrorString = reinterpret_cast<CUresult (*)(CUresult, const char **)>(
      dlsym(d.handle, "cuGetErrorString"));
  if (!d.cuInit)
    return setError(NORMJIT_DEVICE_ERROR,
                    "no CUDA driver: " + d.path + " has no cuInit");
  CUresult result = d.cuInit(0);
  // CUDA_ERROR_NO_DEVICE: a driver, but no GPU it may use (none installed,
  // or CUDA_VISIBLE_DEVICES empty).
  constexpr CUresult kNoDevice = static_cast<CUresult>(100);
  if (result == kNoDevice)
    state().driverWithoutDevices.store(true, std::memory_order_relaxed);
  if (result != CUDA_SUCCESS)
    return setError(NORMJIT_DEVICE_ERROR,
                    "CUDA driver: cuInit failed: " + resultText(d, result) +
                        (result == kNoDevice ? " (no CUDA device visible)"
                                             : ""));
  NORMJIT_RETURN_IF_ERROR(resolveAll(d));
  if ((result = d.cuDriverGetVersion(&d.version)) != CUDA_SUCCESS)
    return driverError(d, "cuDriverGetVersion", result);
  int count = 0;
  if ((result = d.cuDeviceGetCount(&count)) != CUDA_SUCCESS)
    return driverError(d, "cuDeviceGetCount", result);
  // (A driver that reports more devices than any machine holds is not
  // believed: its count would size the table below.)
  if (count > kMaxDevices)
    return setError(NORMJIT_DEVICE_ERROR,
                    "CUDA driver: cuDeviceGetCount reports " +
                        std::to_string(count) + " devices, more than " +
                        std::to_string(kMaxDevices) + " any machine holds");
  devices.assign(static_cast<size_t>(std::max(count, 0)), DeviceState{});
  for (int i = 0; i < count; ++i)
    if ((result = d.cuDeviceGet(&devices[i].device, i)) != CUDA_SUCCESS)
      return driverError(d, "cuDeviceGet(" + std::to_string(i) + ")", result);
  return NORMJIT_OK;
}

/// Marks the child of a fork() made after the driver was loaded: the
/// driver's state (contexts, memory, its threads) did not come along.
void markForkedChild() {
  State &s = state();
  if (s.driver.load(std::memory_order_acquire) ||
      s.loading.load(std::memory_order_acquire) > 0)
    s.forkedAfterInit.store(true, std::memory_order_release);
}

/// The loaded driver, loading it first if needed.
normjit_status_t getDriver(const Driver **out) {
  State &s = state();
  if (s.forkedAfterInit.load(std::memory_order_acquire))
    return setError(NORMJIT_DEVICE_ERROR,
                    "CUDA cannot be used in this process: it is the child "
                    "of a fork() made after the parent initialized CUDA (use "
                    "CUDA in the parent only, or start the child with "
                    "spawn/exec)");
  if (Driver *d = s.driver.load(std::memory_order_acquire)) {
    *out = d;
    return NORMJIT_OK;
  }
  static const bool atForkRegistered =
      ::pthread_atfork(nullptr, nullptr, &markForkedChild) == 0;
  (void)atForkRegistered;
  // Counted from before the lock is taken until after it is released: a
  // fork meanwhile marks its child, which must not wait for the lock.
  struct Loading {
    explicit Loading(State &s) : s(s) {
      s.loading.fetch_add(1, std::memory_order_acq_rel);
    }
    ~Loading() { s.loading.fetch_sub(1, std::memory_order_acq_rel); }
    State &s;
  } loading(s);
  std::lock_guard<std::mutex> initLock(s.initMutex);
  if (Driver *d = s.driver.load(std::memory_order_acquire)) {
    *out = d;
    return NORMJIT_OK;
  }
  auto *d = new Driver;
  std::vector<DeviceState> devices;
  normjit_status_t status = loadDriver(*d, devices);
  if (status != NORMJIT_OK) {
    if (d->handle)
      dlclose(d->handle);
    delete d;
    return status;
  }
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.devices = std::move(devices);
  }
  s.driver.store(d, std::memory_order_release);
  *out = d;
  return NORMJIT_OK;
}

//===----------------------------------------------------------------------===//
// Contexts
//===----------------------------------------------------------------------===//

/// Makes a context current for one scope: pushes it unless it already is
/// current, and pops it on exit.
class ScopedContext {
public:
  explicit ScopedContext(const Driver &driver) : driver(driver) {}
  ScopedContext(const ScopedContext &) = delete;
  ScopedContext &operator=(const ScopedContext &) = delete;
  ~ScopedContext() {
    if (pushed) {
      CUcontext popped = nullptr;
      driver.cuCtxPopCurrent(&popped);
    }
  }

  normjit_status_t enter(CUcontext context) {
    CUcontext current = nullptr;
    if (driver.cuCtxGetCurrent(&current) == CUDA_SUCCESS && current == context)
      return NORMJIT_OK;
    CUresult result = driver.cuCtxPushCurrent(context);
    if (result != CUDA_SUCCESS)
      return driverError(driver, "cuCtxPushCurrent", result);
    pushed = true;
    return NORMJIT_OK;
  }

private:
  const Driver &driver;
  bool pushed = false;
};

normjit_status_t checkOrdinal(int ordinal, CUdevice *device) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  int count = static_cast<int>(s.devices.size());
  // A machine with a driver but no device is a device problem, not the
  // caller's; an ordinal beyond the devices there are is the caller's.
  if (count == 0)
    return setError(NORMJIT_DEVICE_ERROR,
                    "no CUDA device: the driver reports 0 devices");
  if (ordinal < 0 || ordinal >= count)
    return invalid("no CUDA device " + std::to_string(ordinal) + " (" +
                   std::to_string(count) +
                   (count == 1 ? " device)" : " devices)"));
  *device = s.devices[ordinal].device;
  return NORMJIT_OK;
}

/// The primary context of device `ordinal` (a valid one), retained once.
normjit_status_t primaryContext(const Driver &d, int ordinal,
                                CUcontext *context) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DeviceState &entry = s.devices[ordinal];
  if (!entry.primary) {
    CUresult result = d.cuDevicePrimaryCtxRetain(&entry.primary, entry.device);
    if (result != CUDA_SUCCESS) {
      entry.primary = nullptr;
      return driverError(
          d, "cuDevicePrimaryCtxRetain(device " + std::to_string(ordinal) + ")",
          result);
    }
  }
  *context = entry.primary;
  return NORMJIT_OK;
}

/// The context for calls on device `ordinal`: the current one if it is on
/// that device, else the device's primary context.
normjit_status_t deviceContext(const Driver &d, int ordinal, CUcontext *context,
                               CUdevice *device = nullptr) {
  CUdevice dev = 0;
  NORMJIT_RETURN_IF_ERROR(checkOrdinal(ordinal, &dev));
  if (device)
    *device = dev;
  CUcontext current = nullptr;
  CUdevice currentDevice = -1;
  if (d.cuCtxGetCurrent(&current) == CUDA_SUCCESS && current &&
      d.cuCtxGetDevice(&currentDevice) == CUDA_SUCCESS &&
      currentDevice == dev) {
    *context = current;
    return NORMJIT_OK;
  }
  return primaryContext(d, ordinal, context);
}

/// The context a CUDA pointer belongs to; `what` names it in the error.
normjit_status_t pointerContext(const Driver &d, const void *pointer,
                                const char *what, CUcontext *context) {
  if (!pointer)
    return invalid(std::string(what) + " must not be null");
  CUcontext owner = nullptr;
  CUresult result = d.cuPointerGetAttribute(
      &owner, CU_POINTER_ATTRIBUTE_CONTEXT, devicePtr(pointer));
  // A pointer the driver does not know is the caller's; any other failure
  // (a context an earlier kernel broke) is the driver's to report.
  if (result == CUDA_ERROR_INVALID_VALUE)
    return invalid(std::string(what) + " (" + hexPointer(pointer) +
                   ") is not CUDA device memory");
  if (result != CUDA_SUCCESS)
    return driverError(d, "cuPointerGetAttribute", result);
  if (owner) {
    *context = owner;
    return NORMJIT_OK;
  }
  // Memory from a pool or the virtual memory API belongs to no context:
  // use the one of its device.
  int ordinal = 0;
  result = d.cuPointerGetAttribute(
      &ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, devicePtr(pointer));
  if (result != CUDA_SUCCESS)
    return driverError(d, "cuPointerGetAttribute(DEVICE_ORDINAL)", result);
  return deviceContext(d, ordinal, context);
}

/// What identifies `context` for the life of the process: its id
/// (cuCtxGetId, CUDA 12.0), which a context created later never shares
/// even when the driver reuses a destroyed context's handle; the handle
/// itself with an older driver. The driver's result (CUDA_SUCCESS with the
/// handle for an older driver).
CUresult queryContextId(const Driver &d, CUcontext context, uint64_t *id) {
  if (!d.cuCtxGetId) {
    *id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(context));
    return CUDA_SUCCESS;
  }
  unsigned long long value = 0;
  CUresult result = d.cuCtxGetId(context, &value);
  *id = value;
  return result;
}

/// The id, or the driver's error: a failed query must not key a live
/// context by its handle (its modules were loaded again under that key).
normjit_status_t getContextId(const Driver &d, CUcontext context,
                              uint64_t *id) {
  CUresult result = queryContextId(d, context, id);
  return result == CUDA_SUCCESS ? NORMJIT_OK
                                : driverError(d, "cuCtxGetId", result);
}

/// The device of `context`, and its ordinal among the driver's devices.
normjit_status_t contextDevice(const Driver &d, CUcontext context,
                               CUdevice *device, int *ordinal) {
  {
    ScopedContext scope(d);
    NORMJIT_RETURN_IF_ERROR(scope.enter(context));
    CUresult result = d.cuCtxGetDevice(device);
    if (result != CUDA_SUCCESS)
      return driverError(d, "cuCtxGetDevice", result);
  }
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  for (size_t i = 0; i < s.devices.size(); ++i)
    if (s.devices[i].device == *device) {
      *ordinal = static_cast<int>(i);
      return NORMJIT_OK;
    }
  return setError(NORMJIT_DEVICE_ERROR,
                  "the CUDA context's device " + std::to_string(*device) +
                      " is none of the driver's devices");
}

/// Whether `stream` is one of the default-stream handles (NULL, the legacy
/// and the per-thread one), which belong to every context.
bool isDefaultStream(void *stream) {
  constexpr uintptr_t kLegacyStream = 0x1, kPerThreadStream = 0x2;
  uintptr_t handle = reinterpret_cast<uintptr_t>(stream);
  return !stream || handle == kLegacyStream || handle == kPerThreadStream;
}

/// Loads the driver and makes the context of device `ordinal` current for
/// the lifetime of `scope`.
#define NORMJIT_CUDA_ENTER_DEVICE(driverVar, scopeVar, ordinal)                \
  const Driver *driverVar = nullptr;                                           \
  NORMJIT_RETURN_IF_ERROR(getDriver(&driverVar));                              \
  CUcontext scopeVar##Context = nullptr;                                       \
  NORMJIT_RETURN_IF_ERROR(                                                     \
      deviceContext(*driverVar, ordinal, &scopeVar##Context));                 \
  ScopedContext scopeVar(*driverVar);                                          \
  NORMJIT_RETURN_IF_ERROR(scopeVar.enter(scopeVar##Context))

uint64_t fnv1a(const void *data, size_t size) {
  uint64_t hash = 1469598103934665603ull;
  const auto *bytes = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 1099511628211ull;
  }
  return hash;
}
} // namespace

//===----------------------------------------------------------------------===//
// Driver and devices
//===----------------------------------------------------------------------===//

extern "C" normjit_status_t normjit_cuda_init(void) {
  const Driver *driver = nullptr;
  return getDriver(&driver);
}

extern "C" const char *normjit_cuda_driver_path(void) {
  if (state().forkedAfterInit.load(std::memory_order_acquire))
    return nullptr;
  Driver *driver = state().driver.load(std::memory_order_acquire);
  return driver ? driver->path.c_str() : nullptr;
}

extern "C" normjit_status_t normjit_cuda_device_count(int *count) {
  if (!count)
    return invalid("count must not be null");
  *count = 0;
  const Driver *driver = nullptr;
  State &s = state();
  normjit_status_t status = getDriver(&driver);
  // A driver that sees no device: zero devices, not an error.
  if (status != NORMJIT_OK &&
      s.driverWithoutDevices.load(std::memory_order_relaxed))
    return NORMJIT_OK;
  NORMJIT_RETURN_IF_ERROR(status);
  std::lock_guard<std::mutex> lock(s.mutex);
  *count = static_cast<int>(s.devices.size());
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_device_info(int ordinal, normjit_cuda_device_info_t *info) {
  if (!info)
    return invalid("device info must not be null");
  *info = normjit_cuda_device_info_t{};
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUdevice device = 0;
  NORMJIT_RETURN_IF_ERROR(checkOrdinal(ordinal, &device));
  normjit_cuda_device_info_t out{};
  out.ordinal = ordinal;
  out.driver_version = d->version;
  CUresult result = d->cuDeviceGetName(out.name, sizeof out.name - 1, device);
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuDeviceGetName", result);
  size_t total = 0;
  if ((result = d->cuDeviceTotalMem(&total, device)) != CUDA_SUCCESS)
    return driverError(*d, "cuDeviceTotalMem", result);
  out.total_memory = total;
  struct {
    int attribute;
    const char *name;
    int *value;
    bool required;
  } attributes[] = {
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "COMPUTE_CAPABILITY_MAJOR",
       &out.cc_major, true},
      {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "COMPUTE_CAPABILITY_MINOR",
       &out.cc_minor, true},
      {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "MULTIPROCESSOR_COUNT",
       &out.sm_count, true},
      {CU_DEVICE_ATTRIBUTE_WARP_SIZE, "WARP_SIZE", &out.warp_size, true},
      {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "MAX_THREADS_PER_BLOCK",
       &out.max_threads_per_block, true},
      {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK,
       "MAX_SHARED_MEMORY_PER_BLOCK", &out.max_shared_memory_per_block, true},
      {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
       "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN",
       &out.max_shared_memory_per_block_optin, false},
      {CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, "L2_CACHE_SIZE", &out.l2_cache_bytes,
       true},
      {CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, "MEMORY_CLOCK_RATE",
       &out.memory_clock_khz, false},
      {CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, "GLOBAL_MEMORY_BUS_WIDTH",
       &out.memory_bus_width_bits, false},
  };
  for (const auto &entry : attributes) {
    result = d->cuDeviceGetAttribute(entry.value, entry.attribute, device);
    if (result == CUDA_SUCCESS)
      continue;
    *entry.value = 0;
    if (entry.required)
      return driverError(
          *d, std::string("cuDeviceGetAttribute(") + entry.name + ")", result);
  }
  // sm_XY names major X and minor Y below 10: other numbers name no chip
  // (9.10 and 91.0 would both be sm_910, and match each other's images).
  if (out.cc_minor < 0 || out.cc_minor > 9 || out.cc_major < 0 ||
      out.cc_major > 99)
    return setError(NORMJIT_DEVICE_ERROR,
                    "CUDA device " + std::to_string(ordinal) + " (" +
                        std::string(out.name) +
                        ") reports compute capability " +
                        std::to_string(out.cc_major) + "." +
                        std::to_string(out.cc_minor) + ", which names no chip");
  if (out.max_shared_memory_per_block_optin == 0)
    out.max_shared_memory_per_block_optin = out.max_shared_memory_per_block;
  out.dram_bandwidth_gbps = 2.0 * out.memory_clock_khz * 1e3 *
                            (out.memory_bus_width_bits / 8.0) / 1e9;
  *info = out;
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_device_fingerprint(int ordinal, char *buf, size_t size) {
  if (!buf)
    return invalid("fingerprint buffer must not be null");
  normjit_cuda_device_info_t info;
  NORMJIT_RETURN_IF_ERROR(normjit_cuda_device_info(ordinal, &info));
  // Tenths of a GiB in integers: "%.1f" would follow the host's LC_NUMERIC
  // and turn the key into "79,1 GiB" under some locales.
  // (Whole GiB and the rest apart: total_memory * 10 wraps past 1.6 EiB.)
  uint64_t gib = info.total_memory >> 30;
  uint64_t rest = info.total_memory & ((uint64_t(1) << 30) - 1);
  unsigned long long tenths =
      gib * 10 + ((rest * 10 + (uint64_t(1) << 29)) >> 30);
  char text[NORMJIT_CUDA_FINGERPRINT_SIZE];
  int length =
      std::snprintf(text, sizeof text,
                    "cuda | %s | sm_%d%d | %d SMs | %llu.%llu GiB | driver %d",
                    info.name, info.cc_major, info.cc_minor, info.sm_count,
                    tenths / 10, tenths % 10, info.driver_version);
  if (length < 0)
    return setError(NORMJIT_INTERNAL, "cannot format the device fingerprint");
  if (static_cast<size_t>(length) + 1 > size)
    return invalid("fingerprint buffer of " + std::to_string(size) +
                   " bytes is too small; it needs " +
                   std::to_string(length + 1));
  std::memcpy(buf, text, static_cast<size_t>(length) + 1);
  return NORMJIT_OK;
}

//===----------------------------------------------------------------------===//
// Modules
//===----------------------------------------------------------------------===//

namespace {
bool isBinaryImage(const void *image, size_t size) {
  const auto *bytes = static_cast<const unsigned char *>(image);
  if (size >= 4 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' &&
      bytes[3] == 'F')
    return true; // cubin
  uint32_t magic = 0;
  if (size >= 4)
    std::memcpy(&magic, bytes, 4);
  return magic == 0xBA55ED50u; // fatbin
}

normjit_cuda_module_t *findModule(uint64_t contextId, uint64_t hash,
                                  const void *image, size_t size) {
  auto range = state().modules.equal_range(hash);
  for (auto it = range.first; it != range.second; ++it) {
    normjit_cuda_module_t *module = it->second;
    if (module->contextId == contextId && module->image.size() == size &&
        std::memcmp(module->image.data(), image, size) == 0)
      return module;
  }
  return nullptr;
}

normjit_status_t loadImage(const Driver &d, const void *image, size_t size,
                           CUmodule *module) {
  // PTX must end in a NUL; cubins and fatbins are taken as they are.
  std::string text;
  const void *data = image;
  if (!isBinaryImage(image, size) &&
      static_cast<const char *>(image)[size - 1] != '\0') {
    text.assign(static_cast<const char *>(image), size);
    data = text.c_str();
  }
  constexpr size_t kLogSize = 16384;
  std::vector<char> errorLog(kLogSize, '\0'), infoLog(kLogSize, '\0');
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                   CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {errorLog.data(),
                    reinterpret_cast<void *>(static_cast<uintptr_t>(kLogSize)),
                    infoLog.data(),
                    reinterpret_cast<void *>(static_cast<uintptr_t>(kLogSize))};
  CUresult result = d.cuModuleLoadDataEx(module, data, 4, options, values);
  if (result == CUDA_SUCCESS)
    return NORMJIT_OK;
  errorLog.back() = infoLog.back() = '\0';
  std::string log = oneLine(errorLog.data());
  if (log.empty())
    log = oneLine(infoLog.data());
  std::string message =
      "CUDA driver: cuModuleLoadDataEx failed: " + resultText(d, result);
  if (!log.empty())
    message += "; JIT log: " + log;
  // The driver's refusals of this image (another image may load; a load
  // of this one again would fail the same way).
  bool rejected =
      result == CUDA_ERROR_INVALID_PTX || result == CUDA_ERROR_INVALID_IMAGE ||
      result == CUDA_ERROR_NO_BINARY_FOR_GPU ||
      result == CUDA_ERROR_UNSUPPORTED_PTX_VERSION ||
      result == CUDA_ERROR_JIT_COMPILER_NOT_FOUND ||
      result == CUDA_ERROR_JIT_COMPILATION_DISABLED ||
      result == CUDA_ERROR_INVALID_SOURCE ||
      result == CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND ||
      result == CUDA_ERROR_SHARED_OBJECT_INIT_FAILED ||
      result == CUDA_ERROR_NOT_SUPPORTED || result == CUDA_ERROR_INVALID_VALUE;
  return setError(rejected ? NORMJIT_COMPILE_ERROR : statusFor(result),
                  message);
}
} // namespace

namespace {
/// normjit_cuda_module_load in `context`, a context of device `device`
/// (ordinal `ordinal`).
normjit_status_t loadModule(const Driver &d, CUcontext context,
                            CUdevice device, int ordinal, const void *image,
                            size_t size, normjit_cuda_module_t **out) {
  State &s = state();
  uint64_t hash = fnv1a(image, size);
  uint64_t id = 0;
  NORMJIT_RETURN_IF_ERROR(getContextId(d, context, &id));
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (normjit_cuda_module_t *module = findModule(id, hash, image, size)) {
      ++module->references;
      *out = module;
      return NORMJIT_OK;
    }
  }
  // Load without the lock: a PTX JIT can take long, and other threads may
  // load other modules meanwhile.
  CUmodule loaded = nullptr;
  {
    ScopedContext scope(d);
    NORMJIT_RETURN_IF_ERROR(scope.enter(context));
    NORMJIT_RETURN_IF_ERROR(loadImage(d, image, size, &loaded));
  }
  std::lock_guard<std::mutex> lock(s.mutex);
  if (normjit_cuda_module_t *module = findModule(id, hash, image, size)) {
    // Another thread loaded the same image first: use its module.
    ScopedContext scope(d);
    if (scope.enter(context) == NORMJIT_OK)
      d.cuModuleUnload(loaded);
    ++module->references;
    *out = module;
    return NORMJIT_OK;
  }
  auto *module = new normjit_cuda_module_t;
  module->module = loaded;
  module->context = context;
  module->contextId = id;
  module->device = device;
  module->ordinal = ordinal;
  module->hash = hash;
  module->image.assign(static_cast<const char *>(image), size);
  module->references = 1;
  s.modules.emplace(hash, module);
  *out = module;
  return NORMJIT_OK;
}

normjit_status_t checkImage(const void *image, size_t size,
                            normjit_cuda_module_t **out) {
  if (!out)
    return invalid("module output must not be null");
  *out = nullptr;
  if (!image || size == 0)
    return invalid("CUDA module image must not be empty");
  return NORMJIT_OK;
}
} // namespace

extern "C" normjit_status_t
normjit_cuda_module_load(int ordinal, const void *image, size_t size,
                         normjit_cuda_module_t **out) {
  NORMJIT_RETURN_IF_ERROR(checkImage(image, size, out));
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUcontext context = nullptr;
  CUdevice device = 0;
  NORMJIT_RETURN_IF_ERROR(deviceContext(*d, ordinal, &context, &device));
  return loadModule(*d, context, device, ordinal, image, size, out);
}

extern "C" normjit_status_t
normjit_cuda_module_load_in_context(void *context, const void *image,
                                    size_t size, normjit_cuda_module_t **out) {
  NORMJIT_RETURN_IF_ERROR(checkImage(image, size, out));
  if (!context)
    return invalid("CUDA context must not be null");
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUcontext ctx = static_cast<CUcontext>(context);
  CUdevice device = 0;
  int ordinal = 0;
  NORMJIT_RETURN_IF_ERROR(contextDevice(*d, ctx, &device, &ordinal));
  return loadModule(*d, ctx, device, ordinal, image, size, out);
}

extern "C" normjit_status_t normjit_cuda_stream_context(int ordinal,
                                                        void *stream,
                                                        void **context,
                                                        uint64_t *id) {
  if (!context)
    return invalid("context output must not be null");
  *context = nullptr;
  if (id)
    *id = 0;
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUcontext found = nullptr;
  if (isDefaultStream(stream)) {
    NORMJIT_RETURN_IF_ERROR(deviceContext(*d, ordinal, &found));
  } else {
    CUdevice wanted = 0;
    NORMJIT_RETURN_IF_ERROR(checkOrdinal(ordinal, &wanted));
    CUresult result =
        d->cuStreamGetCtx(static_cast<CUstream>(stream), &found);
    if (result != CUDA_SUCCESS || !found)
      return invalid("the stream (" + hexPointer(stream) +
                     ") has no CUDA context: " + resultText(*d, result));
    CUdevice device = 0;
    int streamOrdinal = 0;
    NORMJIT_RETURN_IF_ERROR(contextDevice(*d, found, &device, &streamOrdinal));
    if (device != wanted)
      return invalid("the stream is on CUDA device " +
                     std::to_string(streamOrdinal) + ", not on device " +
                     std::to_string(ordinal) + " that the call is for");
  }
  *context = found;
  if (id)
    NORMJIT_RETURN_IF_ERROR(getContextId(*d, found, id));
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_module_release(normjit_cuda_module_t *module) {
  if (!module)
    return NORMJIT_OK;
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  State &s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (--module->references > 0)
      return NORMJIT_OK;
    auto range = s.modules.equal_range(module->hash);
    for (auto it = range.first; it != range.second; ++it)
      if (it->second == module) {
        s.modules.erase(it);
        break;
      }
    for (CUfunction function : module->functions) {
      // (A function handle the driver reused is another module's now.)
      auto it = s.functions.find(function);
      if (it != s.functions.end() && it->second.module == module)
        s.functions.erase(it);
    }
  }
  // A module whose context was destroyed went with it; its context's
  // handle may even belong to a new context by now, where unloading the
  // stale module would be undefined.
  // (Destroyed: the driver says so, or the handle has another id now. A
  // query that fails otherwise leaves the unload to try.)
  uint64_t id = 0;
  CUresult idResult = queryContextId(*d, module->context, &id);
  if (idResult == CUDA_ERROR_CONTEXT_IS_DESTROYED ||
      idResult == CUDA_ERROR_INVALID_CONTEXT ||
      (idResult == CUDA_SUCCESS && id != module->contextId)) {
    delete module;
    return NORMJIT_OK;
  }
  ScopedContext scope(*d);
  normjit_status_t status = scope.enter(module->context);
  CUresult result =
      status == NORMJIT_OK ? d->cuModuleUnload(module->module) : CUDA_SUCCESS;
  delete module;
  if (status != NORMJIT_OK)
    return status;
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuModuleUnload", result);
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_module_get_function(normjit_cuda_module_t *module,
                                 const char *name, void **function) {
  if (!function)
    return invalid("function output must not be null");
  *function = nullptr;
  if (!module)
    return invalid("CUDA module must not be null");
  if (!name || !*name)
    return invalid("kernel name must not be empty");
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(module->context));
  CUfunction found = nullptr;
  CUresult result = d->cuModuleGetFunction(&found, module->module, name);
  if (result == CUDA_ERROR_NOT_FOUND)
    return invalid(std::string("CUDA module has no kernel named '") + name +
                   "'");
  if (result != CUDA_SUCCESS)
    return driverError(*d, std::string("cuModuleGetFunction('") + name + "')",
                       result);
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  FunctionEntry &entry = s.functions[found];
  if (entry.module != module) {
    entry = FunctionEntry{};
    entry.module = module;
    module->functions.push_back(found);
  }
  *function = found;
  return NORMJIT_OK;
}

//===----------------------------------------------------------------------===//
// Norm kernel launch
//===----------------------------------------------------------------------===//

namespace normjit::runtime::cuda {
void packNormKernelParams(const normjit_kernel_spec_t &spec,
                          const normjit_run_args_t &args,
                          NormKernelParams &params) {
  const int64_t rows = args.rows;
  const int64_t cols = spec.cols;
  int next = 0;
  auto pointer = [&](const void *value) {
    params.slots[next++].pointer = const_cast<void *>(value);
  };
  auto index = [&](int64_t value) { params.slots[next++].value = value; };
  auto rowBuffer = [&](const void *base, int64_t stride) {
    pointer(base);
    pointer(base);
    index(0);
    index(rows);
    index(cols);
    index(base && stride != 0 ? stride : cols);
    index(1);
  };
  auto vector = [&](const void *base, int64_t size) {
    pointer(base);
    pointer(base);
    index(0);
    index(size);
    index(1);
  };
  rowBuffer(args.x, args.x_stride);
  rowBuffer(args.residual, args.residual_stride);
  vector(args.gamma, cols);
  vector(args.beta, cols);
  rowBuffer(args.y, args.y_stride);
  rowBuffer(args.sum, args.sum_stride);
  vector(args.mean, rows);
  vector(args.rstd, rows);
  for (int i = 0; i < kNormKernelParamCount; ++i)
    params.pointers[i] = &params.slots[i];
}

std::string misalignment(const normjit_kernel_spec_t &spec,
                         const normjit_run_args_t &args, int vectorWidth) {
  if (vectorWidth <= 1)
    return "";
  auto check = [&](const char *name, const void *base, int64_t stride,
                   normjit_dtype_t dtype, bool rows) -> std::string {
    if (!base)
      return "";
    size_t bytes = normjit_dtype_size(dtype) * static_cast<size_t>(vectorWidth);
    if (bytes && reinterpret_cast<uintptr_t>(base) % bytes != 0)
      return std::string(name) + " (" + hexPointer(base) +
             ") is not aligned to " + std::to_string(bytes) +
             " bytes, as vector width " + std::to_string(vectorWidth) +
             " needs";
    int64_t elements = stride == 0 ? spec.cols : stride;
    if (rows && elements % vectorWidth != 0)
      return std::string(name) + " row stride " + std::to_string(elements) +
             " is not a multiple of vector width " +
             std::to_string(vectorWidth);
    return "";
  };
  std::string why;
  if ((why = check("x", args.x, args.x_stride, spec.x_dtype, true)).size() ||
      (why = check("residual", args.residual, args.residual_stride,
                   spec.residual_dtype, true))
          .size() ||
      (why = check("y", args.y, args.y_stride, spec.y_dtype, true)).size() ||
      (why = check("sum", args.sum, args.sum_stride, spec.sum_dtype, true))
          .size() ||
      (why = check("gamma", args.gamma, 0, spec.gamma_dtype, false)).size() ||
      (why = check("beta", args.beta, 0, spec.beta_dtype, false)).size())
    return why;
  return "";
}

int64_t normGridSize(int64_t rows, int rowsPerBlock, bool persistent,
                     int smCount, int blocksPerSm) {
  if (rows <= 0 || rowsPerBlock <= 0)
    return 0;
  int64_t groups = (rows + rowsPerBlock - 1) / rowsPerBlock;
  if (!persistent)
    return groups;
  int64_t resident = int64_t(std::max(smCount, 1)) * std::max(blocksPerSm, 1);
  return std::max<int64_t>(1, std::min(groups, resident));
}
} // namespace normjit::runtime::cuda

namespace {
/// Blocks of `blockSize` threads of `function` that fit on one SM, cached
/// for functions normjit loaded.
normjit_status_t residentBlocks(const Driver &d, CUfunction function,
                                int blockSize, int *blocks) {
  State &s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.functions.find(function);
    if (it != s.functions.end())
      for (const auto &[size, count] : it->second.occupancy)
        if (size == blockSize) {
          *blocks = count;
          return NORMJIT_OK;
        }
  }
  int count = 0;
  CUresult result = d.cuOccupancyMaxActiveBlocksPerMultiprocessor(
      &count, function, blockSize, 0);
  if (result != CUDA_SUCCESS)
    return driverError(d, "cuOccupancyMaxActiveBlocksPerMultiprocessor",
                       result);
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.functions.find(function);
  if (it != s.functions.end())
    it->second.occupancy.emplace_back(blockSize, count);
  *blocks = count;
  return NORMJIT_OK;
}

/// Fails unless a kernel running in the current context, on `device`, can
/// use `pointer` as it is: device memory (of `device`, or of a device it
/// can be a peer of), managed memory, or host memory mapped at the same
/// address. One driver call.
normjit_status_t checkDeviceAccessible(const Driver &d, const char *name,
                                       const void *pointer, CUdevice device,
                                       CUcontext context) {
  if (!pointer)
    return NORMJIT_OK;
  // cuPointerGetAttributes leaves an attribute at 0 where a pointer has no
  // such thing (no error for a pointer the driver does not know).
  unsigned type = 0;
  CUdeviceptr mapped = 0;
  int owner = -1;
  int managed = 0; // a boolean; the driver may write only its first byte
  CUcontext ownerContext = nullptr;
  int attributes[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                      CU_POINTER_ATTRIBUTE_DEVICE_POINTER,
                      CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                      CU_POINTER_ATTRIBUTE_IS_MANAGED,
                      CU_POINTER_ATTRIBUTE_CONTEXT};
  void *data[] = {&type, &mapped, &owner, &managed, &ownerContext};
  CUresult result =
      d.cuPointerGetAttributes(5, attributes, data, devicePtr(pointer));
  // (It fails for no pointer it does not know: a failure is the driver's.)
  if (result != CUDA_SUCCESS)
    return driverError(d, "cuPointerGetAttributes", result);
  if (type == 0)
    return invalid(std::string(name) + " (" + hexPointer(pointer) +
                   ") is not CUDA device memory the kernel's device can "
                   "access");
  // Plain device memory of another device: the kernel faults unless the
  // two devices are peers and the host enabled peer access, which only
  // the host knows; a pair that cannot be peers is refused here.
  if (type == CU_MEMORYTYPE_DEVICE && !(managed & 0xff)) {
    const State &s = state(); // devices do not change once loaded
    CUdevice ownerDevice =
        owner >= 0 && static_cast<size_t>(owner) < s.devices.size()
            ? s.devices[owner].device
            : device;
    int peer = 0;
    if (ownerDevice != device &&
        (!d.cuDeviceCanAccessPeer ||
         d.cuDeviceCanAccessPeer(&peer, device, ownerDevice) != CUDA_SUCCESS ||
         !peer))
      return invalid(std::string(name) + " (" + hexPointer(pointer) +
                     ") is memory of CUDA device " + std::to_string(owner) +
                     ", which the kernel's device cannot reach (not peers)");
  }
  if (mapped == 0 && ownerContext && ownerContext != context)
    return invalid(std::string(name) + " (" + hexPointer(pointer) +
                   ") belongs to another CUDA context than the one the "
                   "kernel runs in (the stream's, else the current or "
                   "primary one): allocate it in that context");
  if (mapped == 0)
    return invalid(std::string(name) + " (" + hexPointer(pointer) +
                   ") is not CUDA device memory the kernel's device can "
                   "access");
  if (mapped != devicePtr(pointer))
    return invalid(std::string(name) + " (" + hexPointer(pointer) +
                   ") is host memory that the device sees at another "
                   "address; pass that device address instead");
  return NORMJIT_OK;
}

/// The checks of a launch that need no driver.
normjit_status_t checkLaunch(const normjit_cuda_kernel_t *kernel,
                             const normjit_kernel_spec_t *spec,
                             const normjit_run_args_t *args) {
  if (!kernel)
    return invalid("CUDA kernel must not be null");
  if (!kernel->function)
    return invalid("CUDA kernel function must not be null");
  if (kernel->threads_per_row < 1 || kernel->rows_per_block < 1 ||
      kernel->vector_width < 1)
    return invalid("CUDA kernel needs threads_per_row, rows_per_block and "
                   "vector_width of at least 1, got " +
                   std::to_string(kernel->threads_per_row) + ", " +
                   std::to_string(kernel->rows_per_block) + " and " +
                   std::to_string(kernel->vector_width));
  int64_t blockSize = int64_t(kernel->threads_per_row) * kernel->rows_per_block;
  if (blockSize > 1024)
    return invalid("CUDA block of " + std::to_string(blockSize) +
                   " threads (threads_per_row * rows_per_block) is more "
                   "than 1024");
  return normjit_run_args_validate(spec, args);
}

/// Launches `kernel` (checked by checkLaunch) in `context`, a context of
/// `device` that `stream` belongs to, without waiting.
normjit_status_t launchIn(const Driver &d, CUcontext context, CUdevice device,
                          const normjit_cuda_kernel_t &kernel,
                          const normjit_kernel_spec_t &spec,
                          const normjit_run_args_t &args, void *stream) {
  namespace nc = normjit::runtime::cuda;
  ScopedContext scope(d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(context));
  const struct {
    const char *name;
    const void *pointer;
  } buffers[] = {{"x", args.x},         {"residual", args.residual},
                 {"gamma", args.gamma}, {"beta", args.beta},
                 {"y", args.y},         {"sum", args.sum},
                 {"mean", args.mean},   {"rstd", args.rstd}};
  for (size_t i = 0; i < std::size(buffers); ++i) {
    bool seen = false; // in-place operands: one check
    for (size_t j = 0; j < i && !seen; ++j)
      seen = buffers[j].pointer == buffers[i].pointer;
    if (!seen)
      NORMJIT_RETURN_IF_ERROR(checkDeviceAccessible(
          d, buffers[i].name, buffers[i].pointer, device, context));
  }
  if (args.rows == 0)
    return NORMJIT_OK;

  CUfunction function = static_cast<CUfunction>(kernel.function);
  std::string why = nc::misalignment(spec, args, kernel.vector_width);
  if (!why.empty()) {
    if (!kernel.function_unaligned)
      return invalid(why + ", and the kernel has no unaligned variant "
                           "(function_unaligned is NULL)");
    function = static_cast<CUfunction>(kernel.function_unaligned);
  }

  int blockSize = kernel.threads_per_row * kernel.rows_per_block;
  int smCount = 1, perSm = 1;
  if (kernel.persistent) {
    CUresult result = d.cuDeviceGetAttribute(
        &smCount, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device);
    if (result != CUDA_SUCCESS)
      return driverError(d, "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)",
                         result);
    NORMJIT_RETURN_IF_ERROR(residentBlocks(d, function, blockSize, &perSm));
  }
  int64_t grid = nc::normGridSize(args.rows, kernel.rows_per_block,
                                  kernel.persistent != 0, smCount, perSm);
  if (grid > std::numeric_limits<int32_t>::max())
    return setError(NORMJIT_UNSUPPORTED,
                    std::to_string(args.rows) + " rows need " +
                        std::to_string(grid) +
                        " blocks, more than a CUDA grid holds (2^31 - 1); "
                        "use a persistent kernel");

  nc::NormKernelParams params;
  nc::packNormKernelParams(spec, args, params);
  CUresult result = d.cuLaunchKernel(function, static_cast<unsigned>(grid), 1,
                                     1, static_cast<unsigned>(blockSize), 1, 1,
                                     0, static_cast<CUstream>(stream),
                                     params.pointers, nullptr);
  if (result != CUDA_SUCCESS)
    return driverError(d, "cuLaunchKernel", result);
  return NORMJIT_OK;
}
} // namespace

extern "C" normjit_status_t
normjit_cuda_launch(const normjit_cuda_kernel_t *kernel,
                    const normjit_kernel_spec_t *spec,
                    const normjit_run_args_t *args, void *stream) {
  NORMJIT_RETURN_IF_ERROR(checkLaunch(kernel, spec, args));
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));

  // Run in the context of the function's module (or the current one).
  CUcontext context = nullptr;
  CUdevice device = 0;
  {
    State &s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.functions.find(static_cast<CUfunction>(kernel->function));
    if (it != s.functions.end()) {
      context = it->second.module->context;
      device = it->second.module->device;
    }
  }
  if (!context) {
    if (d->cuCtxGetCurrent(&context) != CUDA_SUCCESS || !context)
      return invalid("CUDA kernel function was not loaded by "
                     "normjit_cuda_module_get_function and no CUDA context "
                     "is current");
    CUresult result = d->cuCtxGetDevice(&device);
    if (result != CUDA_SUCCESS)
      return driverError(*d, "cuCtxGetDevice", result);
  }
  // A stream of another context would be refused by the launch with a bare
  // CUDA_ERROR_INVALID_HANDLE: the caller's mistake, said as such. (The
  // legacy and per-thread default-stream handles belong to every context.)
  if (!isDefaultStream(stream)) {
    CUcontext streamContext = nullptr;
    if (d->cuStreamGetCtx(static_cast<CUstream>(stream), &streamContext) ==
            CUDA_SUCCESS &&
        streamContext && streamContext != context)
      return invalid("the stream belongs to another CUDA context than the "
                     "kernel function, which runs in the context its module "
                     "was loaded in; pass a stream of that context, or load "
                     "the module in the stream's context "
                     "(normjit_cuda_module_load_in_context)");
  }
  return launchIn(*d, context, device, *kernel, *spec, *args, stream);
}

//===----------------------------------------------------------------------===//
// Memory, streams, events
//===----------------------------------------------------------------------===//

extern "C" normjit_status_t normjit_cuda_malloc(int ordinal, size_t bytes,
                                                void **ptr) {
  if (!ptr)
    return invalid("pointer output must not be null");
  *ptr = nullptr;
  NORMJIT_CUDA_ENTER_DEVICE(d, scope, ordinal);
  if (bytes == 0)
    return NORMJIT_OK;
  CUdeviceptr allocated = 0;
  CUresult result = d->cuMemAlloc(&allocated, bytes);
  if (result != CUDA_SUCCESS)
    return driverError(*d,
                       "cuMemAlloc of " + std::to_string(bytes) +
                           " bytes on device " + std::to_string(ordinal),
                       result);
  *ptr = reinterpret_cast<void *>(static_cast<uintptr_t>(allocated));
  return NORMJIT_OK;
}

extern "C" normjit_status_t normjit_cuda_free(void *ptr) {
  if (!ptr)
    return NORMJIT_OK;
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUcontext context = nullptr;
  NORMJIT_RETURN_IF_ERROR(pointerContext(*d, ptr, "pointer to free", &context));
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(context));
  CUresult result = d->cuMemFree(devicePtr(ptr));
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuMemFree", result);
  return NORMJIT_OK;
}

namespace {
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };

normjit_status_t copy(CopyKind kind, void *dst, const void *src, size_t bytes) {
  if (bytes == 0)
    return NORMJIT_OK;
  if (!dst || !src)
    return invalid("copy source and destination must not be null");
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUcontext context = nullptr;
  if (kind == CopyKind::DeviceToHost)
    NORMJIT_RETURN_IF_ERROR(pointerContext(*d, src, "copy source", &context));
  else
    NORMJIT_RETURN_IF_ERROR(
        pointerContext(*d, dst, "copy destination", &context));
  if (kind == CopyKind::DeviceToDevice) {
    CUcontext ignored = nullptr;
    NORMJIT_RETURN_IF_ERROR(pointerContext(*d, src, "copy source", &ignored));
  }
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(context));
  CUresult result = CUDA_SUCCESS;
  switch (kind) {
  case CopyKind::HostToDevice:
    // From pageable memory the copy returns once the data is staged; wait
    // for it, so kernels on non-blocking streams see it.
    result = d->cuMemcpyHtoD(devicePtr(dst), src, bytes);
    if (result != CUDA_SUCCESS)
      return driverError(*d, "cuMemcpyHtoD", result);
    return synchronizeAfter(*d, "cuMemcpyHtoD");
  case CopyKind::DeviceToHost:
    result = d->cuMemcpyDtoH(dst, devicePtr(src), bytes);
    return result == CUDA_SUCCESS ? NORMJIT_OK
                                  : driverError(*d, "cuMemcpyDtoH", result);
  case CopyKind::DeviceToDevice:
    result = d->cuMemcpyDtoD(devicePtr(dst), devicePtr(src), bytes);
    if (result != CUDA_SUCCESS)
      return driverError(*d, "cuMemcpyDtoD", result);
    // Device-to-device copies are asynchronous: wait for this one (on the
    // legacy default stream), not for the whole context.
    return synchronizeAfter(*d, "cuMemcpyDtoD");
  }
  return NORMJIT_OK;
}
} // namespace

extern "C" normjit_status_t normjit_cuda_memcpy_htod(void *dst, const void *src,
                                                     size_t bytes) {
  return copy(CopyKind::HostToDevice, dst, src, bytes);
}

extern "C" normjit_status_t normjit_cuda_memcpy_dtoh(void *dst, const void *src,
                                                     size_t bytes) {
  return copy(CopyKind::DeviceToHost, dst, src, bytes);
}

extern "C" normjit_status_t normjit_cuda_memcpy_dtod(void *dst, const void *src,
                                                     size_t bytes) {
  return copy(CopyKind::DeviceToDevice, dst, src, bytes);
}

extern "C" normjit_status_t normjit_cuda_memset(void *ptr, int value,
                                                size_t bytes) {
  if (bytes == 0)
    return NORMJIT_OK;
  if (value < 0 || value > 255)
    return invalid("memset value must be a byte (0..255), got " +
                   std::to_string(value));
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUcontext context = nullptr;
  NORMJIT_RETURN_IF_ERROR(pointerContext(*d, ptr, "memset pointer", &context));
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(context));
  CUresult result =
      d->cuMemsetD8(devicePtr(ptr), static_cast<unsigned char>(value), bytes);
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuMemsetD8", result);
  return synchronizeAfter(*d, "cuMemsetD8");
}

namespace {
/// Waits for the work of the calling thread's current context.
normjit_status_t synchronizeCurrent(const Driver &d) {
  CUresult result = d.cuCtxSynchronize();
  if (result != CUDA_SUCCESS)
    return driverError(d, "cuCtxSynchronize", result);
  return NORMJIT_OK;
}
} // namespace

extern "C" normjit_status_t
normjit_cuda_module_synchronize(const normjit_cuda_module_t *module) {
  if (!module)
    return invalid("module must not be null");
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(module->context));
  return synchronizeCurrent(*d);
}

extern "C" normjit_status_t normjit_cuda_synchronize(int ordinal) {
  NORMJIT_CUDA_ENTER_DEVICE(d, scope, ordinal);
  return synchronizeCurrent(*d);
}

extern "C" normjit_status_t normjit_cuda_stream_synchronize(int ordinal,
                                                            void *stream) {
  void *context = nullptr;
  NORMJIT_RETURN_IF_ERROR(
      normjit_cuda_stream_context(ordinal, stream, &context, nullptr));
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(static_cast<CUcontext>(context)));
  CUresult result = d->cuStreamSynchronize(static_cast<CUstream>(stream));
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuStreamSynchronize", result);
  return NORMJIT_OK;
}

extern "C" normjit_status_t normjit_cuda_stream_create(int ordinal,
                                                       void **stream) {
  if (!stream)
    return invalid("stream output must not be null");
  *stream = nullptr;
  NORMJIT_CUDA_ENTER_DEVICE(d, scope, ordinal);
  CUstream created = nullptr;
  CUresult result = d->cuStreamCreate(&created, CU_STREAM_NON_BLOCKING);
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuStreamCreate", result);
  *stream = created;
  return NORMJIT_OK;
}

extern "C" normjit_status_t normjit_cuda_stream_destroy(void *stream) {
  if (!stream)
    return NORMJIT_OK;
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUstream handle = static_cast<CUstream>(stream);
  CUcontext context = nullptr;
  CUresult result = d->cuStreamGetCtx(handle, &context);
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuStreamGetCtx", result);
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(context));
  if ((result = d->cuStreamDestroy(handle)) != CUDA_SUCCESS)
    return driverError(*d, "cuStreamDestroy", result);
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_event_create(int ordinal, normjit_cuda_event_t **event) {
  if (!event)
    return invalid("event output must not be null");
  *event = nullptr;
  NORMJIT_CUDA_ENTER_DEVICE(d, scope, ordinal);
  CUevent created = nullptr;
  CUresult result = d->cuEventCreate(&created, CU_EVENT_DEFAULT);
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuEventCreate", result);
  *event = new normjit_cuda_event_t{created, scopeContext};
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_event_record(normjit_cuda_event_t *event, void *stream) {
  if (!event)
    return invalid("event must not be null");
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(event->context));
  CUresult result =
      d->cuEventRecord(event->event, static_cast<CUstream>(stream));
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuEventRecord", result);
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_event_elapsed_ms(normjit_cuda_event_t *start,
                              normjit_cuda_event_t *end, float *ms) {
  if (!start || !end || !ms)
    return invalid("events and the result must not be null");
  *ms = 0.0f;
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(end->context));
  CUresult result = d->cuEventSynchronize(end->event);
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuEventSynchronize", result);
  if ((result = d->cuEventElapsedTime(ms, start->event, end->event)) !=
      CUDA_SUCCESS)
    return driverError(*d, "cuEventElapsedTime", result);
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_event_destroy(normjit_cuda_event_t *event) {
  if (!event)
    return NORMJIT_OK;
  const Driver *d = nullptr;
  normjit_status_t status = getDriver(&d);
  CUresult result = CUDA_SUCCESS;
  if (status == NORMJIT_OK) {
    ScopedContext scope(*d);
    status = scope.enter(event->context);
    if (status == NORMJIT_OK)
      result = d->cuEventDestroy(event->event);
  }
  delete event;
  if (status != NORMJIT_OK)
    return status;
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuEventDestroy", result);
  return NORMJIT_OK;
}

namespace {
/// Enters the context of `stream` for the lifetime of `scope`.
normjit_status_t enterStreamContext(const Driver &d, void *stream,
                                    ScopedContext &scope,
                                    CUcontext *context) {
  if (!stream)
    return invalid("stream must not be null (the legacy default stream "
                   "cannot record a graph)");
  CUresult result = d.cuStreamGetCtx(static_cast<CUstream>(stream), context);
  if (result != CUDA_SUCCESS)
    return driverError(d, "cuStreamGetCtx", result);
  return scope.enter(*context);
}

normjit_status_t graphDriver(const Driver **out) {
  NORMJIT_RETURN_IF_ERROR(getDriver(out));
  if (!(*out)->hasGraphs())
    return setError(NORMJIT_UNSUPPORTED,
                    "the CUDA driver " + (*out)->path +
                        " has no graph entry points (CUDA 11.4 or newer)");
  return NORMJIT_OK;
}
} // namespace

extern "C" int normjit_cuda_graphs_available(void) {
  const Driver *d = nullptr;
  return getDriver(&d) == NORMJIT_OK && d->hasGraphs() ? 1 : 0;
}

extern "C" normjit_status_t normjit_cuda_capture_begin(void *stream) {
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(graphDriver(&d));
  ScopedContext scope(*d);
  CUcontext context = nullptr;
  NORMJIT_RETURN_IF_ERROR(enterStreamContext(*d, stream, scope, &context));
  CUresult result = d->cuStreamBeginCapture(static_cast<CUstream>(stream),
                                            CU_STREAM_CAPTURE_MODE_RELAXED);
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuStreamBeginCapture", result);
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_capture_end(void *stream, normjit_cuda_graph_t **graph) {
  if (!graph)
    return invalid("graph output must not be null");
  *graph = nullptr;
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(graphDriver(&d));
  ScopedContext scope(*d);
  CUcontext context = nullptr;
  normjit_status_t entered = enterStreamContext(*d, stream, scope, &context);
  if (!stream)
    return entered;
  // The recording ends even when the context could not be entered (ending
  // it needs none): a stream left recording would record, not run, the
  // work that follows.
  CUgraph recorded = nullptr;
  CUresult result =
      d->cuStreamEndCapture(static_cast<CUstream>(stream), &recorded);
  if (entered != NORMJIT_OK) {
    if (result == CUDA_SUCCESS && recorded)
      d->cuGraphDestroy(recorded);
    return entered;
  }
  if (result != CUDA_SUCCESS) {
    if (recorded)
      d->cuGraphDestroy(recorded);
    return driverError(*d, "cuStreamEndCapture", result);
  }
  CUgraphExec exec = nullptr;
  if ((result = d->cuGraphInstantiateWithFlags(&exec, recorded, 0)) !=
      CUDA_SUCCESS) {
    d->cuGraphDestroy(recorded);
    return driverError(*d, "cuGraphInstantiateWithFlags", result);
  }
  *graph = new normjit_cuda_graph_t{recorded, exec, context};
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_graph_launch(normjit_cuda_graph_t *graph, void *stream) {
  if (!graph)
    return invalid("graph must not be null");
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(graphDriver(&d));
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(graph->context));
  CUresult result =
      d->cuGraphLaunch(graph->exec, static_cast<CUstream>(stream));
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuGraphLaunch", result);
  return NORMJIT_OK;
}

extern "C" normjit_status_t
normjit_cuda_graph_destroy(normjit_cuda_graph_t *graph) {
  if (!graph)
    return NORMJIT_OK;
  const Driver *d = nullptr;
  normjit_status_t status = graphDriver(&d);
  CUresult result = CUDA_SUCCESS;
  const char *call = "cuGraphExecDestroy";
  if (status == NORMJIT_OK) {
    ScopedContext scope(*d);
    status = scope.enter(graph->context);
    if (status == NORMJIT_OK) {
      result = d->cuGraphExecDestroy(graph->exec);
      CUresult destroyed = d->cuGraphDestroy(graph->graph);
      if (result == CUDA_SUCCESS && destroyed != CUDA_SUCCESS) {
        result = destroyed;
        call = "cuGraphDestroy";
      }
    }
  }
  delete graph;
  if (status != NORMJIT_OK)
    return status;
  if (result != CUDA_SUCCESS)
    return driverError(*d, call, result);
  return NORMJIT_OK;
}

extern "C" normjit_status_t normjit_cuda_flush_l2(int ordinal, void *stream) {
  // The scratch buffer lives in the context the stream's work runs in (a
  // stream's own, else the current or primary one): memory of another
  // context is not for its kernels.
  void *handle = nullptr;
  uint64_t id = 0;
  NORMJIT_RETURN_IF_ERROR(
      normjit_cuda_stream_context(ordinal, stream, &handle, &id));
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  CUcontext context = static_cast<CUcontext>(handle);
  ScopedContext scope(*d);
  NORMJIT_RETURN_IF_ERROR(scope.enter(context));
  State &s = state();
  CUdeviceptr scratch = 0;
  size_t bytes = 0;
  unsigned char value = 0;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    DeviceState &device = s.devices[ordinal];
    auto it = std::find_if(
        device.l2Scratch.begin(), device.l2Scratch.end(),
        [&](const L2Scratch &entry) { return entry.contextId == id; });
    if (it == device.l2Scratch.end()) {
      int l2 = 0;
      CUresult result = d->cuDeviceGetAttribute(
          &l2, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, device.device);
      if (result != CUDA_SUCCESS)
        return driverError(*d, "cuDeviceGetAttribute(L2_CACHE_SIZE)", result);
      L2Scratch entry;
      entry.contextId = id;
      entry.context = context;
      entry.bytes = 2 * static_cast<size_t>(std::max(l2, 1 << 20));
      if ((result = d->cuMemAlloc(&entry.pointer, entry.bytes)) !=
          CUDA_SUCCESS)
        return driverError(*d,
                           "cuMemAlloc of the " + std::to_string(entry.bytes) +
                               "-byte L2 flush buffer",
                           result);
      it = device.l2Scratch.insert(device.l2Scratch.end(), entry);
    }
    scratch = it->pointer;
    bytes = it->bytes;
    value = static_cast<unsigned char>(++device.l2FlushValue);
  }
  CUresult result =
      d->cuMemsetD8Async(scratch, value, bytes, static_cast<CUstream>(stream));
  if (result != CUDA_SUCCESS)
    return driverError(*d, "cuMemsetD8Async (L2 flush)", result);
  return NORMJIT_OK;
}

//===----------------------------------------------------------------------===//
// Kernels per context
//===----------------------------------------------------------------------===//

namespace normjit::runtime::cuda {
normjit_status_t ContextLaunches::get(int ordinal, void *stream,
                                      const Loader &load, const Entry **out) {
  *out = nullptr;
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  // The context of the last launch, if it is this one's: the stream's
  // context, or the current one, or (none current) the primary one.
  if (const Entry *seen = last.load(std::memory_order_acquire);
      seen && seen->ordinal == ordinal) {
    CUcontext candidate = nullptr;
    if (!isDefaultStream(stream)) {
      if (d->cuStreamGetCtx(static_cast<CUstream>(stream), &candidate) !=
          CUDA_SUCCESS)
        candidate = nullptr;
    } else if (d->cuCtxGetCurrent(&candidate) == CUDA_SUCCESS &&
               !candidate && seen->primary) {
      candidate = static_cast<CUcontext>(seen->context);
    }
    // The id tells a context from a later one with its handle.
    uint64_t candidateId = 0;
    if (candidate && candidate == seen->context &&
        queryContextId(*d, candidate, &candidateId) == CUDA_SUCCESS &&
        candidateId == seen->contextId) {
      *out = seen;
      return NORMJIT_OK;
    }
  }
  void *context = nullptr;
  uint64_t id = 0;
  NORMJIT_RETURN_IF_ERROR(
      normjit_cuda_stream_context(ordinal, stream, &context, &id));
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto &entry : entries)
    if (entry->contextId == id && entry->ordinal == ordinal) {
      last.store(entry.get(), std::memory_order_release);
      *out = entry.get();
      return NORMJIT_OK;
    }
  auto entry = std::make_unique<Entry>();
  entry->contextId = id;
  entry->context = context;
  entry->ordinal = ordinal;
  // The primary context may have come as a stream's, before normjit
  // retained it: retained now if it is active (one that is not is no
  // stream's, and retaining it would create it), so that a later run
  // without stream or current context finds the entry fast.
  entry->device = state().devices[ordinal].device;
  unsigned flags = 0;
  int active = 0;
  CUcontext primary = nullptr;
  if (d->cuDevicePrimaryCtxGetState &&
      d->cuDevicePrimaryCtxGetState(entry->device, &flags, &active) ==
          CUDA_SUCCESS &&
      active)
    NORMJIT_RETURN_IF_ERROR(primaryContext(*d, ordinal, &primary));
  entry->primary = primary && primary == context;
  NORMJIT_RETURN_IF_ERROR(load(context, *entry));
  entries.push_back(std::move(entry));
  last.store(entries.back().get(), std::memory_order_release);
  *out = entries.back().get();
  return NORMJIT_OK;
}

normjit_status_t ContextLaunches::launch(int ordinal, void *stream,
                                         const Loader &load,
                                         const normjit_kernel_spec_t &spec,
                                         const normjit_run_args_t &args) {
  const Entry *entry = nullptr;
  NORMJIT_RETURN_IF_ERROR(get(ordinal, stream, load, &entry));
  NORMJIT_RETURN_IF_ERROR(checkLaunch(&entry->launch, &spec, &args));
  const Driver *d = nullptr;
  NORMJIT_RETURN_IF_ERROR(getDriver(&d));
  return launchIn(*d, static_cast<CUcontext>(entry->context), entry->device,
                  entry->launch, spec, args, stream);
}

const ContextLaunches::Entry *ContextLaunches::first() const {
  std::lock_guard<std::mutex> lock(mutex);
  return entries.empty() ? nullptr : entries.front().get();
}

void ContextLaunches::releaseAll() {
  // In the child of a fork the lock may be held by a thread that did not
  // come along, and the modules are the parent's: leave them.
  if (state().forkedAfterInit.load(std::memory_order_acquire))
    return;
  std::lock_guard<std::mutex> lock(mutex);
  last.store(nullptr, std::memory_order_release);
  for (const auto &entry : entries)
    normjit_cuda_module_release(entry->module);
  entries.clear();
}
} // namespace normjit::runtime::cuda

//===----------------------------------------------------------------------===//
// Tests
//===----------------------------------------------------------------------===//

void normjit::runtime::cuda::resetDriverForTesting() {
  State &s = state();
  std::lock_guard<std::mutex> initLock(s.initMutex);
  Driver *d = s.driver.load(std::memory_order_acquire);
  if (!d)
    return;
  std::lock_guard<std::mutex> lock(s.mutex);
  for (auto &[hash, module] : s.modules) {
    (void)hash;
    if (d->cuCtxPushCurrent(module->context) == CUDA_SUCCESS) {
      d->cuModuleUnload(module->module);
      CUcontext popped = nullptr;
      d->cuCtxPopCurrent(&popped);
    }
    delete module;
  }
  s.modules.clear();
  s.functions.clear();
  for (DeviceState &device : s.devices) {
    for (const L2Scratch &scratch : device.l2Scratch)
      if (d->cuCtxPushCurrent(scratch.context) == CUDA_SUCCESS) {
        d->cuMemFree(scratch.pointer);
        CUcontext popped = nullptr;
        d->cuCtxPopCurrent(&popped);
      }
    if (device.primary)
      d->cuDevicePrimaryCtxRelease(device.device);
  }
  s.devices.clear();
  s.driver.store(nullptr, std::memory_order_release);
  dlclose(d->handle);
  delete d;
}
