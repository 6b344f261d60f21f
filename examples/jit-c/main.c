/*===- main.c - a C host embedding the normjit JIT ------------------------===*
 *
 * Part of normjit's examples. Asks for a LayerNorm kernel for 4096 columns
 * of bf16 input with an f32 gamma and beta (with the config `normjit tune`
 * stored in the tuning cache for this spec and row count, if any), runs it
 * on its own buffers and checks a row against a plain C computation.
 *
 *===----------------------------------------------------------------------===*/

#include <normjit/normjit.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { ROWS = 64, COLS = 4096 };

int main(void) {
  normjit_context_t *context = NULL;
  normjit_kernel_t *kernel = NULL;
  normjit_kernel_spec_t spec;
  normjit_run_args_t args = {0};
  normjit_tuning_options_t tuning = normjit_tuning_options_default();
  uint16_t *x = malloc(sizeof(uint16_t) * ROWS * COLS);
  uint16_t *y = malloc(sizeof(uint16_t) * ROWS * COLS);
  float *gamma = malloc(sizeof(float) * COLS);
  float *beta = malloc(sizeof(float) * COLS);
  double mean = 0, var = 0, worst = 0;
  int i, status = 1;

  if (!x || !y || !gamma || !beta)
    return 1;
  for (i = 0; i < ROWS * COLS; ++i)
    x[i] = normjit_f32_to_bf16(sinf(0.001f * (float)i) * 3.0f + 1.0f);
  for (i = 0; i < COLS; ++i) {
    gamma[i] = 1.0f + 0.01f * (float)(i % 7);
    beta[i] = 0.1f * (float)(i % 3);
  }

  if (normjit_context_create(&context) != NORMJIT_OK)
    goto fail;
  spec = normjit_kernel_spec_default(NORMJIT_LAYER_NORM, COLS);
  spec.x_dtype = NORMJIT_BF16;
  spec.y_dtype = NORMJIT_BF16;
  spec.has_gamma = 1;
  spec.has_beta = 1;
  /* Cache-only: a tuned config when the default tuning cache has one for
   * this CPU, else the default heuristic's (never tuning here). */
  tuning.policy = NORMJIT_TUNING_CACHE_ONLY;
  if (normjit_kernel_get_tuned(context, &spec, ROWS, "cpu", &tuning, &kernel) !=
      NORMJIT_OK)
    goto fail;
  printf("normjit %s: compiled in %.1f ms with %s (from the %s)\n",
         normjit_version(), normjit_kernel_compile_ms(kernel),
         normjit_kernel_config(kernel),
         normjit_kernel_config_source(kernel));

  args.rows = ROWS;
  args.x = x;
  args.y = y;
  args.gamma = gamma;
  args.beta = beta;
  if (normjit_kernel_run(kernel, &args) != NORMJIT_OK)
    goto fail;

  /* Check the last row in double precision. */
  for (i = 0; i < COLS; ++i)
    mean += normjit_bf16_to_f32(x[(ROWS - 1) * COLS + i]);
  mean /= COLS;
  for (i = 0; i < COLS; ++i) {
    double d = normjit_bf16_to_f32(x[(ROWS - 1) * COLS + i]) - mean;
    var += d * d;
  }
  var /= COLS;
  for (i = 0; i < COLS; ++i) {
    double s = normjit_bf16_to_f32(x[(ROWS - 1) * COLS + i]);
    double expected = (s - mean) / sqrt(var + 1e-5) * gamma[i] + beta[i];
    double error = fabs(normjit_bf16_to_f32(y[(ROWS - 1) * COLS + i]) - expected);
    if (error > worst)
      worst = error;
  }
  printf("largest error %.3g (bf16 output)\n", worst);
  status = worst < 0.05 ? 0 : 1;
  puts(status == 0 ? "ok" : "MISMATCH");
  goto done;

fail:
  fprintf(stderr, "normjit: %s\n", normjit_last_error());
done:
  normjit_kernel_release(kernel);
  normjit_context_destroy(context);
  free(x);
  free(y);
  free(gamma);
  free(beta);
  return status;
}
