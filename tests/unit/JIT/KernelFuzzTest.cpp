//===- KernelFuzzTest.cpp - random specs and configs against the reference
//-===//
//
// Part of normjit. The matrix of KernelTest.cpp ties the dtypes of residual,
// gamma and beta together and picks its shapes by hand; this test draws
// cases from a fixed seed instead: every buffer's dtype on its own, any
// subset of the optional operands, column counts from 1 to 20000 (more of
// them near the vector, L1 and row-pair boundaries), 0 to 40 rows, padded
// strides, normal, constant, special and far-mean rows, and configs from
// the whole knob space (any vector width, 1-16 accumulators, either
// algorithm, streaming stores, split residual, rows per task, threads),
// and y or the sum written over the input they replace.
// Each case is JIT-compiled and checked against the fp64 reference with the
// tolerances of the matrix. The cases are the same on every run; a case's
// name says everything needed to rebuild it. NORMJIT_FUZZ_SEED and
// NORMJIT_FUZZ_CASES draw another set, to search for bugs by hand.
//
//===----------------------------------------------------------------------===//

#include "../KernelCases.h"

#include "normjit/JIT/Context.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>

using namespace normjit;
using namespace normjit::test;

namespace {

/// Buffers that share memory (same dtype and stride): y over x, the sum
/// over x or over the residual (a residual stream updated in place).
enum class InPlace { None, YIsX, SumIsX, SumIsResidual };

struct FuzzCase {
  normjit_kernel_spec_t spec;
  int64_t rows;
  int64_t padding;
  Data data;
  InPlace inPlace;
  std::optional<CpuConfig> config;
  std::string name;
};

constexpr unsigned kSeed = 20261127;
constexpr unsigned kCases = 240;

normjit_dtype_t drawDType(std::mt19937 &rng) {
  static const normjit_dtype_t dtypes[] = {NORMJIT_F32, NORMJIT_F16,
                                           NORMJIT_BF16};
  return dtypes[rng() % 3];
}

int64_t drawCols(std::mt19937 &rng) {
  auto between = [&](int64_t lo, int64_t hi) {
    return lo +
           static_cast<int64_t>(rng() % static_cast<unsigned>(hi - lo + 1));
  };
  switch (rng() % 10) {
  case 0:
  case 1:
  case 2:
    return between(1, 70); // shorter than a few vectors
  case 3:
  case 4:
    return between(71, 600);
  case 5:
  case 6:
    return between(601, 3000);
  case 7: // where gamma, beta and a row start to overflow L1 (row pairs)
    return between(1900, 2200) * (1 + static_cast<int64_t>(rng() % 2));
  case 8:
    return between(4000, 4200);
  default:
    return between(3001, 20000);
  }
}

FuzzCase drawCase(std::mt19937 &rng, unsigned index) {
  normjit_op_t op = rng() % 2 ? NORMJIT_LAYER_NORM : NORMJIT_RMS_NORM;
  int64_t cols = drawCols(rng);
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
  spec.x_dtype = drawDType(rng);
  spec.y_dtype = drawDType(rng);
  spec.has_residual = rng() % 2;
  spec.residual_dtype = drawDType(rng);
  spec.store_sum = spec.has_residual && rng() % 2;
  spec.sum_dtype = drawDType(rng);
  spec.has_gamma = rng() % 4 != 0;
  spec.gamma_dtype = drawDType(rng);
  spec.has_beta = op == NORMJIT_LAYER_NORM && rng() % 3 != 0;
  spec.beta_dtype = drawDType(rng);
  spec.store_mean = op == NORMJIT_LAYER_NORM && rng() % 3 == 0;
  spec.store_rstd = rng() % 3 == 0;
  static const float epsilons[] = {1e-5f, 1e-6f, 1e-12f, 0.1f};
  spec.epsilon = epsilons[rng() % 4];

  // Rows: mostly a few (decode, odd counts for row pairs), sometimes many
  // (several thread-pool tasks), at most about 160K elements.
  int64_t rows = rng() % 4 == 0 ? static_cast<int64_t>(rng() % 41)
                                : static_cast<int64_t>(rng() % 8);
  rows = std::min<int64_t>(rows, std::max<int64_t>(1, 160000 / cols));
  int64_t padding = rng() % 3 == 0 ? 1 + static_cast<int64_t>(rng() % 37) : 0;

  Data data = Data::Normal;
  switch (rng() % 8) {
  case 0:
    data = Data::Constant;
    break;
  case 1:
    if (rows >= 6 && cols >= 3)
      data = Data::Special;
    break;
  case 2:
    // The far-mean check compares the unscaled f32 output of the row alone
    // with a careful f32 LayerNorm of it.
    if (op == NORMJIT_LAYER_NORM) {
      data = Data::FarMean;
      spec.has_residual = spec.store_sum = false;
      spec.has_gamma = spec.has_beta = false;
      spec.y_dtype = NORMJIT_F32;
    }
    break;
  default:
    break;
  }

  InPlace inPlace = InPlace::None;
  switch (rng() % 6) {
  case 0:
    if (data != Data::FarMean || spec.x_dtype == NORMJIT_F32) {
      spec.y_dtype = spec.x_dtype;
      inPlace = InPlace::YIsX;
    }
    break;
  case 1:
    if (spec.store_sum) {
      spec.sum_dtype = spec.x_dtype;
      inPlace = InPlace::SumIsX;
    }
    break;
  case 2:
    if (spec.store_sum) {
      spec.sum_dtype = spec.residual_dtype;
      inPlace = InPlace::SumIsResidual;
    }
    break;
  default:
    break;
  }

  std::optional<CpuConfig> config;
  if (rng() % 2) {
    CpuConfig c;
    c.vectorWidth = int64_t(1) << (rng() % 7); // 1 to 64
    c.accumulators = 1 + static_cast<int64_t>(rng() % 8);
    if (rng() % 8 == 0)
      c.accumulators = 9 + static_cast<int64_t>(rng() % 8);
    // Keep the unrolled statistics loop to at most 256 lanes.
    while (c.vectorWidth * c.accumulators > 256)
      c.accumulators = std::max<int64_t>(1, c.accumulators / 2);
    c.welford = op == NORMJIT_LAYER_NORM && rng() % 2;
    c.streamingStores = rng() % 4 == 0;
    c.fuseResidual = rng() % 3 != 0;
    c.rowsPerTask = 1 + static_cast<int64_t>(rng() % 9);
    c.threads = static_cast<int>(rng() % 3);
    config = c;
  }

  std::ostringstream name;
  name << "n" << index << "_" << describeCase(spec, rows, padding, data);
  static const char *inPlaceNames[] = {"", "_y_is_x", "_sum_is_x",
                                       "_sum_is_residual"};
  name << inPlaceNames[static_cast<int>(inPlace)];
  if (spec.epsilon != 1e-5f)
    name << "_eps"
         << (spec.epsilon == 1e-6f    ? "1e6"
             : spec.epsilon == 1e-12f ? "1e12"
                                      : "0p1");
  if (config)
    name << "_v" << config->vectorWidth << "a" << config->accumulators
         << (config->welford ? "w" : "")
         << (config->streamingStores ? "nt" : "")
         << (config->fuseResidual ? "" : "split") << "t" << config->rowsPerTask
         << "th" << config->threads;
  return {spec, rows, padding, data, inPlace, config, name.str()};
}

unsigned fromEnv(const char *name, unsigned fallback) {
  const char *text = std::getenv(name);
  return text && *text ? static_cast<unsigned>(std::strtoul(text, nullptr, 10))
                       : fallback;
}

std::vector<FuzzCase> allFuzzCases() {
  std::mt19937 rng(fromEnv("NORMJIT_FUZZ_SEED", kSeed));
  std::vector<FuzzCase> cases;
  unsigned count = fromEnv("NORMJIT_FUZZ_CASES", kCases);
  for (unsigned i = 0; i < count; ++i)
    cases.push_back(drawCase(rng, i));
  return cases;
}

Context &fuzzContext() {
  static Context *context = new Context();
  return *context;
}

class KernelFuzzTest : public ::testing::TestWithParam<FuzzCase> {};

} // namespace

TEST_P(KernelFuzzTest, MatchesReference) {
  const FuzzCase &c = GetParam();
  auto kernel = fuzzContext().getKernel(c.spec, c.config);
  ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
  HostCall call(c.spec, c.rows, c.spec.cols + c.padding, c.data, c.name);
  normjit_run_args_t args = call.args();
  // In place: the output buffer starts as a copy of the input it replaces
  // (padding included), so that call.x and call.residual keep the inputs
  // for the reference.
  auto share = [&](Buffer &output, const Buffer &input) {
    std::memcpy(output.data(), input.data(), call.rowBytes(input.getDType()));
    return output.data();
  };
  switch (c.inPlace) {
  case InPlace::None:
    break;
  case InPlace::YIsX:
    args.x = args.y = share(call.y, call.x);
    break;
  case InPlace::SumIsX:
    args.x = args.sum = share(call.sum, call.x);
    break;
  case InPlace::SumIsResidual:
    args.residual = args.sum = share(call.sum, call.residual);
    break;
  }
  llvm::Error error = (*kernel)->run(args);
  ASSERT_FALSE(!!error) << llvm::toString(std::move(error));
  checkOutputs(call, c.name);
}

INSTANTIATE_TEST_SUITE_P(Seeded, KernelFuzzTest,
                         ::testing::ValuesIn(allFuzzCases()),
                         [](const ::testing::TestParamInfo<FuzzCase> &info) {
                           return info.param.name;
                         });
