// RUN: normjit-opt %s --split-input-file --pass-pipeline='builtin.module(gpu.module(convert-norm-to-gpu))' --verify-diagnostics
// What the GPU lowering refuses.

module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @cpu_config(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel {
  // expected-error @+1 {{needs a #norm.config<gpu, ...> to be lowered to the GPU}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <cpu, vector_width = 8>
  gpu.return
}
}
}

// -----

module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @no_config(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel {
  // expected-error @+1 {{needs a #norm.config<gpu, ...> to be lowered to the GPU}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05
  gpu.return
}
}
}

// -----

module attributes {gpu.container_module} {
gpu.module @kernels {
func.func @not_a_kernel(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  // expected-error @+1 {{with a gpu config must be inside a gpu.func kernel}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32>
  return
}
}
}

// -----

module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @unfused(%x: memref<?x64xf32>, %r: memref<?x64xf32>, %y: memref<?x64xf32>) kernel {
  // expected-error @+1 {{the GPU backend always fuses the residual add}}
  norm.rms_norm x(%x : memref<?x64xf32>) residual(%r : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, fuse_residual = false>
  gpu.return
}
}
}

// -----

module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @separate_add(%x: memref<?x64xf32>, %r: memref<?x64xf32>, %s: memref<?x64xf32>) kernel {
  // expected-error @+1 {{is not lowered to the GPU: the GPU backend fuses the residual add into the norm kernel}}
  norm.add %x, %r -> %s : memref<?x64xf32>, memref<?x64xf32> -> memref<?x64xf32>
  gpu.return
}
}
}

// -----

module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @two_norm_ops(%x: memref<?x64xf32>, %y: memref<?x64xf32>, %z: memref<?x64xf32>) kernel {
  // expected-note @+1 {{the first one}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, rows_per_block = 2>
  // expected-error @+1 {{is a second norm op in kernel @two_norm_ops; a GPU kernel holds one (its threads are mapped to that op's rows)}}
  norm.rms_norm x(%y : memref<?x64xf32>) -> y(%z : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 64, rows_per_block = 1>
  gpu.return
}
}
}

// -----

// A kernel whose known block size the config does not give.
module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @known_block_size_differs(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel attributes {known_block_size = array<i32: 64, 1, 1>} {
  // expected-error @+1 {{needs blocks of 128 threads, but the kernel's known_block_size differs}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, rows_per_block = 4>
  gpu.return
}
}
}

// -----

// NVVM bounds on the block the config's blocks do not meet.
module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @max_threads_below(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel attributes {nvvm.maxntid = array<i32: 32, 1, 1>} {
  // expected-error @+1 {{needs blocks of 64 threads, but the kernel's nvvm.maxntid allows 32}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, rows_per_block = 2>
  gpu.return
}
}
}

// -----

module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @required_threads_differ(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel attributes {nvvm.reqntid = array<i32: 128, 1, 1>} {
  // expected-error @+1 {{needs blocks of 64 threads, but the kernel's nvvm.reqntid differs}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, rows_per_block = 2>
  gpu.return
}
}
}

// -----

// Rows kept in shared memory beside a workgroup buffer the kernel had:
// together over the 48 KiB a block may have.
module attributes {gpu.container_module} {
gpu.module @kernels {
// expected-error @+1 {{keeps 64512 bytes in workgroup (shared) buffers, its own and those its norm op was lowered to, more than the 49152 bytes}}
gpu.func @shared_over_the_limit(%x: memref<?x376xf32>, %y: memref<?x376xf32>) workgroup(%mine : memref<4096xf32, #gpu.address_space<workgroup>>) kernel {
  norm.rms_norm x(%x : memref<?x376xf32>) -> y(%y : memref<?x376xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32, rows_per_block = 32, row_storage = shared>
  gpu.return
}
}
}

// -----

module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @under_if(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel {
  %tid = gpu.thread_id x
  %c5 = arith.constant 5 : index
  %few = arith.cmpi ult, %tid, %c5 : index
  scf.if %few {
    // expected-error @+1 {{must be in the entry block of its gpu.func kernel}}
    norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32>
  }
  gpu.return
}
}
}

// -----

// Extents of nvvm.maxntid below 1 (their product would pass).
module attributes {gpu.container_module} {
gpu.module @kernels {
gpu.func @negative_bound(%x: memref<?x64xf32>, %y: memref<?x64xf32>) kernel attributes {nvvm.maxntid = array<i32: -64, -1, 1>} {
  // expected-error @+1 {{is in a kernel whose nvvm.maxntid has an extent below 1: -64}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 64>
  gpu.return
}
}
}

// -----

// Workgroup buffers whose bytes pass 2^64 (they used to wrap to 0).
module attributes {gpu.container_module} {
gpu.module @kernels {
// expected-error @+1 {{keeps over 2^63 bytes in workgroup (shared) buffers}}
gpu.func @huge_workgroup(%x: memref<?x64xf32>, %y: memref<?x64xf32>) workgroup(%w : memref<4611686018427387904xf32, #gpu.address_space<workgroup>>) kernel {
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu>
  gpu.return
}
}
}
