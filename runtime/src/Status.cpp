//===- Status.cpp - status names and the per-thread last error ------------===//
//
// Part of normjit. Implements status.h and Error.h.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/Error.h"
#include "normjit/runtime/status.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace {
/// The thread's last error. Trivially destructible on purpose: the C
/// library destroys thread-local objects before it runs atexit handlers
/// (and a host's later thread-local destructors may call in too), so a
/// std::string here would be used after its destructor. The text is
/// freed by `Reclaim` when the thread ends; a message set after that (at
/// process exit) is kept until the process is gone.
struct ErrorSlot {
  char *text;
  size_t capacity;
};
thread_local ErrorSlot lastError = {nullptr, 0};
char emptyText[1] = "";

struct Reclaim {
  bool armed = false;
  ~Reclaim() {
    if (!armed)
      return;
    std::free(lastError.text);
    lastError = {nullptr, 0};
  }
};
thread_local Reclaim reclaim;

void storeError(const char *message, size_t size) {
  reclaim.armed = true; // constructs (and registers) it on first use
  if (size + 1 > lastError.capacity) {
    size_t capacity = size + 1 < 64 ? 64 : size + 1;
    auto *text = static_cast<char *>(std::malloc(capacity));
    if (!text) { // keep what fits of the message in the old text
      if (!lastError.capacity)
        return;
      size = lastError.capacity - 1;
    } else {
      std::free(lastError.text);
      lastError = {text, capacity};
    }
  }
  std::memcpy(lastError.text, message, size);
  lastError.text[size] = '\0';
}
} // namespace

normjit_status_t normjit::runtime::setError(normjit_status_t status,
                                            std::string message) {
  storeError(message.data(), message.size());
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

extern "C" const char *normjit_last_error(void) {
  return lastError.text ? lastError.text : emptyText;
}

extern "C" void normjit_clear_error(void) {
  if (lastError.text)
    lastError.text[0] = '\0';
}
