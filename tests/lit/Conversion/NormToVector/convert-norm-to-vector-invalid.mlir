// RUN: normjit-opt %s --convert-norm-to-vector --verify-diagnostics
// An op tuned for the GPU cannot be lowered for the CPU.

func.func @gpu_config(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  // expected-error @+1 {{failed to legalize operation 'norm.rms_norm' that was explicitly marked illegal}}
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05 config = <gpu, threads_per_row = 32>
  return
}
