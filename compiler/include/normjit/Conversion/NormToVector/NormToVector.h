//===- NormToVector.h - lower norm ops to vector code -----------*- C++ -*-===//
//
// Part of normjit. The patterns of convert-norm-to-vector, for pipelines
// that want them without the pass.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_CONVERSION_NORMTOVECTOR_NORMTOVECTOR_H
#define NORMJIT_CONVERSION_NORMTOVECTOR_NORMTOVECTOR_H

#include "mlir/IR/PatternMatch.h"

#include <cstdint>

namespace normjit {

/// The knobs an op's #norm.config leaves open.
struct NormToVectorDefaults {
  int64_t vectorWidth = 8;
  int64_t accumulators = 4;
  bool welford = false;
  /// The target has AVX512-BF16: sums of bf16 rows use vdpbf16ps.
  bool dotBf16 = false;
};

/// Adds the patterns lowering norm.layer_norm, norm.rms_norm and norm.add to
/// scf + vector + arith + math + memref.
void populateNormToVectorPatterns(mlir::RewritePatternSet &patterns,
                                  const NormToVectorDefaults &defaults);

} // namespace normjit

#endif // NORMJIT_CONVERSION_NORMTOVECTOR_NORMTOVECTOR_H
