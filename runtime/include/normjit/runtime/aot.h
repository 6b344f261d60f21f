/*===- aot.h - the run-time side of ahead-of-time kernels ----------*- C -*-===*
 *
 * Part of normjit. The descriptors that `normjit aot` generates for each
 * kernel (one compiled variant per CPU target) and the calls their generated
 * code makes: detect the CPU's ISA features, pick the best variant this CPU
 * can run and launch it on the thread pool. Builds without MLIR/LLVM.
 *
 *===----------------------------------------------------------------------===*/

#ifndef NORMJIT_RUNTIME_AOT_H
#define NORMJIT_RUNTIME_AOT_H

#include <stdint.h>

#include "normjit/runtime/kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One compiled variant of an ahead-of-time kernel: its code for one CPU
 * target and how to launch it. */
typedef struct normjit_aot_variant_t {
  const char *target;   /**< the target it was compiled for, "x86-64-v4" */
  const char *features; /**< comma-separated ISA features it needs */
  normjit_cpu_kernel_fn fn;
  normjit_cpu_launch_t launch;
} normjit_aot_variant_t;

/** An ahead-of-time kernel as its generated code describes it. */
typedef struct normjit_aot_kernel_t {
  const char *name;
  normjit_kernel_spec_t spec;
  /** Best first: the first variant whose features this CPU has runs; the
   * last one is the most generic. */
  const normjit_aot_variant_t *variants;
  int64_t variant_count;
  /** The runtime's choice, remembered on first use; NULL before. */
  const normjit_aot_variant_t *selected;
} normjit_aot_kernel_t;

/** Whether this CPU has every feature of a comma-separated list of LLVM
 * feature names ("avx2,fma,f16c"; "" is true). Unknown names and features
 * the OS has not enabled count as missing. Names listed in the environment
 * variable NORMJIT_DISABLE_CPU_FEATURES (comma-separated) count as missing
 * too, to test or force a more generic variant. */
int normjit_cpu_has_features(const char *features);

/** Whether normjit_cpu_has_features can detect `feature` on this
 * architecture: `normjit aot` checks at run time only what it can detect. */
int normjit_cpu_feature_known(const char *feature);

/** The variant of `kernel` this CPU runs (chosen once, then remembered), or
 * NULL with NORMJIT_UNSUPPORTED's message as the last error when the CPU
 * lacks the features of every variant. */
const normjit_aot_variant_t *normjit_aot_select(normjit_aot_kernel_t *kernel);

/** The target of the variant this CPU runs, or NULL (see
 * normjit_aot_select). */
const char *normjit_aot_target(normjit_aot_kernel_t *kernel);

/** Validates `args` against the kernel's spec and runs the variant this CPU
 * runs over all rows (normjit_cpu_launch). */
normjit_status_t normjit_aot_run(normjit_aot_kernel_t *kernel,
                                 const normjit_run_args_t *args);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMJIT_RUNTIME_AOT_H */
