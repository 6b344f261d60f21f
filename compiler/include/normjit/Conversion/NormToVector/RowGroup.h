//===- RowGroup.h - the default grouping of rows on the CPU -----*- C++ -*-===//
//
// Part of normjit. How many rows convert-norm-to-vector normalizes together
// when #norm.config leaves `row_group` out; light, for the tuner's search
// space as well as the lowering.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_CONVERSION_NORMTOVECTOR_ROWGROUP_H
#define NORMJIT_CONVERSION_NORMTOVECTOR_ROWGROUP_H

#include <algorithm>
#include <cstdint>

namespace normjit {

/// The L1 data cache the default grouping plans for (Zen 4's, and most x86
/// cores', 32 KiB; larger ones only pair less).
constexpr int64_t kDefaultRowGroupL1Bytes = 32 * 1024;

/// The most bytes of f32 gamma and beta copies a kernel keeps on its stack:
/// they must share the L1 cache with the row (measured on Zen 4, 32 KiB
/// L1d: 8 KiB of copies made bf16 LayerNorm rows of 1024 columns 1.2x
/// faster; 16 KiB made RMSNorm rows of 4096 columns 1.25x slower, 32 KiB
/// LayerNorm ones 1.4x slower). The default for the row count follows it
/// too (which bf16 rows stream from any start).
constexpr int64_t kMaxWidenedColumnBytes = 8 * 1024;

/// The default `row_group` for rows of `cols` columns whose x, gamma and
/// beta take `xBytes`, `gammaBytes` and `betaBytes` per element (0: no
/// gamma or beta): 2 (pairs, sharing the loads of gamma and beta) when
/// gamma, beta and a row overflow kDefaultRowGroupL1Bytes, else 1.
inline int64_t getDefaultRowGroup(int64_t cols, int64_t xBytes,
                                  int64_t gammaBytes, int64_t betaBytes) {
  // (Capped: only the comparison with the L1's size matters.)
  int64_t capped = std::min(cols, kDefaultRowGroupL1Bytes);
  int64_t params = capped * (gammaBytes + betaBytes);
  return params > 0 && params + capped * xBytes > kDefaultRowGroupL1Bytes ? 2
                                                                          : 1;
}

} // namespace normjit

#endif // NORMJIT_CONVERSION_NORMTOVECTOR_ROWGROUP_H
