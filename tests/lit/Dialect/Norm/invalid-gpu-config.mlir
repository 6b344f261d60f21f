// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// A GPU config must fit the op it is attached to.

func.func @vector_too_wide_f32(%x: memref<?x1024xf32>, %y: memref<?x1024xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config vector_width = 8 of 32-bit elements exceeds 128-bit vector accesses}}
  norm.rms_norm x(%x : memref<?x1024xf32>) -> y(%y : memref<?x1024xf32>) eps = 1.0e-05 config = <gpu, vector_width = 8>
  return
}

// -----

// The widest element type decides: a bf16 input with an f32 gamma.
func.func @vector_too_wide_mixed(%x: memref<?x1024xbf16>, %g: memref<1024xf32>, %y: memref<?x1024xbf16>) {
  // expected-error @+1 {{'norm.layer_norm' op config vector_width = 8 of 32-bit elements exceeds 128-bit vector accesses}}
  norm.layer_norm x(%x : memref<?x1024xbf16>) gamma(%g : memref<1024xf32>) -> y(%y : memref<?x1024xbf16>) eps = 1.0e-05 config = <gpu, vector_width = 8>
  return
}

// -----

func.func @row_does_not_fit_registers(%x: memref<?x4096xbf16>, %y: memref<?x4096xbf16>) {
  // expected-error @+1 {{'norm.layer_norm' op config keeps the row in registers, but threads_per_row * elements_per_thread = 2048 is less than the 4096 columns}}
  norm.layer_norm x(%x : memref<?x4096xbf16>) -> y(%y : memref<?x4096xbf16>) eps = 1.0e-05
      config = <gpu, threads_per_row = 256, elements_per_thread = 8, row_storage = registers>
  return
}

// -----

// Rows kept in shared memory must fit 47 KiB (of 48 KiB static shared
// memory; the reduction slots take the rest).
func.func @rows_do_not_fit_shared(%x: memref<?x4096xf32>, %y: memref<?x4096xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config keeps rows in shared memory: 3 rows of 4096 f32 columns (padded to whole vectors) take 49152 bytes, more than the 48128 bytes a block may keep rows in}}
  norm.rms_norm x(%x : memref<?x4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = <gpu, threads_per_row = 256, rows_per_block = 3, elements_per_thread = 8, row_storage = shared>
  return
}

// -----

// Rows re-read from global memory fit any column count.
func.func @global_any_row(%x: memref<?x1000000xf32>, %y: memref<?x1000000xf32>) {
  norm.rms_norm x(%x : memref<?x1000000xf32>) -> y(%y : memref<?x1000000xf32>) eps = 1.0e-05
      config = <gpu, threads_per_row = 1024, elements_per_thread = 8, row_storage = global>
  return
}

// -----

// Absent knobs are checked as the lowering fills them in: row_storage
// defaults to registers, so a warp of 8 elements each covers 256 of the
// 4096 columns.
func.func @default_storage_too_few_registers(%x: memref<?x4096xf32>, %y: memref<?x4096xf32>) {
  // expected-error @+1 {{'norm.layer_norm' op config keeps the row in registers, but threads_per_row * elements_per_thread = 256 is less than the 4096 columns}}
  norm.layer_norm x(%x : memref<?x4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = <gpu, threads_per_row = 32, elements_per_thread = 8>
  return
}

// -----

// threads_per_row defaults to a warp: 1024 rows of 32 threads are too many.
func.func @default_threads_block_too_large(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config gives threads_per_row * rows_per_block = 32 * 1024 = 32768 threads per block (absent knobs as the lowering fills them in), more than 1024}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05
      config = <gpu, rows_per_block = 1024>
  return
}

// -----

// A whole row in registers by default: 65536 columns over a warp would be
// 2048 elements per thread.
func.func @default_row_too_long_for_registers(%x: memref<?x65536xf32>, %y: memref<?x65536xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config keeps the row in registers: 2048 elements per thread over 32 threads_per_row for 65536 columns, more than 1024; give more threads_per_row, or row_storage = shared or global}}
  norm.rms_norm x(%x : memref<?x65536xf32>) -> y(%y : memref<?x65536xf32>) eps = 1.0e-05
      config = <gpu>
  return
}

// -----

// The shared-memory size is computed without wrapping around.
func.func @shared_size_does_not_wrap(%x: memref<?x2305843009213693952xf32>, %y: memref<?x2305843009213693952xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config keeps rows in shared memory: 2 rows of 2305843009213693952 f32 columns (padded to whole vectors) take over 2^63 bytes, more than the 48128 bytes a block may keep rows in}}
  norm.rms_norm x(%x : memref<?x2305843009213693952xf32>) -> y(%y : memref<?x2305843009213693952xf32>) eps = 1.0e-05
      config = <gpu, threads_per_row = 32, rows_per_block = 2, row_storage = shared>
  return
}

// -----

// Nor the padding of a row to whole vectors (INT64_MAX columns padded to
// vectors of 2 used to wrap to the dynamic size).
func.func @shared_padding_does_not_wrap(%x: memref<?x9223372036854775807xf32>, %y: memref<?x9223372036854775807xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config keeps rows in shared memory: 1 rows of 9223372036854775807 f32 columns (padded to whole vectors) take over 2^63 bytes}}
  norm.rms_norm x(%x : memref<?x9223372036854775807xf32>) -> y(%y : memref<?x9223372036854775807xf32>) eps = 1.0e-05
      config = <gpu, vector_width = 2, row_storage = shared>
  return
}

// -----

// Columns near 2^63: the registers the row needs are counted without
// wrapping (the product of the filled-in knobs passes int64).
func.func @registers_for_huge_columns(%x: memref<?x9223372036854775807xf32>, %y: memref<?x9223372036854775807xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config keeps the row in registers: 288230376151711744 elements per thread over 32 threads_per_row for 9223372036854775807 columns, more than 1024}}
  norm.rms_norm x(%x : memref<?x9223372036854775807xf32>) -> y(%y : memref<?x9223372036854775807xf32>) eps = 1.0e-05 config = <gpu, vector_width = 4>
  return
}

// -----

// min_blocks_per_sm blocks of the block's threads must fit the 2048 threads
// of a multiprocessor, with the knobs the lowering fills in (a warp per row).
func.func @too_many_blocks_per_sm(%x: memref<?x1024xf32>, %y: memref<?x1024xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config asks for min_blocks_per_sm = 9 blocks of 256 threads on a multiprocessor, 2304 threads, more than the 2048 it holds}}
  norm.rms_norm x(%x : memref<?x1024xf32>) -> y(%y : memref<?x1024xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 128, rows_per_block = 2, min_blocks_per_sm = 9>
  return
}

// -----

func.func @too_many_blocks_default_block(%x: memref<?x1024xf32>, %y: memref<?x1024xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op config asks for min_blocks_per_sm = 32 blocks of 128 threads on a multiprocessor, 4096 threads, more than the 2048 it holds}}
  norm.rms_norm x(%x : memref<?x1024xf32>) -> y(%y : memref<?x1024xf32>) eps = 1.0e-05 config = <gpu, rows_per_block = 4, min_blocks_per_sm = 32>
  return
}
