// RUN: normjit-opt %s --split-input-file | normjit-opt --split-input-file | FileCheck %s
// Round trip of norm.rms_norm in the custom form.

// CHECK-LABEL: func.func @minimal
//       CHECK:   norm.rms_norm x(%{{.*}} : memref<?x4096xf16>) -> y(%{{.*}} : memref<?x4096xf16>) eps = 9.99999997E-7{{$}}
func.func @minimal(%x: memref<?x4096xf16>, %y: memref<?x4096xf16>) {
  norm.rms_norm x(%x : memref<?x4096xf16>) -> y(%y : memref<?x4096xf16>) eps = 1.0e-06
  return
}

// -----

// CHECK-LABEL: func.func @gamma_rstd
//       CHECK:   norm.rms_norm x(%{{.*}}) gamma(%{{.*}} : memref<4096xbf16>) -> y(%{{.*}}) rstd(%{{.*}} : memref<?xf32>)
func.func @gamma_rstd(%x: memref<?x4096xbf16>, %g: memref<4096xbf16>, %y: memref<?x4096xbf16>, %rs: memref<?xf32>) {
  norm.rms_norm x(%x : memref<?x4096xbf16>) gamma(%g : memref<4096xbf16>) -> y(%y : memref<?x4096xbf16>) rstd(%rs : memref<?xf32>) eps = 1.0e-06
  return
}

// -----

// The fused residual form, with the sum stored back into the residual
// stream (the vLLM-style fused_add_rms_norm) and an optional beta.
// CHECK-LABEL: func.func @fused_residual
//       CHECK:   norm.rms_norm x(%[[X:.+]] : memref<?x8192xbf16>) residual(%[[R:.+]] : memref<?x8192xbf16>) gamma(%{{.+}}) beta(%{{.+}}) -> y(%[[X]] : memref<?x8192xbf16>) sum(%[[R]] : memref<?x8192xbf16>) eps = 9.99999997E-7 config = <gpu, vector_width = 8, threads_per_row = 1024, elements_per_thread = 8, row_storage = registers>
func.func @fused_residual(%x: memref<?x8192xbf16>, %r: memref<?x8192xbf16>, %g: memref<8192xbf16>, %b: memref<8192xbf16>) {
  norm.rms_norm x(%x : memref<?x8192xbf16>) residual(%r : memref<?x8192xbf16>) gamma(%g : memref<8192xbf16>) beta(%b : memref<8192xbf16>)
      -> y(%x : memref<?x8192xbf16>) sum(%r : memref<?x8192xbf16>) eps = 1.0e-06
      config = #norm.config<gpu, threads_per_row = 1024, elements_per_thread = 8, vector_width = 8, row_storage = registers>
  return
}
