// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// Malformed op text: truncated ops, missing clauses, wrong types, unknown
// attributes. Each is a located diagnostic, never a crash.

func.func @truncated(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>)
  // expected-error @+1 {{custom op 'norm.layer_norm' expected 'eps'}}
  return
}

// -----

func.func @missing_y(%x: memref<?x8xf32>) {
  // expected-error @+1 {{expected '->'}}
  norm.rms_norm x(%x : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @missing_type(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{expected ':'}}
  norm.layer_norm x(%x) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @type_disagrees_with_value(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+2 {{use of value '%x' expects different type than prior uses: 'memref<?x8xf16>' vs 'memref<?x8xf32>'}}
  // expected-note @-2 {{prior use here}}
  norm.layer_norm x(%x : memref<?x8xf16>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @undefined_value(%x: memref<?x8xf32>) {
  // expected-error @+1 {{use of undeclared SSA value name}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%nope : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @clause_out_of_order(%x: memref<?x8xf32>, %g: memref<8xf32>, %b: memref<8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{expected '->'}}
  norm.layer_norm x(%x : memref<?x8xf32>) beta(%b : memref<8xf32>) gamma(%g : memref<8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @unknown_clause(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{expected '->'}}
  norm.layer_norm x(%x : memref<?x8xf32>) bias(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @integer_eps(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{custom op 'norm.layer_norm' invalid kind of attribute specified}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = "small"
  return
}

// -----

func.func @config_not_a_config(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{expected '<'}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05 config = 8
  return
}

// -----

func.func @unknown_op(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{custom op 'norm.group_norm' is unknown}}
  norm.group_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @generic_missing_segments(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op operand count (2) does not match with the total size (0) specified in attribute 'operandSegmentSizes'}}
  "norm.layer_norm"(%x, %y) <{epsilon = 1.0e-05 : f32}> : (memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}

// -----

func.func @generic_missing_eps(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op requires attribute 'epsilon'}}
  "norm.layer_norm"(%x, %y) <{operandSegmentSizes = array<i32: 1, 0, 0, 0, 1, 0, 0, 0>}> : (memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}

// -----

func.func @generic_f64_eps(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op attribute 'epsilon' failed to satisfy constraint: 32-bit float attribute}}
  "norm.layer_norm"(%x, %y) <{epsilon = 1.0e-05 : f64, operandSegmentSizes = array<i32: 1, 0, 0, 0, 1, 0, 0, 0>}> : (memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}

// -----

func.func @generic_bad_config(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{Invalid attribute `config` in property conversion: "fast"}}
  "norm.layer_norm"(%x, %y) <{config = "fast", epsilon = 1.0e-05 : f32, operandSegmentSizes = array<i32: 1, 0, 0, 0, 1, 0, 0, 0>}> : (memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}

// -----

func.func @generic_wrong_segments(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op operand count (2) does not match with the total size (3) specified in attribute 'operandSegmentSizes'}}
  "norm.layer_norm"(%x, %y) <{epsilon = 1.0e-05 : f32, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>}> : (memref<?x8xf32>, memref<?x8xf32>) -> ()
  return
}

// -----

func.func @add_missing_arrow(%a: memref<?x8xf32>, %b: memref<?x8xf32>) {
  // expected-error @+1 {{expected '->'}}
  norm.add %a, %b : memref<?x8xf32>, memref<?x8xf32>
  return
}

// -----

func.func @truncated_config(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05 config = <cpu, vector_width =
  // expected-error @+1 {{expected an integer for 'vector_width'}}
  return
}
