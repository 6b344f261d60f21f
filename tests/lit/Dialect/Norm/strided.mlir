// RUN: normjit-opt %s --split-input-file | normjit-opt --split-input-file | FileCheck %s
// Row strides: kernels work on slices of larger tensors.

// A column slice of a wider buffer, taken with memref.subview.
// CHECK-LABEL: func.func @subview
//       CHECK:   %[[V:.+]] = memref.subview
//       CHECK:   norm.layer_norm x(%[[V]] : memref<?x768xf32, strided<[2304, 1], offset: ?>>)
func.func @subview(%qkv: memref<?x2304xf32>, %y: memref<?x768xf32>, %rows: index, %col: index) {
  %v = memref.subview %qkv[0, %col] [%rows, 768] [1, 1] : memref<?x2304xf32> to memref<?x768xf32, strided<[2304, 1], offset: ?>>
  norm.layer_norm x(%v : memref<?x768xf32, strided<[2304, 1], offset: ?>>) -> y(%y : memref<?x768xf32>) eps = 1.0e-05
  return
}

// -----

// Dynamic row stride, static row stride equal to the columns, one row with
// any stride.
// CHECK-LABEL: func.func @strides
//       CHECK:   norm.rms_norm x(%{{.*}} : memref<?x64xf16, strided<[?, 1], offset: ?>>) -> y(%{{.*}} : memref<?x64xf16, strided<[64, 1]>>)
//       CHECK:   norm.rms_norm x(%{{.*}} : memref<1x64xf16, strided<[3, 1]>>)
func.func @strides(%x: memref<?x64xf16, strided<[?, 1], offset: ?>>, %y: memref<?x64xf16, strided<[64, 1]>>, %one: memref<1x64xf16, strided<[3, 1]>>, %oy: memref<1x64xf16>) {
  norm.rms_norm x(%x : memref<?x64xf16, strided<[?, 1], offset: ?>>) -> y(%y : memref<?x64xf16, strided<[64, 1]>>) eps = 1.0e-05
  norm.rms_norm x(%one : memref<1x64xf16, strided<[3, 1]>>) -> y(%oy : memref<1x64xf16>) eps = 1.0e-05
  return
}
