/*===- gpu_host.c - a C host running ahead-of-time normjit GPU kernels ----===*
 *
 * Part of normjit's examples. Runs the two kernels of gpu_kernels.toml,
 * compiled ahead of time into aot_gpu_kernels.c, on CUDA device 0: copies
 * its inputs into device buffers allocated through the runtime, launches,
 * copies the outputs back and checks every one against a double-precision
 * computation on the CPU. The RMSNorm rows are padded (a row stride of
 * cols + 3), so its unaligned scalar twin runs. It compiles the generated C
 * and links the normjit runtime only (no CUDA toolkit: the runtime loads the
 * driver at run time).
 *
 * Exit codes: 0 all outputs match, 1 a mismatch or an error, 77 skipped
 * (no CUDA driver or no device here).
 *
 *===----------------------------------------------------------------------===*/

#include "aot_gpu_kernels.h"

#include <normjit/runtime/cuda.h>
#include <normjit/runtime/dtype.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SKIPPED = 77, DEVICE = 0 };
enum { LN_ROWS = 300, LN_COLS = 1024 };
enum { RMS_ROWS = 257, RMS_COLS = 1000, RMS_STRIDE = RMS_COLS + 3 };

/* A deterministic value in [-1, 1). */
static float pseudoRandom(unsigned *state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) / 8388608.0f - 1.0f;
}

static int fail(const char *what, normjit_status_t status) {
  fprintf(stderr, "%s failed: %s: %s\n", what, normjit_status_name(status),
          normjit_last_error());
  return 1;
}

/* Device buffers of one check, freed together. */
enum { MAX_BUFFERS = 8 };
typedef struct Buffers {
  void *device[MAX_BUFFERS];
  int count;
} Buffers;

/* A device copy of `bytes` bytes at `host` (or uninitialized memory when
 * `host` is NULL); NULL on failure, with the error reported. */
static void *toDevice(Buffers *buffers, const void *host, size_t bytes) {
  void *pointer = NULL;
  normjit_status_t status = normjit_cuda_malloc(DEVICE, bytes, &pointer);
  if (status != NORMJIT_OK) {
    fail("normjit_cuda_malloc", status);
    return NULL;
  }
  buffers->device[buffers->count++] = pointer;
  if (host &&
      (status = normjit_cuda_memcpy_htod(pointer, host, bytes)) != NORMJIT_OK) {
    fail("normjit_cuda_memcpy_htod", status);
    return NULL;
  }
  return pointer;
}

static void freeAll(Buffers *buffers) {
  int i;
  for (i = 0; i < buffers->count; ++i)
    normjit_cuda_free(buffers->device[i]);
  buffers->count = 0;
}

/* Waits for the launch and copies `bytes` bytes of `device` into `host`. */
static int fromDevice(void *host, const void *device, size_t bytes) {
  normjit_status_t status = normjit_cuda_synchronize(DEVICE);
  if (status != NORMJIT_OK)
    return fail("normjit_cuda_synchronize", status);
  status = normjit_cuda_memcpy_dtoh(host, device, bytes);
  if (status != NORMJIT_OK)
    return fail("normjit_cuda_memcpy_dtoh", status);
  return 0;
}

/* gpu_layer_norm_bf16: y = (x - mean) * rstd * gamma + beta, all bf16. */
static int checkLayerNorm(void) {
  size_t elements = (size_t)LN_ROWS * LN_COLS;
  uint16_t *x = malloc(sizeof(uint16_t) * elements);
  uint16_t *y = malloc(sizeof(uint16_t) * elements);
  uint16_t gamma[LN_COLS], beta[LN_COLS];
  normjit_run_args_t args;
  normjit_status_t status;
  Buffers buffers = {{0}, 0};
  unsigned state = 1;
  double worst = 0;
  int r, c, bad = 0, failed = 0;

  if (!x || !y)
    return 1;
  for (r = 0; r < LN_ROWS * LN_COLS; ++r)
    x[r] = normjit_f32_to_bf16(2.0f + 3.0f * pseudoRandom(&state));
  for (c = 0; c < LN_COLS; ++c) {
    gamma[c] = normjit_f32_to_bf16(1.0f + 0.25f * pseudoRandom(&state));
    beta[c] = normjit_f32_to_bf16(0.5f * pseudoRandom(&state));
  }
  memset(&args, 0, sizeof args);
  args.rows = LN_ROWS;
  args.x = toDevice(&buffers, x, sizeof(uint16_t) * elements);
  args.gamma = args.x ? toDevice(&buffers, gamma, sizeof gamma) : NULL;
  args.beta = args.gamma ? toDevice(&buffers, beta, sizeof beta) : NULL;
  args.y =
      args.beta ? toDevice(&buffers, NULL, sizeof(uint16_t) * elements) : NULL;
  if (!args.y) {
    failed = 1;
  } else if ((status = gpu_layer_norm_bf16(DEVICE, &args, NULL)) !=
             NORMJIT_OK) {
    failed = fail("gpu_layer_norm_bf16", status);
  } else {
    failed = fromDevice(y, args.y, sizeof(uint16_t) * elements);
  }
  freeAll(&buffers);
  if (failed) {
    free(x);
    free(y);
    return 1;
  }

  for (r = 0; r < LN_ROWS; ++r) {
    double mean = 0, var = 0, rstd;
    for (c = 0; c < LN_COLS; ++c)
      mean += normjit_bf16_to_f32(x[r * LN_COLS + c]);
    mean /= LN_COLS;
    for (c = 0; c < LN_COLS; ++c) {
      double d = normjit_bf16_to_f32(x[r * LN_COLS + c]) - mean;
      var += d * d;
    }
    rstd = 1.0 / sqrt(var / LN_COLS + gpu_layer_norm_bf16_spec()->epsilon);
    for (c = 0; c < LN_COLS; ++c) {
      double expected = (normjit_bf16_to_f32(x[r * LN_COLS + c]) - mean) *
                            rstd * normjit_bf16_to_f32(gamma[c]) +
                        normjit_bf16_to_f32(beta[c]);
      double error = fabs(normjit_bf16_to_f32(y[r * LN_COLS + c]) - expected);
      /* bf16 holds 8 significant bits: one unit in the last place. */
      if (error > fabs(expected) / 128 + 1e-3)
        bad += 1;
      if (error > worst)
        worst = error;
    }
  }
  printf("gpu_layer_norm_bf16: %d x %d with %s: %s (largest error %.2g)\n",
         LN_ROWS, LN_COLS, gpu_layer_norm_bf16_image(DEVICE),
         bad ? "MISMATCH" : "ok", worst);
  free(x);
  free(y);
  return bad != 0;
}

/* gpu_rms_norm_residual_f16: s = x + residual (stored), y = s * rstd *
 * gamma, on rows RMS_STRIDE elements apart. */
static int checkRmsNorm(void) {
  size_t elements = (size_t)RMS_ROWS * RMS_STRIDE;
  uint16_t *x = calloc(elements, sizeof(uint16_t));
  uint16_t *residual = calloc(elements, sizeof(uint16_t));
  uint16_t *y = calloc(elements, sizeof(uint16_t));
  uint16_t *sum = calloc(elements, sizeof(uint16_t));
  float *rstd = calloc(RMS_ROWS, sizeof(float));
  uint16_t gamma[RMS_COLS];
  normjit_run_args_t args;
  normjit_status_t status;
  Buffers buffers = {{0}, 0};
  unsigned state = 2;
  double worst = 0;
  int r, c, bad = 0, failed = 0;
  size_t rowBytes = sizeof(uint16_t) * elements;

  if (!x || !residual || !y || !sum || !rstd)
    return 1;
  for (r = 0; r < RMS_ROWS; ++r)
    for (c = 0; c < RMS_COLS; ++c) {
      x[r * RMS_STRIDE + c] = normjit_f32_to_f16(pseudoRandom(&state));
      residual[r * RMS_STRIDE + c] =
          normjit_f32_to_f16(0.5f * pseudoRandom(&state));
    }
  for (c = 0; c < RMS_COLS; ++c)
    gamma[c] = normjit_f32_to_f16(1.0f + 0.25f * pseudoRandom(&state));
  memset(&args, 0, sizeof args);
  args.rows = RMS_ROWS;
  args.x_stride = args.residual_stride = RMS_STRIDE;
  args.y_stride = args.sum_stride = RMS_STRIDE;
  args.x = toDevice(&buffers, x, rowBytes);
  args.residual = args.x ? toDevice(&buffers, residual, rowBytes) : NULL;
  args.gamma = args.residual ? toDevice(&buffers, gamma, sizeof gamma) : NULL;
  args.y = args.gamma ? toDevice(&buffers, NULL, rowBytes) : NULL;
  args.sum = args.y ? toDevice(&buffers, NULL, rowBytes) : NULL;
  args.rstd = args.sum
                  ? (float *)toDevice(&buffers, NULL, sizeof(float) * RMS_ROWS)
                  : NULL;
  if (!args.rstd) {
    failed = 1;
  } else if ((status = gpu_rms_norm_residual_f16(DEVICE, &args, NULL)) !=
             NORMJIT_OK) {
    failed = fail("gpu_rms_norm_residual_f16", status);
  } else {
    failed = fromDevice(y, args.y, rowBytes) ||
             fromDevice(sum, args.sum, rowBytes) ||
             fromDevice(rstd, args.rstd, sizeof(float) * RMS_ROWS);
  }
  freeAll(&buffers);

  if (!failed) {
    for (r = 0; r < RMS_ROWS; ++r) {
      double squares = 0, expectedRstd;
      for (c = 0; c < RMS_COLS; ++c) {
        size_t i = (size_t)r * RMS_STRIDE + c;
        /* s is x + residual in f32, rounded to f16: stored exactly so. */
        uint16_t s = normjit_f32_to_f16(normjit_f16_to_f32(x[i]) +
                                        normjit_f16_to_f32(residual[i]));
        if (sum[i] != s)
          bad += 1;
        squares += (double)normjit_f16_to_f32(s) * normjit_f16_to_f32(s);
      }
      expectedRstd = 1.0 / sqrt(squares / RMS_COLS +
                                gpu_rms_norm_residual_f16_spec()->epsilon);
      if (fabs(rstd[r] - expectedRstd) > 1e-5 * expectedRstd)
        bad += 1;
      for (c = 0; c < RMS_COLS; ++c) {
        size_t i = (size_t)r * RMS_STRIDE + c;
        double expected = normjit_f16_to_f32(sum[i]) * expectedRstd *
                          normjit_f16_to_f32(gamma[c]);
        double error = fabs(normjit_f16_to_f32(y[i]) - expected);
        /* f16 holds 11 significant bits: one unit in the last place. */
        if (error > fabs(expected) / 1024 + 1e-4)
          bad += 1;
        if (error > worst)
          worst = error;
      }
    }
    printf("gpu_rms_norm_residual_f16: %d x %d (row stride %d) with %s: %s "
           "(largest error %.2g)\n",
           RMS_ROWS, RMS_COLS, RMS_STRIDE,
           gpu_rms_norm_residual_f16_image(DEVICE), bad ? "MISMATCH" : "ok",
           worst);
  }
  free(x);
  free(residual);
  free(y);
  free(sum);
  free(rstd);
  return failed || bad != 0;
}

int main(void) {
  normjit_cuda_device_info_t info;
  int count = 0;
  normjit_status_t status = normjit_cuda_init();
  if (status == NORMJIT_DEVICE_ERROR) {
    printf("skipped: no CUDA driver (%s)\n", normjit_last_error());
    return SKIPPED;
  }
  if (status != NORMJIT_OK)
    return fail("normjit_cuda_init", status);
  if ((status = normjit_cuda_device_count(&count)) != NORMJIT_OK)
    return fail("normjit_cuda_device_count", status);
  if (count == 0) {
    printf("skipped: no CUDA device\n");
    return SKIPPED;
  }
  if ((status = normjit_cuda_device_info(DEVICE, &info)) != NORMJIT_OK)
    return fail("normjit_cuda_device_info", status);
  printf("device %d: %s, sm_%d%d\n", DEVICE, info.name, info.cc_major,
         info.cc_minor);
  return checkLayerNorm() + checkRmsNorm() ? 1 : 0;
}
