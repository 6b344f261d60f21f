// RUN: normjit-opt %s --split-input-file --norm-fuse-residual-add | FileCheck %s
// Cases where fusing would change what the program computes: left alone.

// A write between the add and the norm (it could touch the sum's inputs).
// CHECK-LABEL: func.func @write_in_between
//       CHECK:   norm.add
//       CHECK:   memref.copy
//       CHECK:   norm.layer_norm x(%{{.*}}) -> y
func.func @write_in_between(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>, %z: memref<?x8xf32>) {
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  memref.copy %z, %x : memref<?x8xf32> to memref<?x8xf32>
  norm.layer_norm x(%s : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

// A copy in between reads the sum: moving the write below it would make it
// read stale data.
// CHECK-LABEL: func.func @reader_in_between
//       CHECK:   norm.add
//       CHECK:   memref.copy
//       CHECK:   norm.rms_norm x(%{{.*}}) -> y(%{{.*}}) eps
func.func @reader_in_between(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>, %z: memref<?x8xf32>) {
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  memref.copy %s, %z : memref<?x8xf32> to memref<?x8xf32>
  norm.rms_norm x(%s : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

// The norm already has a residual.
// CHECK-LABEL: func.func @already_fused
//       CHECK:   norm.add
//       CHECK:   norm.layer_norm x(%{{.*}}) residual(%{{.*}}) -> y
func.func @already_fused(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  norm.layer_norm x(%s : memref<?x8xf32>) residual(%r : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

// The add is in another block.
// CHECK-LABEL: func.func @other_block
//       CHECK:   norm.add
//       CHECK:   cf.br
//       CHECK:   norm.layer_norm x(%{{.*}}) -> y
func.func @other_block(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  cf.br ^next
^next:
  norm.layer_norm x(%s : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

// The norm writes y into the sum buffer, which must be kept: two outputs
// would share one buffer.
// CHECK-LABEL: func.func @y_overwrites_kept_sum
//       CHECK:   norm.add
//       CHECK:   norm.layer_norm x(%[[S:.+]] : memref<?x8xf32>) -> y(%[[S]] : memref<?x8xf32>)
func.func @y_overwrites_kept_sum(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>) {
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  norm.layer_norm x(%s : memref<?x8xf32>) -> y(%s : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

// The output y is a view of a buffer the add reads, but not the same view:
// the fused kernel could overwrite rows it has not read yet.
// CHECK-LABEL: func.func @partial_alias
//       CHECK:   norm.add
//       CHECK:   norm.rms_norm x(%{{.*}}) -> y
func.func @partial_alias(%big: memref<16x8xf32>, %r: memref<8x8xf32>, %s: memref<8x8xf32>) {
  %a = memref.subview %big[0, 0] [8, 8] [1, 1] : memref<16x8xf32> to memref<8x8xf32, strided<[8, 1]>>
  %y = memref.subview %big[4, 0] [8, 8] [1, 1] : memref<16x8xf32> to memref<8x8xf32, strided<[8, 1], offset: 32>>
  norm.add %a, %r -> %s : memref<8x8xf32, strided<[8, 1]>>, memref<8x8xf32> -> memref<8x8xf32>
  norm.rms_norm x(%s : memref<8x8xf32>) -> y(%y : memref<8x8xf32, strided<[8, 1], offset: 32>>) eps = 1.0e-05
  return
}

// -----

// The add's sum is not the norm's x.
// CHECK-LABEL: func.func @unrelated
//       CHECK:   norm.add
//       CHECK:   norm.rms_norm x(%{{.*}}) -> y
func.func @unrelated(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  norm.rms_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}
