// RUN: normjit-opt %s --norm-split-residual-add --norm-fuse-residual-add | FileCheck %s --check-prefix=SPLIT-FUSE
// RUN: normjit-opt %s --norm-split-residual-add --norm-fuse-residual-add --norm-split-residual-add | FileCheck %s --check-prefix=SPLIT
// RUN: normjit-opt %s --norm-split-residual-add --norm-fuse-residual-add -mlir-print-debuginfo | normjit-opt | FileCheck %s --check-prefix=SPLIT-FUSE
// The two passes are inverses: split then fuse gives back the fused ops
// exactly (sum output kept or dropped as before), and splitting again gives
// the same unfused form.

// SPLIT-FUSE-LABEL: func.func @block
//  SPLIT-FUSE-SAME:   (%[[X:[^:]+]]: {{[^,]+}}, %[[R:[^:]+]]: {{[^,]+}}, %[[G:[^:]+]]: {{[^,]+}}, %[[Y:[^:]+]]: {{[^,]+}}, %[[S:[^:]+]]: {{[^)]+}})
//   SPLIT-FUSE-NOT:   norm.add
//   SPLIT-FUSE-NOT:   memref.alloc
//       SPLIT-FUSE:   norm.layer_norm x(%[[X]] : memref<?x1024xbf16>) residual(%[[R]] : memref<?x1024xbf16>) gamma(%[[G]] : memref<1024xbf16>) -> y(%[[Y]] : memref<?x1024xbf16>) sum(%[[S]] : memref<?x1024xbf16>) eps = 9.99999974E-6
//       SPLIT-FUSE:   norm.rms_norm x(%[[X]] : memref<?x1024xbf16>) residual(%[[R]] : memref<?x1024xbf16>) gamma(%[[G]] : memref<1024xbf16>) -> y(%[[Y]] : memref<?x1024xbf16>) eps = 9.99999997E-7
//   SPLIT-FUSE-NOT:   memref.dealloc
//       SPLIT-FUSE:   return

// SPLIT-LABEL: func.func @block
//       SPLIT:   norm.add
//       SPLIT:   norm.layer_norm
//       SPLIT:   memref.alloc
//       SPLIT:   norm.add
//       SPLIT:   norm.rms_norm
//       SPLIT:   memref.dealloc
func.func @block(%x: memref<?x1024xbf16>, %r: memref<?x1024xbf16>, %g: memref<1024xbf16>, %y: memref<?x1024xbf16>, %s: memref<?x1024xbf16>) {
  norm.layer_norm x(%x : memref<?x1024xbf16>) residual(%r : memref<?x1024xbf16>) gamma(%g : memref<1024xbf16>) -> y(%y : memref<?x1024xbf16>) sum(%s : memref<?x1024xbf16>) eps = 1.0e-05
  norm.rms_norm x(%x : memref<?x1024xbf16>) residual(%r : memref<?x1024xbf16>) gamma(%g : memref<1024xbf16>) -> y(%y : memref<?x1024xbf16>) eps = 1.0e-06
  return
}
