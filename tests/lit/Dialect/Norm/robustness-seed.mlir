// RUN: normjit-opt %s | normjit-opt | FileCheck %s
// The seed of tests/unit/Compiler/ParserRobustnessTest.cpp, which parses
// every prefix and thousands of mutations of this file: keep it small and
// covering every clause of the syntax.

// CHECK-LABEL: func.func @seed
//       CHECK:   norm.add
//       CHECK:   norm.layer_norm x(%{{.*}}) residual(%{{.*}}) gamma(%{{.*}}) beta(%{{.*}}) -> y(%{{.*}}) sum(%{{.*}}) mean(%{{.*}}) rstd(%{{.*}}) eps = 9.99999974E-6 config = <cpu, vector_width = 8, fuse_residual = true, algorithm = welford, streaming_stores = false>
//       CHECK:   norm.rms_norm
//  CHECK-SAME:   config = <gpu, threads_per_row = 32, row_storage = shared, persistent = true>
func.func @seed(%x: memref<?x8xbf16, strided<[?, 1], offset: ?>>,
                %r: memref<?x8xf16>, %g: memref<8xf32>, %b: memref<8xbf16>,
                %y: memref<?x8xf32>, %m: memref<?xf32>, %rs: memref<?xf32>) {
  norm.add %x, %r -> %y : memref<?x8xbf16, strided<[?, 1], offset: ?>>, memref<?x8xf16> -> memref<?x8xf32>
  norm.layer_norm x(%x : memref<?x8xbf16, strided<[?, 1], offset: ?>>) residual(%r : memref<?x8xf16>) gamma(%g : memref<8xf32>) beta(%b : memref<8xbf16>) -> y(%y : memref<?x8xf32>) sum(%x : memref<?x8xbf16, strided<[?, 1], offset: ?>>) mean(%m : memref<?xf32>) rstd(%rs : memref<?xf32>) eps = 1.0e-05 config = #norm.config<cpu, vector_width = 8, fuse_residual = true, algorithm = welford, streaming_stores = false>
  norm.rms_norm x(%y : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) rstd(%rs : memref<?xf32>) eps = 1.0e-06 config = <gpu, threads_per_row = 32, row_storage = shared, persistent = true>
  return
}
