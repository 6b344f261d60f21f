// On a machine without a CUDA driver, the GPU commands say so in the
// driver loader's words; `normjit devices` says so and succeeds.
// UNSUPPORTED: cuda-driver

// DEFINE: %{check} = FileCheck %s --implicit-check-not={{.}} --check-prefix
// RUN: rm -rf %t && mkdir %t
// RUN: %python %S/Inputs/npy.py gen %t/x.npy --dtype f32 --shape 4,64
// RUN: not normjit run --op rms_norm --x %t/x.npy --out %t/y.npy --device cuda:0 2>&1 | %{check}=ERROR
// RUN: not normjit bench --op rms_norm --rows 64 --cols 256 --device cuda:0 2>&1 | %{check}=ERROR
// RUN: not normjit tune --op rms_norm --rows 64 --cols 256 --device cuda:0 --cache %t/tuning.toml 2>&1 | %{check}=ERROR
// ERROR: normjit: error: no CUDA driver: libcuda.so.1: cannot open shared object file: No such file or directory
// RUN: normjit devices | FileCheck %s --check-prefix=DEVICES
// DEVICES: cuda: not available (no CUDA driver: libcuda.so.1: cannot open shared object file: No such file or directory)
