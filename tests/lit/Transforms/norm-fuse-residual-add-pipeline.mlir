// RUN: normjit-opt %s --pass-pipeline="builtin.module(func.func(norm-split-residual-add,canonicalize,cse,norm-fuse-residual-add,canonicalize))" | FileCheck %s
// The passes compose with the generic cleanups in a nested pipeline.

// CHECK-LABEL: func.func @pipeline
//   CHECK-NOT:   memref.dim
//   CHECK-NOT:   norm.add
//       CHECK:   norm.rms_norm x(%{{.*}}) residual(%{{.*}}) -> y(%{{.*}}) eps
//  CHECK-NEXT:   return
func.func @pipeline(%x: memref<?x64xf32>, %r: memref<?x64xf32>, %y: memref<?x64xf32>) {
  norm.rms_norm x(%x : memref<?x64xf32>) residual(%r : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-06
  return
}
