// `normjit bench` times a kernel and a memcpy of the same bytes. Only the
// shape of the report is checked, never a timing.

// RUN: normjit bench --op rms_norm --rows 64 --cols 256 --reps 3 --warmup 1 --min-time 0 --json | FileCheck %s --check-prefix=JSON
// JSON: {"op":"rms_norm","rows":64,"cols":256,"dtype":"f32","residual":false,
// JSON-SAME: "threads":{{[0-9]+}},"config":"#norm.config<cpu,
// JSON-SAME: "compile_ms":{{[0-9.]+}},"median_us":{{[0-9.]+}},"min_us":{{[0-9.]+}},
// JSON-SAME: "gbps":{{[0-9.]+}},"memcpy_gbps":{{[0-9.]+}},
// JSON-SAME: "reps":{{[0-9]+}}

// The fused pre-norm block in bf16, as a table.
// RUN: normjit bench --op layer_norm --rows 33 --cols 300 --dtype bf16 --residual --threads 1 --reps 2 --warmup 0 --min-time 0 | FileCheck %s --check-prefix=TABLE
// TABLE:      spec        layer_norm rows=33 cols=300 x=bf16 y=bf16 residual=bf16 sum=bf16 gamma=bf16 beta=bf16 eps=1e-05
// TABLE-NEXT: residual    fused pre-norm block: y = norm(x + residual), the sum stored too
// TABLE-NEXT: config      #norm.config<cpu,
// TABLE-NEXT: threads     1
// TABLE-NEXT: compile     {{[0-9.]+}} ms
// TABLE-NEXT: time        {{[0-9.]+}} us median, {{[0-9.]+}} us min, 2 reps
// TABLE-NEXT: bytes       80400 read + written per call
// TABLE-NEXT: bandwidth   {{[0-9.]+}} GB/s
// TABLE-NEXT: memcpy      {{[0-9.]+}} GB/s (40200 bytes copied per call on 1 thread)
// TABLE-NEXT: of memcpy   {{[0-9.]+}} %
// The spec's default is timed; where the row count is known, 33 such rows
// (16-bit, the sum stored) are normalized in pairs.
// TABLE-NEXT: rows hint   where the row count is known (TunedKernels, run, aot --rows-hint), the default for 33 rows is #norm.config<cpu, {{.*}}threads = 1, {{.*}}row_group = 2>

// Not where both defaults agree (8192 rows of 768 bf16 columns: 12 MiB),
// nor with --config or --versus.
// RUN: normjit bench --op layer_norm --rows 8192 --cols 768 --dtype bf16 --threads 1 --reps 1 --warmup 0 --min-time 0 | FileCheck %s --check-prefix=NO-HINT --implicit-check-not="rows hint"
// RUN: normjit bench --op layer_norm --rows 64 --cols 768 --dtype bf16 --threads 1 --reps 1 --warmup 0 --min-time 0 --config '#norm.config<cpu, accumulators = 2>' | FileCheck %s --check-prefix=NO-HINT --implicit-check-not="rows hint"
// NO-HINT: of memcpy
// RUN: normjit bench --op layer_norm --rows 64 --cols 768 --dtype bf16 --threads 1 --reps 1 --warmup 0 --min-time 0 --json | FileCheck %s --check-prefix=JSON-HINT
// JSON-HINT: "config":"#norm.config<cpu, {{[^"]*}}rows_per_task = 42, {{[^"]*}}","rows_default_config":"#norm.config<cpu, {{[^"]*}}rows_per_task = 48, {{[^"]*}}row_group = 8>"

// Each buffer in its own dtype, the residual's sum not stored, the row
// statistics stored: 64x100 bf16 x (12800 bytes), an f32 residual and y
// (25600 each), f32 gamma and beta (400 each), mean and rstd (256 each).
// RUN: normjit bench --op layer_norm --rows 64 --cols 100 --dtype f32 --x-dtype bf16 --residual --no-store-sum --store-mean --store-rstd --threads 1 --reps 2 --warmup 0 --min-time 0 | FileCheck %s --check-prefix=MIXED
// MIXED:      spec        layer_norm rows=64 cols=100 x=bf16 y=f32 residual=f32 gamma=f32 beta=f32 mean=f32 rstd=f32 eps=1e-05
// MIXED-NEXT: residual    fused pre-norm block: y = norm(x + residual), the sum not stored
// MIXED:      bytes       65312 read + written per call
// RUN: normjit bench --op layer_norm --rows 64 --cols 100 --dtype f32 --x-dtype bf16 --residual --no-store-sum --store-mean --store-rstd --reps 1 --warmup 0 --min-time 0 --json | FileCheck %s --check-prefix=MIXED-JSON
// MIXED-JSON: "dtype":"bf16","residual":true,"store_sum":false,"gamma":true,"beta":true,"store_mean":true,"store_rstd":true,"x_dtype":"bf16","y_dtype":"f32","residual_dtype":"f32","gamma_dtype":"f32","beta_dtype":"f32",
// --eps sets the spec's epsilon, as in tune and aot, checked alike.
// RUN: normjit bench --op rms_norm --rows 4 --cols 64 --eps 1e-3 --threads 1 --reps 1 --warmup 0 --min-time 0 | FileCheck %s --check-prefix=EPS
// EPS: spec        rms_norm rows=4 cols=64 x=f32 y=f32 gamma=f32 eps=0.001
// RUN: not normjit bench --op rms_norm --rows 4 --cols 64 --eps 0 2>&1 | FileCheck %s --check-prefix=EPS-BAD
// EPS-BAD: normjit: error: --eps must be positive and finite as an f32, got '0'
// RUN: not normjit bench --op rms_norm --rows 4 --cols 16 --store-mean 2>&1 | FileCheck %s --check-prefix=RMS-MEAN
// RMS-MEAN: normjit: error: rms_norm computes no mean; store_mean must be 0
// RUN: not normjit bench --op rms_norm --rows 4 --cols 16 --gamma-dtype f8 2>&1 | FileCheck %s --check-prefix=BAD-DTYPE
// BAD-DTYPE: normjit: error: unknown --gamma-dtype 'f8'; expected f32, f16 or bf16
// A dtype for a buffer the spec does not have is refused, not dropped.
// RUN: not normjit bench --op rms_norm --rows 4 --cols 16 --residual-dtype bf16 2>&1 | FileCheck %s --check-prefix=NO-RESIDUAL
// NO-RESIDUAL: normjit: error: --residual-dtype given, but the spec has no residual (add --residual)
// RUN: not normjit bench --op rms_norm --rows 4 --cols 16 --residual --no-store-sum --sum-dtype bf16 2>&1 | FileCheck %s --check-prefix=NO-SUM
// NO-SUM: normjit: error: --sum-dtype given, but the spec has no sum (a sum is stored with --residual, unless --no-store-sum)
// RUN: not normjit tune --op rms_norm --rows 4 --cols 16 --beta-dtype f16 2>&1 | FileCheck %s --check-prefix=NO-BETA
// NO-BETA: normjit: error: --beta-dtype given, but the spec has no beta (add --beta)
// RUN: not normjit aot --op layer_norm --cols 16 --no-gamma --gamma-dtype f16 --name k --out %t-aot 2>&1 | FileCheck %s --check-prefix=NO-GAMMA
// NO-GAMMA: normjit: error: --gamma-dtype given, but the spec has no gamma (add --gamma)

// --no-gamma, and beta switched on for rms_norm.
// RUN: normjit bench --op rms_norm --rows 4 --cols 16 --no-gamma --beta --reps 1 --warmup 0 --min-time 0 --json | FileCheck %s --check-prefix=FLAGS
// FLAGS: "gamma":false,"beta":true,

// Bad input: one line, exit code 1.
// DEFINE: %{check} = FileCheck %s --implicit-check-not={{.}} --check-prefix
// RUN: not normjit bench --op rms_norm --rows -1 --cols 256 2>&1 | %{check}=ROWS
// ROWS: normjit: error: --rows must be at least 1, got -1
// RUN: not normjit bench --op rms_norm --rows 64 --cols 0 2>&1 | %{check}=COLS
// COLS: normjit: error: --cols must be at least 1, got 0
// RUN: not normjit bench --op rms_norm --cols 8 2>&1 | %{check}=NO-ROWS
// NO-ROWS: normjit: error: missing required option '--rows' (see 'normjit bench --help')
// RUN: not normjit bench --op rms_norm --rows 1 --cols 8 --dtype f64 2>&1 | %{check}=DTYPE
// DTYPE: normjit: error: unknown --dtype 'f64'; expected f32, f16 or bf16
// RUN: not normjit bench --op rms_norm --rows 1 --cols 8 --reps 0 2>&1 | %{check}=REPS
// REPS: normjit: error: --reps must be at least 1, got 0
// RUN: not normjit bench --op rms_norm --rows 1 --cols 8 --min-time -1 2>&1 | %{check}=MIN-TIME
// MIN-TIME: normjit: error: --min-time must be a number of seconds from 0 to 3600, got '-1'
// RUN: not normjit bench --op rms_norm --rows 1 --cols 8 --min-time 1e308 2>&1 | %{check}=HUGE-MIN-TIME
// HUGE-MIN-TIME: normjit: error: --min-time must be a number of seconds from 0 to 3600, got '1e308'
// RUN: not normjit bench --op rms_norm --rows 1 --cols 8 --reps 99999999999 2>&1 | %{check}=HUGE-REPS
// HUGE-REPS: normjit: error: --reps must be at most 100000000, got 99999999999
// RUN: not normjit bench --op rms_norm --rows 1 --cols 8 --warmup 99999999999 2>&1 | %{check}=HUGE-WARMUP
// HUGE-WARMUP: normjit: error: --warmup must be at most 100000000, got 99999999999
// RUN: not normjit bench --op rms_norm --rows 1 --cols 8 --residual=1 2>&1 | %{check}=FLAG-VALUE
// FLAG-VALUE: normjit: error: option '--residual' takes no value
// RUN: not normjit bench --op rms_norm --rows 1 --cols 8 --no-json 2>&1 | %{check}=NO-JSON
// NO-JSON: normjit: error: unknown option '--no-json' for 'normjit bench'{{.*}}

// A given config (e.g. one from the tuning cache); absent knobs keep the
// default heuristic's values; bad configs are one-line errors.
// RUN: normjit bench --op layer_norm --rows 8 --cols 64 --reps 2 --warmup 0 --min-time 0 --config '#norm.config<cpu, vector_width = 4, accumulators = 3, threads = 1>' | FileCheck %s --check-prefix=CONFIG
// CONFIG: config      #norm.config<cpu, vector_width = 4, fuse_residual = true, accumulators = 3, rows_per_task = {{[0-9]+}}, threads = 1,
// The config's threads are the kernel's, and the memcpy's beside it.
// RUN: normjit bench --op rms_norm --rows 64 --cols 1000 --reps 2 --warmup 0 --min-time 0 --config '#norm.config<cpu, rows_per_task = 1, threads = 1>' | FileCheck %s --check-prefix=CONFIG-THREADS
// CONFIG-THREADS: threads     1 (1 task of up to 64 rows)
// CONFIG-THREADS: memcpy {{.*}} on 1 thread)
// RUN: not normjit bench --op layer_norm --rows 8 --cols 64 --config '#norm.config<gpu, threads_per_row = 32>' 2>&1 | FileCheck %s --check-prefix=GPUCONFIG
// GPUCONFIG: normjit: error: --config '#norm.config<gpu, threads_per_row = 32>' is a GPU config, but --device is cpu; give a #norm.config<cpu, ...> or --device cuda:N
// RUN: not normjit bench --op layer_norm --rows 8 --cols 64 --config '#norm.config<cpu, vector_width = 12>' 2>&1 | FileCheck %s --check-prefix=BADCONFIG
// BADCONFIG: normjit: error: invalid config {{.*}}'vector_width' must be a power of two, got 12

// --versus times a second CPU config in turns with the first, on the same
// buffers, and reports the ratio (never checked: a timing).
// RUN: normjit bench --op layer_norm --rows 16 --cols 64 --reps 7 --warmup 0 --min-time 0 --config '#norm.config<cpu, vector_width = 4>' --versus '#norm.config<cpu, vector_width = 8, algorithm = two_pass>' | FileCheck %s --check-prefix=VERSUS
// VERSUS:      config      #norm.config<cpu, vector_width = 4,
// VERSUS:      versus      #norm.config<cpu, vector_width = 8, {{.*}}algorithm = two_pass,
// VERSUS-NEXT: its time    {{[0-9.]+}} us median ({{[0-9.]+}} GB/s), in turns with the config above over 7 rounds
// VERSUS-NEXT: ratio       {{[0-9.]+}} (versus time / config time; > 1: the config is faster)
// RUN: normjit bench --op rms_norm --rows 4 --cols 32 --reps 1 --warmup 0 --min-time 0 --versus '#norm.config<cpu, accumulators = 1>' --json | FileCheck %s --check-prefix=VERSUS-JSON
// VERSUS-JSON: "versus_config":"#norm.config<cpu, {{.*}}accumulators = 1,
// VERSUS-JSON-SAME: "versus_median_us":{{[0-9.]+}},"versus_gbps":{{[0-9.]+}},"versus_ratio":{{[0-9.]+}}
// A thread count the versus config names is kept (without --threads);
// one it leaves out is the first config's.
// RUN: normjit bench --op rms_norm --rows 4 --cols 32 --reps 1 --warmup 0 --min-time 0 --versus '#norm.config<cpu, threads = 1>' --json | FileCheck %s --check-prefix=VERSUS-THREADS
// VERSUS-THREADS: "versus_config":"#norm.config<cpu, {{.*}}threads = 1,
// RUN: normjit bench --op rms_norm --rows 4 --cols 32 --reps 1 --warmup 0 --min-time 0 --config '#norm.config<cpu, threads = 1>' --versus '#norm.config<cpu, accumulators = 2>' --json | FileCheck %s --check-prefix=VERSUS-FIRST-THREADS
// VERSUS-FIRST-THREADS: "versus_config":"#norm.config<cpu, {{.*}}accumulators = 2, {{.*}}threads = 1,
// RUN: normjit bench --op rms_norm --rows 4 --cols 32 --reps 1 --warmup 0 --min-time 0 --threads 1 --versus '#norm.config<cpu, threads = 2>' --json | FileCheck %s --check-prefix=VERSUS-OPTION-THREADS
// VERSUS-OPTION-THREADS: "versus_config":"#norm.config<cpu, {{.*}}threads = 1,
// RUN: not normjit bench --op rms_norm --rows 4 --cols 32 --versus '#norm.config<cpu, vector_width = 3>' 2>&1 | FileCheck %s --check-prefix=BAD-VERSUS
// BAD-VERSUS: normjit: error: --versus: invalid config {{.*}}'vector_width' must be a power of two, got 3
// RUN: not normjit bench --op rms_norm --rows 4 --cols 32 --device cuda --versus '#norm.config<cpu>' 2>&1 | FileCheck %s --check-prefix=GPU-VERSUS
// GPU-VERSUS: normjit: error: --versus compares CPU configs; it cannot be used with --device cuda
