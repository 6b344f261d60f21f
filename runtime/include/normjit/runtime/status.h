/*===- status.h - status codes and the last error of the C ABI ----*- C -*-===*
 *
 * Part of normjit. Every C entry point returns a normjit_status_t (0 = OK)
 * and leaves a one-line message for the calling thread; no exception crosses
 * the ABI. Builds without MLIR or LLVM.
 *
 *===----------------------------------------------------------------------===*/

#ifndef NORMJIT_RUNTIME_STATUS_H
#define NORMJIT_RUNTIME_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/** Result of every C entry point. */
typedef enum normjit_status_t {
  NORMJIT_OK = 0,
  NORMJIT_INVALID_ARGUMENT = 1, /**< bad user input: null, shape, epsilon */
  NORMJIT_UNSUPPORTED = 2,      /**< valid, but not supported (yet/here) */
  NORMJIT_COMPILE_ERROR = 3,    /**< the compiler rejected the kernel */
  NORMJIT_IO_ERROR = 4,         /**< a file could not be read or written */
  NORMJIT_DEVICE_ERROR = 5,     /**< no device, no driver, a driver error */
  NORMJIT_OUT_OF_MEMORY = 6,
  NORMJIT_INTERNAL = 7 /**< a bug in normjit: please report it */
} normjit_status_t;

/** The enumerator's name without prefix, e.g. "invalid_argument". */
const char *normjit_status_name(normjit_status_t status);

/** The message of the last failing call on this thread ("" if none). The
 * pointer stays valid until the next normjit call on this thread. */
const char *normjit_last_error(void);

/** Forgets the last error of this thread. */
void normjit_clear_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NORMJIT_RUNTIME_STATUS_H */
