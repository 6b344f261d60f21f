//===- GpuKernelTest.cpp - GPU kernels against the fp64 reference ---------===//
//
// Part of normjit. The GPU twin of JIT/KernelTest.cpp: ops x variants x
// dtype combinations x shapes x configs, each kernel compiled to PTX,
// loaded on CUDA device 0 and run on device buffers, its outputs compared
// with the fp64 reference with the CPU tolerances (KernelCases.h). Configs:
// the device default for every case, the whole GPU search space for a few
// specs (row storage in registers, shared memory or global memory, sub-warp
// and multi-warp rows, blocks of 128 or 256 threads), and persistent kernels
// on enough rows that the grid-stride loop runs several times. Also in
// place (y == x, sum == x) and misaligned buffers, which must take the
// kernel's scalar twin and give the same results.
//
// Without a GPU every test is skipped, saying why (NORMJIT_REQUIRE_GPU=1
// makes that a failure). The kernels of a suite are compiled up front on
// several threads (NORMJIT_TEST_COMPILE_THREADS).
//
//===----------------------------------------------------------------------===//

#include "GpuTestSupport.h"

#include "normjit/runtime/CudaLaunch.h"
#include "normjit/tuner/SearchSpace.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <map>
#include <optional>
#include <sstream>

using namespace normjit;
using namespace normjit::test;

namespace {

//===----------------------------------------------------------------------===//
// The matrix
//===----------------------------------------------------------------------===//

struct GpuCase {
  normjit_kernel_spec_t spec;
  int64_t rows;
  int64_t padding; // extra elements per row stride (0: contiguous)
  Data data;
  std::optional<GpuConfig> config; // none: the device default
  std::string name;
};

void PrintTo(const GpuCase &c, std::ostream *os) {
  *os << c.name << (c.config ? " " + c.config->str() : " (default config)");
}

std::vector<GpuConfig> searchSpace(const normjit_kernel_spec_t &spec,
                                   int64_t rows) {
  return tuner::buildGpuSearchSpace(spec, rows, getCaseTarget());
}

/// The first config of the search space (for `rows` rows) that `pick`
/// accepts.
std::optional<GpuConfig>
findConfig(const normjit_kernel_spec_t &spec, int64_t rows,
           const std::function<bool(const GpuConfig &)> &pick) {
  for (const GpuConfig &config : searchSpace(spec, rows))
    if (pick(config))
      return config;
  return std::nullopt;
}

/// Rows for 1.5 waves of resident blocks of `config` on the case target
/// (at most 2048 threads per SM), plus a partial row group: the grid-stride
/// loop of a persistent kernel runs twice in some blocks and ends on clamped
/// rows.
int64_t persistentRows(const GpuConfig &config) {
  int64_t blocksPerSm = std::max<int64_t>(1, 2048 / config.blockSize());
  return 3 * getCaseTarget().smCount * blocksPerSm * config.rowsPerBlock / 2 +
         config.rowsPerBlock / 2 + 1;
}

const std::vector<GpuCase> &allGpuCases() {
  static const std::vector<GpuCase> *cases = [] {
    auto *result = new std::vector<GpuCase>();
    std::map<std::string, size_t> seen;
    auto add = [&](normjit_kernel_spec_t spec, int64_t rows, int64_t padding,
                   Data data = Data::Normal,
                   std::optional<GpuConfig> config = std::nullopt) {
      GpuCase c{spec, rows, padding, data, config, ""};
      c.name = describeCase(spec, rows, padding, data) +
               (config ? describeConfig(*config) : "");
      // Loops below overlap; each combination is tested once.
      if (seen.emplace(c.name, result->size()).second)
        result->push_back(c);
    };
    const normjit_op_t ops[] = {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM};

    // Every column count, f32 (the CPU matrix), and bf16 with a residual on
    // strided rows whose stride keeps 128-bit vectors aligned.
    for (normjit_op_t op : ops)
      for (int64_t cols : kAllCols) {
        add(makeSpec(op, cols, NORMJIT_F32, NORMJIT_F32, false, false, true,
                     true, true),
            cols >= 12288 ? 3 : 5, cols % 2 ? 3 : 0);
        add(makeSpec(op, cols, NORMJIT_BF16, NORMJIT_BF16, true, true, true,
                     true, true, NORMJIT_BF16),
            cols >= 12288 ? 3 : 7, 8);
      }
    // Row counts 0, 1, 5 and 1024 (many blocks; 1024 also strided).
    for (normjit_op_t op : ops) {
      normjit_kernel_spec_t spec =
          makeSpec(op, 768, NORMJIT_BF16, NORMJIT_BF16, true, true, true, true,
                   true, NORMJIT_BF16);
      for (int64_t rows : {0, 1, 5, 1024})
        add(spec, rows, 0);
      add(spec, 1024, 16);
    }

    // Variants x dtype combinations (several blocks of rows).
    for (normjit_op_t op : ops)
      for (const DTypes &d : kDTypes)
        for (const Variant &v : kVariants)
          for (int64_t cols : {100, 1024})
            add(makeSpec(op, cols, d.x, d.y, v.residual, v.sum, v.gamma, v.beta,
                         v.stats, d.other),
                37, cols == 100 ? 28 : 0);

    // Hard inputs, with the row in registers (the default), in shared
    // memory and read again from global memory: each computes the
    // statistics its own way.
    const GpuRowStorage storages[] = {
        GpuRowStorage::Registers, GpuRowStorage::Shared, GpuRowStorage::Global};
    auto withStorage = [&](const normjit_kernel_spec_t &spec, int64_t rows,
                           GpuRowStorage storage) {
      return findConfig(spec, rows, [&](const GpuConfig &config) {
        return config.rowStorage == storage && !config.persistent;
      });
    };
    for (normjit_op_t op : ops) {
      normjit_kernel_spec_t constant = makeSpec(
          op, 768, NORMJIT_F32, NORMJIT_F32, false, false, true, true, true);
      for (GpuRowStorage storage : storages)
        add(constant, 6, 0, Data::Constant, withStorage(constant, 6, storage));
      for (normjit_dtype_t dtype : {NORMJIT_F32, NORMJIT_BF16}) {
        normjit_kernel_spec_t special = makeSpec(op, 100, dtype, dtype, true,
                                                 true, true, true, true, dtype);
        for (GpuRowStorage storage : storages)
          add(special, 6, 0, Data::Special, withStorage(special, 6, storage));
      }
    }
    for (int64_t cols : {1024, 4096, 4097}) {
      normjit_kernel_spec_t spec =
          makeSpec(NORMJIT_LAYER_NORM, cols, NORMJIT_F32, NORMJIT_F32, false,
                   false, false, false, true);
      for (GpuRowStorage storage : storages) {
        add(spec, 8, 0, Data::FarMean, withStorage(spec, 8, storage));
        add(spec, 8, 0, Data::Spike, withStorage(spec, 8, storage));
        add(spec, 8, 0, Data::Outliers, withStorage(spec, 8, storage));
      }
    }

    // Every config the tuner may choose, for a few specs: vector widths,
    // threads per row (sub-warp to a whole block), rows per block, row
    // storage.
    struct SpaceSpec {
      normjit_kernel_spec_t spec;
      int64_t rows, padding;
    };
    const SpaceSpec spaces[] = {
        {makeSpec(NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16, true,
                  true, true, true, true, NORMJIT_F32),
         37, 8},
        {makeSpec(NORMJIT_RMS_NORM, 4096, NORMJIT_F16, NORMJIT_F16, true, true,
                  true, false, true, NORMJIT_F16),
         19, 0},
        {makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_F32, NORMJIT_F32, false,
                  false, true, true, true),
         301, 4},
        {makeSpec(NORMJIT_RMS_NORM, 12288, NORMJIT_F32, NORMJIT_BF16, true,
                  false, true, false, true, NORMJIT_F16),
         7, 0},
        {makeSpec(NORMJIT_LAYER_NORM, 31, NORMJIT_F16, NORMJIT_F32, true, true,
                  true, true, true, NORMJIT_BF16),
         50, 1},
        {makeSpec(NORMJIT_LAYER_NORM, 768, NORMJIT_BF16, NORMJIT_BF16, true,
                  false, true, true, false, NORMJIT_BF16),
         1024, 0},
    };
    for (const SpaceSpec &s : spaces)
      for (const GpuConfig &config : searchSpace(s.spec, s.rows))
        add(s.spec, s.rows, s.padding, Data::Normal, config);

    // Persistent kernels on rows enough for several trips around the
    // grid-stride loop: sub-warp rows with LayerNorm statistics, and
    // multi-warp rows (whose reductions use barriers inside the loop).
    const normjit_kernel_spec_t persistentSpecs[] = {
        makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_F32, NORMJIT_F32, false, false,
                 true, true, true),
        makeSpec(NORMJIT_RMS_NORM, 4096, NORMJIT_BF16, NORMJIT_F32, true, true,
                 true, false, true, NORMJIT_BF16),
        makeSpec(NORMJIT_LAYER_NORM, 1024, NORMJIT_F16, NORMJIT_F32, true, true,
                 true, true, true, NORMJIT_F32),
    };
    for (const normjit_kernel_spec_t &spec : persistentSpecs) {
      // One persistent config per row storage.
      std::map<GpuRowStorage, bool> taken;
      for (const GpuConfig &config : searchSpace(spec, int64_t(1) << 24))
        if (config.persistent && !taken[config.rowStorage]) {
          taken[config.rowStorage] = true;
          add(spec, persistentRows(config), 0, Data::Normal, config);
        }
    }
    return result;
  }();
  return *cases;
}

const GpuCase *findCase(const std::string &name) {
  for (const GpuCase &c : allGpuCases())
    if (c.name == name)
      return &c;
  return nullptr;
}

class GpuKernelTest : public GpuTestWithParam<GpuCase> {
public:
  static void SetUpTestSuite() {
    std::vector<KernelKey> kernels;
    for (const std::string &name : getSelectedParamNames())
      if (const GpuCase *c = findCase(name))
        kernels.push_back({c->spec, c->config});
    precompile(kernels);
  }
};

} // namespace

TEST_P(GpuKernelTest, MatchesReference) {
  const GpuCase &c = GetParam();
  auto kernel = getGpuKernel(c.spec, c.config);
  ASSERT_TRUE(!!kernel) << "compiling " << c.name << ": "
                        << llvm::toString(kernel.takeError());
  if (c.config) {
    ASSERT_EQ((*kernel)->getConfig(), *c.config)
        << "asked for " << c.config->str() << ", got "
        << (*kernel)->getConfig().str();
  }
  HostCall call(c.spec, c.rows, c.spec.cols + c.padding, c.data, c.name);
  ASSERT_NO_FATAL_FAILURE(runOnGpu(**kernel, call, GpuLayout(), c.name));
  checkOutputs(call, c.name + " " + (*kernel)->getConfig().str());
}

INSTANTIATE_TEST_SUITE_P(Matrix, GpuKernelTest,
                         ::testing::ValuesIn(allGpuCases()),
                         [](const ::testing::TestParamInfo<GpuCase> &info) {
                           return info.param.name;
                         });

//===----------------------------------------------------------------------===//
// On a stream
//===----------------------------------------------------------------------===//

namespace {
class GpuStreamTest : public GpuTest {};
} // namespace

TEST_F(GpuStreamTest, RunsOnANonBlockingStream) {
  normjit_kernel_spec_t spec =
      makeSpec(NORMJIT_RMS_NORM, 4096, NORMJIT_BF16, NORMJIT_BF16, true, true,
               true, false, true, NORMJIT_BF16);
  auto kernel = getGpuKernel(spec, std::nullopt);
  ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
  void *stream = nullptr;
  NORMJIT_ASSERT_OK(normjit_cuda_stream_create(0, &stream));
  HostCall call(spec, 333, spec.cols, Data::Normal, "stream");
  GpuLayout layout;
  layout.stream = stream;
  runOnGpu(**kernel, call, layout, "on a stream");
  NORMJIT_ASSERT_OK(normjit_cuda_stream_destroy(stream));
  if (HasFatalFailure())
    return;
  checkOutputs(call, "on a stream");
}

namespace {
/// The context calls of the loaded CUDA driver, for a test that plays a
/// host with contexts of its own (normjit has no call that creates one).
struct HostContexts {
  using Create = int (*)(void **, unsigned, int); // cuCtxCreate_v2
  using Destroy = int (*)(void *);                // cuCtxDestroy_v2
  using GetDevice = int (*)(int *, int);          // cuDeviceGet
  Create create = nullptr;
  Destroy destroy = nullptr;
  GetDevice getDevice = nullptr;
  std::string why;

  HostContexts() {
    const char *path = normjit_cuda_driver_path();
    void *handle = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : nullptr;
    if (!handle) {
      why = "the CUDA driver is not loaded";
      return;
    }
    using GetProc = int (*)(const char *, void **, int, unsigned long long,
                            int *);
    auto getProc =
        reinterpret_cast<GetProc>(dlsym(handle, "cuGetProcAddress_v2"));
    auto find = [&](const char *name, int version, const char *symbol) {
      void *function = nullptr;
      int found = 0;
      if (!getProc || getProc(name, &function, version, 1, &found) != 0)
        function = dlsym(handle, symbol);
      return function;
    };
    create = reinterpret_cast<Create>(
        find("cuCtxCreate", 3020, "cuCtxCreate_v2"));
    destroy = reinterpret_cast<Destroy>(
        find("cuCtxDestroy", 4000, "cuCtxDestroy_v2"));
    getDevice =
        reinterpret_cast<GetDevice>(find("cuDeviceGet", 2000, "cuDeviceGet"));
    if (!create || !destroy || !getDevice)
      why = "the CUDA driver lacks cuCtxCreate, cuCtxDestroy or cuDeviceGet";
    dlclose(handle);
  }
};
} // namespace

TEST_F(GpuStreamTest, RunsInAContextOfTheHost) {
  // A host with a CUDA context of its own: the kernel, first loaded in the
  // primary context, runs on a stream of the host's context with buffers
  // allocated there (normjit loads its module in that context). Twice,
  // the second time in a new context made after the first was destroyed
  // (whose handle the driver may give to the new one).
  HostContexts host;
  ASSERT_TRUE(host.why.empty()) << host.why;
  normjit_kernel_spec_t spec =
      makeSpec(NORMJIT_LAYER_NORM, 1024, NORMJIT_F32, NORMJIT_F32, true, true,
               true, false, true, NORMJIT_F32);
  auto kernel = getGpuKernel(spec, std::nullopt);
  ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
  int device = 0;
  ASSERT_EQ(host.getDevice(&device, 0), 0);
  for (int round = 0; round < 2; ++round) {
    std::string name = "host context, round " + std::to_string(round + 1);
    void *context = nullptr;
    ASSERT_EQ(host.create(&context, 0, device), 0) << name; // now current
    void *stream = nullptr;
    NORMJIT_ASSERT_OK(normjit_cuda_stream_create(0, &stream));
    HostCall call(spec, 257, spec.cols, Data::Normal, name);
    GpuLayout layout;
    layout.stream = stream;
    runOnGpu(**kernel, call, layout, name);
    EXPECT_EQ(normjit_cuda_stream_destroy(stream), NORMJIT_OK);
    EXPECT_EQ(host.destroy(context), 0) << name;
    if (HasFatalFailure())
      return;
    checkOutputs(call, name);
  }
}

//===----------------------------------------------------------------------===//
// In place
//===----------------------------------------------------------------------===//

namespace {

struct InPlaceCase {
  normjit_kernel_spec_t spec;
  int64_t rows;
  std::optional<GpuConfig> config;
  bool sumIsX; // else y is x
  std::string name;
};

void PrintTo(const InPlaceCase &c, std::ostream *os) { *os << c.name; }

/// y over x and sum over x, with each row storage, threads per row from a
/// few lanes to several warps, and persistent kernels: the row's first
/// element (LayerNorm's shift) and the pass that re-reads the row must see
/// the input, not an output already stored over it.
const std::vector<InPlaceCase> &inPlaceCases() {
  static const std::vector<InPlaceCase> *cases = [] {
    auto *result = new std::vector<InPlaceCase>();
    const normjit_kernel_spec_t specs[] = {
        makeSpec(NORMJIT_LAYER_NORM, 4096, NORMJIT_BF16, NORMJIT_BF16, true,
                 true, true, true, true, NORMJIT_BF16),
        makeSpec(NORMJIT_RMS_NORM, 1000, NORMJIT_F32, NORMJIT_F32, true, true,
                 true, false, true, NORMJIT_F32),
        makeSpec(NORMJIT_LAYER_NORM, 100, NORMJIT_F16, NORMJIT_F16, true, true,
                 true, true, true, NORMJIT_F32),
    };
    const int64_t rows = 77;
    for (const normjit_kernel_spec_t &spec : specs) {
      std::vector<std::optional<GpuConfig>> configs = {std::nullopt};
      std::map<std::pair<int64_t, GpuRowStorage>, bool> taken;
      for (const GpuConfig &config : searchSpace(spec, rows))
        if (!taken[{config.threadsPerRow, config.rowStorage}]) {
          taken[{config.threadsPerRow, config.rowStorage}] = true;
          configs.push_back(config);
        }
      if (auto persistent =
              findConfig(spec, int64_t(1) << 24, [](const GpuConfig &config) {
                return config.persistent;
              }))
        configs.push_back(persistent);
      for (const std::optional<GpuConfig> &config : configs)
        for (bool sumIsX : {false, true}) {
          InPlaceCase c{spec, rows, config, sumIsX, ""};
          c.name = describeCase(spec, rows, 0, Data::Normal) +
                   (config ? describeConfig(*config) : "") +
                   (sumIsX ? "_sum_is_x" : "_y_is_x");
          result->push_back(c);
        }
    }
    return result;
  }();
  return *cases;
}

class GpuInPlaceTest : public GpuTestWithParam<InPlaceCase> {
public:
  static void SetUpTestSuite() {
    std::vector<KernelKey> kernels;
    for (const std::string &name : getSelectedParamNames())
      for (const InPlaceCase &c : inPlaceCases())
        if (c.name == name)
          kernels.push_back({c.spec, c.config});
    precompile(kernels);
  }
};

} // namespace

TEST_P(GpuInPlaceTest, MatchesReference) {
  const InPlaceCase &c = GetParam();
  auto kernel = getGpuKernel(c.spec, c.config);
  ASSERT_TRUE(!!kernel) << "compiling " << c.name << ": "
                        << llvm::toString(kernel.takeError());
  // Residual rows large next to x, so that a sum stored over x before
  // another thread of the row reads x shows in the results.
  HostCall call(c.spec, c.rows, c.spec.cols, Data::Normal, c.name);
  std::mt19937 rng(7);
  fill(call.residual, c.rows, c.spec.cols, Data::Normal, rng, 20.0);
  GpuLayout layout;
  layout.yIsX = !c.sumIsX;
  layout.sumIsX = c.sumIsX;
  ASSERT_NO_FATAL_FAILURE(runOnGpu(**kernel, call, layout, c.name));
  checkOutputs(call, c.name + " " + (*kernel)->getConfig().str());
}

INSTANTIATE_TEST_SUITE_P(InPlace, GpuInPlaceTest,
                         ::testing::ValuesIn(inPlaceCases()),
                         [](const ::testing::TestParamInfo<InPlaceCase> &info) {
                           return info.param.name;
                         });

//===----------------------------------------------------------------------===//
// Misaligned buffers: the scalar twin
//===----------------------------------------------------------------------===//

namespace {

struct MisalignCase {
  normjit_kernel_spec_t spec;
  int64_t rows;
  std::optional<GpuConfig> config;
  Misalign what;
  std::string name;
};

void PrintTo(const MisalignCase &c, std::ostream *os) { *os << c.name; }

/// Specs whose vector entry has vector_width > 1, with each buffer in turn
/// one element off its vector alignment (or a row stride of cols + 1), and
/// configs whose scalar twins keep the row in registers, shared memory or
/// global memory, and a persistent one.
const std::vector<MisalignCase> &misalignCases() {
  static const std::vector<MisalignCase> *cases = [] {
    auto *result = new std::vector<MisalignCase>();
    auto add = [&](const normjit_kernel_spec_t &spec, int64_t rows,
                   std::optional<GpuConfig> config, Misalign what) {
      if (!hasMisalignedBuffer(spec, what))
        return;
      MisalignCase c{spec, rows, config, what, ""};
      c.name = describeCase(spec, rows, 0, Data::Normal) +
               (config ? describeConfig(*config) : "") + "_misaligned_" +
               misalignName(what);
      for (const MisalignCase &existing : *result)
        if (existing.name == c.name)
          return;
      result->push_back(c);
    };
    const Misalign everything[] = {
        Misalign::X, Misalign::Residual, Misalign::Gamma, Misalign::Beta,
        Misalign::Y, Misalign::Sum,      Misalign::Stride};
    normjit_kernel_spec_t all =
        makeSpec(NORMJIT_LAYER_NORM, 768, NORMJIT_BF16, NORMJIT_BF16, true,
                 true, true, true, true, NORMJIT_BF16);
    for (Misalign what : everything)
      add(all, 21, std::nullopt, what);
    normjit_kernel_spec_t rms =
        makeSpec(NORMJIT_RMS_NORM, 4096, NORMJIT_F32, NORMJIT_F32, true, true,
                 true, false, true, NORMJIT_F32);
    for (Misalign what : everything)
      add(rms, 9, std::nullopt, what);
    // Row storages and thread counts of the search space, x misaligned.
    for (const normjit_kernel_spec_t &spec :
         {all, rms,
          makeSpec(NORMJIT_LAYER_NORM, 12288, NORMJIT_F16, NORMJIT_F32, true,
                   false, true, true, true, NORMJIT_F16),
          makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_F32, NORMJIT_F32, false,
                   false, true, true, true),
          makeSpec(NORMJIT_RMS_NORM, 1024, NORMJIT_F16, NORMJIT_F16, false,
                   false, true, false, false, NORMJIT_F16)}) {
      std::map<std::pair<int64_t, GpuRowStorage>, bool> taken;
      for (const GpuConfig &config : searchSpace(spec, 9))
        if (config.vectorWidth > 1 &&
            !taken[{config.threadsPerRow, config.rowStorage}]) {
          taken[{config.threadsPerRow, config.rowStorage}] = true;
          add(spec, 9, config, Misalign::X);
        }
      if (auto persistent =
              findConfig(spec, int64_t(1) << 24, [](const GpuConfig &config) {
                return config.persistent && config.vectorWidth > 1;
              }))
        add(spec, persistentRows(*persistent), persistent, Misalign::Stride);
    }
    return result;
  }();
  return *cases;
}

class GpuMisalignedTest : public GpuTestWithParam<MisalignCase> {
public:
  static void SetUpTestSuite() {
    std::vector<KernelKey> kernels;
    for (const std::string &name : getSelectedParamNames())
      for (const MisalignCase &c : misalignCases())
        if (c.name == name)
          kernels.push_back({c.spec, c.config});
    precompile(kernels);
  }
};

} // namespace

TEST_P(GpuMisalignedTest, ScalarTwinMatchesReference) {
  const MisalignCase &c = GetParam();
  auto kernel = getGpuKernel(c.spec, c.config);
  ASSERT_TRUE(!!kernel) << "compiling " << c.name << ": "
                        << llvm::toString(kernel.takeError());
  const normjit_cuda_kernel_t &launch = (*kernel)->getLaunch();
  ASSERT_GT(launch.vector_width, 1)
      << "the case is wrong: " << c.name << " has a scalar entry only";
  ASSERT_NE(launch.function_unaligned, nullptr)
      << c.name << " has no scalar twin";

  int64_t stride = c.spec.cols + (c.what == Misalign::Stride ? 1 : 0);
  HostCall call(c.spec, c.rows, stride, Data::Normal, c.name);
  GpuLayout layout;
  switch (c.what) {
  case Misalign::X:
    layout.xOffset = 1;
    break;
  case Misalign::Residual:
    layout.residualOffset = 1;
    break;
  case Misalign::Gamma:
    layout.gammaOffset = 1;
    break;
  case Misalign::Beta:
    layout.betaOffset = 1;
    break;
  case Misalign::Y:
    layout.yOffset = 1;
    break;
  case Misalign::Sum:
    layout.sumOffset = 1;
    break;
  case Misalign::None:
  case Misalign::Stride:
    break;
  }
  normjit_run_args_t used{};
  ASSERT_NO_FATAL_FAILURE(runOnGpu(**kernel, call, layout, c.name, &used));
  // The launch took the scalar twin (what the runtime decides by).
  EXPECT_NE(runtime::cuda::misalignment(c.spec, used, launch.vector_width), "")
      << "the case is wrong: " << c.name << " is aligned for the vector entry";
  checkOutputs(call,
               c.name + " " + (*kernel)->getConfig().str() + " (scalar twin)");
}

INSTANTIATE_TEST_SUITE_P(
    Misaligned, GpuMisalignedTest, ::testing::ValuesIn(misalignCases()),
    [](const ::testing::TestParamInfo<MisalignCase> &info) {
      return info.param.name;
    });
