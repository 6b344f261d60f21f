/*===- aot_cuda.h - the run-time side of ahead-of-time GPU kernels -*- C -*-===*
 *
 * Part of normjit. The descriptors that `normjit aot --device cuda`
 * generates for each kernel (its PTX and cubin images, one per chip, and its
 * entries and launch shape in each) and the calls its generated launchers
 * make: pick the image for a device, load it once through the runtime's
 * driver layer (cuda.h) and launch. Builds without MLIR/LLVM and without the
 * CUDA toolkit.
 *
 *===----------------------------------------------------------------------===*/

#ifndef NORMJIT_RUNTIME_AOT_CUDA_H
#define NORMJIT_RUNTIME_AOT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "normjit/runtime/kernel.h"
#include "normjit/runtime/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One image of an ahead-of-time GPU library: the PTX or the cubin of all
 * its kernels for one chip. */
typedef struct normjit_aot_cuda_image_t {
  const char *name; /**< "sm_90.cubin", "sm_80.ptx" */
  /** The chip's compute capability as major * 10 + minor: 90 for sm_90. */
  int cc;
  /** 1: a cubin, which runs on that compute capability only; 0: PTX, which
   * the driver compiles for that compute capability and newer ones. */
  int is_cubin;
  const void *data; /**< PTX text (NUL included) or cubin bytes */
  size_t size;
} normjit_aot_cuda_image_t;

/** A kernel's entry points and launch shape in one image. */
typedef struct normjit_aot_cuda_variant_t {
  const char *entry; /**< compiled with vector_width */
  /** The scalar twin (vector_width 1) for unaligned buffers; NULL when
   * vector_width is 1. */
  const char *entry_unaligned;
  int threads_per_row;
  int rows_per_block;
  int vector_width;
  int persistent;
} normjit_aot_cuda_variant_t;

/** An ahead-of-time GPU kernel as its generated code describes it. */
typedef struct normjit_aot_cuda_kernel_t {
  const char *name;
  normjit_kernel_spec_t spec;
  const normjit_aot_cuda_image_t *images; /**< the library's images */
  /** variants[i] is the kernel in images[i]. */
  const normjit_aot_cuda_variant_t *variants;
  int64_t image_count;
  /** The runtime's: the loaded functions per CUDA context; NULL before
   * first use.
   * Never freed (the modules stay loaded until the process ends). */
  void *state;
} normjit_aot_cuda_kernel_t;

/** The order in which a device of compute capability cc_major.cc_minor tries
 * `images`: a cubin for exactly its compute capability first, then the PTX
 * images of compute capability at most its own, highest first (a later one
 * is tried when the driver rejects an earlier one, e.g. a driver too old
 * for a PTX ISA version, or when it lacks the kernel's entries; out of
 * memory or a device error ends the search, and the next load tries the
 * first again). Writes up to `count` indices into `order` and returns
 * how many there are (0: no image can run on that device). */
int64_t normjit_aot_cuda_candidates(const normjit_aot_cuda_image_t *images,
                                    int64_t count, int cc_major, int cc_minor,
                                    int64_t *order);

/** Loads the image `kernel` runs on device `device` (the first candidate
 * that loads and has both entries) in the context a default-stream launch
 * from this thread uses (normjit_cuda_stream_context), once per context:
 * later calls and other threads reuse it. NORMJIT_UNSUPPORTED, naming the
 * device's chip and the library's images, when no image suits the device;
 * NORMJIT_DEVICE_ERROR without a driver; the first candidate's error when the
 * driver rejects every candidate; out of memory or a device error as it comes
 * (not remembered: the next call tries again). */
normjit_status_t normjit_aot_cuda_load(normjit_aot_cuda_kernel_t *kernel,
                                       int device);

/** The name of the image `kernel` runs on `device` ("sm_90.cubin"),
 * loading it first (normjit_aot_cuda_load), or NULL with the error. */
const char *normjit_aot_cuda_image(normjit_aot_cuda_kernel_t *kernel,
                                   int device);

/** Launches `kernel` on device `device` on `stream` (a CUstream of that
 * device; NULL: the default stream), in the stream's context, where its
 * image is loaded first (see normjit_aot_cuda_load), with device pointers in `args`, without waiting. The
 * arguments are validated as normjit_cuda_launch does; the scalar twin runs
 * on buffers not aligned for the vector width. */
normjit_status_t normjit_aot_cuda_run(normjit_aot_cuda_kernel_t *kernel,
                                      int device,
                                      const normjit_run_args_t *args,
                                      void *stream);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMJIT_RUNTIME_AOT_CUDA_H */
