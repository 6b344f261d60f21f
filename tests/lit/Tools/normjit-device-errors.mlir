// `--device` on run, bench and tune, and `normjit devices`, when there is no
// CUDA driver (NORMJIT_CUDA_DRIVER names a library that does not exist, so
// this holds on machines with a GPU too): run, bench and tune fail with one
// line saying why and leave no file behind; devices lists the CPU and says
// why there is no CUDA device, and succeeds. Bad device names, and configs
// for the other kind of device, are one-line errors.

// DEFINE: %{nodriver} = env NORMJIT_CUDA_DRIVER=%t/missing/libcuda.so.1
// DEFINE: %{check} = FileCheck %s --implicit-check-not={{.}} --check-prefix
// RUN: rm -rf %t && mkdir -p %t/out
// RUN: %python %S/Inputs/npy.py gen %t/x.npy --dtype f32 --shape 4,64

// RUN: %{nodriver} not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --device cuda:0 2>&1 | %{check}=NODRIVER
// RUN: %{nodriver} not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --device cuda 2>&1 | %{check}=NODRIVER
// RUN: %{nodriver} not normjit bench --op rms_norm --rows 64 --cols 256 --device cuda:0 2>&1 | %{check}=NODRIVER
// RUN: %{nodriver} not normjit bench --op layer_norm --rows 64 --cols 256 --device cuda:0 --cold --json --config '#norm.config<gpu, threads_per_row = 32>' 2>&1 | %{check}=NODRIVER
// RUN: %{nodriver} not normjit tune --op rms_norm --rows 64 --cols 256 --device cuda:0 --cache %t/out/tuning.toml 2>&1 | %{check}=NODRIVER
// RUN: %{nodriver} not normjit tune --op rms_norm --rows 64 --cols 256 --device cuda:0 --json --cache %t/out/tuning.toml 2>&1 | %{check}=NODRIVER
// RUN: %{nodriver} not normjit tune --sweep %S/Inputs/sweep-small.toml --device cuda:1 --no-progress --cache %t/out/tuning.toml 2>&1 | %{check}=NODRIVER
// NODRIVER: normjit: error: no CUDA driver: {{.*}}missing/libcuda.so.1: cannot open shared object file: No such file or directory (from NORMJIT_CUDA_DRIVER)

// No output file, no tuning cache.
// RUN: ls -A %t/out | count 0

// RUN: %{nodriver} normjit devices | FileCheck %s --check-prefix=DEVICES
// DEVICES: cpu: {{.+}} core
// DEVICES-NEXT: fingerprint: cpu|
// DEVICES-NEXT: cuda: not available (no CUDA driver: {{.*}}missing/libcuda.so.1: cannot open shared object file: No such file or directory (from NORMJIT_CUDA_DRIVER))
// DEVICES-NOT: cuda:0

// RUN: %{nodriver} normjit devices --json | FileCheck %s --check-prefix=JSON
// JSON: "cuda":{"available":false,"reason":"no CUDA driver: {{.*}}missing/libcuda.so.1: cannot open shared object file{{.*}}","devices":[]}}

// Device names other than cpu, cuda and cuda:N.
// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --device gpu7 2>&1 | %{check}=GPU7
// RUN: not normjit bench --op rms_norm --rows 64 --cols 256 --device gpu7 2>&1 | %{check}=GPU7
// RUN: not normjit tune --op rms_norm --rows 64 --cols 256 --device gpu7 --cache %t/out/tuning.toml 2>&1 | %{check}=GPU7
// GPU7: normjit: error: unknown --device 'gpu7'; expected cpu, cuda or cuda:N (N a CUDA device number, see 'normjit devices')
// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --device cuda:x 2>&1 | %{check}=CUDAX
// RUN: not normjit bench --op rms_norm --rows 64 --cols 256 --device cuda:x 2>&1 | %{check}=CUDAX
// RUN: not normjit tune --op rms_norm --rows 64 --cols 256 --device cuda:x --cache %t/out/tuning.toml 2>&1 | %{check}=CUDAX
// CUDAX: normjit: error: unknown --device 'cuda:x'; expected cpu, cuda or cuda:N {{.*}}
// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --device cuda: 2>&1 | %{check}=EMPTY
// EMPTY: normjit: error: unknown --device 'cuda:'; expected cpu, cuda or cuda:N {{.*}}
// RUN: not normjit bench --op rms_norm --rows 64 --cols 256 --device cuda:-1 2>&1 | %{check}=NEGATIVE
// NEGATIVE: normjit: error: unknown --device 'cuda:-1'; expected cpu, cuda or cuda:N {{.*}}
// RUN: not normjit bench --op rms_norm --rows 64 --cols 256 --device CPU 2>&1 | %{check}=UPPER
// UPPER: normjit: error: unknown --device 'CPU'; expected cpu, cuda or cuda:N {{.*}}

// A GPU config with --device cpu, and a CPU config with --device cuda:0
// (said before any device is looked for).
// RUN: not normjit bench --op layer_norm --rows 8 --cols 64 --config '#norm.config<gpu, threads_per_row = 32>' 2>&1 | %{check}=GPU-ON-CPU
// RUN: not normjit bench --op layer_norm --rows 8 --cols 64 --device cpu --config '#norm.config< gpu, threads_per_row = 32>' 2>&1 | %{check}=GPU-ON-CPU
// GPU-ON-CPU: normjit: error: --config '#norm.config<{{ ?}}gpu, threads_per_row = 32>' is a GPU config, but --device is cpu; give a #norm.config<cpu, ...> or --device cuda:N
// RUN: %{nodriver} not normjit bench --op layer_norm --rows 8 --cols 64 --device cuda:0 --config '#norm.config<cpu, vector_width = 4>' 2>&1 | %{check}=CPU-ON-GPU
// CPU-ON-GPU: normjit: error: --config '#norm.config<cpu, vector_width = 4>' is a CPU config, but --device is cuda:0; give a #norm.config<gpu, ...> or --device cpu

// CPU-only options with a GPU, and --json with a sweep.
// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/out/y.npy --device cuda:0 --threads 2 2>&1 | %{check}=RUN-THREADS
// RUN-THREADS: normjit: error: --threads sets CPU worker threads; it cannot be combined with --device cuda:0
// RUN: not normjit bench --op rms_norm --rows 64 --cols 256 --device cuda:3 --threads 2 2>&1 | %{check}=BENCH-THREADS
// BENCH-THREADS: normjit: error: --threads sets CPU worker threads; it cannot be combined with --device cuda:3
// RUN: not normjit bench --op rms_norm --rows 64 --cols 256 --cold 2>&1 | %{check}=COLD
// COLD: normjit: error: --cold flushes a GPU's L2 before every launch; it needs --device cuda:N
// RUN: not normjit tune --sweep %S/Inputs/sweep-small.toml --json --cache %t/out/tuning.toml 2>&1 | %{check}=SWEEP-JSON
// SWEEP-JSON: normjit: error: --json prints the result of one spec; a sweep writes its results with --report

// Still nothing written.
// RUN: ls -A %t/out | count 0
