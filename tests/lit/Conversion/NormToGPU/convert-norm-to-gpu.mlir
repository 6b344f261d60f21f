// RUN: normjit-opt %s --pass-pipeline='builtin.module(gpu.module(convert-norm-to-gpu,canonicalize,cse))' | FileCheck %s
// RUN: normjit-opt %s --pass-pipeline='builtin.module(gpu.module(convert-norm-to-gpu,canonicalize,cse))' | normjit-opt > /dev/null
// What the GPU knobs of #norm.config produce.

#rows = strided<[?, 1]>
module attributes {gpu.container_module} {
gpu.module @kernels {

// A row of two warps held in registers, 128-bit bf16 vectors: warp shuffles,
// then one shared-memory slot per warp and value and a barrier per
// reduction (the mean; then the centred sums of d and d^2 together).
// CHECK-LABEL: gpu.func @ln_registers
// CHECK-SAME: workgroup(%[[SLOT1:[a-z0-9]+]] : memref<2x2xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[SLOT2:[a-z0-9]+]] : memref<2x2xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[SLOT3:[a-z0-9]+]] : memref<2x2xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: %[[TID:.*]] = gpu.thread_id x
// CHECK: %[[LANE:.*]] = arith.remui %[[TID]], %c64
// CHECK: %[[ROWINBLOCK:.*]] = arith.divui %[[TID]], %c64
// CHECK: gpu.block_id x
// CHECK-NOT: scf.for
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<?x1000xbf16, strided<[?, 1]>>, vector<8xbf16>
// CHECK: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK: vector.reduction <add>
// CHECK: gpu.shuffle xor %{{.*}}, %c16_i32, %c32_i32 : f32
// CHECK: gpu.shuffle xor %{{.*}}, %c1_i32, %c32_i32 : f32
// CHECK: memref.store %{{.*}}, %[[SLOT1]]
// CHECK: gpu.barrier
// CHECK: gpu.shuffle xor
// CHECK: memref.store %{{.*}}, %[[SLOT2]]
// CHECK: memref.store %{{.*}}, %[[SLOT3]]
// CHECK: gpu.barrier
// CHECK: math.sqrt
// CHECK: arith.truncf %{{.*}} : vector<8xf32> to vector<8xbf16>
// CHECK: vector.store %{{.*}} {alignment = 16 : i64} : memref<?x1000xbf16, strided<[?, 1]>>, vector<8xbf16>
// CHECK: gpu.return
gpu.func @ln_registers(%x: memref<?x1000xbf16, #rows>, %g: memref<1000xbf16>, %b: memref<1000xbf16>, %y: memref<?x1000xbf16, #rows>) kernel {
  norm.layer_norm x(%x : memref<?x1000xbf16, #rows>) gamma(%g : memref<1000xbf16>) beta(%b : memref<1000xbf16>) -> y(%y : memref<?x1000xbf16, #rows>) eps = 1.0e-5 config = <gpu, vector_width = 8, threads_per_row = 64, rows_per_block = 2, elements_per_thread = 16, row_storage = registers>
  gpu.return
}

// Four threads per row: shuffles within the quarter-warp, no shared
// memory, no barrier.
// CHECK-LABEL: gpu.func @rms_subwarp
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK-NOT: gpu.barrier
// CHECK-NOT: %c16_i32, %c32_i32
// CHECK: gpu.shuffle xor %{{.*}}, %c2_i32, %c32_i32 : f32
// CHECK: gpu.shuffle xor %{{.*}}, %c1_i32, %c32_i32 : f32
// CHECK-NOT: gpu.barrier
// CHECK: gpu.return
gpu.func @rms_subwarp(%x: memref<?x64xf32, #rows>, %y: memref<?x64xf32, #rows>) kernel {
  norm.rms_norm x(%x : memref<?x64xf32, #rows>) -> y(%y : memref<?x64xf32, #rows>) eps = 1.0e-6 config = <gpu, vector_width = 4, threads_per_row = 4, rows_per_block = 32, elements_per_thread = 16>
  gpu.return
}

// The row kept in shared memory, visited by a loop of 2 vectors per thread
// and step.
// CHECK-LABEL: gpu.func @ln_shared
// CHECK-SAME: workgroup(%[[ROWS:.*]] : memref<4x1024xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
// CHECK: scf.for
// CHECK: vector.load %{{.*}} : memref<?x1024xf32, strided<[?, 1]>>, vector<4xf32>
// CHECK: vector.store %{{.*}}, %[[ROWS]]
// CHECK: scf.yield
// CHECK: scf.for
// CHECK: vector.load %[[ROWS]]
// CHECK: scf.for
// CHECK: vector.load %[[ROWS]]
// CHECK: vector.store %{{.*}} : memref<?x1024xf32, strided<[?, 1]>>, vector<4xf32>
gpu.func @ln_shared(%x: memref<?x1024xf32, #rows>, %y: memref<?x1024xf32, #rows>) kernel {
  norm.layer_norm x(%x : memref<?x1024xf32, #rows>) -> y(%y : memref<?x1024xf32, #rows>) eps = 1.0e-5 config = <gpu, vector_width = 4, threads_per_row = 32, rows_per_block = 4, elements_per_thread = 8, row_storage = shared>
  gpu.return
}

// A persistent grid: a loop over row groups striding by the grid; the row
// is read again from global memory for the centred squares and for the
// output pass (here from the stored sum). sum may be x or the residual (in
// place): a barrier after every thread has read the shift s0 = s[0], before
// the first store of sum.
// CHECK-LABEL: gpu.func @ln_global_persistent
// CHECK: %[[BLOCK:.*]] = gpu.block_id x
// CHECK: %[[GRID:.*]] = gpu.grid_dim x
// CHECK: scf.for %{{.*}} = %[[BLOCK]] to %{{.*}} step %[[GRID]]
// CHECK: memref.load %arg1[%{{.*}}, %c0]
// CHECK: gpu.barrier
// CHECK: scf.for
// CHECK: vector.store %{{.*}}, %arg3
// CHECK: gpu.shuffle xor
// CHECK: scf.for
// CHECK: vector.load %arg3
// CHECK: gpu.shuffle xor
// CHECK: memref.store %{{.*}} : memref<?xf32>
// CHECK: gpu.barrier
// CHECK-NEXT: }
gpu.func @ln_global_persistent(%x: memref<?x8192xbf16, #rows>, %r: memref<?x8192xbf16, #rows>, %y: memref<?x8192xbf16, #rows>, %s: memref<?x8192xbf16, #rows>, %mean: memref<?xf32>, %rstd: memref<?xf32>) kernel {
  norm.layer_norm x(%x : memref<?x8192xbf16, #rows>) residual(%r : memref<?x8192xbf16, #rows>) -> y(%y : memref<?x8192xbf16, #rows>) sum(%s : memref<?x8192xbf16, #rows>) mean(%mean : memref<?xf32>) rstd(%rstd : memref<?xf32>) eps = 1.0e-5 config = <gpu, vector_width = 8, threads_per_row = 256, rows_per_block = 1, elements_per_thread = 16, row_storage = global, persistent = true>
  gpu.return
}

// min_blocks_per_sm: the kernel asks the NVVM lowering for .minnctapersm;
// without it (or with 0), nothing.
// CHECK-LABEL: gpu.func @rms_min_blocks
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// CHECK-SAME: nvvm.minctasm = 5 : i32
// CHECK-LABEL: gpu.func @rms_min_blocks_zero
// CHECK-NOT: nvvm.minctasm
// CHECK: gpu.return
gpu.func @rms_min_blocks(%x: memref<?x1024xbf16, #rows>, %y: memref<?x1024xbf16, #rows>) kernel {
  norm.rms_norm x(%x : memref<?x1024xbf16, #rows>) -> y(%y : memref<?x1024xbf16, #rows>) eps = 1.0e-6 config = <gpu, vector_width = 8, threads_per_row = 32, rows_per_block = 8, elements_per_thread = 32, row_storage = registers, min_blocks_per_sm = 5>
  gpu.return
}
gpu.func @rms_min_blocks_zero(%x: memref<?x1024xbf16, #rows>, %y: memref<?x1024xbf16, #rows>) kernel {
  norm.rms_norm x(%x : memref<?x1024xbf16, #rows>) -> y(%y : memref<?x1024xbf16, #rows>) eps = 1.0e-6 config = <gpu, vector_width = 8, threads_per_row = 32, rows_per_block = 8, elements_per_thread = 32, row_storage = registers, min_blocks_per_sm = 0>
  gpu.return
}

// A row that ends inside a vector: the last vector is read element by
// element (clamped addresses, lanes past the row are 0) and written
// element by element.
// CHECK-LABEL: gpu.func @rms_partial_vector
// CHECK: vector.from_elements
// CHECK: scf.if
// CHECK: vector.store
// CHECK: } else {
// CHECK: memref.store %{{.*}} : memref<?x1001xf32, strided<[?, 1]>>
gpu.func @rms_partial_vector(%x: memref<?x1001xf32, #rows>, %y: memref<?x1001xf32, #rows>) kernel {
  norm.rms_norm x(%x : memref<?x1001xf32, #rows>) -> y(%y : memref<?x1001xf32, #rows>) eps = 1.0e-6 config = <gpu, vector_width = 4, threads_per_row = 256, rows_per_block = 1, elements_per_thread = 4>
  gpu.return
}
// Shared rows are padded to whole vectors (1001 -> 1004 columns), so that
// the second row of a block starts aligned; a block smaller than a warp
// shuffles among its own 16 lanes only.
// CHECK-LABEL: gpu.func @rms_shared_padded
// CHECK-SAME: workgroup(%{{.*}} : memref<2x1004xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
// CHECK-SAME: known_block_size = array<i32: 16, 1, 1>
// CHECK: gpu.shuffle xor %{{.*}}, %c4_i32, %c16_i32 : f32
// CHECK: gpu.shuffle xor %{{.*}}, %c1_i32, %c16_i32 : f32
gpu.func @rms_shared_padded(%x: memref<?x1001xf32, #rows>, %y: memref<?x1001xf32, #rows>) kernel {
  norm.rms_norm x(%x : memref<?x1001xf32, #rows>) -> y(%y : memref<?x1001xf32, #rows>) eps = 1.0e-6 config = <gpu, vector_width = 4, threads_per_row = 8, rows_per_block = 2, elements_per_thread = 4, row_storage = shared>
  gpu.return
}
// Vectors claim the alignment the layout allows: x's static offset of 3
// elements and row stride of 1001 leave 4 bytes; y (dynamic stride, the
// caller's to keep aligned) keeps 16.
// CHECK-LABEL: gpu.func @static_misaligned_layout
// CHECK: vector.load %{{.*}} {alignment = 4 : i64} : memref<?x1000xf32, strided<[1001, 1], offset: 3>>, vector<4xf32>
// CHECK: vector.store %{{.*}} {alignment = 16 : i64} : memref<?x1000xf32, strided<[?, 1]>>, vector<4xf32>
gpu.func @static_misaligned_layout(%x: memref<?x1000xf32, strided<[1001, 1], offset: 3>>, %y: memref<?x1000xf32, #rows>) kernel {
  norm.rms_norm x(%x : memref<?x1000xf32, strided<[1001, 1], offset: 3>>) -> y(%y : memref<?x1000xf32, #rows>) eps = 1.0e-6 config = <gpu, vector_width = 4>
  gpu.return
}
}
}
