// RUN: normjit-opt %s --convert-norm-to-vector --verify-diagnostics
// An op tuned for the GPU cannot be lowered for the CPU.

func.func @gpu_config(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  // expected-error @+1 {{'norm.rms_norm' op has a #norm.config<gpu, ...>: it is lowered by convert-norm-to-gpu inside a gpu.func kernel, not for the CPU}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32>
  return
}
