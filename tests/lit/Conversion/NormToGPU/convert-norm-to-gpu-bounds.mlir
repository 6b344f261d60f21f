// RUN: normjit-opt %s --split-input-file --pass-pipeline='builtin.module(gpu.module(convert-norm-to-gpu))' | FileCheck %s
// NVVM bounds a kernel already carries that the config's blocks meet:
// nvvm.reqntid with one or two extents (the others are 1), nvvm.maxntid
// over the block's threads.

// CHECK-LABEL: gpu.func @required_one_extent
//  CHECK-SAME:   known_block_size = array<i32: 64, 1, 1>
//  CHECK-SAME:   nvvm.reqntid = array<i32: 64>
//   CHECK-NOT:   norm.rms_norm
module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @required_one_extent(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel attributes {nvvm.reqntid = array<i32: 64>} {
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, rows_per_block = 2>
  gpu.return
}
}
}

// -----

// CHECK-LABEL: gpu.func @required_two_extents
//  CHECK-SAME:   known_block_size = array<i32: 64, 1, 1>
// CHECK-LABEL: gpu.func @max_threads_above
//  CHECK-SAME:   known_block_size = array<i32: 64, 1, 1>
module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @required_two_extents(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel attributes {nvvm.reqntid = array<i32: 64, 1>} {
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, rows_per_block = 2>
  gpu.return
}
gpu.func @max_threads_above(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel attributes {nvvm.maxntid = array<i32: 32, 4>} {
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, rows_per_block = 2>
  gpu.return
}
}
}
