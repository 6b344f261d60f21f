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
// algorithm, streaming stores, split residual, rows per task, threads,
// prefetches, row groups),
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

#include <cstring>
#include <optional>
#include <sstream>

using namespace normjit;
using namespace normjit::test;

namespace {

struct FuzzCase {
  DrawnCase drawn;
  std::optional<CpuConfig> config;
  std::string name;
};

constexpr unsigned kSeed = 20261127;
constexpr unsigned kCases = 240;

/// A drawn case with the default config or one drawn from the whole CPU
/// knob space.
FuzzCase drawFuzzCase(std::mt19937 &rng, unsigned index) {
  FuzzCase c{drawCase(rng), std::nullopt, ""};
  if (rng() % 2) {
    CpuConfig config;
    config.vectorWidth = int64_t(1) << (rng() % 7); // 1 to 64
    config.accumulators = 1 + static_cast<int64_t>(rng() % 8);
    if (rng() % 8 == 0)
      config.accumulators = 9 + static_cast<int64_t>(rng() % 8);
    // Keep the unrolled statistics loop to at most 256 lanes.
    while (config.vectorWidth * config.accumulators > 256)
      config.accumulators = std::max<int64_t>(1, config.accumulators / 2);
    config.welford = c.drawn.spec.op == NORMJIT_LAYER_NORM && rng() % 2;
    config.streamingStores = rng() % 4 == 0;
    config.fuseResidual = rng() % 3 != 0;
    config.rowsPerTask = 1 + static_cast<int64_t>(rng() % 9);
    config.threads = static_cast<int>(rng() % 3);
    if (rng() % 3 == 0)
      config.prefetchRows = 1 + static_cast<int64_t>(rng() % 4);
    if (rng() % 3 == 0)
      config.rowGroup = 1 + static_cast<int64_t>(rng() % 9);
    c.config = config;
  }
  std::ostringstream name;
  name << "n" << index << "_" << c.drawn.describe();
  if (c.config)
    name << "_v" << c.config->vectorWidth << "a" << c.config->accumulators
         << (c.config->welford ? "w" : "")
         << (c.config->streamingStores ? "nt" : "")
         << (c.config->fuseResidual ? "" : "split") << "t"
         << c.config->rowsPerTask << "th" << c.config->threads << "p"
         << c.config->prefetchRows << "g" << c.config->rowGroup;
  c.name = name.str();
  return c;
}

std::vector<FuzzCase> allFuzzCases() {
  std::mt19937 rng(unsignedFromEnv("NORMJIT_FUZZ_SEED", kSeed));
  std::vector<FuzzCase> cases;
  unsigned count = unsignedFromEnv("NORMJIT_FUZZ_CASES", kCases);
  for (unsigned i = 0; i < count; ++i)
    cases.push_back(drawFuzzCase(rng, i));
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
  const DrawnCase &d = c.drawn;
  auto kernel = fuzzContext().getKernel(d.spec, c.config);
  ASSERT_TRUE(!!kernel) << llvm::toString(kernel.takeError());
  HostCall call(d.spec, d.rows, d.spec.cols + d.padding, d.data, c.name);
  normjit_run_args_t args = call.args();
  // In place: the output buffer starts as a copy of the input it replaces
  // (padding included), so that call.x and call.residual keep the inputs
  // for the reference.
  auto share = [&](Buffer &output, const Buffer &input) {
    std::memcpy(output.data(), input.data(), call.rowBytes(input.getDType()));
    return output.data();
  };
  switch (d.inPlace) {
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
