//===- GpuTestsEntryPoint.cpp - the GPU tests' entry point in the bundle --===//
//
// Part of normjit. In the bundle the GPU GoogleTest binary's objects live in
// libnormjit-bundle.so next to the CLI's, whose main is the library's one
// main; this entry point takes the place of gtest_main for bin/
// normjit-gpu-tests (StubMain.c).
//
//===----------------------------------------------------------------------===//

#include <gtest/gtest.h>

extern "C" __attribute__((visibility("default"))) int
normjit_bundle_gpu_tests_main(int argc, char **argv) {
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
