// `normjit run` on .npy files this test writes: LayerNorm and RMSNorm in
// f32, f16 and bf16 ('<u2' bits), checked against a float64 reference.

// DEFINE: %{npy} = %python %S/Inputs/npy.py
// RUN: rm -rf %t && mkdir %t

// LayerNorm in f32 with gamma, beta, mean and rstd; silent on success.
// RUN: %{npy} gen %t/x.npy --dtype f32 --shape 5,100 --scale 2 --offset 0.5
// RUN: %{npy} gen %t/g.npy --dtype f32 --shape 100 --seed 2 --offset 1 --scale 0.5
// RUN: %{npy} gen %t/b.npy --dtype f32 --shape 100 --seed 3 --scale 0.1
// RUN: normjit run --op layer_norm --x %t/x.npy --gamma %t/g.npy --beta %t/b.npy --out %t/ln.npy --mean-out %t/ln-mean.npy --rstd-out %t/ln-rstd.npy | count 0
// RUN: %{npy} show %t/ln.npy | FileCheck %s --check-prefix=LN-SHAPE
// RUN: %{npy} show %t/ln-mean.npy | FileCheck %s --check-prefix=STATS-SHAPE
// RUN: %{npy} show %t/ln-rstd.npy | FileCheck %s --check-prefix=STATS-SHAPE
// RUN: %{npy} check --op layer_norm --x %t/x.npy --gamma %t/g.npy --beta %t/b.npy --y %t/ln.npy --mean %t/ln-mean.npy --rstd %t/ln-rstd.npy --tol 1e-5 | FileCheck %s --check-prefix=LN
// Through /dev/stdout into a pipe (a link to what has no path): written in
// place, the same file.
// RUN: normjit run --op layer_norm --x %t/x.npy --gamma %t/g.npy --beta %t/b.npy --out /dev/stdout > %t/piped.npy
// RUN: cmp %t/piped.npy %t/ln.npy
// RUN: normjit run --op layer_norm --x %t/x.npy --gamma %t/g.npy --beta %t/b.npy --out /dev/stdout | %python -c "import sys; sys.stdout.write(str(len(sys.stdin.buffer.read())))" | FileCheck %s --check-prefix=PIPED
// PIPED: 2128
// LN-SHAPE: dtype <f4 shape (5, 100)
// STATS-SHAPE: dtype <f4 shape (5,)
// LN: OK y: 500 values
// LN-NEXT: OK mean: 5 values
// LN-NEXT: OK rstd: 5 values

// Arrays of any rank are rows of their last dimension, as torch's
// layer_norm over (cols,) reads them: (batch, tokens, hidden) is batch *
// tokens rows, the statistics have the leading dimensions' shape, and one
// row of shape (cols,) has statistics of shape ().
// RUN: %{npy} gen %t/x3.npy --dtype f32 --shape 2,3,100 --scale 2 --offset 0.5
// RUN: %{npy} gen %t/r3.npy --dtype f32 --shape 2,3,100 --seed 9
// RUN: normjit run --op layer_norm --x %t/x3.npy --residual %t/r3.npy --gamma %t/g.npy --beta %t/b.npy --out %t/ln3.npy --sum-out %t/ln3-sum.npy --mean-out %t/ln3-mean.npy --rstd-out %t/ln3-rstd.npy
// RUN: %{npy} show %t/ln3.npy | FileCheck %s --check-prefix=RANK3-SHAPE
// RUN: %{npy} show %t/ln3-mean.npy | FileCheck %s --check-prefix=RANK3-STATS
// RUN: %{npy} check --op layer_norm --x %t/x3.npy --residual %t/r3.npy --gamma %t/g.npy --beta %t/b.npy --y %t/ln3.npy --sum %t/ln3-sum.npy --mean %t/ln3-mean.npy --rstd %t/ln3-rstd.npy --tol 1e-5 | FileCheck %s --check-prefix=RANK3
// RANK3-SHAPE: dtype <f4 shape (2, 3, 100)
// RANK3-STATS: dtype <f4 shape (2, 3)
// RANK3: OK y: 600 values
// RANK3-NEXT: OK sum: 600 values
// RANK3-NEXT: OK mean: 6 values
// RANK3-NEXT: OK rstd: 6 values
// RUN: %{npy} gen %t/x1.npy --dtype f32 --shape 100 --seed 10
// RUN: normjit run --op rms_norm --x %t/x1.npy --gamma %t/g.npy --out %t/rms1.npy --rstd-out %t/rms1-rstd.npy
// RUN: %{npy} show %t/rms1-rstd.npy | FileCheck %s --check-prefix=RANK1-STATS
// RUN: %{npy} check --op rms_norm --x %t/x1.npy --gamma %t/g.npy --y %t/rms1.npy --rstd %t/rms1-rstd.npy --tol 1e-5 | FileCheck %s --check-prefix=RANK1
// RANK1-STATS: dtype <f4 shape ()
// RANK1: OK y: 100 values
// RANK1-NEXT: OK rstd: 1 values
// A residual must have x's shape, not only its element count.
// RUN: not normjit run --op layer_norm --x %t/x3.npy --residual %t/x.npy --out %t/bad.npy 2>&1 | FileCheck %s --check-prefix=RANK-MISMATCH
// RANK-MISMATCH: normjit: error: --residual: '{{.*}}x.npy' has shape (5, 100) but must have the shape of --x '{{.*}}x3.npy', (2, 3, 100)

// An explicit epsilon, the --name=value form, --device cpu and --threads.
// RUN: normjit run --op=layer_norm --x=%t/x.npy --eps=0.5 --device cpu --threads 1 --out %t/ln-eps.npy
// RUN: %{npy} check --op layer_norm --x %t/x.npy --eps 0.5 --y %t/ln-eps.npy --tol 1e-5 | FileCheck %s --check-prefix=LN-EPS
// LN-EPS: OK y: 500 values

// RMSNorm in f32 with a residual, storing the sum (which must be exact).
// RUN: %{npy} gen %t/r.npy --dtype f32 --shape 5,100 --seed 4
// RUN: normjit run --op rms_norm --x %t/x.npy --residual %t/r.npy --gamma %t/g.npy --out %t/rms.npy --sum-out %t/rms-sum.npy --rstd-out %t/rms-rstd.npy
// RUN: %{npy} check --op rms_norm --x %t/x.npy --residual %t/r.npy --gamma %t/g.npy --y %t/rms.npy --sum %t/rms-sum.npy --rstd %t/rms-rstd.npy --tol 1e-5 | FileCheck %s --check-prefix=RMS
// RMS: OK y: 500 values
// RMS-NEXT: OK sum: 500 values
// RMS-NEXT: OK rstd: 5 values

// bf16 ('<u2') in and out, with an f32 gamma: within one bf16 ulp, and the
// sum rounded to bf16 exactly as the reference rounds it.
// RUN: %{npy} gen %t/xb.npy --dtype bf16 --shape 3,257 --scale 2 --offset 0.5
// RUN: %{npy} gen %t/rb.npy --dtype bf16 --shape 3,257 --seed 5
// RUN: %{npy} gen %t/gf.npy --dtype f32 --shape 257 --seed 6 --offset 1 --scale 0.5
// RUN: normjit run --op rms_norm --x %t/xb.npy --residual %t/rb.npy --gamma %t/gf.npy --out %t/yb.npy --sum-out %t/sb.npy
// RUN: %{npy} show %t/yb.npy | FileCheck %s --check-prefix=BF16-SHAPE
// RUN: %{npy} show %t/sb.npy | FileCheck %s --check-prefix=BF16-SHAPE
// RUN: %{npy} check --op rms_norm --x %t/xb.npy --residual %t/rb.npy --gamma %t/gf.npy --y %t/yb.npy --sum %t/sb.npy --ulps 1 | FileCheck %s --check-prefix=BF16
// BF16-SHAPE: dtype <u2 shape (3, 257)
// BF16: OK y: 771 values
// BF16-NEXT: OK sum: 771 values

// LayerNorm of bf16 rows with bf16 gamma and beta.
// RUN: %{npy} gen %t/gb.npy --dtype bf16 --shape 257 --seed 7 --offset 1 --scale 0.5
// RUN: %{npy} gen %t/bb.npy --dtype bf16 --shape 257 --seed 8 --scale 0.1
// RUN: normjit run --op layer_norm --x %t/xb.npy --gamma %t/gb.npy --beta %t/bb.npy --out %t/lnb.npy
// RUN: %{npy} check --op layer_norm --x %t/xb.npy --gamma %t/gb.npy --beta %t/bb.npy --y %t/lnb.npy --ulps 1 | FileCheck %s --check-prefix=LN-BF16
// LN-BF16: OK y: 771 values

// f32 in, f16 out with --out-dtype: within one f16 ulp.
// RUN: normjit run --op layer_norm --x %t/x.npy --gamma %t/g.npy --out-dtype f16 --out %t/yh.npy
// RUN: %{npy} show %t/yh.npy | FileCheck %s --check-prefix=F16-SHAPE
// RUN: %{npy} check --op layer_norm --x %t/x.npy --gamma %t/g.npy --y %t/yh.npy --ulps 1 | FileCheck %s --check-prefix=F16
// F16-SHAPE: dtype <f2 shape (5, 100)
// F16: OK y: 500 values

// f16 in, bf16 out.
// RUN: %{npy} gen %t/xh.npy --dtype f16 --shape 2,64 --scale 3
// RUN: normjit run --op rms_norm --x %t/xh.npy --out-dtype bf16 --out %t/yhb.npy
// RUN: %{npy} show %t/yhb.npy | FileCheck %s --check-prefix=F16-BF16-SHAPE
// RUN: %{npy} check --op rms_norm --x %t/xh.npy --y %t/yhb.npy --ulps 1 | FileCheck %s --check-prefix=F16-BF16
// F16-BF16-SHAPE: dtype <u2 shape (2, 64)
// F16-BF16: OK y: 128 values

// No rows: empty outputs of the right shapes.
// RUN: %{npy} gen %t/x0.npy --dtype f32 --shape 0,16
// RUN: normjit run --op layer_norm --x %t/x0.npy --out %t/y0.npy --mean-out %t/m0.npy
// RUN: %{npy} show %t/y0.npy | FileCheck %s --check-prefix=EMPTY
// RUN: %{npy} show %t/m0.npy | FileCheck %s --check-prefix=EMPTY-STATS
// EMPTY: dtype <f4 shape (0, 16)
// EMPTY-STATS: dtype <f4 shape (0,)

// --verbose prints the spec, the config and the compile time.
// RUN: normjit run --op rms_norm --x %t/x.npy --out %t/yv.npy --verbose | FileCheck %s --check-prefix=VERBOSE
// VERBOSE: spec: rms_norm rows=5 cols=100 x=f32 y=f32 eps=1e-06
// VERBOSE-NEXT: config: #norm.config<cpu,
// VERBOSE-NEXT: compile: {{[0-9.]+}} ms

// An output that is a symbolic link is written through it (the link stays a
// link, its target gets the result); a file replaced keeps its permissions;
// a device is written in place, never replaced by a file.
// RUN: mkdir -p %t/links && %{npy} gen %t/links/target.npy --dtype f32 --shape 5,100
// RUN: ln -sf target.npy %t/links/y.npy && chmod 600 %t/links/target.npy
// RUN: normjit run --op layer_norm --x %t/x.npy --eps 0.5 --out %t/links/y.npy
// RUN: test -L %t/links/y.npy && stat -c %a %t/links/target.npy | FileCheck %s --check-prefix=MODE
// RUN: %{npy} check --op layer_norm --x %t/x.npy --eps 0.5 --y %t/links/target.npy --tol 1e-5 | FileCheck %s --check-prefix=LN-EPS
// MODE: 600
// RUN: normjit run --op layer_norm --x %t/x.npy --out /dev/null
// RUN: test -c /dev/null
