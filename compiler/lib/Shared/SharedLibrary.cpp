//===- SharedLibrary.cpp - anchor of libnormjit.so ------------------------===//
//
// Part of normjit. libnormjit.so is built from the JIT and runtime archives
// (whole-archive); CMake needs one source file of its own for it.
//
//===----------------------------------------------------------------------===//

#include "normjit/normjit.h"

/// The library's version, for hosts that dlopen it.
extern "C" const char *normjit_version(void) { return NORMJIT_VERSION_STRING; }
