// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// Structural rules of the norm ops: shapes, lengths and outputs.

func.func @cols_mismatch_y(%x: memref<?x768xf32>, %y: memref<?x1024xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects y to have 768 columns like x, got 1024}}
  norm.layer_norm x(%x : memref<?x768xf32>) -> y(%y : memref<?x1024xf32>) eps = 1.0e-05
  return
}

// -----

func.func @rows_mismatch_y(%x: memref<4x8xf32>, %y: memref<5x8xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op expects y to have 4 rows like x, got 5}}
  norm.rms_norm x(%x : memref<4x8xf32>) -> y(%y : memref<5x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @residual_mismatch(%x: memref<?x8xf32>, %r: memref<?x16xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects residual to have 8 columns like x, got 16}}
  norm.layer_norm x(%x : memref<?x8xf32>) residual(%r : memref<?x16xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @sum_mismatch(%x: memref<3x8xf32>, %r: memref<3x8xf32>, %y: memref<3x8xf32>, %s: memref<2x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects sum to have 3 rows like x, got 2}}
  norm.layer_norm x(%x : memref<3x8xf32>) residual(%r : memref<3x8xf32>) -> y(%y : memref<3x8xf32>) sum(%s : memref<2x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @gamma_length(%x: memref<?x768xf32>, %g: memref<512xf32>, %y: memref<?x768xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects gamma of length 768 (the columns), got 512}}
  norm.layer_norm x(%x : memref<?x768xf32>) gamma(%g : memref<512xf32>) -> y(%y : memref<?x768xf32>) eps = 1.0e-05
  return
}

// -----

func.func @beta_length(%x: memref<?x768xf32>, %b: memref<769xbf16>, %y: memref<?x768xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects beta of length 768 (the columns), got 769}}
  norm.layer_norm x(%x : memref<?x768xf32>) beta(%b : memref<769xbf16>) -> y(%y : memref<?x768xf32>) eps = 1.0e-05
  return
}

// -----

func.func @mean_length(%x: memref<4x8xf32>, %y: memref<4x8xf32>, %m: memref<3xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects mean of length 4 (one per row), got 3}}
  norm.layer_norm x(%x : memref<4x8xf32>) -> y(%y : memref<4x8xf32>) mean(%m : memref<3xf32>) eps = 1.0e-05
  return
}

// -----

func.func @rstd_length(%x: memref<4x8xf32>, %y: memref<4x8xf32>, %rs: memref<8xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op expects rstd of length 4 (one per row), got 8}}
  norm.rms_norm x(%x : memref<4x8xf32>) -> y(%y : memref<4x8xf32>) rstd(%rs : memref<8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @rms_mean(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %m: memref<?xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op computes no mean; remove the mean output}}
  norm.rms_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) mean(%m : memref<?xf32>) eps = 1.0e-05
  return
}

// -----

func.func @sum_without_residual(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %s: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op has a sum output but no residual operand; the sum would only copy x}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) sum(%s : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @same_y_and_sum(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects distinct buffers for y and sum}}
  norm.layer_norm x(%x : memref<?x8xf32>) residual(%r : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) sum(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @same_mean_and_rstd(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %m: memref<?xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects distinct buffers for mean and rstd}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) mean(%m : memref<?xf32>) rstd(%m : memref<?xf32>) eps = 1.0e-05
  return
}

// -----

func.func @mean_over_gamma(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %v: memref<8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects mean in a buffer other than gamma: every row reads gamma, and mean is written row by row}}
  norm.layer_norm x(%x : memref<?x8xf32>) gamma(%v : memref<8xf32>) -> y(%y : memref<?x8xf32>) mean(%v : memref<8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @rstd_over_beta(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %v: memref<8xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op expects rstd in a buffer other than beta}}
  norm.rms_norm x(%x : memref<?x8xf32>) beta(%v : memref<8xf32>) -> y(%y : memref<?x8xf32>) rstd(%v : memref<8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @stats_of_two_lengths(%x: memref<?x8xf32>, %y: memref<?x8xf32>, %m: memref<3xf32>, %r: memref<4xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects mean and rstd of one length (one per row), got 3 and 4}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) mean(%m : memref<3xf32>) rstd(%r : memref<4xf32>) eps = 1.0e-05
  return
}

// -----

// Generic form: x and y are one operand each, whatever operandSegmentSizes
// says (ODS checks only the optional groups).
func.func @generic_without_y(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op requires exactly one 'x' operand, but operandSegmentSizes gives 2}}
  "norm.layer_norm"(%x, %y) <{epsilon = 1.0 : f32, operandSegmentSizes = array<i32: 2, 0, 0, 0, 0, 0, 0, 0>}> : (memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}

// -----

func.func @generic_without_x(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op requires exactly one 'x' operand, but operandSegmentSizes gives 0}}
  "norm.rms_norm"(%x, %y) <{epsilon = 1.0 : f32, operandSegmentSizes = array<i32: 0, 1, 0, 0, 1, 0, 0, 0>}> : (memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}

// -----

func.func @generic_two_y(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op requires exactly one 'y' operand, but operandSegmentSizes gives 2}}
  "norm.rms_norm"(%x, %y, %y) <{epsilon = 1.0 : f32, operandSegmentSizes = array<i32: 1, 0, 0, 0, 2, 0, 0, 0>}> : (memref<?x8xf32>, memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}

// -----

// x's rows are dynamic, but the others' are static and differ.
func.func @rows_mismatch_behind_dynamic_x(%x: memref<?x8xf32>, %r: memref<4x8xf32>, %y: memref<5x8xf32>, %s: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op expects y to have 4 rows like residual, got 5}}
  norm.rms_norm x(%x : memref<?x8xf32>) residual(%r : memref<4x8xf32>) -> y(%y : memref<5x8xf32>) sum(%s : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @rstd_length_behind_dynamic_x(%x: memref<?x8xf32>, %y: memref<4x8xf32>, %rstd: memref<7xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op expects rstd of length 4 (one per row), got 7}}
  norm.rms_norm x(%x : memref<?x8xf32>) -> y(%y : memref<4x8xf32>) rstd(%rstd : memref<7xf32>) eps = 1.0e-05
  return
}
