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

/// The rows of a group whose statistics the lowering finishes in lanes,
/// one row a lane (convert-norm-to-vector's laneStats), when the default
/// groups short rows that way; and the most columns it does that for.
constexpr int64_t kLaneRowGroup = 16;
constexpr int64_t kMaxLaneStatsColumns = 512;

/// The default `row_group` for rows of `cols` columns whose x, gamma and
/// beta take `xBytes`, `gammaBytes` and `betaBytes` per element (0: no
/// gamma or beta), of LayerNorm or RMSNorm (`layerNorm`):
/// - short rows in groups whose statistics are finished in lanes (the
///   lowering takes single rows instead where it cannot: Welford's
///   LayerNorm, bf16 rows summed by vdpbf16ps): 16-bit rows of up to 128
///   columns in groups of kLaneRowGroup, up to 256 in groups of 8; f32
///   LayerNorm rows of up to 32 columns and RMSNorm ones of up to 16 in
///   groups of kLaneRowGroup. Measured on the Zen 4 at the AVX2 level
///   (`normjit bench --config '#norm.config<cpu, row_group = G>' --versus
///   '#norm.config<cpu>'`, 1M and 16M elements, 1 and 2 threads): 16-bit
///   rows 1.3-2.5x to 128 columns, 1.1-1.5x at 256, about 1.0x at 512;
///   f32 LayerNorm 1.4-1.7x to 32 columns; RMSNorm 1.03-1.27x at 16. The
///   f32 rows gain as much in the caches up to 256 columns but lose
///   beyond the L3 (0.5-1.0x), where a group's loads and its stores come
///   in bursts;
/// - else 2 (pairs, sharing the loads of gamma and beta) when gamma, beta
///   and a row overflow kDefaultRowGroupL1Bytes, else 1.
inline int64_t getDefaultRowGroup(int64_t cols, int64_t xBytes,
                                  int64_t gammaBytes, int64_t betaBytes,
                                  bool layerNorm) {
  if (xBytes == 2 && cols <= 128)
    return kLaneRowGroup;
  if (xBytes == 2 && cols <= 256)
    return 8;
  if (xBytes == 4 && cols <= (layerNorm ? 32 : 16))
    return kLaneRowGroup;
  // (Capped: only the comparison with the L1's size matters.)
  int64_t capped = std::min(cols, kDefaultRowGroupL1Bytes);
  int64_t params = capped * (gammaBytes + betaBytes);
  return params > 0 && params + capped * xBytes > kDefaultRowGroupL1Bytes ? 2
                                                                          : 1;
}

} // namespace normjit

#endif // NORMJIT_CONVERSION_NORMTOVECTOR_ROWGROUP_H
