// RUN: normjit-opt %s -emit-bytecode | normjit-opt | FileCheck %s
// The ops and #norm.config survive MLIR bytecode (how a tuner may cache IR).

// CHECK-LABEL: func.func @bytecode
//       CHECK:   norm.add
//       CHECK:   norm.layer_norm x(%{{.*}} : memref<?x512xbf16, strided<[?, 1], offset: ?>>) residual(%{{.*}}) gamma(%{{.*}}) -> y(%{{.*}}) sum(%{{.*}}) mean(%{{.*}}) rstd(%{{.*}}) eps = 9.99999974E-6 config = <gpu, vector_width = 8, threads_per_row = 64, rows_per_block = 2, elements_per_thread = 8, row_storage = registers>
func.func @bytecode(%x: memref<?x512xbf16, strided<[?, 1], offset: ?>>, %r: memref<?x512xbf16>, %g: memref<512xbf16>, %y: memref<?x512xbf16>, %s: memref<?x512xbf16>, %m: memref<?xf32>, %rs: memref<?xf32>) {
  norm.add %r, %r -> %s : memref<?x512xbf16>, memref<?x512xbf16> -> memref<?x512xbf16>
  norm.layer_norm x(%x : memref<?x512xbf16, strided<[?, 1], offset: ?>>) residual(%r : memref<?x512xbf16>) gamma(%g : memref<512xbf16>) -> y(%y : memref<?x512xbf16>) sum(%s : memref<?x512xbf16>) mean(%m : memref<?xf32>) rstd(%rs : memref<?xf32>) eps = 1.0e-05
      config = #norm.config<gpu, vector_width = 8, threads_per_row = 64, rows_per_block = 2, elements_per_thread = 8, row_storage = registers>
  return
}
