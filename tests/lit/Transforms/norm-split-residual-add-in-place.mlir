// RUN: normjit-opt %s --norm-split-residual-add | FileCheck %s
// In-place forms split into in-place adds: the stream is both residual and
// sum, y overwrites x.

// CHECK-LABEL: func.func @in_place
//  CHECK-SAME:   (%[[X:[^:]+]]: {{[^,]+}}, %[[H:[^:]+]]: {{[^)]+}})
//       CHECK:   norm.add %[[X]], %[[H]] -> %[[H]]
//  CHECK-NEXT:   norm.rms_norm x(%[[H]] : memref<?x128xf16>) -> y(%[[X]] : memref<?x128xf16>) eps
//   CHECK-NOT:   memref.alloc
func.func @in_place(%x: memref<?x128xf16>, %h: memref<?x128xf16>) {
  norm.rms_norm x(%x : memref<?x128xf16>) residual(%h : memref<?x128xf16>) -> y(%x : memref<?x128xf16>) sum(%h : memref<?x128xf16>) eps = 1.0e-06
  return
}
