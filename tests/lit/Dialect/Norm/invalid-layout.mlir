// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// Buffer layouts: static columns, unit stride along a row, rows that do not
// overlap, contiguous vectors.

func.func @dynamic_cols(%x: memref<?x?xf32>, %y: memref<?x?xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a static column count for x, got 'memref<?x?xf32>'}}
  norm.layer_norm x(%x : memref<?x?xf32>) -> y(%y : memref<?x?xf32>) eps = 1.0e-05
  return
}

// -----

func.func @zero_cols(%x: memref<?x0xf32>, %y: memref<?x0xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op expects at least one column in x}}
  norm.rms_norm x(%x : memref<?x0xf32>) -> y(%y : memref<?x0xf32>) eps = 1.0e-05
  return
}

// -----

func.func @column_major(%x: memref<?x8xf32, strided<[1, ?]>>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects unit stride along the rows of x, got stride ? (dynamic)}}
  norm.layer_norm x(%x : memref<?x8xf32, strided<[1, ?]>>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @inner_stride_two(%x: memref<?x8xf32>, %y: memref<?x8xf32, strided<[16, 2]>>) {
  // expected-error @+1 {{'norm.layer_norm' op expects unit stride along the rows of y, got stride 2}}
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32, strided<[16, 2]>>) eps = 1.0e-05
  return
}

// -----

func.func @overlapping_rows(%x: memref<?x8xf32, strided<[4, 1]>>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects the row stride of x (4) to be at least its column count (8)}}
  norm.layer_norm x(%x : memref<?x8xf32, strided<[4, 1]>>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @not_strided(%x: memref<?x8xf32, affine_map<(d0, d1) -> (d1, d0)>>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a strided layout for x}}
  norm.layer_norm x(%x : memref<?x8xf32, affine_map<(d0, d1) -> (d1, d0)>>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @strided_gamma(%x: memref<?x8xf32>, %g: memref<8xf32, strided<[2]>>, %y: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op expects a contiguous gamma, got 'memref<8xf32, strided<[2]>>'}}
  norm.layer_norm x(%x : memref<?x8xf32>) gamma(%g : memref<8xf32, strided<[2]>>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

func.func @add_strided(%a: memref<?x8xf32, strided<[8, 3]>>, %b: memref<?x8xf32>, %s: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.add' op expects unit stride along the rows of lhs, got stride 3}}
  norm.add %a, %b -> %s : memref<?x8xf32, strided<[8, 3]>>, memref<?x8xf32> -> memref<?x8xf32>
  return
}
