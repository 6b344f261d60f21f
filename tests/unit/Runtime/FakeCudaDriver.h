//===- FakeCudaDriver.h - what the fake CUDA driver shows -------*- C++ -*-===//
//
// Part of normjit. The inspection functions of FakeCudaDriver.cpp, a tiny
// stand-in for libcuda.so.1 that CudaTest loads through NORMJIT_CUDA_DRIVER
// and then reaches with dlsym. Host memory plays device memory.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TESTS_UNIT_RUNTIME_FAKECUDADRIVER_H
#define NORMJIT_TESTS_UNIT_RUNTIME_FAKECUDADRIVER_H

#include <cstdint>

extern "C" {

/// What the fake's devices are.
constexpr int kFakeDeviceCount = 2;
constexpr int kFakeSmCount = 100;     ///< device 0; device 1 has 108
constexpr int kFakeBlocksPerSm = 2;   ///< every occupancy query
constexpr int kFakeL2Bytes = 4 << 20; ///< both devices
constexpr int kFakeDriverVersion = 13000;
constexpr int kFakeParamCount = 48;

/// The last cuLaunchKernel call, with its 48 parameters copied as 8-byte
/// values.
struct fake_cuda_launch_t {
  void *function;
  unsigned grid[3];
  unsigned block[3];
  unsigned shared_bytes;
  void *stream;
  void *context; ///< current when it was called
  uint64_t params[kFakeParamCount];
};

struct fake_cuda_counters_t {
  long launches;
  long module_loads;
  long module_unloads;
  long allocations;   ///< live ones
  long async_memsets; ///< cuMemsetD8Async calls (L2 flushes)
  long primary_retains;
  long primary_releases;
  long occupancy_queries;
  long captured_launches; ///< launches recorded into graphs, not run
  long graph_launches;    ///< cuGraphLaunch calls (their launches count
                          ///< in `launches`)
  long context_calls;   ///< cuCtxGetCurrent/GetDevice/Push/Pop/GetId and
                        ///< cuStreamGetCtx calls
  long pointer_queries; ///< cuPointerGetAttribute(s) calls
  long stream_syncs;    ///< cuStreamSynchronize calls
  long context_syncs;   ///< cuCtxSynchronize calls
};

/// Number of launches so far; copies the last one into `out` when non-null.
using fake_cuda_last_launch_fn = long (*)(fake_cuda_launch_t *out);
using fake_cuda_counters_fn = void (*)(fake_cuda_counters_t *out);
/// The cudaVersion last asked of cuGetProcAddress for `name` (0: never).
using fake_cuda_requested_version_fn = int (*)(const char *name);
/// The primary context of `device` (whether retained or not).
using fake_cuda_primary_context_fn = void *(*)(int device);
/// Pushes a new (non-primary) context of `device` on this thread.
using fake_cuda_push_user_context_fn = void *(*)(int device);
/// Destroys a context and gives its handle to a new context of the same
/// device (a new cuCtxGetId), as a driver may: what was loaded in the old
/// one does not run in the new one.
using fake_cuda_recreate_context_fn = void (*)(void *context);
/// Pops this thread's current context.
using fake_cuda_pop_context_fn = void (*)();
/// This thread's current context, or NULL.
using fake_cuda_current_context_fn = void *(*)();
/// The context the last cuCtxSynchronize or cuStreamSynchronize call waited
/// in (current then).
using fake_cuda_last_sync_context_fn = void *(*)();
/// The stream the last cuStreamSynchronize call waited for.
using fake_cuda_last_sync_stream_fn = void *(*)();
/// Says the primary context of `device` is active (made by someone else)
/// even before normjit retains it.
using fake_cuda_set_primary_active_fn = void (*)(int device, int active);
/// The context an allocation belongs to, or NULL for a pointer the fake did
/// not allocate.
using fake_cuda_pointer_context_fn = void *(*)(const void *pointer);

} // extern "C"

#endif // NORMJIT_TESTS_UNIT_RUNTIME_FAKECUDADRIVER_H
