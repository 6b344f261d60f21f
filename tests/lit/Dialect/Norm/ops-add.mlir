// RUN: normjit-opt %s --split-input-file | normjit-opt --split-input-file | FileCheck %s
// Round trip of norm.add.

// CHECK-LABEL: func.func @add
//       CHECK:   norm.add %{{.*}}, %{{.*}} -> %{{.*}} : memref<?x1024xbf16>, memref<?x1024xf16> -> memref<?x1024xf32>
func.func @add(%a: memref<?x1024xbf16>, %b: memref<?x1024xf16>, %s: memref<?x1024xf32>) {
  norm.add %a, %b -> %s : memref<?x1024xbf16>, memref<?x1024xf16> -> memref<?x1024xf32>
  return
}

// -----

// In place: the residual stream updated by a sublayer's output.
// CHECK-LABEL: func.func @in_place
//       CHECK:   norm.add %[[A:.+]], %[[B:.+]] -> %[[A]] :
func.func @in_place(%a: memref<?x64xf32>, %b: memref<?x64xf32>) {
  norm.add %a, %b -> %a : memref<?x64xf32>, memref<?x64xf32> -> memref<?x64xf32>
  return
}

// -----

// Strided views of larger buffers.
// CHECK-LABEL: func.func @strided
//       CHECK:   norm.add {{.*}} : memref<?x64xf32, strided<[128, 1], offset: ?>>, memref<?x64xf32, strided<[?, 1]>> -> memref<4x64xf32>
func.func @strided(%a: memref<?x64xf32, strided<[128, 1], offset: ?>>, %b: memref<?x64xf32, strided<[?, 1]>>, %s: memref<4x64xf32>) {
  norm.add %a, %b -> %s : memref<?x64xf32, strided<[128, 1], offset: ?>>, memref<?x64xf32, strided<[?, 1]>> -> memref<4x64xf32>
  return
}
