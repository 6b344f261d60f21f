// RUN: normjit-opt --help | FileCheck %s
// RUN: normjit-opt --help | FileCheck %s --check-prefix=NOT
// normjit's passes and the generic cleanups are registered; the rest of
// MLIR's passes are not.

// CHECK-DAG: --canonicalize
// CHECK-DAG: --cse
// CHECK-DAG: --norm-fuse-residual-add
// CHECK-DAG: --norm-split-residual-add
// NOT-NOT: --convert-linalg-to-loops
// NOT-NOT: --inline
