// RUN: normjit-opt %s --split-input-file --norm-split-residual-add | FileCheck %s
// The fused residual form becomes norm.add followed by the norm op.

// With a sum output, the add writes it and the norm reads it.
// CHECK-LABEL: func.func @with_sum
//  CHECK-SAME:   (%[[X:[^:]+]]: {{[^,]+}}, %[[R:[^:]+]]: {{[^,]+}}, %[[G:[^:]+]]: {{[^,]+}}, %[[Y:[^:]+]]: {{[^,]+}}, %[[S:[^:]+]]: {{[^,]+}}, %[[RS:[^:]+]]: {{[^)]+}})
//       CHECK:   norm.add %[[X]], %[[R]] -> %[[S]] : memref<?x4096xbf16>, memref<?x4096xbf16> -> memref<?x4096xbf16>
//  CHECK-NEXT:   norm.rms_norm x(%[[S]] : memref<?x4096xbf16>) gamma(%[[G]] : memref<4096xbf16>) -> y(%[[Y]] : memref<?x4096xbf16>) rstd(%[[RS]] : memref<?xf32>) eps = 9.99999997E-7 config = <cpu, vector_width = 32> {tag}
//   CHECK-NOT:   memref.alloc
func.func @with_sum(%x: memref<?x4096xbf16>, %r: memref<?x4096xbf16>, %g: memref<4096xbf16>, %y: memref<?x4096xbf16>, %s: memref<?x4096xbf16>, %rs: memref<?xf32>) {
  norm.rms_norm x(%x : memref<?x4096xbf16>) residual(%r : memref<?x4096xbf16>) gamma(%g : memref<4096xbf16>) -> y(%y : memref<?x4096xbf16>) sum(%s : memref<?x4096xbf16>) rstd(%rs : memref<?xf32>) eps = 1.0e-06 config = #norm.config<cpu, vector_width = 32> {tag}
  return
}

// -----

// Without a sum output: an f32 temporary with the rows of x, freed after.
// CHECK-LABEL: func.func @without_sum
//  CHECK-SAME:   (%[[X:[a-z0-9]+]]: memref<?x768xf16, strided<[?, 1], offset: ?>>, %[[R:[a-z0-9]+]]: memref<?x768xf16>, %[[Y:[a-z0-9]+]]: memref<?x768xf16>)
//       CHECK:   %[[C0:.+]] = arith.constant 0 : index
//       CHECK:   %[[N:.+]] = memref.dim %[[X]], %[[C0]] : memref<?x768xf16, strided<[?, 1], offset: ?>>
//       CHECK:   %[[T:.+]] = memref.alloc(%[[N]]) : memref<?x768xf32>
//       CHECK:   norm.add %[[X]], %[[R]] -> %[[T]] : memref<?x768xf16, strided<[?, 1], offset: ?>>, memref<?x768xf16> -> memref<?x768xf32>
//       CHECK:   norm.layer_norm x(%[[T]] : memref<?x768xf32>) -> y(%[[Y]] : memref<?x768xf16>) eps
//       CHECK:   memref.dealloc %[[T]] : memref<?x768xf32>
func.func @without_sum(%x: memref<?x768xf16, strided<[?, 1], offset: ?>>, %r: memref<?x768xf16>, %y: memref<?x768xf16>) {
  norm.layer_norm x(%x : memref<?x768xf16, strided<[?, 1], offset: ?>>) residual(%r : memref<?x768xf16>) -> y(%y : memref<?x768xf16>) eps = 1.0e-05
  return
}

// -----

// Static rows: a static temporary.
// CHECK-LABEL: func.func @static_rows
//       CHECK:   %[[T:.+]] = memref.alloc() : memref<3x5xf32>
//       CHECK:   norm.add %{{.*}}, %{{.*}} -> %[[T]]
//       CHECK:   norm.layer_norm x(%[[T]] : memref<3x5xf32>) -> y(%{{.*}}) mean(%{{.*}}) rstd(%{{.*}})
//       CHECK:   memref.dealloc %[[T]]
func.func @static_rows(%x: memref<3x5xf32>, %r: memref<3x5xf32>, %y: memref<3x5xf32>, %m: memref<3xf32>, %rs: memref<3xf32>) {
  norm.layer_norm x(%x : memref<3x5xf32>) residual(%r : memref<3x5xf32>) -> y(%y : memref<3x5xf32>) mean(%m : memref<3xf32>) rstd(%rs : memref<3xf32>) eps = 1.0e-05
  return
}

// -----

// Norm ops without a residual are left alone.
// CHECK-LABEL: func.func @nothing_to_split
//   CHECK-NOT:   norm.add
//       CHECK:   norm.rms_norm
func.func @nothing_to_split(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.rms_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  return
}

// -----

// A config that says fuse_residual = true keeps the op fused.
// CHECK-LABEL: func.func @told_to_fuse
//   CHECK-NOT:   norm.add
//       CHECK:   norm.rms_norm x(%{{.*}}) residual(%{{.*}}) -> y(%{{.*}}) eps = 9.99999997E-7 config = <cpu, fuse_residual = true>
func.func @told_to_fuse(%x: memref<?x64xf32>, %r: memref<?x64xf32>, %y: memref<?x64xf32>) {
  norm.rms_norm x(%x : memref<?x64xf32>) residual(%r : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-06 config = #norm.config<cpu, fuse_residual = true>
  return
}
