// RUN: normjit-opt %examples/residual_block.mlir | normjit-opt | FileCheck %s --check-prefix=PARSE
// RUN: normjit-opt %examples/residual_block.mlir --norm-fuse-residual-add | FileCheck %s --check-prefix=FUSED
// RUN: normjit-opt %examples/residual_block.mlir --norm-fuse-residual-add --norm-split-residual-add --norm-fuse-residual-add | FileCheck %s --check-prefix=FUSED
// The example behind the README's main command keeps working.

// PARSE-LABEL: func.func @pre_norm_blocks
// PARSE-COUNT-2: norm.add

// FUSED-LABEL: func.func @pre_norm_blocks
//  FUSED-SAME:   (%[[ATTN:[^:]+]]: {{[^,]+}}, %[[MLP:[^:]+]]: {{[^,]+}}, %[[STREAM:[^:]+]]: {{[^,]+}},
//   FUSED-NOT:   norm.add
//       FUSED:   norm.layer_norm x(%[[ATTN]] : memref<?x1024xbf16>) residual(%[[STREAM]] : memref<?x1024xbf16>) {{.*}} sum(%[[STREAM]] : memref<?x1024xbf16>)
//   FUSED-NOT:   memref.alloc
//       FUSED:   norm.rms_norm x(%[[MLP]] : memref<?x1024xbf16>) residual(%[[STREAM]] : memref<?x1024xbf16>) gamma(%{{.*}}) -> y(%{{.*}}) eps = 9.99999997E-7{{$}}
//   FUSED-NOT:   memref.dealloc
//       FUSED:   return
