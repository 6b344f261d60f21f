// RUN: normjit-opt %s --norm-fuse-residual-add -mlir-print-debuginfo | FileCheck %s
// The fused op remembers where both of its parts came from.

// CHECK-LABEL: func.func @locations
//       CHECK:   norm.rms_norm {{.*}} loc(#[[LOC:.+]])
//   CHECK-DAG:   #[[ADD:loc[0-9]+]] = loc("add.py":3:1)
//   CHECK-DAG:   #[[NORM:loc[0-9]+]] = loc("norm.py":7:2)
//   CHECK-DAG:   #[[LOC]] = loc(fused[#[[ADD]], #[[NORM]]])
func.func @locations(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32> loc("add.py":3:1)
  norm.rms_norm x(%s : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05 loc("norm.py":7:2)
  return
}
