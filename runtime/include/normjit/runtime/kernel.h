/*===- kernel.h - kernel specs, call arguments and the CPU launcher -*- C -*-===*
 *
 * Part of normjit. What a kernel computes (normjit_kernel_spec_t), the
 * buffers one call works on (normjit_run_args_t), their validation, and the
 * launcher that splits rows over the thread pool and calls compiled code
 * (JIT or ahead-of-time) through its fixed C ABI. Builds without MLIR/LLVM.
 *
 *===----------------------------------------------------------------------===*/

#ifndef NORMJIT_RUNTIME_KERNEL_H
#define NORMJIT_RUNTIME_KERNEL_H

#include <stdint.h>

#include "normjit/runtime/dtype.h"
#include "normjit/runtime/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The normalization a kernel computes. */
typedef enum normjit_op_t {
  NORMJIT_LAYER_NORM = 0,
  NORMJIT_RMS_NORM = 1
} normjit_op_t;

/** Everything that decides the code of a kernel (not the row count). */
typedef struct normjit_kernel_spec_t {
  normjit_op_t op;
  int64_t cols;              /**< columns per row, >= 1 */
  normjit_dtype_t x_dtype;   /**< input rows */
  normjit_dtype_t y_dtype;   /**< output rows */
  int has_residual;          /**< s = x + residual */
  normjit_dtype_t residual_dtype;
  int store_sum;             /**< store s (needs has_residual) */
  normjit_dtype_t sum_dtype; /**< s is rounded to it before normalizing */
  int has_gamma;
  normjit_dtype_t gamma_dtype;
  int has_beta;
  normjit_dtype_t beta_dtype;
  int store_mean;            /**< f32 per row; LayerNorm only */
  int store_rstd;            /**< f32 per row */
  float epsilon;             /**< > 0 and finite */
} normjit_kernel_spec_t;

/** A spec with defaults: f32 everywhere, nothing optional, epsilon 1e-5
 * for LayerNorm and 1e-6 for RMSNorm (as the `normjit` CLI, AOT spec files
 * and tuning sweeps default: the tuning cache's key holds epsilon). */
normjit_kernel_spec_t normjit_kernel_spec_default(normjit_op_t op,
                                                  int64_t cols);

/** Buffers of one call. Strides are in elements between row starts; 0
 * means `cols` (contiguous rows). Buffers the spec does not use must be
 * NULL. An output (y, sum) may be the very same buffer as an input (x,
 * residual), in place, when both have elements of one size and the same
 * row stride (f16 over bf16 is fine, f16 over f32 is not: its rows would
 * overwrite input not yet read); otherwise an output shares no byte with
 * any other buffer: a partial overlap (y one element past x, rows of sum
 * running into gamma, mean into rstd) is refused, while rows that
 * interleave in one allocation (x and y rows alternating, strides apart)
 * share none and run. (Checking costs a few comparisons a call; only
 * interleaved rows of different strides are walked row by row, O(rows).) No output may be gamma or beta (every row reads
 * them), nor mean or rstd a row buffer: both are refused. */
typedef struct normjit_run_args_t {
  int64_t rows; /**< >= 0 */
  const void *x;
  int64_t x_stride;
  const void *residual;
  int64_t residual_stride;
  const void *gamma;
  const void *beta;
  void *y;
  int64_t y_stride;
  void *sum;
  int64_t sum_stride;
  float *mean;
  float *rstd;
} normjit_run_args_t;

/** Checks a spec: op, dtypes, cols >= 1, epsilon > 0 and finite, outputs
 * that make sense (no mean for RMSNorm, no sum without residual). */
normjit_status_t normjit_kernel_spec_validate(const normjit_kernel_spec_t *spec);

/** Checks call arguments against a spec: rows >= 0, required buffers
 * present, unused ones NULL, strides >= cols, element alignment. */
normjit_status_t normjit_run_args_validate(const normjit_kernel_spec_t *spec,
                                           const normjit_run_args_t *args);

/** MLIR's strided memref descriptors, the compiled kernels' ABI. */
typedef struct normjit_memref2d_t {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} normjit_memref2d_t;

typedef struct normjit_memref1d_t {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} normjit_memref1d_t;

/** A compiled CPU kernel over a block of rows. Unused operands get an empty
 * descriptor. */
typedef void (*normjit_cpu_kernel_fn)(
    normjit_memref2d_t *x, normjit_memref2d_t *residual,
    normjit_memref1d_t *gamma, normjit_memref1d_t *beta,
    normjit_memref2d_t *y, normjit_memref2d_t *sum, normjit_memref1d_t *mean,
    normjit_memref1d_t *rstd);

/** How a CPU launch splits rows. */
typedef struct normjit_cpu_launch_t {
  /** >= 1: the most rows of a task (see normjit_cpu_launch_task_rows) */
  int64_t rows_per_task;
  int threads;           /**< 0: all cores */
} normjit_cpu_launch_t;

/** The rows of each task (but the last) when normjit_cpu_launch runs `rows`
 * rows of `spec`: the rows go into ceil(rows / rows_per_task) tasks of equal
 * size; when that leaves fewer tasks than threads, into more, up to one per
 * thread, while each keeps about 20K row elements read or written (x, y,
 * the residual and the sum). `rows` itself: one task, run on the caller. */
int64_t normjit_cpu_launch_task_rows(const normjit_kernel_spec_t *spec,
                                     int64_t rows,
                                     const normjit_cpu_launch_t *launch);

/** Validates `args` against `spec` and runs `fn` over all rows, split into
 * tasks on the runtime's thread pool (inline when one task suffices). */
normjit_status_t normjit_cpu_launch(normjit_cpu_kernel_fn fn,
                                    const normjit_kernel_spec_t *spec,
                                    const normjit_run_args_t *args,
                                    const normjit_cpu_launch_t *launch);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMJIT_RUNTIME_KERNEL_H */
