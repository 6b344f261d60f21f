//===- Cache.cpp - normjit cache show|path|merge|clear --------------------===//
//
// Part of normjit. Looks after the tuning cache from the command line:
// shows its entries (marking those of other devices or builds, which are
// never used here: neither this CPU nor one of this machine's CUDA devices),
// prints its path, joins shard files into it, clears it.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "normjit/runtime/cuda.h"
#include "normjit/tuner/Tuner.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/WithColor.h"

#include <set>

using namespace normjit;
using namespace normjit::tool;
using namespace normjit::tuner;

namespace {
constexpr const char *kCacheUsage =
    "USAGE: normjit cache <show|path|merge|clear> [--cache FILE] [FILES...]\n\n"
    "  show               list the entries (those of another device or build "
    "are\n"
    "                     marked: they are never used here)\n"
    "  path               print the cache file's path\n"
    "  merge FILE...      join other cache files (e.g. the shards of a sweep)\n"
    "                     into this one; for a key tuned in several, the "
    "faster\n"
    "                     measured entry is kept, and said so\n"
    "  clear              remove the cache file (refused for a file that\n"
    "                     is no tuning cache)\n\n"
    "  --cache FILE       the cache (default: $NORMJIT_CACHE_DIR/tuning.toml,\n"
    "                     $XDG_CACHE_HOME/normjit/tuning.toml or\n"
    "                     ~/.cache/normjit/tuning.toml)\n";
} // namespace

llvm::Error normjit::tool::cacheCommand(llvm::ArrayRef<std::string> args,
                                        llvm::raw_ostream &out) {
  if (args.empty())
    return makeToolError("missing cache command: show, path, merge or clear "
                         "(see 'normjit cache --help')");
  if (args[0] == "--help" || args[0] == "-h") {
    out << kCacheUsage;
    return llvm::Error::success();
  }
  std::string action = args[0];
  if (action != "show" && action != "path" && action != "merge" &&
      action != "clear")
    return makeToolError("unknown cache command '" + action +
                         "'; expected show, path, merge or clear");
  std::optional<std::string> cachePath;
  std::vector<std::string> files;
  for (size_t i = 1; i < args.size(); ++i) {
    llvm::StringRef arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out << kCacheUsage;
      return llvm::Error::success();
    }
    if (arg == "--cache" || arg.starts_with("--cache=")) {
      if (cachePath)
        return makeToolError("option '--cache' given twice");
      if (arg == "--cache") {
        if (i + 1 >= args.size())
          return makeToolError("option '--cache' expects a value");
        cachePath = args[++i];
      } else {
        cachePath = arg.drop_front(strlen("--cache=")).str();
      }
      if (cachePath->empty())
        return makeToolError("option '--cache' needs a non-empty FILE");
      continue;
    }
    if (arg.starts_with("-"))
      return makeToolError("unknown option '" + arg + "' for 'normjit cache'");
    files.push_back(arg.str());
  }
  if (action != "merge" && !files.empty())
    return makeToolError("'normjit cache " + action +
                         "' takes no file arguments, got '" + files.front() +
                         "'");
  if (action == "merge" && files.empty())
    return makeToolError("'normjit cache merge' needs the files to merge");

  TuningCache cache(cachePath.value_or(TuningCache::getDefaultPath()));
  if (action == "path") {
    out << cache.getPath() << "\n";
    return llvm::Error::success();
  }
  if (action == "clear") {
    bool existed = llvm::sys::fs::exists(cache.getPath());
    if (llvm::Error error = cache.clear())
      return error;
    out << (existed ? "cleared " : "no tuning cache to clear at ")
        << cache.getPath() << "\n";
    return llvm::Error::success();
  }
  if (llvm::Error error = cache.load())
    return error;
  printCacheWarnings(cache);

  if (action == "merge") {
    // A file named twice, or the cache merged into itself, adds nothing:
    // each is said once, not once an entry.
    std::vector<std::string> distinct;
    for (const std::string &file : files) {
      auto same = [&](const std::string &other) {
        return llvm::sys::fs::equivalent(file, other);
      };
      if (same(cache.getPath())) {
        llvm::WithColor::note(llvm::errs(), "normjit")
            << "'" << file << "' is the cache merged into; skipped\n";
      } else if (auto earlier = llvm::find_if(distinct, same);
                 earlier != distinct.end()) {
        llvm::WithColor::note(llvm::errs(), "normjit")
            << "'" << file << "' is the same file as '" << *earlier
            << "'; merged once\n";
      } else {
        distinct.push_back(file);
      }
    }
    files = std::move(distinct);
    std::vector<std::string> messages;
    llvm::Error merged = cache.merge(files, messages);
    printCacheWarnings(cache);
    if (merged)
      return merged;
    for (const std::string &message : messages)
      out << message << "\n";
    out << "merged " << files.size() << " file(s) into " << cache.getPath()
        << ": " << cache.getEntries().size() << " entries\n";
    return llvm::Error::success();
  }

  // show
  CacheKey here =
      makeCacheKey(normjit_kernel_spec_default(NORMJIT_RMS_NORM, 1), 1);
  std::vector<CacheEntry> entries = cache.getEntries();
  // The devices of this machine: its CPU and, only when there are GPU
  // entries to judge (so that the driver is not loaded otherwise), its
  // CUDA devices.
  std::set<std::string> devices = {here.device};
  if (llvm::any_of(entries, [](const CacheEntry &e) { return e.isGpu(); })) {
    int count = 0;
    if (normjit_cuda_device_count(&count) == NORMJIT_OK) {
      for (int ordinal = 0; ordinal < count; ++ordinal) {
        auto fingerprint = getGpuFingerprint(ordinal);
        if (fingerprint)
          devices.insert(*fingerprint);
        else
          llvm::consumeError(fingerprint.takeError());
      }
    }
    normjit_clear_error();
  }
  out << cache.getPath() << ": " << entries.size() << " entries\n";
  for (const CacheEntry &entry : entries) {
    bool usable = devices.count(entry.key.device) &&
                  entry.key.normjitVersion == here.normjitVersion &&
                  entry.key.llvmVersion == here.llvmVersion;
    out << entry.key.spec << " "
        << normjit::tuner::getRowBucketLabel(entry.key.rowBucket);
    if (entry.key.threads)
      out << " on " << entry.key.threads
          << (entry.key.threads == 1 ? " thread" : " threads");
    if (entry.key.coldCache)
      out << " cold cache";
    out << ": "
        << llvm::format("%.2f GB/s (default %.2f)", entry.gbps,
                        entry.defaultGbps)
        << " " << entry.getConfigText();
    if (!entry.fusion.empty())
      out << " " << entry.fusion
          << (entry.fusionMargin > 0
                  ? llvm::formatv(" by {0:F2}x", entry.fusionMargin).str()
                  : std::string(" (other form not measured)"));
    out << " tuned " << entry.tunedAt;
    if (!usable)
      out << " [other device or build: " << entry.key.device << ", normjit "
          << entry.key.normjitVersion << ", LLVM " << entry.key.llvmVersion
          << "]";
    else if (!entry.isGpu() && entry.key.threads != 0 &&
             normjit::tuner::getCacheThreads(
                 static_cast<int>(entry.key.threads)) == 0)
      // (A hand-made entry: lookups for all cores, or more threads, ask
      // for the entry without a thread count.)
      out << " [never looked up: " << entry.key.threads
          << " threads are all of this machine's cores or more; its "
             "entries for all cores have no thread count]";
    out << "\n";
  }
  return llvm::Error::success();
}
