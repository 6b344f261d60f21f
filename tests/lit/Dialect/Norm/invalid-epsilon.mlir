// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// epsilon must be a positive, finite f32.

func.func @zero(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a positive, finite epsilon, got 0}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 0.0
  return
}

// -----

func.func @negative(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op expects a positive, finite epsilon, got -1.000000e-05}}
  norm.rms_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = -1.0e-05
  return
}

// -----

func.func @nan(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a positive, finite epsilon, got nan}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 0x7FC00000
  return
}

// -----

func.func @inf(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a positive, finite epsilon, got INF}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 0x7F800000
  return
}

// -----

func.func @underflows_to_zero(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a positive, finite epsilon, got 0}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-50
  return
}

// -----

func.func @generic_negative(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a positive, finite epsilon, got -2}}
  "norm.layer_norm"(%x, %y) <{epsilon = -2.0 : f32, operandSegmentSizes = array<i32: 1, 0, 0, 0, 1, 0, 0, 0>}> : (memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}
