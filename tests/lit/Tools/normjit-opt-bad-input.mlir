// RUN: not normjit-opt %s --pass-pipeline="builtin.module(func.func(norm-fuse-residual-add{bogus=1}))" 2>&1 | FileCheck %s --check-prefix=OPTION
// RUN: not normjit-opt %t.does-not-exist.mlir 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not normjit-opt %s --pass-pipeline="builtin.module(norm-fuse-residual-add)" 2>&1 | FileCheck %s --check-prefix=NESTING
// RUN: not normjit-opt %s --norm-fuse-residual-add=1 2>&1 | FileCheck %s --check-prefix=FLAG
// Bad command lines fail with a message and a non-zero exit.

// OPTION: no such option bogus
// MISSING: cannot open input file
// NESTING: restricted to 'func.func' on a PassManager intended to run on 'builtin.module', did you intend to nest?
// FLAG: no such option 1

func.func @f() {
  return
}
