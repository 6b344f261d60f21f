// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// Element types and ranks ODS checks: f32/f16/bf16 buffers, f32 statistics.

func.func @f64_input(%x: memref<?x8xf64>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op operand #0 must be 2D memref of 32-bit float or 16-bit float or bfloat16 type values, but got 'memref<?x8xf64>'}}
  norm.layer_norm x(%x : memref<?x8xf64>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @int_output(%x: memref<?x8xf32>, %y: memref<?x8xi32>) {
  // expected-error @+1 {{'norm.rms_norm' op operand #1 must be 2D memref of 32-bit float or 16-bit float or bfloat16 type values, but got 'memref<?x8xi32>'}}
  norm.rms_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xi32>) eps = 1.0e-05
  return
}

// -----

func.func @rank3(%x: memref<2x?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op operand #0 must be 2D memref}}
  norm.layer_norm x(%x : memref<2x?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @gamma_rank2(%x: memref<?x8xf32>, %g: memref<1x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op operand #1 must be 1D memref of 32-bit float or 16-bit float or bfloat16 type values, but got 'memref<1x8xf32>'}}
  norm.layer_norm x(%x : memref<?x8xf32>) gamma(%g : memref<1x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @bf16_rstd(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %rs: memref<?xbf16>) {
  // expected-error @+1 {{'norm.rms_norm' op operand #2 must be 1D memref of 32-bit float values, but got 'memref<?xbf16>'}}
  norm.rms_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) rstd(%rs : memref<?xbf16>) eps = 1.0e-05
  return
}

// -----

func.func @tensor_input(%x: tensor<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{custom op 'norm.layer_norm' invalid kind of type specified: expected builtin.memref, but found 'tensor<?x8xf32>'}}
  norm.layer_norm x(%x : tensor<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @add_f64(%a: memref<?x8xf64>, %b: memref<?x8xf32>, %s: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.add' op operand #0 must be 2D memref of 32-bit float or 16-bit float or bfloat16 type values, but got 'memref<?x8xf64>'}}
  norm.add %a, %b -> %s : memref<?x8xf64>, memref<?x8xf32> -> memref<?x8xf32>
  return
}
