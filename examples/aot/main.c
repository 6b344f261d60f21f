/*===- main.c - a C host linking ahead-of-time normjit kernels ------------===*
 *
 * Part of normjit's examples. Runs the two kernels of kernels.toml, compiled
 * ahead of time into libaot_kernels.a, on its own buffers and checks every
 * output against a double-precision reference; exits 1 on a mismatch. It
 * links the generated library and the normjit runtime only.
 *
 *===----------------------------------------------------------------------===*/

#include "aot_kernels.h"

#include <normjit/runtime/dtype.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { LN_ROWS = 300, LN_COLS = 1024, RMS_ROWS = 257, RMS_COLS = 1000 };

/* A deterministic value in [-1, 1). */
static float pseudoRandom(unsigned *state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) / 8388608.0f - 1.0f;
}

static int fail(const char *kernel, normjit_status_t status) {
  fprintf(stderr, "%s failed: %s: %s\n", kernel, normjit_status_name(status),
          normjit_last_error());
  return 1;
}

/* layer_norm_bf16: y = (x - mean) * rstd * gamma + beta, all bf16. */
static int checkLayerNorm(void) {
  uint16_t *x = malloc(sizeof(uint16_t) * LN_ROWS * LN_COLS);
  uint16_t *y = malloc(sizeof(uint16_t) * LN_ROWS * LN_COLS);
  uint16_t gamma[LN_COLS], beta[LN_COLS];
  normjit_run_args_t args = {0};
  normjit_status_t status;
  unsigned state = 1;
  double worst = 0;
  int r, c, bad = 0;

  if (!x || !y)
    return 1;
  for (r = 0; r < LN_ROWS * LN_COLS; ++r)
    x[r] = normjit_f32_to_bf16(2.0f + 3.0f * pseudoRandom(&state));
  for (c = 0; c < LN_COLS; ++c) {
    gamma[c] = normjit_f32_to_bf16(1.0f + 0.25f * pseudoRandom(&state));
    beta[c] = normjit_f32_to_bf16(0.5f * pseudoRandom(&state));
  }
  args.rows = LN_ROWS;
  args.x = x;
  args.y = y;
  args.gamma = gamma;
  args.beta = beta;
  status = layer_norm_bf16(&args);
  if (status != NORMJIT_OK) {
    free(x);
    free(y);
    return fail("layer_norm_bf16", status);
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
    rstd = 1.0 / sqrt(var / LN_COLS + layer_norm_bf16_spec()->epsilon);
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
  printf("layer_norm_bf16: %d x %d on %s: %s (largest error %.2g)\n", LN_ROWS,
         LN_COLS, layer_norm_bf16_target(), bad ? "MISMATCH" : "ok", worst);
  free(x);
  free(y);
  return bad != 0;
}

/* rms_norm_residual_f16: s = x + residual (stored), y = s * rstd * gamma. */
static int checkRmsNorm(void) {
  size_t elements = (size_t)RMS_ROWS * RMS_COLS;
  uint16_t *x = malloc(sizeof(uint16_t) * elements);
  uint16_t *residual = malloc(sizeof(uint16_t) * elements);
  uint16_t *y = malloc(sizeof(uint16_t) * elements);
  uint16_t *sum = malloc(sizeof(uint16_t) * elements);
  float *rstd = malloc(sizeof(float) * RMS_ROWS);
  uint16_t gamma[RMS_COLS];
  normjit_run_args_t args = {0};
  normjit_status_t status;
  unsigned state = 2;
  double worst = 0;
  int r, c, bad = 0;

  if (!x || !residual || !y || !sum || !rstd)
    return 1;
  for (r = 0; r < RMS_ROWS * RMS_COLS; ++r) {
    x[r] = normjit_f32_to_f16(pseudoRandom(&state));
    residual[r] = normjit_f32_to_f16(0.5f * pseudoRandom(&state));
  }
  for (c = 0; c < RMS_COLS; ++c)
    gamma[c] = normjit_f32_to_f16(1.0f + 0.25f * pseudoRandom(&state));
  args.rows = RMS_ROWS;
  args.x = x;
  args.residual = residual;
  args.gamma = gamma;
  args.y = y;
  args.sum = sum;
  args.rstd = rstd;
  status = rms_norm_residual_f16(&args);
  if (status == NORMJIT_OK) {
    for (r = 0; r < RMS_ROWS; ++r) {
      double squares = 0, expectedRstd;
      for (c = 0; c < RMS_COLS; ++c) {
        size_t i = (size_t)r * RMS_COLS + c;
        /* s is x + residual in f32, rounded to f16: stored exactly so. */
        uint16_t s = normjit_f32_to_f16(normjit_f16_to_f32(x[i]) +
                                        normjit_f16_to_f32(residual[i]));
        if (sum[i] != s)
          bad += 1;
        squares += (double)normjit_f16_to_f32(s) * normjit_f16_to_f32(s);
      }
      expectedRstd = 1.0 / sqrt(squares / RMS_COLS +
                                rms_norm_residual_f16_spec()->epsilon);
      if (fabs(rstd[r] - expectedRstd) > 1e-5 * expectedRstd)
        bad += 1;
      for (c = 0; c < RMS_COLS; ++c) {
        size_t i = (size_t)r * RMS_COLS + c;
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
    printf("rms_norm_residual_f16: %d x %d on %s: %s (largest error %.2g)\n",
           RMS_ROWS, RMS_COLS, rms_norm_residual_f16_target(),
           bad ? "MISMATCH" : "ok", worst);
  }
  free(x);
  free(residual);
  free(y);
  free(sum);
  free(rstd);
  if (status != NORMJIT_OK)
    return fail("rms_norm_residual_f16", status);
  return bad != 0;
}

int main(void) {
  int failures = checkLayerNorm() + checkRmsNorm();
  return failures ? 1 : 0;
}
