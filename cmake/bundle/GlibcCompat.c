/*===- GlibcCompat.c - glibc 2.36 functions for older glibc ---------------===//
//
// Part of normjit. The static libstdc++ (std::random_device) and LLVMSupport
// (sys::Process::GetRandomNumber) of Debian 12 call arc4random, new in glibc
// 2.36; defined here (a local symbol of libnormjit-bundle.so, like all but
// the entry points), the bundle also runs on glibc 2.35 (Ubuntu 22.04).
//
//===----------------------------------------------------------------------===*/

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/types.h>

/* As glibc's: the kernel's CSPRNG (getrandom, glibc 2.25); a failure other
   than an interruption ends the process. */
uint32_t arc4random(void) {
  uint32_t value;
  for (;;) {
    ssize_t n = getrandom(&value, sizeof value, 0);
    if (n == (ssize_t)sizeof value)
      return value;
    if (n < 0 && errno != EINTR)
      abort();
  }
}
