//===- Error.h - setting the C ABI's last error from C++ --------*- C++ -*-===//
//
// Part of normjit. Internal helpers of the runtime for reporting a status
// with a message, and NORMJIT_RETURN_IF_ERROR to propagate one.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_RUNTIME_ERROR_H
#define NORMJIT_RUNTIME_ERROR_H

#include "normjit/runtime/status.h"

#include <string>

namespace normjit::runtime {

/// Records `message` as this thread's last error and returns `status`, so a
/// failing entry point reads `return setError(NORMJIT_..., "why");`.
normjit_status_t setError(normjit_status_t status, std::string message);

/// The C library's text for `errno` value `error` (thread-safe strerror).
std::string errorText(int error);

} // namespace normjit::runtime

/// Returns from the enclosing function when `expr` is not NORMJIT_OK.
#define NORMJIT_RETURN_IF_ERROR(expr)                                          \
  do {                                                                         \
    normjit_status_t normjitStatus_ = (expr);                                  \
    if (normjitStatus_ != NORMJIT_OK)                                          \
      return normjitStatus_;                                                   \
  } while (0)

#endif // NORMJIT_RUNTIME_ERROR_H
