/*===- dtype.h - element types and their conversions --------------*- C -*-===*
 *
 * Part of normjit. The element types kernels read and write (f32, f16, bf16)
 * and exact, round-to-nearest-even conversions between them and f32, as the
 * reference, the .npy I/O and AOT hosts need them. Builds without MLIR/LLVM.
 *
 *===----------------------------------------------------------------------===*/

#ifndef NORMJIT_RUNTIME_DTYPE_H
#define NORMJIT_RUNTIME_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "normjit/runtime/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Element type of a buffer. Arithmetic is always f32. */
typedef enum normjit_dtype_t {
  NORMJIT_F32 = 0,
  NORMJIT_F16 = 1,
  NORMJIT_BF16 = 2
} normjit_dtype_t;

/** Bytes per element; 0 for a value that is not a normjit_dtype_t. */
size_t normjit_dtype_size(normjit_dtype_t dtype);

/** "f32", "f16" or "bf16"; NULL for a value that is not a normjit_dtype_t. */
const char *normjit_dtype_name(normjit_dtype_t dtype);

/** Parses "f32"/"float32", "f16"/"float16", "bf16"/"bfloat16". */
normjit_status_t normjit_dtype_parse(const char *name, normjit_dtype_t *out);

/** IEEE binary16 <-> binary32, round to nearest even, NaN stays NaN. */
uint16_t normjit_f32_to_f16(float value);
float normjit_f16_to_f32(uint16_t bits);

/** bfloat16 <-> binary32, round to nearest even, NaN stays NaN. */
uint16_t normjit_f32_to_bf16(float value);
float normjit_bf16_to_f32(uint16_t bits);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMJIT_RUNTIME_DTYPE_H */
