//===- ConfigAttrTest.cpp - #norm.config from C++ -------------------------===//
//
// Part of normjit. The tuner builds #norm.config from C++: check that what it
// builds prints, parses back to the same attribute, and that impossible
// combinations are refused with a diagnostic rather than built.
//
//===----------------------------------------------------------------------===//

#include "normjit/Dialect/Norm/IR/NormAttrs.h"
#include "normjit/Dialect/Norm/IR/NormDialect.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace normjit::norm;

namespace {
class ConfigAttrTest : public ::testing::Test {
protected:
  ConfigAttrTest() { context.loadDialect<NormDialect>(); }

  /// Builds a config with getChecked; returns null and the diagnostic text
  /// when the verifier refuses it.
  ConfigAttr build(Backend backend, std::optional<int64_t> vectorWidth,
                   std::optional<int64_t> threadsPerRow,
                   std::optional<int64_t> rowsPerBlock,
                   std::optional<int64_t> accumulators = std::nullopt) {
    diagnostic.clear();
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      diagnostic = diag.str();
      return success();
    });
    Location loc = UnknownLoc::get(&context);
    ConfigKnobs knobs;
    knobs.backend = backend;
    knobs.vectorWidth = vectorWidth;
    knobs.threadsPerRow = threadsPerRow;
    knobs.rowsPerBlock = rowsPerBlock;
    knobs.accumulators = accumulators;
    return getConfigChecked([&] { return emitError(loc); }, &context, knobs);
  }

  std::string print(Attribute attr) {
    std::string text;
    llvm::raw_string_ostream os(text);
    attr.print(os);
    return text;
  }

  MLIRContext context;
  std::string diagnostic;
};
} // namespace

TEST_F(ConfigAttrTest, PrintsAndParsesBack) {
  ConfigAttr cpu = build(Backend::CPU, 16, std::nullopt, std::nullopt, 4);
  ASSERT_TRUE(cpu) << diagnostic;
  EXPECT_EQ(print(cpu), "#norm.config<cpu, vector_width = 16, accumulators = 4>");
  EXPECT_EQ(parseAttribute(print(cpu), &context), cpu);

  ConfigAttr gpu = build(Backend::GPU, 8, 256, 4);
  ASSERT_TRUE(gpu) << diagnostic;
  EXPECT_TRUE(gpu.isGPU());
  EXPECT_EQ(parseAttribute(print(gpu), &context), gpu);
}

TEST_F(ConfigAttrTest, DefaultBuilderLeavesEveryKnobToTheHeuristic) {
  ConfigAttr config = ConfigAttr::get(&context, Backend::CPU);
  EXPECT_TRUE(config.isCPU());
  EXPECT_FALSE(config.getVectorWidth().has_value());
  EXPECT_FALSE(config.getAlgorithm().has_value());
  EXPECT_EQ(print(config), "#norm.config<cpu>");
}

TEST_F(ConfigAttrTest, RefusesImpossibleCombinations) {
  EXPECT_FALSE(build(Backend::CPU, 12, std::nullopt, std::nullopt));
  EXPECT_NE(diagnostic.find("power of two"), std::string::npos) << diagnostic;

  EXPECT_FALSE(build(Backend::GPU, 4, 2048, std::nullopt));
  EXPECT_NE(diagnostic.find("threads_per_row"), std::string::npos);

  EXPECT_FALSE(build(Backend::GPU, 4, 512, 4));
  EXPECT_NE(diagnostic.find("exceeds 1024"), std::string::npos);

  EXPECT_FALSE(build(Backend::CPU, 8, 32, std::nullopt));
  EXPECT_NE(diagnostic.find("gpu knob"), std::string::npos);

  EXPECT_FALSE(build(Backend::GPU, 4, 32, std::nullopt, 2));
  EXPECT_NE(diagnostic.find("cpu knob"), std::string::npos);
}
