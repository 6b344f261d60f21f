// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// The #norm.config verifier: ranges, powers of two, knobs of the wrong
// backend, impossible combinations.

// expected-error @+1 {{'vector_width' must be a power of two, got 12}}
#c = #norm.config<cpu, vector_width = 12>

// -----

// expected-error @+1 {{'vector_width' must be in [1, 64], got 128}}
#c = #norm.config<cpu, vector_width = 128>

// -----

// expected-error @+1 {{'vector_width' must be in [1, 8], got 16}}
#c = #norm.config<gpu, vector_width = 16>

// -----

// expected-error @+1 {{'vector_width' must be in [1, 64], got 0}}
#c = #norm.config<cpu, vector_width = 0>

// -----

// expected-error @+1 {{'accumulators' must be in [1, 16], got 17}}
#c = #norm.config<cpu, accumulators = 17>

// -----

// expected-error @+1 {{'rows_per_task' must be in [1, 65536], got -4}}
#c = #norm.config<cpu, rows_per_task = -4>

// -----

// expected-error @+1 {{'threads' must be in [1, 1024], got -1}}
#c = #norm.config<cpu, threads = -1>

// -----

// expected-error @+1 {{'threads' is a cpu knob; it is not valid for backend 'gpu'}}
#c = #norm.config<gpu, threads = 0>

// -----

// expected-error @+1 {{'threads_per_row' must be in [1, 1024], got 2048}}
#c = #norm.config<gpu, threads_per_row = 2048>

// -----

// expected-error @+1 {{'threads_per_row' must be a power of two, got 96}}
#c = #norm.config<gpu, threads_per_row = 96>

// -----

// expected-error @+1 {{'rows_per_block' must be in [1, 1024], got 0}}
#c = #norm.config<gpu, rows_per_block = 0>

// -----

// expected-error @+1 {{threads_per_row * rows_per_block = 2048 exceeds 1024 threads per block}}
#c = #norm.config<gpu, threads_per_row = 256, rows_per_block = 8>

// -----

// expected-error @+1 {{'elements_per_thread' must be in [1, 1024], got 4096}}
#c = #norm.config<gpu, elements_per_thread = 4096>

// -----

// expected-error @+1 {{elements_per_thread (6) must be a multiple of vector_width (4)}}
#c = #norm.config<gpu, elements_per_thread = 6, vector_width = 4>

// -----

// expected-error @+1 {{'threads_per_row' is a gpu knob; it is not valid for backend 'cpu'}}
#c = #norm.config<cpu, vector_width = 8, threads_per_row = 32>

// -----

// expected-error @+1 {{'algorithm' is a cpu knob; it is not valid for backend 'gpu'}}
#c = #norm.config<gpu, algorithm = welford>

// -----

// expected-error @+1 {{'streaming_stores' is a cpu knob; it is not valid for backend 'gpu'}}
#c = #norm.config<gpu, streaming_stores = true>

// -----

// expected-error @+1 {{'prefetch_rows' is a cpu knob; it is not valid for backend 'gpu'}}
#c = #norm.config<gpu, prefetch_rows = 2>

// -----

// expected-error @+1 {{'prefetch_rows' must be in [0, 16], got 17}}
#c = #norm.config<cpu, prefetch_rows = 17>

// -----

// expected-error @+1 {{'prefetch_rows' must be in [0, 16], got -1}}
#c = #norm.config<cpu, prefetch_rows = -1>

// -----

// expected-error @+1 {{'row_group' is a cpu knob; it is not valid for backend 'gpu'}}
#c = #norm.config<gpu, row_group = 2>

// -----

// expected-error @+1 {{'row_group' must be in [1, 64], got -2}}
#c = #norm.config<cpu, row_group = -2>

// -----

// expected-error @+1 {{'row_group' must be in [1, 64], got 65}}
#c = #norm.config<cpu, row_group = 65>

// -----

// expected-error @+1 {{'persistent' is a gpu knob; it is not valid for backend 'cpu'}}
#c = #norm.config<cpu, persistent = true>

// -----

// expected-error @+1 {{'min_blocks_per_sm' is a gpu knob; it is not valid for backend 'cpu'}}
#c = #norm.config<cpu, min_blocks_per_sm = 2>

// -----

// expected-error @+1 {{'min_blocks_per_sm' must be in [0, 32], got 33}}
#c = #norm.config<gpu, min_blocks_per_sm = 33>

// -----

// expected-error @+1 {{'min_blocks_per_sm' must be in [0, 32], got -1}}
#c = #norm.config<gpu, min_blocks_per_sm = -1>
