//===- AotDispatchTest.cpp - CPU features and AOT variant dispatch --------===//
//
// Part of normjit. Tests the runtime side of ahead-of-time kernels: feature
// queries, the NORMJIT_DISABLE_CPU_FEATURES override, the choice of the
// first variant this CPU runs, the error when none runs, and the launch.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/aot.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace {

int callsA = 0, callsB = 0;
int64_t rowsSeen = 0;

void kernelA(normjit_memref2d_t *x, normjit_memref2d_t *, normjit_memref1d_t *,
             normjit_memref1d_t *, normjit_memref2d_t *, normjit_memref2d_t *,
             normjit_memref1d_t *, normjit_memref1d_t *) {
  ++callsA;
  rowsSeen += x->sizes[0];
}

void kernelB(normjit_memref2d_t *x, normjit_memref2d_t *, normjit_memref1d_t *,
             normjit_memref1d_t *, normjit_memref2d_t *, normjit_memref2d_t *,
             normjit_memref1d_t *, normjit_memref1d_t *) {
  ++callsB;
  rowsSeen += x->sizes[0];
}

normjit_aot_kernel_t makeKernel(const normjit_aot_variant_t *variants,
                                int64_t count) {
  normjit_aot_kernel_t kernel{};
  kernel.name = "test_kernel";
  kernel.spec = normjit_kernel_spec_default(NORMJIT_RMS_NORM, 4);
  kernel.variants = variants;
  kernel.variant_count = count;
  return kernel;
}

/// Sets NORMJIT_DISABLE_CPU_FEATURES for the scope of one test.
class DisabledFeatures {
public:
  explicit DisabledFeatures(const char *list) {
    setenv("NORMJIT_DISABLE_CPU_FEATURES", list, 1);
  }
  ~DisabledFeatures() { unsetenv("NORMJIT_DISABLE_CPU_FEATURES"); }
};

} // namespace

TEST(AotDispatchTest, FeatureQueries) {
  EXPECT_EQ(normjit_cpu_has_features(""), 1);
  EXPECT_EQ(normjit_cpu_has_features(nullptr), 1);
  EXPECT_EQ(normjit_cpu_has_features("no-such-feature"), 0);
  EXPECT_EQ(normjit_cpu_feature_known("no-such-feature"), 0);
  EXPECT_EQ(normjit_cpu_feature_known(nullptr), 0);
  // System features are not checked: kernels never use them.
  EXPECT_EQ(normjit_cpu_feature_known("clwb"), 0);
#if defined(__x86_64__)
  // AMD's FMA4, XOP and TBM (bdver1-4): read from cpuid 0x80000001, so a
  // target that has them runs only where they are.
  EXPECT_EQ(normjit_cpu_feature_known("fma4"), 1);
  EXPECT_EQ(normjit_cpu_feature_known("xop"), 1);
  EXPECT_EQ(normjit_cpu_feature_known("tbm"), 1);
  EXPECT_EQ(normjit_cpu_feature_known("avx512f"), 1);
  EXPECT_EQ(normjit_cpu_feature_known("sse4.2"), 1);
  EXPECT_EQ(normjit_cpu_has_features("sse2"), 1);
  EXPECT_EQ(normjit_cpu_has_features("64bit,cmov,cx8,sse,sse2"), 1);
  EXPECT_EQ(normjit_cpu_has_features("sse2,no-such-feature"), 0);
  {
    DisabledFeatures disabled("avx512f,sse2");
    EXPECT_EQ(normjit_cpu_has_features("sse2"), 0);
    EXPECT_EQ(normjit_cpu_has_features("sse"), 1);
  }
  EXPECT_EQ(normjit_cpu_has_features("sse2"), 1);
  {
    // Spaces around a name are ignored, as the JIT ignores them.
    DisabledFeatures disabled(" popcnt , sse2 ,");
    EXPECT_EQ(normjit_cpu_has_features("popcnt"), 0);
    EXPECT_EQ(normjit_cpu_has_features("sse2"), 0);
    EXPECT_EQ(normjit_cpu_has_features("sse"), 1);
  }
#endif
}

TEST(AotDispatchTest, PicksTheFirstVariantThisCpuRuns) {
  callsA = callsB = 0;
  rowsSeen = 0;
  const normjit_aot_variant_t variants[] = {
      {"future", "no-such-feature", kernelA, {64, 0}},
      {"generic", "", kernelB, {2, 1}},
  };
  normjit_aot_kernel_t kernel = makeKernel(variants, 2);
  EXPECT_STREQ(normjit_aot_target(&kernel), "generic");
  EXPECT_EQ(kernel.selected, &variants[1]);

  float x[5 * 4] = {}, y[5 * 4] = {};
  normjit_run_args_t args{};
  args.rows = 5;
  args.x = x;
  args.y = y;
  ASSERT_EQ(normjit_aot_run(&kernel, &args), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(callsA, 0);
  EXPECT_EQ(callsB, 1); // threads = 1: one call over all rows
  EXPECT_EQ(rowsSeen, 5);

  // The spec's checks still apply.
  args.x = nullptr;
  EXPECT_EQ(normjit_aot_run(&kernel, &args), NORMJIT_INVALID_ARGUMENT);
}

TEST(AotDispatchTest, PrefersEarlierVariants) {
  const normjit_aot_variant_t variants[] = {
      {"best", "", kernelA, {64, 0}},
      {"generic", "", kernelB, {64, 0}},
  };
  normjit_aot_kernel_t kernel = makeKernel(variants, 2);
  EXPECT_STREQ(normjit_aot_target(&kernel), "best");
}

TEST(AotDispatchTest, NoVariantForThisCpuIsAClearError) {
  const normjit_aot_variant_t variants[] = {
      {"x86-64-v9", "sse2,no-such-feature", kernelA, {64, 0}},
      {"x86-64-v8", "other-feature", kernelB, {64, 0}},
  };
  normjit_aot_kernel_t kernel = makeKernel(variants, 2);
  normjit_clear_error();
  EXPECT_EQ(normjit_aot_select(&kernel), nullptr);
  std::string message = normjit_last_error();
  EXPECT_NE(message.find("AOT kernel 'test_kernel' has no variant for this "
                         "CPU"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("x86-64-v8 needs other-feature"), std::string::npos)
      << message;

  float x[4] = {}, y[4] = {};
  normjit_run_args_t args{};
  args.rows = 1;
  args.x = x;
  args.y = y;
  EXPECT_EQ(normjit_aot_run(&kernel, &args), NORMJIT_UNSUPPORTED);
  EXPECT_EQ(normjit_aot_target(&kernel), nullptr);
  EXPECT_EQ(normjit_aot_run(nullptr, &args), NORMJIT_INVALID_ARGUMENT);
}

#if defined(__x86_64__)
TEST(AotDispatchTest, DisabledFeaturesSelectAMoreGenericVariant) {
  const normjit_aot_variant_t variants[] = {
      {"x86-64-v2", "sse4.2,popcnt", kernelA, {64, 0}},
      {"x86-64", "sse2", kernelB, {64, 0}},
  };
  DisabledFeatures disabled("popcnt");
  normjit_aot_kernel_t kernel = makeKernel(variants, 2);
  EXPECT_STREQ(normjit_aot_target(&kernel), "x86-64");
}
#endif
