//===- Status.cpp - status names and the per-thread last error ------------===//
//
// Part of normjit. Implements status.h and Error.h.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/Error.h"
#include "normjit/runtime/status.h"

#include <cstring>
#include <string>
#include <utility>

namespace {
thread_local std::string lastError;
} // namespace

normjit_status_t normjit::runtime::setError(normjit_status_t status,
                                            std::string message) {
  lastError = std::move(message);
  return status;
}

// strerror_r is the GNU variant (returns the message) or the XSI one
// (returns int and fills the buffer), depending on the C library.
[[maybe_unused]] static const char *pickMessage(int, const char *buffer) {
  return buffer;
}
[[maybe_unused]] static const char *pickMessage(const char *message,
                                                const char *) {
  return message;
}

std::string normjit::runtime::errorText(int error) {
  char buffer[256] = "";
  const char *message =
      pickMessage(strerror_r(error, buffer, sizeof buffer), buffer);
  return message && *message ? message : "error " + std::to_string(error);
}

extern "C" const char *normjit_status_name(normjit_status_t status) {
  switch (status) {
  case NORMJIT_OK:
    return "ok";
  case NORMJIT_INVALID_ARGUMENT:
    return "invalid_argument";
  case NORMJIT_UNSUPPORTED:
    return "unsupported";
  case NORMJIT_COMPILE_ERROR:
    return "compile_error";
  case NORMJIT_IO_ERROR:
    return "io_error";
  case NORMJIT_DEVICE_ERROR:
    return "device_error";
  case NORMJIT_OUT_OF_MEMORY:
    return "out_of_memory";
  case NORMJIT_INTERNAL:
    return "internal";
  }
  return "unknown_status";
}

extern "C" const char *normjit_last_error(void) { return lastError.c_str(); }

extern "C" void normjit_clear_error(void) { lastError.clear(); }
