// RUN: cp %S/Inputs/sweep-small.toml %t.same.toml
// RUN: not normjit tune --sweep %t.same.toml --cache %t.same.toml 2>&1 | FileCheck %s --check-prefix=SAME
// RUN: ls %t.same.toml
// SAME: normjit: error: the tuning cache '{{.*}}same.toml' is the sweep file; give another --cache
// RUN: not normjit tune --sweep %S/Inputs/sweep-unknown-key.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=KEY
// RUN: not normjit tune --sweep %S/Inputs/sweep-wrong-type.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=TYPE
// RUN: not normjit tune --sweep %S/Inputs/sweep-bad-op.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=OP
// RUN: not normjit tune --sweep %S/Inputs/sweep-not-toml.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=SYNTAX
// RUN: not normjit tune --sweep %S/Inputs/sweep-tiny-eps.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=TINY-EPS
// TINY-EPS: normjit: error: malformed sweep file {{.*}}sweep-tiny-eps.toml:6: 'eps' must be positive and finite as an f32, got 1e-50
// A value out of range is said at its own line, in an array over lines.
// RUN: printf '[[sweep]]\nops = ["rms_norm"]\ncols = [64]\nrows = [\n  1,\n  0,\n]\n' > %t.rows.toml
// RUN: not normjit tune --sweep %t.rows.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=ROWS-LINE
// ROWS-LINE: normjit: error: malformed sweep file {{.*}}rows.toml:6: 'rows' must be in [1, 2^40], got 0
// RUN: printf '[[sweep]]\nops = ["rms_norm",\n  "rms_nrom"]\ncols = [64]\nrows = [1]\n' > %t.ops.toml
// RUN: not normjit tune --sweep %t.ops.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=OPS-LINE
// OPS-LINE: normjit: error: malformed sweep file {{.*}}ops.toml:3: unknown op 'rms_nrom'
// RUN: printf '[[sweep]]\nops = ["rms_norm"]\ncols = [64]\nrows = [1]\ndtypes = ["f32",\n  "f64"]\n' > %t.dtypes.toml
// RUN: not normjit tune --sweep %t.dtypes.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=DTYPES-LINE
// DTYPES-LINE: normjit: error: malformed sweep file {{.*}}dtypes.toml:6: unknown dtype 'f64'
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --eps 1e-50 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=TINY-EPS-FLAG
// TINY-EPS-FLAG: normjit: error: --eps must be positive and finite as an f32, got '1e-50'
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --eps 1e39 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=HUGE-EPS-FLAG
// HUGE-EPS-FLAG: normjit: error: --eps must be positive and finite as an f32, got '1e39'
// RUN: not normjit tune --sweep %t.missing.toml --cache %t.toml 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not normjit tune --sweep %S/Inputs/sweep-small.toml --shard 2/2 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=SHARD
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --shard 0/2 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=SHARDSPEC
// RUN: not normjit tune --sweep %S/Inputs/sweep-small.toml --op rms_norm --cache %t.toml 2>&1 | FileCheck %s --check-prefix=BOTH
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --budget 0 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=BUDGET
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --strategy annealing --cache %t.toml 2>&1 | FileCheck %s --check-prefix=STRATEGY
// RUN: not normjit tune --op rms_norm --rows 0 --cols 64 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=ROWS
// RUN: not normjit tune --rows 8 --cols 64 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=NOOP
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --threads -1 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=THREADS
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --threads 1 --device cuda --cache %t.toml 2>&1 | FileCheck %s --check-prefix=THREADSGPU
// Where the results go is checked before any tuning: nothing is tuned (no
// progress line) when the cache or the report directory cannot be written.
// RUN: rm -rf %t.dir && mkdir -p %t.dir/c.toml.lock && touch %t.dir/file
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --cache %t.dir/c.toml 2>&1 | FileCheck %s --check-prefix=CACHE-LOCK --implicit-check-not=GB/s
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --cache %t.toml --report %t.dir/file/report 2>&1 | FileCheck %s --check-prefix=REPORT-DIR --implicit-check-not=GB/s
// CACHE-LOCK: normjit: error: cannot write tuning cache '{{.*}}c.toml': cannot open '{{.*}}c.toml.lock': Is a directory
// REPORT-DIR: normjit: error: cannot create report directory '{{.*}}file/report': {{.*}}
// RUN: not normjit tune --op rms_norm --rows 8 --cols 64 --cache %t.toml --report %t.dir/file 2>&1 | FileCheck %s --check-prefix=REPORT-FILE --implicit-check-not=GB/s
// REPORT-FILE: normjit: error: cannot create report directory '{{.*}}file': a file of that name exists and is not a directory
// A cache that already holds every spec asked for need not be writable (a
// shared, read-only one): it is read, and nothing is tuned.
// RUN: rm -rf %t.ro && mkdir %t.ro
// RUN: normjit tune --op rms_norm --rows 8 --cols 64 --budget 0.1 --cache %t.ro/c.toml > /dev/null
// RUN: rm %t.ro/c.toml.lock && mkdir %t.ro/c.toml.lock
// RUN: normjit tune --op rms_norm --rows 8 --cols 64 --cache %t.ro/c.toml | FileCheck %s --check-prefix=CACHED-RO
// CACHED-RO: cached {{.*}}#norm.config<cpu,
// A spec whose one row is larger than any tuning workload is refused
// before anything is allocated.
// RUN: not normjit tune --op rms_norm --rows 1 --cols 100000000 --cache %t.toml 2>&1 | FileCheck %s --check-prefix=HUGE-ROW --implicit-check-not=GB/s
// HUGE-ROW: normjit: error: rms_norm rows=1 cols=100000000 {{.*}}: cannot be tuned: one row of 100000000 columns takes 762 MiB of buffers, more than the 512 MiB a tuning workload may use
// Bad tune command lines and malformed sweep files: one line on stderr
// naming the file, line and reason; exit code 1.

// KEY: normjit: error: malformed sweep file {{.*}}sweep-unknown-key.toml:5: unknown key 'colz'
// TYPE: normjit: error: malformed sweep file {{.*}}sweep-wrong-type.toml:3: 'cols' holds a value of the wrong type
// OP: normjit: error: malformed sweep file {{.*}}sweep-bad-op.toml:2: unknown op 'group_norm'
// SYNTAX: normjit: error: malformed sweep file {{.*}}sweep-not-toml.toml:1:
// MISSING: normjit: error: cannot read sweep file '{{.*}}': No such file or directory
// SHARD: normjit: error: --shard expects I/N with 0 <= I < N, got '2/2'
// SHARDSPEC: normjit: error: --shard splits a sweep; it needs --sweep
// BOTH: normjit: error: --op describes one spec; it cannot be combined with --sweep
// BUDGET: normjit: error: --budget must be a positive number of seconds
// STRATEGY: normjit: error: --strategy must be halving, random or exhaustive, got 'annealing'
// ROWS: normjit: error: --rows must be at least 1, got 0
// NOOP: normjit: error: missing required option '--op'
// THREADS: normjit: error: --threads must be in [0, 1024], got -1
// THREADSGPU: normjit: error: --threads sets CPU worker threads; it cannot be used with --device cuda
