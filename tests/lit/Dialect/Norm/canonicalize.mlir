// RUN: normjit-opt %s --split-input-file --canonicalize --cse | FileCheck %s
// Norm ops write memory: cleanups must neither erase nor merge them, while
// the pure ops around them still fold.

// CHECK-LABEL: func.func @not_dead
//       CHECK:   norm.add
//       CHECK:   norm.layer_norm
//       CHECK:   norm.layer_norm
//   CHECK-NOT:   arith.addi
func.func @not_dead(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %unused = arith.addi %c1, %c2 : index
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  norm.layer_norm x(%s : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  norm.layer_norm x(%s : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}
