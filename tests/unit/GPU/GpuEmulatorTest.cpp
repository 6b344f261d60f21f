//===- GpuEmulatorTest.cpp - GPU kernels run on the CPU emulator ----------===//
//
// Part of normjit. Runs without a GPU: the GPU kernels' IR (after
// convert-norm-to-gpu) executed by the SIMT emulator of GpuEmulator.h with
// the launch the CUDA runtime would make, its outputs compared with the
// fp64 reference with the tolerances of every kernel test (KernelCases.h),
// and every memory access, barrier and shuffle checked as a GPU would need
// it. Configs are sampled from the GPU search space (row storage in
// registers, shared or global memory, persistent or not, threads per row
// from 1 to 1024, vector widths 1 to 8) plus a few given by hand (rows
// ending inside a vector, blocks smaller than a warp or ending inside one,
// rows of 1024 threads with vectors); buffers contiguous, strided,
// misaligned (the scalar twin runs) and in place (y over x, sum over x,
// sum over the residual); LayerNorm and RMSNorm with every optional operand
// in f32, f16 and bf16; hard inputs.
//
// Most cases run the threads of a block as fibers, resuming in an order
// drawn from the case name (deterministic, and a thread runs as far ahead
// as the barriers let it: a missing barrier shows); the "_threads" cases
// run every GPU thread as an OS thread, all at once. Deeper runs:
// NORMJIT_EMU_REPEAT=N (N orders per case), NORMJIT_EMU_SCHEDULE=threads
// (every case on OS threads), NORMJIT_EMU_LARGE=1 (the GPU tests' shapes:
// long rows, whole search spaces, many rows; minutes).
//
//===----------------------------------------------------------------------===//

#include "GpuEmulator.h"

#include "../KernelCases.h"

#include "normjit/runtime/CudaLaunch.h"
#include "normjit/tuner/SearchSpace.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

using namespace normjit;
using namespace normjit::test;

namespace {

//===----------------------------------------------------------------------===//
// Buffers
//===----------------------------------------------------------------------===//

/// Host memory standing in for device memory: every byte starts as 0xAB,
/// with 256 guard bytes on both sides; the data starts `offset` bytes after
/// a 256-byte boundary (to misalign on purpose).
class EmuArray {
public:
  static constexpr size_t kGuardBytes = 256;

  void allocate(size_t size, size_t offsetBytes = 0) {
    bytes = size;
    offset = offsetBytes;
    storage.assign(kGuardBytes + offset + bytes + kGuardBytes + 256, 0xAB);
    uintptr_t address = reinterpret_cast<uintptr_t>(storage.data());
    start = (256 - address % 256) % 256;
  }
  void upload(const void *host, size_t count) {
    std::memcpy(data(), host, count);
  }
  void download(void *host, size_t count) const {
    std::memcpy(host, data(), count);
  }
  void *data() const {
    return storage.empty() ? nullptr
                           : const_cast<unsigned char *>(storage.data()) +
                                 start + kGuardBytes + offset;
  }
  ::testing::AssertionResult guardsIntact(const char *name) const {
    if (storage.empty())
      return ::testing::AssertionSuccess();
    const unsigned char *begin = storage.data() + start;
    for (size_t i = 0; i < kGuardBytes + offset; ++i)
      if (begin[i] != 0xAB)
        return ::testing::AssertionFailure()
               << name << ": written " << kGuardBytes + offset - i
               << " bytes before the buffer";
    const unsigned char *end = begin + kGuardBytes + offset + bytes;
    for (size_t i = 0; i < kGuardBytes; ++i)
      if (end[i] != 0xAB)
        return ::testing::AssertionFailure()
               << name << ": written " << i << " bytes past the buffer";
    return ::testing::AssertionSuccess();
  }
  ::testing::AssertionResult unchanged(const char *name, const void *host,
                                       size_t count) const {
    if (std::memcmp(data(), host, count) == 0)
      return ::testing::AssertionSuccess();
    const auto *now = static_cast<const unsigned char *>(data());
    const auto *before = static_cast<const unsigned char *>(host);
    size_t i = 0;
    while (now[i] == before[i])
      ++i;
    return ::testing::AssertionFailure()
           << "input " << name << " was modified at byte " << i;
  }

private:
  std::vector<unsigned char> storage;
  size_t bytes = 0, offset = 0, start = 0;
};

//===----------------------------------------------------------------------===//
// Cases
//===----------------------------------------------------------------------===//

struct EmuCase {
  normjit_kernel_spec_t spec;
  int64_t rows;
  int64_t padding; ///< extra elements per row stride
  Data data;
  GpuConfig config;
  Misalign misalign;
  InPlace inPlace;
  emu::Schedule schedule;
  std::string name;
};

void PrintTo(const EmuCase &c, std::ostream *os) {
  *os << c.name << " " << c.config.str();
}

/// "_t32r4e8v4reg" (as GpuTestSupport's describeConfig).
std::string describeConfig(const GpuConfig &config) {
  const char *storage = config.rowStorage == GpuRowStorage::Registers ? "reg"
                        : config.rowStorage == GpuRowStorage::Shared  ? "sh"
                                                                      : "gl";
  std::ostringstream os;
  os << "_t" << config.threadsPerRow << "r" << config.rowsPerBlock << "e"
     << config.elementsPerThread << "v" << config.vectorWidth << storage
     << (config.persistent ? "p" : "");
  return os.str();
}

/// The machine the configs are made for: an H100/H200.
GpuTarget caseTarget() {
  GpuTarget target;
  target.ccMajor = 9;
  target.ccMinor = 0;
  target.smCount = 132;
  return target;
}

/// Blocks of a persistent grid in the emulator.
constexpr int kPersistentBlocks = 3;

std::vector<GpuConfig> searchSpace(const normjit_kernel_spec_t &spec,
                                   int64_t rows) {
  return tuner::buildGpuSearchSpace(spec, rows, caseTarget());
}

/// The persistent configs the tuner may choose (for a great many rows).
std::vector<GpuConfig> persistentConfigs(const normjit_kernel_spec_t &spec) {
  std::vector<GpuConfig> result;
  for (const GpuConfig &config : searchSpace(spec, int64_t(1) << 24))
    if (config.persistent)
      result.push_back(config);
  return result;
}

/// Rows for two trips around the grid-stride loop of `config` in every
/// block of the emulator's persistent grid, and a partial last row group.
int64_t persistentRows(const GpuConfig &config) {
  return 2 * kPersistentBlocks * config.rowsPerBlock + config.rowsPerBlock / 2 +
         1;
}

/// One config per (threads per row, row storage, persistent) of `configs`,
/// so that a search space is sampled, not exhausted.
std::vector<GpuConfig> sample(const std::vector<GpuConfig> &configs) {
  std::set<std::tuple<int64_t, GpuRowStorage, bool>> taken;
  std::vector<GpuConfig> result;
  for (const GpuConfig &config : configs)
    if (taken
            .insert(
                {config.threadsPerRow, config.rowStorage, config.persistent})
            .second)
      result.push_back(config);
  return result;
}

GpuConfig makeConfig(int64_t vectorWidth, int64_t threadsPerRow,
                     int64_t rowsPerBlock, int64_t elementsPerThread,
                     GpuRowStorage storage, bool persistent = false) {
  GpuConfig config;
  config.vectorWidth = vectorWidth;
  config.threadsPerRow = threadsPerRow;
  config.rowsPerBlock = rowsPerBlock;
  config.elementsPerThread = elementsPerThread;
  config.rowStorage = storage;
  config.persistent = persistent;
  return config;
}

const std::vector<EmuCase> &allCases() {
  static const std::vector<EmuCase> *cases = [] {
    auto *result = new std::vector<EmuCase>();
    std::set<std::string> seen;
    auto add = [&](const normjit_kernel_spec_t &spec, int64_t rows,
                   int64_t padding, const GpuConfig &config,
                   Data data = Data::Normal, Misalign misalign = Misalign::None,
                   InPlace inPlace = InPlace::None,
                   emu::Schedule schedule = emu::Schedule::Fibers,
                   const std::string &baseName = "") {
      if (!hasMisalignedBuffer(spec, misalign))
        return;
      if (misalign == Misalign::Stride)
        padding = 1;
      EmuCase c{spec,     rows,    padding,  data, config,
                misalign, inPlace, schedule, ""};
      c.name = (baseName.empty() ? describeCase(spec, rows, padding, data)
                                 : baseName) +
               describeConfig(config) +
               (misalign != Misalign::None
                    ? std::string("_misaligned_") + misalignName(misalign)
                    : std::string()) +
               (baseName.empty() ? inPlaceName(inPlace) : "") +
               (schedule == emu::Schedule::Threads ? "_threads" : "");
      // The loops below overlap; each case runs once. (A base name is a
      // drawn case's, which names its in-place use already.)
      if (seen.insert(c.name).second)
        result->push_back(c);
    };
    auto defaultConfig = [](const normjit_kernel_spec_t &spec) {
      return getDefaultGpuConfig(spec, caseTarget());
    };
    const normjit_op_t ops[] = {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM};
    const int64_t allCols[] = {1, 3, 7, 64, 100, 768, 1000, 1027};

    // Column counts with the default config: f32 (odd ones strided), and
    // bf16 with a residual and the sum on strided rows.
    for (normjit_op_t op : ops)
      for (int64_t cols : allCols) {
        normjit_kernel_spec_t f32 = makeSpec(op, cols, NORMJIT_F32, NORMJIT_F32,
                                             false, false, true, true, true);
        add(f32, 5, cols % 2 ? 3 : 0, defaultConfig(f32));
        normjit_kernel_spec_t bf16 =
            makeSpec(op, cols, NORMJIT_BF16, NORMJIT_BF16, true, true, true,
                     true, true, NORMJIT_BF16);
        add(bf16, 7, 8, defaultConfig(bf16));
      }

    // Row counts: none, one, a partial block, several blocks.
    for (normjit_op_t op : ops) {
      normjit_kernel_spec_t spec =
          makeSpec(op, 768, NORMJIT_BF16, NORMJIT_BF16, true, true, true, true,
                   true, NORMJIT_BF16);
      for (int64_t rows : {0, 1, 5, 37})
        add(spec, rows, 0, defaultConfig(spec));
      add(spec, 37, 16, defaultConfig(spec));
    }

    // Every optional operand and dtype combination.
    for (normjit_op_t op : ops)
      for (const DTypes &d : kDTypes)
        for (const Variant &v : kVariants) {
          normjit_kernel_spec_t spec =
              makeSpec(op, 100, d.x, d.y, v.residual, v.sum, v.gamma, v.beta,
                       v.stats, d.other);
          add(spec, 37, 28, defaultConfig(spec));
        }

    // The search space of a few specs, sampled: vector widths, threads per
    // row (1 to 1024), rows per block, row storage.
    struct SpaceSpec {
      normjit_kernel_spec_t spec;
      int64_t rows, padding;
    };
    const SpaceSpec spaces[] = {
        {makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16, true,
                  true, true, true, true, NORMJIT_F32),
         37, 8},
        {makeSpec(NORMJIT_RMS_NORM, 1027, NORMJIT_F16, NORMJIT_F16, true, true,
                  true, false, true, NORMJIT_F16),
         5, 0},
        {makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_F32, NORMJIT_F32, false,
                  false, true, true, true),
         37, 4},
        {makeSpec(NORMJIT_LAYER_NORM, 7, NORMJIT_F16, NORMJIT_F32, true, true,
                  true, true, true, NORMJIT_BF16),
         37, 1},
        {makeSpec(NORMJIT_RMS_NORM, 768, NORMJIT_F32, NORMJIT_BF16, true, false,
                  true, false, true, NORMJIT_F16),
         9, 0},
        {makeSpec(NORMJIT_LAYER_NORM, 1027, NORMJIT_F32, NORMJIT_F32, true,
                  false, true, true, true, NORMJIT_F32),
         3, 0},
        {makeSpec(NORMJIT_RMS_NORM, 3, NORMJIT_BF16, NORMJIT_BF16, false, false,
                  true, false, true, NORMJIT_BF16),
         37, 0},
    };
    for (const SpaceSpec &s : spaces)
      for (const GpuConfig &config : sample(searchSpace(s.spec, s.rows)))
        add(s.spec, s.rows, s.padding, config);
    // Both vector widths of the search space (sample() keeps the first
    // one it meets): one config per width, threads per row and row storage.
    for (const SpaceSpec &s :
         {spaces[0],
          SpaceSpec{makeSpec(NORMJIT_RMS_NORM, 1000, NORMJIT_F32, NORMJIT_F32,
                             true, false, true, false, true, NORMJIT_F32),
                    9, 0}}) {
      std::set<std::tuple<int64_t, int64_t, GpuRowStorage>> taken;
      for (const GpuConfig &config : searchSpace(s.spec, s.rows))
        if (!config.persistent &&
            taken
                .insert({config.vectorWidth, config.threadsPerRow,
                         config.rowStorage})
                .second)
          add(s.spec, s.rows, s.padding, config);
    }
    // Vectors on rows of 512 and 1024 threads (the search space has these
    // for longer rows only).
    {
      normjit_kernel_spec_t ln4096 =
          makeSpec(NORMJIT_LAYER_NORM, 4096, NORMJIT_F32, NORMJIT_F32, true,
                   true, true, true, true, NORMJIT_F32);
      add(ln4096, 3, 0, makeConfig(4, 1024, 1, 4, GpuRowStorage::Registers));
      add(ln4096, 3, 0, makeConfig(4, 512, 2, 8, GpuRowStorage::Registers));
      add(ln4096, 3, 0, makeConfig(2, 1024, 1, 2, GpuRowStorage::Shared));
      add(ln4096, 5, 0,
          makeConfig(4, 512, 1, 4, GpuRowStorage::Global, /*persistent=*/true));
      normjit_kernel_spec_t rms4096 =
          makeSpec(NORMJIT_RMS_NORM, 4096, NORMJIT_BF16, NORMJIT_BF16, true,
                   true, true, false, true, NORMJIT_BF16);
      add(rms4096, 3, 0, makeConfig(8, 512, 1, 8, GpuRowStorage::Registers));
      add(rms4096, 3, 0, makeConfig(8, 1024, 1, 8, GpuRowStorage::Shared));
      add(rms4096, 3, 0, makeConfig(8, 256, 4, 8, GpuRowStorage::Global));
    }

    // Persistent kernels: every block goes twice around the grid-stride
    // loop, the last row group partial.
    const normjit_kernel_spec_t persistentSpecs[] = {
        makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_F32, NORMJIT_F32, false, false,
                 true, true, true),
        makeSpec(NORMJIT_RMS_NORM, 1027, NORMJIT_BF16, NORMJIT_F32, true, true,
                 true, false, true, NORMJIT_BF16),
        makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_F16, NORMJIT_F32, true, true,
                 true, true, true, NORMJIT_F32),
        makeSpec(NORMJIT_LAYER_NORM, 100, NORMJIT_BF16, NORMJIT_BF16, true,
                 false, true, true, false, NORMJIT_BF16),
    };
    for (const normjit_kernel_spec_t &spec : persistentSpecs)
      for (const GpuConfig &config : sample(persistentConfigs(spec)))
        add(spec, persistentRows(config), 0, config);
    // ... and with fewer rows than one block has, or none.
    for (const normjit_kernel_spec_t &spec : persistentSpecs) {
      std::vector<GpuConfig> configs = persistentConfigs(spec);
      if (configs.empty())
        continue;
      for (int64_t rows : {0, 1, 3})
        add(spec, rows, 0, configs.front());
    }

    // Rows that end inside a vector (the search space narrows vectors
    // until they tile the row; a config given by hand need not), blocks
    // smaller than a warp and of rows per block that are no power of two.
    {
      normjit_kernel_spec_t ln7 =
          makeSpec(NORMJIT_LAYER_NORM, 7, NORMJIT_F32, NORMJIT_F32, true, true,
                   true, true, true, NORMJIT_F32);
      add(ln7, 37, 1, makeConfig(4, 2, 8, 4, GpuRowStorage::Registers));
      add(ln7, 37, 1, makeConfig(4, 1, 5, 8, GpuRowStorage::Registers));
      add(ln7, 37, 1, makeConfig(4, 2, 3, 4, GpuRowStorage::Shared));
      add(ln7, 37, 1, makeConfig(2, 2, 7, 2, GpuRowStorage::Global));
      normjit_kernel_spec_t rms100 =
          makeSpec(NORMJIT_RMS_NORM, 100, NORMJIT_BF16, NORMJIT_BF16, true,
                   true, true, false, true, NORMJIT_BF16);
      add(rms100, 37, 28, makeConfig(8, 8, 4, 16, GpuRowStorage::Registers));
      add(rms100, 37, 28, makeConfig(8, 4, 16, 8, GpuRowStorage::Shared));
      add(rms100, 37, 28,
          makeConfig(8, 16, 2, 8, GpuRowStorage::Global, /*persistent=*/true));
      normjit_kernel_spec_t ln1027 =
          makeSpec(NORMJIT_LAYER_NORM, 1027, NORMJIT_F32, NORMJIT_F32, false,
                   false, true, true, true);
      add(ln1027, 5, 1, makeConfig(4, 256, 1, 8, GpuRowStorage::Shared));
      add(ln1027, 5, 1, makeConfig(4, 64, 2, 8, GpuRowStorage::Global));
      add(ln1027, 5, 1, makeConfig(4, 64, 2, 20, GpuRowStorage::Registers));
      add(ln1027, 9, 1,
          makeConfig(4, 128, 1, 4, GpuRowStorage::Global, /*persistent=*/true));
      normjit_kernel_spec_t rms64 =
          makeSpec(NORMJIT_RMS_NORM, 64, NORMJIT_F32, NORMJIT_F32, false, false,
                   true, false, true);
      add(rms64, 7, 0, makeConfig(4, 8, 3, 8, GpuRowStorage::Registers));
      add(rms64, 7, 0, makeConfig(4, 16, 3, 4, GpuRowStorage::Registers));
      add(rms64, 13, 0, makeConfig(4, 4, 12, 16, GpuRowStorage::Registers));
      add(rms64, 13, 0, makeConfig(4, 64, 3, 4, GpuRowStorage::Shared));
    }

    // Hard inputs, with the row in registers, shared memory and read
    // again from global memory: each computes the statistics its own way.
    const GpuRowStorage storages[] = {
        GpuRowStorage::Registers, GpuRowStorage::Shared, GpuRowStorage::Global};
    auto withStorage = [&](const normjit_kernel_spec_t &spec, int64_t rows,
                           GpuRowStorage storage) -> std::optional<GpuConfig> {
      for (const GpuConfig &config : searchSpace(spec, rows))
        if (config.rowStorage == storage && !config.persistent)
          return config;
      return std::nullopt;
    };
    for (normjit_op_t op : ops) {
      normjit_kernel_spec_t constant = makeSpec(
          op, 768, NORMJIT_F32, NORMJIT_F32, false, false, true, true, true);
      for (GpuRowStorage storage : storages)
        if (auto config = withStorage(constant, 6, storage))
          add(constant, 6, 0, *config, Data::Constant);
      for (normjit_dtype_t dtype : {NORMJIT_F32, NORMJIT_BF16}) {
        normjit_kernel_spec_t special = makeSpec(op, 100, dtype, dtype, true,
                                                 true, true, true, true, dtype);
        for (GpuRowStorage storage : storages)
          if (auto config = withStorage(special, 6, storage))
            add(special, 6, 0, *config, Data::Special);
      }
    }
    for (int64_t cols : {1000, 1027}) {
      normjit_kernel_spec_t spec =
          makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_F32, NORMJIT_F32, false,
                   false, false, false, true);
      for (GpuRowStorage storage : storages)
        if (auto config = withStorage(spec, 8, storage))
          add(spec, 8, 0, *config, Data::FarMean);
    }
    // An outlier first column (the statistics' shift far from the mean),
    // each row storage, short rows and one of 4096 columns.
    for (int64_t cols : {1000, 4096}) {
      normjit_kernel_spec_t spec =
          makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_F32, NORMJIT_F32, false,
                   false, true, true, true);
      for (GpuRowStorage storage : storages)
        if (auto config = withStorage(spec, 3, storage))
          for (Data data : {Data::Spike, Data::Outliers})
            add(spec, 3, 0, *config, data);
    }
    // Outliers of 1e3 in the first three columns of long rows with 16-bit
    // outputs: the mean of thousands of shifted values must be corrected
    // by the centred sweep (it was 2-3 f16 ulps off in every y before).
    {
      normjit_kernel_spec_t spec =
          makeSpec(NORMJIT_LAYER_NORM, 3573, NORMJIT_BF16, NORMJIT_F16, false,
                   false, false, false, true);
      for (GpuRowStorage storage : storages)
        if (auto config = withStorage(spec, 4, storage))
          add(spec, 4, 0, *config, Data::Outliers);
    }

    // Misaligned buffers and strides: the scalar twin, whose row may be
    // kept otherwise than the vector entry's.
    const Misalign everything[] = {
        Misalign::X, Misalign::Residual, Misalign::Gamma, Misalign::Beta,
        Misalign::Y, Misalign::Sum,      Misalign::Stride};
    {
      normjit_kernel_spec_t all =
          makeSpec(NORMJIT_LAYER_NORM, 768, NORMJIT_BF16, NORMJIT_BF16, true,
                   true, true, true, true, NORMJIT_BF16);
      normjit_kernel_spec_t rms =
          makeSpec(NORMJIT_RMS_NORM, 1000, NORMJIT_F32, NORMJIT_F32, true, true,
                   true, false, true, NORMJIT_F32);
      for (Misalign what : everything) {
        add(all, 21, 0, defaultConfig(all), Data::Normal, what);
        add(rms, 9, 0, defaultConfig(rms), Data::Normal, what);
      }
      for (const normjit_kernel_spec_t &spec :
           {all, rms,
            makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_F16, NORMJIT_F32, true,
                     false, true, true, true, NORMJIT_F16),
            makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_F32, NORMJIT_F32, false,
                     false, true, true, true)}) {
        std::set<std::pair<int64_t, GpuRowStorage>> taken;
        for (const GpuConfig &config : searchSpace(spec, 9))
          if (config.vectorWidth > 1 &&
              taken.insert({config.threadsPerRow, config.rowStorage}).second)
            add(spec, 9, 0, config, Data::Normal, Misalign::X);
        for (const GpuConfig &config : sample(persistentConfigs(spec)))
          if (config.vectorWidth > 1)
            add(spec, persistentRows(config), 0, config, Data::Normal,
                Misalign::Stride);
      }
    }

    // In place: y over x, sum over x, sum over the residual (a residual
    // stream updated in place), for each row storage and threads per row,
    // persistent too.
    {
      const normjit_kernel_spec_t specs[] = {
          makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16, true,
                   true, true, true, true, NORMJIT_BF16),
          makeSpec(NORMJIT_RMS_NORM, 768, NORMJIT_F32, NORMJIT_F32, true, true,
                   true, false, true, NORMJIT_F32),
          makeSpec(NORMJIT_LAYER_NORM, 100, NORMJIT_F16, NORMJIT_F16, true,
                   true, true, true, true, NORMJIT_F16),
          makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_F32, NORMJIT_F32, true, true,
                   true, true, true, NORMJIT_F32),
      };
      normjit_kernel_spec_t plain =
          makeSpec(NORMJIT_LAYER_NORM, 768, NORMJIT_F16, NORMJIT_F16, false,
                   false, true, true, true, NORMJIT_F32);
      std::vector<GpuConfig> plainConfigs = sample(searchSpace(plain, 9));
      for (const GpuConfig &config : sample(persistentConfigs(plain)))
        plainConfigs.push_back(config);
      for (const GpuConfig &config : plainConfigs)
        add(plain, config.persistent ? persistentRows(config) : 9, 0, config,
            Data::Normal, Misalign::None, InPlace::YIsX);
      for (const normjit_kernel_spec_t &spec : specs) {
        std::vector<GpuConfig> configs = sample(searchSpace(spec, 9));
        for (const GpuConfig &config : sample(persistentConfigs(spec)))
          configs.push_back(config);
        for (const GpuConfig &config : configs) {
          int64_t rows = config.persistent ? persistentRows(config) : 9;
          for (InPlace what :
               {InPlace::YIsX, InPlace::SumIsX, InPlace::SumIsResidual})
            add(spec, rows, 0, config, Data::Normal, Misalign::None, what);
        }
      }
    }

    // Truly concurrent threads: one OS thread per GPU thread, for blocks
    // with barriers (rows of several warps, persistent loops, in place).
    {
      normjit_kernel_spec_t ln =
          makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16, true,
                   true, true, true, true, NORMJIT_BF16);
      const GpuConfig configs[] = {
          makeConfig(8, 64, 2, 16, GpuRowStorage::Registers),
          makeConfig(8, 32, 4, 8, GpuRowStorage::Shared),
          makeConfig(8, 128, 1, 8, GpuRowStorage::Global, true),
          makeConfig(4, 8, 16, 16, GpuRowStorage::Global, true),
      };
      for (const GpuConfig &config : configs) {
        int64_t rows = config.persistent ? persistentRows(config) : 9;
        add(ln, rows, 0, config, Data::Normal, Misalign::None, InPlace::None,
            emu::Schedule::Threads);
        add(ln, rows, 0, config, Data::Normal, Misalign::None,
            InPlace::SumIsResidual, emu::Schedule::Threads);
      }
      // The in-place cases of persistent kernels.
      for (const normjit_kernel_spec_t &spec :
           {makeSpec(NORMJIT_RMS_NORM, 768, NORMJIT_F32, NORMJIT_F32, true,
                     true, true, false, true, NORMJIT_F32),
            makeSpec(NORMJIT_LAYER_NORM, 100, NORMJIT_F16, NORMJIT_F16, true,
                     true, true, true, true, NORMJIT_F16)})
        for (const GpuConfig &config : sample(persistentConfigs(spec)))
          for (InPlace what :
               {InPlace::YIsX, InPlace::SumIsX, InPlace::SumIsResidual})
            add(spec, persistentRows(config), 0, config, Data::Normal,
                Misalign::None, what, emu::Schedule::Threads);
      normjit_kernel_spec_t rms =
          makeSpec(NORMJIT_RMS_NORM, 1027, NORMJIT_F32, NORMJIT_F32, true, true,
                   true, false, true, NORMJIT_F32);
      add(rms, 2, 0, makeConfig(1, 1024, 1, 2, GpuRowStorage::Registers),
          Data::Normal, Misalign::None, InPlace::YIsX, emu::Schedule::Threads);
    }

    // Cases drawn from a fixed seed (KernelCases.h's drawCase: every
    // buffer's dtype on its own, any optional operands, odd column counts,
    // hard inputs, in place; rows kept short for the emulator), each with a
    // config drawn from the tuner's GPU search space for it, now and then
    // a misaligned buffer or stride. NORMJIT_FUZZ_SEED and
    // NORMJIT_EMU_FUZZ_CASES draw another set.
    {
      std::mt19937 rng(unsignedFromEnv("NORMJIT_FUZZ_SEED", 20261127));
      unsigned count = unsignedFromEnv("NORMJIT_EMU_FUZZ_CASES", 150);
      DrawLimits limits;
      limits.maxCols = 5000;
      limits.maxElements = 30000;
      for (unsigned i = 0; i < count; ++i) {
        DrawnCase d = drawCase(rng, limits);
        std::vector<GpuConfig> space = searchSpace(d.spec, d.rows);
        if (space.empty()) {
          ADD_FAILURE() << "no GPU config for " << d.describe();
          continue;
        }
        const GpuConfig &config = space[rng() % space.size()];
        Misalign misalign = Misalign::None;
        if (rng() % 5 == 0) {
          misalign = everything[rng() % std::size(everything)];
          bool used = hasMisalignedBuffer(d.spec, misalign);
          // A stride one element longer than the row can still be a
          // multiple of the vector; y and the sum in place are not
          // buffers of their own.
          if (!used ||
              (misalign == Misalign::Stride &&
               (d.spec.cols + 1) % config.vectorWidth == 0) ||
              (misalign == Misalign::Y && d.inPlace == InPlace::YIsX) ||
              (misalign == Misalign::Sum && d.inPlace != InPlace::None))
            misalign = Misalign::None;
        }
        add(d.spec, d.rows, d.padding, config, d.data, misalign, d.inPlace,
            emu::Schedule::Fibers,
            "fuzz" + std::to_string(i) + "_" + d.describe());
      }
    }

    // Configs drawn from the whole knob space, not the search space's (as a
    // user may give them): those the verifier accepts must run correctly.
    // NORMJIT_EMU_FUZZ_HAND_CASES draws another number of them.
    {
      std::mt19937 rng(unsignedFromEnv("NORMJIT_FUZZ_SEED", 20261127) + 1);
      unsigned count = unsignedFromEnv("NORMJIT_EMU_FUZZ_HAND_CASES", 60);
      DrawLimits limits;
      limits.maxCols = 3000;
      limits.maxElements = 20000;
      for (unsigned i = 0, drawn = 0; drawn < count && i < 20 * count; ++i) {
        DrawnCase d = drawCase(rng, limits);
        GpuConfig config;
        config.vectorWidth = int64_t(1) << (rng() % 4);    // 1 to 8
        config.threadsPerRow = int64_t(1) << (rng() % 11); // 1 to 1024
        config.rowsPerBlock =
            std::max<int64_t>(1, int64_t(1) << (rng() % 6)) +
            (rng() % 4 == 0 ? 1 : 0); // 1 to 33, now and then odd
        config.elementsPerThread =
            config.vectorWidth * (1 + static_cast<int64_t>(rng() % 8));
        const GpuRowStorage storages[] = {GpuRowStorage::Registers,
                                          GpuRowStorage::Shared,
                                          GpuRowStorage::Global};
        config.rowStorage = storages[rng() % 3];
        config.persistent = rng() % 3 == 0;
        if (llvm::Error error = validateGpuConfig(d.spec, config)) {
          llvm::consumeError(std::move(error));
          continue;
        }
        add(d.spec, d.rows, d.padding, config, d.data, Misalign::None,
            d.inPlace, emu::Schedule::Fibers,
            "hand" + std::to_string(drawn++) + "_" + d.describe());
      }
    }

    // NORMJIT_EMU_LARGE=1 adds the shapes of the GPU tests (GpuKernelTest)
    // this suite keeps small: long rows (the default config keeps them in
    // global memory), whole search spaces, many rows. Minutes, not seconds:
    // for a deeper run before a GPU session, not for every build.
    if (std::getenv("NORMJIT_EMU_LARGE")) {
      for (normjit_op_t op : ops)
        for (int64_t cols : {31, 1024, 4096, 4097, 12288, 65536}) {
          normjit_kernel_spec_t f32 =
              makeSpec(op, cols, NORMJIT_F32, NORMJIT_F32, false, false, true,
                       true, true);
          add(f32, cols >= 12288 ? 3 : 5, cols % 2 ? 3 : 0, defaultConfig(f32));
          normjit_kernel_spec_t bf16 =
              makeSpec(op, cols, NORMJIT_BF16, NORMJIT_BF16, true, true, true,
                       true, true, NORMJIT_BF16);
          add(bf16, cols >= 12288 ? 3 : 7, 8, defaultConfig(bf16));
          for (int64_t rows : {1024})
            if (cols == 1024)
              add(bf16, rows, 16, defaultConfig(bf16));
        }
      const SpaceSpec largeSpaces[] = {
          {makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16, true,
                    true, true, true, true, NORMJIT_F32),
           37, 8},
          {makeSpec(NORMJIT_RMS_NORM, 4096, NORMJIT_F16, NORMJIT_F16, true,
                    true, true, false, true, NORMJIT_F16),
           19, 0},
          {makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_F32, NORMJIT_F32, false,
                    false, true, true, true),
           301, 4},
          {makeSpec(NORMJIT_RMS_NORM, 12288, NORMJIT_F32, NORMJIT_BF16, true,
                    false, true, false, true, NORMJIT_F16),
           7, 0},
          {makeSpec(NORMJIT_LAYER_NORM, 31, NORMJIT_F16, NORMJIT_F32, true,
                    true, true, true, true, NORMJIT_BF16),
           50, 1},
          {makeSpec(NORMJIT_LAYER_NORM, 768, NORMJIT_BF16, NORMJIT_BF16, true,
                    false, true, true, false, NORMJIT_BF16),
           1024, 0},
      };
      for (const SpaceSpec &s : largeSpaces)
        for (const GpuConfig &config : searchSpace(s.spec, s.rows))
          add(s.spec, s.rows, s.padding, config);
      for (const normjit_kernel_spec_t &spec :
           {makeSpec(NORMJIT_RMS_NORM, 4096, NORMJIT_BF16, NORMJIT_F32, true,
                     true, true, false, true, NORMJIT_BF16),
            makeSpec(NORMJIT_LAYER_NORM, 1024, NORMJIT_F16, NORMJIT_F32, true,
                     true, true, true, true, NORMJIT_F32),
            makeSpec(NORMJIT_LAYER_NORM, 12288, NORMJIT_F16, NORMJIT_F32, true,
                     false, true, true, true, NORMJIT_F16)})
        for (const GpuConfig &config : persistentConfigs(spec)) {
          add(spec, persistentRows(config), 0, config);
          if (config.vectorWidth > 1)
            add(spec, persistentRows(config), 0, config, Data::Normal,
                Misalign::Stride);
        }
      for (const normjit_kernel_spec_t &spec :
           {makeSpec(NORMJIT_LAYER_NORM, 4096, NORMJIT_BF16, NORMJIT_BF16, true,
                     true, true, true, true, NORMJIT_BF16),
            makeSpec(NORMJIT_RMS_NORM, 1000, NORMJIT_F32, NORMJIT_F32, true,
                     true, true, false, true, NORMJIT_F32)})
        for (const GpuConfig &config : searchSpace(spec, 77))
          for (InPlace what :
               {InPlace::YIsX, InPlace::SumIsX, InPlace::SumIsResidual})
            add(spec, 77, 0, config, Data::Normal, Misalign::None, what);
      for (const normjit_kernel_spec_t &spec :
           {makeSpec(NORMJIT_LAYER_NORM, 12288, NORMJIT_F16, NORMJIT_F32, true,
                     false, true, true, true, NORMJIT_F16),
            makeSpec(NORMJIT_RMS_NORM, 4096, NORMJIT_F32, NORMJIT_F32, true,
                     true, true, false, true, NORMJIT_F32),
            makeSpec(NORMJIT_RMS_NORM, 1024, NORMJIT_F16, NORMJIT_F16, false,
                     false, true, false, false, NORMJIT_F16)})
        for (const GpuConfig &config : searchSpace(spec, 9))
          if (config.vectorWidth > 1)
            for (Misalign what : everything)
              add(spec, 9, 0, config, Data::Normal, what);
      for (int64_t cols : {1024, 4096, 4097}) {
        normjit_kernel_spec_t spec =
            makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_F32, NORMJIT_F32, false,
                     false, false, false, true);
        for (const GpuConfig &config : searchSpace(spec, 8))
          add(spec, 8, 0, config, Data::FarMean);
      }
    }
    return result;
  }();
  return *cases;
}

//===----------------------------------------------------------------------===//
// Compiled kernels
//===----------------------------------------------------------------------===//

std::string kernelKey(const normjit_kernel_spec_t &spec,
                      const GpuConfig &config) {
  return describeCase(spec, 0, 0, Data::Normal) + " eps " +
         std::to_string(spec.epsilon) + " " + config.str();
}

/// The kernels compiled so far, and their errors.
struct KernelCache {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<emu::EmulatedGpuKernel>> kernels;
  std::map<std::string, std::string> errors;
};

KernelCache &getKernelCache() {
  static KernelCache *cache = new KernelCache();
  return *cache;
}

/// The kernel of `spec` and `config`, compiled once.
std::shared_ptr<emu::EmulatedGpuKernel>
getKernel(const normjit_kernel_spec_t &spec, const GpuConfig &config,
          std::string &error) {
  KernelCache &cache = getKernelCache();
  std::string key = kernelKey(spec, config);
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (auto it = cache.kernels.find(key); it != cache.kernels.end())
      return it->second;
    if (auto it = cache.errors.find(key); it != cache.errors.end()) {
      error = it->second;
      return nullptr;
    }
  }
  auto kernel = emu::EmulatedGpuKernel::compile(
      GpuKernelRequest{spec, config, "normjit_kernel"});
  std::lock_guard<std::mutex> lock(cache.mutex);
  if (!kernel) {
    error = llvm::toString(kernel.takeError());
    cache.errors[key] = error;
    return nullptr;
  }
  std::shared_ptr<emu::EmulatedGpuKernel> shared = std::move(*kernel);
  cache.kernels[key] = shared;
  return shared;
}

/// Compiles the kernels of the suite's selected tests on two threads.
void precompile(const std::vector<const EmuCase *> &cases) {
  std::vector<const EmuCase *> unique;
  std::set<std::string> keys;
  for (const EmuCase *c : cases)
    if (keys.insert(kernelKey(c->spec, c->config)).second)
      unique.push_back(c);
  if (unique.empty())
    return;
  unsigned threads =
      std::max(1u, std::min(2u, std::thread::hardware_concurrency()));
  auto start = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < unique.size(); i = next++) {
      std::string error;
      getKernel(unique[i]->spec, unique[i]->config, error);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &thread : pool)
    thread.join();
  std::printf(
      "[ normjit  ] compiled %zu kernels for the GPU emulator in "
      "%.1f s on %u threads\n",
      unique.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count(),
      threads);
  std::fflush(stdout);
}

//===----------------------------------------------------------------------===//
// Running a case
//===----------------------------------------------------------------------===//

/// Runs `kernel` on emulated device copies of `call`'s buffers, laid out as
/// `c` says, checks what the launch ran, downloads the outputs into `call`
/// and checks that nothing was written outside the buffers and that inputs
/// no output overwrites are unchanged.
void runEmulated(const emu::EmulatedGpuKernel &kernel, HostCall &call,
                 const EmuCase &c, int run) {
  const normjit_kernel_spec_t &spec = call.spec;
  auto size = [](normjit_dtype_t dtype) { return normjit_dtype_size(dtype); };
  auto offset = [&](Misalign what, normjit_dtype_t dtype) -> size_t {
    return c.misalign == what ? size(dtype) : 0;
  };
  bool yIsX = c.inPlace == InPlace::YIsX;
  bool sumIsX = c.inPlace == InPlace::SumIsX;
  bool sumIsResidual = c.inPlace == InPlace::SumIsResidual;
  if (yIsX) {
    ASSERT_EQ(spec.x_dtype, spec.y_dtype);
  }
  if (sumIsX) {
    ASSERT_EQ(spec.x_dtype, spec.sum_dtype);
  }
  if (sumIsResidual) {
    ASSERT_EQ(spec.residual_dtype, spec.sum_dtype);
  }

  size_t xBytes = call.rowBytes(spec.x_dtype);
  EmuArray x, residual, gamma, beta, y, sum, mean, rstd;
  x.allocate(xBytes, offset(Misalign::X, spec.x_dtype));
  x.upload(call.x.data(), xBytes);
  if (spec.has_residual) {
    size_t bytes = call.rowBytes(spec.residual_dtype);
    residual.allocate(bytes, offset(Misalign::Residual, spec.residual_dtype));
    residual.upload(call.residual.data(), bytes);
  }
  if (spec.has_gamma) {
    size_t bytes = call.vectorBytes(spec.gamma_dtype);
    gamma.allocate(bytes, offset(Misalign::Gamma, spec.gamma_dtype));
    gamma.upload(call.gamma.data(), bytes);
  }
  if (spec.has_beta) {
    size_t bytes = call.vectorBytes(spec.beta_dtype);
    beta.allocate(bytes, offset(Misalign::Beta, spec.beta_dtype));
    beta.upload(call.beta.data(), bytes);
  }
  if (!yIsX)
    y.allocate(call.rowBytes(spec.y_dtype), offset(Misalign::Y, spec.y_dtype));
  if (spec.store_sum && !sumIsX && !sumIsResidual)
    sum.allocate(call.rowBytes(spec.sum_dtype),
                 offset(Misalign::Sum, spec.sum_dtype));
  if (spec.store_mean) {
    mean.allocate(call.statBytes());
    mean.upload(call.mean.data(), call.statBytes());
  }
  if (spec.store_rstd) {
    rstd.allocate(call.statBytes());
    rstd.upload(call.rstd.data(), call.statBytes());
  }

  normjit_run_args_t args = call.args();
  args.x = x.data();
  if (spec.has_residual)
    args.residual = residual.data();
  if (spec.has_gamma)
    args.gamma = gamma.data();
  if (spec.has_beta)
    args.beta = beta.data();
  args.y = yIsX ? x.data() : y.data();
  if (spec.store_sum)
    args.sum = sumIsX ? x.data() : sumIsResidual ? residual.data() : sum.data();
  if (spec.store_mean)
    args.mean = static_cast<float *>(mean.data());
  if (spec.store_rstd)
    args.rstd = static_cast<float *>(rstd.data());

  emu::LaunchOptions options;
  options.schedule = c.schedule;
  // NORMJIT_EMU_SCHEDULE=threads runs every case on OS threads (slow).
  if (const char *env = std::getenv("NORMJIT_EMU_SCHEDULE");
      env && std::string(env) == "threads")
    options.schedule = emu::Schedule::Threads;
  options.persistentBlocks = kPersistentBlocks;
  options.seed = std::hash<std::string>()(c.name) + static_cast<uint64_t>(run);
  auto report = kernel.launch(args, options);
  ASSERT_TRUE(!!report) << "launch failed: "
                        << llvm::toString(report.takeError());

  // What ran: the vector entry or its scalar twin, on the grid the runtime
  // sizes.
  const GpuConfig &config = c.config;
  if (call.rows == 0) {
    EXPECT_EQ(report->grid, 0);
  } else {
    // The scalar twin runs where the runtime finds a buffer or stride off
    // the vectors' alignment: every case misaligned on purpose, and drawn
    // cases whose padding happens to.
    bool twin = config.vectorWidth > 1 &&
                !runtime::cuda::misalignment(
                     spec, args, static_cast<int>(config.vectorWidth))
                     .empty();
    if (c.misalign != Misalign::None && config.vectorWidth > 1) {
      EXPECT_TRUE(twin) << c.name << " is not misaligned";
    }
    EXPECT_EQ(report->entry,
              twin ? getUnalignedEntryName("normjit_kernel", config)
                   : std::string("normjit_kernel"));
    int64_t groups =
        (call.rows + config.rowsPerBlock - 1) / config.rowsPerBlock;
    EXPECT_EQ(report->grid, config.persistent
                                ? std::min<int64_t>(groups, kPersistentBlocks)
                                : groups);
  }

  const EmuArray &yArray = yIsX ? x : y;
  yArray.download(call.y.data(), call.rowBytes(spec.y_dtype));
  if (spec.store_sum) {
    const EmuArray &sumArray = sumIsX ? x : sumIsResidual ? residual : sum;
    sumArray.download(call.sum.data(), call.rowBytes(spec.sum_dtype));
  }
  if (spec.store_mean)
    mean.download(call.mean.data(), call.statBytes());
  if (spec.store_rstd)
    rstd.download(call.rstd.data(), call.statBytes());

  for (auto [array, label] :
       {std::pair<const EmuArray *, const char *>{&x, "x"},
        {&residual, "residual"},
        {&gamma, "gamma"},
        {&beta, "beta"},
        {&y, "y"},
        {&sum, "sum"},
        {&mean, "mean"},
        {&rstd, "rstd"}})
    EXPECT_TRUE(array->guardsIntact(label)) << c.name;
  if (!yIsX && !sumIsX) {
    EXPECT_TRUE(x.unchanged("x", call.x.data(), xBytes)) << c.name;
  }
  if (spec.has_residual && !sumIsResidual) {
    EXPECT_TRUE(residual.unchanged("residual", call.residual.data(),
                                   call.rowBytes(spec.residual_dtype)))
        << c.name;
  }
  if (spec.has_gamma) {
    EXPECT_TRUE(gamma.unchanged("gamma", call.gamma.data(),
                                call.vectorBytes(spec.gamma_dtype)))
        << c.name;
  }
  if (spec.has_beta) {
    EXPECT_TRUE(beta.unchanged("beta", call.beta.data(),
                               call.vectorBytes(spec.beta_dtype)))
        << c.name;
  }
}

class GpuEmulatorTest : public ::testing::TestWithParam<EmuCase> {
public:
  static void SetUpTestSuite() {
    std::vector<const EmuCase *> selected;
    const ::testing::TestSuite *suite =
        ::testing::UnitTest::GetInstance()->current_test_suite();
    if (!suite)
      return;
    std::set<std::string> names;
    for (int i = 0; i < suite->total_test_count(); ++i) {
      const ::testing::TestInfo *info = suite->GetTestInfo(i);
      if (!info->should_run())
        continue;
      std::string name = info->name();
      size_t slash = name.find('/');
      names.insert(slash == std::string::npos ? name : name.substr(slash + 1));
    }
    for (const EmuCase &c : allCases())
      if (names.count(c.name))
        selected.push_back(&c);
    precompile(selected);
  }
};

} // namespace

TEST_P(GpuEmulatorTest, MatchesReference) {
  const EmuCase &c = GetParam();
  std::string error;
  std::shared_ptr<emu::EmulatedGpuKernel> kernel =
      getKernel(c.spec, c.config, error);
  ASSERT_TRUE(kernel) << "compiling " << c.name << " " << c.config.str() << ": "
                      << error;
  // NORMJIT_EMU_REPEAT=N runs each case N times, the threads resuming in
  // another order each time.
  int repeat = 1;
  if (const char *env = std::getenv("NORMJIT_EMU_REPEAT"))
    repeat = std::max(1, std::atoi(env));
  for (int run = 0; run < repeat && !HasFailure(); ++run) {
    HostCall call(c.spec, c.rows, c.spec.cols + c.padding, c.data, c.name);
    if (c.inPlace != InPlace::None) {
      // Residual rows large next to x, so that a sum stored over an input
      // before another thread of the row reads it shows in the results.
      std::mt19937 rng(7);
      fill(call.residual, c.rows, c.spec.cols, Data::Normal, rng, 20.0);
    }
    ASSERT_NO_FATAL_FAILURE(runEmulated(*kernel, call, c, run));
    checkOutputs(call, c.name + " " + c.config.str() +
                           (run ? " (run " + std::to_string(run) + ")" : ""));
  }
}

INSTANTIATE_TEST_SUITE_P(Emulated, GpuEmulatorTest,
                         ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<EmuCase> &info) {
                           return info.param.name;
                         });

TEST(GpuEmulatorOutlierTest, MeanKeepsItsOwnPrecision) {
  // As KernelOutlierTest on the CPU: outliers of 1e3 in the first three
  // columns put LayerNorm's shift far from the mean. The centred sweep's
  // correction is taken about the first mean; added to the mean of the
  // shifted values (about -1e3), it was rounded at that magnitude. The
  // mean within 2e-6 of |mean| + 1, with the row in registers, in shared
  // memory and read again from global memory.
  normjit_kernel_spec_t spec =
      makeSpec(NORMJIT_LAYER_NORM, 4096, NORMJIT_F32, NORMJIT_F32, false, false,
               false, false, true);
  const int64_t rows = 3;
  for (GpuRowStorage storage : {GpuRowStorage::Registers, GpuRowStorage::Shared,
                                GpuRowStorage::Global}) {
    std::optional<GpuConfig> config;
    for (const GpuConfig &candidate : searchSpace(spec, rows))
      if (candidate.rowStorage == storage && !candidate.persistent) {
        config = candidate;
        break;
      }
    ASSERT_TRUE(config.has_value());
    std::string error;
    auto kernel = getKernel(spec, *config, error);
    ASSERT_TRUE(kernel) << error;
    HostCall call(spec, rows, spec.cols, Data::Outliers, "outliers");
    EmuCase c{spec,
              rows,
              0,
              Data::Outliers,
              *config,
              Misalign::None,
              InPlace::None,
              emu::Schedule::Fibers,
              "outliers"};
    ASSERT_NO_FATAL_FAILURE(runEmulated(*kernel, call, c, 0));
    tuner::ReferenceResult ref =
        tuner::reference(spec, rows, call.x, nullptr, nullptr, nullptr);
    for (int64_t r = 0; r < rows; ++r)
      EXPECT_NEAR(call.mean[r], ref.mean[r],
                  2e-6 * (std::fabs(ref.mean[r]) + 1))
          << config->str() << ", row " << r;
  }
}

//===----------------------------------------------------------------------===//
// The emulator itself
//===----------------------------------------------------------------------===//

namespace {

/// A launch of the f32 RMSNorm over 1000 columns with 128-bit vectors, x
/// one element off its vector alignment.
struct MisalignedLaunch {
  normjit_kernel_spec_t spec =
      makeSpec(NORMJIT_RMS_NORM, 1000, NORMJIT_F32, NORMJIT_F32, false, false,
               true, false, true);
  GpuConfig config = getDefaultGpuConfig(spec, caseTarget());
  HostCall call{spec, 5, spec.cols, Data::Normal, "misaligned launch"};
  EmuArray x;
  normjit_run_args_t args = call.args();

  MisalignedLaunch() {
    x.allocate(call.rowBytes(spec.x_dtype), sizeof(float));
    x.upload(call.x.data(), call.rowBytes(spec.x_dtype));
    args.x = x.data();
  }
};

} // namespace

TEST(GpuEmulatorSelfTest, RunsTheScalarTwinForMisalignedBuffers) {
  MisalignedLaunch launch;
  ASSERT_EQ(launch.config.vectorWidth, 4);
  std::string error;
  auto kernel = getKernel(launch.spec, launch.config, error);
  ASSERT_TRUE(kernel) << error;
  auto report = kernel->launch(launch.args, emu::LaunchOptions());
  ASSERT_TRUE(!!report) << llvm::toString(report.takeError());
  EXPECT_EQ(report->entry, "normjit_kernel_unaligned");
  checkOutputs(launch.call, "misaligned launch");
}

// What a GPU would fault on, the emulator reports: here the vector entry
// run on a misaligned x (which the runtime never does).
TEST(GpuEmulatorSelfTest, ReportsMisalignedVectorAccesses) {
  MisalignedLaunch launch;
  std::string error;
  auto kernel = getKernel(launch.spec, launch.config, error);
  ASSERT_TRUE(kernel) << error;
  for (emu::Schedule schedule :
       {emu::Schedule::Fibers, emu::Schedule::Threads}) {
    emu::LaunchOptions options;
    options.schedule = schedule;
    options.entry = "normjit_kernel";
    auto report = kernel->launch(launch.args, options);
    ASSERT_FALSE(!!report) << "no error reported";
    std::string message = llvm::toString(report.takeError());
    EXPECT_NE(message.find("misaligned (16 bytes) access"), std::string::npos)
        << message;
  }
}
