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

// -----

// Rows kept in shared memory must fit 47 KiB (of 48 KiB static shared
// memory; the reduction slots take the rest).
func.func @rows_do_not_fit_shared(%x: memref<?x4096xf32>, %y: memref<?x4096xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config keeps rows in shared memory: 3 rows of 4096 f32 columns (padded to whole vectors) take 49152 bytes, more than the 48128 bytes a block may keep rows in}}
  norm.rms_norm x(%x : memref<?x4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = <gpu, threads_per_row = 256, rows_per_block = 3, elements_per_thread = 8, row_storage = shared>
  return
}

// -----

// Rows re-read from global memory fit any column count.
func.func @global_any_row(%x: memref<?x1000000xf32>, %y: memref<?x1000000xf32>) {
  norm.rms_norm x(%x : memref<?x1000000xf32>) -> y(%y : memref<?x1000000xf32>) eps = 1.0e-05
      config = <gpu, threads_per_row = 1024, elements_per_thread = 8, row_storage = global>
  return
}
