//===- FakeCudaDriver.cpp - a stand-in for libcuda.so.1 in tests ----------===//
//
// Part of normjit. Implements cuGetProcAddress and the driver entry points
// the runtime uses, with host memory as device memory, two devices, an
// occupancy of two blocks per SM, and a cuLaunchKernel that records its
// arguments instead of running anything. Strict where the real driver is:
// calls that need a current context fail without one, a launch must happen
// in the context its module was loaded in, and pointer queries know only
// memory the fake allocated.
//
//===----------------------------------------------------------------------===//

#include "FakeCudaDriver.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;

constexpr CUresult kSuccess = 0;
constexpr CUresult kInvalidValue = 1;
constexpr CUresult kOutOfMemory = 2;
constexpr CUresult kInvalidDevice = 101;
constexpr CUresult kInvalidContext = 201;
constexpr CUresult kInvalidPtx = 218;
constexpr CUresult kInvalidHandle = 400;
constexpr CUresult kNotFound = 500;

struct Context {
  int device;
  bool primary;
  unsigned long long id; ///< cuCtxGetId: never shared by two contexts
  bool destroyed = false;
};

struct Function {
  struct Module *module;
  std::string name;
};

struct Module {
  Context *context;
  unsigned long long contextId; ///< of the context it was loaded in
  std::vector<Function *> functions;
};

struct Stream {
  Context *context;
  bool capturing = false;
  long captured = 0; ///< launches recorded since the capture began
};

/// A recorded graph and its instantiation: how many launches they replay.
struct Graph {
  Context *context;
  long launches;
};

struct Event {
  Context *context;
  long stamp = -1;
};

struct Allocation {
  size_t size;
  Context *context;
};

Context primaries[kFakeDeviceCount] = {{0, true, 1}, {1, true, 2}};
unsigned long long nextContextId = 100;
int primaryReferences[kFakeDeviceCount];
/// FAKE_CUDA_PRIMARY_ACTIVE: as if another library (a CUDA runtime) had
/// made the primary contexts already.
bool primaryActive[kFakeDeviceCount];

std::mutex mutex;
std::map<uintptr_t, Allocation> allocations;
std::map<std::string, int> requestedVersions;
fake_cuda_launch_t lastLaunch;
fake_cuda_counters_t counters;
/// Calls that ask about or switch contexts, and pointer queries: what a
/// launch costs on its host thread.
std::atomic<long> contextCalls{0};
std::atomic<long> pointerQueries{0};
long eventClock;

std::vector<std::unique_ptr<Context>> userContexts; ///< never destroyed early
/// The thread's context stack, as the driver keeps it: trivially
/// destructible, so that calls from exit handlers (after exit() destroyed
/// the thread's thread-local objects) find it whole.
struct ContextStack {
  Context *items[64];
  int count;
  bool empty() const { return count == 0; }
  Context *back() const { return items[count - 1]; }
  void pop_back() { --count; }
  void push_back(Context *context) {
    if (count == 64)
      std::abort(); // no test pushes so deep
    items[count++] = context;
  }
};
thread_local ContextStack contextStack = {{}, 0};

Context *current() {
  return contextStack.empty() ? nullptr : contextStack.back();
}

/// The allocation holding [pointer, pointer + bytes), or nullptr.
const Allocation *find(CUdeviceptr pointer, size_t bytes = 1) {
  auto it = allocations.upper_bound(static_cast<uintptr_t>(pointer));
  if (it == allocations.begin())
    return nullptr;
  --it;
  uintptr_t offset = static_cast<uintptr_t>(pointer) - it->first;
  if (offset + bytes > it->second.size)
    return nullptr;
  return &it->second;
}

//===--- Entry points -----------------------------------------------------===//

CUresult fakeInit(unsigned flags) {
  // FAKE_CUDA_NO_DEVICE=1: what a driver says with no GPU visible
  // (CUDA_VISIBLE_DEVICES=""): CUDA_ERROR_NO_DEVICE.
  if (const char *none = std::getenv("FAKE_CUDA_NO_DEVICE"); none && *none)
    return 100;
  return flags == 0 ? kSuccess : kInvalidValue;
}

CUresult fakeGetErrorName(CUresult error, const char **text) {
  switch (error) {
  case kSuccess:
    *text = "CUDA_SUCCESS";
    return kSuccess;
  case kInvalidValue:
    *text = "CUDA_ERROR_INVALID_VALUE";
    return kSuccess;
  case kOutOfMemory:
    *text = "CUDA_ERROR_OUT_OF_MEMORY";
    return kSuccess;
  case kInvalidContext:
    *text = "CUDA_ERROR_INVALID_CONTEXT";
    return kSuccess;
  case kInvalidPtx:
    *text = "CUDA_ERROR_INVALID_PTX";
    return kSuccess;
  case kInvalidHandle:
    *text = "CUDA_ERROR_INVALID_HANDLE";
    return kSuccess;
  case kNotFound:
    *text = "CUDA_ERROR_NOT_FOUND";
    return kSuccess;
  default:
    *text = nullptr;
    return kInvalidValue;
  }
}

CUresult fakeGetErrorString(CUresult error, const char **text) {
  switch (error) {
  case kInvalidPtx:
    *text = "a PTX JIT compilation failed";
    return kSuccess;
  case kInvalidContext:
    *text = "invalid device context";
    return kSuccess;
  case kOutOfMemory:
    *text = "out of memory";
    return kSuccess;
  default:
    *text = nullptr;
    return kInvalidValue;
  }
}

CUresult fakeDriverGetVersion(int *version) {
  *version = kFakeDriverVersion;
  return kSuccess;
}

CUresult fakeDeviceGetCount(int *count) {
  *count = kFakeDeviceCount;
  // FAKE_CUDA_DEVICE_COUNT: the count reported (no more devices exist).
  if (const char *forced = std::getenv("FAKE_CUDA_DEVICE_COUNT");
      forced && *forced)
    *count = std::atoi(forced);
  return kSuccess;
}

CUresult fakeDeviceGet(CUdevice *device, int ordinal) {
  if (ordinal < 0 || ordinal >= kFakeDeviceCount)
    return kInvalidDevice;
  *device = ordinal;
  return kSuccess;
}

CUresult fakeDeviceGetName(char *name, int length, CUdevice device) {
  if (device < 0 || device >= kFakeDeviceCount)
    return kInvalidDevice;
  const char *text = device == 0 ? "normjit Fake GPU" : "normjit Fake GPU Lite";
  std::strncpy(name, text, static_cast<size_t>(length));
  return kSuccess;
}

CUresult fakeDeviceGetAttribute(int *value, int attribute, CUdevice device) {
  if (device < 0 || device >= kFakeDeviceCount)
    return kInvalidDevice;
  bool big = device == 0;
  switch (attribute) {
  case 1:
    *value = 1024;
    return kSuccess; // threads/block
  case 8:
    *value = 48 * 1024;
    return kSuccess; // smem/block
  case 10:
    *value = 32;
    return kSuccess; // warp
  case 16:
    *value = big ? kFakeSmCount : 108;
    return kSuccess; // SMs
  case 36:
    *value = big ? 2619000 : 1215000;
    return kSuccess; // kHz
  case 37:
    *value = 5120;
    return kSuccess; // bus bits
  case 38:
    *value = kFakeL2Bytes;
    return kSuccess; // L2
  case 75:
  case 76: {
    // cc 9.0 and 8.0; FAKE_CUDA_CC0=103 makes device 0 a 10.3.
    int cc = big ? 90 : 80;
    if (const char *forced = std::getenv("FAKE_CUDA_CC0"); forced && big)
      cc = std::atoi(forced);
    *value = attribute == 75 ? cc / 10 : cc % 10;
    return kSuccess; // cc major, minor
  }
  case 97:
    *value = big ? 227 * 1024 : 163 * 1024;
    return kSuccess;
  default:
    return kInvalidValue;
  }
}

CUresult fakeDeviceTotalMem(size_t *bytes, CUdevice device) {
  if (device < 0 || device >= kFakeDeviceCount)
    return kInvalidDevice;
  *bytes = device == 0 ? size_t(80) << 30 : size_t(40) << 30;
  return kSuccess;
}

CUresult fakePrimaryCtxRetain(void **context, CUdevice device) {
  if (device < 0 || device >= kFakeDeviceCount)
    return kInvalidDevice;
  std::lock_guard<std::mutex> lock(mutex);
  ++primaryReferences[device];
  ++counters.primary_retains;
  *context = &primaries[device];
  return kSuccess;
}

/// Active once retained (the fake's primary contexts are never reset).
CUresult fakePrimaryCtxGetState(CUdevice device, unsigned *flags,
                                int *active) {
  if (device < 0 || device >= kFakeDeviceCount)
    return kInvalidDevice;
  std::lock_guard<std::mutex> lock(mutex);
  *flags = 0;
  *active = primaryReferences[device] > 0 || primaryActive[device];
  return kSuccess;
}

CUresult fakePrimaryCtxRelease(CUdevice device) {
  if (device < 0 || device >= kFakeDeviceCount)
    return kInvalidDevice;
  std::lock_guard<std::mutex> lock(mutex);
  if (primaryReferences[device] == 0)
    return kInvalidContext;
  --primaryReferences[device];
  ++counters.primary_releases;
  return kSuccess;
}

CUresult fakeCtxGetCurrent(void **context) {
  ++contextCalls;
  *context = current();
  return kSuccess;
}

CUresult fakeCtxGetDevice(CUdevice *device) {
  ++contextCalls;
  if (!current())
    return kInvalidContext;
  *device = current()->device;
  return kSuccess;
}

CUresult fakeCtxPushCurrent(void *context) {
  ++contextCalls;
  if (!context || static_cast<Context *>(context)->destroyed)
    return kInvalidContext;
  contextStack.push_back(static_cast<Context *>(context));
  return kSuccess;
}

CUresult fakeCtxPopCurrent(void **context) {
  ++contextCalls;
  if (contextStack.empty())
    return kInvalidContext;
  if (context)
    *context = contextStack.back();
  contextStack.pop_back();
  return kSuccess;
}

CUresult fakeCtxGetId(void *context, unsigned long long *id) {
  ++contextCalls;
  if (!context || static_cast<Context *>(context)->destroyed)
    return kInvalidContext;
  *id = static_cast<Context *>(context)->id;
  return kSuccess;
}

/// FAKE_CUDA_PEERS=1: the two devices can reach each other's memory.
CUresult fakeDeviceCanAccessPeer(int *can, CUdevice device, CUdevice peer) {
  if (device < 0 || device >= kFakeDeviceCount || peer < 0 ||
      peer >= kFakeDeviceCount)
    return kInvalidDevice;
  const char *peers = std::getenv("FAKE_CUDA_PEERS");
  *can = device != peer && peers && std::strcmp(peers, "1") == 0;
  return kSuccess;
}

/// The context the last cuCtxSynchronize waited for.
std::atomic<void *> lastSyncContext{nullptr};

std::atomic<long> contextSyncs{0};

CUresult fakeCtxSynchronize() {
  ++contextSyncs;
  lastSyncContext.store(current());
  return current() ? kSuccess : kInvalidContext;
}

/// The stream the last cuStreamSynchronize waited for.
std::atomic<void *> lastSyncStream{nullptr};
std::atomic<long> streamSyncs{0};

CUresult fakeStreamSynchronize(void *stream) {
  if (!current())
    return kInvalidContext;
  lastSyncContext.store(current());
  lastSyncStream.store(stream);
  ++streamSyncs;
  return kSuccess;
}

/// Loads any text; fails on one containing "syntax error" with a log.
CUresult fakeModuleLoadDataEx(void **module, const void *image, unsigned count,
                              int *options, void **values) {
  if (!current())
    return kInvalidContext;
  std::string text(static_cast<const char *>(image));
  if (text.find("syntax error") != std::string::npos) {
    char *log = nullptr;
    size_t size = 0;
    for (unsigned i = 0; i < count; ++i) {
      if (options[i] == 5)
        log = static_cast<char *>(values[i]);
      if (options[i] == 6)
        size = reinterpret_cast<uintptr_t>(values[i]);
    }
    if (log && size)
      std::snprintf(log, size, "%s",
                    "ptxas application ptx input, line 3; error   : syntax "
                    "error near 'bogus'\nptxas fatal   : Ptx assembly "
                    "aborted due to errors\n");
    return kInvalidPtx;
  }
  auto *loaded = new Module{current(), current()->id, {}};
  // Entries: ".entry name(".
  for (size_t at = text.find(".entry "); at != std::string::npos;
       at = text.find(".entry ", at + 1)) {
    size_t begin = at + 7, end = text.find_first_of("( \n", begin);
    loaded->functions.push_back(
        new Function{loaded, text.substr(begin, end - begin)});
  }
  std::lock_guard<std::mutex> lock(mutex);
  ++counters.module_loads;
  *module = loaded;
  return kSuccess;
}

CUresult fakeModuleUnload(void *module) {
  if (!current())
    return kInvalidContext;
  auto *loaded = static_cast<Module *>(module);
  if (loaded->context != current() || loaded->contextId != current()->id)
    return kInvalidHandle; // (a real driver: undefined)
  for (Function *function : loaded->functions)
    delete function;
  delete loaded;
  std::lock_guard<std::mutex> lock(mutex);
  ++counters.module_unloads;
  return kSuccess;
}

CUresult fakeModuleGetFunction(void **function, void *module,
                               const char *name) {
  for (Function *entry : static_cast<Module *>(module)->functions)
    if (entry->name == name) {
      *function = entry;
      return kSuccess;
    }
  return kNotFound;
}

CUresult fakeOccupancy(int *blocks, void *, int blockSize, size_t) {
  std::lock_guard<std::mutex> lock(mutex);
  ++counters.occupancy_queries;
  *blocks = blockSize <= 1024 ? kFakeBlocksPerSm : 0;
  return kSuccess;
}

CUresult fakeLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz,
                          unsigned bx, unsigned by, unsigned bz,
                          unsigned shared, void *stream, void **params,
                          void **extra) {
  if (!current())
    return kInvalidContext;
  const Module *owner = static_cast<Function *>(function)->module;
  if (owner->context != current() || owner->contextId != current()->id)
    return kInvalidHandle; // a function of another (or a destroyed) context
  if (!params || extra)
    return kInvalidValue;
  std::lock_guard<std::mutex> lock(mutex);
  lastLaunch.function = function;
  lastLaunch.grid[0] = gx;
  lastLaunch.grid[1] = gy;
  lastLaunch.grid[2] = gz;
  lastLaunch.block[0] = bx;
  lastLaunch.block[1] = by;
  lastLaunch.block[2] = bz;
  lastLaunch.shared_bytes = shared;
  lastLaunch.stream = stream;
  lastLaunch.context = current();
  for (int i = 0; i < kFakeParamCount; ++i)
    std::memcpy(&lastLaunch.params[i], params[i], 8);
  if (stream && static_cast<Stream *>(stream)->capturing) {
    ++static_cast<Stream *>(stream)->captured;
    ++counters.captured_launches;
  } else {
    ++counters.launches;
  }
  return kSuccess;
}

CUresult pointerAttribute(void *data, int attribute, CUdeviceptr pointer);

/// FAKE_CUDA_MANAGED=1: every allocation is managed memory.
bool allManaged() {
  const char *managed = std::getenv("FAKE_CUDA_MANAGED");
  return managed && std::strcmp(managed, "1") == 0;
}

CUresult fakePointerGetAttribute(void *data, int attribute,
                                 CUdeviceptr pointer) {
  ++pointerQueries;
  return pointerAttribute(data, attribute, pointer);
}

CUresult pointerAttribute(void *data, int attribute, CUdeviceptr pointer) {
  std::lock_guard<std::mutex> lock(mutex);
  const Allocation *allocation = find(pointer);
  if (!allocation)
    return kInvalidValue;
  switch (attribute) {
  case 1: // CONTEXT
    *static_cast<void **>(data) = allocation->context;
    return kSuccess;
  case 2: // MEMORY_TYPE: device
    *static_cast<unsigned *>(data) = 2;
    return kSuccess;
  case 3: // DEVICE_POINTER
    if (!current())
      return kInvalidContext;
    // Contexts do not share their allocations: memory of another context
    // on the same device has no address in this one (managed memory and
    // other devices' memory, whose access is peer access, aside).
    if (allocation->context != current() &&
        allocation->context->device == current()->device && !allManaged())
      return kInvalidValue;
    *static_cast<CUdeviceptr *>(data) = pointer;
    return kSuccess;
  case 8: // IS_MANAGED
    *static_cast<int *>(data) = allManaged();
    return kSuccess;
  case 9: // DEVICE_ORDINAL
    *static_cast<int *>(data) = allocation->context->device;
    return kSuccess;
  default:
    return kInvalidValue;
  }
}

/// Like the driver's: no error for a pointer it does not know or an
/// attribute it cannot give, which read as 0.
CUresult fakePointerGetAttributes(unsigned count, int *attributes,
                                  void **data, CUdeviceptr pointer) {
  ++pointerQueries;
  for (unsigned i = 0; i < count; ++i) {
    size_t size = attributes[i] == 3 ? sizeof(CUdeviceptr)
                  : attributes[i] == 1 ? sizeof(void *)
                                       : sizeof(int);
    if (pointerAttribute(data[i], attributes[i], pointer) != kSuccess)
      std::memset(data[i], 0, size);
  }
  return kSuccess;
}

CUresult fakeMemAlloc(CUdeviceptr *pointer, size_t bytes) {
  if (!current())
    return kInvalidContext;
  if (bytes == 0)
    return kInvalidValue;
  void *memory = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!memory)
    return kOutOfMemory;
  std::lock_guard<std::mutex> lock(mutex);
  allocations[reinterpret_cast<uintptr_t>(memory)] = {bytes, current()};
  ++counters.allocations;
  *pointer = reinterpret_cast<uintptr_t>(memory);
  return kSuccess;
}

CUresult fakeMemFree(CUdeviceptr pointer) {
  if (!current())
    return kInvalidContext;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = allocations.find(static_cast<uintptr_t>(pointer));
  if (it == allocations.end())
    return kInvalidValue;
  allocations.erase(it);
  --counters.allocations;
  std::free(reinterpret_cast<void *>(static_cast<uintptr_t>(pointer)));
  return kSuccess;
}

void *host(CUdeviceptr pointer) {
  return reinterpret_cast<void *>(static_cast<uintptr_t>(pointer));
}

CUresult fakeMemcpyHtoD(CUdeviceptr dst, const void *src, size_t bytes) {
  if (!current())
    return kInvalidContext;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!find(dst, bytes))
      return kInvalidValue;
  }
  std::memcpy(host(dst), src, bytes);
  return kSuccess;
}

CUresult fakeMemcpyDtoH(void *dst, CUdeviceptr src, size_t bytes) {
  if (!current())
    return kInvalidContext;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!find(src, bytes))
      return kInvalidValue;
  }
  std::memcpy(dst, host(src), bytes);
  return kSuccess;
}

CUresult fakeMemcpyDtoD(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  if (!current())
    return kInvalidContext;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!find(dst, bytes) || !find(src, bytes))
      return kInvalidValue;
  }
  std::memmove(host(dst), host(src), bytes);
  return kSuccess;
}

CUresult fakeMemsetD8(CUdeviceptr dst, unsigned char value, size_t bytes) {
  if (!current())
    return kInvalidContext;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!find(dst, bytes))
      return kInvalidValue;
  }
  std::memset(host(dst), value, bytes);
  return kSuccess;
}

CUresult fakeMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t bytes,
                           void *) {
  CUresult result = fakeMemsetD8(dst, value, bytes);
  if (result == kSuccess) {
    std::lock_guard<std::mutex> lock(mutex);
    ++counters.async_memsets;
  }
  return result;
}

CUresult fakeStreamCreate(void **stream, unsigned) {
  if (!current())
    return kInvalidContext;
  *stream = new Stream{current()};
  return kSuccess;
}

CUresult fakeStreamDestroy(void *stream) {
  delete static_cast<Stream *>(stream);
  return kSuccess;
}

CUresult fakeStreamGetCtx(void *stream, void **context) {
  ++contextCalls;
  *context = static_cast<Stream *>(stream)->context;
  return kSuccess;
}

CUresult fakeStreamBeginCapture(void *stream, int mode) {
  auto *recording = static_cast<Stream *>(stream);
  if (!recording || mode < 0 || mode > 2)
    return kInvalidValue; // the legacy default stream cannot record
  if (recording->context != current())
    return kInvalidContext;
  std::lock_guard<std::mutex> lock(mutex);
  if (recording->capturing)
    return kInvalidValue;
  recording->capturing = true;
  recording->captured = 0;
  return kSuccess;
}

CUresult fakeStreamEndCapture(void *stream, void **graph) {
  auto *recording = static_cast<Stream *>(stream);
  if (!recording || !graph)
    return kInvalidValue;
  std::lock_guard<std::mutex> lock(mutex);
  if (!recording->capturing)
    return kInvalidValue;
  recording->capturing = false;
  *graph = new Graph{recording->context, recording->captured};
  return kSuccess;
}

CUresult fakeGraphInstantiateWithFlags(void **exec, void *graph,
                                       unsigned long long) {
  if (!exec || !graph)
    return kInvalidValue;
  *exec = new Graph(*static_cast<Graph *>(graph));
  return kSuccess;
}

CUresult fakeGraphLaunch(void *exec, void *) {
  auto *replayed = static_cast<Graph *>(exec);
  if (!replayed)
    return kInvalidValue;
  if (replayed->context != current())
    return kInvalidContext;
  std::lock_guard<std::mutex> lock(mutex);
  counters.launches += replayed->launches;
  ++counters.graph_launches;
  return kSuccess;
}

CUresult fakeGraphDestroy(void *graph) {
  delete static_cast<Graph *>(graph);
  return kSuccess;
}

CUresult fakeEventCreate(void **event, unsigned) {
  if (!current())
    return kInvalidContext;
  *event = new Event{current()};
  return kSuccess;
}

CUresult fakeEventRecord(void *event, void *stream) {
  auto *recorded = static_cast<Event *>(event);
  if (!stream && current() != recorded->context)
    return kInvalidContext; // the default stream of the wrong context
  std::lock_guard<std::mutex> lock(mutex);
  recorded->stamp = ++eventClock;
  return kSuccess;
}

CUresult fakeEventSynchronize(void *event) {
  return static_cast<Event *>(event)->stamp < 0 ? kInvalidHandle : kSuccess;
}

CUresult fakeEventElapsedTime(float *ms, void *start, void *end) {
  long a = static_cast<Event *>(start)->stamp;
  long b = static_cast<Event *>(end)->stamp;
  if (a < 0 || b < 0)
    return kInvalidHandle;
  *ms = 0.25f * static_cast<float>(b - a);
  // FAKE_CUDA_EVENT_MS: every elapsed time is that (a driver not measuring).
  if (const char *forced = std::getenv("FAKE_CUDA_EVENT_MS"); forced && *forced)
    *ms = std::strtof(forced, nullptr);
  return kSuccess;
}

CUresult fakeEventDestroy(void *event) {
  delete static_cast<Event *>(event);
  return kSuccess;
}

struct Entry {
  const char *name;
  void *function;
};

#define FAKE_ENTRY(name, function)                                             \
  { name, reinterpret_cast<void *>(&function) }

const Entry entries[] = {
    FAKE_ENTRY("cuInit", fakeInit),
    FAKE_ENTRY("cuGetErrorName", fakeGetErrorName),
    FAKE_ENTRY("cuGetErrorString", fakeGetErrorString),
    FAKE_ENTRY("cuDriverGetVersion", fakeDriverGetVersion),
    FAKE_ENTRY("cuDeviceGetCount", fakeDeviceGetCount),
    FAKE_ENTRY("cuDeviceGet", fakeDeviceGet),
    FAKE_ENTRY("cuDeviceGetName", fakeDeviceGetName),
    FAKE_ENTRY("cuDeviceGetAttribute", fakeDeviceGetAttribute),
    FAKE_ENTRY("cuDeviceTotalMem", fakeDeviceTotalMem),
    FAKE_ENTRY("cuDevicePrimaryCtxRetain", fakePrimaryCtxRetain),
    FAKE_ENTRY("cuDevicePrimaryCtxRelease", fakePrimaryCtxRelease),
    FAKE_ENTRY("cuDevicePrimaryCtxGetState", fakePrimaryCtxGetState),
    FAKE_ENTRY("cuCtxGetCurrent", fakeCtxGetCurrent),
    FAKE_ENTRY("cuCtxGetDevice", fakeCtxGetDevice),
    FAKE_ENTRY("cuCtxPushCurrent", fakeCtxPushCurrent),
    FAKE_ENTRY("cuCtxPopCurrent", fakeCtxPopCurrent),
    FAKE_ENTRY("cuCtxSynchronize", fakeCtxSynchronize),
    FAKE_ENTRY("cuCtxGetId", fakeCtxGetId),
    FAKE_ENTRY("cuDeviceCanAccessPeer", fakeDeviceCanAccessPeer),
    FAKE_ENTRY("cuModuleLoadDataEx", fakeModuleLoadDataEx),
    FAKE_ENTRY("cuModuleUnload", fakeModuleUnload),
    FAKE_ENTRY("cuModuleGetFunction", fakeModuleGetFunction),
    FAKE_ENTRY("cuOccupancyMaxActiveBlocksPerMultiprocessor", fakeOccupancy),
    FAKE_ENTRY("cuLaunchKernel", fakeLaunchKernel),
    FAKE_ENTRY("cuPointerGetAttribute", fakePointerGetAttribute),
    FAKE_ENTRY("cuPointerGetAttributes", fakePointerGetAttributes),
    FAKE_ENTRY("cuMemAlloc", fakeMemAlloc),
    FAKE_ENTRY("cuMemFree", fakeMemFree),
    FAKE_ENTRY("cuMemcpyHtoD", fakeMemcpyHtoD),
    FAKE_ENTRY("cuMemcpyDtoH", fakeMemcpyDtoH),
    FAKE_ENTRY("cuMemcpyDtoD", fakeMemcpyDtoD),
    FAKE_ENTRY("cuMemsetD8", fakeMemsetD8),
    FAKE_ENTRY("cuMemsetD8Async", fakeMemsetD8Async),
    FAKE_ENTRY("cuStreamCreate", fakeStreamCreate),
    FAKE_ENTRY("cuStreamDestroy", fakeStreamDestroy),
    FAKE_ENTRY("cuStreamGetCtx", fakeStreamGetCtx),
    FAKE_ENTRY("cuStreamSynchronize", fakeStreamSynchronize),
    FAKE_ENTRY("cuEventCreate", fakeEventCreate),
    FAKE_ENTRY("cuEventRecord", fakeEventRecord),
    FAKE_ENTRY("cuEventSynchronize", fakeEventSynchronize),
    FAKE_ENTRY("cuEventElapsedTime", fakeEventElapsedTime),
    FAKE_ENTRY("cuEventDestroy", fakeEventDestroy),
    FAKE_ENTRY("cuStreamBeginCapture", fakeStreamBeginCapture),
    FAKE_ENTRY("cuStreamEndCapture", fakeStreamEndCapture),
    FAKE_ENTRY("cuGraphInstantiateWithFlags", fakeGraphInstantiateWithFlags),
    FAKE_ENTRY("cuGraphLaunch", fakeGraphLaunch),
    FAKE_ENTRY("cuGraphExecDestroy", fakeGraphDestroy),
    FAKE_ENTRY("cuGraphDestroy", fakeGraphDestroy),
};
} // namespace

//===--- Exports ----------------------------------------------------------===//

extern "C" {
__attribute__((visibility("default"))) CUresult cuInit(unsigned flags) {
  return fakeInit(flags);
}

__attribute__((visibility("default"))) CUresult
cuGetErrorName(CUresult error, const char **text) {
  return fakeGetErrorName(error, text);
}

__attribute__((visibility("default"))) CUresult
cuGetErrorString(CUresult error, const char **text) {
  return fakeGetErrorString(error, text);
}

__attribute__((visibility("default"))) CUresult
cuGetProcAddress_v2(const char *symbol, void **function, int version,
                    unsigned long long, int *status) {
  std::lock_guard<std::mutex> lock(mutex);
  requestedVersions[symbol] = version;
  // FAKE_CUDA_NO_GRAPHS=1: a driver older than the graph entry points.
  const char *noGraphs = std::getenv("FAKE_CUDA_NO_GRAPHS");
  bool graphEntry =
      std::strstr(symbol, "Graph") || std::strstr(symbol, "Capture");
  if (noGraphs && std::strcmp(noGraphs, "1") == 0 && graphEntry) {
    *function = nullptr;
    if (status)
      *status = 1; // CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND
    return kNotFound;
  }
  for (const Entry &entry : entries)
    if (std::strcmp(entry.name, symbol) == 0) {
      *function = entry.function;
      if (status)
        *status = 0;
      return kSuccess;
    }
  *function = nullptr;
  if (status)
    *status = 1; // CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND
  return kNotFound;
}

__attribute__((visibility("default"))) CUresult
cuGetProcAddress(const char *symbol, void **function, int version,
                 unsigned long long flags) {
  return cuGetProcAddress_v2(symbol, function, version, flags, nullptr);
}

__attribute__((visibility("default"))) long
fake_cuda_last_launch(fake_cuda_launch_t *out) {
  std::lock_guard<std::mutex> lock(mutex);
  if (out)
    *out = lastLaunch;
  return counters.launches;
}

__attribute__((visibility("default"))) void
fake_cuda_counters(fake_cuda_counters_t *out) {
  std::lock_guard<std::mutex> lock(mutex);
  *out = counters;
  out->context_calls = contextCalls.load();
  out->pointer_queries = pointerQueries.load();
  out->stream_syncs = streamSyncs.load();
  out->context_syncs = contextSyncs.load();
}

__attribute__((visibility("default"))) int
fake_cuda_requested_version(const char *name) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = requestedVersions.find(name);
  return it == requestedVersions.end() ? 0 : it->second;
}

__attribute__((visibility("default"))) void *
fake_cuda_primary_context(int device) {
  return &primaries[device];
}

__attribute__((visibility("default"))) void *
fake_cuda_push_user_context(int device) {
  std::lock_guard<std::mutex> lock(mutex);
  userContexts.push_back(
      std::make_unique<Context>(Context{device, false, nextContextId++}));
  contextStack.push_back(userContexts.back().get());
  return contextStack.back();
}

__attribute__((visibility("default"))) void
fake_cuda_recreate_context(void *context) {
  std::lock_guard<std::mutex> lock(mutex);
  static_cast<Context *>(context)->id = nextContextId++;
}

__attribute__((visibility("default"))) void fake_cuda_pop_context() {
  if (!contextStack.empty())
    contextStack.pop_back();
}

__attribute__((visibility("default"))) void *fake_cuda_current_context() {
  return current();
}

__attribute__((visibility("default"))) void *fake_cuda_last_sync_stream() {
  return lastSyncStream.load();
}

__attribute__((visibility("default"))) void fake_cuda_set_primary_active(
    int device, int active) {
  std::lock_guard<std::mutex> lock(mutex);
  primaryActive[device] = active != 0;
}

__attribute__((visibility("default"))) void *fake_cuda_last_sync_context() {
  return lastSyncContext.load();
}

__attribute__((visibility("default"))) void *
fake_cuda_pointer_context(const void *pointer) {
  std::lock_guard<std::mutex> lock(mutex);
  const Allocation *allocation =
      find(static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(pointer)));
  return allocation ? allocation->context : nullptr;
}
} // extern "C"
