// RUN: normjit-opt %s --split-input-file --convert-norm-to-vector | FileCheck %s
// The structure each CPU knob of #norm.config produces.

// vector_width = 16, accumulators = 4 on 1024 columns: 16 groups of four
// slots, each summing d and d^2 (eight vector<16xf32> partial sums), no
// tail; the shift from the row's first elements; a centred sweep (one
// slot: a sum and a sum of squares) only under the branch taken when the
// shift is far from the mean; then the
// output pass, (s - centre) * rstd - offset.
// CHECK-LABEL: func.func @layer_norm_v16_a4
//       CHECK:   %[[ROWS:.+]] = memref.dim %{{.*}}, %c0
//       CHECK:   scf.for %[[ROW:.+]] = %c0{{.*}} to %[[ROWS]]
//       CHECK:     memref.load %{{.*}}[%[[ROW]], %c0
//       CHECK:     scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
//       CHECK-COUNT-4: vector.load %{{.*}} : memref<?x1024xf32>, vector<16xf32>
//       CHECK:     vector.reduction <add>
//       CHECK:     vector.reduction <add>
//       CHECK:     %[[FAR:.+]] = arith.andi
//       CHECK:     scf.if %[[FAR]] -> (f32, f32, f32) {
//       CHECK:       scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>) {
//       CHECK:     } else {
//       CHECK:     math.sqrt
//       CHECK:     memref.store %{{.*}}, %{{.*}}[%[[ROW]]] : memref<?xf32>
//       CHECK:     scf.for
//       CHECK:       %[[D:.+]] = arith.subf
//       CHECK:       %[[SCALED:.+]] = arith.mulf %[[D]]
//       CHECK:       %[[OUT:.+]] = arith.subf %[[SCALED]]
//       CHECK:       vector.store %[[OUT]], %{{.*}} : memref<?x1024xf32>, vector<16xf32>
//   CHECK-NOT:   vector.maskedload
//   CHECK-NOT:   norm.
func.func @layer_norm_v16_a4(%x: memref<?x1024xf32>, %y: memref<?x1024xf32>, %rs: memref<?xf32>) {
  norm.layer_norm x(%x : memref<?x1024xf32>) -> y(%y : memref<?x1024xf32>) rstd(%rs : memref<?xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, accumulators = 4>
  return
}

// -----

// A column count that is not a multiple of the vector: one masked tail.
// CHECK-LABEL: func.func @tail
//       CHECK:   vector.constant_mask [5] : vector<8xi1>
//       CHECK:   vector.maskedload %{{.*}} : memref<?x13xf32>, vector<8xi1>, vector<8xf32> into vector<8xf32>
//       CHECK:   vector.maskedstore %{{.*}} : memref<?x13xf32>, vector<8xi1>, vector<8xf32>
func.func @tail(%x: memref<?x13xf32>, %y: memref<?x13xf32>) {
  norm.rms_norm x(%x : memref<?x13xf32>) -> y(%y : memref<?x13xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, accumulators = 1>
  return
}

// -----

// Narrow types are widened on load and rounded on store; with a sum
// output the fused add stores s and normalizes it as stored.
// CHECK-LABEL: func.func @bf16_fused
//       CHECK:   vector.load %{{.*}} : memref<?x64xbf16>, vector<8xbf16>
//       CHECK:   arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
//       CHECK:   vector.load %{{.*}} : memref<?x64xf16>, vector<8xf16>
//       CHECK:   arith.addf
//       CHECK:   %[[T:.+]] = arith.truncf %{{.*}} : vector<8xf32> to vector<8xbf16>
//       CHECK:   vector.store %[[T]], %{{.*}} : memref<?x64xbf16>, vector<8xbf16>
//       CHECK:   arith.extf %[[T]] : vector<8xbf16> to vector<8xf32>
func.func @bf16_fused(%x: memref<?x64xbf16>, %r: memref<?x64xf16>, %y: memref<?x64xbf16>, %s: memref<?x64xbf16>) {
  norm.rms_norm x(%x : memref<?x64xbf16>) residual(%r : memref<?x64xf16>) -> y(%y : memref<?x64xbf16>) sum(%s : memref<?x64xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, accumulators = 2>
  return
}

// -----

// When every buffer is bf16, full vectors are widened in the paired lane
// order: the bf16 pairs read as i32 words, the even columns shifted up,
// the odd ones masked, and the halves concatenated. Without dot-bf16 (no
// bf16 conversion instruction) stores round each lane in the integer unit
// (to nearest even, NaN to 0x7fc0) and put the halves' upper halves back
// into words: the even column's shifted down, the odd one's in place (with
// dot-bf16: truncf, then a shuffle; see dot-bf16.mlir). The masked tail
// keeps the plain order.
// CHECK-LABEL: func.func @bf16_paired
//       CHECK:   %[[RAW:.+]] = vector.load %{{.*}} : memref<?x20xbf16>, vector<8xbf16>
//       CHECK:   %[[W:.+]] = vector.bitcast %[[RAW]] : vector<8xbf16> to vector<4xi32>
//       CHECK:   %[[E:.+]] = arith.shli %[[W]], %{{.*}} : vector<4xi32>
//       CHECK:   %[[EF:.+]] = arith.bitcast %[[E]] : vector<4xi32> to vector<4xf32>
//       CHECK:   %[[O:.+]] = arith.andi %[[W]], %{{.*}} : vector<4xi32>
//       CHECK:   %[[OF:.+]] = arith.bitcast %[[O]] : vector<4xi32> to vector<4xf32>
//       CHECK:   vector.shuffle %[[EF]], %[[OF]] [0, 1, 2, 3, 4, 5, 6, 7] : vector<4xf32>, vector<4xf32>
//       CHECK:   vector.maskedload %{{.*}} : memref<?x20xbf16>, vector<8xi1>, vector<8xbf16> into vector<8xbf16>
//       CHECK:   %[[BITS:.+]] = arith.bitcast %[[V:.+]] : vector<8xf32> to vector<8xi32>
//       CHECK:   %[[NAN:.+]] = arith.cmpf uno, %[[V]], %[[V]] : vector<8xf32>
//       CHECK:   %[[R:.+]] = arith.select %[[NAN]], %{{.*}}, %{{.*}} : vector<8xi1>, vector<8xi32>
//   CHECK-DAG:   %[[ODD:.+]] = vector.extract_strided_slice %[[R]] {offsets = [4], sizes = [4], strides = [1]} : vector<8xi32> to vector<4xi32>
//   CHECK-DAG:   %[[EVEN:.+]] = vector.extract_strided_slice %[[R]] {offsets = [0], sizes = [4], strides = [1]} : vector<8xi32> to vector<4xi32>
//   CHECK-DAG:   %[[HI:.+]] = arith.andi %[[ODD]], %{{.*}} : vector<4xi32>
//   CHECK-DAG:   %[[LO:.+]] = arith.shrui %[[EVEN]], %{{.*}} : vector<4xi32>
//       CHECK:   %[[WORDS:.+]] = arith.ori %[[LO]], %[[HI]] : vector<4xi32>
//       CHECK:   %[[Y:.+]] = vector.bitcast %[[WORDS]] : vector<4xi32> to vector<8xbf16>
//       CHECK:   vector.store %[[Y]], %{{.*}} : memref<?x20xbf16>, vector<8xbf16>
//       CHECK:   arith.truncf %{{.*}} : vector<8xf32> to vector<8xbf16>
//       CHECK:   vector.maskedstore
func.func @bf16_paired(%x: memref<?x20xbf16>, %g: memref<20xbf16>, %y: memref<?x20xbf16>) {
  norm.rms_norm x(%x : memref<?x20xbf16>) gamma(%g : memref<20xbf16>) -> y(%y : memref<?x20xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, accumulators = 1>
  return
}

// -----

// With f32 gamma (mixed precision) the statistics sweep still reads the
// bf16 rows in the paired order (a sum does not care about lane order).
// Without dot-bf16, gamma is copied onto the stack in that order (the even
// columns, then the odd ones), so that the output sweep reads x paired and
// stores y as words too (with dot-bf16 it widens x in column order: see
// dot-bf16.mlir @bf16_rows_f32_gamma). The copy is written step by step
// within the statistics sweep of the call's first row (one group of two
// vectors: unrolled).
// CHECK-LABEL: func.func @bf16_rows_f32_gamma
//       CHECK:   %[[COPY:.+]] = memref.alloca() {alignment = 64 : i64} : memref<16xf32>
//       CHECK:   scf.for %[[ROW:.+]] = %{{.*}} to
//       CHECK:       %[[FIRST:.+]] = arith.cmpi eq, %[[ROW]], %{{.*}} : index
//       CHECK:       scf.if %[[FIRST]] {
//       CHECK:         %[[G:.+]] = vector.load %arg1[%{{.*}}] : memref<16xf32>, vector<8xf32>
//       CHECK:         %[[P:.+]] = vector.shuffle %[[G]], %[[G]] [0, 2, 4, 6, 1, 3, 5, 7] : vector<8xf32>, vector<8xf32>
//       CHECK:         vector.store %[[P]], %[[COPY]][%{{.*}}] : memref<16xf32>, vector<8xf32>
//       CHECK:       }
//       CHECK:       vector.bitcast %{{.*}} : vector<8xbf16> to vector<4xi32>
//       CHECK:     math.sqrt
//       CHECK:     vector.load %[[COPY]][%{{.*}}] : memref<16xf32>, vector<8xf32>
//       CHECK:     vector.bitcast %{{.*}} : vector<8xbf16> to vector<4xi32>
//   CHECK-NOT:     arith.truncf
//       CHECK:     vector.bitcast %{{.*}} : vector<4xi32> to vector<8xbf16>
//       CHECK:   return
func.func @bf16_rows_f32_gamma(%x: memref<?x16xbf16>, %g: memref<16xf32>, %y: memref<?x16xbf16>) {
  norm.rms_norm x(%x : memref<?x16xbf16>) gamma(%g : memref<16xf32>) -> y(%y : memref<?x16xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, accumulators = 2, row_group = 1>
  return
}

// -----

// f32 gamma, beta and a row of 4096 columns overflow a 32 KiB L1: rows go
// in pairs. Each row's statistics are kept on the stack; the output sweep
// loads gamma and beta once per vector for both rows of the pair, the
// second row under a uniform branch (absent for the last of an odd count).
// CHECK-LABEL: func.func @row_pairs
//       CHECK:   memref.alloca() : memref<2xf32>
//       CHECK:   scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c2
//       CHECK:     %[[N:.+]] = arith.minsi
//       CHECK:     scf.for %{{.*}} = %{{.*}} to %[[N]] step
//       CHECK:       memref.store %{{.*}} : memref<2xf32>
//       CHECK:     %[[FULL:.+]] = arith.cmpi eq, %[[N]]
//       CHECK:     scf.for
//       CHECK:       vector.load %{{.*}} : memref<4096xf32>, vector<16xf32>
//       CHECK:       vector.load %{{.*}} : memref<4096xf32>, vector<16xf32>
//       CHECK:       vector.store %{{.*}}, %{{.*}}[%{{.*}}, %[[C:.+]]] : memref<?x4096xf32>
//       CHECK:       scf.if %[[FULL]] {
//       CHECK:         vector.store %{{.*}}, %{{.*}}[%{{.*}}, %[[C]]] : memref<?x4096xf32>
func.func @row_pairs(%x: memref<?x4096xf32>, %g: memref<4096xf32>, %b: memref<4096xf32>, %y: memref<?x4096xf32>) {
  norm.layer_norm x(%x : memref<?x4096xf32>) gamma(%g : memref<4096xf32>) beta(%b : memref<4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, accumulators = 4>
  return
}

// -----

// Welford: one statistics pass dividing by the running count, then the
// output pass; no centred second sweep.
// CHECK-LABEL: func.func @welford
//       CHECK:   scf.for
//       CHECK:     scf.for {{.*}} -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
//       CHECK:       arith.uitofp
//       CHECK:       arith.divf
//       CHECK:     scf.for
//       CHECK:       vector.store
//   CHECK-NOT:     scf.for
func.func @welford(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  norm.layer_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 4, accumulators = 2, algorithm = welford>
  return
}

// -----

// Streaming stores: a row of y is swept from its first column on a cache
// line (64 bytes), `head`: ordinary stores before it (full vectors, then
// a masked one), non-temporal aligned stores of the vectors of its whole
// lines from it, then ordinary stores after them. A row whose start is
// not a multiple of 4 bytes gets an output sweep with ordinary stores.
// CHECK-LABEL: func.func @streaming
//       CHECK:   %[[BASE:.+]], %[[OFFSET:.+]], %{{.+}}:2, %[[STRIDES:.+]]:2 = memref.extract_strided_metadata %[[Y:.+]] :
//       CHECK:   %[[PTR:.+]] = memref.extract_aligned_pointer_as_index %[[Y]]
//       CHECK:   %[[ROWSTART:.+]] = arith.muli %[[ROW:.+]], %[[STRIDES]]#0
//       CHECK:   %[[ELEMENT:.+]] = arith.addi %[[OFFSET]], %[[ROWSTART]]
//       CHECK:   %[[BYTES:.+]] = arith.muli %[[ELEMENT]], %c4
//       CHECK:   %[[ADDRESS:.+]] = arith.addi %[[PTR]], %[[BYTES]]
//       CHECK:   %[[MIS:.+]] = arith.andi %[[ADDRESS]], %c63
//       CHECK:   %[[PART:.+]] = arith.andi %[[MIS]], %c3
//       CHECK:   %[[WHOLE:.+]] = arith.cmpi eq, %[[PART]], %c0
//       CHECK:   scf.if %[[WHOLE]] {
//       CHECK:     %[[TOLINE:.+]] = arith.subi %c64{{(_[0-9]+)?}}, %[[MIS]]
//       CHECK:     %[[HEADBYTES:.+]] = arith.andi %[[TOLINE]], %c63
//       CHECK:     %[[HEADELEMENTS:.+]] = arith.divui %[[HEADBYTES]], %c4
//       CHECK:     %[[HEAD:.+]] = arith.minui %[[HEADELEMENTS]], %c256
//       CHECK:     scf.for
//   CHECK-NOT:       nontemporal
//       CHECK:       vector.store %{{.*}} : memref<?x256xf32>, vector<16xf32>
//       CHECK:     }
//       CHECK:     %[[HEADMASK:.+]] = vector.create_mask %{{.+}} : vector<16xi1>
//       CHECK:     vector.maskedstore %[[Y]][%[[ROW]], %{{.+}}], %[[HEADMASK]]
//       CHECK:     scf.for
//       CHECK:       vector.store %{{.*}} {alignment = 64 : i64, nontemporal = true} : memref<?x256xf32>, vector<16xf32>
//       CHECK:     }
//       CHECK:     %[[TAILMASK:.+]] = vector.create_mask %{{.+}} : vector<16xi1>
//       CHECK:     vector.maskedstore %[[Y]][%[[ROW]], %{{.+}}], %[[TAILMASK]]
//       CHECK:   } else {
//   CHECK-NOT:     nontemporal
//       CHECK:     vector.store %{{.*}} : memref<?x256xf32>, vector<16xf32>
//   CHECK-NOT:     nontemporal
//       CHECK:   }
func.func @streaming(%x: memref<?x256xf32>, %y: memref<?x256xf32>) {
  norm.rms_norm x(%x : memref<?x256xf32>) -> y(%y : memref<?x256xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, streaming_stores = true>
  return
}

// -----

// bf16 rows of 8 lanes: the head is found on a cache line (64 bytes, 32
// columns); each non-temporal store claims the vector's 16 bytes.
// CHECK-LABEL: func.func @streaming_bf16
//       CHECK:   arith.andi %{{.*}}, %c63
//       CHECK:   arith.andi %{{.*}}, %c1
//       CHECK:   vector.store %{{.*}} {alignment = 16 : i64, nontemporal = true} : memref<?x100xbf16>, vector<8xbf16>
func.func @streaming_bf16(%x: memref<?x100xbf16>, %y: memref<?x100xbf16>) {
  norm.rms_norm x(%x : memref<?x100xbf16>) -> y(%y : memref<?x100xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, streaming_stores = true, row_group = 1>
  return
}

// -----

// A pair of rows streams from one head when both rows of y are as far from
// an aligned address (and that a multiple of 4 bytes); a group of three
// rows or more streams only when its rows are aligned.
// CHECK-LABEL: func.func @streaming_pair
//       CHECK:   %[[MIS0:.+]] = arith.andi %{{.+}}, %c63
//       CHECK:   %[[MIS1:.+]] = arith.andi %{{.+}}, %c63
//       CHECK:   %[[PART:.+]] = arith.andi %[[MIS0]], %c3
//       CHECK:   %[[WHOLE:.+]] = arith.cmpi eq, %[[PART]], %c0
//       CHECK:   %[[SAME:.+]] = arith.cmpi eq, %[[MIS1]], %[[MIS0]]
//       CHECK:   %[[BOTH:.+]] = arith.andi %[[WHOLE]], %[[SAME]]
//       CHECK:   scf.if %[[BOTH]] {
//       CHECK:     vector.create_mask
//       CHECK:     nontemporal = true
//       CHECK:   } else {
// CHECK-LABEL: func.func @streaming_group
//       CHECK:   %[[MIS0:.+]] = arith.andi %{{.+}}, %c63
//       CHECK:   %[[MIS1:.+]] = arith.andi %{{.+}}, %c63
//       CHECK:   %[[ALIGNED:.+]] = arith.cmpi eq, %[[MIS0]], %c0
//       CHECK:   %[[SAME:.+]] = arith.cmpi eq, %[[MIS1]], %[[MIS0]]
//       CHECK:   %[[BOTH:.+]] = arith.andi %[[ALIGNED]], %[[SAME]]
//       CHECK:   scf.if %[[BOTH]] {
//   CHECK-NOT:     vector.create_mask
//       CHECK:     nontemporal = true
//       CHECK:   } else {
// bf16 rows with bf16 gamma: its f32 copy is written in the paired order,
// vector by vector from column 0, so rows stream only when aligned.
// CHECK-LABEL: func.func @streaming_paired_copy
//       CHECK:   %[[MIS:.+]] = arith.andi %{{.+}}, %c63
//       CHECK:   %[[ALIGNED:.+]] = arith.cmpi eq, %[[MIS]], %c0
//       CHECK:   scf.if %[[ALIGNED]] {
//   CHECK-NOT:     vector.create_mask
//       CHECK:     nontemporal = true
//       CHECK:   } else {
func.func @streaming_pair(%x: memref<?x4096xf32>, %g: memref<4096xf32>, %y: memref<?x4096xf32>) {
  norm.rms_norm x(%x : memref<?x4096xf32>) gamma(%g : memref<4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, streaming_stores = true, row_group = 2>
  return
}
func.func @streaming_group(%x: memref<?x4096xf32>, %g: memref<4096xf32>, %y: memref<?x4096xf32>) {
  norm.rms_norm x(%x : memref<?x4096xf32>) gamma(%g : memref<4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, streaming_stores = true, row_group = 4>
  return
}
func.func @streaming_paired_copy(%x: memref<?x256xbf16>, %g: memref<256xbf16>, %y: memref<?x256xbf16>) {
  norm.rms_norm x(%x : memref<?x256xbf16>) gamma(%g : memref<256xbf16>) -> y(%y : memref<?x256xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 32, streaming_stores = true, row_group = 1>
  return
}

// -----

// prefetch_rows = 2, rows one at a time: while a row's output is written,
// each vector step also prefetches x and the residual of the row two rows
// ahead, clamped to the last row (into L2: locality 2).
// CHECK-LABEL: func.func @prefetch
//       CHECK:   %[[ROWS:.+]] = memref.dim %[[X:[^,]+]], %c0
//       CHECK:   scf.for %[[ROW:.+]] = %c0{{.*}} to %[[ROWS]] step %c1
//       CHECK:     %[[AHEAD:.+]] = arith.addi %[[ROW]], %c2
//       CHECK:     %[[LAST:.+]] = arith.subi %[[ROWS]], %c1
//       CHECK:     %[[PF:.+]] = arith.minsi %[[AHEAD]], %[[LAST]]
//       CHECK:     vector.store
//       CHECK:     memref.prefetch %[[X]][%[[PF]], %{{.+}}], read, locality<2>, data : memref<?x256xf32>
//       CHECK:     memref.prefetch %{{.+}}[%[[PF]], %{{.+}}], read, locality<2>, data : memref<?x256xbf16>
func.func @prefetch(%x: memref<?x256xf32>, %r: memref<?x256xbf16>, %y: memref<?x256xf32>) {
  norm.rms_norm x(%x : memref<?x256xf32>) residual(%r : memref<?x256xbf16>) -> y(%y : memref<?x256xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, prefetch_rows = 2>
  return
}

// -----

// With rows in pairs (gamma, beta and the row overflow the L1), the
// distance counts pairs: two pairs ahead are four rows.
// CHECK-LABEL: func.func @prefetch_pairs
//       CHECK:   scf.for %{{.+}} step %c2
//       CHECK:     arith.addi %{{.+}}, %c4
//       CHECK:     arith.minsi
//       CHECK:     memref.prefetch
func.func @prefetch_pairs(%x: memref<?x4096xf32>, %g: memref<4096xf32>, %b: memref<4096xf32>, %y: memref<?x4096xf32>) {
  norm.layer_norm x(%x : memref<?x4096xf32>) gamma(%g : memref<4096xf32>) beta(%b : memref<4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, prefetch_rows = 2>
  return
}

// -----

// One prefetch per 64-byte line: a vector of 32 f32 (128 bytes) takes two,
// at its column and 16 columns on; the masked tail of 4 columns (224-227)
// only the first, the second would lie past the row.
// CHECK-LABEL: func.func @prefetch_wide
//       CHECK:   scf.for
//       CHECK:     scf.for %{{.+}} = %{{.+}} to %c7{{.*}} {
//       CHECK:       %[[COL:.+]] = arith.addi %{{.+}}, %c0
//       CHECK:       vector.store %{{.+}}[%{{.+}}, %[[COL]]] : memref<?x228xf32>, vector<32xf32>
//       CHECK:       memref.prefetch %{{.+}}[%[[ROW:.+]], %[[COL]]], read, locality<2>, data
//       CHECK:       %[[NEXT:.+]] = arith.addi %[[COL]], %c16
//       CHECK:       memref.prefetch %{{.+}}[%[[ROW]], %[[NEXT]]], read, locality<2>, data
//       CHECK:     }
//       CHECK:     vector.maskedstore
//       CHECK:     memref.prefetch %{{.+}}[%[[ROW]], %c224{{.*}}]
//   CHECK-NOT:     memref.prefetch
//       CHECK:   return
func.func @prefetch_wide(%x: memref<?x228xf32>, %y: memref<?x228xf32>) {
  norm.rms_norm x(%x : memref<?x228xf32>) -> y(%y : memref<?x228xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 32, accumulators = 1, prefetch_rows = 1>
  return
}

// -----

// Vectors of 4 f32 (16 bytes): one prefetch every four vectors, at the
// steps that start a line's worth of columns (0 and 16 of a group of 32).
// CHECK-LABEL: func.func @prefetch_narrow
//       CHECK:   vector.store %{{.+}} : memref<?x64xf32>, vector<4xf32>
//  CHECK-NEXT:   memref.prefetch
// CHECK-COUNT-3:   vector.store %{{.+}} : memref<?x64xf32>, vector<4xf32>
//  CHECK-NEXT:   arith.constant 16
//       CHECK:   vector.store %{{.+}} : memref<?x64xf32>, vector<4xf32>
//  CHECK-NEXT:   memref.prefetch
func.func @prefetch_narrow(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 4, accumulators = 8, prefetch_rows = 1>
  return
}

// -----

// No prefetch_rows (or 0): no prefetches.
// CHECK-LABEL: func.func @no_prefetch
//   CHECK-NOT:   memref.prefetch
//       CHECK:   return
func.func @no_prefetch(%x: memref<?x256xf32>, %y: memref<?x256xf32>) {
  norm.rms_norm x(%x : memref<?x256xf32>) -> y(%y : memref<?x256xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, prefetch_rows = 0>
  return
}

// -----

// Long rows sum in blocks of 16 groups: an outer loop over blocks carrying
// the total and its compensation, an inner loop from zero, the block added
// to the total with Kahan's compensation (kept at 0 once the total is not
// finite), the compensation taken off at the end.
// CHECK-LABEL: func.func @blocked
//       CHECK:   %[[OUTER:.+]]:2 = scf.for %{{.*}} iter_args(%[[TOTAL:.+]] = %{{.*}}, %[[COMP:.+]] = %{{.*}}) -> (vector<16xf32>, vector<16xf32>) {
//       CHECK:     %[[FIRST:.+]] = arith.muli %{{.*}}, %c16
//       CHECK:     %[[LAST:.+]] = arith.addi %[[FIRST]], %c16
//       CHECK:     %[[PART:.+]] = scf.for %{{.*}} = %[[FIRST]] to %[[LAST]]
//       CHECK:     %[[Y:.+]] = arith.subf %[[PART]], %[[COMP]]
//       CHECK:     %[[T:.+]] = arith.addf %[[TOTAL]], %[[Y]]
//       CHECK:     arith.cmpf olt
//       CHECK:     %[[LOST:.+]] = arith.subf %[[T]], %[[TOTAL]]
//       CHECK:     arith.subf %[[LOST]], %[[Y]]
//       CHECK:     arith.select
//       CHECK:   arith.subf %[[OUTER]]#0, %[[OUTER]]#1
func.func @blocked(%x: memref<?x16384xf32>, %y: memref<?x16384xf32>) {
  norm.rms_norm x(%x : memref<?x16384xf32>) -> y(%y : memref<?x16384xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, accumulators = 1>
  return
}

// -----

// The pass options fill in what the config leaves open.
// CHECK-LABEL: func.func @defaults
//       CHECK:   vector<8xf32>
func.func @defaults(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  norm.rms_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05
  return
}

// -----

// norm.add alone becomes one sweep per row.
// CHECK-LABEL: func.func @add
//       CHECK:   scf.for
//       CHECK:     arith.addf %{{.*}}, %{{.*}} fastmath<contract> : vector<8xf32>
//       CHECK:     arith.truncf %{{.*}} : vector<8xf32> to vector<8xbf16>
func.func @add(%a: memref<?x32xf32>, %b: memref<?x32xf32>, %s: memref<?x32xbf16>) {
  norm.add %a, %b -> %s : memref<?x32xf32>, memref<?x32xf32> -> memref<?x32xbf16>
  return
}

// -----

// The same for a bf16 sum (x + residual, all bf16): rounded in the integer
// unit, stored as words, and the statistics read back from those words as
// a load would widen them (no truncf, no shuffle back).
// CHECK-LABEL: func.func @bf16_paired_sum
//       CHECK:   scf.for
//   CHECK-NOT:     arith.truncf
//       CHECK:     %[[WORDS:.+]] = arith.ori %{{.*}}, %{{.*}} : vector<4xi32>
//       CHECK:     %[[S:.+]] = vector.bitcast %[[WORDS]] : vector<4xi32> to vector<8xbf16>
//       CHECK:     vector.store %[[S]], %arg3[{{.*}}] : memref<?x16xbf16>, vector<8xbf16>
//       CHECK:     %[[BACK:.+]] = vector.bitcast %[[S]] : vector<8xbf16> to vector<4xi32>
//       CHECK:     arith.shli %[[BACK]]
//       CHECK:     arith.andi %[[BACK]]
//       CHECK:   scf.for
//   CHECK-NOT:     arith.truncf
//       CHECK:     vector.store %{{.*}}, %arg2[{{.*}}] : memref<?x16xbf16>, vector<8xbf16>
func.func @bf16_paired_sum(%x: memref<?x16xbf16>, %r: memref<?x16xbf16>, %y: memref<?x16xbf16>, %s: memref<?x16xbf16>) {
  norm.rms_norm x(%x : memref<?x16xbf16>) residual(%r : memref<?x16xbf16>) -> y(%y : memref<?x16xbf16>) sum(%s : memref<?x16xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, accumulators = 1>
  return
}

// -----

// An op inside a loop: its stack buffers (the widened bf16 gamma and beta,
// the statistics of row pairs) go to the function's entry block, not into
// the loop body, where every iteration would take more stack.
// CHECK-LABEL: func.func @op_in_a_loop
//   CHECK-DAG:   memref.alloca() {alignment = 64 : i64} : memref<1024xf32>
//   CHECK-DAG:   memref.alloca() : memref<2xf32>
//   CHECK-DAG:   memref.alloca() : memref<2xf32>
//   CHECK-DAG:   memref.alloca() : memref<2xf32>
//       CHECK:   cf.br ^bb1
//   CHECK-NOT:   memref.alloca
//       CHECK:   return
func.func @op_in_a_loop(%x: memref<?x1024xf32>, %g: memref<1024xbf16>, %y: memref<?x1024xf32>,
                        %x2: memref<?x4096xf32>, %g2: memref<4096xf32>, %b2: memref<4096xf32>, %y2: memref<?x4096xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  cf.br ^loop(%c0 : index)
^loop(%i: index):
  %more = arith.cmpi ult, %i, %n : index
  cf.cond_br %more, ^body, ^done
^body:
  norm.rms_norm x(%x : memref<?x1024xf32>) gamma(%g : memref<1024xbf16>) -> y(%y : memref<?x1024xf32>) eps = 1.0e-05
  norm.layer_norm x(%x2 : memref<?x4096xf32>) gamma(%g2 : memref<4096xf32>) beta(%b2 : memref<4096xf32>) -> y(%y2 : memref<?x4096xf32>) eps = 1.0e-05
  %next = arith.addi %i, %c1 : index
  cf.br ^loop(%next : index)
^done:
  return
}

// -----

// Rows of 2^62 columns: the size of f32 copies of gamma and beta does not
// overflow into something that fits the stack (no copy of them at all).
// CHECK-LABEL: func.func @huge_columns
//   CHECK-NOT:   memref.alloca() {alignment = 64 : i64}
//       CHECK:   return
func.func @huge_columns(%x: memref<?x4611686018427387904xbf16>, %g: memref<4611686018427387904xf32>, %b: memref<4611686018427387904xf32>, %y: memref<?x4611686018427387904xbf16>) {
  norm.layer_norm x(%x : memref<?x4611686018427387904xbf16>) gamma(%g : memref<4611686018427387904xf32>) beta(%b : memref<4611686018427387904xf32>) -> y(%y : memref<?x4611686018427387904xbf16>) eps = 1.0e-05
  return
}

// -----

// row_group = 3: the statistics of up to three rows onto the stack, then
// the output in tiles of 1024 columns (16 groups of 4 vectors of 16; 2100
// columns are two tiles of the 32 groups, then 3 vectors and a tail),
// every row of the group sweeping a tile before the next; the columns
// after the tiles row by row. Prefetches go a group ahead (3 rows), in
// the rows' memory order: the step writing the group's s-th element (in
// the order of the steps) prefetches element s of the next group's rows,
// row s / 2100 (the task's last at most) and column s % 2100.
// CHECK-LABEL: func.func @row_group_tiles
//   CHECK-DAG:   memref.alloca() : memref<3xf32>
//       CHECK:   scf.for %[[START:.+]] = %c0{{.*}} to %{{.+}} step %c3
//       CHECK:     %[[COUNT:.+]] = arith.minsi %c3
//       CHECK:     scf.for %{{.+}} = %c0{{.*}} to %[[COUNT]] step %c1
//       CHECK:       memref.store %{{.+}}, %{{.+}} : memref<3xf32>
//       CHECK:     %[[NEXT:.+]] = arith.addi %[[START]], %c3
//       CHECK:     %[[LASTROW:.+]] = arith.subi %{{.+}}, %c1
//       CHECK:     scf.for %[[TILE:.+]] = %c0{{.*}} to %c2{{.*}} step %c1
//       CHECK:       %[[FIRST:.+]] = arith.muli %[[TILE]], %c16
//       CHECK:       %[[END:.+]] = arith.addi %[[FIRST]], %c16
//       CHECK:       %[[LAST:.+]] = arith.minsi %[[END]], %c32
//       CHECK:       %[[TILESTART:.+]] = arith.muli %[[FIRST]], %c64
//       CHECK:       scf.for %[[K:.+]] = %c0{{.*}} to %[[COUNT]] step %c1
//       CHECK:         %[[ROW:.+]] = arith.addi %[[START]], %[[K]]
//       CHECK:         memref.load %{{.+}}[%[[K]]] : memref<3xf32>
//       CHECK:         %[[BEFORE:.+]] = arith.muli %[[COUNT]], %[[TILESTART]]
//       CHECK:         %[[BASE:.+]] = arith.addi %[[BEFORE]], %{{.+}}
//       CHECK:         scf.for %{{.+}} = %[[FIRST]] to %[[LAST]] step %c1
//       CHECK:           vector.store %{{.+}}, %{{.+}}[%[[ROW]], %[[COL:.+]]] : memref<?x2100xf32>, vector<16xf32>
//       CHECK:           %[[INTILE:.+]] = arith.subi %[[COL]], %[[TILESTART]]
//       CHECK:           %[[EL:.+]] = arith.addi %[[BASE]], %[[INTILE]]
//       CHECK:           %[[Q:.+]] = arith.divui %[[EL]], %c2100
//       CHECK:           %[[R:.+]] = arith.addi %[[NEXT]], %[[Q]]
//       CHECK:           %[[PF:.+]] = arith.minsi %[[R]], %[[LASTROW]]
//       CHECK:           %[[C:.+]] = arith.remui %[[EL]], %c2100
//       CHECK:           memref.prefetch %{{.+}}[%[[PF]], %[[C]]]
//       CHECK:     scf.for %[[K2:.+]] = %c0{{.*}} to %[[COUNT]] step %c1
//       CHECK:       %[[ROW2:.+]] = arith.addi %[[START]], %[[K2]]
//       CHECK:       vector.store %{{.+}}, %{{.+}}[%[[ROW2]], %c2048{{.*}}] : memref<?x2100xf32>, vector<16xf32>
//       CHECK:       vector.maskedstore %{{.+}}[%[[ROW2]], %c2096{{.*}}]
func.func @row_group_tiles(%x: memref<?x2100xf32>, %g: memref<2100xf32>, %b: memref<2100xf32>, %y: memref<?x2100xf32>) {
  norm.layer_norm x(%x : memref<?x2100xf32>) gamma(%g : memref<2100xf32>) beta(%b : memref<2100xf32>) -> y(%y : memref<?x2100xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, accumulators = 4, row_group = 3, prefetch_rows = 1>
  return
}

// -----

// row_group = 1 where the default would pair the rows (4096 f32 columns
// with gamma and beta overflow 32 KiB): one row at a time.
// CHECK-LABEL: func.func @row_group_single
//   CHECK-NOT:   memref.alloca
//       CHECK:   scf.for %{{.+}} = %c0{{.*}} to %{{.+}} step %c1
func.func @row_group_single(%x: memref<?x4096xf32>, %g: memref<4096xf32>, %b: memref<4096xf32>, %y: memref<?x4096xf32>) {
  norm.layer_norm x(%x : memref<?x4096xf32>) gamma(%g : memref<4096xf32>) beta(%b : memref<4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, row_group = 1>
  return
}

// -----

// A post-norm block (a residual, no sum kept) with an f32 y whose row,
// residual and gamma overflow 32 KiB: the first sweep writes s = x + r
// into y's row, and the output sweep reads s back from y, not x and r.
// CHECK-LABEL: func.func @post_norm_sum_in_y
//  CHECK-SAME:   (%[[X:[^:]+]]: memref<?x4096xf32>, %[[R:[^:]+]]: memref<?x4096xf32>, %[[G:[^:]+]]: memref<4096xf32>, %[[Y:[^:]+]]: memref<?x4096xf32>)
//       CHECK:   vector.load %[[R]]
//       CHECK:   vector.load %[[X]]
//       CHECK:   vector.store %{{.+}}, %[[Y]]
//       CHECK:   vector.load %[[G]]
//   CHECK-NOT:   vector.load %[[X]]
//   CHECK-NOT:   vector.load %[[R]]
//       CHECK:   vector.load %[[Y]]
//       CHECK:   vector.store %{{.+}}, %[[Y]]
//       CHECK:   return
func.func @post_norm_sum_in_y(%x: memref<?x4096xf32>, %r: memref<?x4096xf32>, %g: memref<4096xf32>, %y: memref<?x4096xf32>) {
  norm.rms_norm x(%x : memref<?x4096xf32>) residual(%r : memref<?x4096xf32>) gamma(%g : memref<4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, accumulators = 1>
  return
}

// -----

// Rows that stay in L1 (768 columns), or streaming stores: x and r are
// read again, y is written once.
// CHECK-LABEL: func.func @post_norm_recomputed
//  CHECK-SAME:   (%[[X:[^:]+]]: memref<?x768xf32>, %[[R:[^:]+]]: memref<?x768xf32>, %[[G:[^:]+]]: memref<768xf32>, %[[Y:[^:]+]]: memref<?x768xf32>
//   CHECK-NOT:   vector.load %[[Y]]
//       CHECK:   vector.load %[[G]]
//   CHECK-DAG:   vector.load %[[R]]
//   CHECK-DAG:   vector.load %[[X]]
//       CHECK:   vector.store %{{.+}}, %[[Y]]
//   CHECK-NOT:   vector.load %[[Y]]
//       CHECK:   return
// CHECK-LABEL: func.func @post_norm_streaming
//   CHECK-NOT:   vector.load %arg3
//       CHECK:   return
func.func @post_norm_recomputed(%x: memref<?x768xf32>, %r: memref<?x768xf32>, %g: memref<768xf32>, %y: memref<?x768xf32>) {
  norm.rms_norm x(%x : memref<?x768xf32>) residual(%r : memref<?x768xf32>) gamma(%g : memref<768xf32>) -> y(%y : memref<?x768xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, accumulators = 1>
  return
}
func.func @post_norm_streaming(%x: memref<?x4096xf32>, %r: memref<?x4096xf32>, %g: memref<4096xf32>, %y: memref<?x4096xf32>) {
  norm.rms_norm x(%x : memref<?x4096xf32>) residual(%r : memref<?x4096xf32>) gamma(%g : memref<4096xf32>) -> y(%y : memref<?x4096xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16, accumulators = 1, streaming_stores = true>
  return
}

// -----

// A group of short rows finishes its statistics in lanes: each row's
// sweep in a loop over the group's rows, its sums stored as lanes on the
// stack (zeroed once, at the function's entry), then loaded as vectors of
// the group; one vector computation of the far-shift test and, only when
// a lane is far, the centred sweep row by row through the stack; then
// rstd, the centre and its offset for the whole group at once, kept on the
// stack for the output sweeps.
// CHECK-LABEL: func.func @lane_stats
//       CHECK:   memref.alloca() : memref<4xf32>
//       CHECK:   %[[SHIFTS:.+]] = memref.alloca() : memref<4xf32>
//       CHECK:   vector.store %{{.+}}, %[[SHIFTS]][%{{.+}}] : memref<4xf32>, vector<4xf32>
//       CHECK:   %[[M2S:.+]] = memref.alloca() : memref<4xf32>
//       CHECK:   vector.store %{{.+}}, %[[M2S]][%{{.+}}] : memref<4xf32>, vector<4xf32>
//       CHECK:   %[[MEANS:.+]] = memref.alloca() : memref<4xf32>
//       CHECK:   vector.store %{{.+}}, %[[MEANS]][%{{.+}}] : memref<4xf32>, vector<4xf32>
//       CHECK:   scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c4
//       CHECK:     scf.for %[[ROW:.+]] = %{{.+}} to %{{.+}} step %c1
//       CHECK:       memref.store %{{.+}}, %[[MEANS]][%[[ROW]]] : memref<4xf32>
//       CHECK:       memref.store %{{.+}}, %[[M2S]][%[[ROW]]] : memref<4xf32>
//       CHECK:       memref.store %{{.+}}, %[[SHIFTS]][%[[ROW]]] : memref<4xf32>
//       CHECK:     }
//       CHECK:     %{{.+}} = vector.load %[[MEANS]][%{{.+}}] : memref<4xf32>, vector<4xf32>
//       CHECK:     %[[FAR:.+]] = arith.andi %{{.+}}, %{{.+}} : vector<4xi1>
//       CHECK:     %[[ANY:.+]] = vector.reduction <or>, %[[FAR]] : vector<4xi1> into i1
//       CHECK:     %{{.+}}:3 = scf.if %[[ANY]] -> (vector<4xf32>, vector<4xf32>, vector<4xf32>) {
//       CHECK:       scf.for
//       CHECK:         scf.if
//       CHECK:     } else {
//       CHECK:     math.sqrt %{{.+}} : vector<4xf32>
//       CHECK:     vector.store %{{.+}}, %{{.+}}[%{{.+}}] : memref<4xf32>, vector<4xf32>
func.func @lane_stats(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  norm.layer_norm x(%x : memref<?x64xf32>) -> y(%y : memref<?x64xf32>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, accumulators = 2, row_group = 4>
  return
}

// -----

// By default 16-bit rows of up to 128 columns go 16 at a time in lanes
// (RMSNorm: one sum of squares a lane).
// CHECK-LABEL: func.func @lane_default
//       CHECK:   scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c16
//       CHECK:     vector.load %{{.+}} : memref<16xf32>, vector<16xf32>
//       CHECK:     math.sqrt %{{.+}} : vector<16xf32>
func.func @lane_default(%x: memref<?x64xbf16>, %y: memref<?x64xbf16>) {
  norm.rms_norm x(%x : memref<?x64xbf16>) -> y(%y : memref<?x64xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 16>
  return
}
