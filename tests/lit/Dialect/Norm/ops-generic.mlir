// RUN: normjit-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC
// RUN: normjit-opt %s --mlir-print-op-generic | normjit-opt | FileCheck %s
// The generic form round-trips to the same custom form; optional operands
// are tracked by operandSegmentSizes.

//       GENERIC:   "norm.add"(%{{.*}}, %{{.*}}, %{{.*}}) : (memref<?x16xf32>, memref<?x16xf32>, memref<?x16xf32>) -> ()
//       GENERIC:   "norm.rms_norm"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{config = #norm.config<cpu, vector_width = 4>, epsilon = 9.99999997E-7 : f32, operandSegmentSizes = array<i32: 1, 1, 1, 0, 1, 1, 0, 0>}>
//       GENERIC:   "norm.layer_norm"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 0, 0, 0, 1, 0, 1, 1>}>

// CHECK-LABEL: func.func @generic
//       CHECK:   norm.add
//       CHECK:   norm.rms_norm x(%{{.*}}) residual(%{{.*}}) gamma(%{{.*}}) -> y(%{{.*}}) sum(%{{.*}}) eps = 9.99999997E-7 config = <cpu, vector_width = 4>
//       CHECK:   norm.layer_norm x(%{{.*}}) -> y(%{{.*}}) mean(%{{.*}}) rstd(%{{.*}}) eps = 9.99999974E-6
func.func @generic(%x: memref<?x16xf32>, %r: memref<?x16xf32>, %g: memref<16xf32>, %y: memref<?x16xf32>, %s: memref<?x16xf32>, %m: memref<?xf32>, %rs: memref<?xf32>) {
  norm.add %x, %r -> %s : memref<?x16xf32>, memref<?x16xf32> -> memref<?x16xf32>
  norm.rms_norm x(%x : memref<?x16xf32>) residual(%r : memref<?x16xf32>) gamma(%g : memref<16xf32>) -> y(%y : memref<?x16xf32>) sum(%s : memref<?x16xf32>) eps = 1.0e-06 config = <cpu, vector_width = 4>
  norm.layer_norm x(%x : memref<?x16xf32>) -> y(%y : memref<?x16xf32>) mean(%m : memref<?xf32>) rstd(%rs : memref<?xf32>) eps = 1.0e-05
  return
}

// Generic input parses too.
// CHECK-LABEL: func.func @from_generic
//       CHECK:   norm.layer_norm x(%{{.*}} : memref<?x16xf32>) -> y(%{{.*}} : memref<?x16xf32>) eps = 1.000000e-01
func.func @from_generic(%x: memref<?x16xf32>, %y: memref<?x16xf32>) {
  "norm.layer_norm"(%x, %y) <{epsilon = 0.1 : f32, operandSegmentSizes = array<i32: 1, 0, 0, 0, 1, 0, 0, 0>}> : (memref<?x16xf32>, memref<?x16xf32>) -> ()
  return
}
