//===- normjit-opt.cpp - the mlir-opt-style driver for normjit ------------===//
//
// Part of normjit. Parses, verifies, transforms and prints `norm` IR with the
// dialects and passes normjit uses, and nothing else.
//
//===----------------------------------------------------------------------===//

#include "normjit/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  normjit::registerAllPasses();
  mlir::DialectRegistry registry;
  normjit::registerAllDialects(registry);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "normjit optimizer driver\n", registry));
}
