// The GPU paths of the tool against the unit tests' fake CUDA driver, which
// has two devices, keeps "device" memory on the host, runs no kernel and
// puts 0.25 ms between two event records. So this checks the plumbing
// (devices, uploads and downloads, launches, event timing, cache keys),
// never numbers a real GPU would give.
// REQUIRES: fake-cuda-driver

// DEFINE: %{fake} = env NORMJIT_CUDA_DRIVER=%fake_cuda_driver
// RUN: rm -rf %t && mkdir %t

// RUN: %{fake} normjit devices | FileCheck %s --check-prefix=DEVICES
// DEVICES: cpu: {{.+}} core
// DEVICES-NEXT: fingerprint: cpu|
// DEVICES-NEXT: cuda:0: normjit Fake GPU, sm_90, 100 SMs, 80.0 GiB, {{[0-9]+}} GB/s DRAM
// DEVICES-NEXT: fingerprint: cuda | normjit Fake GPU | sm_90 | 100 SMs |
// DEVICES-NEXT: cuda:1: normjit Fake GPU Lite, sm_80, 108 SMs, 40.0 GiB, {{[0-9]+}} GB/s DRAM
// DEVICES-NEXT: fingerprint: cuda | normjit Fake GPU Lite | sm_80 | 108 SMs |
// RUN: %{fake} normjit devices --json | FileCheck %s --check-prefix=JSON
// JSON: "cuda":{"available":true,"driver":"{{.*}}","devices":[{"device":"cuda:0","name":"normjit Fake GPU","chip":"sm_90","sm_count":100,

// bench: events 0.25 ms apart, one launch per sample.
// RUN: %{fake} normjit bench --op rms_norm --rows 64 --cols 256 --device cuda:0 --reps 3 --warmup 1 --min-time 0 | FileCheck %s --check-prefix=BENCH
// BENCH:      spec        rms_norm rows=64 cols=256 x=f32 y=f32 gamma=f32 eps=1e-06
// BENCH-NEXT: device      cuda:0 normjit Fake GPU (sm_90, 100 SMs)
// BENCH-NEXT: config      #norm.config<gpu,
// BENCH-NEXT: compile     {{[0-9.]+}} ms
// BENCH-NEXT: time        250.000 us median, 250.000 us min, 3 samples of 1 launch (CUDA events)
// BENCH-NEXT: bytes       132096 read + written per call
// BENCH-NEXT: bandwidth   0.53 GB/s
// BENCH-NEXT: dram peak   {{[0-9.]+}} GB/s (theoretical: memory clock x bus width)
// BENCH-NEXT: of peak     {{[0-9.]+}} %
// RUN: %{fake} normjit bench --op layer_norm --rows 8 --cols 64 --device cuda:1 --reps 2 --warmup 0 --min-time 0 --cold --json --config '#norm.config<gpu, threads_per_row = 8, rows_per_block = 2, elements_per_thread = 8>' | FileCheck %s --check-prefix=BENCH-JSON
// BENCH-JSON: {"op":"layer_norm","rows":8,"cols":64,"dtype":"f32","residual":false,
// BENCH-JSON-SAME: "device":"cuda:1","device_name":"normjit Fake GPU Lite","chip":"sm_80",
// BENCH-JSON-SAME: "config":"#norm.config<gpu, vector_width = {{[0-9]+}}, threads_per_row = 8, rows_per_block = 2, elements_per_thread = 8,
// BENCH-JSON-SAME: "time_us":250.000,
// BENCH-JSON-SAME: "gbps":{{[0-9.]+}},
// BENCH-JSON-SAME: "reps":2,"batch":1,"graph":false,"cold":true}

// Knobs over the default: rows per block and elements per thread follow
// threads per row (1024 threads and the default's 2 rows would not fit).
// RUN: %{fake} normjit bench --op rms_norm --rows 4 --cols 4096 --dtype bf16 --device cuda:0 --reps 1 --warmup 0 --min-time 0 --config '#norm.config<gpu, threads_per_row = 1024>' | FileCheck %s --check-prefix=FIT
// FIT: config      #norm.config<gpu, vector_width = 4, threads_per_row = 1024, rows_per_block = 1, elements_per_thread = 4, row_storage = registers, persistent = false>

// A driver that sees no device (cuInit: CUDA_ERROR_NO_DEVICE, as with
// CUDA_VISIBLE_DEVICES=""): zero devices, and a clear reason where one is
// asked for.
// RUN: env FAKE_CUDA_NO_DEVICE=1 %{fake} normjit devices | FileCheck %s --check-prefix=NO-DEVICE
// NO-DEVICE: cuda: not available (the CUDA driver reports no device)
// RUN: env FAKE_CUDA_NO_DEVICE=1 %{fake} not normjit bench --op rms_norm --rows 4 --cols 64 --device cuda:0 --min-time 0 --reps 1 2>&1 | FileCheck %s --check-prefix=NO-DEVICE-BENCH
// NO-DEVICE-BENCH: normjit: error: CUDA driver: cuInit failed: CUDA_ERROR_NO_DEVICE (100): {{.*}} (no CUDA device visible)

// Chips newer than the PTX tables once written by hand: sm_103 needs PTX
// 8.8 and sm_110 9.0 (too low a version was a fatal error in LLVM's
// back end: the process exited); a chip this LLVM does not know (sm_130)
// gets the PTX of the newest one it knows, which the driver compiles
// forward. The device is still reported as what it is.
// RUN: env FAKE_CUDA_CC0=103 %{fake} normjit bench --op rms_norm --rows 4 --cols 256 --device cuda:0 --reps 1 --warmup 0 --min-time 0 | FileCheck %s --check-prefix=NEW-CHIP
// RUN: env FAKE_CUDA_CC0=110 %{fake} normjit bench --op rms_norm --rows 4 --cols 256 --device cuda:0 --reps 1 --warmup 0 --min-time 0 | FileCheck %s --check-prefix=NEW-CHIP
// RUN: env FAKE_CUDA_CC0=121 %{fake} normjit bench --op layer_norm --rows 4 --cols 256 --dtype bf16 --device cuda:0 --reps 1 --warmup 0 --min-time 0 | FileCheck %s --check-prefix=NEW-CHIP
// RUN: env FAKE_CUDA_CC0=130 %{fake} normjit bench --op rms_norm --rows 4 --cols 256 --device cuda:0 --reps 1 --warmup 0 --min-time 0 | FileCheck %s --check-prefix=FUTURE-CHIP
// RUN: env FAKE_CUDA_CC0=130 %{fake} normjit bench --op rms_norm --rows 4 --cols 256 --device cuda:0 --reps 1 --warmup 0 --min-time 0 --json | FileCheck %s --check-prefix=FUTURE-JSON
// FUTURE-JSON: "chip":"sm_130","ptx_chip":"sm_{{[0-9]+}}",
// NEW-CHIP: compile
// NEW-CHIP: time
// FUTURE-CHIP: device      cuda:0 normjit Fake GPU (sm_130, 100 SMs, PTX for sm_{{[0-9]+}}, the newest chip this LLVM knows)
// FUTURE-CHIP: compile
// FUTURE-CHIP: time
// RUN: env FAKE_CUDA_CC0=75 %{fake} not normjit bench --op rms_norm --rows 4 --cols 256 --device cuda:0 --reps 1 --min-time 0 2>&1 | FileCheck %s --check-prefix=OLD-CHIP
// OLD-CHIP: normjit: error: CUDA device 0 (normjit Fake GPU) is sm_75: normjit generates code for sm_80 and newer

// tune: every candidate is rejected (the fake computes nothing), saying so;
// nothing is stored.
// RUN: %{fake} not normjit tune --op rms_norm --rows 64 --cols 256 --device cuda:0 --candidates 2 --cache %t/tuning.toml 2>&1 | FileCheck %s --check-prefix=TUNE
// TUNE: normjit: error: no candidate compiled, passed the reference check and was timed (2 failures; first: #norm.config<gpu, {{.*}}: wrong result: {{[0-9]+}} mismatches against the fp64 reference
// RUN: test ! -e %t/tuning.toml

// run: inputs uploaded, outputs downloaded and written (their values are
// whatever the fake's memory held: no kernel ran).
// RUN: %python %S/Inputs/npy.py gen %t/x.npy --dtype bf16 --shape 5,64
// RUN: %{fake} normjit run --op rms_norm --x %t/x.npy --out %t/y.npy --rstd-out %t/rstd.npy --device cuda:1 --verbose | FileCheck %s --check-prefix=VERBOSE
// RUN: %python %S/Inputs/npy.py show %t/y.npy | FileCheck %s --check-prefix=Y
// RUN: %python %S/Inputs/npy.py show %t/rstd.npy | FileCheck %s --check-prefix=RSTD
// VERBOSE: config:  #norm.config<gpu, {{.*}} (default heuristic)
// VERBOSE: device:  cuda:1
// Y: dtype <u2 shape (5, 64)
// RSTD: dtype <f4 shape (5,)
