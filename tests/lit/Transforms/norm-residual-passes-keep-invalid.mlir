// RUN: normjit-opt %s --split-input-file --norm-fuse-residual-add --verify-each | FileCheck %s --check-prefix=FUSE
// RUN: normjit-opt %s --split-input-file --norm-split-residual-add --verify-each | FileCheck %s --check-prefix=SPLIT
// The residual passes rewrite only into ops that verify, and respect the
// config: what the rewrite would break stays as it was.

// A GPU config of 8 lanes fits bf16 rows (128 bits) but not the f32 rows
// the fused op would read: no fusion.
// FUSE-LABEL: func.func @gpu_lanes_do_not_fit
//       FUSE:   norm.add
//       FUSE:   norm.rms_norm x(%{{.*}} : memref<?x64xbf16>) -> y
// SPLIT-LABEL: func.func @gpu_lanes_do_not_fit
func.func @gpu_lanes_do_not_fit(%a: memref<?x64xf32>, %b: memref<?x64xf32>, %s: memref<?x64xbf16>, %y: memref<?x64xbf16>) {
  norm.add %a, %b -> %s : memref<?x64xf32>, memref<?x64xf32> -> memref<?x64xbf16>
  norm.rms_norm x(%s : memref<?x64xbf16>) -> y(%y : memref<?x64xbf16>) eps = 1.0e-05 config = <gpu, vector_width = 8>
  return
}

// -----

// The add's shapes only assumed its operands' rows: the fused op would
// claim 4 rows of x for 5 of y.
// FUSE-LABEL: func.func @rows_differ
//       FUSE:   norm.add
//       FUSE:   norm.rms_norm x(%{{.*}} : memref<?x8xf32>) -> y(%{{.*}} : memref<5x8xf32>)
func.func @rows_differ(%a: memref<4x8xf32>, %b: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<5x8xf32>) {
  norm.add %a, %b -> %s : memref<4x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  norm.rms_norm x(%s : memref<?x8xf32>) -> y(%y : memref<5x8xf32>) eps = 1.0e-05
  return
}

// -----

// fuse_residual = false asks for the split form: it is kept.
// FUSE-LABEL: func.func @config_says_split
//       FUSE:   norm.add
//       FUSE:   norm.layer_norm x(%{{.*}}) -> y({{.*}}) eps = {{.*}} config = <cpu, fuse_residual = false>
func.func @config_says_split(%a: memref<?x8xf32>, %b: memref<?x8xf32>, %s: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.add %a, %b -> %s : memref<?x8xf32>, memref<?x8xf32> -> memref<?x8xf32>
  norm.layer_norm x(%s : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05 config = <cpu, fuse_residual = false>
  return
}

// -----

// A GPU kernel always fuses: the split pass leaves it.
// SPLIT-LABEL: func.func @gpu_stays_fused
//   SPLIT-NOT:   norm.add
//       SPLIT:   norm.rms_norm x(%{{.*}}) residual(%{{.*}}) -> y
func.func @gpu_stays_fused(%x: memref<?x64xbf16>, %r: memref<?x64xbf16>, %y: memref<?x64xbf16>) {
  norm.rms_norm x(%x : memref<?x64xbf16>) residual(%r : memref<?x64xbf16>) -> y(%y : memref<?x64xbf16>) eps = 1.0e-05 config = <gpu, vector_width = 8>
  return
}
