// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// A GPU config must fit the op it is attached to.

func.func @vector_too_wide_f32(%x: memref<?x1024xf32>, %y: memref<?x1024xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config vector_width = 8 of 32-bit elements exceeds 128-bit vector accesses}}
  norm.rms_norm x(%x : memref<?x1024xf32>) -> y(%y : memref<?x1024xf32>) eps = 1.0e-05 config = <gpu, vector_width = 8>
  return
}

// -----

// The widest element type decides: a bf16 input with an f32 gamma.
func.func @vector_too_wide_mixed(%x: memref<?x1024xbf16>, %g: memref<1024xf32>, %y: memref<?x1024xbf16>) {
  // expected-error @+1 {{'norm.layer_norm' op config vector_width = 8 of 32-bit elements exceeds 128-bit vector accesses}}
  norm.layer_norm x(%x : memref<?x1024xbf16>) gamma(%g : memref<1024xf32>) -> y(%y : memref<?x1024xbf16>) eps = 1.0e-05 config = <gpu, vector_width = 8>
  return
}

// -----

func.func @row_does_not_fit_registers(%x: memref<?x4096xbf16>, %y: memref<?x4096xbf16>) {
  // expected-error @+1 {{'norm.layer_norm' op config keeps the row in registers, but threads_per_row * elements_per_thread = 2048 is less than the 4096 columns}}
  norm.layer_norm x(%x : memref<?x4096xbf16>) -> y(%y : memref<?x4096xbf16>) eps = 1.0e-05
      config = <gpu, threads_per_row = 256, elements_per_thread = 8, row_storage = registers>
  return
}
