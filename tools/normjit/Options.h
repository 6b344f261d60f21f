//===- Options.h - the command-line option parser of normjit ----*- C++ -*-===//
//
// Part of normjit. A small, non-global parser for the options of one
// subcommand (`--name value`, `--name=value`, flags and `--no-` flags), with
// errors that name the offending option, and the help text built from the
// same table.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TOOLS_NORMJIT_OPTIONS_H
#define NORMJIT_TOOLS_NORMJIT_OPTIONS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <optional>
#include <string>

namespace normjit::tool {

/// What an option takes.
enum class OptionKind {
  Flag,          ///< `--name`; no value
  NegatableFlag, ///< `--name` or `--no-name`
  String,        ///< `--name TEXT`
  Int,           ///< `--name N`, a decimal int64_t
  Double,        ///< `--name X`, a floating-point number
};

/// One option of a subcommand.
struct OptionInfo {
  const char *name; ///< without the leading "--"
  OptionKind kind;
  const char *valueName; ///< shown in help, e.g. "FILE"; "" for flags
  const char *help;      ///< one line
};

/// The options found on one command line, with their values already parsed.
class ParsedOptions {
public:
  /// Whether `--help` or `-h` was given (nothing else is then checked).
  bool helpRequested() const { return help; }
  /// Whether the option (or, for a negatable flag, its `--no-` form) was
  /// given.
  bool has(llvm::StringRef name) const { return values.count(name) != 0; }
  /// The text of a String option, if given.
  std::optional<std::string> getString(llvm::StringRef name) const;
  /// The value of an Int option, or `otherwise`.
  int64_t getInt(llvm::StringRef name, int64_t otherwise) const;
  /// The value of a Double option, or `otherwise`.
  double getDouble(llvm::StringRef name, double otherwise) const;
  /// Whether a flag is on: true when given, false for its `--no-` form,
  /// `otherwise` when absent.
  bool getFlag(llvm::StringRef name, bool otherwise) const;

private:
  friend class OptionParser;
  struct Value {
    std::string text;
    int64_t integer = 0;
    double real = 0;
    bool flag = false;
  };
  bool help = false;
  llvm::StringMap<Value> values;
};

/// Parses the arguments of one subcommand against its option table.
class OptionParser {
public:
  /// `command` names the subcommand in messages, e.g. "run".
  OptionParser(llvm::StringRef command, llvm::ArrayRef<OptionInfo> options)
      : command(command), options(options) {}

  /// Parses `args` (the words after the subcommand). Fails on unknown
  /// options, missing or unexpected values, malformed numbers, repeated
  /// options and positional arguments.
  llvm::Expected<ParsedOptions> parse(llvm::ArrayRef<std::string> args) const;

  /// Prints "USAGE: ...", the description and the option table.
  void printHelp(llvm::raw_ostream &os, llvm::StringRef synopsis,
                 llvm::StringRef description) const;

private:
  const OptionInfo *find(llvm::StringRef name, bool &negated) const;

  std::string command;
  llvm::ArrayRef<OptionInfo> options;
};

/// An error with `message` as its text.
llvm::Error makeToolError(const llvm::Twine &message);

/// `--threads N`, CPU worker threads in [0, 1024] (0: all cores); 0 when
/// absent.
llvm::Expected<int> getThreadsOption(const ParsedOptions &options);

} // namespace normjit::tool

#endif // NORMJIT_TOOLS_NORMJIT_OPTIONS_H
