// RUN: normjit-opt %s --split-input-file --norm-fuse-residual-add | FileCheck %s
// Mixed element types carry over unchanged: x and residual keep their own
// types, and the kept sum keeps its rounding type.

// CHECK-LABEL: func.func @mixed
//       CHECK:   norm.layer_norm x(%{{.*}} : memref<?x96xbf16>) residual(%{{.*}} : memref<?x96xf16>) -> y(%{{.*}} : memref<?x96xf32>) sum(%{{.*}} : memref<?x96xf16>)
func.func @mixed(%a: memref<?x96xbf16>, %b: memref<?x96xf16>, %s: memref<?x96xf16>, %y: memref<?x96xf32>) {
  norm.add %a, %b -> %s : memref<?x96xbf16>, memref<?x96xf16> -> memref<?x96xf16>
  norm.layer_norm x(%s : memref<?x96xf16>) -> y(%y : memref<?x96xf32>) eps = 1.0e-05
  return
}

// -----

// An alloca'd f32 temporary is dropped like an alloc'd one.
// CHECK-LABEL: func.func @alloca_temp
//   CHECK-NOT:   memref.alloca
//       CHECK:   norm.rms_norm x(%{{.*}} : memref<2x96xbf16>) residual(%{{.*}} : memref<2x96xbf16>) -> y(%{{.*}}) eps = 9.99999997E-7{{$}}
func.func @alloca_temp(%a: memref<2x96xbf16>, %b: memref<2x96xbf16>, %y: memref<2x96xbf16>) {
  %t = memref.alloca() : memref<2x96xf32>
  norm.add %a, %b -> %t : memref<2x96xbf16>, memref<2x96xbf16> -> memref<2x96xf32>
  norm.rms_norm x(%t : memref<2x96xf32>) -> y(%y : memref<2x96xbf16>) eps = 1.0e-06
  return
}
