//===- normjit.cpp - the normjit command-line tool ------------------------===//
//
// Part of normjit. Dispatches to the subcommands and is the one place where
// an llvm::Error becomes exit code 1 and a single `normjit: error:` line.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

using namespace normjit::tool;

namespace {

/// A subcommand: its name, what it does, and its entry point.
struct Command {
  const char *name;
  const char *summary;
  llvm::Error (*run)(llvm::ArrayRef<std::string>, llvm::raw_ostream &);
};

const Command kCommands[] = {
    {"run", "compute a norm on .npy inputs and write .npy outputs", runCommand},
    {"bench", "time one kernel spec and compare its bandwidth with memcpy",
     benchCommand},
    {"tune", "tune one spec, or a sweep of specs, into the tuning cache",
     tuneCommand},
    {"cache", "show, locate, merge or clear the tuning cache", cacheCommand},
    {"aot",
     "compile kernels ahead of time into objects, a header and a manifest",
     aotCommand},
    {"devices", "list the devices kernels can be compiled for", devicesCommand},
};

void printUsage(llvm::raw_ostream &os) {
  os << "USAGE: normjit <command> [options]\n\n"
        "A JIT compiler for LayerNorm and RMSNorm kernels.\n\n"
        "COMMANDS:\n";
  for (const Command &command : kCommands)
    os << "  " << llvm::left_justify(command.name, 9) << command.summary
       << "\n";
  os << "\nRun 'normjit <command> --help' (or 'normjit help <command>') for "
        "the options of a command,\n'normjit --version' for the versions.\n";
}

/// The message as one line: its lines, trimmed, joined with "; ".
std::string toOneLine(llvm::StringRef message) {
  llvm::SmallVector<llvm::StringRef> lines;
  message.split(lines, '\n');
  std::string text;
  for (llvm::StringRef line : lines) {
    line = line.trim();
    if (line.empty())
      continue;
    if (!text.empty())
      text += "; ";
    text += line.str();
  }
  return text.empty() ? "unknown error" : text;
}

/// Prints `error` as "normjit: error: <message>" and returns exit code 1.
int reportError(llvm::Error error) {
  std::string message = toOneLine(llvm::toString(std::move(error)));
  llvm::outs().flush();
  llvm::WithColor::error(llvm::errs(), "normjit") << message << "\n";
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    printUsage(llvm::errs());
    return 1;
  }
  if (args[0] == "--version") {
    // What the tuning cache keys entries by, besides the device.
    llvm::outs() << "normjit " << NORMJIT_VERSION_STRING << " (LLVM "
                 << LLVM_VERSION_STRING << ")\n";
    return 0;
  }
  if (args[0] == "help" && args.size() == 2) {
    // `normjit help run` is `normjit run --help`.
    args = {args[1], "--help"};
  } else if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    printUsage(llvm::outs());
    return 0;
  }
  const Command *command = llvm::find_if(
      kCommands, [&](const Command &c) { return args[0] == c.name; });
  if (command == std::end(kCommands)) {
    llvm::StringRef what = llvm::StringRef(args[0]).starts_with("-")
                               ? "expected a command before options, got"
                               : "unknown command";
    llvm::WithColor::error(llvm::errs(), "normjit")
        << what << " '" << args[0] << "'\n\n";
    printUsage(llvm::errs());
    return 1;
  }
  llvm::Error error =
      command->run(llvm::ArrayRef(args).drop_front(), llvm::outs());
  if (error)
    return reportError(std::move(error));
  llvm::outs().flush();
  if (llvm::outs().has_error()) {
    llvm::outs().clear_error();
    return reportError(normjit::tool::makeToolError("cannot write to stdout"));
  }
  return 0;
}
