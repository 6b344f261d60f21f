/*===- StubMain.c - a thin program of the bundle --------------------------===//
//
// Part of normjit. bin/normjit and bin/normjit-gpu-tests of the bundle: each
// calls its entry point (NORMJIT_BUNDLE_ENTRY, set by CMakeLists.txt here)
// in ../lib/libnormjit-bundle.so, found through the RUNPATH $ORIGIN/../lib.
// Plain C: the programs need only the C library.
//
//===----------------------------------------------------------------------===*/

int NORMJIT_BUNDLE_ENTRY(int argc, char **argv);

int main(int argc, char **argv) { return NORMJIT_BUNDLE_ENTRY(argc, argv); }
