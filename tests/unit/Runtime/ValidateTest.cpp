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

// The overlap check is exact: over random layouts in one small arena
// (rows of x, y and the sum at any element offsets and strides, y in f32
// or bf16, gamma anywhere), a call is refused exactly when an output
// shares a byte with another buffer, except an output that is an input's
// very buffer element for element (in place); both checks agree.
TEST(ValidateTest, OverlapVerdictsMatchTheBytes) {
  alignas(64) static char arena[4096];
  std::mt19937_64 random(20261128);
  int refused = 0, accepted = 0, interleaved = 0;
  for (int draw = 0; draw < 30000; ++draw) {
    int64_t cols = 1 + static_cast<int64_t>(random() % 8);
    int64_t rows = 1 + static_cast<int64_t>(random() % 6);
    normjit_kernel_spec_t spec =
        normjit_kernel_spec_default(NORMJIT_RMS_NORM, cols);
    spec.has_gamma = 1;
    spec.has_residual = random() % 2;
    spec.store_sum = spec.has_residual && random() % 2;
    spec.y_dtype = random() % 2 ? NORMJIT_BF16 : NORMJIT_F32;
    struct Buffer {
      int64_t offset = -1; // bytes into the arena; -1: absent
      int64_t stride = 0;  // elements
      int64_t elementBytes = 4;
      int64_t rows = 0;
    };
    auto place = [&](int64_t elementBytes, bool rowBuffer) {
      Buffer buffer;
      buffer.elementBytes = elementBytes;
      buffer.rows = rowBuffer ? rows : 1;
      buffer.stride =
          rowBuffer ? cols + static_cast<int64_t>(random() % (2 * cols + 1))
                    : cols;
      // Mostly near the start, so that buffers often meet.
      buffer.offset =
          static_cast<int64_t>(random() % 96) / elementBytes * elementBytes;
      return buffer;
    };
    Buffer x = place(4, true);
    Buffer y = place(static_cast<int64_t>(normjit_dtype_size(spec.y_dtype)),
                     true);
    Buffer gamma = place(4, false);
    Buffer residual, sum;
    if (spec.has_residual)
      residual = place(4, true);
    if (spec.store_sum)
      sum = place(4, true);
    // Now and then in place, exactly.
    if (random() % 8 == 0 && spec.y_dtype == NORMJIT_F32) {
      y.offset = x.offset;
      y.stride = x.stride;
    }
    if (spec.store_sum && random() % 4 == 0) {
      sum.offset = residual.offset;
      sum.stride = residual.stride;
    }
    // Who owns each byte: the buffers' bytes, by brute force.
    auto bytesOf = [&](const Buffer &b) {
      std::vector<int64_t> bytes;
      if (b.offset < 0)
        return bytes;
      for (int64_t r = 0; r < b.rows; ++r)
        for (int64_t c = 0; c < cols * b.elementBytes; ++c)
          bytes.push_back(b.offset + r * b.stride * b.elementBytes + c);
      return bytes;
    };
    auto meet = [&](const Buffer &a, const Buffer &b) {
      if (a.offset < 0 || b.offset < 0)
        return false;
      std::vector<char> seen(sizeof arena, 0);
      for (int64_t byte : bytesOf(a))
        seen[static_cast<size_t>(byte)] = 1;
      for (int64_t byte : bytesOf(b))
        if (seen[static_cast<size_t>(byte)])
          return true;
      return false;
    };
    auto inPlace = [&](const Buffer &out, const Buffer &in) {
      return out.offset == in.offset && out.stride == in.stride &&
             out.elementBytes == in.elementBytes;
    };
    bool expectRefused =
        (meet(y, x) && !inPlace(y, x)) ||
        (meet(y, residual) && !inPlace(y, residual)) || meet(y, gamma) ||
        meet(y, sum) || (meet(sum, x) && !inPlace(sum, x)) ||
        (meet(sum, residual) && !inPlace(sum, residual)) || meet(sum, gamma);
    normjit_run_args_t args{};
    args.rows = rows;
    auto at = [&](const Buffer &b) -> void * {
      return b.offset < 0 ? nullptr : arena + b.offset;
    };
    args.x = at(x);
    args.x_stride = x.stride;
    args.y = at(y);
    args.y_stride = y.stride;
    args.gamma = at(gamma);
    args.residual = at(residual);
    args.residual_stride = residual.stride;
    args.sum = at(sum);
    args.sum_stride = sum.stride;
    normjit_status_t quick = normjit_run_args_validate(&spec, &args);
    ASSERT_EQ(quick, validateRunArgsByField(&spec, &args)) << "draw " << draw;
    ASSERT_EQ(quick != NORMJIT_OK, expectRefused)
        << "draw " << draw << ": " << (quick ? normjit_last_error() : "")
        << " cols " << cols << " rows " << rows << " x " << x.offset << "/"
        << x.stride << " y " << y.offset << "/" << y.stride << "/"
        << y.elementBytes << " gamma " << gamma.offset;
    (expectRefused ? refused : accepted)++;
    // Accepted layouts whose extents cross: rows that interleave.
    if (!expectRefused && y.offset != x.offset &&
        y.offset < x.offset + (rows - 1) * x.stride * 4 + cols * 4 &&
        x.offset < y.offset + (rows - 1) * y.stride * y.elementBytes +
                       cols * y.elementBytes)
      ++interleaved;
  }
  EXPECT_GT(refused, 3000);
  EXPECT_GT(accepted, 3000);
  EXPECT_GT(interleaved, 100);
}
