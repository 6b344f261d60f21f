// RUN: normjit-opt %s --split-input-file --norm-fuse-residual-add | FileCheck %s
// RUN: normjit-opt %s --split-input-file \
// RUN:   --pass-pipeline="builtin.module(func.func(norm-fuse-residual-add))" \
// RUN:   | FileCheck %s
// Positive cases: the add folds into the norm op's residual operand.

// The add writes a function argument: the sum is observable, so it is kept.
// CHECK-LABEL: func.func @layer_norm_keeps_sum
//  CHECK-SAME:   (%[[X:[^:]+]]: {{[^,]+}}, %[[R:[^:]+]]: {{[^,]+}}, %[[S:[^:]+]]: {{[^,]+}}, %[[G:[^:]+]]: {{[^,]+}}, %[[B:[^:]+]]: {{[^,]+}}, %[[Y:[^:]+]]: {{[^)]+}})
//   CHECK-NOT:   norm.add
//       CHECK:   norm.layer_norm x(%[[X]] : memref<?x768xbf16>) residual(%[[R]] : memref<?x768xbf16>) gamma(%[[G]] : memref<768xf32>) beta(%[[B]] : memref<768xf32>) -> y(%[[Y]] : memref<?x768xbf16>) sum(%[[S]] : memref<?x768xbf16>) eps = 9.99999974E-6
//   CHECK-NOT:   norm.add
func.func @layer_norm_keeps_sum(%x: memref<?x768xbf16>, %r: memref<?x768xbf16>, %s: memref<?x768xbf16>,
                                %g: memref<768xf32>, %b: memref<768xf32>, %y: memref<?x768xbf16>) {
  norm.add %x, %r -> %s : memref<?x768xbf16>, memref<?x768xbf16> -> memref<?x768xbf16>
  norm.layer_norm x(%s : memref<?x768xbf16>) gamma(%g : memref<768xf32>) beta(%b : memref<768xf32>) -> y(%y : memref<?x768xbf16>) eps = 1.0e-05
  return
}

// -----

// A local f32 temporary nobody else reads: the sum, its alloc and dealloc
// disappear.
// CHECK-LABEL: func.func @rms_norm_drops_temp
//  CHECK-SAME:   (%[[X:[^:]+]]: {{[^,]+}}, %[[R:[^:]+]]: {{[^,]+}}, %[[Y:[^:]+]]: {{[^)]+}})
//   CHECK-NOT:   arith.constant
//   CHECK-NOT:   memref.alloc
//   CHECK-NOT:   memref.dim
//       CHECK:   norm.rms_norm x(%[[X]] : memref<?x4096xf16>) residual(%[[R]] : memref<?x4096xf16>) -> y(%[[Y]] : memref<?x4096xf16>) eps = 9.99999997E-7 config = <cpu, vector_width = 16>{{$}}
//   CHECK-NOT:   memref.dealloc
//       CHECK:   return
func.func @rms_norm_drops_temp(%x: memref<?x4096xf16>, %r: memref<?x4096xf16>, %y: memref<?x4096xf16>) {
  %c0 = arith.constant 0 : index
  %rows = memref.dim %x, %c0 : memref<?x4096xf16>
  %t = memref.alloc(%rows) : memref<?x4096xf32>
  norm.add %x, %r -> %t : memref<?x4096xf16>, memref<?x4096xf16> -> memref<?x4096xf32>
  norm.rms_norm x(%t : memref<?x4096xf32>) -> y(%y : memref<?x4096xf16>) eps = 1.0e-06 config = #norm.config<cpu, vector_width = 16>
  memref.dealloc %t : memref<?x4096xf32>
  return
}

// -----

// A temporary of a narrower type rounds s: the norm must see the rounded
// value, so the store is kept (exact semantics over a saved write).
// CHECK-LABEL: func.func @bf16_temp_is_kept
//       CHECK:   %[[T:.+]] = memref.alloc
//       CHECK:   norm.rms_norm x(%{{.*}}) residual(%{{.*}}) -> y(%{{.*}}) sum(%[[T]] : memref<?x64xbf16>)
//       CHECK:   memref.dealloc %[[T]]
func.func @bf16_temp_is_kept(%x: memref<?x64xf32>, %r: memref<?x64xf32>, %y: memref<?x64xf32>, %rows: index) {
  %t = memref.alloc(%rows) : memref<?x64xbf16>
  norm.add %x, %r -> %t : memref<?x64xf32>, memref<?x64xf32> -> memref<?x64xbf16>
  norm.rms_norm x(%t : memref<?x64xbf16>) -> y(%y : memref<?x64xf32>) eps = 1.0e-06
  memref.dealloc %t : memref<?x64xbf16>
  return
}

// -----

// A temporary read again later is kept as the sum output.
// CHECK-LABEL: func.func @temp_read_later
//       CHECK:   %[[T:.+]] = memref.alloc
//       CHECK:   norm.layer_norm x(%{{.*}}) residual(%{{.*}}) -> y(%{{.*}}) sum(%[[T]] : memref<4x32xf32>)
//       CHECK:   memref.copy %[[T]]
func.func @temp_read_later(%x: memref<4x32xf32>, %r: memref<4x32xf32>, %y: memref<4x32xf32>, %out: memref<4x32xf32>) {
  %t = memref.alloc() : memref<4x32xf32>
  norm.add %x, %r -> %t : memref<4x32xf32>, memref<4x32xf32> -> memref<4x32xf32>
  norm.layer_norm x(%t : memref<4x32xf32>) -> y(%y : memref<4x32xf32>) eps = 1.0e-05
  memref.copy %t, %out : memref<4x32xf32> to memref<4x32xf32>
  memref.dealloc %t : memref<4x32xf32>
  return
}

// -----

// The residual stream updated in place (s = x + s), statistics, config and
// discardable attributes carried over; pure ops in between do not block.
// CHECK-LABEL: func.func @in_place_stream
//  CHECK-SAME:   (%[[X:[^:]+]]: {{[^,]+}}, %[[H:[^:]+]]: {{[^,]+}}, %[[Y:[^:]+]]: {{[^,]+}}, %[[M:[^:]+]]: {{[^,]+}}, %[[RS:[^:]+]]: {{[^)]+}})
//       CHECK:   arith.constant
//       CHECK:   norm.layer_norm x(%[[X]] : memref<?x1024xf32>) residual(%[[H]] : memref<?x1024xf32>) -> y(%[[Y]] : memref<?x1024xf32>) sum(%[[H]] : memref<?x1024xf32>) mean(%[[M]] : memref<?xf32>) rstd(%[[RS]] : memref<?xf32>) eps = 9.99999974E-6 config = <cpu, fuse_residual = true> {block = 7 : i64}
func.func @in_place_stream(%x: memref<?x1024xf32>, %h: memref<?x1024xf32>, %y: memref<?x1024xf32>, %m: memref<?xf32>, %rs: memref<?xf32>) {
  norm.add %x, %h -> %h : memref<?x1024xf32>, memref<?x1024xf32> -> memref<?x1024xf32>
  %unused = arith.constant 1.0 : f32
  norm.layer_norm x(%h : memref<?x1024xf32>) -> y(%y : memref<?x1024xf32>) mean(%m : memref<?xf32>) rstd(%rs : memref<?xf32>) eps = 1.0e-05 config = #norm.config<cpu, fuse_residual = true> {block = 7}
  return
}

// -----

// Two transformer blocks: each add fuses into its own norm.
// CHECK-LABEL: func.func @two_blocks
//   CHECK-NOT:   norm.add
//       CHECK:   norm.rms_norm x(%{{.*}}) residual(%{{.*}})
//   CHECK-NOT:   norm.add
//       CHECK:   norm.rms_norm x(%{{.*}}) residual(%{{.*}})
//   CHECK-NOT:   norm.add
func.func @two_blocks(%a: memref<?x64xf32>, %b: memref<?x64xf32>, %h: memref<?x64xf32>, %y1: memref<?x64xf32>, %y2: memref<?x64xf32>) {
  norm.add %a, %h -> %h : memref<?x64xf32>, memref<?x64xf32> -> memref<?x64xf32>
  norm.rms_norm x(%h : memref<?x64xf32>) -> y(%y1 : memref<?x64xf32>) eps = 1.0e-06
  norm.add %b, %h -> %h : memref<?x64xf32>, memref<?x64xf32> -> memref<?x64xf32>
  norm.rms_norm x(%h : memref<?x64xf32>) -> y(%y2 : memref<?x64xf32>) eps = 1.0e-06
  return
}

// -----

// Two norms read the same sum: the first fuses and stores the sum, which
// the second still reads.
// CHECK-LABEL: func.func @two_readers
//  CHECK-SAME:   (%[[X:[^:]+]]: {{[^,]+}}, %[[R:[^:]+]]: {{[^,]+}}, %[[S:[^:]+]]: {{[^,]+}}, %[[Y:[^:]+]]: {{[^,]+}}, %[[Y2:[^:]+]]: {{[^)]+}})
//       CHECK:   norm.rms_norm x(%[[X]] : memref<?x8xf32>) residual(%[[R]] : memref<?x8xf32>) -> y(%[[Y]] : memref<?x8xf32>) sum(%[[S]] : memref<?x8xf32>)
//       CHECK:   norm.layer_norm x(%[[S]] : memref<?x8xf32>) -> y(%[[Y2]] : memref<?x8xf32>)
func.func @two_readers(%x: memref<?x8xf32>, %r: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>, %y2: memref<?x8xf32>) {
  norm.add %x, %r -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  norm.rms_norm x(%s : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05
  norm.layer_norm x(%s : memref<?x8xf32>) -> y(%y2 : memref<?x8xf32>) eps = 1.0e-05
  return
}
