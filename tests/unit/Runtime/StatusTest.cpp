//===- StatusTest.cpp - status codes and the last error -------------------===//
//
// Part of normjit. Tests the C ABI's status names and per-thread messages.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/Error.h"
#include "normjit/runtime/status.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

using normjit::runtime::setError;

TEST(StatusTest, NamesEveryStatus) {
  EXPECT_STREQ(normjit_status_name(NORMJIT_OK), "ok");
  EXPECT_STREQ(normjit_status_name(NORMJIT_INVALID_ARGUMENT),
               "invalid_argument");
  EXPECT_STREQ(normjit_status_name(NORMJIT_DEVICE_ERROR), "device_error");
  EXPECT_STREQ(normjit_status_name(NORMJIT_INTERNAL), "internal");
  EXPECT_STREQ(normjit_status_name(static_cast<normjit_status_t>(99)),
               "unknown_status");
}

TEST(StatusTest, LastErrorIsPerThread) {
  normjit_clear_error();
  EXPECT_EQ(setError(NORMJIT_IO_ERROR, "cannot open x.npy"), NORMJIT_IO_ERROR);
  std::string other;
  std::thread([&] {
    other = normjit_last_error();
    setError(NORMJIT_UNSUPPORTED, "other thread");
  }).join();
  EXPECT_EQ(other, "");
  EXPECT_STREQ(normjit_last_error(), "cannot open x.npy");
  normjit_clear_error();
  EXPECT_STREQ(normjit_last_error(), "");
}

namespace {
normjit_status_t failsThenNotReached(bool &reached) {
  NORMJIT_RETURN_IF_ERROR(setError(NORMJIT_INVALID_ARGUMENT, "bad"));
  reached = true;
  return NORMJIT_OK;
}
} // namespace

TEST(StatusTest, ReturnIfErrorPropagates) {
  bool reached = false;
  EXPECT_EQ(failsThenNotReached(reached), NORMJIT_INVALID_ARGUMENT);
  EXPECT_FALSE(reached);
}
