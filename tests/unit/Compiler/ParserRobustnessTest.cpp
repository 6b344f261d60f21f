//===- ParserRobustnessTest.cpp - malformed norm IR never crashes ---------===//
//
// Part of normjit. Feeds the parser and verifiers every prefix of the
// round-trip test files and deterministic byte mutations of them: each input
// must either parse and verify or fail with a located diagnostic, never
// crash, hang or fail without saying why.
//
//===----------------------------------------------------------------------===//

#include "normjit/InitAll.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>

using namespace mlir;

namespace {
std::string readLitFile(const std::string &name) {
  auto buffer =
      llvm::MemoryBuffer::getFile(std::string(NORMJIT_LIT_DIR) + "/" + name);
  if (!buffer)
    return {};
  return (*buffer)->getBuffer().str();
}

/// Outcome of parsing one input.
struct Outcome {
  bool ok = false;
  unsigned errors = 0;
  bool allErrorsLocated = true;
};

Outcome parseAndVerify(MLIRContext &context, const std::string &text) {
  Outcome outcome;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error) {
      ++outcome.errors;
      if (isa<UnknownLoc>(diag.getLocation()))
        outcome.allErrorsLocated = false;
    }
    return success();
  });
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(text, ParserConfig(&context), "input.mlir");
  outcome.ok = module && succeeded(verify(*module));
  return outcome;
}

class ParserRobustnessTest : public ::testing::TestWithParam<const char *> {
protected:
  ParserRobustnessTest() {
    DialectRegistry registry;
    normjit::registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }
  MLIRContext context;
};
} // namespace

TEST_P(ParserRobustnessTest, EveryPrefixParsesOrFailsWithALocation) {
  std::string source = readLitFile(GetParam());
  ASSERT_FALSE(source.empty()) << "cannot read " << GetParam();
  ASSERT_TRUE(parseAndVerify(context, source).ok) << "the full file parses";
  unsigned failures = 0;
  for (size_t length = 0; length < source.size(); ++length) {
    Outcome outcome = parseAndVerify(context, source.substr(0, length));
    if (!outcome.ok) {
      ++failures;
      ASSERT_GT(outcome.errors, 0u) << "prefix " << length << " failed silently";
      ASSERT_TRUE(outcome.allErrorsLocated) << "prefix " << length;
    }
  }
  EXPECT_GT(failures, 0u);
  std::printf("%zu prefixes, %u rejected\n", source.size(), failures);
}

TEST_P(ParserRobustnessTest, ByteMutationsParseOrFailWithALocation) {
  std::string source = readLitFile(GetParam());
  ASSERT_FALSE(source.empty());
  std::mt19937 rng(20261126);
  const std::string alphabet = "0123456789<>()[]{},:=%#!-?x. \n\"fbiunormcpg";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string mutated = source;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % mutated.size();
      switch (rng() % 3) {
      case 0:
        mutated[pos] = alphabet[rng() % alphabet.size()];
        break;
      case 1:
        mutated.erase(pos, 1 + rng() % 8);
        break;
      default:
        mutated.insert(pos, 1, alphabet[rng() % alphabet.size()]);
        break;
      }
      if (mutated.empty())
        mutated = " ";
    }
    Outcome outcome = parseAndVerify(context, mutated);
    if (!outcome.ok) {
      ASSERT_GT(outcome.errors, 0u) << "trial " << trial << ":\n" << mutated;
      ASSERT_TRUE(outcome.allErrorsLocated) << "trial " << trial;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(RoundTripFiles, ParserRobustnessTest,
                         ::testing::Values("Dialect/Norm/robustness-seed.mlir"));
