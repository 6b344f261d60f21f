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
