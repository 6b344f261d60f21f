//===- SearchSpace.h - the CPU configs worth trying for a spec --*- C++ -*-===//
//
// Part of normjit. Enumerates the #norm.config<cpu> knobs for one spec and
// row count, with constraints so that every config generated can compile and
// run, and small enough that a budgeted search covers what matters.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TUNER_SEARCHSPACE_H
#define NORMJIT_TUNER_SEARCHSPACE_H

#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/JIT/KernelCompiler.h"
#include "normjit/tuner/Strategy.h"

#include <vector>

namespace normjit::tuner {

/// Every config of the CPU search space for `spec` at `rows` rows on `host`,
/// in a deterministic order, the default heuristic config first. Knobs:
/// - vector_width: 4 .. 2x the host's native f32 lanes (powers of two);
/// - accumulators: 1, 2, 4, 8, while a group of vectors fits in the row;
/// - algorithm: two_pass, and welford for LayerNorm;
/// - streaming stores: only when y is larger than `streamingThresholdBytes`
///   (4 MiB by default: beyond a core's L2, non-temporal stores already win
///   on the machines measured, e.g. 1.4x for 8192x1024 f32);
/// - prefetch rows: 0, and 1 and 2 rows ahead when the inputs (x and the
///   residual) are larger than `streamingThresholdBytes` too (fused
///   kernels only: the split form's norm reads the sum just written);
/// - rows per task: the default, and splits into 1x, 4x and 16x as many
///   tasks as cores;
/// - threads: all cores, and one thread for inputs too small to share;
/// - fusion: fused and add-then-norm when the spec has a residual;
/// - row group: the lowering's default; single rows where the default
///   pairs them, for the configs with streaming stores or prefetches;
///   column tiles over 8 rows (in tasks of whole groups) for the configs
///   with prefetches, unless the spec stores the residual's sum; and pairs
///   where the default takes single rows, for inputs of 2 rows or more up
///   to `streamingThresholdBytes` with gamma or beta (configs without
///   streaming stores or prefetches), and there tiles of 8 too (as above)
///   while 8 rows of x fit in 32 KiB. (So the space holds
///   getDefaultCpuConfigForRows for `rows` too.)
std::vector<CpuConfig>
buildCpuSearchSpace(const normjit_kernel_spec_t &spec, int64_t rows,
                    const HostCpu &host = getHostCpu(),
                    int64_t streamingThresholdBytes = kCacheResidentInputBytes);

/// How many knobs two CPU configs set differently.
int knobsApart(const CpuConfig &a, const CpuConfig &b);

/// The CPU candidates a search looks at, in the order it times them: the
/// default (space[0]), then every config of `space` one knob away from it
/// (the other fusion form, streaming stores on, prefetches, the other
/// algorithm, another width, ...; streaming stores with prefetches two rows
/// ahead right after streaming stores alone, and with prefetches one row
/// ahead in each other row group of the space, and the default in pairs
/// and in tiles where the space has them), then
/// the strategy's draw (drawCandidates), `maxCandidates` in all (every
/// config for an exhaustive search). A search cut short by its budget (a
/// workload of hundreds of MiB leaves time for a few timings) has then
/// looked at the single changes that matter most, whatever the draw.
std::vector<CpuConfig> pickCpuCandidates(const std::vector<CpuConfig> &space,
                                         const StrategyOptions &strategy);

/// How many knobs two GPU configs set differently, elements per thread
/// aside (they follow the others: a row in registers takes what its
/// threads need).
int knobsApart(const GpuConfig &a, const GpuConfig &b);

/// The GPU candidates a search looks at, in the order it times them: the
/// default (space[0]), then every config one knob away from it (threads
/// per row first, then the block size, the persistent grid, the row's
/// storage, the vector width), then the strategy's draw, `maxCandidates`
/// in all (every config for an exhaustive search).
std::vector<GpuConfig> pickGpuCandidates(const std::vector<GpuConfig> &space,
                                         const StrategyOptions &strategy);

/// The GPU configs worth trying for `spec` at `rows` rows on `target`: the
/// default first, then vector widths of 128 and 64 bits that tile the row,
/// threads per row from half to twice the default's, each row storage
/// that fits (the row in at most 32 registers per thread, or in shared
/// memory, or read again), blocks of 128 or 256 threads (or one row), and
/// a persistent grid when the
/// rows outnumber what one wave of blocks covers. Every config is valid for
/// the spec (what validateGpuConfig checks).
std::vector<GpuConfig> buildGpuSearchSpace(const normjit_kernel_spec_t &spec,
                                           int64_t rows,
                                           const GpuTarget &target);

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_SEARCHSPACE_H
