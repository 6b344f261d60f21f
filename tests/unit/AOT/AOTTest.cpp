//===- AOTTest.cpp - AOT kernels against the JIT, bad input ---------------===//
//
// Part of normjit. For a matrix of ops x variants x dtype combinations x
// column counts x configs, compiles each kernel ahead of time for "native",
// links the library's objects into this process with ORC (as a host's linker
// would) and checks that its outputs are bit-identical to the JIT kernel's
// with the same config (a matrix, and cases drawn from a seed). Then the
// run-time choice among several targets, the files of a library and every
// kind of bad input: each a clear error and no output left behind.
//
//===----------------------------------------------------------------------===//

#include "../KernelCases.h"

#include "normjit/AOT/AOTCompiler.h"
#include "normjit/runtime/aot.h"
#include "normjit/tuner/Reference.h"

#include "llvm/ExecutionEngine/Orc/AbsoluteSymbols.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/Object/Archive.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <sys/stat.h>

using namespace normjit;
using namespace normjit::aot;
using normjit::tuner::Buffer;

namespace {

using AotFunction = normjit_status_t (*)(const normjit_run_args_t *);
using SpecFunction = const normjit_kernel_spec_t *(*)();
using TargetFunction = const char *(*)();

std::string errorText(llvm::Error error) {
  return llvm::toString(std::move(error));
}

normjit_status_t errorStatus(llvm::Error error) {
  return errorToStatus(std::move(error));
}

bool isX86_64() {
  return llvm::Triple(llvm::sys::getProcessTriple()).getArch() ==
         llvm::Triple::x86_64;
}

/// An AOT library's objects linked into this process with ORC, with the
/// runtime's entry points that the dispatch code calls.
class LoadedLibrary {
public:
  static std::unique_ptr<LoadedLibrary>
  load(const std::vector<AotFile> &files) {
    auto jit = llvm::orc::LLJITBuilder().create();
    if (!jit) {
      ADD_FAILURE() << errorText(jit.takeError());
      return nullptr;
    }
    auto library = std::make_unique<LoadedLibrary>();
    library->jit = std::move(*jit);
    llvm::orc::LLJIT &lljit = *library->jit;
    llvm::orc::JITDylib &dylib = lljit.getMainJITDylib();
    llvm::orc::SymbolMap runtime;
    auto define = [&](llvm::StringRef name, void *address) {
      runtime[lljit.mangleAndIntern(name)] = {
          llvm::orc::ExecutorAddr::fromPtr(address),
          llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable};
    };
    define("normjit_aot_run", reinterpret_cast<void *>(&normjit_aot_run));
    define("normjit_aot_target", reinterpret_cast<void *>(&normjit_aot_target));
    llvm::cantFail(dylib.define(llvm::orc::absoluteSymbols(runtime)));
    // memcpy, memset and the like, from the C library.
    dylib.addGenerator(llvm::cantFail(
        llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
            lljit.getDataLayout().getGlobalPrefix())));
    for (const AotFile &file : files) {
      if (!llvm::StringRef(file.name).ends_with(".o"))
        continue;
      if (llvm::Error error = lljit.addObjectFile(
              llvm::MemoryBuffer::getMemBufferCopy(file.contents, file.name))) {
        ADD_FAILURE() << errorText(std::move(error));
        return nullptr;
      }
    }
    return library;
  }

  template <typename T> T lookup(llvm::StringRef name) {
    auto address = jit->lookup(name);
    if (!address) {
      ADD_FAILURE() << "lookup of " << name.str() << ": "
                    << errorText(address.takeError());
      return nullptr;
    }
    return address->toPtr<T>();
  }

private:
  std::unique_ptr<llvm::orc::LLJIT> jit;
};

/// Builds a library and loads it; fails the test on error.
std::unique_ptr<LoadedLibrary> buildAndLoad(llvm::StringRef library,
                                            std::vector<std::string> targets,
                                            std::vector<AotKernel> kernels) {
  auto files = buildAotLibrary(library, targets, kernels);
  if (!files) {
    ADD_FAILURE() << errorText(files.takeError());
    return nullptr;
  }
  return LoadedLibrary::load(*files);
}

normjit_kernel_spec_t makeSpec(normjit_op_t op, int64_t cols, normjit_dtype_t x,
                               normjit_dtype_t y, normjit_dtype_t other) {
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
  spec.x_dtype = x;
  spec.y_dtype = y;
  spec.residual_dtype = spec.gamma_dtype = spec.beta_dtype = other;
  spec.sum_dtype = x;
  return spec;
}

AotKernel makeKernel(const std::string &name,
                     const normjit_kernel_spec_t &spec) {
  AotKernel kernel;
  kernel.name = name;
  kernel.spec = spec;
  return kernel;
}

enum class Data { Normal, FarMean, Special };

/// The inputs and outputs of one call.
struct Buffers {
  Buffer x, residual, gamma, beta, y, sum;
  std::vector<float> mean, rstd;
  normjit_run_args_t args{};

  Buffers(const normjit_kernel_spec_t &spec, int64_t rows, int64_t padding,
          Data data) {
    int64_t cols = spec.cols, stride = cols + padding;
    x = Buffer(spec.x_dtype, rows, cols, stride);
    y = Buffer(spec.y_dtype, rows, cols, stride);
    std::mt19937 random(static_cast<unsigned>(cols * 131 + rows));
    std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
    float offset = data == Data::FarMean ? 1000.0f : 0.25f;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        x.set(r, c, offset + uniform(random));
    if (data == Data::Special && rows >= 3 && cols >= 2) {
      x.set(0, 1, NAN);
      x.set(1, 0, INFINITY);
      for (int64_t c = 0; c < cols; ++c)
        x.set(2, c, 3.0f); // a constant row: variance 0
    }
    args.rows = rows;
    args.x = x.data();
    args.x_stride = stride;
    args.y = y.data();
    args.y_stride = stride;
    if (spec.has_residual) {
      residual = Buffer(spec.residual_dtype, rows, cols, stride);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          residual.set(r, c, uniform(random));
      args.residual = residual.data();
      args.residual_stride = stride;
    }
    if (spec.store_sum) {
      sum = Buffer(spec.sum_dtype, rows, cols, stride);
      args.sum = sum.data();
      args.sum_stride = stride;
    }
    if (spec.has_gamma) {
      gamma = Buffer(spec.gamma_dtype, 1, cols, cols);
      for (int64_t c = 0; c < cols; ++c)
        gamma.set(0, c, 1.0f + 0.25f * uniform(random));
      args.gamma = gamma.data();
    }
    if (spec.has_beta) {
      beta = Buffer(spec.beta_dtype, 1, cols, cols);
      for (int64_t c = 0; c < cols; ++c)
        beta.set(0, c, 0.5f * uniform(random));
      args.beta = beta.data();
    }
    if (spec.store_mean) {
      // One entry at least: with no rows the buffer must still be there.
      mean.assign(static_cast<size_t>(std::max<int64_t>(rows, 1)), -7.0f);
      args.mean = mean.data();
    }
    if (spec.store_rstd) {
      rstd.assign(static_cast<size_t>(std::max<int64_t>(rows, 1)), -7.0f);
      args.rstd = rstd.data();
    }
  }
};

/// Compares two buffers byte for byte, padding included.
void expectSameBytes(const char *what, const void *a, const void *b,
                     size_t bytes) {
  if (bytes == 0)
    return;
  const auto *x = static_cast<const uint8_t *>(a);
  const auto *y = static_cast<const uint8_t *>(b);
  for (size_t i = 0; i < bytes; ++i)
    if (x[i] != y[i]) {
      ADD_FAILURE() << what << " differs at byte " << i << ": JIT "
                    << static_cast<int>(x[i]) << ", AOT "
                    << static_cast<int>(y[i]);
      return;
    }
}

void expectSameSpec(const normjit_kernel_spec_t &a,
                    const normjit_kernel_spec_t &b) {
  EXPECT_EQ(a.op, b.op);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.x_dtype, b.x_dtype);
  EXPECT_EQ(a.y_dtype, b.y_dtype);
  EXPECT_EQ(a.has_residual, b.has_residual);
  EXPECT_EQ(a.store_sum, b.store_sum);
  EXPECT_EQ(a.has_gamma, b.has_gamma);
  EXPECT_EQ(a.has_beta, b.has_beta);
  // Unused dtypes are f32 in the library.
  EXPECT_EQ(a.residual_dtype, b.has_residual ? b.residual_dtype : NORMJIT_F32);
  EXPECT_EQ(a.sum_dtype, b.store_sum ? b.sum_dtype : NORMJIT_F32);
  EXPECT_EQ(a.gamma_dtype, b.has_gamma ? b.gamma_dtype : NORMJIT_F32);
  EXPECT_EQ(a.beta_dtype, b.has_beta ? b.beta_dtype : NORMJIT_F32);
  EXPECT_EQ(a.store_mean, b.store_mean);
  EXPECT_EQ(a.store_rstd, b.store_rstd);
  EXPECT_EQ(a.epsilon, b.epsilon);
}

size_t bufferBytes(const Buffer &buffer, int64_t rows) {
  return static_cast<size_t>(std::max<int64_t>(rows, 1) * buffer.getStride()) *
         normjit_dtype_size(buffer.getDType());
}

//===----------------------------------------------------------------------===//
// AOT output is bit-identical to the JIT's
//===----------------------------------------------------------------------===//

struct Case {
  normjit_kernel_spec_t spec;
  int64_t rows;
  int64_t padding;
  Data data;
  CpuConfigKnobs knobs;
  std::string name;
};

std::vector<Case> allCases() {
  std::vector<Case> cases;
  auto add = [&](normjit_kernel_spec_t spec, int64_t rows, int64_t padding,
                 Data data, CpuConfigKnobs knobs, std::string name) {
    for (char &c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)))
        c = '_';
    cases.push_back({spec, rows, padding, data, knobs, name});
  };
  struct DTypes {
    normjit_dtype_t x, y, other;
    const char *name;
  } dtypes[] = {{NORMJIT_F32, NORMJIT_F32, NORMJIT_F32, "f32"},
                {NORMJIT_F16, NORMJIT_F16, NORMJIT_F16, "f16"},
                {NORMJIT_BF16, NORMJIT_BF16, NORMJIT_BF16, "bf16"},
                {NORMJIT_BF16, NORMJIT_F32, NORMJIT_F16, "mixed"}};
  enum Variant { Plain, GammaBeta, ResidualSumStats };
  const char *variantNames[] = {"plain", "gamma_beta", "residual_sum_stats"};
  for (normjit_op_t op : {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM})
    for (Variant variant : {Plain, GammaBeta, ResidualSumStats})
      for (const DTypes &d : dtypes)
        // 17 and 31: one vector and a tail, where the kernel's sums once
        // took different FMAs in the two (before AOT inlined the kernel
        // into its C interface as the JIT does).
        for (int64_t cols : {7, 17, 31, 768, 4097}) {
          normjit_kernel_spec_t spec = makeSpec(op, cols, d.x, d.y, d.other);
          if (variant != Plain) {
            spec.has_gamma = 1;
            spec.has_beta = variant == GammaBeta;
          }
          if (variant == ResidualSumStats) {
            spec.has_residual = spec.store_sum = 1;
            spec.store_mean = op == NORMJIT_LAYER_NORM;
            spec.store_rstd = 1;
          }
          std::ostringstream name;
          name << (op == NORMJIT_LAYER_NORM ? "ln" : "rms") << "_"
               << variantNames[variant] << "_" << d.name << "_c" << cols;
          add(spec, cols >= 4097 ? 9 : 33, cols % 2, Data::Normal, {},
              name.str());
        }

  // Every config knob, with rows split over the thread pool.
  normjit_kernel_spec_t residual = makeSpec(
      NORMJIT_LAYER_NORM, 1000, NORMJIT_BF16, NORMJIT_BF16, NORMJIT_BF16);
  residual.has_residual = residual.store_sum = residual.has_gamma =
      residual.has_beta = residual.store_mean = residual.store_rstd = 1;
  normjit_kernel_spec_t rms =
      makeSpec(NORMJIT_RMS_NORM, 1000, NORMJIT_F16, NORMJIT_F16, NORMJIT_F32);
  rms.has_residual = rms.store_sum = rms.has_gamma = 1;
  for (const normjit_kernel_spec_t &spec : {residual, rms}) {
    const char *op = spec.op == NORMJIT_LAYER_NORM ? "ln" : "rms";
    struct {
      const char *name;
      CpuConfigKnobs knobs;
    } configs[] = {
        {"v4_a1", {4, 1, 8, 0, false, false, true}},
        {"v16_a8", {16, 8, 8, 0, false, false, true}},
        {"v8_welford", {8, 2, 8, 2, true, false, true}},
        {"v8_two_pass", {8, 2, 8, 2, false, false, true}},
        {"v16_streaming", {16, 4, 8, 0, false, true, true}},
        {"v8_split", {8, 4, 8, 0, false, false, false}},
        {"v16_prefetch", {16, 4, 8, 0, false, true, true, 2}},
    };
    for (const auto &config : configs)
      add(spec, 100, 3, Data::Normal, config.knobs,
          std::string(op) + "_config_" + config.name);
  }
  // Ill-conditioned rows and special values.
  normjit_kernel_spec_t far =
      makeSpec(NORMJIT_LAYER_NORM, 768, NORMJIT_F32, NORMJIT_F32, NORMJIT_F32);
  far.has_gamma = far.has_beta = 1;
  add(far, 16, 0, Data::FarMean, {}, "ln_far_mean");
  add(far, 16, 0, Data::Special, {}, "ln_special_values");
  normjit_kernel_spec_t special =
      makeSpec(NORMJIT_RMS_NORM, 768, NORMJIT_BF16, NORMJIT_BF16, NORMJIT_BF16);
  special.has_gamma = 1;
  add(special, 16, 0, Data::Special, {}, "rms_special_values");

  // Cases drawn from a fixed seed (KernelCases.h's drawCase: every
  // buffer's dtype on its own, any optional operands, odd column counts,
  // strides, epsilons), half of them with knobs drawn too.
  // NORMJIT_FUZZ_SEED and NORMJIT_AOT_FUZZ_CASES draw another set.
  std::mt19937 rng(test::unsignedFromEnv("NORMJIT_FUZZ_SEED", 20261127));
  test::DrawLimits limits;
  limits.maxCols = 6000;
  limits.maxElements = 60000;
  unsigned count = test::unsignedFromEnv("NORMJIT_AOT_FUZZ_CASES", 24);
  for (unsigned i = 0; i < count; ++i) {
    test::DrawnCase d = test::drawCase(rng, limits);
    CpuConfigKnobs knobs;
    if (rng() % 2) {
      knobs.vectorWidth = int64_t(1) << (rng() % 6);
      knobs.accumulators = 1 + static_cast<int64_t>(rng() % 6);
      knobs.welford = d.spec.op == NORMJIT_LAYER_NORM && rng() % 2;
      knobs.streamingStores = rng() % 4 == 0;
      knobs.fuseResidual = rng() % 3 != 0;
      knobs.rowsPerTask = 1 + static_cast<int64_t>(rng() % 5);
      knobs.threads = static_cast<int>(rng() % 3);
      if (rng() % 3 == 0)
        knobs.prefetchRows = 1 + static_cast<int64_t>(rng() % 4);
      if (rng() % 3 == 0)
        knobs.rowGroup = 1 + static_cast<int64_t>(rng() % 9);
    }
    add(d.spec, d.rows, d.padding, Data::Normal, knobs,
        "drawn" + std::to_string(i) + "_" + d.describe());
  }
  return cases;
}

void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

class AotMatchesJitTest : public ::testing::TestWithParam<Case> {};

TEST_P(AotMatchesJitTest, BitIdentical) {
  const Case &c = GetParam();
  auto native = resolveCpuTarget("native");
  ASSERT_TRUE(static_cast<bool>(native)) << errorText(native.takeError());
  AotKernel kernel = makeKernel("kernel", c.spec);
  kernel.knobs = c.knobs;
  CpuConfig config = kernel.getConfig(*native);
  // "native" is the host, what the JIT compiles for: same default config
  // (for the kernel's rows hint; without streaming stores where that hint
  // is the default one, not given).
  if (c.knobs.empty()) {
    CpuConfig expected = getDefaultCpuConfigForRows(c.spec, kernel.rowsHint);
    if (!kernel.rowsHintGiven && expected.streamingStores)
      expected = getDefaultCpuConfig(c.spec);
    EXPECT_EQ(config, expected);
  }

  auto jit = compileCpuKernel(c.spec, config);
  ASSERT_TRUE(static_cast<bool>(jit)) << errorText(jit.takeError());
  std::unique_ptr<LoadedLibrary> library =
      buildAndLoad("lib", {"native"}, {kernel});
  ASSERT_TRUE(library);
  auto run = library->lookup<AotFunction>("kernel");
  ASSERT_NE(run, nullptr);

  Buffers jitBuffers(c.spec, c.rows, c.padding, c.data);
  Buffers aotBuffers(c.spec, c.rows, c.padding, c.data);
  normjit_cpu_launch_t launch{config.rowsPerTask, config.threads};
  ASSERT_EQ(normjit_cpu_launch((*jit)->getFunction(), &c.spec, &jitBuffers.args,
                               &launch),
            NORMJIT_OK)
      << normjit_last_error();
  ASSERT_EQ(run(&aotBuffers.args), NORMJIT_OK) << normjit_last_error();

  expectSameBytes("y", jitBuffers.y.data(), aotBuffers.y.data(),
                  bufferBytes(jitBuffers.y, c.rows));
  if (c.spec.store_sum)
    expectSameBytes("sum", jitBuffers.sum.data(), aotBuffers.sum.data(),
                    bufferBytes(jitBuffers.sum, c.rows));
  expectSameBytes("mean", jitBuffers.mean.data(), aotBuffers.mean.data(),
                  jitBuffers.mean.size() * sizeof(float));
  expectSameBytes("rstd", jitBuffers.rstd.data(), aotBuffers.rstd.data(),
                  jitBuffers.rstd.size() * sizeof(float));

  // The kernel is right, too (the JIT tests cover the numerics; this
  // catches a library that runs nothing at all).
  if (c.data == Data::Normal) {
    auto ref =
        tuner::reference(c.spec, c.rows, aotBuffers.x,
                         c.spec.has_residual ? &aotBuffers.residual : nullptr,
                         c.spec.has_gamma ? &aotBuffers.gamma : nullptr,
                         c.spec.has_beta ? &aotBuffers.beta : nullptr);
    tuner::Comparison comparison = tuner::compareWithReference(
        c.spec, ref, c.rows, aotBuffers.y,
        c.spec.store_sum ? &aotBuffers.sum : nullptr,
        c.spec.store_mean ? aotBuffers.mean.data() : nullptr,
        c.spec.store_rstd ? aotBuffers.rstd.data() : nullptr,
        c.spec.has_gamma ? &aotBuffers.gamma : nullptr,
        c.spec.has_beta ? &aotBuffers.beta : nullptr);
    EXPECT_TRUE(comparison.ok())
        << comparison.mismatches << " mismatches, e.g. "
        << (comparison.examples.empty() ? "" : comparison.examples[0]);
  }

  // The spec the library reports is the one it was built for.
  auto specFunction = library->lookup<SpecFunction>("kernel_spec");
  ASSERT_NE(specFunction, nullptr);
  expectSameSpec(*specFunction(), c.spec);
}

INSTANTIATE_TEST_SUITE_P(Matrix, AotMatchesJitTest,
                         ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<Case> &info) {
                           return info.param.name;
                         });

//===----------------------------------------------------------------------===//
// Several targets in one library
//===----------------------------------------------------------------------===//

/// Sets NORMJIT_DISABLE_CPU_FEATURES for one scope, for the AOT runtime's
/// dispatch. The JIT (and AOT's `native`) reads it once per process: its
/// features are fixed before the variable is set, whichever test runs
/// first.
class DisabledFeatures {
public:
  explicit DisabledFeatures(const char *list) {
    (void)getHostCpuFeatures();
    setenv("NORMJIT_DISABLE_CPU_FEATURES", list, 1);
  }
  ~DisabledFeatures() { unsetenv("NORMJIT_DISABLE_CPU_FEATURES"); }
};

normjit_kernel_spec_t dispatchSpec() {
  normjit_kernel_spec_t spec =
      makeSpec(NORMJIT_RMS_NORM, 300, NORMJIT_F16, NORMJIT_F16, NORMJIT_F16);
  spec.has_residual = spec.store_sum = spec.has_gamma = 1;
  return spec;
}

/// The target the runtime picks from `targets` (best first) on this CPU.
std::string expectedTarget(const std::vector<std::string> &targets) {
  for (const std::string &name : targets) {
    auto target = resolveCpuTarget(name);
    if (!target)
      return errorText(target.takeError());
    std::string features;
    for (const std::string &feature : target->checkedFeatures)
      features += (features.empty() ? "" : ",") + feature;
    if (normjit_cpu_has_features(features.c_str()))
      return name;
  }
  return "";
}

TEST(AotTargetsTest, PicksTheBestTargetThisCpuRuns) {
  if (!isX86_64())
    GTEST_SKIP() << "x86-64 targets";
  normjit_kernel_spec_t spec = dispatchSpec();
  std::unique_ptr<LoadedLibrary> library = buildAndLoad(
      "multi", {"x86-64", "x86-64-v3", "x86-64-v4"}, {makeKernel("k", spec)});
  ASSERT_TRUE(library);
  auto target = library->lookup<TargetFunction>("k_target");
  auto run = library->lookup<AotFunction>("k");
  ASSERT_NE(target, nullptr);
  ASSERT_NE(run, nullptr);
  ASSERT_NE(target(), nullptr) << normjit_last_error();
  EXPECT_EQ(std::string(target()),
            expectedTarget({"x86-64-v4", "x86-64-v3", "x86-64"}));
  Buffers buffers(spec, 50, 0, Data::Normal);
  ASSERT_EQ(run(&buffers.args), NORMJIT_OK) << normjit_last_error();
  auto ref = tuner::reference(spec, 50, buffers.x, &buffers.residual,
                              &buffers.gamma, nullptr);
  EXPECT_TRUE(tuner::compareWithReference(spec, ref, 50, buffers.y,
                                          &buffers.sum, nullptr, nullptr,
                                          &buffers.gamma, nullptr)
                  .ok());
}

TEST(AotTargetsTest, EveryTargetRunsWhereItsFeaturesAre) {
  if (!isX86_64())
    GTEST_SKIP() << "x86-64 targets";
  normjit_kernel_spec_t spec = dispatchSpec();
  // Disabling features makes the runtime fall back, target by target, to
  // the most generic one, which every x86-64 CPU runs.
  struct {
    const char *disabled;
    std::vector<std::string> order;
  } steps[] = {{"", {"x86-64-v4", "x86-64-v3", "x86-64"}},
               {"avx512f", {"x86-64-v3", "x86-64"}},
               {"avx512f,avx2", {"x86-64"}}};
  for (const auto &step : steps) {
    DisabledFeatures disabled(step.disabled);
    std::unique_ptr<LoadedLibrary> library = buildAndLoad(
        "multi", {"x86-64-v3", "x86-64", "x86-64-v4"}, {makeKernel("k", spec)});
    ASSERT_TRUE(library);
    auto target = library->lookup<TargetFunction>("k_target");
    auto run = library->lookup<AotFunction>("k");
    ASSERT_NE(target, nullptr);
    const char *chosen = target();
    ASSERT_NE(chosen, nullptr) << normjit_last_error();
    EXPECT_EQ(std::string(chosen), expectedTarget(step.order))
        << "disabled: " << step.disabled;
    Buffers buffers(spec, 20, 1, Data::Normal);
    ASSERT_EQ(run(&buffers.args), NORMJIT_OK) << normjit_last_error();
    auto ref = tuner::reference(spec, 20, buffers.x, &buffers.residual,
                                &buffers.gamma, nullptr);
    EXPECT_TRUE(tuner::compareWithReference(spec, ref, 20, buffers.y,
                                            &buffers.sum, nullptr, nullptr,
                                            &buffers.gamma, nullptr)
                    .ok())
        << chosen;
  }
}

TEST(AotTargetsTest, NoTargetForThisCpuIsAClearError) {
  if (!isX86_64())
    GTEST_SKIP() << "x86-64 targets";
  DisabledFeatures disabled("avx2");
  normjit_kernel_spec_t spec = dispatchSpec();
  std::unique_ptr<LoadedLibrary> library = buildAndLoad(
      "narrow", {"x86-64-v4", "x86-64-v3"}, {makeKernel("k", spec)});
  ASSERT_TRUE(library);
  auto run = library->lookup<AotFunction>("k");
  auto target = library->lookup<TargetFunction>("k_target");
  ASSERT_NE(run, nullptr);
  Buffers buffers(spec, 4, 0, Data::Normal);
  normjit_clear_error();
  EXPECT_EQ(run(&buffers.args), NORMJIT_UNSUPPORTED);
  EXPECT_EQ(std::string(normjit_last_error()),
            "AOT kernel 'k' has no variant for this CPU (x86-64-v4 needs "
            "avx2, x86-64-v3 needs avx2)");
  EXPECT_EQ(target(), nullptr);
}

//===----------------------------------------------------------------------===//
// The files of a library
//===----------------------------------------------------------------------===//

/// A scratch directory removed at the end of the test.
class ScratchDir {
public:
  ScratchDir() {
    llvm::SmallString<128> prefix, path;
    llvm::sys::path::system_temp_directory(/*ErasedOnReboot=*/true, prefix);
    llvm::sys::path::append(prefix, "normjit-aot-test");
    EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory(prefix, path));
    dir = path.str().str();
  }
  ~ScratchDir() { llvm::sys::fs::remove_directories(dir); }
  std::string path(llvm::StringRef name) const {
    return dir + "/" + name.str();
  }
  /// The names in the directory, sorted.
  std::vector<std::string> list(llvm::StringRef sub = "") const {
    std::set<std::string> names;
    std::error_code ec;
    std::string root = sub.empty() ? dir : path(sub);
    for (llvm::sys::fs::directory_iterator it(root, ec), end; it != end && !ec;
         it.increment(ec))
      names.insert(llvm::sys::path::filename(it->path()).str());
    return {names.begin(), names.end()};
  }

  std::string dir;
};

std::vector<AotFile> buildSmallLibrary(llvm::StringRef name = "small") {
  normjit_kernel_spec_t ln = makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_BF16,
                                      NORMJIT_BF16, NORMJIT_BF16);
  ln.has_gamma = ln.has_beta = 1;
  AotKernel tuned =
      makeKernel("rms_tuned", makeSpec(NORMJIT_RMS_NORM, 32, NORMJIT_F32,
                                       NORMJIT_F32, NORMJIT_F32));
  CpuConfig config;
  config.vectorWidth = 4;
  config.accumulators = 2;
  tuned.tunedConfig = config;
  AotKernel knobs = makeKernel("rms_knobs", tuned.spec);
  knobs.knobs.accumulators = 1;
  auto files = buildAotLibrary(name, {"native"},
                               {makeKernel("ln_bf16", ln), tuned, knobs});
  EXPECT_TRUE(static_cast<bool>(files)) << errorText(files.takeError());
  return files ? *files : std::vector<AotFile>();
}

const AotFile *findFile(const std::vector<AotFile> &files,
                        llvm::StringRef name) {
  for (const AotFile &file : files)
    if (file.name == name)
      return &file;
  return nullptr;
}

TEST(AotLibraryTest, HasEveryFile) {
  std::vector<AotFile> files = buildSmallLibrary();
  std::vector<std::string> names;
  for (const AotFile &file : files)
    names.push_back(file.name);
  EXPECT_EQ(names, (std::vector<std::string>{"small.h", "small.native.o",
                                             "small.dispatch.o", "libsmall.a",
                                             "small.manifest.toml"}));

  const AotFile *header = findFile(files, "small.h");
  ASSERT_NE(header, nullptr);
  for (const char *expected :
       {"#ifndef NORMJIT_AOT_small_H", "#include <normjit/runtime/kernel.h>",
        "extern \"C\" {",
        "normjit_status_t ln_bf16(const normjit_run_args_t *args);",
        "const normjit_kernel_spec_t *ln_bf16_spec(void);",
        "const char *ln_bf16_target(void);",
        "normjit_status_t rms_knobs(const normjit_run_args_t *args);"})
    EXPECT_NE(header->contents.find(expected), std::string::npos) << expected;

  // The archive holds both objects and indexes their symbols.
  const AotFile *archiveFile = findFile(files, "libsmall.a");
  ASSERT_NE(archiveFile, nullptr);
  auto archive = llvm::object::Archive::create(
      llvm::MemoryBufferRef(archiveFile->contents, "libsmall.a"));
  ASSERT_TRUE(static_cast<bool>(archive)) << errorText(archive.takeError());
  std::vector<std::string> members;
  llvm::Error error = llvm::Error::success();
  for (const llvm::object::Archive::Child &child : (*archive)->children(error))
    members.push_back(llvm::cantFail(child.getName()).str());
  ASSERT_FALSE(static_cast<bool>(error)) << errorText(std::move(error));
  EXPECT_EQ(members,
            (std::vector<std::string>{"small.native.o", "small.dispatch.o"}));
  std::set<std::string> symbols;
  for (const llvm::object::Archive::Symbol &symbol : (*archive)->symbols())
    symbols.insert(symbol.getName().str());
  for (const char *expected :
       {"ln_bf16", "ln_bf16_spec", "ln_bf16_target", "rms_tuned",
        "_mlir_ciface_ln_bf16__native", "_mlir_ciface_rms_knobs__native"})
    EXPECT_TRUE(symbols.count(expected)) << expected;
}

// What a host must supply to a library's objects: the runtime's entry
// points, and for the baseline target's f16 conversions (no F16C) libgcc's
// __extendhfsf2/__truncsfhf2. Not __truncsfbf2 (libgcc has it from GCC 13
// only): bf16 tails once scalarized their stores through it on x86-64-v3.
TEST(AotLibraryTest, ObjectsNeedOnlyTheRuntime) {
  std::vector<AotKernel> kernels;
  int index = 0;
  for (normjit_op_t op : {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM})
    for (int64_t cols : {1, 17, 31, 33})
      for (normjit_dtype_t params : {NORMJIT_F32, NORMJIT_BF16})
        for (int residual : {0, 1}) {
          normjit_kernel_spec_t spec =
              makeSpec(op, cols, NORMJIT_BF16, NORMJIT_BF16, NORMJIT_BF16);
          spec.has_gamma = 1;
          spec.gamma_dtype = spec.beta_dtype = params;
          spec.has_residual = spec.store_sum = residual;
          kernels.push_back(makeKernel("k" + std::to_string(index++), spec));
        }
  normjit_kernel_spec_t half =
      makeSpec(NORMJIT_RMS_NORM, 17, NORMJIT_F16, NORMJIT_F16, NORMJIT_F16);
  kernels.push_back(makeKernel("half", half));
  auto files =
      buildAotLibrary("lib", {"x86-64-v4", "x86-64-v3", "x86-64"}, kernels);
  ASSERT_TRUE(static_cast<bool>(files)) << errorText(files.takeError());
  std::set<std::string> needed;
  for (const AotFile &file : *files) {
    if (!llvm::StringRef(file.name).ends_with(".o"))
      continue;
    auto object = llvm::object::ObjectFile::createObjectFile(
        llvm::MemoryBufferRef(file.contents, file.name));
    ASSERT_TRUE(static_cast<bool>(object)) << errorText(object.takeError());
    for (const llvm::object::SymbolRef &symbol : (*object)->symbols()) {
      auto flags = symbol.getFlags();
      ASSERT_TRUE(static_cast<bool>(flags)) << errorText(flags.takeError());
      if (!(*flags & llvm::object::SymbolRef::SF_Undefined))
        continue;
      std::string name = llvm::cantFail(symbol.getName()).str();
      if (!name.empty() && name.rfind("_mlir_ciface_", 0) != 0)
        needed.insert(name);
    }
  }
  for (const std::string &name : needed)
    EXPECT_TRUE(name.rfind("normjit_", 0) == 0 || name == "__extendhfsf2" ||
                name == "__truncsfhf2")
        << name << " is needed by the library's objects";
}

TEST(AotLibraryTest, ManifestIsASpecFileForTheSameKernels) {
  std::vector<AotFile> files = buildSmallLibrary();
  const AotFile *manifest = findFile(files, "small.manifest.toml");
  ASSERT_NE(manifest, nullptr);
  EXPECT_EQ(manifest->contents.rfind("# normjit aot manifest", 0), 0u);
  for (const char *expected :
       {"schema = 1\n", "library = \"small\"\n", "targets = [\"native\"]\n",
        "name = \"ln_bf16\"\n", "op = \"layer_norm\"\n", "cols = 64\n",
        "x_dtype = \"bf16\"\n", "config_source = \"default\"\n",
        "config_source = \"cache\"\n", "config_source = \"explicit\"\n",
        "config = \"#norm.config<cpu, accumulators = 1>\"\n",
        "symbol = \"_mlir_ciface_ln_bf16__native\"\n"})
    EXPECT_NE(manifest->contents.find(expected), std::string::npos) << expected;

  auto spec = parseAotSpecText(manifest->contents, "small.manifest.toml");
  ASSERT_TRUE(static_cast<bool>(spec)) << errorText(spec.takeError());
  EXPECT_EQ(spec->library, "small");
  EXPECT_EQ(spec->targets, std::vector<std::string>{"native"});
  ASSERT_EQ(spec->kernels.size(), 3u);
  EXPECT_EQ(spec->kernels[0].name, "ln_bf16");
  normjit_kernel_spec_t ln = makeSpec(NORMJIT_LAYER_NORM, 64, NORMJIT_BF16,
                                      NORMJIT_BF16, NORMJIT_BF16);
  ln.has_gamma = ln.has_beta = 1;
  const normjit_kernel_spec_t &read = spec->kernels[0].spec;
  EXPECT_EQ(read.op, ln.op);
  EXPECT_EQ(read.cols, ln.cols);
  EXPECT_EQ(read.x_dtype, ln.x_dtype);
  EXPECT_EQ(read.y_dtype, ln.y_dtype);
  EXPECT_EQ(read.has_gamma, 1);
  EXPECT_EQ(read.has_beta, 1);
  EXPECT_EQ(read.epsilon, ln.epsilon);
  EXPECT_TRUE(spec->kernels[0].knobs.empty());

  // The tuned config comes back as explicit knobs, the same for every
  // target; the user's knobs come back as they were.
  auto native = resolveCpuTarget("native");
  ASSERT_TRUE(static_cast<bool>(native));
  CpuConfig tuned;
  tuned.vectorWidth = 4;
  tuned.accumulators = 2;
  EXPECT_EQ(spec->kernels[1].getConfig(*native), tuned);
  EXPECT_EQ(spec->kernels[2].knobs.accumulators, 1);
  EXPECT_FALSE(spec->kernels[2].knobs.vectorWidth.has_value());

  // Rebuilt from its manifest, the library is the same, byte for byte.
  auto again = buildAotLibrary(spec->library, spec->targets, spec->kernels);
  ASSERT_TRUE(static_cast<bool>(again)) << errorText(again.takeError());
  ASSERT_EQ(again->size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ((*again)[i].name, files[i].name);
    if (files[i].name == "small.manifest.toml")
      continue; // config_source "cache" is now "explicit"
    EXPECT_TRUE((*again)[i].contents == files[i].contents) << files[i].name;
  }
}

TEST(AotLibraryTest, WritesTheOutputDirectory) {
  ScratchDir scratch;
  std::vector<AotFile> files = buildSmallLibrary();
  std::string out = scratch.path("out");
  ASSERT_FALSE(static_cast<bool>(writeAotOutput(out, files, false)));
  EXPECT_EQ(scratch.list(), std::vector<std::string>{"out"});
  EXPECT_EQ(
      scratch.list("out"),
      (std::vector<std::string>{"libsmall.a", "small.dispatch.o", "small.h",
                                "small.manifest.toml", "small.native.o"}));
  std::ifstream header(scratch.path("out/small.h"));
  std::stringstream text;
  text << header.rdbuf();
  EXPECT_EQ(text.str(), files[0].contents);

  // Again: refused without --force, replaced with it.
  llvm::Error error = writeAotOutput(out, files, false);
  EXPECT_EQ(errorText(std::move(error)),
            "the output directory '" + out +
                "' already exists; pass --force to replace it");
  std::vector<AotFile> other = buildSmallLibrary("other");
  ASSERT_FALSE(static_cast<bool>(writeAotOutput(out, other, true)));
  EXPECT_EQ(
      scratch.list("out"),
      (std::vector<std::string>{"libother.a", "other.dispatch.o", "other.h",
                                "other.manifest.toml", "other.native.o"}));
  EXPECT_EQ(scratch.list(), std::vector<std::string>{"out"});

  // --force replaces an earlier output, not what a user put beside it: a
  // file or a directory its manifest does not name stops it, and stays.
  std::ofstream(scratch.path("out/host.c")) << "int main(void) { return 0; }\n";
  error = writeAotOutput(out, files, true);
  EXPECT_EQ(errorText(std::move(error)),
            "the output directory '" + out +
                "' holds 'host.c', which is not a file of the earlier output "
                "its manifest describes; refusing to replace it (and lose "
                "that)");
  std::remove(scratch.path("out/host.c").c_str());
  ASSERT_EQ(::mkdir(scratch.path("out/other.h.d").c_str(), 0755), 0);
  error = writeAotOutput(out, files, true);
  EXPECT_NE(errorText(std::move(error)).find("holds 'other.h.d'"),
            std::string::npos);
  EXPECT_EQ(
      scratch.list("out"),
      (std::vector<std::string>{"libother.a", "other.dispatch.o", "other.h",
                                "other.h.d", "other.manifest.toml",
                                "other.native.o"}));
  EXPECT_EQ(scratch.list(), std::vector<std::string>{"out"});
}

//===----------------------------------------------------------------------===//
// Bad input
//===----------------------------------------------------------------------===//

TEST(AotBadInputTest, UnknownTargets) {
  for (const char *name : {"x86-64-v9", "", "pentium", "NATIVE"}) {
    auto target = resolveCpuTarget(name);
    ASSERT_FALSE(static_cast<bool>(target)) << name;
    std::string message = errorText(target.takeError());
    EXPECT_EQ(message.rfind("unknown CPU target '" + std::string(name) +
                                "'; expected native",
                            0),
              0u)
        << message;
  }
  normjit_kernel_spec_t spec = dispatchSpec();
  auto files =
      buildAotLibrary("lib", {"native", "bogus"}, {makeKernel("k", spec)});
  ASSERT_FALSE(static_cast<bool>(files));
  EXPECT_EQ(errorStatus(files.takeError()), NORMJIT_INVALID_ARGUMENT);
  EXPECT_NE(
      std::string(normjit_last_error()).find("unknown CPU target 'bogus'"),
      std::string::npos);

  files = buildAotLibrary("lib", {"native", "native"}, {makeKernel("k", spec)});
  ASSERT_FALSE(static_cast<bool>(files));
  EXPECT_EQ(errorText(files.takeError()),
            "CPU target 'native' is given more than once");
  files = buildAotLibrary("lib", {}, {makeKernel("k", spec)});
  ASSERT_FALSE(static_cast<bool>(files));
  EXPECT_EQ(errorText(files.takeError()), "no CPU target given");
}

TEST(AotBadInputTest, KernelsTheBackendCannotCompile) {
  normjit_kernel_spec_t spec = dispatchSpec();
  AotKernel kernel = makeKernel("k", spec);
  kernel.knobs.vectorWidth = 3;
  auto files = buildAotLibrary("lib", {"native"}, {kernel});
  ASSERT_FALSE(static_cast<bool>(files));
  EXPECT_EQ(
      errorText(files.takeError()),
      "kernel 'k': vector_width must be a power of two in [1, 64], got 3");

  normjit_kernel_spec_t huge = makeSpec(NORMJIT_RMS_NORM, int64_t(1) << 31,
                                        NORMJIT_F32, NORMJIT_F32, NORMJIT_F32);
  files = buildAotLibrary("lib", {"native"}, {makeKernel("k", huge)});
  ASSERT_FALSE(static_cast<bool>(files));
  EXPECT_EQ(errorStatus(files.takeError()), NORMJIT_UNSUPPORTED);
  EXPECT_STREQ(normjit_last_error(),
               "kernel 'k': cols = 2147483648 is more than normjit supports "
               "(2^30)");

  normjit_kernel_spec_t sum = spec;
  sum.has_residual = 0;
  files = buildAotLibrary("lib", {"native"}, {makeKernel("k", sum)});
  ASSERT_FALSE(static_cast<bool>(files));
  EXPECT_EQ(errorText(files.takeError()),
            "kernel 'k': store_sum needs a residual: without one the sum "
            "would only copy x");

  files = buildAotLibrary("lib", {"native"}, {});
  ASSERT_FALSE(static_cast<bool>(files));
  EXPECT_EQ(errorText(files.takeError()), "no kernel to compile");
}

TEST(AotBadInputTest, BadNames) {
  normjit_kernel_spec_t spec = dispatchSpec();
  struct {
    const char *library, *kernel, *message;
  } cases[] = {
      {"1lib", "k",
       "library name '1lib' must start with a letter (it is a C "
       "identifier)"},
      {"my-lib", "k",
       "library name 'my-lib' may hold only letters, digits "
       "and '_' (it is a C identifier)"},
      {"lib", "a__b",
       "kernel name 'a__b' must not contain \"__\" (reserved "
       "in C++ and for normjit's own symbols)"},
      {"lib", "int", "kernel name 'int' is a C or C++ keyword"},
      {"lib", "requires", "kernel name 'requires' is a C or C++ keyword"},
      {"lib", "typeof", "kernel name 'typeof' is a C or C++ keyword"},
      {"lib", "linux",
       "kernel name 'linux' is a macro GCC and Clang predefine (in their "
       "default GNU modes)"},
      {"int", "k", "library name 'int' is a C or C++ keyword"},
      // Macros of standard C headers a host may include first.
      {"lib", "assert",
       "kernel name 'assert' is a macro of a standard C header "
       "(<assert.h>, <math.h>, <stdio.h>, <limits.h>, ...): a host that "
       "includes that header would not compile the generated one"},
      {"lib", "EOF",
       "kernel name 'EOF' is a macro of a standard C header "
       "(<assert.h>, <math.h>, <stdio.h>, <limits.h>, ...): a host that "
       "includes that header would not compile the generated one"},
      {"lib", "complex",
       "kernel name 'complex' is a macro of a standard C header "
       "(<assert.h>, <math.h>, <stdio.h>, <limits.h>, ...): a host that "
       "includes that header would not compile the generated one"},
      {"lib", "NAN",
       "kernel name 'NAN' is a macro of a standard C header "
       "(<assert.h>, <math.h>, <stdio.h>, <limits.h>, ...): a host that "
       "includes that header would not compile the generated one"},
      {"lib", "FLT_MAX",
       "kernel name 'FLT_MAX' is a macro of a standard C header "
       "(<assert.h>, <math.h>, <stdio.h>, <limits.h>, ...): a host that "
       "includes that header would not compile the generated one"},
      {"lib", "signbit",
       "kernel name 'signbit' is a macro of a standard C header "
       "(<assert.h>, <math.h>, <stdio.h>, <limits.h>, ...): a host that "
       "includes that header would not compile the generated one"},
      {"lib", "ERANGE",
       "kernel name 'ERANGE' is a macro of a standard C header "
       "(<assert.h>, <math.h>, <stdio.h>, <limits.h>, ...): a host that "
       "includes that header would not compile the generated one"},
      // glibc functions the shared library does not export.
      {"lib", "atexit",
       "kernel name 'atexit' is the name of a C library function "
       "(libc_nonshared.a); the kernel's function would replace it"},
      {"lib", "pthread_atfork",
       "kernel name 'pthread_atfork' is the name of a C library function "
       "(libc_nonshared.a); the kernel's function would replace it"},
      {"lib", "unix",
       "kernel name 'unix' is a macro GCC and Clang predefine (in their "
       "default GNU modes)"},
      {"lib", "INT8_WIDTH",
       "kernel name 'INT8_WIDTH' is a macro of <stdint.h> or <stddef.h>, "
       "which the generated header includes"},
      {"lib", "UINTPTR_WIDTH",
       "kernel name 'UINTPTR_WIDTH' is a macro of <stdint.h> or <stddef.h>, "
       "which the generated header includes"},
      {"lib", "memcpy",
       "kernel name 'memcpy' is the name of a C library function "
       "(libc.so.6); the kernel's function would clash with it"},
      {"lib", "expf",
       "kernel name 'expf' is the name of a C library function "
       "(libm.so.6); the kernel's function would clash with it"},
      {"lib", "INT64_MAX",
       "kernel name 'INT64_MAX' is a macro of <stdint.h> or <stddef.h>, "
       "which the generated header includes"},
      {"lib", "offsetof",
       "kernel name 'offsetof' is a macro of <stdint.h> or <stddef.h>, "
       "which the generated header includes"},
      {"stdint", "k",
       "library name 'stdint' would make stdint.h, the name of a standard C "
       "header"},
      {"lib", "normjit_x",
       "kernel name 'normjit_x' must not start with \"normjit_\" or "
       "\"NORMJIT_\" (the runtime's prefix, and that of its macros, "
       "enumerators and the generated header's include guard)"},
      {"lib", "NORMJIT_OK",
       "kernel name 'NORMJIT_OK' must not start with \"normjit_\" or "
       "\"NORMJIT_\" (the runtime's prefix, and that of its macros, "
       "enumerators and the generated header's include guard)"},
      {"lib", "NORMJIT_AOT_lib_H",
       "kernel name 'NORMJIT_AOT_lib_H' must not start with \"normjit_\" "
       "or \"NORMJIT_\" (the runtime's prefix, and that of its macros, "
       "enumerators and the generated header's include guard)"},
      {"lib", "uint16_t",
       "kernel name 'uint16_t' must not end in \"_t\" (reserved for the "
       "types of <stdint.h>, <stddef.h> and POSIX)"},
      {"lib", "size_t",
       "kernel name 'size_t' must not end in \"_t\" (reserved for the "
       "types of <stdint.h>, <stddef.h> and POSIX)"},
      {"lib", "", "kernel name must not be empty"},
  };
  for (const auto &c : cases) {
    auto files =
        buildAotLibrary(c.library, {"native"}, {makeKernel(c.kernel, spec)});
    ASSERT_FALSE(static_cast<bool>(files));
    EXPECT_EQ(errorText(files.takeError()), c.message);
  }
  // A library's name makes only file names and the include guard: names
  // of C functions and macros are fine there.
  // Standard macros the list knows (SIG_DFL, FE_ALL_EXCEPT, CMPLX,
  // INT_WIDTH, PRIx64), refused as kernel names; PRIME is no reserved name.
  for (const char *macro : {"SIG_DFL", "FE_ALL_EXCEPT", "CMPLXF", "INT_WIDTH",
                            "PRIx64", "SCNd32", "atomic_load"}) {
    auto built = buildAotLibrary("lib", {"native"}, {makeKernel(macro, spec)});
    ASSERT_FALSE(static_cast<bool>(built)) << macro;
    EXPECT_NE(errorText(built.takeError()).find("is a macro of a standard C "
                                                "header"),
              std::string::npos)
        << macro;
  }
  {
    auto built =
        buildAotLibrary("lib", {"native"}, {makeKernel("PRIME", spec)});
    EXPECT_TRUE(static_cast<bool>(built)) << errorText(built.takeError());
  }
  for (const char *library : {"random", "index", "linux", "size_t", "EOF"}) {
    auto built =
        buildAotLibrary(library, {"native"}, {makeKernel("k", spec)});
    EXPECT_TRUE(static_cast<bool>(built))
        << library << ": " << errorText(built.takeError());
  }
  auto files = buildAotLibrary(
      "lib", {"native"}, {makeKernel("a_spec", spec), makeKernel("a", spec)});
  ASSERT_FALSE(static_cast<bool>(files));
  EXPECT_EQ(errorText(files.takeError()),
            "kernel name 'a': the C function 'a_spec' is defined twice in "
            "library 'lib'");
}

TEST(AotBadInputTest, Configs) {
  auto knobs = parseCpuConfigKnobs(
      "#norm.config<cpu, vector_width = 16, accumulators = 2, "
      "algorithm = welford>");
  ASSERT_TRUE(static_cast<bool>(knobs)) << errorText(knobs.takeError());
  EXPECT_EQ(knobs->vectorWidth, 16);
  EXPECT_EQ(knobs->accumulators, 2);
  EXPECT_EQ(knobs->welford, true);
  EXPECT_FALSE(knobs->rowsPerTask.has_value());
  EXPECT_EQ(knobs->str(), "#norm.config<cpu, vector_width = 16, "
                          "accumulators = 2, algorithm = welford>");
  // Spaces around the attribute, leading as trailing, are not part of it.
  auto spaced = parseCpuConfigKnobs(" \t#norm.config<cpu, vector_width = 8> ");
  ASSERT_TRUE(static_cast<bool>(spaced)) << errorText(spaced.takeError());
  EXPECT_EQ(spaced->vectorWidth, 8);

  for (const char *text : {"#norm.config<cpu, vector_width = 3>", "garbage",
                           "#norm.config<gpu, threads_per_row = 32>",
                           "42 : i32", "#norm.config<cpu> trailing"}) {
    auto parsed = parseCpuConfigKnobs(text);
    ASSERT_FALSE(static_cast<bool>(parsed)) << text;
    std::string message = errorText(parsed.takeError());
    EXPECT_EQ(message.rfind("invalid config '" + std::string(text) + "': ", 0),
              0u)
        << message;
  }
}

TEST(AotBadInputTest, MalformedSpecFiles) {
  const char *kernel = "[[kernel]]\nname = \"k\"\nop = \"rms_norm\"\n"
                       "cols = 64\n";
  struct {
    std::string text, message;
  } cases[] = {
      {"[[kernel]\nname = 1\n", "malformed spec file f.toml:1: "},
      {std::string(kernel) + "colour = \"red\"\n",
       "malformed spec file f.toml:5: unknown key 'colour' in a [[kernel]] "
       "table"},
      {std::string(kernel) + "eps = \"small\"\n",
       "malformed spec file f.toml:5: 'eps' must be a number"},
      {std::string(kernel) + "residual = 1\n",
       "malformed spec file f.toml:5: 'residual' must be true or false"},
      {"library = \"lib\"\n\n[[kernel]]\nop = \"rms_norm\"\ncols = 8\n",
       "malformed spec file f.toml:3: a [[kernel]] table needs 'name'"},
      {std::string(kernel) + kernel,
       "malformed spec file f.toml:6: kernel 'k' is defined more than once"},
      {"[[kernel]]\nname = \"k\"\nop = \"group_norm\"\ncols = 8\n",
       "malformed spec file f.toml:3: kernel 'k': unknown op 'group_norm'; "
       "expected layer_norm or rms_norm"},
      {std::string(kernel) + "dtype = \"f64\"\n",
       "malformed spec file f.toml:5: unknown dtype 'f64'; expected f32, f16 "
       "or bf16"},
      {std::string(kernel) + "config = \"#norm.config<cpu, bogus = 1>\"\n",
       "malformed spec file f.toml:5: kernel 'k': invalid config "
       "'#norm.config<cpu, bogus = 1>': "},
      {std::string(kernel) + "store_mean = true\n",
       "malformed spec file f.toml:5: kernel 'k': store_mean = true, but "
       "rms_norm computes no mean"},
      {std::string(kernel) + "residual_dtype = \"bf16\"\n",
       "malformed spec file f.toml:5: kernel 'k': residual_dtype given, but "
       "the kernel has no residual (residual = true adds one)"},
      {std::string(kernel) + "residual = true\nsum_dtype = \"f16\"\n",
       "malformed spec file f.toml:6: kernel 'k': sum_dtype given, but the "
       "kernel has no sum (store_sum = true stores one)"},
      {std::string(kernel) + "beta_dtype = \"f16\"\n",
       "malformed spec file f.toml:5: kernel 'k': beta_dtype given, but the "
       "kernel has no beta (beta = true adds one)"},
      {std::string(kernel) + "config = \"" + std::string(3000, '[') + "\"\n",
       "malformed spec file f.toml:5: kernel 'k': invalid config '[[[["},
      {std::string(kernel) + "store_sum = true\n",
       "malformed spec file f.toml:5: kernel 'k': store_sum = true needs "
       "residual = true: without a residual the sum would only copy x"},
      {"schema = 2\n" + std::string(kernel),
       "malformed spec file f.toml:1: unsupported schema 2; this normjit reads "
       "schema 1"},
      {"library = \"my lib\"\n" + std::string(kernel),
       "malformed spec file f.toml:1: library name 'my lib' may hold only "
       "letters, digits and '_' (it is a C identifier)"},
      {"targets = []\n" + std::string(kernel),
       "malformed spec file f.toml:1: 'targets' must not be empty"},
      {"targets = [\"x86-64-v3\",\n  \"x86-64-v9\"]\n" + std::string(kernel),
       "malformed spec file f.toml:2: unknown CPU target 'x86-64-v9'"},
      {"library = \"lib\"\n",
       "malformed spec file f.toml: no [[kernel]] table: nothing to compile"},
  };
  for (const auto &c : cases) {
    auto file = parseAotSpecText(c.text, "f.toml");
    ASSERT_FALSE(static_cast<bool>(file)) << c.text;
    std::string message = errorText(file.takeError());
    EXPECT_EQ(message.substr(0, c.message.size()), c.message) << c.text;
  }
  auto missing = parseAotSpecFile("/nonexistent/specs.toml");
  ASSERT_FALSE(static_cast<bool>(missing));
  EXPECT_EQ(errorText(missing.takeError()),
            "cannot read spec file '/nonexistent/specs.toml': No such file or "
            "directory");
}

TEST(AotBadInputTest, SpecFileDefaults) {
  auto file =
      parseAotSpecText("targets = [\"x86-64-v3\"]\nrows_hint = 16\n"
                       "[[kernel]]\nname = \"ln\"\nop = \"layer_norm\"\n"
                       "cols = 768\ndtype = \"bf16\"\n"
                       "gamma_dtype = \"f32\"\n"
                       "[[kernel]]\nname = \"rms\"\nop = \"rms_norm\"\n"
                       "cols = 8\nresidual = true\nstore_sum = true\n"
                       "eps = 1e-3\nrows_hint = 1\n",
                       "f.toml");
  ASSERT_TRUE(static_cast<bool>(file)) << errorText(file.takeError());
  EXPECT_EQ(file->library, "");
  ASSERT_EQ(file->kernels.size(), 2u);
  const normjit_kernel_spec_t &ln = file->kernels[0].spec;
  EXPECT_EQ(ln.x_dtype, NORMJIT_BF16);
  EXPECT_EQ(ln.y_dtype, NORMJIT_BF16);
  EXPECT_EQ(ln.gamma_dtype, NORMJIT_F32);
  EXPECT_EQ(ln.has_gamma, 1);
  EXPECT_EQ(ln.has_beta, 1);
  EXPECT_EQ(ln.epsilon, 1e-5f);
  EXPECT_EQ(file->kernels[0].rowsHint, 16);
  const normjit_kernel_spec_t &rms = file->kernels[1].spec;
  EXPECT_EQ(rms.has_beta, 0);
  EXPECT_EQ(rms.has_residual, 1);
  EXPECT_EQ(rms.store_sum, 1);
  EXPECT_EQ(rms.epsilon, 1e-3f);
  EXPECT_EQ(file->kernels[1].rowsHint, 1);
  // Given for the file or the kernel: the default may stream for it.
  EXPECT_TRUE(file->kernels[0].rowsHintGiven);
  EXPECT_TRUE(file->kernels[1].rowsHintGiven);
  auto noHint = parseAotSpecText(
      "[[kernel]]\nname = \"k\"\nop = \"layer_norm\"\ncols = 8192\n",
      "f.toml");
  ASSERT_TRUE(static_cast<bool>(noHint)) << errorText(noHint.takeError());
  EXPECT_FALSE(noHint->kernels[0].rowsHintGiven);
  EXPECT_EQ(noHint->kernels[0].rowsHint, 4096);
  auto target = resolveCpuTarget("x86-64-v3");
  ASSERT_TRUE(static_cast<bool>(target)) << errorText(target.takeError());
  EXPECT_FALSE(noHint->kernels[0].getConfig(*target).streamingStores);
  AotKernel hinted = noHint->kernels[0];
  hinted.rowsHintGiven = true;
  EXPECT_TRUE(hinted.getConfig(*target).streamingStores);
  // An integer epsilon, one a double cannot hold exactly too (2^53 + 1):
  // rounded as any number, not refused as non-finite.
  for (const char *eps : {"1", "9007199254740993"}) {
    auto integer = parseAotSpecText(
        std::string("[[kernel]]\nname = \"k\"\nop = \"rms_norm\"\n"
                    "cols = 8\neps = ") +
            eps + "\n",
        "f.toml");
    ASSERT_TRUE(static_cast<bool>(integer)) << errorText(integer.takeError());
    EXPECT_EQ(integer->kernels[0].spec.epsilon,
              static_cast<float>(std::strtod(eps, nullptr)));
  }
}

TEST(AotBadInputTest, OutputDirectories) {
  ScratchDir scratch;
  std::vector<AotFile> files = buildSmallLibrary();
  ASSERT_FALSE(files.empty());

  // A parent that is a file, or missing: nothing is written.
  { std::ofstream(scratch.path("file")) << "x"; }
  llvm::Error error = writeAotOutput(scratch.path("file/out"), files, false);
  EXPECT_EQ(errorStatus(std::move(error)), NORMJIT_IO_ERROR);
  EXPECT_EQ(std::string(normjit_last_error()),
            "cannot write the output directory '" + scratch.path("file/out") +
                "': '" + scratch.path("file") + "' is not a directory");
  error = writeAotOutput(scratch.path("missing/out"), files, false);
  EXPECT_EQ(errorText(std::move(error)),
            "cannot write the output directory '" +
                scratch.path("missing/out") + "': its parent directory '" +
                scratch.path("missing") + "' does not exist");

  // A file that cannot be written (a name that is a directory path) leaves
  // no temporary behind.
  std::vector<AotFile> bad = files;
  bad.push_back({"sub/dir.o", "x"});
  error = writeAotOutput(scratch.path("out"), bad, false);
  EXPECT_EQ(errorStatus(std::move(error)), NORMJIT_IO_ERROR);
  EXPECT_EQ(scratch.list(), std::vector<std::string>{"file"});

  // An existing directory that is not an earlier output is never replaced.
  ASSERT_FALSE(llvm::sys::fs::create_directory(scratch.path("home")));
  { std::ofstream(scratch.path("home/notes.txt")) << "keep me"; }
  error = writeAotOutput(scratch.path("home"), files, true);
  EXPECT_EQ(errorText(std::move(error)),
            "the output directory '" + scratch.path("home") +
                "' is not empty and holds no normjit aot manifest; refusing "
                "to replace it");
  EXPECT_EQ(scratch.list("home"), std::vector<std::string>{"notes.txt"});
  error = writeAotOutput(scratch.path("file"), files, true);
  EXPECT_EQ(errorText(std::move(error)), "the output directory '" +
                                             scratch.path("file") +
                                             "' exists and is not a directory");

  // An empty one is.
  ASSERT_FALSE(llvm::sys::fs::create_directory(scratch.path("empty")));
  EXPECT_FALSE(
      static_cast<bool>(writeAotOutput(scratch.path("empty"), files, true)));
  EXPECT_EQ(scratch.list("empty").size(), files.size());
  EXPECT_EQ(scratch.list(),
            (std::vector<std::string>{"empty", "file", "home"}));
}

} // namespace
