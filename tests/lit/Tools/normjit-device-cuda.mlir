// The GPU commands on a real CUDA device (cuda:0): `normjit run` checked
// against the float64 reference, `bench` and `tune` reports, entries keyed
// by the GPU's fingerprint beside the CPU's.
// REQUIRES: cuda-driver

// DEFINE: %{npy} = %python %S/Inputs/npy.py
// RUN: rm -rf %t && mkdir %t

// RUN: normjit devices | FileCheck %s --check-prefix=DEVICES
// DEVICES: cuda:0: {{.+}}, sm_{{[0-9]+}}, {{[0-9]+}} SMs, {{[0-9.]+}} GiB
// DEVICES-NEXT: fingerprint: cuda | {{.+}} | sm_{{[0-9]+}} | {{[0-9]+}} SMs |

// LayerNorm in f32 with gamma, beta, mean and rstd, rows of odd length.
// RUN: %{npy} gen %t/x.npy --dtype f32 --shape 37,1001 --scale 2 --offset 0.5
// RUN: %{npy} gen %t/g.npy --dtype f32 --shape 1001 --seed 2 --offset 1 --scale 0.5
// RUN: %{npy} gen %t/b.npy --dtype f32 --shape 1001 --seed 3 --scale 0.1
// RUN: normjit run --device cuda:0 --op layer_norm --x %t/x.npy --gamma %t/g.npy --beta %t/b.npy --out %t/ln.npy --mean-out %t/ln-mean.npy --rstd-out %t/ln-rstd.npy | count 0
// RUN: %{npy} check --op layer_norm --x %t/x.npy --gamma %t/g.npy --beta %t/b.npy --y %t/ln.npy --mean %t/ln-mean.npy --rstd %t/ln-rstd.npy --tol 1e-5 | FileCheck %s --check-prefix=LN
// LN: OK y: 37037 values
// LN-NEXT: OK mean: 37 values
// LN-NEXT: OK rstd: 37 values

// RMSNorm of bf16 rows with a residual, the sum stored (exactly).
// RUN: %{npy} gen %t/xb.npy --dtype bf16 --shape 33,4096 --scale 2 --offset 0.5
// RUN: %{npy} gen %t/rb.npy --dtype bf16 --shape 33,4096 --seed 5
// RUN: %{npy} gen %t/gb.npy --dtype bf16 --shape 4096 --seed 6 --offset 1 --scale 0.5
// RUN: normjit run --device cuda --op rms_norm --x %t/xb.npy --residual %t/rb.npy --gamma %t/gb.npy --out %t/yb.npy --sum-out %t/sb.npy --verbose | FileCheck %s --check-prefix=VERBOSE
// RUN: %{npy} check --op rms_norm --x %t/xb.npy --residual %t/rb.npy --gamma %t/gb.npy --y %t/yb.npy --sum %t/sb.npy --ulps 1 | FileCheck %s --check-prefix=BF16
// VERBOSE: config: #norm.config<gpu,
// VERBOSE: device: cuda:0
// BF16: OK y: 135168 values
// BF16-NEXT: OK sum: 135168 values

// bench, warm and cold, as a table and as JSON.
// RUN: normjit bench --device cuda:0 --op rms_norm --rows 4096 --cols 4096 --dtype bf16 --residual --reps 5 --min-time 0 | FileCheck %s --check-prefix=BENCH
// BENCH: device      cuda:0
// BENCH: config      #norm.config<gpu,
// BENCH: time        {{[0-9.]+}} us median, {{[0-9.]+}} us min, {{[0-9]+}} samples of {{[0-9]+}} launch
// BENCH: bandwidth   {{[0-9.]+}} GB/s
// RUN: normjit bench --device cuda:0 --op layer_norm --rows 8192 --cols 1024 --cold --json --reps 5 --min-time 0 | FileCheck %s --check-prefix=BENCH-JSON
// BENCH-JSON: "device":"cuda:0",
// BENCH-JSON-SAME: "config":"#norm.config<gpu,
// BENCH-JSON-SAME: "time_us":{{[0-9.]+}},
// BENCH-JSON-SAME: "gbps":{{[0-9.]+}},
// BENCH-JSON-SAME: "batch":1,"graph":false,"cold":true}
// A kernel shorter than a sample: a batch of launches, recorded once into a
// CUDA graph and replayed.
// RUN: normjit bench --device cuda:0 --op rms_norm --rows 64 --cols 1024 --json --reps 3 --min-time 0 | FileCheck %s --check-prefix=BENCH-GRAPH
// BENCH-GRAPH: "batch":{{[1-9][0-9]+}},"graph":true,"cold":false}

// tune one spec into a cache; again is a cache hit; the entry is the GPU's.
// RUN: normjit tune --device cuda:0 --op rms_norm --rows 64 --cols 2048 --dtype bf16 --budget 2 --candidates 8 --json --cache %t/tuning.toml | FileCheck %s --check-prefix=TUNE
// TUNE: {"spec":"rms_norm rows=64 cols=2048 {{.*}}","device":"cuda:0","fingerprint":"cuda | {{.*}}","cached":false,"config":"#norm.config<gpu, {{.*}}","gbps":{{[0-9.e+]+}},"default_config":"#norm.config<gpu, {{.*}}","default_gbps":{{[0-9.e+]+}},
// RUN: normjit tune --device cuda:0 --op rms_norm --rows 64 --cols 2048 --dtype bf16 --json --cache %t/tuning.toml | FileCheck %s --check-prefix=AGAIN
// AGAIN: "cached":true,"config":"#norm.config<gpu,
// RUN: normjit tune --op rms_norm --rows 64 --cols 2048 --dtype bf16 --budget 0.5 --candidates 4 --json --cache %t/tuning.toml | FileCheck %s --check-prefix=CPU
// CPU: "device":"cpu","fingerprint":"cpu|{{.*}}","cached":false,"config":"#norm.config<cpu,
// RUN: normjit cache show --cache %t/tuning.toml | FileCheck %s --check-prefix=SHOW
// SHOW: 2 entries
// SHOW-NOT: other device
// The tuned spec (40 rows share the bucket of 64) runs with the cached config.
// RUN: %{npy} gen %t/x2.npy --dtype bf16 --shape 40,2048
// RUN: %{npy} gen %t/g2.npy --dtype bf16 --shape 2048 --seed 9 --offset 1
// RUN: normjit run --device cuda:0 --op rms_norm --x %t/x2.npy --gamma %t/g2.npy --out %t/y2.npy --verbose --cache %t/tuning.toml | FileCheck %s --check-prefix=FROM-CACHE
// RUN: %{npy} check --op rms_norm --x %t/x2.npy --gamma %t/g2.npy --y %t/y2.npy --ulps 1 | FileCheck %s --check-prefix=CACHED-OK
// FROM-CACHE: config: #norm.config<gpu, {{.*}} (tuning cache)
// CACHED-OK: OK y: 81920 values

// A sweep on the GPU, with its report against the DRAM peak.
// RUN: normjit tune --device cuda:0 --sweep %S/Inputs/sweep-small.toml --no-progress --candidates 4 --report %t/report --cache %t/sweep.toml 2>/dev/null | FileCheck %s --check-prefix=SWEEP
// SWEEP: tuned 4, already in the cache 0 (shard 0/1: 4 of 4 specs, cuda:0 {{.+}})
// RUN: FileCheck %s --check-prefix=REPORT < %t/report/report.md
// REPORT: | DRAM peak GB/s | % of DRAM peak |
