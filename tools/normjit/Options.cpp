//===- Options.cpp - the command-line option parser of normjit ------------===//
//
// Part of normjit. Implements OptionParser and ParsedOptions.
//
//===----------------------------------------------------------------------===//

#include "Options.h"

#include "normjit/JIT/KernelCompiler.h"

#include "llvm/Support/Format.h"

#include <algorithm>
#include <vector>

using namespace normjit::tool;

llvm::Error normjit::tool::makeToolError(const llvm::Twine &message) {
  return normjit::makeError(NORMJIT_INVALID_ARGUMENT, message);
}

llvm::Expected<int>
normjit::tool::getThreadsOption(const ParsedOptions &options) {
  int64_t threads = options.getInt("threads", 0);
  if (threads < 0 || threads > 1024)
    return makeToolError("--threads must be in [0, 1024], got " +
                         llvm::Twine(threads));
  return static_cast<int>(threads);
}

std::optional<std::string>
ParsedOptions::getString(llvm::StringRef name) const {
  auto it = values.find(name);
  if (it == values.end())
    return std::nullopt;
  return it->second.text;
}

int64_t ParsedOptions::getInt(llvm::StringRef name, int64_t otherwise) const {
  auto it = values.find(name);
  return it == values.end() ? otherwise : it->second.integer;
}

double ParsedOptions::getDouble(llvm::StringRef name, double otherwise) const {
  auto it = values.find(name);
  return it == values.end() ? otherwise : it->second.real;
}

bool ParsedOptions::getFlag(llvm::StringRef name, bool otherwise) const {
  auto it = values.find(name);
  return it == values.end() ? otherwise : it->second.flag;
}

const OptionInfo *OptionParser::find(llvm::StringRef name,
                                     bool &negated) const {
  negated = false;
  for (const OptionInfo &option : options)
    if (name == option.name)
      return &option;
  if (name.consume_front("no-"))
    for (const OptionInfo &option : options)
      if (option.kind == OptionKind::NegatableFlag && name == option.name) {
        negated = true;
        return &option;
      }
  return nullptr;
}

llvm::Expected<ParsedOptions>
OptionParser::parse(llvm::ArrayRef<std::string> args) const {
  ParsedOptions parsed;
  // Help wins over every other problem of the command line.
  for (const std::string &arg : args)
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      return parsed;
    }

  std::string seeHelp = "(see 'normjit " + command + " --help')";
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef arg = args[i];
    if (!arg.starts_with("--") || arg == "--") {
      if (arg.starts_with("-") && arg.size() > 1)
        return makeToolError("unknown option '" + arg + "' for 'normjit " +
                             command + "' " + seeHelp);
      return makeToolError("unexpected argument '" + arg + "' for 'normjit " +
                           command + "' " + seeHelp);
    }
    auto [name, inlineValue] = arg.drop_front(2).split('=');
    bool hasInlineValue = arg.contains('=');
    bool negated = false;
    const OptionInfo *option = find(name, negated);
    std::string display = ("--" + name).str();
    if (!option)
      return makeToolError("unknown option '" + display + "' for 'normjit " +
                           command + "' " + seeHelp);
    if (parsed.values.count(option->name))
      return makeToolError("option '--" + llvm::Twine(option->name) +
                           "' is given more than once");

    ParsedOptions::Value value;
    if (option->kind == OptionKind::Flag ||
        option->kind == OptionKind::NegatableFlag) {
      if (hasInlineValue)
        return makeToolError("option '" + display + "' takes no value");
      value.flag = !negated;
      parsed.values[option->name] = std::move(value);
      continue;
    }

    llvm::StringRef text;
    if (hasInlineValue) {
      text = inlineValue;
    } else {
      // A following "--word" is the next option, not a value: "--x --out y"
      // forgot the value of --x. Values that start with "--" can still be
      // given as "--name=--value".
      if (i + 1 >= args.size() ||
          llvm::StringRef(args[i + 1]).starts_with("--"))
        return makeToolError("option '" + display + "' needs a value (" +
                             option->valueName + ")");
      text = args[++i];
    }
    value.text = text.str();
    switch (option->kind) {
    case OptionKind::Int:
      if (text.getAsInteger(10, value.integer))
        return makeToolError("option '" + display +
                             "' expects an integer, got '" + text + "'");
      break;
    case OptionKind::Double: {
      // getAsDouble rejects trailing text; NaN and infinities are left to
      // the range checks of each command.
      if (text.trim() != text || text.getAsDouble(value.real))
        return makeToolError("option '" + display +
                             "' expects a number, got '" + text + "'");
      break;
    }
    case OptionKind::String:
      if (text.empty())
        return makeToolError("option '" + display + "' needs a non-empty " +
                             option->valueName);
      break;
    case OptionKind::Flag:
    case OptionKind::NegatableFlag:
      break;
    }
    parsed.values[option->name] = std::move(value);
  }
  return parsed;
}

void OptionParser::printHelp(llvm::raw_ostream &os, llvm::StringRef synopsis,
                             llvm::StringRef description) const {
  os << "USAGE: " << synopsis << "\n\n" << description << "\n\nOPTIONS:\n";
  std::vector<std::string> lefts;
  size_t width = std::string("--help").size();
  for (const OptionInfo &option : options) {
    std::string left = std::string("--") + option.name;
    if (option.kind == OptionKind::NegatableFlag)
      left = std::string("--[no-]") + option.name;
    if (*option.valueName)
      left += std::string(" ") + option.valueName;
    width = std::max(width, left.size());
    lefts.push_back(std::move(left));
  }
  for (size_t i = 0; i < options.size(); ++i)
    os << "  " << llvm::left_justify(lefts[i], width) << "  " << options[i].help
       << "\n";
  os << "  " << llvm::left_justify("--help", width) << "  "
     << "print this help and exit\n";
}
