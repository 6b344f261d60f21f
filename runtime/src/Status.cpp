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
/// freed by `Reclaim` when the thread ends; a message set after that (by
/// an exit handler, or a later thread-local destructor of the host) is
/// kept until the thread's memory goes. `fixedText` is a message that
/// needs no memory: where none can be had for the message itself.
struct ErrorSlot {
  char *text;
  size_t capacity;
  const char *fixedText;
};
thread_local ErrorSlot lastError = {nullptr, 0, nullptr};
thread_local bool reclaimed = false; // Reclaim has run on this thread
const char kNoMemoryText[] =
    "out of memory (the error's message could not be kept)";

struct Reclaim {
  bool armed = false;
  ~Reclaim() {
    if (armed)
      std::free(lastError.text);
    lastError = {nullptr, 0, nullptr};
    reclaimed = true;
  }
};
thread_local Reclaim reclaim;

void storeError(const char *message, size_t size) {
  if (!reclaimed)         // (not on a destroyed object)
    reclaim.armed = true; // constructs (and registers) it on first use
  lastError.fixedText = nullptr;
  if (size + 1 > lastError.capacity) {
    size_t capacity = size + 1 < 64 ? 64 : size + 1;
    auto *text = static_cast<char *>(std::malloc(capacity));
    if (!text) { // keep what fits of the message in the old text
      if (!lastError.capacity) {
        lastError.fixedText = kNoMemoryText;
        return;
      }
      size = lastError.capacity - 1;
    } else {
      std::free(lastError.text);
      lastError = {text, capacity, nullptr};
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
  if (lastError.fixedText)
    return lastError.fixedText;
  return lastError.text ? lastError.text : "";
}

extern "C" void normjit_clear_error(void) {
  lastError.fixedText = nullptr;
  if (lastError.text)
    lastError.text[0] = '\0';
}
