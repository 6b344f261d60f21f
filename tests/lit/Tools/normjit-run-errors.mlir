// `normjit run` fails on bad input with exit code 1 and exactly one line,
// `normjit: error: ...`, and creates no output file.

// DEFINE: %{npy} = %python %S/Inputs/npy.py
// DEFINE: %{check} = FileCheck %s --implicit-check-not={{.}} --check-prefix
// RUN: rm -rf %t && mkdir %t %t/out
// RUN: %{npy} gen %t/x.npy --dtype f32 --shape 4,8
// RUN: %{npy} gen %t/r.npy --dtype f32 --shape 4,7
// RUN: %{npy} gen %t/g.npy --dtype f32 --shape 7
// RUN: %{npy} gen %t/f8.npy --dtype f64 --shape 4,8
// RUN: %{npy} gen %t/truncated.npy --dtype f32 --shape 4,8 --truncate 4
// RUN: echo "not a .npy file" > %t/text.npy

// RUN: not normjit run --op layer_norm --out %t/out/y.npy 2>&1 | %{check}=NO-X
// NO-X: normjit: error: missing required option '--x' (see 'normjit run --help')

// RUN: not normjit run --op layer_norm --x %t/x.npy 2>&1 | %{check}=NO-OUT
// NO-OUT: normjit: error: missing required option '--out'{{.*}}

// RUN: not normjit run --op layer_norm --x %t/missing.npy --out %t/out/y.npy 2>&1 | %{check}=MISSING
// MISSING: normjit: error: --x: cannot open '{{.*}}missing.npy': No such file or directory

// RUN: not normjit run --op layer_norm --x %t/text.npy --out %t/out/y.npy 2>&1 | %{check}=NOT-NPY
// NOT-NPY: normjit: error: --x: {{.*}}text.npy: not a .npy file (bad magic)

// RUN: not normjit run --op layer_norm --x %t/truncated.npy --out %t/out/y.npy 2>&1 | %{check}=TRUNCATED
// TRUNCATED: normjit: error: --x: {{.*}}truncated.npy: truncated data: expected 128 bytes, found 124

// RUN: not normjit run --op layer_norm --x %t/f8.npy --out %t/out/y.npy 2>&1 | %{check}=F8
// F8: normjit: error: --x: {{.*}}f8.npy: unsupported dtype '<f8'; expected <f4 (f32), <f2 (f16) or <u2 (bf16 bits)

// RUN: %{npy} gen %t/x0.npy --dtype f32 --shape ""
// RUN: not normjit run --op layer_norm --x %t/x0.npy --out %t/out/y.npy 2>&1 | %{check}=RANK
// RANK: normjit: error: --x: '{{.*}}x0.npy' has shape () but must have at least one dimension: rows of the last one's length

// RUN: not normjit run --op rms_norm --x %t/x.npy --residual %t/r.npy --out %t/out/y.npy 2>&1 | %{check}=RESIDUAL
// RESIDUAL: normjit: error: --residual: '{{.*}}r.npy' has shape (4, 7) but must have the shape of --x '{{.*}}x.npy', (4, 8)

// RUN: not normjit run --op layer_norm --x %t/x.npy --gamma %t/g.npy --out %t/out/y.npy 2>&1 | %{check}=GAMMA
// GAMMA: normjit: error: --gamma: '{{.*}}g.npy' has shape (7,) but must have shape (8,), the cols of --x '{{.*}}x.npy'

// RUN: not normjit run --op layer_norm --x %t/x.npy --beta %t/x.npy --out %t/out/y.npy 2>&1 | %{check}=BETA
// BETA: normjit: error: --beta: '{{.*}}x.npy' has shape (4, 8) but must have shape (8,){{.*}}

// RUN: not normjit run --op layer_norm --x %t/x.npy --eps 0 --out %t/out/y.npy 2>&1 | %{check}=EPS-ZERO
// EPS-ZERO: normjit: error: --eps must be positive and finite as an f32, got '0'

// RUN: not normjit run --op layer_norm --x %t/x.npy --eps -1 --out %t/out/y.npy 2>&1 | %{check}=EPS-NEGATIVE
// EPS-NEGATIVE: normjit: error: --eps must be positive and finite as an f32, got '-1'

// RUN: not normjit run --op layer_norm --x %t/x.npy --eps nan --out %t/out/y.npy 2>&1 | %{check}=EPS-NAN
// EPS-NAN: normjit: error: --eps must be positive and finite as an f32, got 'nan'

// RUN: not normjit run --op rms_norm --x %t/x.npy --eps 1e-60 --out %t/out/y.npy 2>&1 | %{check}=EPS-TINY
// EPS-TINY: normjit: error: --eps must be positive and finite as an f32, got '1e-60'

// RUN: not normjit run --op layer_norm --x %t/x.npy --eps 1e-5x --out %t/out/y.npy 2>&1 | %{check}=EPS-TEXT
// EPS-TEXT: normjit: error: option '--eps' expects a number, got '1e-5x'

// RUN: not normjit run --op group_norm --x %t/x.npy --out %t/out/y.npy 2>&1 | %{check}=OP
// OP: normjit: error: unknown --op 'group_norm'; expected layer_norm or rms_norm

// RUN: not normjit run --op layer_norm --x %t/x.npy --out-dtype f64 --out %t/out/y.npy 2>&1 | %{check}=OUT-DTYPE
// OUT-DTYPE: normjit: error: unknown --out-dtype 'f64'; expected f32, f16 or bf16

// RUN: not normjit run --op layer_norm --x %t/x.npy --device tpu --out %t/out/y.npy 2>&1 | %{check}=DEVICE
// DEVICE: normjit: error: unknown --device 'tpu'; expected cpu, cuda or cuda:N (N a CUDA device number, see 'normjit devices')

// RUN: not normjit run --op rms_norm --x %t/x.npy --mean-out %t/out/mean.npy --out %t/out/y.npy 2>&1 | %{check}=MEAN
// MEAN: normjit: error: --mean-out is only for layer_norm: rms_norm computes no mean

// RUN: not normjit run --op rms_norm --x %t/x.npy --sum-out %t/out/sum.npy --out %t/out/y.npy 2>&1 | %{check}=SUM
// SUM: normjit: error: --sum-out needs --residual: without one the sum would only copy x

// RUN: not normjit run --op rms_norm --x %t/x.npy --bogus 1 --out %t/out/y.npy 2>&1 | %{check}=UNKNOWN
// UNKNOWN: normjit: error: unknown option '--bogus' for 'normjit run' (see 'normjit run --help')

// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy stray 2>&1 | %{check}=POSITIONAL
// POSITIONAL: normjit: error: unexpected argument 'stray' for 'normjit run'{{.*}}

// RUN: not normjit run --op rms_norm --x --out %t/out/y.npy 2>&1 | %{check}=NO-VALUE
// NO-VALUE: normjit: error: option '--x' needs a value (FILE)

// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --threads 2x 2>&1 | %{check}=THREADS
// THREADS: normjit: error: option '--threads' expects an integer, got '2x'

// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --threads -2 2>&1 | %{check}=THREADS-NEGATIVE
// THREADS-NEGATIVE: normjit: error: --threads must be in [0, 1024], got -2

// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --verbose=yes 2>&1 | %{check}=FLAG-VALUE
// FLAG-VALUE: normjit: error: option '--verbose' takes no value

// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --op layer_norm 2>&1 | %{check}=TWICE
// TWICE: normjit: error: option '--op' is given more than once

// RUN: not normjit run --op layer_norm --x %t/x.npy --out %t/out/y.npy --mean-out %t/out/y.npy 2>&1 | %{check}=SAME
// SAME: normjit: error: --out and --mean-out name the same file '{{.*}}y.npy'

// RUN: not normjit run --op layer_norm --x %t/x.npy --out %t/no-such-dir/y.npy 2>&1 | %{check}=WRITE
// WRITE: normjit: error: --out: cannot write '{{.*}}no-such-dir/y.npy': {{.*}}

// Outputs are all or none: a later output that cannot be written leaves
// the earlier ones unwritten too.
// RUN: %{npy} gen %t/r48.npy --dtype f32 --shape 4,8
// RUN: not normjit run --op layer_norm --x %t/x.npy --residual %t/r48.npy --out %t/out/y.npy --sum-out %t/out/s.npy --rstd-out %t/no-such-dir/rstd.npy 2>&1 | %{check}=LAST-WRITE
// LAST-WRITE: normjit: error: --rstd-out: cannot write '{{.*}}no-such-dir/rstd.npy': {{.*}}

// No failure above left a file (or a temporary) behind.
// RUN: ls -A %t/out | count 0

// The same file spelled two ways, or through a link, is still the same file.
// RUN: not normjit run --op layer_norm --x %t/x.npy --out %t/out/y.npy --rstd-out %t/out/../out/./y.npy 2>&1 | %{check}=SAME-SPELLED
// SAME-SPELLED: normjit: error: --out and --rstd-out name the same file '{{.*}}y.npy'
// RUN: touch %t/out/real.npy && ln -sf real.npy %t/out/alias.npy
// RUN: not normjit run --op layer_norm --x %t/x.npy --out %t/out/real.npy --mean-out %t/out/alias.npy 2>&1 | %{check}=SAME-LINKED
// SAME-LINKED: normjit: error: --out and --mean-out name the same file '{{.*}}real.npy'
// A directory is not a file to write.
// RUN: mkdir -p %t/out/dir.npy
// RUN: not normjit run --op layer_norm --x %t/x.npy --out %t/out/dir.npy 2>&1 | %{check}=IS-DIR
// IS-DIR: normjit: error: --out: cannot write '{{.*}}dir.npy': it is a directory
