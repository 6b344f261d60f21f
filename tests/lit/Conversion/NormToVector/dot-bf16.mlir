// RUN: normjit-opt %s --split-input-file --convert-norm-to-vector="dot-bf16=true" | FileCheck %s
// The lowered IR reads back in and verifies (normjit-opt knows its dialects).
// RUN: normjit-opt %s --split-input-file --convert-norm-to-vector="dot-bf16=true" | normjit-opt --split-input-file > /dev/null
// With dot-bf16 (a target with AVX512-BF16), the statistics of rows of bf16
// values (x alone, or x + r rounded to a bf16 sum) are summed with x86vector.avx512.dot (vdpbf16ps): squares by
// a dot of the row with itself, LayerNorm's sums by a dot with ones, on the
// raw bf16 vectors, no widening; a masked tail reads zeros.

// RMSNorm: one dot per 32 columns; a sum of squares below 100 * 2^-102
// (denormal products may have been flushed) is summed again in plain f32.
// CHECK-LABEL: func.func @rms
//       CHECK:   scf.for
//       CHECK:     %[[RAW:.+]] = vector.load %{{.*}} : memref<?x100xbf16>, vector<32xbf16>
//       CHECK:     x86vector.avx512.dot %{{.*}}, %[[RAW]], %[[RAW]] : vector<32xbf16> -> vector<16xf32>
//       CHECK:   %[[TAIL:.+]] = vector.maskedload {{.*}} into vector<32xbf16>
//       CHECK:   %[[SQUARES:.+]] = x86vector.avx512.dot %{{.*}}, %[[TAIL]], %[[TAIL]]
//       CHECK:   %[[TOTAL:.+]] = vector.reduction <add>, %[[SQUARES]] : vector<16xf32> into f32
//       CHECK:   %[[TINY:.+]] = arith.cmpf olt, %[[TOTAL]], %cst{{.*}} : f32
//       CHECK:   scf.if %[[TINY]] -> (f32) {
//   CHECK-NOT:     x86vector
//       CHECK:     arith.mulf {{.*}} : vector<32xf32>
//       CHECK:   } else {
//       CHECK:     scf.yield %[[TOTAL]] : f32
func.func @rms(%x: memref<?x100xbf16>, %y: memref<?x100xbf16>) {
  norm.rms_norm x(%x : memref<?x100xbf16>) -> y(%y : memref<?x100xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 32, accumulators = 1>
  return
}

// -----

// LayerNorm (two_pass): the squares and the values in one sweep, unshifted
// (no median of the first values is read); a sum of squares too small to
// trust takes the centred sweep, as a far shift does.
// (Four groups of two vectors: the sweep is unrolled.)
// CHECK-LABEL: func.func @layer
//   CHECK-NOT:   memref.load
//       CHECK:   scf.for
//       CHECK:     %[[ONES:.+]] = arith.constant dense<1.000000e+00> : vector<32xbf16>
//       CHECK:     %[[RAW:.+]] = vector.load %{{.*}} : memref<?x256xbf16>, vector<32xbf16>
//       CHECK:     x86vector.avx512.dot %{{.*}}, %[[RAW]], %[[RAW]]
//       CHECK:     x86vector.avx512.dot %{{.*}}, %[[RAW]], %[[ONES]]
//       CHECK:   arith.cmpf olt
//       CHECK:   %[[NOTNEAR:.+]] = arith.cmpf ugt
//       CHECK:   arith.ori %[[NOTNEAR]]
func.func @layer(%x: memref<?x256xbf16>, %y: memref<?x256xbf16>) {
  norm.layer_norm x(%x : memref<?x256xbf16>) -> y(%y : memref<?x256xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 32, accumulators = 2>
  return
}

// -----

// Vectors of 64 lanes: two dots of 32 per vector.
// CHECK-LABEL: func.func @wide
//       CHECK:   %[[RAW:.+]] = vector.load %{{.*}} : memref<?x128xbf16>, vector<64xbf16>
//       CHECK:   %[[LO:.+]] = vector.extract_strided_slice %[[RAW]] {offsets = [0], sizes = [32], strides = [1]}
//       CHECK:   x86vector.avx512.dot %{{.*}}, %[[LO]], %[[LO]]
//       CHECK:   %[[HI:.+]] = vector.extract_strided_slice %[[RAW]] {offsets = [32], sizes = [32], strides = [1]}
//       CHECK:   x86vector.avx512.dot %{{.*}}, %[[HI]], %[[HI]]
func.func @wide(%x: memref<?x128xbf16>, %y: memref<?x128xbf16>) {
  norm.rms_norm x(%x : memref<?x128xbf16>) -> y(%y : memref<?x128xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 64, accumulators = 1>
  return
}

// -----

// A residual whose sum is stored in bf16: s = x + r is rounded to bf16 for
// the store, and that rounded vector is what the dots sum. Rounded with
// vcvtne2ps2bf16: the upper 16 lanes and the lower 16 into one vector of
// 32 bf16, the lower ones first.
// CHECK-LABEL: func.func @residual_sum
//       CHECK:   scf.for
//       CHECK:     %[[S:.+]] = arith.addf
//       CHECK:     %[[HI:.+]] = vector.extract_strided_slice %[[S]] {offsets = [16], sizes = [16], strides = [1]} : vector<32xf32> to vector<16xf32>
//       CHECK:     %[[LO:.+]] = vector.extract_strided_slice %[[S]] {offsets = [0], sizes = [16], strides = [1]} : vector<32xf32> to vector<16xf32>
//       CHECK:     %[[ROUNDED:.+]] = llvm.call_intrinsic "llvm.x86.avx512bf16.cvtne2ps2bf16.512"(%[[HI]], %[[LO]]) : (vector<16xf32>, vector<16xf32>) -> vector<32xbf16>
//   CHECK-NOT:     arith.truncf
//       CHECK:     vector.store %{{.*}}, %{{.*}} : memref<?x64xbf16>, vector<32xbf16>
//       CHECK:     x86vector.avx512.dot %{{.*}}, %[[ROUNDED]], %[[ROUNDED]]
func.func @residual_sum(%x: memref<?x64xbf16>, %r: memref<?x64xbf16>, %y: memref<?x64xbf16>, %s: memref<?x64xbf16>) {
  norm.rms_norm x(%x : memref<?x64xbf16>) residual(%r : memref<?x64xbf16>) -> y(%y : memref<?x64xbf16>) sum(%s : memref<?x64xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 32, accumulators = 1>
  return
}

// -----

// Not for: a residual whose sum is not stored (s = x + r stays f32), Welford,
// or vectors of fewer than 8 lanes.
// CHECK-LABEL: func.func @residual
//   CHECK-NOT:   x86vector
func.func @residual(%x: memref<?x64xbf16>, %r: memref<?x64xbf16>, %y: memref<?x64xbf16>) {
  norm.rms_norm x(%x : memref<?x64xbf16>) residual(%r : memref<?x64xbf16>) -> y(%y : memref<?x64xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 32>
  return
}

// -----

// CHECK-LABEL: func.func @welford
//   CHECK-NOT:   x86vector
func.func @welford(%x: memref<?x64xbf16>, %y: memref<?x64xbf16>) {
  norm.layer_norm x(%x : memref<?x64xbf16>) -> y(%y : memref<?x64xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 32, algorithm = welford>
  return
}

// -----

// CHECK-LABEL: func.func @narrow
//   CHECK-NOT:   x86vector
func.func @narrow(%x: memref<?x64xbf16>, %y: memref<?x64xbf16>) {
  norm.rms_norm x(%x : memref<?x64xbf16>) -> y(%y : memref<?x64xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 4>
  return
}

// -----

// With an f32 -> bf16 conversion instruction (AVX512-BF16), a full bf16
// vector in the paired lane order is rounded with it (vcvtne2ps2bf16 on
// two halves) and interleaved back with one shuffle (without it, in the
// integer unit: see convert-norm-to-vector.mlir @bf16_paired).
// CHECK-LABEL: func.func @paired_store
//       CHECK:   %[[T:.+]] = llvm.call_intrinsic "llvm.x86.avx512bf16.cvtne2ps2bf16.128"(%{{.*}}, %{{.*}}) : (vector<4xf32>, vector<4xf32>) -> vector<8xbf16>
//       CHECK:   %[[I:.+]] = vector.shuffle %[[T]], %[[T]] [0, 4, 1, 5, 2, 6, 3, 7] : vector<8xbf16>, vector<8xbf16>
//       CHECK:   vector.store %[[I]], %{{.*}} : memref<?x16xbf16>, vector<8xbf16>
func.func @paired_store(%x: memref<?x16xbf16>, %g: memref<16xbf16>, %y: memref<?x16xbf16>) {
  norm.rms_norm x(%x : memref<?x16xbf16>) gamma(%g : memref<16xbf16>) -> y(%y : memref<?x16xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, accumulators = 1>
  return
}

// -----

// With f32 gamma and dot-bf16 the output sweep widens x in the columns'
// order and reads gamma as it is (no permuted copy: with the conversion
// instruction the paired order gains nothing there).
// CHECK-LABEL: func.func @bf16_rows_f32_gamma
//   CHECK-NOT:   memref.alloca
//       CHECK:   math.sqrt
//       CHECK:   arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
//       CHECK:   vector.load %arg1[%{{.*}}] : memref<16xf32>, vector<8xf32>
//       CHECK:   llvm.call_intrinsic "llvm.x86.avx512bf16.cvtne2ps2bf16.128"
func.func @bf16_rows_f32_gamma(%x: memref<?x16xbf16>, %g: memref<16xf32>, %y: memref<?x16xbf16>) {
  norm.rms_norm x(%x : memref<?x16xbf16>) gamma(%g : memref<16xf32>) -> y(%y : memref<?x16xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 8, accumulators = 2>
  return
}

// -----

// Vectors of 64 lanes are rounded 32 at a time and joined; a masked tail
// stores the rounded vector under its mask; fewer than 8 lanes keep truncf.
// CHECK-LABEL: func.func @round_wide
//       CHECK:   %[[A:.+]] = llvm.call_intrinsic "llvm.x86.avx512bf16.cvtne2ps2bf16.512"
//       CHECK:   %[[B:.+]] = llvm.call_intrinsic "llvm.x86.avx512bf16.cvtne2ps2bf16.512"
//       CHECK:   vector.shuffle %[[A]], %[[B]] [0, 1, 2, {{.*}}, 62, 63] : vector<32xbf16>, vector<32xbf16>
//       CHECK:   vector.maskedstore {{.*}} : memref<?x100xbf16>, vector<{{[0-9]+}}xi1>, vector<{{[0-9]+}}xbf16>
func.func @round_wide(%x: memref<?x100xf32>, %y: memref<?x100xbf16>) {
  norm.rms_norm x(%x : memref<?x100xf32>) -> y(%y : memref<?x100xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 64, accumulators = 1>
  return
}

// -----

// CHECK-LABEL: func.func @round_narrow
//   CHECK-NOT:   llvm.call_intrinsic
//       CHECK:   arith.truncf %{{.*}} : vector<4xf32> to vector<4xbf16>
func.func @round_narrow(%x: memref<?x10xf32>, %y: memref<?x10xbf16>) {
  norm.rms_norm x(%x : memref<?x10xf32>) -> y(%y : memref<?x10xbf16>) eps = 1.0e-05
      config = #norm.config<cpu, vector_width = 4, accumulators = 1>
  return
}
