//===- FrontendBench.cpp - cost of the IR front end of a JIT compile ------===//
//
// Part of normjit. A JIT request pays for building, verifying and fusing the
// `norm` IR before any code generation: this measures that share of the
// compile latency budget (context creation, parse + verify, the fusion and
// split passes) so it stays small as the dialect grows.
//
//===----------------------------------------------------------------------===//

#include "normjit/InitAll.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <benchmark/benchmark.h>

#include <string>

using namespace mlir;

namespace {
/// A pre-norm block's worth of IR: `count` add + norm pairs.
std::string makeModule(int count, int cols) {
  std::string c = std::to_string(cols);
  std::string t = "memref<?x" + c + "xbf16>";
  std::string text = "func.func @blocks(%x: " + t + ", %r: " + t +
                     ", %s: " + t + ", %y: " + t + ", %g: memref<" + c +
                     "xbf16>) {\n";
  for (int i = 0; i < count; ++i) {
    text += "  norm.add %x, %r -> %s : " + t + ", " + t + " -> " + t + "\n";
    text += "  norm.rms_norm x(%s : " + t + ") gamma(%g : memref<" + c +
            "xbf16>) -> y(%y : " + t + ") eps = 1.0e-06\n";
  }
  return text + "  return\n}\n";
}

void registerOnce() {
  static bool done = [] {
    normjit::registerAllPasses();
    return true;
  }();
  (void)done;
}

void BM_frontend_context(benchmark::State &state) {
  DialectRegistry registry;
  normjit::registerAllDialects(registry);
  for (auto _ : state) {
    MLIRContext context(registry);
    context.loadAllAvailableDialects();
    benchmark::DoNotOptimize(&context);
  }
}

void BM_frontend_parse_verify(benchmark::State &state) {
  DialectRegistry registry;
  normjit::registerAllDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  std::string text = makeModule(static_cast<int>(state.range(0)), 4096);
  for (auto _ : state) {
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(text, ParserConfig(&context));
    if (!module || failed(verify(*module)))
      state.SkipWithError("parse failed");
  }
  state.counters["ops"] = static_cast<double>(2 * state.range(0));
}

void BM_frontend_fuse_split(benchmark::State &state) {
  registerOnce();
  DialectRegistry registry;
  normjit::registerAllDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  std::string text = makeModule(static_cast<int>(state.range(0)), 4096);
  for (auto _ : state) {
    state.PauseTiming();
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(text, ParserConfig(&context));
    PassManager pm(&context);
    if (failed(parsePassPipeline("builtin.module(func.func("
                                 "norm-fuse-residual-add,"
                                 "norm-split-residual-add))",
                                 pm)))
      state.SkipWithError("pipeline failed to parse");
    state.ResumeTiming();
    if (!module || failed(pm.run(*module)))
      state.SkipWithError("passes failed");
  }
}
} // namespace

BENCHMARK(BM_frontend_context)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_frontend_parse_verify)
    ->ArgName("pairs")
    ->Arg(1)
    ->Arg(32)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_frontend_fuse_split)
    ->ArgName("pairs")
    ->Arg(1)
    ->Arg(32)
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
