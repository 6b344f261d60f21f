//===- TuningCache.cpp - the per-device TOML tuning cache -----------------===//
//
// Part of normjit. Implements TuningCache.h: a strict, all-or-nothing reader
// built on toml++, a deterministic writer, and read-merge-write cycles under
// an exclusive flock(2) that end in an atomic rename(2).
//
// The file format (schema 1). A top-level `schema = 1` and one `[[entry]]`
// table per tuned result, sorted by key:
//
//   schema = 1
//
//   [[entry]]
//   spec = "layer_norm:4096:x0:y0:r-1:s-1:g0:b0:m0:rs0:eps3727c5ac"
//   row_bucket = 1024              # 0 or a power of two <= 65536
//   threads = 1                    # optional, CPU: tuned on 1..1024
//                                  # worker threads; absent: all cores
//   device = "cpu|AuthenticAMD|AMD EPYC 9R14|avx,avx2,...|96"
//   normjit_version = "0.4.0"
//   llvm_version = "22.1.0"
//   gbps = 41.2                    # the winner's measured GB/s
//   default_gbps = 30.5            # the default heuristic's, same run
//   candidates = 120               # configs measured
//   tuned_at = "2026-11-26T18:00:00Z"
//   fusion = "fused"               # "fused", "split" or ""
//   fusion_margin = 1.18
//   config = { vector_width = 16, accumulators = 4, rows_per_task = 8,
//              threads = 0, algorithm = "two_pass", streaming_stores = false,
//              fuse_residual = true }   # (one line in the file; with
//                                       # prefetch_rows = N and
//                                       # row_group = N after them when
//                                       # N is not 0)
//   runner_up = { ...the same keys... }        # optional, with:
//   runner_up_gbps = 38.0
//
// An entry whose device is a CUDA device (its fingerprint starts with
// "cuda", e.g. "cuda | NVIDIA H100 80GB HBM3 | sm_90 | 132 SMs | 79.1 GiB |
// driver 13000") holds GPU configs instead, and only GPU configs:
//
//   config = { vector_width = 8, threads_per_row = 32, rows_per_block = 8,
//              elements_per_thread = 8, row_storage = "registers",
//              persistent = false }         # min_blocks_per_sm = N after
//                                              # it when N is not 0
//
// (row_storage "registers", "shared" or "global"; fusion is "" for GPU
// entries as normjit writes them, never "split": GPU kernels always fuse.) A
// CPU config under a CUDA device, or the reverse, is an unknown key, so neither
// is ever read as the other.
//
// The first five keys are the entry's identity (CacheKey). Every key above
// is required except runner_up and runner_up_gbps, which come together or
// not at all, a CPU config's prefetch_rows and row_group and a GPU
// config's min_blocks_per_sm (absent: 0). Floats may be written as integers. Reading is all-or-nothing:
// a syntax error, a missing or unknown key (at any level), a wrong type, a
// value out of range (GB/s finite in [0, 1e5], candidates in [0, 1e9],
// rows_per_task <= 2^20, what validateCpuConfig rejects; GPU knobs outside
// what any GPU kernel accepts, see checkGpuConfig), a string that is
// empty where a value is needed, over 4096 bytes, not UTF-8 or holding
// control characters, a duplicate key, another or no schema version, or a
// file over 64 MiB makes the whole file untrusted: it is renamed to
// `<path>.corrupt-<YYYYMMDDTHHMMSSZ>[-N]` and the cache starts empty.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/TuningCache.h"

#include "normjit/runtime/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

// The build has no exceptions: toml++ then reports errors in its
// parse_result. Debian's libtomlplusplus.so is built with exceptions (another
// ABI namespace), so the library is used header-only.
#define TOML_EXCEPTIONS 0
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <map>
#include <tuple>
#include <utility>

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace normjit;
using namespace normjit::tuner;

namespace {

/// Files larger than this are set aside without being parsed.
constexpr uint64_t kMaxFileSize = uint64_t(64) << 20;
/// The longest string value accepted.
constexpr size_t kMaxStringSize = 4096;
constexpr double kMaxGbps = 1e5;
constexpr int64_t kMaxCandidates = 1000000000;
constexpr int64_t kMaxRowBucket = 65536;
constexpr int64_t kMaxThreads = 1024;
/// GPU knobs: a CUDA block holds at most 1024 threads; a vector access is
/// at most 128 bits (8 16-bit elements).
constexpr int64_t kMaxGpuBlock = 1024;
constexpr int64_t kMaxGpuVectorWidth = 8;
constexpr int64_t kMaxGpuElementsPerThread = 1024; // as #norm.config
/// min_blocks_per_sm: at most 32 blocks, 2048 threads on a multiprocessor.
constexpr int64_t kMaxGpuMinBlocks = 32;
constexpr int64_t kMaxGpuThreadsPerSm = 2048;

//===----------------------------------------------------------------------===//
// Small helpers
//===----------------------------------------------------------------------===//

/// Closes a file descriptor (and so releases its flock) when it goes out of
/// scope.
struct ScopedFd {
  int fd = -1;
  ScopedFd() = default;
  ScopedFd(const ScopedFd &) = delete;
  ScopedFd &operator=(const ScopedFd &) = delete;
  ~ScopedFd() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// The current UTC time in strftime `format`.
std::string formatUtcNow(const char *format) {
  std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[64] = "";
  std::strftime(buffer, sizeof buffer, format, &parts);
  return buffer;
}

/// How an entry is named in messages.
std::string describeKey(const CacheKey &key) {
  return "key " + key.spec + " " + getRowBucketLabel(key.rowBucket) + " on " +
         key.device +
         (key.threads ? " at " + std::to_string(key.threads) +
                                (key.threads == 1 ? " thread" : " threads")
                      : std::string()) +
         (key.coldCache ? " (cold cache)" : "");
}

/// A float as TOML text that reads back as the same double: the shortest
/// round-tripping form, with ".0" added where it would read as an integer.
std::string formatFloat(double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, result.ptr);
  if (text.find_first_of(".eEni") == std::string::npos)
    text += ".0";
  return text;
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quote(llvm::StringRef text) {
  std::string result = "\"";
  for (char c : text) {
    unsigned char byte = static_cast<unsigned char>(c);
    switch (c) {
    case '"':
      result += "\\\"";
      break;
    case '\\':
      result += "\\\\";
      break;
    case '\n':
      result += "\\n";
      break;
    case '\t':
      result += "\\t";
      break;
    default:
      if (byte < 0x20 || byte == 0x7f) {
        char escape[8];
        std::snprintf(escape, sizeof escape, "\\u%04x", byte);
        result += escape;
      } else {
        result += c;
      }
    }
  }
  return result + "\"";
}

//===----------------------------------------------------------------------===//
// Validation shared by the reader and store()
//===----------------------------------------------------------------------===//

/// Checks one string field; returns an empty string when it is acceptable.
std::string checkString(llvm::StringRef name, const std::string &value,
                        bool allowEmpty) {
  if (value.empty())
    return allowEmpty ? "" : name.str() + " must not be empty";
  if (value.size() >= kMaxStringSize)
    return name.str() + " is " + std::to_string(value.size()) +
           " bytes long, over the limit of " +
           std::to_string(kMaxStringSize - 1);
  for (char c : value) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f)
      return name.str() + " holds a control character";
  }
  const auto *begin = reinterpret_cast<const llvm::UTF8 *>(value.data());
  if (!llvm::isLegalUTF8String(&begin, begin + value.size()))
    return name.str() + " is not valid UTF-8";
  return "";
}

/// Checks a time as the tuner writes it, ISO 8601 in UTC to the second:
/// YYYY-MM-DDTHH:MM:SSZ, each field in its range (a leap second allowed).
std::string checkTimestamp(llvm::StringRef name, const std::string &value) {
  std::string problem = checkString(name, value, false);
  if (!problem.empty())
    return problem;
  auto bad = [&] {
    return name.str() + " must be an ISO 8601 UTC time like " +
           "2026-11-26T18:00:00Z, got '" + value + "'";
  };
  static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
  if (value.size() != sizeof(shape) - 1)
    return bad();
  for (size_t i = 0; i < value.size(); ++i)
    if (shape[i] == 'd' ? !llvm::isDigit(value[i]) : value[i] != shape[i])
      return bad();
  auto field = [&](size_t at, size_t length) {
    return std::stoi(value.substr(at, length));
  };
  int year = field(0, 4), month = field(5, 2), day = field(8, 2);
  int hour = field(11, 2), minute = field(14, 2), second = field(17, 2);
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12 || day < 1 ||
      day > days[month - 1] + (month == 2 && leap ? 1 : 0) || hour > 23 ||
      minute > 59 || second > 60)
    return bad();
  return "";
}

/// Checks a GB/s-like value: finite and in [0, 1e5].
std::string checkRate(llvm::StringRef name, double value) {
  if (!std::isfinite(value) || value < 0 || value > kMaxGbps)
    return name.str() + " must be a finite number in [0, 1e5], got " +
           formatFloat(value);
  return "";
}

std::string checkConfig(llvm::StringRef name, const CpuConfig &config) {
  if (llvm::Error error = validateCpuConfig(config))
    return name.str() + ": " + llvm::toString(std::move(error));
  return "";
}

/// What every GPU kernel requires of its knobs, whatever its spec (the
/// spec-dependent rules are checked when the kernel is compiled).
std::string checkGpuConfig(llvm::StringRef name, const GpuConfig &config) {
  auto isPowerOf2 = [](int64_t value) {
    return value > 0 && llvm::isPowerOf2_64(static_cast<uint64_t>(value));
  };
  std::string prefix = name.str() + ": ";
  if (!isPowerOf2(config.threadsPerRow) || config.threadsPerRow > kMaxGpuBlock)
    return prefix +
           "threads_per_row must be a power of two in [1, 1024], "
           "got " +
           std::to_string(config.threadsPerRow);
  if (config.rowsPerBlock < 1 || config.rowsPerBlock > kMaxGpuBlock ||
      config.threadsPerRow * config.rowsPerBlock > kMaxGpuBlock)
    return prefix +
           "rows_per_block must be at least 1 with threads_per_row "
           "* rows_per_block <= 1024, got " +
           std::to_string(config.rowsPerBlock);
  if (!isPowerOf2(config.vectorWidth) ||
      config.vectorWidth > kMaxGpuVectorWidth)
    return prefix + "vector_width must be a power of two in [1, 8], got " +
           std::to_string(config.vectorWidth);
  if (config.elementsPerThread < 1 ||
      config.elementsPerThread > kMaxGpuElementsPerThread ||
      config.elementsPerThread % config.vectorWidth != 0)
    return prefix +
           "elements_per_thread must be a multiple of vector_width "
           "in [1, 1024], got " +
           std::to_string(config.elementsPerThread);
  if (config.minBlocksPerSm < 0 || config.minBlocksPerSm > kMaxGpuMinBlocks ||
      config.minBlocksPerSm * config.blockSize() > kMaxGpuThreadsPerSm)
    return prefix +
           "min_blocks_per_sm must be in [0, 32] with min_blocks_per_sm * "
           "threads_per_row * rows_per_block <= 2048, got " +
           std::to_string(config.minBlocksPerSm);
  return "";
}

/// Checks every field of an entry; returns the first problem, or an empty
/// string.
std::string checkEntry(const CacheEntry &entry) {
  const CacheKey &key = entry.key;
  std::string problem;
  auto first = [&](std::string text) {
    if (problem.empty())
      problem = std::move(text);
  };
  first(checkString("spec", key.spec, false));
  first(checkString("device", key.device, false));
  first(checkString("normjit_version", key.normjitVersion, false));
  first(checkString("llvm_version", key.llvmVersion, false));
  first(checkTimestamp("tuned_at", entry.tunedAt));
  first(checkString("fusion", entry.fusion, true));
  if (key.rowBucket < 0 || key.rowBucket > kMaxRowBucket ||
      (key.rowBucket != 0 &&
       !llvm::isPowerOf2_64(static_cast<uint64_t>(key.rowBucket))))
    first("row_bucket must be 0 or a power of two <= 65536, got " +
          std::to_string(key.rowBucket));
  if (key.threads < 0 || key.threads > kMaxThreads)
    first("threads must be in [0, 1024], got " + std::to_string(key.threads));
  else if (key.threads != 0 && entry.isGpu())
    first("threads must be absent for a GPU entry");
  first(checkRate("gbps", entry.gbps));
  first(checkRate("default_gbps", entry.defaultGbps));
  first(checkRate("fusion_margin", entry.fusionMargin));
  first(checkRate("runner_up_gbps", entry.runnerUpGbps));
  if (entry.candidates < 0 || entry.candidates > kMaxCandidates)
    first("candidates must be in [0, 1e9], got " +
          std::to_string(entry.candidates));
  if (!entry.fusion.empty() && entry.fusion != "fused" &&
      entry.fusion != "split")
    first("fusion must be \"fused\", \"split\" or empty, got \"" +
          entry.fusion + "\"");
  // The spec key says whether there is a residual (":r-1:": none; see
  // getSpecKey), and a residual spec's form must be its config's.
  if (!entry.fusion.empty() &&
      llvm::StringRef(key.spec).contains(":r-1:"))
    first("fusion must be empty for a spec without a residual, got \"" +
          entry.fusion + "\"");
  if (!entry.isGpu() && !entry.fusion.empty() &&
      (entry.fusion == "fused") != entry.config.fuseResidual)
    first("fusion is \"" + entry.fusion + "\" but config.fuse_residual is " +
          (entry.config.fuseResidual ? "true" : "false"));
  if (entry.isGpu()) {
    if (entry.fusion == "split")
      first("fusion cannot be \"split\" for a GPU entry: GPU kernels always "
            "fuse the residual add");
    first(checkGpuConfig("config", entry.gpuConfig));
    if (entry.gpuRunnerUp)
      first(checkGpuConfig("runner_up", *entry.gpuRunnerUp));
    else if (entry.runnerUpGbps != 0)
      first("runner_up_gbps is set but there is no runner_up");
  } else {
    first(checkConfig("config", entry.config));
    if (entry.runnerUp)
      first(checkConfig("runner_up", *entry.runnerUp));
    else if (entry.runnerUpGbps != 0)
      first("runner_up_gbps is set but there is no runner_up");
  }
  return problem;
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

const char *typeName(const toml::node &node) {
  switch (node.type()) {
  case toml::node_type::none:
    return "nothing";
  case toml::node_type::table:
    return "a table";
  case toml::node_type::array:
    return "an array";
  case toml::node_type::string:
    return "a string";
  case toml::node_type::integer:
    return "an integer";
  case toml::node_type::floating_point:
    return "a float";
  case toml::node_type::boolean:
    return "a boolean";
  case toml::node_type::date:
    return "a date";
  case toml::node_type::time:
    return "a time";
  case toml::node_type::date_time:
    return "a date-time";
  }
  return "an unknown value";
}

/// Reads a parsed document into entries, failing on the first problem.
class DocumentReader {
public:
  /// Reads `root`; on failure returns false with `problem` set ("line N:
  /// ...").
  bool read(const toml::table &root, std::vector<CacheEntry> &entries) {
    if (!checkKeys(root, {"schema", "entry"}, ""))
      return false;
    const toml::node *schema = root.get("schema");
    if (!schema)
      return failAt(root, "no schema version (expected schema = " +
                              std::to_string(kCacheSchemaVersion) + ")");
    const auto *version = schema->as_integer();
    if (!version)
      return failAt(*schema, std::string("schema must be an integer, got ") +
                                 typeName(*schema));
    if (version->get() != kCacheSchemaVersion)
      return failAt(*schema, "schema version " +
                                 std::to_string(version->get()) +
                                 " is not the supported version " +
                                 std::to_string(kCacheSchemaVersion));
    const toml::node *list = root.get("entry");
    if (!list)
      return true;
    const toml::array *array = list->as_array();
    if (!array)
      return failAt(*list, std::string("entry must be an array of tables, "
                                       "got ") +
                               typeName(*list));
    size_t index = 0;
    for (const toml::node &node : *array) {
      ++index;
      context = "entry " + std::to_string(index) + ": ";
      const toml::table *table = node.as_table();
      if (!table)
        return failAt(node,
                      std::string("expected a table, got ") + typeName(node));
      CacheEntry entry;
      if (!readEntry(*table, entry))
        return false;
      std::string entryProblem = checkEntry(entry);
      if (!entryProblem.empty())
        return failAt(nodeOfProblem(*table, entryProblem), entryProblem);
      entries.push_back(std::move(entry));
      lines.push_back(table->source().begin.line);
    }
    context.clear();
    return checkDuplicates(entries);
  }

  std::string problem;

private:
  /// The node a problem of checkEntry names first ("row_bucket must ...",
  /// "config: rows_per_task must ..."), for its line: the key's, or the
  /// entry's table when the problem names none of its keys.
  static const toml::node &nodeOfProblem(const toml::table &entry,
                                         llvm::StringRef problem) {
    auto name = [](llvm::StringRef text) {
      return text.take_while([](char c) { return llvm::isAlnum(c) || c == '_'; });
    };
    llvm::StringRef field = name(problem);
    const toml::node *node = entry.get(field);
    if (!node)
      return entry;
    llvm::StringRef rest = problem.drop_front(field.size());
    if (const toml::table *inner = node->as_table();
        inner && (rest.consume_front(": ") || rest.consume_front(".")))
      if (const toml::node *knob = inner->get(name(rest)))
        return *knob;
    return *node;
  }

  /// "entry N: " while reading an entry.
  std::string context;
  /// The line of each entry read, for duplicate-key messages.
  std::vector<unsigned> lines;

  bool failAt(const toml::node &node, const std::string &text) {
    unsigned line = node.source().begin.line;
    problem = (line ? "line " + std::to_string(line) + ": " : std::string()) +
              context + text;
    return false;
  }

  bool checkKeys(const toml::table &table,
                 std::initializer_list<llvm::StringRef> allowed,
                 llvm::StringRef prefix) {
    for (auto &&[key, node] : table) {
      llvm::StringRef name(key.str().data(), key.str().size());
      if (!llvm::is_contained(allowed, name))
        return failAt(node, "unknown key '" + prefix.str() + name.str() + "'");
    }
    return true;
  }

  /// Finds a required key; fails when it is missing.
  const toml::node *require(const toml::table &table, llvm::StringRef key,
                            llvm::StringRef prefix) {
    const toml::node *node =
        table.get(std::string_view(key.data(), key.size()));
    if (!node)
      failAt(table, "missing key '" + prefix.str() + key.str() + "'");
    return node;
  }

  bool wrongType(const toml::node &node, llvm::StringRef key,
                 const char *expected) {
    return failAt(node, key.str() + " must be " + expected + ", got " +
                            typeName(node));
  }

  bool getString(const toml::table &table, llvm::StringRef key,
                 std::string &out, llvm::StringRef prefix = "") {
    const toml::node *node = require(table, key, prefix);
    if (!node)
      return false;
    const auto *value = node->as_string();
    if (!value)
      return wrongType(*node, prefix.str() + key.str(), "a string");
    out = value->get();
    return true;
  }

  bool getInteger(const toml::table &table, llvm::StringRef key, int64_t &out,
                  llvm::StringRef prefix = "") {
    const toml::node *node = require(table, key, prefix);
    if (!node)
      return false;
    const auto *value = node->as_integer();
    if (!value)
      return wrongType(*node, prefix.str() + key.str(), "an integer");
    out = value->get();
    return true;
  }

  /// A float, or an integer standing for one.
  bool getFloat(const toml::table &table, llvm::StringRef key, double &out) {
    const toml::node *node = require(table, key, "");
    if (!node)
      return false;
    if (const auto *value = node->as_floating_point())
      out = value->get();
    else if (const auto *integer = node->as_integer())
      out = static_cast<double>(integer->get());
    else
      return wrongType(*node, key, "a number");
    return true;
  }

  bool getBoolean(const toml::table &table, llvm::StringRef key, bool &out,
                  llvm::StringRef prefix) {
    const toml::node *node = require(table, key, prefix);
    if (!node)
      return false;
    const auto *value = node->as_boolean();
    if (!value)
      return wrongType(*node, prefix.str() + key.str(), "a boolean");
    out = value->get();
    return true;
  }

  bool readConfig(const toml::table &entry, llvm::StringRef key,
                  CpuConfig &config) {
    const toml::node *node = require(entry, key, "");
    if (!node)
      return false;
    const toml::table *table = node->as_table();
    if (!table)
      return wrongType(*node, key, "a table");
    std::string prefix = key.str() + ".";
    if (!checkKeys(*table,
                   {"vector_width", "accumulators", "rows_per_task", "threads",
                    "algorithm", "streaming_stores", "fuse_residual",
                    "prefetch_rows", "row_group"},
                   prefix))
      return false;
    // Optional: written only when not 0 (never by normjit 0.2.0, which
    // did not have the knob).
    config.prefetchRows = 0;
    if (table->get("prefetch_rows") &&
        !getInteger(*table, "prefetch_rows", config.prefetchRows, prefix))
      return false;
    // The same for row_group (normjit 0.3 sets aside a file that has
    // one).
    config.rowGroup = 0;
    if (table->get("row_group") &&
        !getInteger(*table, "row_group", config.rowGroup, prefix))
      return false;
    int64_t threads = 0;
    std::string algorithm;
    if (!getInteger(*table, "vector_width", config.vectorWidth, prefix) ||
        !getInteger(*table, "accumulators", config.accumulators, prefix) ||
        !getInteger(*table, "rows_per_task", config.rowsPerTask, prefix) ||
        !getInteger(*table, "threads", threads, prefix) ||
        !getString(*table, "algorithm", algorithm, prefix) ||
        !getBoolean(*table, "streaming_stores", config.streamingStores,
                    prefix) ||
        !getBoolean(*table, "fuse_residual", config.fuseResidual, prefix))
      return false;
    // Checked here, before it is narrowed to int.
    if (threads < 0 || threads > kMaxThreads)
      return failAt(*table->get("threads"),
                    prefix + "threads must be in [0, 1024], got " +
                        std::to_string(threads));
    config.threads = static_cast<int>(threads);
    if (algorithm != "two_pass" && algorithm != "welford")
      return failAt(*table->get("algorithm"),
                    prefix + "algorithm must be \"two_pass\" or \"welford\"");
    config.welford = algorithm == "welford";
    return true;
  }

  bool readGpuConfig(const toml::table &entry, llvm::StringRef key,
                     GpuConfig &config) {
    const toml::node *node = require(entry, key, "");
    if (!node)
      return false;
    const toml::table *table = node->as_table();
    if (!table)
      return wrongType(*node, key, "a table");
    std::string prefix = key.str() + ".";
    if (!checkKeys(*table,
                   {"vector_width", "threads_per_row", "rows_per_block",
                    "elements_per_thread", "row_storage", "persistent",
                    "min_blocks_per_sm"},
                   prefix))
      return false;
    if (table->get("min_blocks_per_sm") &&
        !getInteger(*table, "min_blocks_per_sm", config.minBlocksPerSm,
                    prefix))
      return false;
    std::string storage;
    if (!getInteger(*table, "vector_width", config.vectorWidth, prefix) ||
        !getInteger(*table, "threads_per_row", config.threadsPerRow, prefix) ||
        !getInteger(*table, "rows_per_block", config.rowsPerBlock, prefix) ||
        !getInteger(*table, "elements_per_thread", config.elementsPerThread,
                    prefix) ||
        !getString(*table, "row_storage", storage, prefix) ||
        !getBoolean(*table, "persistent", config.persistent, prefix))
      return false;
    std::optional<GpuRowStorage> parsed = parseGpuRowStorage(storage);
    if (!parsed)
      return failAt(*table->get("row_storage"),
                    prefix + "row_storage must be \"registers\", "
                             "\"shared\" or \"global\"");
    config.rowStorage = *parsed;
    return true;
  }

  bool readEntry(const toml::table &table, CacheEntry &entry) {
    if (!checkKeys(table,
                   {"spec", "row_bucket", "threads", "cold_cache", "device",
                    "normjit_version", "llvm_version", "gbps", "default_gbps", "candidates",
                    "tuned_at", "fusion", "fusion_margin", "config",
                    "runner_up", "runner_up_gbps"},
                   ""))
      return false;
    CacheKey &key = entry.key;
    if (!getString(table, "spec", key.spec) ||
        !getInteger(table, "row_bucket", key.rowBucket) ||
        !getString(table, "device", key.device) ||
        !getString(table, "normjit_version", key.normjitVersion) ||
        !getString(table, "llvm_version", key.llvmVersion) ||
        !getFloat(table, "gbps", entry.gbps) ||
        !getFloat(table, "default_gbps", entry.defaultGbps) ||
        !getInteger(table, "candidates", entry.candidates) ||
        !getString(table, "tuned_at", entry.tunedAt) ||
        !getString(table, "fusion", entry.fusion) ||
        !getFloat(table, "fusion_margin", entry.fusionMargin))
      return false;
    if (table.contains("threads") &&
        !getInteger(table, "threads", key.threads))
      return false;
    if (table.contains("cold_cache") &&
        !getBoolean(table, "cold_cache", key.coldCache, ""))
      return false;
    // The device decides which kind of config the entry holds.
    bool gpu = entry.isGpu();
    if (gpu ? !readGpuConfig(table, "config", entry.gpuConfig)
            : !readConfig(table, "config", entry.config))
      return false;
    bool hasRunnerUp = table.contains("runner_up");
    bool hasRunnerUpGbps = table.contains("runner_up_gbps");
    if (hasRunnerUp != hasRunnerUpGbps)
      return failAt(table, hasRunnerUp ? "runner_up without runner_up_gbps"
                                       : "runner_up_gbps without runner_up");
    if (hasRunnerUp && gpu) {
      GpuConfig runnerUp;
      if (!readGpuConfig(table, "runner_up", runnerUp) ||
          !getFloat(table, "runner_up_gbps", entry.runnerUpGbps))
        return false;
      entry.gpuRunnerUp = runnerUp;
    } else if (hasRunnerUp) {
      CpuConfig runnerUp;
      if (!readConfig(table, "runner_up", runnerUp) ||
          !getFloat(table, "runner_up_gbps", entry.runnerUpGbps))
        return false;
      entry.runnerUp = runnerUp;
    }
    return true;
  }

  bool checkDuplicates(std::vector<CacheEntry> &entries) {
    std::vector<size_t> order(entries.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return entries[a].key < entries[b].key;
    });
    for (size_t i = 1; i < order.size(); ++i) {
      const CacheEntry &entry = entries[order[i]];
      if (entry.key == entries[order[i - 1]].key) {
        problem = "line " + std::to_string(lines[order[i]]) + ": entry " +
                  std::to_string(order[i] + 1) + ": duplicate " +
                  describeKey(entry.key) + " (normjit " +
                  entry.key.normjitVersion + ", LLVM " + entry.key.llvmVersion +
                  ")";
        return false;
      }
    }
    std::vector<CacheEntry> sorted;
    sorted.reserve(entries.size());
    for (size_t index : order)
      sorted.push_back(std::move(entries[index]));
    entries = std::move(sorted);
    return true;
  }
};

/// Parses and validates a whole document. On failure returns false with
/// the reason in `problem`.
bool parseDocument(const std::string &text, const std::string &path,
                   std::vector<CacheEntry> &entries, std::string &problem) {
  toml::parse_result result = toml::parse(std::string_view(text), path);
  if (!result) {
    const toml::parse_error &error = result.error();
    unsigned line = error.source().begin.line;
    problem = (line ? "line " + std::to_string(line) + ": " : std::string()) +
              std::string(error.description());
    return false;
  }
  DocumentReader reader;
  if (!reader.read(result.table(), entries)) {
    problem = std::move(reader.problem);
    entries.clear();
    return false;
  }
  return true;
}

/// What is at a cache path.
struct DiskState {
  enum Kind { Missing, Valid, Corrupt };
  Kind kind = Missing;
  std::vector<CacheEntry> entries; ///< when Valid, sorted
  std::string problem;             ///< when Corrupt
  /// When Corrupt: the file does not look like a tuning cache at all (see
  /// isForeignFile), so it is someone's data under a mistyped path: it is
  /// neither set aside nor overwritten.
  bool foreign = false;
};

/// Whether the first bytes of a file could be a tuning cache's: empty, or
/// normjit's header, or a `schema` key given a value (a number, a string
/// or a sign: a truncated or hand-made cache, another schema version) on a
/// line of its own within the first 4 KiB.
bool headLooksLikeCache(llvm::StringRef head) {
  head = head.take_front(4096);
  head.consume_front("\xEF\xBB\xBF"); // a UTF-8 byte order mark
  // Empty or blank all through (a whole file under 4 KiB), the header or
  // the header cut short.
  constexpr llvm::StringLiteral header("# normjit tuning cache");
  if ((head.size() < 4096 && head.trim().empty()) ||
      head.starts_with(header) || header.starts_with(head))
    return true;
  llvm::SmallVector<llvm::StringRef> lines;
  head.split(lines, '\n');
  return llvm::any_of(lines, [](llvm::StringRef line) {
    line = line.trim();
    // schema, "schema" or 'schema' (TOML's bare, basic and literal keys).
    for (llvm::StringRef key : {"schema", "\"schema\"", "'schema'"})
      if (line.consume_front(key)) {
        line = line.ltrim();
        if (!line.consume_front("="))
          return false;
        line = line.ltrim();
        return !line.empty() && (llvm::isDigit(line.front()) ||
                                 llvm::StringRef("\"'+-").contains(
                                     line.front()));
      }
    return false;
  });
}

/// Whether a file that is no valid tuning cache is someone else's data
/// rather than a damaged cache: its head does not look like a cache's,
/// and either its name does not end in ".toml" (`--cache weights.npy`) or
/// it is a valid TOML document without a cache's top-level keys (a sweep
/// file). A damaged cache (truncated, garbage, wrong values) is set aside;
/// such a file is left where it is. Without the `whole` content (a file
/// over the size limit, of which only the head was read), a .toml file is
/// taken for a damaged cache.
bool isForeignFile(const std::string &path, llvm::StringRef content,
                   bool whole = true) {
  if (headLooksLikeCache(content))
    return false;
  if (!llvm::StringRef(path).ends_with(".toml"))
    return true;
  if (!whole)
    return false;
  toml::parse_result result = toml::parse(
      std::string_view(content.data(), content.size()), path);
  // (A document of comments alone, no key at all, is an empty cache.)
  return result && !result.table().empty() &&
         !result.table().contains("schema") &&
         !result.table().contains("entry");
}

/// Reads and validates the file at `path`. Errors only when it exists but
/// cannot be read.
llvm::Error readDisk(const std::string &path, DiskState &state) {
  state = DiskState();
  ScopedFd file;
  // Non-blocking: opening a FIFO for reading would wait for a writer (the
  // file is refused below as not a regular file).
  do
    file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  while (file.fd < 0 && errno == EINTR);
  if (file.fd < 0) {
    if (errno == ENOENT)
      return llvm::Error::success();
    return makeError(NORMJIT_IO_ERROR,
                     "cannot read tuning cache '" + path +
                         "': " + normjit::runtime::errorText(errno));
  }
  struct stat info;
  if (::fstat(file.fd, &info) != 0)
    return makeError(NORMJIT_IO_ERROR,
                     "cannot read tuning cache '" + path +
                         "': " + normjit::runtime::errorText(errno));
  if (!S_ISREG(info.st_mode))
    return makeError(NORMJIT_IO_ERROR, "cannot read tuning cache '" + path +
                                           "': not a regular file");
  if (static_cast<uint64_t>(info.st_size) > kMaxFileSize) {
    state.kind = DiskState::Corrupt;
    state.problem = "the file is " + std::to_string(info.st_size) +
                    " bytes, over the limit of 64 MiB";
    // Its head tells a huge damaged cache from someone's large file.
    char head[4096];
    ssize_t got;
    do
      got = ::pread(file.fd, head, sizeof head, 0);
    while (got < 0 && errno == EINTR);
    state.foreign =
        got > 0 && isForeignFile(path, llvm::StringRef(head, size_t(got)),
                                 /*whole=*/false);
    return llvm::Error::success();
  }
  std::string content;
  content.reserve(static_cast<size_t>(info.st_size));
  char buffer[65536];
  while (true) {
    ssize_t got = ::read(file.fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      return makeError(NORMJIT_IO_ERROR,
                       "cannot read tuning cache '" + path +
                           "': " + normjit::runtime::errorText(errno));
    if (got == 0)
      break;
    content.append(buffer, static_cast<size_t>(got));
    // The file may have grown since fstat.
    if (content.size() > kMaxFileSize) {
      state.kind = DiskState::Corrupt;
      state.problem = "the file is over the limit of 64 MiB";
      state.foreign = isForeignFile(path, content, /*whole=*/false);
      return llvm::Error::success();
    }
  }
  if (parseDocument(content, path, state.entries, state.problem)) {
    state.kind = DiskState::Valid;
  } else {
    state.kind = DiskState::Corrupt;
    state.foreign = isForeignFile(path, content);
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

void writeConfig(std::string &out, const char *key, const CpuConfig &config) {
  out += key;
  out += " = { vector_width = " + std::to_string(config.vectorWidth) +
         ", accumulators = " + std::to_string(config.accumulators) +
         ", rows_per_task = " + std::to_string(config.rowsPerTask) +
         ", threads = " + std::to_string(config.threads) +
         ", algorithm = " + (config.welford ? "\"welford\"" : "\"two_pass\"") +
         ", streaming_stores = " + (config.streamingStores ? "true" : "false") +
         ", fuse_residual = " + (config.fuseResidual ? "true" : "false") +
         (config.prefetchRows > 0
              ? ", prefetch_rows = " + std::to_string(config.prefetchRows)
              : std::string()) +
         (config.rowGroup > 0
              ? ", row_group = " + std::to_string(config.rowGroup)
              : std::string()) +
         " }\n";
}

void writeConfig(std::string &out, const char *key, const GpuConfig &config) {
  std::string storage =
      std::string("\"") + getGpuRowStorageName(config.rowStorage) + "\"";
  out += key;
  out += " = { vector_width = " + std::to_string(config.vectorWidth) +
         ", threads_per_row = " + std::to_string(config.threadsPerRow) +
         ", rows_per_block = " + std::to_string(config.rowsPerBlock) +
         ", elements_per_thread = " + std::to_string(config.elementsPerThread) +
         ", row_storage = " + storage +
         ", persistent = " + (config.persistent ? "true" : "false") +
         (config.minBlocksPerSm > 0
              ? ", min_blocks_per_sm = " + std::to_string(config.minBlocksPerSm)
              : std::string()) +
         " }\n";
}

/// The file's text for sorted `entries`.
std::string formatDocument(const std::vector<CacheEntry> &entries) {
  std::string out =
      "# normjit tuning cache: the best kernel config per spec, row bucket,\n"
      "# device and normjit/LLVM version. Written by normjit under a lock;\n"
      "# see tuner/README.md before editing by hand.\n"
      "schema = " +
      std::to_string(kCacheSchemaVersion) + "\n";
  for (const CacheEntry &entry : entries) {
    const CacheKey &key = entry.key;
    out += "\n[[entry]]\n";
    out += "spec = " + quote(key.spec) + "\n";
    out += "row_bucket = " + std::to_string(key.rowBucket) + "\n";
    if (key.threads)
      out += "threads = " + std::to_string(key.threads) + "\n";
    if (key.coldCache)
      out += "cold_cache = true\n";
    out += "device = " + quote(key.device) + "\n";
    out += "normjit_version = " + quote(key.normjitVersion) + "\n";
    out += "llvm_version = " + quote(key.llvmVersion) + "\n";
    out += "gbps = " + formatFloat(entry.gbps) + "\n";
    out += "default_gbps = " + formatFloat(entry.defaultGbps) + "\n";
    out += "candidates = " + std::to_string(entry.candidates) + "\n";
    out += "tuned_at = " + quote(entry.tunedAt) + "\n";
    out += "fusion = " + quote(entry.fusion) + "\n";
    out += "fusion_margin = " + formatFloat(entry.fusionMargin) + "\n";
    if (entry.isGpu()) {
      writeConfig(out, "config", entry.gpuConfig);
      if (entry.gpuRunnerUp) {
        writeConfig(out, "runner_up", *entry.gpuRunnerUp);
        out += "runner_up_gbps = " + formatFloat(entry.runnerUpGbps) + "\n";
      }
    } else {
      writeConfig(out, "config", entry.config);
      if (entry.runnerUp) {
        writeConfig(out, "runner_up", *entry.runnerUp);
        out += "runner_up_gbps = " + formatFloat(entry.runnerUpGbps) + "\n";
      }
    }
  }
  return out;
}

bool writeAll(int fd, const char *data, size_t size) {
  while (size) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

std::string getDirectory(const std::string &path) {
  llvm::StringRef directory = llvm::sys::path::parent_path(path);
  return directory.empty() ? "." : directory.str();
}

/// `path`'s file name as the start of a name derived from it: as it is
/// up to `keep` bytes, else its first 160 bytes and a hash of it (at most
/// 177 bytes), so that what is added stays within NAME_MAX (255).
std::string getShortFileName(const std::string &path, size_t keep) {
  llvm::StringRef name = llvm::sys::path::filename(path);
  if (name.size() <= keep)
    return name.str();
  return name.take_front(160).str() + "-" +
         llvm::utohexstr(llvm::xxh3_64bits(name));
}

/// The name that the temporaries of `path`'s writers start with:
/// ".<file name>.tmp-", the file name shortened past 160 bytes, so that
/// the temporary's name (six more characters) stays within NAME_MAX
/// wherever the lock file's does.
std::string getTemporaryPrefix(const std::string &path) {
  return "." + getShortFileName(path, 160) + ".tmp-";
}

/// Replaces `path` with `content`: a temporary file in the same directory,
/// fsync, rename(2), fsync of the directory.
llvm::Error writeAtomically(const std::string &path,
                            const std::string &content) {
  std::string directory = getDirectory(path);
  std::string pattern = directory + "/" + getTemporaryPrefix(path) + "XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0)
    return makeError(NORMJIT_IO_ERROR,
                     "cannot write tuning cache '" + path +
                         "': cannot create a temporary file: " +
                         normjit::runtime::errorText(errno));
  bool ok = ::fchmod(fd, 0644) == 0 &&
            writeAll(fd, content.data(), content.size()) && ::fsync(fd) == 0;
  int error = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    error = errno;
  }
  if (ok && ::rename(name.data(), path.c_str()) != 0) {
    ok = false;
    error = errno;
  }
  if (!ok) {
    ::unlink(name.data());
    return makeError(NORMJIT_IO_ERROR,
                     "cannot write tuning cache '" + path +
                         "': " + normjit::runtime::errorText(error));
  }
  // Make the rename itself durable; a failure here loses nothing written.
  int directoryFd =
      ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directoryFd >= 0) {
    (void)::fsync(directoryFd);
    ::close(directoryFd);
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Locking and setting aside
//===----------------------------------------------------------------------===//

/// Opens (creates) the lock file beside the cache `path`; `what` starts
/// the error message ("cannot lock").
llvm::Error openLockFile(const std::string &path, ScopedFd &lock,
                         const char *what) {
  std::string lockPath = path + ".lock";
  do
    lock.fd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  while (lock.fd < 0 && errno == EINTR);
  if (lock.fd < 0)
    return makeError(NORMJIT_IO_ERROR,
                     std::string(what) + " tuning cache '" + path +
                         "': cannot open '" + lockPath +
                         "': " + normjit::runtime::errorText(errno));
  return llvm::Error::success();
}

/// Takes the exclusive lock on `<path>.lock` (creating it), held until
/// `lock` is destroyed.
llvm::Error lockCache(const std::string &path, ScopedFd &lock) {
  if (llvm::Error error = openLockFile(path, lock, "cannot lock"))
    return error;
  // Writers hold the lock for milliseconds; one that holds it longer (a
  // process stopped with Ctrl-Z, a hung file system) is waited for, but
  // not in silence.
  int result;
  for (int attempt = 0;; ++attempt) {
    result = ::flock(lock.fd, LOCK_EX | LOCK_NB);
    if (result == 0 || (errno != EWOULDBLOCK && errno != EINTR))
      break;
    if (attempt == 100) {
      llvm::errs() << "normjit: waiting for the lock on tuning cache '"
                   << path << "' ('" << path
                   << ".lock', held by another process)\n";
      do
        result = ::flock(lock.fd, LOCK_EX);
      while (result != 0 && errno == EINTR);
      break;
    }
    ::usleep(10000);
  }
  if (result != 0)
    return makeError(NORMJIT_IO_ERROR,
                     "cannot lock tuning cache '" + path +
                         "': " + normjit::runtime::errorText(errno));
  return llvm::Error::success();
}

/// Renames an untrusted cache file out of the way (with the lock held) and
/// returns the warning that says so, ending with `then` (what the cache
/// goes on with).
std::string setAside(const std::string &path, const std::string &problem,
                     const std::string &then = "starting with an empty cache",
                     bool *done = nullptr, const char *thenIfNot = nullptr) {
  // "<name>.corrupt-<time>[-N]", the name shortened where that would pass
  // NAME_MAX.
  std::string base = getDirectory(path) + "/" + getShortFileName(path, 200) +
                     ".corrupt-" + formatUtcNow("%Y%m%dT%H%M%SZ");
  if (done)
    *done = false;
  std::string target = base;
  struct stat info;
  for (unsigned counter = 1;
       ::lstat(target.c_str(), &info) == 0 && counter < 10000; ++counter)
    target = base + "-" + std::to_string(counter);
  std::string warning =
      "tuning cache '" + path + "' cannot be trusted (" + problem + "): ";
  if (::rename(path.c_str(), target.c_str()) != 0)
    return warning + "cannot set it aside as '" + target +
           "': " + normjit::runtime::errorText(errno) + "; " +
           (thenIfNot ? std::string(thenIfNot) : then);
  if (done)
    *done = true;
  return warning + "set aside as '" + target + "'; " + then;
}

/// Sorted entries with replacements: `add` wins over `base` for equal keys,
/// and later entries of `add` over earlier ones.
std::vector<CacheEntry> combine(const std::vector<CacheEntry> &base,
                                const std::vector<CacheEntry> &add) {
  std::map<CacheKey, CacheEntry> all;
  for (const CacheEntry &entry : base)
    all[entry.key] = entry;
  for (const CacheEntry &entry : add)
    all[entry.key] = entry;
  std::vector<CacheEntry> result;
  result.reserve(all.size());
  for (auto &item : all)
    result.push_back(std::move(item.second));
  return result;
}

/// A GB/s figure for merge messages: one decimal, more when one decimal
/// would make two different figures look equal.
std::pair<std::string, std::string> formatRates(double a, double b) {
  for (int digits : {1, 3, 6}) {
    char left[64], right[64];
    std::snprintf(left, sizeof left, "%.*f", digits, a);
    std::snprintf(right, sizeof right, "%.*f", digits, b);
    if (a == b || std::strcmp(left, right) != 0 || digits == 6)
      return {left, right};
  }
  return {};
}

/// Creates the cache's directory, takes its lock (held by `lock` until it
/// goes out of scope) and reads what is on disk into `base`. A file that
/// turned corrupt since it was loaded is set aside (with a warning) and the
/// entries in memory, `current`, are the base instead.
/// Removes the temporaries of writers that died before their rename (a
/// SIGKILL mid-write). Called under the cache's lock: every writer holds it
/// while its temporary exists, so any found then is stale.
void removeStaleTemporaries(const std::string &path) {
  std::string prefix = getTemporaryPrefix(path);
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(getDirectory(path), ec), end;
       it != end && !ec; it.increment(ec))
    if (llvm::sys::path::filename(it->path()).starts_with(prefix))
      (void)llvm::sys::fs::remove(it->path());
}

/// The warning of a read that leaves a foreign file (DiskState::foreign)
/// alone.
std::string describeForeignRead(const std::string &path,
                                const DiskState &state) {
  return "'" + path + "' does not look like a normjit tuning cache (" +
         state.problem + "); not used, and left as it is";
}

/// Why a foreign file (DiskState::foreign) is not written over.
std::string describeForeign(const std::string &path, const DiskState &state) {
  return "not writing tuning cache '" + path +
         "': the file there does not look like one (no '# normjit tuning "
         "cache' header or 'schema' key in its first 4 KiB; " +
         state.problem +
         "); it is left as it is: choose another cache file (--cache, "
         "cache_file), or remove it";
}

/// Refuses to write over a file that is no cache at all (a mistyped
/// --cache) before its lock file is made beside it. (The check is made
/// again with the lock held.)
llvm::Error refuseForeignFile(const std::string &path) {
  DiskState state;
  if (llvm::Error error = readDisk(path, state)) {
    llvm::consumeError(std::move(error)); // said again under the lock
    return llvm::Error::success();
  }
  if (state.foreign)
    return makeError(NORMJIT_INVALID_ARGUMENT, describeForeign(path, state));
  return llvm::Error::success();
}

llvm::Error lockAndRead(const std::string &path,
                        const std::vector<CacheEntry> &current,
                        std::vector<std::string> &warnings, ScopedFd &lock,
                        std::vector<CacheEntry> &base) {
  if (llvm::Error error = refuseForeignFile(path))
    return error;
  if (std::error_code error =
          llvm::sys::fs::create_directories(getDirectory(path)))
    return makeError(NORMJIT_IO_ERROR, "cannot create the directory of "
                                       "tuning cache '" +
                                           path + "': " + error.message());
  if (llvm::Error error = lockCache(path, lock))
    return error;
  removeStaleTemporaries(path);
  DiskState state;
  if (llvm::Error error = readDisk(path, state))
    return error;
  base.clear();
  if (state.kind == DiskState::Valid) {
    base = std::move(state.entries);
  } else if (state.foreign) {
    return makeError(NORMJIT_INVALID_ARGUMENT, describeForeign(path, state));
  } else if (state.kind == DiskState::Corrupt) {
    // A damaged file that cannot be set aside is not written over either:
    // it is all that is left of its entries.
    bool done = false;
    std::string warning = setAside(
        path, state.problem,
        current.empty() ? std::string("starting with an empty cache")
                        : "keeping the " + std::to_string(current.size()) +
                              " entries read before",
        &done, "so it is not written over: move or remove it by hand");
    if (!done)
      return makeError(NORMJIT_IO_ERROR, warning);
    warnings.push_back(warning);
    base = current;
  }
  return llvm::Error::success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Free functions
//===----------------------------------------------------------------------===//

int64_t normjit::tuner::getRowBucket(int64_t rows) {
  if (rows <= 0)
    return 0;
  if (rows >= kMaxRowBucket)
    return kMaxRowBucket;
  return static_cast<int64_t>(llvm::PowerOf2Ceil(static_cast<uint64_t>(rows)));
}

std::string normjit::tuner::getRowBucketLabel(int64_t bucket) {
  if (bucket <= 0)
    return "rows=0";
  if (bucket >= kMaxRowBucket)
    return "rows>" + std::to_string(kMaxRowBucket / 2);
  return "rows<=" + std::to_string(bucket);
}

bool normjit::tuner::isGpuDeviceKey(llvm::StringRef device) {
  return device.starts_with("cuda");
}

std::string CacheEntry::getConfigText() const {
  return isGpu() ? gpuConfig.str() : config.str();
}

std::optional<std::string> CacheEntry::getRunnerUpText() const {
  if (isGpu())
    return gpuRunnerUp ? std::optional<std::string>(gpuRunnerUp->str())
                       : std::nullopt;
  return runnerUp ? std::optional<std::string>(runnerUp->str()) : std::nullopt;
}

std::string normjit::tuner::getUtcTimestamp() {
  return formatUtcNow("%Y-%m-%dT%H:%M:%SZ");
}

bool CacheKey::operator==(const CacheKey &other) const {
  return std::tie(spec, rowBucket, device, normjitVersion, llvmVersion,
                  threads, coldCache) ==
         std::tie(other.spec, other.rowBucket, other.device,
                  other.normjitVersion, other.llvmVersion, other.threads,
                  other.coldCache);
}

bool CacheKey::operator<(const CacheKey &other) const {
  return std::tie(spec, rowBucket, device, normjitVersion, llvmVersion,
                  threads, coldCache) <
         std::tie(other.spec, other.rowBucket, other.device,
                  other.normjitVersion, other.llvmVersion, other.threads,
                  other.coldCache);
}

//===----------------------------------------------------------------------===//
// TuningCache
//===----------------------------------------------------------------------===//

std::string TuningCache::getDefaultPath() {
  llvm::SmallString<256> path;
  const char *cacheDir = std::getenv("NORMJIT_CACHE_DIR");
  const char *xdg = std::getenv("XDG_CACHE_HOME");
  if (cacheDir && *cacheDir) {
    path = cacheDir;
  } else if (xdg && *xdg && llvm::sys::path::is_absolute(xdg)) {
    // The XDG spec says to ignore a relative $XDG_CACHE_HOME.
    path = xdg;
    llvm::sys::path::append(path, "normjit");
  } else if (llvm::sys::path::home_directory(path) && !path.empty() &&
             llvm::sys::path::is_absolute(path)) {
    llvm::sys::path::append(path, ".cache", "normjit");
  } else if (const struct passwd *user = ::getpwuid(::getuid());
             user && user->pw_dir && llvm::sys::path::is_absolute(user->pw_dir)) {
    // $HOME unset, empty or relative: the account's home, never a cache
    // that moves with the working directory.
    path = user->pw_dir;
    llvm::sys::path::append(path, ".cache", "normjit");
  } else {
    llvm::sys::path::system_temp_directory(/*ErasedOnReboot=*/false, path);
    llvm::sys::path::append(path,
                            "normjit-cache-" + std::to_string(::getuid()));
  }
  llvm::sys::path::append(path, "tuning.toml");
  return std::string(path);
}

TuningCache::TuningCache(std::string path) : path(std::move(path)) {
  // A symbolic link to the cache stays a link: its target is the file read,
  // locked and replaced.
  // (A link to a file not made yet is followed too.)
  struct stat info;
  for (int depth = 0; depth < 40 && !this->path.empty() &&
                      ::lstat(this->path.c_str(), &info) == 0 &&
                      S_ISLNK(info.st_mode);
       ++depth) {
    char target[4096];
    ssize_t size = ::readlink(this->path.c_str(), target, sizeof target - 1);
    if (size <= 0)
      break;
    std::string next(target, static_cast<size_t>(size));
    if (!llvm::sys::path::is_absolute(next)) {
      llvm::SmallString<256> joined(getDirectory(this->path));
      llvm::sys::path::append(joined, next);
      next = std::string(joined);
    }
    this->path = next;
  }
}

llvm::Error TuningCache::load(bool setAsideUntrusted) {
  warnings.clear();
  entries.clear();
  unsaved.clear();
  DiskState state;
  if (llvm::Error error = readDisk(path, state))
    return error;
  if (state.kind != DiskState::Corrupt) {
    entries = std::move(state.entries);
    return llvm::Error::success();
  }
  if (state.foreign) {
    warnings.push_back(describeForeignRead(path, state));
    return llvm::Error::success();
  }
  if (!setAsideUntrusted) {
    warnings.push_back("tuning cache '" + path + "' cannot be trusted (" +
                       state.problem + "); not used, and left as it is");
    return llvm::Error::success();
  }
  // Set the file aside only with the lock held, after reading it again: a
  // writer may have replaced it since, and its file must not be moved.
  ScopedFd lock;
  if (llvm::Error error = lockCache(path, lock)) {
    warnings.push_back("tuning cache '" + path + "' cannot be trusted (" +
                       state.problem + ") and cannot be set aside (" +
                       llvm::toString(std::move(error)) +
                       "); starting with an empty cache");
    return llvm::Error::success();
  }
  if (llvm::Error error = readDisk(path, state))
    return error;
  if (state.foreign)
    warnings.push_back(describeForeignRead(path, state));
  else if (state.kind == DiskState::Corrupt)
    warnings.push_back(setAside(path, state.problem));
  else
    entries = std::move(state.entries);
  return llvm::Error::success();
}

std::optional<CacheEntry> TuningCache::lookup(const CacheKey &key) const {
  auto it = std::lower_bound(entries.begin(), entries.end(), key,
                             [](const CacheEntry &entry, const CacheKey &key) {
                               return entry.key < key;
                             });
  if (it == entries.end() || !(it->key == key))
    return std::nullopt;
  return *it;
}

llvm::Error TuningCache::store(const std::vector<CacheEntry> &newEntries) {
  for (const CacheEntry &entry : newEntries) {
    std::string problem = checkEntry(entry);
    if (!problem.empty())
      return makeError(NORMJIT_INVALID_ARGUMENT,
                       "cannot store in tuning cache '" + path +
                           "': " + describeKey(entry.key) + ": " + problem);
  }
  ScopedFd lock;
  std::vector<CacheEntry> base;
  if (llvm::Error error = lockAndRead(path, entries, warnings, lock, base))
    return error;
  std::vector<CacheEntry> result = combine(base, newEntries);
  if (llvm::Error error = writeAtomically(path, formatDocument(result)))
    return error;
  keepUnsaved(std::move(result));
  return llvm::Error::success();
}

void TuningCache::keepUnsaved(std::vector<CacheEntry> written) {
  // Remembered entries the file now has (these, or another process's of
  // the same key) are saved; the others are kept for this object's lookups.
  llvm::erase_if(unsaved, [&](const CacheEntry &entry) {
    return std::binary_search(
        written.begin(), written.end(), entry,
        [](const CacheEntry &a, const CacheEntry &b) { return a.key < b.key; });
  });
  entries = combine(written, unsaved);
}

void TuningCache::remember(const std::vector<CacheEntry> &newEntries) {
  entries = combine(entries, newEntries);
  unsaved = combine(unsaved, newEntries);
}

bool TuningCache::isUnsaved(const CacheKey &key) const {
  auto it = std::lower_bound(unsaved.begin(), unsaved.end(), key,
                             [](const CacheEntry &entry, const CacheKey &key) {
                               return entry.key < key;
                             });
  return it != unsaved.end() && it->key == key;
}

llvm::Error TuningCache::checkWritable() const {
  if (llvm::Error error = refuseForeignFile(path))
    return error;
  std::string directory = getDirectory(path);
  if (std::error_code error = llvm::sys::fs::create_directories(directory))
    return makeError(NORMJIT_IO_ERROR, "cannot create the directory of "
                                       "tuning cache '" +
                                           path + "': " + error.message());
  ScopedFd lock;
  if (llvm::Error error = openLockFile(path, lock, "cannot write"))
    return error;
  // The file is replaced by a rename from a temporary in its directory.
  if (::access(directory.empty() ? "." : directory.c_str(), W_OK) != 0)
    return makeError(NORMJIT_IO_ERROR,
                     "cannot write tuning cache '" + path + "': directory '" +
                         directory + "': " +
                         normjit::runtime::errorText(errno));
  // Nor over someone's file (a mistyped --cache).
  DiskState state;
  if (llvm::Error error = readDisk(path, state))
    return error;
  if (state.foreign)
    return makeError(NORMJIT_INVALID_ARGUMENT, describeForeign(path, state));
  return llvm::Error::success();
}

llvm::Error TuningCache::merge(const std::vector<std::string> &inputs,
                               std::vector<std::string> &messages) {
  // Every input must be readable and valid before anything is written.
  std::vector<std::vector<CacheEntry>> shards;
  for (const std::string &input : inputs) {
    DiskState state;
    if (llvm::Error error = readDisk(input, state))
      return error;
    if (state.kind == DiskState::Missing)
      return makeError(NORMJIT_IO_ERROR, "cannot merge tuning cache '" + input +
                                             "': no such file");
    if (state.kind == DiskState::Corrupt)
      return makeError(NORMJIT_INVALID_ARGUMENT,
                       "cannot merge tuning cache '" + input +
                           "': not a valid tuning cache: " + state.problem);
    shards.push_back(std::move(state.entries));
  }

  ScopedFd lock;
  std::vector<CacheEntry> base;
  if (llvm::Error error = lockAndRead(path, entries, warnings, lock, base))
    return error;

  // Each key's entry and the file it came from.
  std::map<CacheKey, std::pair<CacheEntry, const std::string *>> all;
  for (CacheEntry &entry : base) {
    CacheKey key = entry.key;
    all.emplace(std::move(key), std::make_pair(std::move(entry), &path));
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    for (CacheEntry &entry : shards[i]) {
      auto [it, inserted] =
          all.emplace(entry.key, std::make_pair(entry, &inputs[i]));
      if (inserted)
        continue;
      auto &[kept, keptFrom] = it->second;
      bool replace = entry.gbps > kept.gbps;
      const CacheEntry &winner = replace ? entry : kept;
      const CacheEntry &loser = replace ? kept : entry;
      const std::string &winnerFrom = replace ? inputs[i] : *keptFrom;
      const std::string &loserFrom = replace ? *keptFrom : inputs[i];
      auto [winnerRate, loserRate] = formatRates(winner.gbps, loser.gbps);
      std::string message = describeKey(entry.key) + ": kept " + winnerRate +
                            " GB/s from " + winnerFrom + " over " + loserRate +
                            " GB/s from " + loserFrom;
      if (winner.gbps == loser.gbps)
        message += " (equal: the first read is kept)";
      messages.push_back(std::move(message));
      if (replace) {
        kept = entry;
        keptFrom = &inputs[i];
      }
    }
  }

  std::vector<CacheEntry> result;
  result.reserve(all.size());
  for (auto &item : all)
    result.push_back(std::move(item.second.first));
  if (llvm::Error error = writeAtomically(path, formatDocument(result)))
    return error;
  keepUnsaved(std::move(result));
  return llvm::Error::success();
}

namespace {
/// Whether the file at `path` could be a tuning cache: empty, or its first
/// 4 KiB hold normjit's header or a `schema` key (a truncated or hand-made
/// cache too). `clear` removes nothing else: a mistyped --cache must not
/// delete someone's data.
bool looksLikeTuningCache(const std::string &path) {
  std::FILE *file = std::fopen(path.c_str(), "rb");
  if (!file)
    return true; // unlink reports what is wrong
  char buffer[4096];
  size_t size = std::fread(buffer, 1, sizeof buffer, file);
  std::fclose(file);
  return headLooksLikeCache(llvm::StringRef(buffer, size));
}
} // namespace

llvm::Error TuningCache::clear() {
  entries.clear();
  unsaved.clear();
  // What the path names: only a regular file is ever removed, never a
  // device, FIFO or socket given by mistake. (The constructor resolved a
  // link to the cache it names, which reads and writes go to as well.)
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT)
      return llvm::Error::success();
    return makeError(NORMJIT_IO_ERROR,
                     "cannot clear tuning cache '" + path +
                         "': " + normjit::runtime::errorText(errno));
  }
  if (S_ISDIR(info.st_mode))
    return makeError(NORMJIT_IO_ERROR, "cannot clear tuning cache '" + path +
                                           "': it is a directory");
  if (!S_ISREG(info.st_mode))
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "not clearing '" + path +
                         "': not a regular file (a device, FIFO or socket)");
  if (!looksLikeTuningCache(path))
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "not clearing '" + path +
                         "': it does not look like a normjit tuning cache "
                         "(no '# normjit tuning cache' header or 'schema' "
                         "key in its first 4 KiB); remove it by hand if it "
                         "is one");
  ScopedFd lock;
  if (llvm::Error error = lockCache(path, lock))
    return error;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return makeError(NORMJIT_IO_ERROR,
                     "cannot clear tuning cache '" + path +
                         "': " + normjit::runtime::errorText(errno));
  return llvm::Error::success();
}

std::vector<CacheEntry> TuningCache::getEntries() const { return entries; }
