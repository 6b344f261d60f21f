//===- ValidateTest.cpp - the quick checks of specs and run arguments -----===//
//
// Part of normjit. normjit_kernel_spec_validate and normjit_run_args_validate
// accept a call by one quick check of every rule and go field by field only
// when it fails; here both give the same verdicts on specs and arguments
// drawn from values at and beyond every rule's edge.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/Validate.h"
#include "normjit/runtime/dtype.h"
#include "normjit/runtime/kernel.h"
#include "normjit/runtime/status.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

using normjit::runtime::validateRunArgsByField;
using normjit::runtime::validateSpecByField;

namespace {

template <typename T>
T pick(std::mt19937_64 &random, const std::vector<T> &values) {
  return values[random() % values.size()];
}

/// A spec of valid fields, each beyond an edge about one time in 11.
normjit_kernel_spec_t drawSpec(std::mt19937_64 &random) {
  const std::vector<normjit_dtype_t> dtypes = {NORMJIT_F32, NORMJIT_F16,
                                               NORMJIT_BF16};
  const std::vector<normjit_dtype_t> badDtypes = {
      static_cast<normjit_dtype_t>(7), static_cast<normjit_dtype_t>(-1)};
  const float inf = std::numeric_limits<float>::infinity();
  auto rare = [&] { return random() % 11 == 0; };
  normjit_kernel_spec_t spec{};
  spec.op = rare() ? static_cast<normjit_op_t>(5)
                   : pick(random, std::vector<normjit_op_t>{
                                      NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM});
  spec.cols = rare() ? pick(random, std::vector<int64_t>{
                                        (int64_t(1) << 30) + 1, 0, -5})
                     : pick(random, std::vector<int64_t>{
                                        1, 3, 16, 768, 4097, int64_t(1) << 30});
  for (normjit_dtype_t *dtype : {&spec.x_dtype, &spec.y_dtype,
                                 &spec.residual_dtype, &spec.sum_dtype,
                                 &spec.gamma_dtype, &spec.beta_dtype})
    *dtype = rare() ? pick(random, badDtypes) : pick(random, dtypes);
  auto flag = [&] { return static_cast<int>(random() % 2) * (rare() ? 2 : 1); };
  spec.has_residual = flag();
  spec.store_sum = spec.has_residual && !rare() ? 1 : flag();
  spec.has_gamma = flag();
  spec.has_beta = flag();
  spec.store_mean = spec.op == NORMJIT_RMS_NORM && !rare() ? 0 : flag();
  spec.store_rstd = flag();
  spec.epsilon =
      rare() ? pick(random, std::vector<float>{0.0f, -1e-5f, inf, -inf,
                                               std::nanf("")})
             : pick(random, std::vector<float>{
                                1e-5f, 1e-6f, 1e-45f,
                                std::numeric_limits<float>::max()});
  return spec;
}

} // namespace

TEST(ValidateTest, QuickAndFieldByFieldChecksAgree) {
  // Buffers the pointers are drawn from (never dereferenced): two aligned
  // ones, misaligned ones and one at the top of the address space, whose
  // rows' byte offsets overflow.
  alignas(64) static char bufferA[256], bufferB[256], bufferC[256];
  std::vector<const void *> pointers = {
      nullptr,     nullptr,     bufferA,     bufferB,
      bufferC,     bufferA,     bufferA + 1, bufferA + 2,
      bufferB + 4, bufferB + 6, reinterpret_cast<const void *>(
                                    std::numeric_limits<uintptr_t>::max() &
                                    ~uintptr_t(63))};
  std::mt19937_64 random(20261128);
  int accepted = 0, rejected = 0, specsAccepted = 0;
  for (int i = 0; i < 200000; ++i) {
    normjit_kernel_spec_t spec = drawSpec(random);
    normjit_status_t quickSpec = normjit_kernel_spec_validate(&spec);
    ASSERT_EQ(quickSpec, validateSpecByField(&spec)) << "draw " << i;
    specsAccepted += quickSpec == NORMJIT_OK;

    int64_t cols = spec.cols;
    // Mostly what the spec asks for (a buffer where it needs one, NULL
    // where not), so that arguments pass often; one field in about 14
    // drawn from every pointer, aliases and misaligned ones included.
    auto rare = [&] { return random() % 14 == 0; };
    auto pointer = [&](bool used) -> const void * {
      if (rare())
        return pick(random, pointers);
      return used ? pick(random, std::vector<const void *>{bufferA, bufferB,
                                                           bufferC})
                  : nullptr;
    };
    auto stride = [&] {
      return rare() ? pick(random, std::vector<int64_t>{
                                       cols - 1, -1,
                                       std::numeric_limits<int64_t>::max() / 3})
                    : pick(random, std::vector<int64_t>{0, 0, cols, cols + 3});
    };
    normjit_run_args_t args{};
    args.rows = rare() ? pick(random, std::vector<int64_t>{
                                          -1, int64_t(1) << 40,
                                          std::numeric_limits<int64_t>::max()})
                       : pick(random, std::vector<int64_t>{0, 1, 5, 1024});
    args.x = pointer(true);
    args.x_stride = stride();
    args.residual = pointer(spec.has_residual);
    args.residual_stride = stride();
    args.gamma = pointer(spec.has_gamma);
    args.beta = pointer(spec.has_beta);
    args.y = const_cast<void *>(pointer(true));
    args.y_stride = stride();
    args.sum = const_cast<void *>(pointer(spec.store_sum));
    args.sum_stride = stride();
    args.mean = static_cast<float *>(const_cast<void *>(pointer(spec.store_mean)));
    args.rstd = static_cast<float *>(const_cast<void *>(pointer(spec.store_rstd)));
    normjit_status_t quick = normjit_run_args_validate(&spec, &args);
    std::string quickMessage = quick == NORMJIT_OK ? "" : normjit_last_error();
    normjit_status_t byField = validateRunArgsByField(&spec, &args);
    ASSERT_EQ(quick, byField)
        << "draw " << i << ": "
        << (quick == NORMJIT_OK ? normjit_last_error() : quickMessage.c_str());
    if (quick != NORMJIT_OK) {
      EXPECT_EQ(quickMessage, normjit_last_error()) << "draw " << i;
    }
    (quick == NORMJIT_OK ? accepted : rejected)++;
  }
  // Both verdicts are drawn often (the draws reach the quick path). (The
  // three buffers are adjacent and small: rows that run past one into the
  // next, outputs over inputs, are partial overlaps, refused by both.)
  EXPECT_GT(specsAccepted, 20000);
  EXPECT_GT(accepted, 2000);
  EXPECT_GT(rejected, 5000);
  EXPECT_EQ(normjit_kernel_spec_validate(nullptr), validateSpecByField(nullptr));
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_LAYER_NORM, 8);
  EXPECT_EQ(normjit_run_args_validate(&spec, nullptr),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(normjit_run_args_validate(nullptr, nullptr),
            NORMJIT_INVALID_ARGUMENT);
}
