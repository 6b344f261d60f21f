// RUN: normjit-opt %s --split-input-file | normjit-opt --split-input-file | FileCheck %s
// #norm.config: every knob round-trips, printed in a fixed order whatever
// order it was written in; absent knobs stay absent (default heuristic).

// CHECK-LABEL: func.func @cpu_all
//       CHECK:   config = <cpu, vector_width = 16, fuse_residual = false, accumulators = 4, rows_per_task = 8, threads = 2, algorithm = two_pass, streaming_stores = true, prefetch_rows = 2, row_group = 8>
func.func @cpu_all(%x: memref<?x768xf32>, %y: memref<?x768xf32>) {
  norm.layer_norm x(%x : memref<?x768xf32>) -> y(%y : memref<?x768xf32>) eps = 1.0e-05
      config = #norm.config<cpu, row_group = 8, prefetch_rows = 2, streaming_stores = true, algorithm = two_pass, threads = 2, rows_per_task = 8, accumulators = 4, fuse_residual = false, vector_width = 16>
  return
}

// -----

// CHECK-LABEL: func.func @gpu_all
//       CHECK:   config = <gpu, vector_width = 4, fuse_residual = true, threads_per_row = 32, rows_per_block = 4, elements_per_thread = 8, row_storage = registers, persistent = false>
func.func @gpu_all(%x: memref<?x256xf32>, %y: memref<?x256xf32>) {
  norm.rms_norm x(%x : memref<?x256xf32>) -> y(%y : memref<?x256xf32>) eps = 1.0e-05
      config = #norm.config<gpu, persistent = false, row_storage = registers, elements_per_thread = 8, rows_per_block = 4, threads_per_row = 32, fuse_residual = true, vector_width = 4>
  return
}

// -----

// CHECK-LABEL: func.func @backend_only
//       CHECK:   config = <cpu>{{$}}
func.func @backend_only(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05 config = #norm.config<cpu>
  return
}

// -----

// threads = 0 (all cores) and row_group = 0 (the default) are what an
// absent knob means, as in normjit_cpu_config_t: they parse as absent.
// CHECK-LABEL: func.func @zero_means_absent
//       CHECK:   config = <cpu, vector_width = 8>{{$}}
func.func @zero_means_absent(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  norm.layer_norm x(%x : memref<?x8xf32>) -> y(%y : memref<?x8xf32>) eps = 1.0e-05 config = #norm.config<cpu, threads = 0, row_group = 0, vector_width = 8>
  return
}

// -----

// Welford, a whole block per row keeping the row in shared memory, limits.
// CHECK-LABEL: func.func @limits
//       CHECK:   config = <cpu, vector_width = 64, accumulators = 16, rows_per_task = 65536, threads = 1024, algorithm = welford>
//       CHECK:   config = <gpu, vector_width = 8, threads_per_row = 1024, rows_per_block = 1, elements_per_thread = 1024, row_storage = shared, persistent = true>
//       CHECK:   config = <gpu, threads_per_row = 32, rows_per_block = 2, min_blocks_per_sm = 32>
//       CHECK:   config = <gpu, min_blocks_per_sm = 0>
func.func @limits(%x: memref<?x8xf16>, %y: memref<?x8xf16>) {
  norm.layer_norm x(%x : memref<?x8xf16>) -> y(%y : memref<?x8xf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 64, accumulators = 16, rows_per_task = 65536, threads = 1024, algorithm = welford>
  norm.layer_norm x(%x : memref<?x8xf16>) -> y(%y : memref<?x8xf16>) eps = 1.0e-05
      config = #norm.config<gpu, vector_width = 8, threads_per_row = 1024, rows_per_block = 1, elements_per_thread = 1024, row_storage = shared, persistent = true>
  norm.layer_norm x(%x : memref<?x8xf16>) -> y(%y : memref<?x8xf16>) eps = 1.0e-05
      config = #norm.config<gpu, min_blocks_per_sm = 32, rows_per_block = 2, threads_per_row = 32>
  norm.layer_norm x(%x : memref<?x8xf16>) -> y(%y : memref<?x8xf16>) eps = 1.0e-05
      config = #norm.config<gpu, min_blocks_per_sm = 0>
  return
}

// -----

// The attribute also lives on its own (e.g. in a tuner's module attribute).
// CHECK: module attributes {normjit.default_config = #norm.config<gpu, threads_per_row = 128>}
module attributes {normjit.default_config = #norm.config<gpu, threads_per_row = 128>} {
}
