// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// mean/rstd outputs: contiguous, f32, one entry per row.

func.func @strided_mean(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %m: memref<?xf32, strided<[2]>>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a contiguous mean, got 'memref<?xf32, strided<[2]>>'}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) mean(%m : memref<?xf32, strided<[2]>>) eps = 1.0e-05
  return
}

// -----

func.func @f16_mean(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %m: memref<?xf16>) {
  // expected-error @+1 {{'norm.layer_norm' op operand #2 must be 1D memref of 32-bit float values, but got 'memref<?xf16>'}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) mean(%m : memref<?xf16>) eps = 1.0e-05
  return
}

// -----

// A static statistics buffer for a dynamic row count is accepted (checked
// at run time later); a mismatch of two static counts is not.
func.func @static_rstd_dynamic_rows(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %rs: memref<4xf32>, %x2: memref<2x8xf32>) {
  norm.rms_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) rstd(%rs : memref<4xf32>) eps = 1.0e-05
  // expected-error @+1 {{'norm.rms_norm' op expects rstd of length 2 (one per row), got 4}}
  norm.rms_norm x(%x2 : memref<2x8xf32>) -> y(%y : memref<?x8xf32>) rstd(%rs : memref<4xf32>) eps = 1.0e-05
  return
}
