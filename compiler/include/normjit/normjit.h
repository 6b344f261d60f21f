/*===- normjit.h - the C ABI of the normjit JIT ---------------------*- C -*-===*
 *
 * Part of normjit. Opaque handles, status codes and a per-thread last-error
 * message; no exception crosses this boundary. Usable from C99.
 *
 *   normjit_context_t *ctx;
 *   normjit_context_create(&ctx);
 *   normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 1024);
 *   normjit_kernel_t *kernel;
 *   if (normjit_kernel_get(ctx, &spec, &kernel) != NORMJIT_OK)
 *     fprintf(stderr, "%s\n", normjit_last_error());
 *   normjit_run_args_t args = {0};  args.rows = n; args.x = x; args.y = y;
 *   normjit_kernel_run(kernel, &args);
 *   normjit_kernel_release(kernel);
 *   normjit_context_destroy(ctx);
 *
 * The normjit_kernel_get* functions set *out (when out is not NULL) to
 * NULL on every failure, so releasing it afterwards is always safe.
 *
 *===----------------------------------------------------------------------===*/

#ifndef NORMJIT_NORMJIT_H
#define NORMJIT_NORMJIT_H

#include <stddef.h>
#include <stdint.h>

#include "normjit/runtime/dtype.h"
#include "normjit/runtime/kernel.h"
#include "normjit/runtime/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct normjit_context normjit_context_t;
typedef struct normjit_kernel normjit_kernel_t;

/** CPU tuning knobs (what #norm.config<cpu, ...> carries). */
typedef struct normjit_cpu_config_t {
  int64_t vector_width;  /**< f32 lanes, power of two in [1, 64] */
  int64_t accumulators;  /**< [1, 16] */
  int64_t rows_per_task; /**< [1, 65536] */
  int threads;           /**< 0: all cores, else [1, 1024] */
  int welford;           /**< LayerNorm statistics by Welford updates */
  int streaming_stores;  /**< non-temporal stores of y */
  int fuse_residual;     /**< one kernel, or norm.add then the norm */
  int prefetch_rows;     /**< [0, 16]: software prefetches of the inputs
                              this many rows ahead; 0: none (since 0.3.0) */
  int row_group;         /**< [0, 64]: rows normalized together (a pair's
                              output steps share gamma and beta loads; 3
                              or more sweep column tiles); 0: the default,
                              pairs where gamma, beta and a row overflow
                              32 KiB (since 0.4.0) */
} normjit_cpu_config_t;

normjit_status_t normjit_context_create(normjit_context_t **out);
void normjit_context_destroy(normjit_context_t *context);

/** The heuristic config this host gives `spec`. */
normjit_status_t normjit_default_cpu_config(const normjit_kernel_spec_t *spec,
                                            normjit_cpu_config_t *out);

/** A kernel for `spec` with the default config; compiled on first use,
 * then served from the context's cache. Release it when done. */
normjit_status_t normjit_kernel_get(normjit_context_t *context,
                                    const normjit_kernel_spec_t *spec,
                                    normjit_kernel_t **out);

/** The library's version, "0.4.0" (that of the normjit it was built as). */
const char *normjit_version(void);

/** Same as normjit_kernel_get, with an explicit config (e.g. a tuned one). */
normjit_status_t normjit_kernel_get_with_config(
    normjit_context_t *context, const normjit_kernel_spec_t *spec,
    const normjit_cpu_config_t *config, normjit_kernel_t **out);

/** A kernel for `spec` on `device` ("cpu", "cuda" or "cuda:N"), with
 * `config` as #norm.config text of that device's backend (knobs it leaves
 * out take the default; on a GPU, elements_per_thread left out follows the
 * threads_per_row, vector_width and row_storage given, so that the row is
 * covered), or NULL for the default heuristic. A GPU kernel
 * is compiled to PTX for the device's compute capability and loaded through
 * the CUDA driver (found at run time: NORMJIT_DEVICE_ERROR without one). */
normjit_status_t normjit_kernel_get_for_device(normjit_context_t *context,
                                               const normjit_kernel_spec_t *spec,
                                               const char *device,
                                               const char *config,
                                               normjit_kernel_t **out);

/** What normjit_kernel_get_tuned does with the tuning cache. "The default"
 * there is the default for the row count: on the CPU, rows that stay in the
 * caches are normalized in groups, and calls far beyond the last-level
 * cache stream their stores (see getDefaultCpuConfigForRows in
 * normjit/JIT/KernelCompiler.h), where normjit_kernel_get's default, which
 * does not know the row count, takes single rows and ordinary stores. */
typedef enum normjit_tuning_policy_t {
  NORMJIT_TUNING_HEURISTIC = 0,   /**< ignore the cache: the default config */
  NORMJIT_TUNING_CACHE_ONLY = 1,  /**< the cached config, else the default */
  NORMJIT_TUNING_TUNE_ON_MISS = 2 /**< the cached config, else tune within
                                       the budget, store the result, use it
                                       (a CPU spec the tuner cannot take, a
                                       row over its workload limit, gets the
                                       default, with a warning on stderr) */
} normjit_tuning_policy_t;

/** Options of normjit_kernel_get_tuned. */
typedef struct normjit_tuning_options_t {
  normjit_tuning_policy_t policy;
  /** The tuning cache file, or NULL for the default one:
   * $NORMJIT_CACHE_DIR/tuning.toml, else $XDG_CACHE_HOME/normjit/, else
   * ~/.cache/normjit/ (what `normjit tune` writes by default). */
  const char *cache_file;
  /** Tune-on-miss: seconds per spec, compilation included (<= 0: 2); the
   * search stops drawing candidates when the budget is spent, but the
   * default and its challengers are always timed a few rounds each: a
   * large spec (a workload of 64 MiB or more) may overrun a short budget
   * by up to about a second (0.2 s: 0.4-0.9 s, 1.5 s: 2.0-2.4 s for
   * 4096x4096 bf16 with the residual on a 2-core VM). */
  double budget_seconds;
  /** CPU: the worker threads the kernel runs on, tuned on and looked up
   * with (what wins depends on it); 0: all cores. GPU: must be 0. */
  int threads;
} normjit_tuning_options_t;

/** Cache-only, the default cache file, a 2 s budget. */
normjit_tuning_options_t normjit_tuning_options_default(void);

/** A kernel for `spec` on `device` ("cpu", "cuda" or "cuda:N"; NULL:
 * "cpu") with the config the tuning cache holds for this device, this
 * build, the spec and the row bucket of `rows` (the row count the kernel
 * will mostly run), by `options` (NULL: normjit_tuning_options_default()).
 * An entry tuned on another device or build is never used. A cache file
 * that cannot be trusted is set aside (renamed) with a warning on stderr
 * and the cache starts empty. Kernels are served from the context's
 * kernel cache like normjit_kernel_get's; the context reads each cache file
 * once. Within a context, one spec is tuned at a time per cache file;
 * other contexts and processes may tune into the same file at once (it is
 * locked while written, and no entry is lost). */
normjit_status_t normjit_kernel_get_tuned(
    normjit_context_t *context, const normjit_kernel_spec_t *spec,
    int64_t rows, const char *device, const normjit_tuning_options_t *options,
    normjit_kernel_t **out);

/** Runs a kernel on the caller's buffers and returns when it is done. A
 * GPU kernel takes device pointers and runs on the legacy default stream of
 * the calling thread's current CUDA context when that is on the kernel's
 * device, else of the device's primary context; the call waits for that
 * stream (which also waits for earlier work of the context's blocking
 * streams, not of its non-blocking ones). A server with streams of its own
 * should use normjit_kernel_run_on_stream. */
normjit_status_t normjit_kernel_run(const normjit_kernel_t *kernel,
                                    const normjit_run_args_t *args);

/** Launches a GPU kernel on `stream` (a CUstream of the kernel's device)
 * without waiting, in the stream's CUDA context: a kernel's module is
 * loaded in each context it runs in, on first use there. A CPU kernel runs
 * at once and needs `stream` NULL. */
normjit_status_t normjit_kernel_run_on_stream(const normjit_kernel_t *kernel,
                                              const normjit_run_args_t *args,
                                              void *stream);

/** "cpu" or "cuda:N" (owned by the kernel handle). */
const char *normjit_kernel_device(const normjit_kernel_t *kernel);

/** The config a kernel was compiled with, as #norm.config text (owned by
 * the kernel handle). */
const char *normjit_kernel_config(const normjit_kernel_t *kernel);

/** Where the kernel's config came from: "default heuristic", "given"
 * (normjit_kernel_get_with_config, a config text), "tuning cache", "tuned
 * now" or "tuned now, not saved" (the cache file could not be written: the
 * reason is on stderr, and the context keeps the entry for later calls,
 * which say "tuned earlier, not saved") (owned by the kernel handle). */
const char *normjit_kernel_config_source(const normjit_kernel_t *kernel);

/** Milliseconds the kernel's compilation took. */
double normjit_kernel_compile_ms(const normjit_kernel_t *kernel);

void normjit_kernel_release(normjit_kernel_t *kernel);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMJIT_NORMJIT_H */
