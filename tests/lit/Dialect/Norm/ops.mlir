// RUN: normjit-opt %s --split-input-file | FileCheck %s
// RUN: normjit-opt %s --split-input-file | normjit-opt --split-input-file | FileCheck %s
// Round trip of norm.layer_norm in the custom form, every optional clause.

// CHECK-LABEL: func.func @minimal
//  CHECK-SAME:   (%[[X:.+]]: memref<?x768xf32>, %[[Y:.+]]: memref<?x768xf32>)
//       CHECK:   norm.layer_norm x(%[[X]] : memref<?x768xf32>) -> y(%[[Y]] : memref<?x768xf32>) eps = 9.99999974E-6{{$}}
func.func @minimal(%x: memref<?x768xf32>, %y: memref<?x768xf32>) {
  norm.layer_norm x(%x : memref<?x768xf32>) -> y(%y : memref<?x768xf32>) eps = 1.0e-05
  return
}

// -----

// CHECK-LABEL: func.func @affine
//       CHECK:   norm.layer_norm x(%{{.*}} : memref<?x1024xbf16>) gamma(%{{.*}} : memref<1024xf32>) beta(%{{.*}} : memref<1024xf32>) -> y(%{{.*}} : memref<?x1024xbf16>) eps
func.func @affine(%x: memref<?x1024xbf16>, %g: memref<1024xf32>, %b: memref<1024xf32>, %y: memref<?x1024xbf16>) {
  norm.layer_norm x(%x : memref<?x1024xbf16>) gamma(%g : memref<1024xf32>) beta(%b : memref<1024xf32>) -> y(%y : memref<?x1024xbf16>) eps = 1.0e-05
  return
}

// -----

// Beta alone (gamma absent means 1).
// CHECK-LABEL: func.func @beta_only
//       CHECK:   norm.layer_norm x(%{{.*}}) beta(%{{.*}} : memref<64xf16>) -> y
func.func @beta_only(%x: memref<?x64xf16>, %b: memref<64xf16>, %y: memref<?x64xf16>) {
  norm.layer_norm x(%x : memref<?x64xf16>) beta(%b : memref<64xf16>) -> y(%y : memref<?x64xf16>) eps = 1.0e-05
  return
}

// -----

// Everything: residual, sum, statistics, a config; mixed element types.
// CHECK-LABEL: func.func @everything
//  CHECK-SAME:   (%[[X:[^:]+]]: {{[^,]+}}, %[[R:[^:]+]]: {{[^,]+}}, %[[G:[^:]+]]: {{[^,]+}}, %[[B:[^:]+]]: {{[^,]+}}, %[[Y:[^:]+]]: {{[^,]+}}, %[[S:[^:]+]]: {{[^,]+}}, %[[M:[^:]+]]: {{[^,]+}}, %[[RS:[^:]+]]: {{[^,]+}})
//       CHECK:   norm.layer_norm x(%[[X]] : memref<?x4096xbf16>) residual(%[[R]] : memref<?x4096xf32>) gamma(%[[G]] : memref<4096xbf16>) beta(%[[B]] : memref<4096xf16>) -> y(%[[Y]] : memref<?x4096xf16>) sum(%[[S]] : memref<?x4096xf32>) mean(%[[M]] : memref<?xf32>) rstd(%[[RS]] : memref<?xf32>) eps = 9.99999974E-6 config = <cpu, vector_width = 16, accumulators = 4>
func.func @everything(%x: memref<?x4096xbf16>, %r: memref<?x4096xf32>, %g: memref<4096xbf16>, %b: memref<4096xf16>,
                      %y: memref<?x4096xf16>, %s: memref<?x4096xf32>, %m: memref<?xf32>, %rs: memref<?xf32>) {
  norm.layer_norm x(%x : memref<?x4096xbf16>) residual(%r : memref<?x4096xf32>) gamma(%g : memref<4096xbf16>) beta(%b : memref<4096xf16>)
      -> y(%y : memref<?x4096xf16>) sum(%s : memref<?x4096xf32>) mean(%m : memref<?xf32>) rstd(%rs : memref<?xf32>)
      eps = 1.0e-05 config = #norm.config<cpu, vector_width = 16, accumulators = 4>
  return
}

// -----

// In place: y is x, and sum is the residual stream itself.
// CHECK-LABEL: func.func @in_place
//       CHECK:   norm.layer_norm x(%[[X:.+]] : memref<?x32xf32>) residual(%[[R:.+]] : memref<?x32xf32>) -> y(%[[X]] : memref<?x32xf32>) sum(%[[R]] : memref<?x32xf32>)
func.func @in_place(%x: memref<?x32xf32>, %r: memref<?x32xf32>) {
  norm.layer_norm x(%x : memref<?x32xf32>) residual(%r : memref<?x32xf32>) -> y(%x : memref<?x32xf32>) sum(%r : memref<?x32xf32>) eps = 1.0e-05
  return
}

// -----

// One column and a static row count are fine.
// CHECK-LABEL: func.func @one_column
//       CHECK:   norm.layer_norm x(%{{.*}} : memref<5x1xf32>) -> y(%{{.*}} : memref<?x1xf32>) mean(%{{.*}} : memref<5xf32>)
func.func @one_column(%x: memref<5x1xf32>, %y: memref<?x1xf32>, %m: memref<5xf32>) {
  norm.layer_norm x(%x : memref<5x1xf32>) -> y(%y : memref<?x1xf32>) mean(%m : memref<5xf32>) eps = 1.0e-05
  return
}

// -----

// Discardable attributes survive.
// CHECK-LABEL: func.func @extra_attr
//       CHECK:   norm.layer_norm {{.*}} eps = 9.99999974E-6 {tag = "block3"}
func.func @extra_attr(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05 {tag = "block3"}
  return
}
