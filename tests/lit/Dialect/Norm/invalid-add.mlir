// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// norm.add follows the row-buffer rules of the norm ops.

func.func @add_dynamic_cols(%a: memref<?x?xf32>, %b: memref<?x?xf32>, %s: memref<?x?xf32>) {
  // expected-error @+1 {{'norm.add' op expects a static column count for lhs, got 'memref<?x?xf32>'}}
  norm.add %a, %b -> %s : memref<?x?xf32>, memref<?x?xf32> -> memref<?x?xf32>
  return
}

// -----

func.func @add_sum_cols(%a: memref<?x8xf32>, %b: memref<?x8xf32>, %s: memref<?x16xbf16>) {
  // expected-error @+1 {{'norm.add' op expects sum to have 8 columns like lhs, got 16}}
  norm.add %a, %b -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x16xbf16>
  return
}

// -----

func.func @add_overlapping_rows(%a: memref<?x8xf32>, %b: memref<?x8xf32>, %s: memref<?x8xf32, strided<[7, 1]>>) {
  // expected-error @+1 {{'norm.add' op expects the row stride of sum (7) to be at least its column count (8)}}
  norm.add %a, %b -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32, strided<[7, 1]>>
  return
}

// -----

func.func @add_rank1(%a: memref<8xf32>, %b: memref<?x8xf32>, %s: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.add' op operand #0 must be 2D memref of 32-bit float or 16-bit float or bfloat16 type values, but got 'memref<8xf32>'}}
  norm.add %a, %b -> %s : memref<8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  return
}

// -----

func.func @add_mismatch(%a: memref<?x8xf32>, %b: memref<?x9xf32>, %s: memref<?x8xf32>) {
  // expected-error @+1 {{'norm.add' op expects rhs to have 8 columns like lhs, got 9}}
  norm.add %a, %b -> %s : memref<?x8xf32>, memref<?x9xf32> -> memref<?x8xf32>
  return
}

// -----

func.func @add_rows(%a: memref<2x8xf32>, %b: memref<2x8xf32>, %s: memref<3x8xf32>) {
  // expected-error @+1 {{'norm.add' op expects sum to have 2 rows like lhs, got 3}}
  norm.add %a, %b -> %s : memref<2x8xf32>, memref<2x8xf32> -> memref<3x8xf32>
  return
}

// -----

func.func @add_rows_behind_dynamic_lhs(%a: memref<?x8xf32>, %b: memref<4x8xf32>, %s: memref<5x8xf32>) {
  // expected-error @+1 {{'norm.add' op expects sum to have 4 rows like rhs, got 5}}
  norm.add %a, %b -> %s : memref<?x8xf32>, memref<4x8xf32> -> memref<5x8xf32>
  return
}
