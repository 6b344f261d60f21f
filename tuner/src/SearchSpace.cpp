//===- SearchSpace.cpp - the CPU configs worth trying for a spec ----------===//
//
// Part of normjit. Implements buildCpuSearchSpace.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/SearchSpace.h"

#include "normjit/Conversion/NormToVector/RowGroup.h"

#include "llvm/ADT/ArrayRef.h"

#include <algorithm>
#include <utility>

using namespace normjit;

/// Rows held in registers with at least this many values per thread get
/// register-capped (min_blocks_per_sm) variants in the GPU space.
static constexpr int64_t kMinCappedElements = 16;

/// The most values one lane of Welford's running sums takes in a config of
/// the CPU space (columns / (vector_width * accumulators)): f16 rows of mean
/// 1e4 kept 5e-7 at 4096 values a lane (four lanes), 1.2e-5 at 8192.
static constexpr int64_t kWelfordLaneValues = 4096;

namespace {
/// Whether the default normalizes the rows of `spec` in pairs.
bool defaultPairsRows(const normjit_kernel_spec_t &spec) {
  return getDefaultRowGroup(spec) == 2;
}
} // namespace

std::vector<CpuConfig>
normjit::tuner::buildCpuSearchSpace(const normjit_kernel_spec_t &spec,
                                    int64_t rows, const HostCpu &host,
                                    int64_t streamingThresholdBytes) {
  CpuConfig base = getDefaultCpuConfig(spec, host);
  std::vector<CpuConfig> space = {base};
  auto add = [&](const CpuConfig &config) {
    if (llvm::Error error = validateCpuConfig(config)) {
      llvm::consumeError(std::move(error)); // never generate what can't run
      return;
    }
    if (std::find(space.begin(), space.end(), config) == space.end())
      space.push_back(config);
  };

  int64_t cols = spec.cols;
  int64_t native = host.nativeVectorWidth();
  std::vector<int64_t> widths;
  for (int64_t width = 4; width <= 2 * native; width *= 2)
    widths.push_back(width);

  int64_t cores = std::max<int64_t>(1, host.cores);
  rows = std::max<int64_t>(rows, 1);
  std::vector<int64_t> rowsPerTask = {base.rowsPerTask};
  for (int64_t tasksPerCore : {1, 4, 16})
    rowsPerTask.push_back(std::clamp<int64_t>(
        (rows + cores * tasksPerCore - 1) / (cores * tasksPerCore), 1,
        kMaxRowsPerTask));
  std::sort(rowsPerTask.begin(), rowsPerTask.end());
  rowsPerTask.erase(std::unique(rowsPerTask.begin(), rowsPerTask.end()),
                    rowsPerTask.end());

  int64_t outputBytes =
      rows * cols * static_cast<int64_t>(normjit_dtype_size(spec.y_dtype));
  std::vector<bool> streaming = {false};
  if (outputBytes > streamingThresholdBytes)
    streaming.push_back(true);
  // Software prefetches of the rows ahead, for inputs beyond a core's L2
  // (the hardware's prefetchers leave the memory idle while a row's output
  // is written from L1; on the Zen 5, 1.4-1.7x for 8192-65536 rows of
  // 768-1024 f32 LayerNorm on one thread, but 0.8-0.9x for 8192 rows of
  // 4096 with gamma and beta). Fused kernels only: in the add-then-norm
  // form the norm reads the sum the add has just written.
  int64_t inputBytes =
      rows * cols *
      static_cast<int64_t>(normjit_dtype_size(spec.x_dtype) +
                           (spec.has_residual
                                ? normjit_dtype_size(spec.residual_dtype)
                                : 0));
  std::vector<int64_t> prefetch = {0};
  if (inputBytes > streamingThresholdBytes)
    prefetch.insert(prefetch.end(), {1, 2});
  std::vector<int> threads = {0};
  if (cores > 1 && rows * cols < (1 << 18))
    threads.push_back(1);
  std::vector<bool> welford = {false};
  if (spec.op == NORMJIT_LAYER_NORM)
    welford.push_back(true);
  std::vector<bool> fuse = {true};
  if (spec.has_residual)
    fuse.push_back(false);

  for (int64_t width : widths)
    for (int64_t accumulators : {1, 2, 4, 8}) {
      // A group of vectors longer than the row only adds masked work.
      if (accumulators > 1 && width * accumulators > std::max(cols, width))
        continue;
      for (bool useWelford : welford) {
        // Welford's running sums lose precision as each lane takes more
        // values: the tuner tries it only where a lane takes at most
        // kWelfordLaneValues.
        if (useWelford && cols > kWelfordLaneValues * width * accumulators)
          continue;
        for (bool nt : streaming)
          for (int64_t ahead : prefetch)
            for (int64_t perTask : rowsPerTask)
              for (int threadCount : threads)
                for (bool fused : fuse) {
                  if (ahead > 0 && !fused)
                    continue;
                  CpuConfig config;
                  config.vectorWidth = width;
                  config.accumulators = accumulators;
                  config.welford = useWelford;
                  config.streamingStores = nt;
                  config.prefetchRows = ahead;
                  config.rowsPerTask = perTask;
                  config.threads = threadCount;
                  config.fuseResidual = fused;
                  add(config);
                }
      }
    }
  // Other row groups for the configs meant for inputs beyond the cache:
  // single rows, where the default pairs them, for those with streaming
  // stores or prefetches (a pair's rows with gamma and beta overflow even
  // a 48 KiB L1, and the prefetched rows evict them: on the Zen 5,
  // 2048x4096 f32 LayerNorm on one thread went from 41-44 to 51 GB/s with
  // prefetches one row ahead); and tiles of kTiledRowGroup rows, which
  // prefetch the next group's rows in their memory order, for those with
  // prefetches (one thread: 1.06-1.23x over single rows on 512x12288,
  // 1024x8192, 2048x4096 and 8192x1024, 0.88-0.95x on 8192x4096 and
  // 65536x1024; within tasks of a few rows they prefetch little). Not
  // with a stored sum: the statistics pass writes the group's sum rows
  // and the output pass reads them back from far caches (0.58-0.99x
  // streaming alone on 2048x4096 and 512x12288 f32 with a residual).
  // And pairs and tiles of kTiledRowGroup rows, where the default takes
  // single rows, for inputs within the caches (as far as the threshold
  // above says) with gamma or beta: a pair loads (and widens, when 16-bit)
  // one vector of gamma and beta for both rows, and the statistics of a
  // group's rows, computed one row after the other, overlap their
  // reductions and divisions. On the Zen 5, one thread, 64 rows, pairs
  // against single rows: 1.10-1.30x for 768-4096 columns of bf16 or f16
  // (bf16 or f32 gamma and beta), 1.15x for 768 f32, 0.89x for 2048 f32;
  // tiles of 8: 1.21-1.44x for 768 columns of f32, f16 and bf16, as pairs
  // for 1024-2048. Beyond the L3 both lose (pairs 0.86-0.91x, tiles
  // without prefetches 0.58-0.87x on one thread), hence not there.
  bool pairs = defaultPairsRows(spec);
  bool tiles = !(spec.has_residual && spec.store_sum);
  bool addGroups = !pairs && rows >= 2 &&
                   (spec.has_gamma || spec.has_beta) &&
                   inputBytes <= streamingThresholdBytes;
  // Tiles there only while the group's rows of x fit in 32 KiB (bf16 rows
  // of up to 2048 columns, f32 of up to 1024): beyond, they lost to single
  // rows (f32 rows of 2048 columns: 0.71-0.82x in groups of 3, 4 or 8).
  bool addTiles =
      addGroups && tiles &&
      kTiledRowGroup * cols *
              static_cast<int64_t>(normjit_dtype_size(spec.x_dtype)) <=
          (32 << 10);
  // Groups of short rows whose statistics the lowering finishes in lanes
  // (kLaneRowGroup rows, one a lane), for every config but Welford's (the
  // lowering takes its rows one by one): on the Zen 4 at the AVX2 level
  // they ran 1.1-2.5x single rows for 16-bit rows of up to 256 columns and
  // 1.2-1.7x for f32 rows of up to 256 columns within the caches, but
  // 0.5-1.0x for f32 rows of 64-512 columns beyond the L3. And single
  // rows where the default takes lanes.
  bool lanes = rows >= 2 && cols <= kMaxLaneStatsColumns;
  bool defaultLanes = getDefaultRowGroup(spec) > 2;
  size_t ungrouped = space.size();
  for (size_t i = 0; i < ungrouped; ++i) {
    CpuConfig config = space[i];
    if (lanes && !config.welford) {
      add(withRowGroup(config, kLaneRowGroup));
      if (defaultLanes)
        add(withRowGroup(config, 1));
    }
    if (pairs && (config.streamingStores || config.prefetchRows > 0))
      add(withRowGroup(config, 1));
    if (tiles && config.prefetchRows > 0)
      add(withRowGroup(config, kTiledRowGroup));
    if (addGroups && !config.streamingStores && config.prefetchRows == 0) {
      add(withRowGroup(config, 2));
      if (addTiles)
        add(withRowGroup(config, kTiledRowGroup));
    }
  }
  return space;
}


std::vector<GpuConfig>
normjit::tuner::buildGpuSearchSpace(const normjit_kernel_spec_t &spec,
                                    int64_t rows, const GpuTarget &target) {
  GpuConfig base = getDefaultGpuConfig(spec, target);
  std::vector<GpuConfig> space = {base};
  int64_t cols = std::max<int64_t>(1, spec.cols);
  unsigned bits = getWidestElementBits(spec);
  auto fits = [&](const GpuConfig &c) {
    if (c.vectorWidth * bits > 128 || c.elementsPerThread % c.vectorWidth ||
        c.blockSize() > 1024 || c.threadsPerRow > 1024)
      return false;
    switch (c.rowStorage) {
    case GpuRowStorage::Registers:
      // At most 32 f32 values of the row per thread (and their gamma and
      // beta when persistent): more spills or starves occupancy.
      return c.threadsPerRow * c.elementsPerThread >= cols &&
             c.elementsPerThread <= 32;
    case GpuRowStorage::Shared:
      return sharedRowsFit(cols, c.rowsPerBlock, c.vectorWidth);
    case GpuRowStorage::Global:
      return true;
    }
    return false;
  };
  auto add = [&](const GpuConfig &config) {
    if (fits(config) &&
        std::find(space.begin(), space.end(), config) == space.end())
      space.push_back(config);
  };

  std::vector<int64_t> widths;
  for (int64_t width = std::min<int64_t>(8, 128 / bits); width >= 1;
       width /= 2) {
    if (cols % width == 0 || width == 1)
      widths.push_back(width);
    if (widths.size() == 2)
      break;
  }
  rows = std::max<int64_t>(1, rows);
  for (int64_t width : widths) {
    int64_t vectors = (cols + width - 1) / width;
    for (int64_t tpr = 1; tpr <= 1024; tpr *= 2) {
      // Threads per row from half to twice the default's.
      if (tpr * 2 < base.threadsPerRow || tpr > 2 * base.threadsPerRow)
        continue;
      int64_t chunks = (vectors + tpr - 1) / tpr;
      struct Storage {
        GpuRowStorage storage;
        int64_t elementsPerThread;
      };
      std::vector<Storage> storages = {
          {GpuRowStorage::Registers, chunks * width}};
      // Loops over the row: one or two vectors per thread and step.
      for (int64_t step : {1, 2})
        if (step <= chunks) {
          storages.push_back({GpuRowStorage::Shared, step * width});
          storages.push_back({GpuRowStorage::Global, step * width});
        }
      for (int64_t blockSize : {128, 256}) {
        int64_t rowsPerBlock = std::max<int64_t>(1, blockSize / tpr);
        int64_t blocks = (rows + rowsPerBlock - 1) / rowsPerBlock;
        std::vector<bool> persistent = {false};
        // Not with blocks of 1024 threads: their 64 registers per thread
        // leave no room for what a persistent loop keeps live across rows
        // (ptxas spilled 24-32 bytes on rows of 16-bit types).
        if (blocks > 2 * static_cast<int64_t>(target.smCount) &&
            tpr * rowsPerBlock < 1024)
          persistent.push_back(true);
        for (const Storage &storage : storages)
          for (bool loop : persistent) {
            GpuConfig config;
            config.vectorWidth = width;
            config.threadsPerRow = tpr;
            config.rowsPerBlock = rowsPerBlock;
            config.elementsPerThread = storage.elementsPerThread;
            config.rowStorage = storage.storage;
            config.persistent = loop;
            add(config);
          }
      }
    }
  }
  // A register cap for rows held in registers, 16 values a thread or more
  // (the kernels whose registers limit their blocks per multiprocessor):
  // enough blocks for 1280 threads per multiprocessor (48 registers), or
  // 1536 (40) for 24 values or fewer, where the block size divides them.
  // Whether the warps won are worth the spills is for the timing to say.
  size_t uncapped = space.size();
  for (size_t i = 0; i < uncapped; ++i) {
    GpuConfig config = space[i];
    if (config.rowStorage != GpuRowStorage::Registers || config.persistent ||
        config.elementsPerThread < kMinCappedElements)
      continue;
    for (int64_t threadsPerSm : {1280, 1536}) {
      config.minBlocksPerSm = threadsPerSm / config.blockSize();
      if (threadsPerSm % config.blockSize() == 0 &&
          config.minBlocksPerSm >= 2 && fitsSmResidency(config, target) &&
          (threadsPerSm == 1280 || config.elementsPerThread <= 24))
        add(config);
    }
  }
  return space;
}

int normjit::tuner::knobsApart(const CpuConfig &a, const CpuConfig &b) {
  return (a.vectorWidth != b.vectorWidth) + (a.accumulators != b.accumulators) +
         (a.rowsPerTask != b.rowsPerTask) + (a.threads != b.threads) +
         (a.welford != b.welford) + (a.streamingStores != b.streamingStores) +
         (a.prefetchRows != b.prefetchRows) + (a.rowGroup != b.rowGroup) +
         (a.fuseResidual != b.fuseResidual);
}

namespace {
/// The default (space[0]), the configs one knob away from it in the order
/// of `rank` (stable), with `extras` of the space (configs farther away, or
/// one knob away and ranked earlier, each with its rank) among them, then
/// the strategy's draw;
/// `maxCandidates` in all, or the whole space for an exhaustive search.
template <typename Config, typename Rank>
std::vector<Config>
pickNeighboursFirst(const std::vector<Config> &space,
                    const normjit::tuner::StrategyOptions &strategy,
                    Rank rank,
                    llvm::ArrayRef<std::pair<Config, int>> extras = {}) {
  if (space.empty())
    return {};
  const Config &base = space.front();
  std::vector<std::pair<int, Config>> early;
  for (const Config &config : space)
    if (normjit::tuner::knobsApart(config, base) == 1)
      early.push_back({rank(config), config});
  for (const auto &[config, extraRank] : extras) {
    if (std::find(space.begin(), space.end(), config) == space.end())
      continue;
    // One knob away: already listed; it takes the extra's rank.
    auto listed = std::find_if(early.begin(), early.end(), [&](const auto &e) {
      return e.second == config;
    });
    if (listed != early.end())
      listed->first = std::min(listed->first, extraRank);
    else
      early.push_back({extraRank, config});
  }
  std::stable_sort(early.begin(), early.end(),
                   [](const auto &a, const auto &b) { return a.first < b.first; });
  std::vector<Config> ordered = {base};
  for (const auto &entry : early)
    ordered.push_back(entry.second);
  for (size_t index : normjit::tuner::drawCandidates(space.size(), strategy))
    if (std::find(ordered.begin(), ordered.end(), space[index]) ==
        ordered.end())
      ordered.push_back(space[index]);
  size_t limit = strategy.kind == normjit::tuner::StrategyKind::Exhaustive
                     ? ordered.size()
                     : std::max<size_t>(strategy.maxCandidates, 1);
  ordered.resize(std::min(ordered.size(), limit));
  return ordered;
}
} // namespace

std::vector<CpuConfig>
normjit::tuner::pickCpuCandidates(const std::vector<CpuConfig> &space,
                                  const StrategyOptions &strategy) {
  if (space.empty())
    return {};
  // The other fusion form first (the tuner must time both forms of a
  // residual spec), then streaming stores, streaming stores with
  // prefetches two rows ahead (two knobs away, but together what large
  // inputs want) and the same one row ahead in single rows and in tiles,
  // where the space holds them (three knobs away or more), the default in
  // pairs and in tiles where the space has them (rows per task rounded to
  // whole groups: perhaps two knobs away), prefetches alone, the other
  // algorithm, and the other single changes in the space's order.
  const CpuConfig &base = space.front();
  CpuConfig streamingAhead = base;
  streamingAhead.streamingStores = true;
  streamingAhead.prefetchRows = 2;
  // (Extras the space does not hold are passed over.)
  CpuConfig ahead = streamingAhead;
  ahead.prefetchRows = 1;
  std::pair<CpuConfig, int> extras[] = {
      {streamingAhead, 2},
      {withRowGroup(ahead, 1), 2},
      {withRowGroup(ahead, kTiledRowGroup), 2},
      {withRowGroup(base, 2), 2},
      {withRowGroup(base, kTiledRowGroup), 2}};
  return pickNeighboursFirst(
      space, strategy,
      [&](const CpuConfig &config) {
        if (config.fuseResidual != base.fuseResidual)
          return 0;
        if (config.streamingStores != base.streamingStores)
          return 1;
        if (config.prefetchRows != base.prefetchRows)
          return 3;
        if (config.welford != base.welford)
          return 4;
        return 5;
      },
      llvm::ArrayRef<std::pair<CpuConfig, int>>(extras));
}

int normjit::tuner::knobsApart(const GpuConfig &a, const GpuConfig &b) {
  // Elements per thread follow the other knobs (a row in registers takes
  // what its threads need; a loop one or two vectors a step), so a change
  // of threads per row that keeps the row in registers is one move.
  return (a.vectorWidth != b.vectorWidth) +
         (a.threadsPerRow != b.threadsPerRow) +
         (a.blockSize() != b.blockSize()) + (a.rowStorage != b.rowStorage) +
         (a.persistent != b.persistent) +
         (a.minBlocksPerSm != b.minBlocksPerSm);
}

std::vector<GpuConfig>
normjit::tuner::pickGpuCandidates(const std::vector<GpuConfig> &space,
                                  const StrategyOptions &strategy) {
  if (space.empty())
    return {};
  // How the row is split over threads first (on the H200, 256 threads of
  // two vectors each beat the default's 128 threads of four by 13-17% on
  // 2048x4096 bf16 RMSNorm, two knobs of the space apart), then the block
  // size, a register cap (more blocks per multiprocessor: what Nsight
  // Compute found limiting the L2-resident bf16 LayerNorm), the persistent
  // grid, the row's storage, the vector width.
  const GpuConfig &base = space.front();
  return pickNeighboursFirst(space, strategy, [&](const GpuConfig &config) {
    if (config.threadsPerRow != base.threadsPerRow)
      return 0;
    if (config.blockSize() != base.blockSize())
      return 1;
    if (config.minBlocksPerSm != base.minBlocksPerSm)
      return 2;
    if (config.persistent != base.persistent)
      return 3;
    if (config.rowStorage != base.rowStorage)
      return 4;
    return 5;
  });
}
