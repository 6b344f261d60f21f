/*===- cuda.h - CUDA devices, modules, memory and launches ---------*- C -*-===*
 *
 * Part of normjit. Loads the CUDA driver at run time (dlopen of libcuda.so.1,
 * entry points through cuGetProcAddress), so the runtime builds and links
 * without the CUDA toolkit and runs on machines without a GPU: there, every
 * call returns NORMJIT_DEVICE_ERROR with a message saying why. Builds
 * without MLIR/LLVM.
 *
 * Contexts: a call for device N uses the calling thread's current CUDA
 * context when that context is on device N, and otherwise the device's
 * primary context (retained once, kept until the process ends), pushed for
 * the duration of the call and popped before it returns. So a host that
 * manages its own contexts keeps control, and one that does not needs none.
 * Calls on an existing object (a module, a pointer, an event) use the context
 * the object was created in. Handles (CUfunction, CUstream, CUcontext)
 * travel as void*.
 *
 * normjit's kernels (JIT and AOT) follow the work they are given: each runs
 * in the context of the stream it is launched on (for a default stream, the
 * context above), loading its module there on first use (so not during a
 * stream capture in the global capture mode). A host with several contexts
 * on one device passes streams of any of them, with buffers that context
 * can reach.
 *
 *===----------------------------------------------------------------------===*/

#ifndef NORMJIT_RUNTIME_CUDA_H
#define NORMJIT_RUNTIME_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "normjit/runtime/kernel.h"
#include "normjit/runtime/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*===--- The driver -------------------------------------------------------===*/

/** Loads the CUDA driver and calls cuInit(0). The library is libcuda.so.1,
 * or the path in the environment variable NORMJIT_CUDA_DRIVER. Thread-safe;
 * done once on success. A failure is not remembered: the next call tries
 * again. Every other function here calls it first. NORMJIT_DEVICE_ERROR when
 * there is no driver, it is the toolkit's stub, it is too old (no
 * cuGetProcAddress or a missing entry point) or cuInit fails, and in the
 * child of a fork() made after the driver was loaded (CUDA does not survive
 * a fork: every call there says so). */
normjit_status_t normjit_cuda_init(void);

/** The path of the loaded driver library, or NULL before a successful
 * normjit_cuda_init. */
const char *normjit_cuda_driver_path(void);

/*===--- Devices ----------------------------------------------------------===*/

/** Number of CUDA devices: 0 with a driver that sees none (cuInit's
 * CUDA_ERROR_NO_DEVICE, e.g. CUDA_VISIBLE_DEVICES=""); the other entry
 * points then report NORMJIT_DEVICE_ERROR with that reason. */
normjit_status_t normjit_cuda_device_count(int *count);

/** What the tuner and the CLI need to know about a device. */
typedef struct normjit_cuda_device_info_t {
  char name[256]; /**< "NVIDIA H100 80GB HBM3" */
  int ordinal;
  int cc_major; /**< compute capability: sm_<major><minor> */
  int cc_minor;
  int sm_count;          /**< streaming multiprocessors */
  uint64_t total_memory; /**< bytes */
  int driver_version;    /**< cuDriverGetVersion: 13000 = 13.0 */
  int warp_size;
  int max_threads_per_block;
  int max_shared_memory_per_block;       /**< bytes, without opt-in */
  int max_shared_memory_per_block_optin; /**< bytes, with opt-in */
  int l2_cache_bytes;
  int memory_clock_khz;      /**< peak; 0 if the driver omits it */
  int memory_bus_width_bits; /**< 0 if the driver omits it */
  /** Theoretical DRAM bandwidth in GB/s (1e9 bytes/s):
   * 2 (double data rate) * memory clock * bus width / 8; 0 if unknown. */
  double dram_bandwidth_gbps;
} normjit_cuda_device_info_t;

/** Fills `info` for device `ordinal` (0 <= ordinal < count). */
normjit_status_t normjit_cuda_device_info(int ordinal,
                                          normjit_cuda_device_info_t *info);

/** Bytes that always suffice for a device fingerprint, with its NUL. */
#define NORMJIT_CUDA_FINGERPRINT_SIZE 384

/** Writes a one-line, stable description of the device that the tuning
 * cache keys entries with, e.g.
 * "cuda | NVIDIA H100 80GB HBM3 | sm_90 | 132 SMs | 79.1 GiB | driver 13000".
 * NORMJIT_INVALID_ARGUMENT (and nothing written) if `size` is too small. */
normjit_status_t normjit_cuda_device_fingerprint(int ordinal, char *buf,
                                                 size_t size);

/*===--- Modules ----------------------------------------------------------===*/

/** A loaded PTX or cubin image; reference-counted and shared. */
typedef struct normjit_cuda_module_t normjit_cuda_module_t;

/** Loads `image` (PTX text, with or without its NUL; or a cubin/fatbin) on
 * device `ordinal` with cuModuleLoadDataEx. The same bytes loaded again in
 * the same context return the same module with one more reference. A PTX
 * the driver rejects gives NORMJIT_COMPILE_ERROR with the JIT's error log in
 * the message. Thread-safe. */
normjit_status_t normjit_cuda_module_load(int ordinal, const void *image,
                                          size_t size,
                                          normjit_cuda_module_t **out);

/** normjit_cuda_module_load in `context` (a CUcontext, e.g. from
 * normjit_cuda_stream_context), whichever context is current. The same bytes
 * in the same context give the same module; a context that was destroyed
 * gives NORMJIT_DEVICE_ERROR. */
normjit_status_t normjit_cuda_module_load_in_context(
    void *context, const void *image, size_t size, normjit_cuda_module_t **out);

/** The CUDA context that work for device `ordinal` submitted to `stream`
 * runs in: a stream's own context (NORMJIT_INVALID_ARGUMENT when the stream
 * is on another device; `stream` must be a live CUstream, the driver does
 * not check handles); for NULL and
 * the legacy and per-thread default-stream handles, the calling thread's
 * current context when it is on device `ordinal`, else the device's primary
 * context. `id` (may be NULL) receives what identifies the context for the
 * life of the process: cuCtxGetId (CUDA 12.0 and newer drivers), which no
 * later context shares even if the driver reuses the handle; the handle
 * with older drivers. */
normjit_status_t normjit_cuda_stream_context(int ordinal, void *stream,
                                             void **context, uint64_t *id);

/** Drops one reference; the last one unloads the module, after which its
 * functions must not be launched. NULL is a no-op. */
normjit_status_t normjit_cuda_module_release(normjit_cuda_module_t *module);

/** Waits for the work of the context `module` was loaded in (the one its
 * launches run in, whichever context is current on the calling thread). */
normjit_status_t
normjit_cuda_module_synchronize(const normjit_cuda_module_t *module);

/** The kernel entry `name` of `module` as a CUfunction. */
normjit_status_t normjit_cuda_module_get_function(normjit_cuda_module_t *module,
                                                  const char *name,
                                                  void **function);

/*===--- Norm kernel launch -----------------------------------------------===*/

/** A compiled GPU norm kernel and its launch shape. Both functions take the
 * expanded memref descriptors of x, residual, gamma, beta, y, sum, mean and
 * rstd (48 parameters; see normjit_cuda_launch). */
typedef struct normjit_cuda_kernel_t {
  void *function;           /**< entry compiled with vector_width */
  void *function_unaligned; /**< same kernel with vector_width 1; may be NULL */
  int threads_per_row;      /**< block = threads_per_row * rows_per_block */
  int rows_per_block;
  int vector_width; /**< elements per vector access */
  int persistent;   /**< grid-stride loop over row groups */
} normjit_cuda_kernel_t;

/** Validates `spec` and `args` (normjit_run_args_validate), checks that every
 * buffer used is CUDA memory the kernel's device can access (else
 * NORMJIT_INVALID_ARGUMENT, "x is not CUDA device memory ..."; plain device
 * memory of another device is refused unless the two devices can be peers,
 * and then the host must have enabled peer access for the kernel's
 * context: normjit does not check that), and launches
 * on `stream` (a CUstream; NULL is the default stream) without waiting.
 *
 * `function` runs when every row operand (x, residual, y, sum) starts at an
 * address aligned to vector_width elements and has a stride that is a
 * multiple of vector_width, and gamma/beta are aligned likewise; otherwise
 * `function_unaligned` runs, and without one the call fails with
 * NORMJIT_INVALID_ARGUMENT naming the misaligned buffer.
 *
 * Parameters: each row buffer is (allocated, aligned, offset 0, rows, cols,
 * stride, 1) and each 1-D buffer (allocated, aligned, offset 0, size, 1),
 * gamma/beta of size cols, mean/rstd of size rows; unused buffers are NULL
 * with the same sizes and strides (cols, 1). Block: threads_per_row *
 * rows_per_block threads; grid: ceil(rows / rows_per_block) blocks, capped
 * for a persistent kernel at SMs * resident blocks per SM. No dynamic shared
 * memory. rows == 0 launches nothing.
 *
 * The kernel runs in the context of the module `function` came from; a
 * function normjit did not load runs in the calling thread's current
 * context. */
normjit_status_t normjit_cuda_launch(const normjit_cuda_kernel_t *kernel,
                                     const normjit_kernel_spec_t *spec,
                                     const normjit_run_args_t *args,
                                     void *stream);

/*===--- Memory, streams, events ------------------------------------------===*/

/** cuMemAlloc on device `ordinal`; bytes == 0 gives NULL. Device memory is
 * aligned to at least 256 bytes. */
normjit_status_t normjit_cuda_malloc(int ordinal, size_t bytes, void **ptr);

/** Frees memory from normjit_cuda_malloc; NULL is a no-op. */
normjit_status_t normjit_cuda_free(void *ptr);

/** Synchronous copies (they return when the data has arrived; they wait for
 * the legacy default stream of the memory's context, not for the whole
 * context). */
normjit_status_t normjit_cuda_memcpy_htod(void *dst, const void *src,
                                          size_t bytes);
normjit_status_t normjit_cuda_memcpy_dtoh(void *dst, const void *src,
                                          size_t bytes);
normjit_status_t normjit_cuda_memcpy_dtod(void *dst, const void *src,
                                          size_t bytes);

/** Sets `bytes` bytes of device memory to `value` (0..255) and waits for it
 * (on the legacy default stream of the memory's context). */
normjit_status_t normjit_cuda_memset(void *ptr, int value, size_t bytes);

/** Waits for all work on device `ordinal` (its context) to finish. */
normjit_status_t normjit_cuda_synchronize(int ordinal);

/** Waits for the work submitted to `stream` (NULL: the legacy default
 * stream; work queued there waited for the earlier work of the context's
 * blocking streams, not of its non-blocking ones), in the context of
 * normjit_cuda_stream_context(ordinal, stream). */
normjit_status_t normjit_cuda_stream_synchronize(int ordinal, void *stream);

/** A non-blocking stream (CUstream) on device `ordinal`. */
normjit_status_t normjit_cuda_stream_create(int ordinal, void **stream);
normjit_status_t normjit_cuda_stream_destroy(void *stream);

/** A timing event. */
typedef struct normjit_cuda_event_t normjit_cuda_event_t;

normjit_status_t normjit_cuda_event_create(int ordinal,
                                           normjit_cuda_event_t **event);
/** Records `event` on `stream` (NULL: the default stream). */
normjit_status_t normjit_cuda_event_record(normjit_cuda_event_t *event,
                                           void *stream);
/** Waits for `end`, then the milliseconds between the two records. */
normjit_status_t normjit_cuda_event_elapsed_ms(normjit_cuda_event_t *start,
                                               normjit_cuda_event_t *end,
                                               float *ms);
/** NULL is a no-op. */
normjit_status_t normjit_cuda_event_destroy(normjit_cuda_event_t *event);

/** Work recorded from a stream once (a CUDA graph, instantiated) and
 * replayed with one call: back-to-back kernels timed without the host's
 * launch rate (a launch's argument checks included) in between. */
typedef struct normjit_cuda_graph_t normjit_cuda_graph_t;

/** Whether the driver has the graph entry points (CUDA 11.4 and newer). */
int normjit_cuda_graphs_available(void);
/** Starts recording the work submitted to `stream` (not NULL: the legacy
 * default stream cannot record) instead of running it, in the relaxed
 * capture mode. NORMJIT_UNSUPPORTED without the graph entry points. */
normjit_status_t normjit_cuda_capture_begin(void *stream);
/** Ends the recording of `stream` and instantiates what it recorded into
 * *graph. The stream stops recording even when this fails (*graph is then
 * NULL). */
normjit_status_t normjit_cuda_capture_end(void *stream,
                                          normjit_cuda_graph_t **graph);
/** Replays `graph` on `stream`. */
normjit_status_t normjit_cuda_graph_launch(normjit_cuda_graph_t *graph,
                                           void *stream);
/** NULL is a no-op. */
normjit_status_t normjit_cuda_graph_destroy(normjit_cuda_graph_t *graph);

/** Writes a scratch buffer of twice the device's L2 size (allocated on first
 * use, kept per context: the stream's, see normjit_cuda_stream_context) on
 * `stream`, so the next kernel on that stream
 * starts with no useful data in L2: cold-cache timing. */
normjit_status_t normjit_cuda_flush_l2(int ordinal, void *stream);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMJIT_RUNTIME_CUDA_H */
