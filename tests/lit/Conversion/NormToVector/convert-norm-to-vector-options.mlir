// RUN: normjit-opt %s --pass-pipeline="builtin.module(func.func(convert-norm-to-vector{vector-width=4 accumulators=3}))" | FileCheck %s
// RUN: normjit-opt %s --pass-pipeline="builtin.module(func.func(convert-norm-to-vector{welford=true}))" | FileCheck %s --check-prefix=WELFORD
// RUN: not normjit-opt %s --pass-pipeline="builtin.module(func.func(convert-norm-to-vector{vector-width=3}))" 2>&1 | FileCheck %s --check-prefix=BAD
// Pass options, one RUN line per variant.

// CHECK-LABEL: func.func @f
//       CHECK:   -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
// WELFORD: arith.uitofp
// BAD: vector-width must be a power of two in [1, 64] and accumulators in [1, 16]
func.func @f(%x: memref<?x96xf32>, %y: memref<?x96xf32>) {
  norm.layer_norm x(%x : memref<?x96xf32>) -> y(%y : memref<?x96xf32>) eps = 1.0e-05
  return
}
