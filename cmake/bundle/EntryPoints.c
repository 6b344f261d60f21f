/*===- EntryPoints.c - the entry points of libnormjit-bundle.so -----------===//
//
// Part of normjit. libnormjit-bundle.so holds the normjit CLI (its objects,
// main included) with MLIR and LLVM, and exports only these entry points;
// the bundle's bin/normjit is a thin program that calls one of them
// (StubMain.c). This file is C because C, unlike C++, may call main.
//
//===----------------------------------------------------------------------===*/

/* The CLI's main (tools/normjit/normjit.cpp). The version script makes it a
   local symbol of the library, so this call cannot reach the program's own
   main. */
int main(int argc, char **argv);

__attribute__((visibility("default"))) int
normjit_bundle_cli_main(int argc, char **argv) {
  return main(argc, argv);
}
