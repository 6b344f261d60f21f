// RUN: normjit-opt %s --split-input-file --verify-diagnostics
// Malformed #norm.config text: every error has a location and a reason.

// expected-error @+1 {{expected the backend ('cpu' or 'gpu') as the first entry of #norm.config, got 'tpu'}}
#c = #norm.config<tpu>

// -----

// expected-error @+1 {{expected the backend ('cpu' or 'gpu') as the first entry of #norm.config}}
#c = #norm.config<vector_width = 8>

// -----

// expected-error @+1 {{unknown config key 'tile_size'; known keys: vector_width, fuse_residual, accumulators, rows_per_task, threads, algorithm, streaming_stores, prefetch_rows, row_group, threads_per_row, rows_per_block, elements_per_thread, row_storage, persistent, min_blocks_per_sm}}
#c = #norm.config<cpu, tile_size = 8>

// -----

// expected-error @+1 {{duplicate config key 'vector_width'}}
#c = #norm.config<cpu, vector_width = 8, vector_width = 16>

// -----

// expected-error @+1 {{expected an integer for 'accumulators'}}
#c = #norm.config<cpu, accumulators = four>

// -----

// expected-error @+1 {{expected an integer for 'accumulators'}}
#c = #norm.config<cpu, accumulators = true>

// -----

// expected-error @+1 {{expected an integer for 'threads_per_row'}}
#c = #norm.config<gpu, threads_per_row = false>

// -----

// expected-error @+1 {{expected 'true' or 'false' for 'streaming_stores'}}
#c = #norm.config<cpu, streaming_stores = 1>

// -----

// expected-error @+1 {{unknown value 'kahan' for 'algorithm', expected 'two_pass' or 'welford'}}
#c = #norm.config<cpu, algorithm = kahan>

// -----

// expected-error @+1 {{unknown value 'texture' for 'row_storage', expected 'registers', 'shared' or 'global'}}
#c = #norm.config<gpu, row_storage = texture>

// -----

// expected-error @+1 {{expected '='}}
#c = #norm.config<cpu, vector_width 8>

// -----

// expected-error @+1 {{expected '>'}}
#c = #norm.config<cpu vector_width = 8>

// -----

// expected-error @+1 {{integer value too large}}
#c = #norm.config<cpu, rows_per_task = 99999999999999999999999>

// -----

// expected-error @+1 {{expected the backend ('cpu' or 'gpu') as the first entry of #norm.config}}
#c = #norm.config<8>

// -----

// expected-error @+1 {{expected a config key}}
#c = #norm.config<cpu, = 8>

// -----

// expected-error @+1 {{expected 'two_pass' or 'welford' for 'algorithm'}}
#c = #norm.config<cpu, algorithm = 3>
