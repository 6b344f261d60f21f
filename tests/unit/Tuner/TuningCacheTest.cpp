//===- TuningCacheTest.cpp - the per-device TOML tuning cache -------------===//
//
// Part of normjit. Round trips, lookups that must miss, the default path,
// every way a cache file can be corrupt or hostile, merging shards, and four
// processes storing into one cache at once.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/TuningCache.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace normjit;
using namespace normjit::tuner;

namespace {

const char *const kDevice = "cpu|TestVendor|Test CPU 9000|avx,avx2,fma|8";
const char *const kSpec =
    "layer_norm:4096:x0:y0:r-1:s-1:g0:b0:m0:rs0:eps3727c5ac";
/// The same with a residual whose sum is stored (entries with a fusion).
const char *const kResidualSpec =
    "layer_norm:4096:x0:y0:r0:s0:g0:b0:m0:rs0:eps3727c5ac";

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

std::string readBytes(const std::string &path) {
  std::ifstream stream(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(stream),
                     std::istreambuf_iterator<char>());
}

void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool exists(const std::string &path) {
  struct stat info;
  return ::lstat(path.c_str(), &info) == 0;
}

/// The names in `directory` that contain `part`, sorted.
std::vector<std::string> listNames(const std::string &directory,
                                   const std::string &part) {
  std::vector<std::string> names;
  if (DIR *dir = ::opendir(directory.c_str())) {
    while (dirent *item = ::readdir(dir)) {
      std::string name = item->d_name;
      if (name.find(part) != std::string::npos)
        names.push_back(name);
    }
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

/// Removes a directory tree (no exceptions: -fno-exceptions build).
void removeTree(const std::string &path) {
  if (DIR *dir = ::opendir(path.c_str())) {
    while (dirent *item = ::readdir(dir)) {
      std::string name = item->d_name;
      if (name == "." || name == "..")
        continue;
      std::string child = path + "/" + name;
      struct stat info;
      if (::lstat(child.c_str(), &info) == 0 && S_ISDIR(info.st_mode))
        removeTree(child);
      else
        ::unlink(child.c_str());
    }
    ::closedir(dir);
  }
  ::rmdir(path.c_str());
}

/// The message of an error (consumed), or "" for success.
std::string takeMessage(llvm::Error error) {
  if (!error)
    return "";
  return llvm::toString(std::move(error));
}

/// The status of an error (consumed).
normjit_status_t takeStatus(llvm::Error error) {
  normjit_status_t status = NORMJIT_OK;
  llvm::handleAllErrors(
      std::move(error), [&](const StatusError &e) { status = e.getStatus(); },
      [&](const llvm::ErrorInfoBase &) { status = NORMJIT_INTERNAL; });
  return status;
}

/// Replaces the first `from` in `text` by `to`; `from` must be there.
std::string replaceOnce(std::string text, const std::string &from,
                        const std::string &to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "'" << from << "' not in:\n" << text;
  if (at != std::string::npos)
    text.replace(at, from.size(), to);
  return text;
}

CacheKey makeKey(const std::string &spec, int64_t rowBucket = 1024) {
  CacheKey key;
  key.spec = spec;
  key.rowBucket = rowBucket;
  key.device = kDevice;
  key.normjitVersion = "0.1.0";
  key.llvmVersion = "22.1.0";
  return key;
}

CacheEntry makeEntry(const std::string &spec, double gbps = 41.25,
                     int64_t rowBucket = 1024) {
  CacheEntry entry;
  entry.key = makeKey(spec, rowBucket);
  entry.config.vectorWidth = 16;
  entry.config.accumulators = 4;
  entry.config.rowsPerTask = 8;
  entry.config.threads = 0;
  entry.config.welford = false;
  entry.config.streamingStores = false;
  entry.config.fuseResidual = true;
  entry.gbps = gbps;
  entry.defaultGbps = 30.5;
  entry.candidates = 120;
  entry.tunedAt = "2026-11-26T18:00:00Z";
  return entry;
}

/// An entry that uses every field, the runner-up included.
CacheEntry makeFullEntry() {
  CacheEntry entry = makeEntry(kResidualSpec, 41.2, 2048);
  entry.config.welford = true;
  entry.config.streamingStores = true;
  entry.config.fuseResidual = false;
  entry.config.threads = 12;
  entry.config.rowsPerTask = 32;
  entry.config.prefetchRows = 2;
  entry.config.rowGroup = 8;
  CpuConfig runnerUp;
  runnerUp.vectorWidth = 8;
  runnerUp.accumulators = 2;
  runnerUp.rowsPerTask = 64;
  runnerUp.threads = 4;
  runnerUp.welford = false;
  runnerUp.streamingStores = false;
  runnerUp.fuseResidual = true;
  entry.runnerUp = runnerUp;
  entry.runnerUpGbps = 38.0625;
  entry.fusion = "split";
  entry.fusionMargin = 1.0833333333333333;
  entry.candidates = 987654321;
  entry.defaultGbps = 0.1;
  entry.tunedAt = "2027-01-02T03:04:05Z";
  return entry;
}

void expectSameEntry(const CacheEntry &a, const CacheEntry &b) {
  EXPECT_TRUE(a.key == b.key);
  EXPECT_EQ(a.key.spec, b.key.spec);
  EXPECT_EQ(a.key.rowBucket, b.key.rowBucket);
  EXPECT_EQ(a.key.device, b.key.device);
  EXPECT_EQ(a.key.normjitVersion, b.key.normjitVersion);
  EXPECT_EQ(a.key.llvmVersion, b.key.llvmVersion);
  EXPECT_TRUE(a.config == b.config)
      << a.config.str() << " vs " << b.config.str();
  EXPECT_EQ(a.config.threads, b.config.threads);
  EXPECT_EQ(a.config.welford, b.config.welford);
  EXPECT_EQ(a.config.streamingStores, b.config.streamingStores);
  EXPECT_EQ(a.config.fuseResidual, b.config.fuseResidual);
  EXPECT_EQ(a.config.prefetchRows, b.config.prefetchRows);
  EXPECT_EQ(a.config.rowGroup, b.config.rowGroup);
  EXPECT_EQ(a.gbps, b.gbps);
  EXPECT_EQ(a.defaultGbps, b.defaultGbps);
  ASSERT_EQ(a.runnerUp.has_value(), b.runnerUp.has_value());
  if (a.runnerUp) {
    EXPECT_TRUE(*a.runnerUp == *b.runnerUp);
    EXPECT_EQ(a.runnerUp->threads, b.runnerUp->threads);
  }
  EXPECT_EQ(a.runnerUpGbps, b.runnerUpGbps);
  EXPECT_EQ(a.fusion, b.fusion);
  EXPECT_EQ(a.fusionMargin, b.fusionMargin);
  EXPECT_EQ(a.candidates, b.candidates);
  EXPECT_EQ(a.tunedAt, b.tunedAt);
}

/// Each test gets a fresh directory, removed at the end.
class TuningCacheTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "normjit-tuning-XXXXXX";
    std::vector<char> name(pattern.begin(), pattern.end());
    name.push_back('\0');
    ASSERT_NE(::mkdtemp(name.data()), nullptr) << std::strerror(errno);
    dir = name.data();
    path = dir + "/tuning.toml";
  }
  void TearDown() override { removeTree(dir); }

  /// The text of a valid cache holding makeFullEntry() and one plain entry.
  std::string validText() {
    std::string scratch = dir + "/valid-scratch.toml";
    TuningCache cache(scratch);
    EXPECT_EQ(takeMessage(cache.store({makeFullEntry(), makeEntry("b")})), "");
    std::string text = readBytes(scratch);
    ::unlink(scratch.c_str());
    return text;
  }

  /// Writes `content` as the cache in a fresh subdirectory and checks that
  /// load() reports it (naming the file and `reason`), sets it aside with
  /// its bytes intact and starts empty.
  void expectUntrusted(const std::string &content, const std::string &reason) {
    SCOPED_TRACE("reason " + reason);
    std::string subdir = dir + "/case" + std::to_string(++cases);
    ASSERT_EQ(::mkdir(subdir.c_str(), 0755), 0);
    std::string file = subdir + "/tuning.toml";
    writeBytes(file, content);
    TuningCache cache(file);
    ASSERT_EQ(takeMessage(cache.load()), "");
    EXPECT_TRUE(cache.getEntries().empty());
    EXPECT_FALSE(cache.lookup(makeFullEntry().key).has_value());
    ASSERT_EQ(cache.getWarnings().size(), 1u);
    const std::string &warning = cache.getWarnings()[0];
    EXPECT_NE(warning.find("'" + file + "'"), std::string::npos) << warning;
    EXPECT_NE(warning.find(reason), std::string::npos) << warning;
    EXPECT_NE(warning.find("set aside as"), std::string::npos) << warning;
    EXPECT_EQ(warning.find('\n'), std::string::npos) << warning;
    EXPECT_FALSE(exists(file));
    std::vector<std::string> corrupt =
        listNames(subdir, "tuning.toml.corrupt-");
    ASSERT_EQ(corrupt.size(), 1u);
    EXPECT_NE(warning.find(corrupt[0]), std::string::npos) << warning;
    EXPECT_EQ(readBytes(subdir + "/" + corrupt[0]), content);
  }

  std::string dir;
  std::string path;
  int cases = 0;
};

//===----------------------------------------------------------------------===//
// Round trips and lookups
//===----------------------------------------------------------------------===//

TEST_F(TuningCacheTest, MissingFileIsAnEmptyCache) {
  TuningCache cache(path);
  EXPECT_EQ(cache.getPath(), path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_TRUE(cache.getEntries().empty());
  EXPECT_TRUE(cache.getWarnings().empty());
  EXPECT_FALSE(exists(path));
}

TEST_F(TuningCacheTest, RoundTripKeepsEveryField) {
  CacheEntry full = makeFullEntry();
  CacheEntry plain = makeEntry("rms_norm:1024:x0:y0");
  {
    TuningCache cache(path);
    ASSERT_EQ(takeMessage(cache.store({full, plain})), "");
    // store() updates the in-memory view too.
    ASSERT_TRUE(cache.lookup(full.key).has_value());
  }
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_TRUE(cache.getWarnings().empty());
  ASSERT_EQ(cache.getEntries().size(), 2u);
  std::optional<CacheEntry> got = cache.lookup(full.key);
  ASSERT_TRUE(got.has_value());
  expectSameEntry(*got, full);
  got = cache.lookup(plain.key);
  ASSERT_TRUE(got.has_value());
  expectSameEntry(*got, plain);
  EXPECT_FALSE(got->runnerUp.has_value());

  // The file is the documented, human-readable format.
  std::string text = readBytes(path);
  EXPECT_NE(text.find("schema = 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[[entry]]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("gbps = 41.2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("config = { vector_width = 16, accumulators = 4, "
                      "rows_per_task = 32, threads = 12, algorithm = "
                      "\"welford\", streaming_stores = true, fuse_residual = "
                      "false, prefetch_rows = 2, row_group = 8 }\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("runner_up_gbps = 38.0625\n"), std::string::npos) << text;
  // Nothing but the cache and its lock file is left in the directory.
  EXPECT_EQ(listNames(dir, ".tmp").size(), 0u);
}

TEST_F(TuningCacheTest, StringsWithQuotesRoundTrip) {
  CacheEntry entry = makeEntry("spec \"quoted\" \\ back\\slash ü");
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.store({entry})), "");
  TuningCache again(path);
  ASSERT_EQ(takeMessage(again.load()), "");
  EXPECT_TRUE(again.getWarnings().empty());
  ASSERT_TRUE(again.lookup(entry.key).has_value());
}

TEST_F(TuningCacheTest, LookupMissesOtherDeviceVersionOrBucket) {
  CacheEntry entry = makeEntry(kSpec);
  {
    TuningCache cache(path);
    ASSERT_EQ(takeMessage(cache.store({entry})), "");
  }
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_TRUE(cache.lookup(entry.key).has_value());

  CacheKey key = entry.key;
  key.device = "cpu|TestVendor|Test CPU 9000|avx,avx2,fma|16";
  EXPECT_FALSE(cache.lookup(key).has_value()) << "another device";
  key = entry.key;
  key.normjitVersion = "0.2.0";
  EXPECT_FALSE(cache.lookup(key).has_value()) << "another normjit";
  key = entry.key;
  key.llvmVersion = "23.0.0";
  EXPECT_FALSE(cache.lookup(key).has_value()) << "another LLVM";
  key = entry.key;
  key.rowBucket = 2048;
  EXPECT_FALSE(cache.lookup(key).has_value()) << "another row bucket";
  key = entry.key;
  key.spec = "rms_norm:4096";
  EXPECT_FALSE(cache.lookup(key).has_value()) << "another spec";
  key = entry.key;
  key.threads = 1;
  EXPECT_FALSE(cache.lookup(key).has_value()) << "another thread count";
}

TEST_F(TuningCacheTest, ThreadCountIsPartOfTheKey) {
  // The same spec tuned on all cores and on one thread: two entries; the
  // thread count is written only when nonzero and reads back.
  CacheEntry allCores = makeEntry(kSpec, 10);
  CacheEntry oneThread = makeEntry(kSpec, 20);
  oneThread.key.threads = 1;
  oneThread.config.threads = 1;
  {
    TuningCache cache(path);
    ASSERT_EQ(takeMessage(cache.store({allCores, oneThread})), "");
  }
  std::string text = readBytes(path);
  size_t written = 0;
  for (size_t at = text.find("\nthreads = "); at != std::string::npos;
       at = text.find("\nthreads = ", at + 1))
    ++written;
  EXPECT_EQ(written, 1u) << text;
  EXPECT_NE(text.find("\nthreads = 1\n"), std::string::npos) << text;
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  ASSERT_EQ(cache.getEntries().size(), 2u);
  auto one = cache.lookup(oneThread.key);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->gbps, 20);
  EXPECT_EQ(one->key.threads, 1);
  auto all = cache.lookup(allCores.key);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->gbps, 10);
  EXPECT_EQ(all->key.threads, 0);
}

TEST_F(TuningCacheTest, ColdCacheIsPartOfTheKey) {
  // The same spec tuned warm and with the caches flushed: two entries; the
  // cold one alone writes cold_cache, reads it back, and is found only by
  // a cold lookup (what wins cold can lose warm).
  CacheEntry warm = makeEntry(kSpec, 10);
  CacheEntry cold = makeEntry(kSpec, 4);
  cold.key.coldCache = true;
  {
    TuningCache cache(path);
    ASSERT_EQ(takeMessage(cache.store({warm})), "");
    ASSERT_EQ(takeMessage(cache.store({cold})), "");
  }
  std::string text = readBytes(path);
  size_t first = text.find("\ncold_cache = true\n");
  ASSERT_NE(first, std::string::npos) << text;
  EXPECT_EQ(text.find("cold_cache", first + 2), std::string::npos) << text;
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  ASSERT_EQ(cache.getEntries().size(), 2u);
  auto warmFound = cache.lookup(warm.key);
  ASSERT_TRUE(warmFound.has_value());
  EXPECT_EQ(warmFound->gbps, 10);
  EXPECT_FALSE(warmFound->key.coldCache);
  auto coldFound = cache.lookup(cold.key);
  ASSERT_TRUE(coldFound.has_value());
  EXPECT_EQ(coldFound->gbps, 4);
  EXPECT_TRUE(coldFound->key.coldCache);
  // A cold entry alone: a warm lookup finds nothing.
  TuningCache coldOnly(dir + "/cold-only.toml");
  ASSERT_EQ(takeMessage(coldOnly.store({cold})), "");
  EXPECT_FALSE(coldOnly.lookup(warm.key).has_value());
  // A file whose cold_cache is not a boolean is not trusted.
  expectUntrusted(replaceOnce(text, "cold_cache = true", "cold_cache = 1"),
                  "cold_cache must be a boolean, got an integer");
}

TEST_F(TuningCacheTest, StoreReplacesSameKeyAndKeepsOthers) {
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a", 10), makeEntry("b", 20)})),
            "");
  CacheEntry better = makeEntry("a", 15);
  better.config.vectorWidth = 32;
  ASSERT_EQ(takeMessage(cache.store({better})), "");
  TuningCache again(path);
  ASSERT_EQ(takeMessage(again.load()), "");
  ASSERT_EQ(again.getEntries().size(), 2u);
  std::optional<CacheEntry> got = again.lookup(better.key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->gbps, 15);
  EXPECT_EQ(got->config.vectorWidth, 32);
}

TEST_F(TuningCacheTest, StoreKeepsEntriesOtherWritersAdded) {
  TuningCache first(path);
  TuningCache second(path);
  ASSERT_EQ(takeMessage(first.load()), "");
  ASSERT_EQ(takeMessage(second.load()), "");
  ASSERT_EQ(takeMessage(first.store({makeEntry("a")})), "");
  ASSERT_EQ(takeMessage(second.store({makeEntry("b")})), "");
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_EQ(cache.getEntries().size(), 2u);
  EXPECT_EQ(second.getEntries().size(), 2u);
}

TEST_F(TuningCacheTest, RememberedEntriesOutliveOtherStores) {
  // An entry the file could not take is kept for this object's lookups,
  // marked unsaved, through the store of another entry, until a store
  // saves it.
  TuningCache cache(path);
  CacheEntry remembered = makeEntry("a", 10), other = makeEntry("b", 20);
  cache.remember({remembered});
  EXPECT_TRUE(cache.isUnsaved(remembered.key));
  ASSERT_EQ(takeMessage(cache.store({other})), "");
  ASSERT_TRUE(cache.lookup(remembered.key).has_value());
  EXPECT_TRUE(cache.isUnsaved(remembered.key));
  EXPECT_FALSE(cache.isUnsaved(other.key));
  TuningCache file(path);
  ASSERT_EQ(takeMessage(file.load()), "");
  EXPECT_EQ(file.getEntries().size(), 1u); // only the stored one
  // A merge into the file keeps it too.
  std::string shard = path + ".shard";
  ASSERT_EQ(takeMessage(TuningCache(shard).store({makeEntry("c", 30)})), "");
  std::vector<std::string> messages;
  ASSERT_EQ(takeMessage(cache.merge({shard}, messages)), "");
  ASSERT_TRUE(cache.lookup(remembered.key).has_value());
  EXPECT_TRUE(cache.isUnsaved(remembered.key));
  ASSERT_EQ(takeMessage(cache.store({remembered})), "");
  EXPECT_FALSE(cache.isUnsaved(remembered.key));
  EXPECT_EQ(cache.getEntries().size(), 3u);
  std::remove(shard.c_str());
}

TEST_F(TuningCacheTest, OutputIsSortedAndDeterministic) {
  std::string other = dir + "/other.toml";
  TuningCache one(path);
  TuningCache two(other);
  ASSERT_EQ(takeMessage(one.store(
                {makeEntry("c"), makeEntry("a"), makeEntry("b", 1, 4)})),
            "");
  ASSERT_EQ(takeMessage(two.store({makeEntry("b", 1, 4)})), "");
  ASSERT_EQ(takeMessage(two.store({makeEntry("a"), makeEntry("c")})), "");
  EXPECT_EQ(readBytes(path), readBytes(other));
  std::vector<CacheEntry> entries = one.getEntries();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_TRUE(std::is_sorted(
      entries.begin(), entries.end(),
      [](const CacheEntry &a, const CacheEntry &b) { return a.key < b.key; }));
}

TEST_F(TuningCacheTest, StoreCreatesTheDirectory) {
  std::string nested = dir + "/a/b/c/tuning.toml";
  TuningCache cache(nested);
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  EXPECT_TRUE(exists(nested));
}

TEST_F(TuningCacheTest, StoreRejectsInvalidEntries) {
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  std::string before = readBytes(path);

  std::vector<CacheEntry> bad(7, makeEntry("x"));
  bad[0].gbps = std::nan("");
  bad[1].config.vectorWidth = 3;
  bad[2].key.rowBucket = 1000;
  bad[3].key.device = "";
  bad[4].fusion = "sometimes";
  bad[5].runnerUpGbps = 3; // without a runner-up
  bad[6].key.spec = std::string("a\nb");
  for (const CacheEntry &entry : bad) {
    llvm::Error error = cache.store({makeEntry("ok"), entry});
    std::string message;
    normjit_status_t status = NORMJIT_OK;
    llvm::handleAllErrors(std::move(error), [&](const StatusError &e) {
      status = e.getStatus();
      message = e.getMessage();
    });
    EXPECT_EQ(status, NORMJIT_INVALID_ARGUMENT) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
  }
  EXPECT_EQ(readBytes(path), before);
}

TEST_F(TuningCacheTest, StoreFailureNamesThePath) {
  // The directory cannot be created: a regular file is in the way.
  std::string blocker = dir + "/blocker";
  writeBytes(blocker, "x");
  std::string blocked = blocker + "/sub/tuning.toml";
  TuningCache cache(blocked);
  llvm::Error error = cache.store({makeEntry("a")});
  ASSERT_TRUE(static_cast<bool>(error));
  std::string message = llvm::toString(std::move(error));
  EXPECT_NE(message.find(blocked), std::string::npos) << message;
  EXPECT_EQ(listNames(dir, ".tmp").size(), 0u);
}

TEST_F(TuningCacheTest, UnreadableFileIsAnError) {
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  TuningCache cache(path);
  llvm::Error error = cache.load();
  ASSERT_TRUE(static_cast<bool>(error));
  std::string message = llvm::toString(std::move(error));
  EXPECT_NE(message.find(path), std::string::npos) << message;
  // Never set aside what could not be read.
  EXPECT_TRUE(listNames(dir, ".corrupt-").empty());
}

// A writer killed between writing its temporary and renaming it leaves the
// temporary behind; the next writer, holding the lock, removes it.
TEST_F(TuningCacheTest, StaleTemporariesAreRemoved) {
  writeBytes(dir + "/.tuning.toml.tmp-Ab12Cd", "half a cache");
  writeBytes(dir + "/.other.toml.tmp-Ab12Cd", "another cache's");
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  EXPECT_FALSE(exists(dir + "/.tuning.toml.tmp-Ab12Cd"));
  EXPECT_TRUE(exists(dir + "/.other.toml.tmp-Ab12Cd"));
}

// A FIFO where the cache should be is refused, never waited on (opening it
// for reading would block until a writer came).
TEST_F(TuningCacheTest, FifoIsRefusedNotWaitedOn) {
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
  TuningCache cache(path);
  EXPECT_NE(takeMessage(cache.load()).find("not a regular file"),
            std::string::npos);
}

// A symbolic link to the cache stays a link: its target is read and
// replaced, also when the target does not exist yet.
TEST_F(TuningCacheTest, SymbolicLinkStaysALink) {
  std::string target = dir + "/real.toml", link = dir + "/link.toml";
  ASSERT_EQ(::symlink("real.toml", link.c_str()), 0);
  {
    TuningCache cache(link);
    ASSERT_EQ(takeMessage(cache.load()), "");
    ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  }
  struct stat info;
  ASSERT_EQ(::lstat(link.c_str(), &info), 0);
  EXPECT_TRUE(S_ISLNK(info.st_mode));
  ASSERT_TRUE(exists(target));
  TuningCache again(link);
  ASSERT_EQ(takeMessage(again.load()), "");
  EXPECT_EQ(again.getEntries().size(), 1u);
}

TEST_F(TuningCacheTest, Clear) {
  TuningCache cache(path);
  EXPECT_EQ(takeMessage(cache.clear()), "") << "no file yet";
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  ASSERT_TRUE(exists(path));
  std::string aside = path + ".corrupt-20000101T000000Z";
  writeBytes(aside, "kept");
  ASSERT_EQ(takeMessage(cache.clear()), "");
  EXPECT_FALSE(exists(path));
  EXPECT_TRUE(cache.getEntries().empty());
  EXPECT_EQ(readBytes(aside), "kept");
  TuningCache again(path);
  ASSERT_EQ(takeMessage(again.load()), "");
  EXPECT_TRUE(again.getEntries().empty());
}

// clear removes only what could be a tuning cache: a file of other data
// given by mistake is refused and kept.
TEST_F(TuningCacheTest, ClearKeepsFilesThatAreNoCache) {
  TuningCache cache(path);
  for (const std::string &bytes :
       {std::string("\x93NUMPY\x01\x00v\x00{'descr': '<f4'"),
        std::string("\0\1\2binary", 9), std::string("schemas = 1\n"),
        std::string(5000, ' ') + "schema = 1\n"}) {
    writeBytes(path, bytes);
    EXPECT_NE(takeMessage(cache.clear()).find("does not look like a normjit "
                                              "tuning cache"),
              std::string::npos);
    EXPECT_EQ(readBytes(path), bytes);
  }
  for (const std::string &bytes :
       {std::string(), std::string("# normjit tuning cache: the be"),
        std::string("# by hand\n\n  schema=1\n[[entry]]\n"),
        std::string("schema = 99\n"), std::string("schema = \"x\""),
        std::string("\"schema\" = 1\n"), std::string("'schema' = 1\n"),
        std::string("\xEF\xBB\xBFschema = 1\n")}) {
    writeBytes(path, bytes);
    EXPECT_EQ(takeMessage(cache.clear()), "") << bytes;
    EXPECT_FALSE(exists(path)) << bytes;
  }
}

// Nor anything but a regular file: a FIFO, a socket (a device alike).
TEST_F(TuningCacheTest, ClearRemovesOnlyRegularFiles) {
  std::string fifo = dir + "/fifo.toml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  TuningCache byFifo(fifo);
  EXPECT_NE(takeMessage(byFifo.clear()).find("not a regular file"),
            std::string::npos);
  struct stat info;
  ASSERT_EQ(::lstat(fifo.c_str(), &info), 0);
  EXPECT_TRUE(S_ISFIFO(info.st_mode));
  std::string socketPath = dir + "/socket.toml";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(socketPath.size(), sizeof address.sun_path);
  std::strcpy(address.sun_path, socketPath.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address),
            0);
  TuningCache bySocket(socketPath);
  EXPECT_NE(takeMessage(bySocket.clear()).find("not a regular file"),
            std::string::npos);
  EXPECT_EQ(::lstat(socketPath.c_str(), &info), 0);
  ::close(fd);
  // A link to a cache: the cache it names is cleared (as reads and
  // writes go through the link to it), the link stays.
  writeBytes(path, "schema = 1\n");
  std::string link = dir + "/link.toml";
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  TuningCache byLink(link);
  EXPECT_EQ(takeMessage(byLink.clear()), "");
  EXPECT_EQ(::lstat(link.c_str(), &info), 0);
  EXPECT_FALSE(exists(path));
  // A script with a `schema = ...` line that is no value a cache has.
  writeBytes(path, "import x\nschema = load()\n");
  TuningCache script(path);
  EXPECT_NE(takeMessage(script.clear()).find("does not look like a normjit "
                                             "tuning cache"),
            std::string::npos);
  EXPECT_TRUE(exists(path));
}

// Someone's data under a mistyped --cache (not a .toml file, or a TOML
// file without a cache's keys, and no cache's header or schema key) is
// neither set aside by a read nor written over by a store.
TEST_F(TuningCacheTest, ForeignFilesAreLeftAsTheyAre) {
  const std::string npy("\x93NUMPY\x01\x00v\x00{'descr': '<f4', "
                        "'fortran_order': False, 'shape': (4,), }\n",
                        68);
  struct Case {
    std::string name, content;
  };
  for (const Case &c :
       {Case{"weights.npy", npy},
        Case{"notes.md", "# notes\nschema = load()\n"},
        Case{"sweep.toml", "[[sweep]]\nop = \"rms_norm\"\ncols = [768]\n"},
        Case{"binary.bin", std::string("\0\1\2\3garbage", 11)}}) {
    SCOPED_TRACE(c.name);
    std::string file = dir + "/" + c.name;
    writeBytes(file, c.content);
    TuningCache cache(file);
    ASSERT_EQ(takeMessage(cache.load()), "");
    ASSERT_EQ(cache.getWarnings().size(), 1u);
    EXPECT_NE(cache.getWarnings()[0].find("does not look like a normjit "
                                          "tuning cache"),
              std::string::npos)
        << cache.getWarnings()[0];
    EXPECT_NE(cache.getWarnings()[0].find("left as it is"), std::string::npos);
    EXPECT_TRUE(cache.getEntries().empty());
    EXPECT_EQ(readBytes(file), c.content);
    EXPECT_TRUE(listNames(dir, c.name + ".corrupt-").empty());
    std::string refusal = takeMessage(cache.checkWritable());
    EXPECT_NE(refusal.find("not writing tuning cache"), std::string::npos)
        << refusal;
    refusal = takeMessage(cache.store({makeEntry("a")}));
    EXPECT_NE(refusal.find("does not look like one"), std::string::npos)
        << refusal;
    EXPECT_EQ(readBytes(file), c.content);
    std::vector<std::string> messages;
    EXPECT_NE(takeMessage(cache.merge({}, messages)), "");
    EXPECT_EQ(readBytes(file), c.content);
  }
  // Damaged caches are still set aside: garbage in a .toml file, a cache's
  // head with anything after it, whatever the name.
  for (const Case &c :
       {Case{"garbage.toml", std::string("\0\1\2\3garbage", 11)},
        Case{"cut.cache", "# normjit tuning cache: the best\nschema = 1\n[[en"},
        Case{"old.bin", "schema = 7\n"}, Case{"blank.toml", "\n  \n"},
        Case{"comments.toml", "# tuned on the big box\n"},
        Case{"cut-header", "# normjit tu"}}) {
    SCOPED_TRACE(c.name);
    std::string file = dir + "/" + c.name;
    writeBytes(file, c.content);
    TuningCache cache(file);
    ASSERT_EQ(takeMessage(cache.load()), "");
    ASSERT_EQ(cache.getWarnings().size(), 1u);
    EXPECT_NE(cache.getWarnings()[0].find("set aside"), std::string::npos)
        << cache.getWarnings()[0];
    EXPECT_FALSE(exists(file));
    EXPECT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  }
}

// A cache file name so long that ".<name>.tmp-XXXXXX" would pass NAME_MAX:
// the temporaries take a shorter name, and stores work.
TEST_F(TuningCacheTest, LongFileNamesStore) {
  std::string file = dir + "/" + std::string(240, 'c') + ".toml";
  TuningCache cache(file);
  ASSERT_EQ(takeMessage(cache.checkWritable()), "");
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  ASSERT_EQ(takeMessage(cache.store({makeEntry("b")})), "");
  TuningCache again(file);
  ASSERT_EQ(takeMessage(again.load()), "");
  EXPECT_EQ(again.getEntries().size(), 2u);
  EXPECT_TRUE(listNames(dir, ".tmp-").empty()); // no temporaries left
  // Damaged, it is set aside under a shortened name too (not written over).
  std::string damaged = dir + "/" + std::string(236, 'd') + ".toml";
  writeBytes(damaged,
             "# normjit tuning cache\nschema = 1\n[[entry]]\nspec = \"");
  TuningCache repaired(damaged);
  ASSERT_EQ(takeMessage(repaired.store({makeEntry("a")})), "");
  ASSERT_EQ(repaired.getWarnings().size(), 1u);
  EXPECT_NE(repaired.getWarnings()[0].find("set aside as"), std::string::npos)
      << repaired.getWarnings()[0];
  std::vector<std::string> aside = listNames(dir, ".corrupt-");
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_LT(aside[0].size(), 255u);
  EXPECT_EQ(readBytes(dir + "/" + aside[0]),
            "# normjit tuning cache\nschema = 1\n[[entry]]\nspec = \"");
}

//===----------------------------------------------------------------------===//
// The default path
//===----------------------------------------------------------------------===//

/// Sets or unsets environment variables for a scope, restoring them after.
class ScopedEnvironment {
public:
  ~ScopedEnvironment() {
    for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
  }
  void set(const std::string &name, const char *value) {
    const char *old = std::getenv(name.c_str());
    saved.emplace_back(name,
                       old ? std::optional<std::string>(old) : std::nullopt);
    if (value)
      ::setenv(name.c_str(), value, 1);
    else
      ::unsetenv(name.c_str());
  }

private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
};

TEST_F(TuningCacheTest, DefaultPath) {
  ScopedEnvironment env;
  env.set("NORMJIT_CACHE_DIR", "/opt/cache");
  env.set("XDG_CACHE_HOME", "/xdg");
  env.set("HOME", "/home/tester");
  EXPECT_EQ(TuningCache::getDefaultPath(), "/opt/cache/tuning.toml");
  env.set("NORMJIT_CACHE_DIR", "/opt/cache/");
  EXPECT_EQ(TuningCache::getDefaultPath(), "/opt/cache/tuning.toml");

  env.set("NORMJIT_CACHE_DIR", nullptr);
  EXPECT_EQ(TuningCache::getDefaultPath(), "/xdg/normjit/tuning.toml");
  env.set("NORMJIT_CACHE_DIR", "");
  EXPECT_EQ(TuningCache::getDefaultPath(), "/xdg/normjit/tuning.toml");

  env.set("XDG_CACHE_HOME", nullptr);
  EXPECT_EQ(TuningCache::getDefaultPath(),
            "/home/tester/.cache/normjit/tuning.toml");
  env.set("XDG_CACHE_HOME", "");
  EXPECT_EQ(TuningCache::getDefaultPath(),
            "/home/tester/.cache/normjit/tuning.toml");
  // The XDG spec says to ignore a relative $XDG_CACHE_HOME.
  env.set("XDG_CACHE_HOME", "relative/cache");
  EXPECT_EQ(TuningCache::getDefaultPath(),
            "/home/tester/.cache/normjit/tuning.toml");
  // An empty or relative $HOME is not a place for a cache that would move
  // with the working directory: the account's home (or a temporary
  // directory) instead, always an absolute path.
  for (const char *home : {"", "relative/home"}) {
    env.set("HOME", home);
    std::string path = TuningCache::getDefaultPath();
    EXPECT_TRUE(llvm::sys::path::is_absolute(path)) << path;
    EXPECT_TRUE(llvm::StringRef(path).ends_with("/tuning.toml")) << path;
  }
}

//===----------------------------------------------------------------------===//
// Corrupt and hostile files
//===----------------------------------------------------------------------===//

TEST_F(TuningCacheTest, ValidTextIsTrusted) {
  // The base of the corruption tests below: as written, it loads.
  std::string text = validText();
  writeBytes(path, text);
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_TRUE(cache.getWarnings().empty());
  EXPECT_EQ(cache.getEntries().size(), 2u);
  EXPECT_TRUE(listNames(dir, ".corrupt-").empty());
}

TEST_F(TuningCacheTest, HandWrittenFileIsTrusted) {
  // Integers where floats are expected, other key order, comments and a
  // standard table for the config.
  writeBytes(path, "# mine\n"
                   "schema = 1\n"
                   "[[entry]]\n"
                   "device = \"d\"\n"
                   "spec = \"s\"\n"
                   "row_bucket = 0\n"
                   "normjit_version = \"n\"\n"
                   "llvm_version = \"l\"\n"
                   "gbps = 41\n"
                   "default_gbps = 0\n"
                   "candidates = 0\n"
                   "tuned_at = \"2024-02-29T23:59:60Z\"\n"
                   "fusion = \"\"\n"
                   "fusion_margin = 0\n"
                   "[entry.config]\n"
                   "vector_width = 1\n"
                   "accumulators = 1\n"
                   "rows_per_task = 1\n"
                   "threads = 0\n"
                   "algorithm = \"two_pass\"\n"
                   "streaming_stores = false\n"
                   "fuse_residual = false\n");
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_TRUE(cache.getWarnings().empty())
      << (cache.getWarnings().empty() ? "" : cache.getWarnings()[0]);
  ASSERT_EQ(cache.getEntries().size(), 1u);
  EXPECT_EQ(cache.getEntries()[0].gbps, 41.0);
  // No prefetch_rows (files from before the knob): none.
  EXPECT_EQ(cache.getEntries()[0].config.prefetchRows, 0);
  // No row_group: the lowering's default.
  EXPECT_EQ(cache.getEntries()[0].config.rowGroup, 0);
}

TEST_F(TuningCacheTest, TruncatedFileIsSetAside) {
  std::string text = validText();
  expectUntrusted(text.substr(0, text.size() / 2), "line ");
  // Cut inside the last inline table (the runner-up) as well.
  expectUntrusted(text.substr(0, text.size() - 40), "line ");
}

TEST_F(TuningCacheTest, BinaryGarbageIsSetAside) {
  std::string garbage;
  for (int i = 0; i < 4096; ++i)
    garbage += static_cast<char>((i * 7919 + 13) & 0xff);
  expectUntrusted(garbage, "cannot be trusted");
  expectUntrusted(std::string("schema = 1\n\0\xff\xfe", 14), "line ");
  expectUntrusted("\xff\xfe\x00\x00", "cannot be trusted");
  expectUntrusted("schema = 1\n[[entry]]\nspec = \"\xc3\x28\"\n", "line 3");
}

TEST_F(TuningCacheTest, WrongTypesAreSetAside) {
  std::string text = validText();
  expectUntrusted(replaceOnce(text, "gbps = 41.2\n", "gbps = \"fast\"\n"),
                  "gbps must be a number, got a string");
  expectUntrusted(replaceOnce(text, "row_bucket = 2048", "row_bucket = 2048.0"),
                  "row_bucket must be an integer, got a float");
  expectUntrusted(replaceOnce(text, "spec = \"b\"", "spec = 7"),
                  "spec must be a string, got an integer");
  expectUntrusted(
      replaceOnce(text, "streaming_stores = true", "streaming_stores = 1"),
      "config.streaming_stores must be a boolean, got an integer");
  expectUntrusted(
      replaceOnce(text, "prefetch_rows = 2", "prefetch_rows = \"2\""),
      "config.prefetch_rows must be an integer, got a string");
  expectUntrusted(replaceOnce(text, "tuned_at = \"2027-01-02T03:04:05Z\"",
                              "tuned_at = 2027-01-02T03:04:05Z"),
                  "tuned_at must be a string, got a date-time");
  // The winner's form must be its config's, and a spec without a
  // residual has none.
  expectUntrusted(replaceOnce(text, "fusion = \"split\"", "fusion = \"fused\""),
                  "fusion is \"fused\" but config.fuse_residual is false");
  expectUntrusted(
      replaceOnce(text, std::string("spec = \"") + kResidualSpec + "\"",
                  std::string("spec = \"") + kSpec + "\""),
      "fusion must be empty for a spec without a residual");
  for (const char *time : {"yesterday, probably", "2027-01-02 03:04:05Z",
                           "2027-01-02T03:04:05", "2027-13-02T03:04:05Z",
                           "2027-02-29T03:04:05Z", "2027-01-02T24:04:05Z",
                           "2027-1-02T03:04:05Z"})
    expectUntrusted(replaceOnce(text, "tuned_at = \"2027-01-02T03:04:05Z\"",
                                "tuned_at = \"" + std::string(time) + "\""),
                    "tuned_at must be an ISO 8601 UTC time like "
                    "2026-11-26T18:00:00Z, got '" +
                        std::string(time) + "'");
  expectUntrusted(
      replaceOnce(text,
                  "config = { vector_width = 16, accumulators = 4, "
                  "rows_per_task = 8, threads = 0, algorithm = \"two_pass\", "
                  "streaming_stores = false, fuse_residual = true }",
                  "config = 3"),
      "config must be a table, got an integer");
  expectUntrusted(replaceOnce(text, "schema = 1\n", "schema = 1\nentry = 5\n"),
                  "line ");
  expectUntrusted("schema = 1\nentry = [1, 2]\n",
                  "entry 1: expected a table, got an integer");
  expectUntrusted(replaceOnce(text, "algorithm = \"welford\"",
                              "algorithm = \"three_pass\""),
                  "algorithm must be");
}

TEST_F(TuningCacheTest, OutOfRangeValuesAreReportedAtTheirLine) {
  // A value read with the right type but out of range is reported at its
  // key's line (of a knob, its config's line), not at its [[entry]].
  std::string text = validText();
  auto lineOf = [&](const std::string &needle) {
    size_t at = text.find(needle);
    EXPECT_NE(at, std::string::npos) << needle;
    return "line " +
           std::to_string(1 + std::count(text.begin(), text.begin() + at,
                                         '\n')) +
           ": entry 2: "; // (the full entry sorts second)
  };
  expectUntrusted(replaceOnce(text, "row_bucket = 2048", "row_bucket = 3"),
                  lineOf("row_bucket = 2048") + "row_bucket must be");
  expectUntrusted(replaceOnce(text, "candidates = 987654321",
                              "candidates = -1"),
                  lineOf("candidates = 987654321") + "candidates must be");
  expectUntrusted(replaceOnce(text, "rows_per_task = 32", "rows_per_task = 0"),
                  lineOf("rows_per_task = 32") +
                      "config: rows_per_task must be");
}

TEST_F(TuningCacheTest, HugeValuesAreSetAside) {
  std::string text = validText();
  expectUntrusted(replaceOnce(text, "vector_width = 16", "vector_width = 1e12"),
                  "vector_width must be an integer, got a float");
  expectUntrusted(
      replaceOnce(text, "vector_width = 16", "vector_width = 1099511627776"),
      "vector_width must be a power of two");
  expectUntrusted(replaceOnce(text, "rows_per_task = 32",
                              "rows_per_task = 9223372036854775807"),
                  "rows_per_task must be in [1, 65536]");
  expectUntrusted(replaceOnce(text, "prefetch_rows = 2", "prefetch_rows = 17"),
                  "prefetch_rows must be in [0, 16], got 17");
  expectUntrusted(replaceOnce(text, "prefetch_rows = 2", "prefetch_rows = -1"),
                  "prefetch_rows must be in [0, 16], got -1");
  expectUntrusted(replaceOnce(text, "row_group = 8", "row_group = 65"),
                  "row_group must be in [0, 64] (0: the default), got 65");
  expectUntrusted(replaceOnce(text, "row_group = 8", "row_group = -2"),
                  "row_group must be in [0, 64] (0: the default), got -2");
  expectUntrusted(replaceOnce(text, "threads = 12", "threads = 4294967296"),
                  "threads must be in [0, 1024]");
  expectUntrusted(replaceOnce(text, "candidates = 987654321",
                              "candidates = 9223372036854775807"),
                  "candidates must be in [0, 1e9]");
  expectUntrusted(replaceOnce(text, "gbps = 41.2\n", "gbps = 1e300\n"),
                  "gbps must be a finite number");
  expectUntrusted(replaceOnce(text, "gbps = 41.2\n", "gbps = inf\n"),
                  "gbps must be a finite number");
  expectUntrusted(replaceOnce(text, "gbps = 41.2\n", "gbps = nan\n"),
                  "gbps must be a finite number");
  expectUntrusted(replaceOnce(text, "row_bucket = 2048", "row_bucket = 131072"),
                  "row_bucket must be 0 or a power of two");
  expectUntrusted(replaceOnce(text, "row_bucket = 2048",
                              "row_bucket = 99999999999999999999"),
                  "line ");
  expectUntrusted(replaceOnce(text, "accumulators = 4", "accumulators = 17"),
                  "accumulators must be in [1, 16]");
  expectUntrusted(replaceOnce(text, "spec = \"b\"",
                              "spec = \"" + std::string(5000, 's') + "\""),
                  "spec is 5000 bytes long");
}

TEST_F(TuningCacheTest, NegativeValuesAreSetAside) {
  std::string text = validText();
  expectUntrusted(replaceOnce(text, "gbps = 41.2\n", "gbps = -1.0\n"),
                  "gbps must be a finite number in [0, 1e5]");
  expectUntrusted(
      replaceOnce(text, "default_gbps = 0.1", "default_gbps = -0.1"),
      "default_gbps must be");
  expectUntrusted(replaceOnce(text, "threads = 12", "threads = -1"),
                  "threads must be in [0, 1024]");
  // The entry's own thread count (the key's), not the config's.
  for (const auto &[value, reason] :
       std::vector<std::pair<std::string, std::string>>{
           {"-3", "threads must be in [0, 1024], got -3"},
           {"5000", "threads must be in [0, 1024], got 5000"},
           {"\"two\"", "threads"}})
    expectUntrusted(replaceOnce(text, "row_bucket = 2048\n",
                                "row_bucket = 2048\nthreads = " + value + "\n"),
                    reason);
  expectUntrusted(replaceOnce(text, "row_bucket = 2048", "row_bucket = -4"),
                  "row_bucket must be 0 or a power of two");
  expectUntrusted(
      replaceOnce(text, "candidates = 987654321", "candidates = -1"),
      "candidates must be in [0, 1e9]");
  expectUntrusted(replaceOnce(text, "rows_per_task = 32", "rows_per_task = -8"),
                  "rows_per_task must be in [1, 65536], got -8");
  expectUntrusted(replaceOnce(text, "vector_width = 8", "vector_width = -8"),
                  "runner_up: vector_width must be a power of two");
}

TEST_F(TuningCacheTest, UnknownKeysAreSetAside) {
  std::string text = validText();
  expectUntrusted(replaceOnce(text, "schema = 1\n", "schema = 1\nextra = 1\n"),
                  "unknown key 'extra'");
  expectUntrusted(
      replaceOnce(text, "spec = \"b\"\n", "spec = \"b\"\ncolor = \"red\"\n"),
      "unknown key 'color'");
  expectUntrusted(replaceOnce(text, "row_group = 8 }",
                              "row_group = 8, unroll = 2 }"),
                  "unknown key 'config.unroll'");
  expectUntrusted(replaceOnce(text, "runner_up = { vector_width = 8",
                              "runner_up = { lanes = 8, vector_width = 8"),
                  "unknown key 'runner_up.lanes'");
  expectUntrusted(text + "\n[other]\nx = 1\n", "unknown key 'other'");
}

TEST_F(TuningCacheTest, MissingKeysAreSetAside) {
  std::string text = validText();
  expectUntrusted(
      replaceOnce(text, "tuned_at = \"2027-01-02T03:04:05Z\"\n", ""),
      "missing key 'tuned_at'");
  expectUntrusted(replaceOnce(text, "threads = 12, ", ""),
                  "missing key 'config.threads'");
  expectUntrusted(replaceOnce(text, "runner_up_gbps = 38.0625\n", ""),
                  "runner_up without runner_up_gbps");
  expectUntrusted(replaceOnce(text, "spec = \"b\"", "spec = \"\""),
                  "spec must not be empty");
}

TEST_F(TuningCacheTest, OtherSchemaVersionIsSetAside) {
  std::string text = validText();
  expectUntrusted(replaceOnce(text, "schema = 1\n", "schema = 2\n"),
                  "schema version 2 is not the supported version 1");
  expectUntrusted(replaceOnce(text, "schema = 1\n", "schema = 0\n"),
                  "schema version 0");
  expectUntrusted(replaceOnce(text, "schema = 1\n", "schema = \"1\"\n"),
                  "schema must be an integer, got a string");
}

TEST_F(TuningCacheTest, MissingSchemaIsSetAside) {
  std::string text = validText();
  expectUntrusted(replaceOnce(text, "schema = 1\n", ""), "no schema version");
  expectUntrusted("", "no schema version");
}

TEST_F(TuningCacheTest, DuplicateKeysAreSetAside) {
  std::string text = validText();
  size_t at = text.find("[[entry]]");
  ASSERT_NE(at, std::string::npos);
  expectUntrusted(text + "\n" + text.substr(at), "duplicate key");
}

TEST_F(TuningCacheTest, OversizedFileIsSetAsideUnparsed) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  const off_t size = (off_t(64) << 20) + 1;
  ASSERT_EQ(::ftruncate(fd, size), 0);
  ::close(fd);
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_TRUE(cache.getEntries().empty());
  ASSERT_EQ(cache.getWarnings().size(), 1u);
  EXPECT_NE(cache.getWarnings()[0].find("over the limit of 64 MiB"),
            std::string::npos)
      << cache.getWarnings()[0];
  std::vector<std::string> corrupt = listNames(dir, "tuning.toml.corrupt-");
  ASSERT_EQ(corrupt.size(), 1u);
  struct stat info;
  ASSERT_EQ(::stat((dir + "/" + corrupt[0]).c_str(), &info), 0);
  EXPECT_EQ(info.st_size, size);
}

TEST_F(TuningCacheTest, SetAsideNeverOverwritesAnEarlierCopy) {
  // Occupy the names of the next minute so that the set-aside copy needs a
  // counter suffix.
  std::time_t now = std::time(nullptr);
  std::vector<std::string> occupied;
  for (int second = 0; second < 60; ++second) {
    std::time_t at = now + second;
    std::tm parts{};
    gmtime_r(&at, &parts);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &parts);
    occupied.push_back(path + ".corrupt-" + stamp);
    writeBytes(occupied.back(), "earlier");
  }
  writeBytes(path, "garbage = ");
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  ASSERT_EQ(cache.getWarnings().size(), 1u);
  for (const std::string &file : occupied)
    EXPECT_EQ(readBytes(file), "earlier");
  std::vector<std::string> corrupt = listNames(dir, "tuning.toml.corrupt-");
  ASSERT_EQ(corrupt.size(), occupied.size() + 1);
  bool found = false;
  for (const std::string &name : corrupt)
    if (readBytes(dir + "/" + name) == "garbage = ") {
      found = true;
      EXPECT_EQ(name.substr(name.size() - 2), "-1") << name;
    }
  EXPECT_TRUE(found);
}

TEST_F(TuningCacheTest, StoreAfterCorruptLoadWorks) {
  writeBytes(path, "this is not toml");
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  ASSERT_EQ(cache.getWarnings().size(), 1u);
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  TuningCache again(path);
  ASSERT_EQ(takeMessage(again.load()), "");
  EXPECT_TRUE(again.getWarnings().empty());
  EXPECT_EQ(again.getEntries().size(), 1u);
  EXPECT_EQ(listNames(dir, ".corrupt-").size(), 1u);
}

TEST_F(TuningCacheTest, StoreSetsAsideAFileCorruptedSinceLoad) {
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  writeBytes(path, "schema = 1\n[[entry]]\ngbps = \"fast\"\n");
  ASSERT_EQ(takeMessage(cache.store({makeEntry("b")})), "");
  ASSERT_EQ(cache.getWarnings().size(), 1u);
  EXPECT_NE(cache.getWarnings()[0].find("set aside"), std::string::npos);
  // The entries this object had are kept, and the warning says so.
  EXPECT_NE(cache.getWarnings()[0].find("keeping the 1 entries read before"),
            std::string::npos)
      << cache.getWarnings()[0];
  EXPECT_EQ(listNames(dir, ".corrupt-").size(), 1u);
  // What the CLI and TunedKernels print after each store: taken once.
  std::vector<std::string> taken = cache.takeWarnings();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_NE(taken[0].find("set aside"), std::string::npos);
  EXPECT_TRUE(cache.takeWarnings().empty());
  EXPECT_TRUE(cache.getWarnings().empty());
  TuningCache again(path);
  ASSERT_EQ(takeMessage(again.load()), "");
  // Our entries survive; the bad ones are not trusted.
  EXPECT_EQ(again.getEntries().size(), 2u);
}

//===----------------------------------------------------------------------===//
// Merging shards
//===----------------------------------------------------------------------===//

TEST_F(TuningCacheTest, MergeKeepsTheFasterEntry) {
  std::string shard0 = dir + "/shard-0.toml";
  std::string shard1 = dir + "/shard-1.toml";
  CacheEntry slow = makeEntry(kSpec, 38.0);
  slow.config.vectorWidth = 8;
  CacheEntry fast = makeEntry(kSpec, 41.2);
  fast.config.vectorWidth = 32;
  {
    TuningCache cache(shard0);
    ASSERT_EQ(takeMessage(cache.store({slow, makeEntry("only-0")})), "");
  }
  {
    TuningCache cache(shard1);
    ASSERT_EQ(takeMessage(cache.store({fast, makeEntry("only-1")})), "");
  }
  TuningCache cache(path);
  std::vector<std::string> messages;
  ASSERT_EQ(takeMessage(cache.merge({shard0, shard1}, messages)), "");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0], std::string("key ") + kSpec + " rows<=1024 on " +
                             kDevice + ": kept 41.2 GB/s from " + shard1 +
                             " over 38.0 GB/s from " + shard0);

  TuningCache again(path);
  ASSERT_EQ(takeMessage(again.load()), "");
  ASSERT_EQ(again.getEntries().size(), 3u);
  std::optional<CacheEntry> got = again.lookup(fast.key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->gbps, 41.2);
  EXPECT_EQ(got->config.vectorWidth, 32);

  // The other order keeps the same winner; the cache's own entry counts too.
  messages.clear();
  ASSERT_EQ(takeMessage(cache.merge({shard1, shard0}, messages)), "");
  ASSERT_EQ(messages.size(), 4u);
  for (const std::string &message : messages)
    EXPECT_NE(message.find(": kept "), std::string::npos) << message;
  ASSERT_TRUE(cache.lookup(fast.key).has_value());
  EXPECT_EQ(cache.lookup(fast.key)->gbps, 41.2);
  // Inputs are not changed.
  TuningCache input(shard0);
  ASSERT_EQ(takeMessage(input.load()), "");
  EXPECT_EQ(input.lookup(slow.key)->gbps, 38.0);
}

TEST_F(TuningCacheTest, MergeWithACorruptInputWritesNothing) {
  std::string good = dir + "/good.toml";
  std::string bad = dir + "/bad.toml";
  {
    TuningCache cache(good);
    ASSERT_EQ(takeMessage(cache.store({makeEntry("g")})), "");
  }
  writeBytes(bad, "schema = 1\n[[entry]]\nspec = 3\n");
  std::vector<std::string> messages;

  // No cache yet: none is created.
  TuningCache cache(path);
  llvm::Error error = cache.merge({good, bad}, messages);
  ASSERT_TRUE(static_cast<bool>(error));
  std::string message = llvm::toString(std::move(error));
  EXPECT_NE(message.find(bad), std::string::npos) << message;
  EXPECT_FALSE(exists(path));

  // An existing cache is left as it was.
  ASSERT_EQ(takeMessage(cache.store({makeEntry("a")})), "");
  std::string before = readBytes(path);
  EXPECT_EQ(takeStatus(cache.merge({good, bad}, messages)),
            NORMJIT_INVALID_ARGUMENT);
  EXPECT_EQ(readBytes(path), before);
  // A missing input is an error too.
  EXPECT_EQ(takeStatus(cache.merge({dir + "/missing.toml"}, messages)),
            NORMJIT_IO_ERROR);
  EXPECT_EQ(readBytes(path), before);
  EXPECT_TRUE(messages.empty());
  // The bad input is reported, not set aside: it is not ours.
  EXPECT_TRUE(exists(bad));
  EXPECT_TRUE(listNames(dir, ".corrupt-").empty());
}

//===----------------------------------------------------------------------===//
// Free functions
//===----------------------------------------------------------------------===//

TEST(TuningCacheFunctionsTest, RowBucket) {
  struct Case {
    int64_t rows, bucket;
  } cases[] = {{0, 0},         {-5, 0},          {1, 1},
               {2, 2},         {3, 4},           {1024, 1024},
               {1025, 2048},   {65535, 65536},   {65536, 65536},
               {65537, 65536}, {1000000, 65536}, {INT64_MAX, 65536}};
  for (const Case &c : cases)
    EXPECT_EQ(getRowBucket(c.rows), c.bucket) << "rows " << c.rows;
}

TEST(TuningCacheFunctionsTest, RowBucketLabels) {
  EXPECT_EQ(getRowBucketLabel(getRowBucket(0)), "rows=0");
  EXPECT_EQ(getRowBucketLabel(getRowBucket(1)), "rows<=1");
  EXPECT_EQ(getRowBucketLabel(getRowBucket(1000)), "rows<=1024");
  EXPECT_EQ(getRowBucketLabel(getRowBucket(32768)), "rows<=32768");
  // The last bucket holds every larger count.
  EXPECT_EQ(getRowBucketLabel(getRowBucket(32769)), "rows>32768");
  EXPECT_EQ(getRowBucketLabel(getRowBucket(int64_t(1) << 40)), "rows>32768");
}

TEST(TuningCacheFunctionsTest, UtcTimestamp) {
  std::string stamp = getUtcTimestamp();
  ASSERT_EQ(stamp.size(), 20u) << stamp;
  EXPECT_EQ(stamp[4], '-');
  EXPECT_EQ(stamp[10], 'T');
  EXPECT_EQ(stamp[19], 'Z');
}

TEST(TuningCacheFunctionsTest, CacheKeyOrder) {
  CacheKey a = makeKey("a");
  CacheKey b = makeKey("a");
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a < b);
  b.llvmVersion = "23";
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a < b || b < a);
  b = makeKey("a", 2048);
  EXPECT_TRUE(a < b);
  EXPECT_FALSE(b < a);
}

TEST(TuningCacheFunctionsTest, CpuFingerprint) {
  DeviceFingerprint first = detectCpuFingerprint();
  DeviceFingerprint second = detectCpuFingerprint();
  EXPECT_EQ(first.kind, "cpu");
  EXPECT_FALSE(first.vendor.empty());
  EXPECT_FALSE(first.model.empty());
  EXPECT_GE(first.cores, 1u);
  EXPECT_EQ(first.key(), second.key());
  std::string key = first.key();
  EXPECT_EQ(key.rfind("cpu|", 0), 0u) << key;
  EXPECT_EQ(std::count(key.begin(), key.end(), '|'), 4) << key;
  EXPECT_EQ(key.find('\n'), std::string::npos) << key;
  // Features are sorted and comma-separated.
  std::vector<std::string> features;
  llvm::SmallVector<llvm::StringRef, 16> parts;
  llvm::StringRef(first.features).split(parts, ',', -1, false);
  for (llvm::StringRef part : parts)
    features.push_back(part.str());
  EXPECT_TRUE(std::is_sorted(features.begin(), features.end()))
      << first.features;

  DeviceFingerprint made;
  made.kind = "cpu";
  made.vendor = "AuthenticAMD";
  made.model = "AMD EPYC 9R14";
  made.features = "avx,avx2";
  made.cores = 2;
  EXPECT_EQ(made.key(), "cpu|AuthenticAMD|AMD EPYC 9R14|avx,avx2|2");
}

//===----------------------------------------------------------------------===//
// GPU entries
//===----------------------------------------------------------------------===//

namespace {
const char *const kGpuDevice =
    "cuda | Test GPU | sm_90 | 132 SMs | 79.1 GiB | driver 13000";

/// A GPU entry for kResidualSpec with every field used.
CacheEntry makeGpuEntry() {
  CacheEntry entry;
  entry.key = makeKey(kResidualSpec, 2048);
  entry.key.device = kGpuDevice;
  entry.gpuConfig.vectorWidth = 8;
  entry.gpuConfig.threadsPerRow = 64;
  entry.gpuConfig.rowsPerBlock = 2;
  entry.gpuConfig.elementsPerThread = 16;
  entry.gpuConfig.rowStorage = GpuRowStorage::Shared;
  entry.gpuConfig.persistent = true;
  GpuConfig runnerUp;
  runnerUp.vectorWidth = 4;
  runnerUp.threadsPerRow = 128;
  runnerUp.rowsPerBlock = 1;
  runnerUp.elementsPerThread = 8;
  runnerUp.rowStorage = GpuRowStorage::Global;
  runnerUp.persistent = false;
  entry.gpuRunnerUp = runnerUp;
  entry.runnerUpGbps = 2500.5;
  entry.gbps = 2876.25;
  entry.defaultGbps = 2401.0;
  entry.candidates = 40;
  entry.tunedAt = "2027-01-02T03:04:05Z";
  return entry;
}
} // namespace

TEST(TuningCacheFunctionsTest, GpuDeviceKeys) {
  EXPECT_TRUE(isGpuDeviceKey(kGpuDevice));
  EXPECT_TRUE(isGpuDeviceKey("cuda"));
  EXPECT_FALSE(isGpuDeviceKey(kDevice));
  EXPECT_FALSE(isGpuDeviceKey(detectCpuFingerprint().key()));
  EXPECT_FALSE(isGpuDeviceKey(""));
  // A CPU fingerprint can never look like a GPU one: its kind leads.
  DeviceFingerprint odd;
  odd.kind = "cpu";
  odd.vendor = "cuda";
  EXPECT_FALSE(isGpuDeviceKey(odd.key()));
  CacheEntry gpu = makeGpuEntry();
  EXPECT_TRUE(gpu.isGpu());
  EXPECT_EQ(gpu.getConfigText(), gpu.gpuConfig.str());
  EXPECT_EQ(gpu.getRunnerUpText().value_or(""), gpu.gpuRunnerUp->str());
  CacheEntry cpu = makeFullEntry();
  EXPECT_FALSE(cpu.isGpu());
  EXPECT_EQ(cpu.getConfigText(), cpu.config.str());
  EXPECT_EQ(cpu.getRunnerUpText().value_or(""), cpu.runnerUp->str());
}

TEST_F(TuningCacheTest, GpuMinBlocksPerSmIsWrittenWhenSetAndChecked) {
  // A GPU config's min_blocks_per_sm: written only when not 0, read back,
  // absent reads as 0; out of range or more threads than an SM holds, the
  // file is not trusted.
  CacheEntry gpu = makeGpuEntry();
  gpu.gpuConfig.minBlocksPerSm = 4; // blocks of 128 threads: 512 per SM
  {
    TuningCache cache(path);
    ASSERT_EQ(takeMessage(cache.store({gpu})), "");
  }
  std::string text = readBytes(path);
  EXPECT_NE(text.find("persistent = true, min_blocks_per_sm = 4 }"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("min_blocks_per_sm = 0"), std::string::npos) << text;
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  std::optional<CacheEntry> found = cache.lookup(gpu.key);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->gpuConfig.minBlocksPerSm, 4);
  ASSERT_TRUE(found->gpuRunnerUp.has_value());
  EXPECT_EQ(found->gpuRunnerUp->minBlocksPerSm, 0);
  expectUntrusted(replaceOnce(text, "min_blocks_per_sm = 4",
                              "min_blocks_per_sm = 33"),
                  "config: min_blocks_per_sm must be in [0, 32]");
  expectUntrusted(replaceOnce(text, "min_blocks_per_sm = 4",
                              "min_blocks_per_sm = 17"),
                  "config: min_blocks_per_sm must be in [0, 32] with");
  expectUntrusted(replaceOnce(text, "min_blocks_per_sm = 4",
                              "min_blocks_per_sm = true"),
                  "config.min_blocks_per_sm must be an integer");
}

TEST_F(TuningCacheTest, GpuEntryRoundTripsBesideCpuEntries) {
  CacheEntry gpu = makeGpuEntry();
  CacheEntry cpu = makeFullEntry(); // same spec and bucket, the CPU's key
  {
    TuningCache cache(path);
    ASSERT_EQ(takeMessage(cache.store({gpu, cpu})), "");
  }
  std::string text = readBytes(path);
  EXPECT_NE(text.find("config = { vector_width = 8, threads_per_row = 64, "
                      "rows_per_block = 2, elements_per_thread = 16, "
                      "row_storage = \"shared\", persistent = true }"),
            std::string::npos)
      << text;
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_TRUE(cache.getWarnings().empty());
  ASSERT_EQ(cache.getEntries().size(), 2u);
  std::optional<CacheEntry> found = cache.lookup(gpu.key);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(found->isGpu());
  EXPECT_TRUE(found->gpuConfig == gpu.gpuConfig) << found->gpuConfig.str();
  ASSERT_TRUE(found->gpuRunnerUp.has_value());
  EXPECT_TRUE(*found->gpuRunnerUp == *gpu.gpuRunnerUp);
  EXPECT_FALSE(found->runnerUp.has_value());
  EXPECT_EQ(found->gbps, gpu.gbps);
  EXPECT_EQ(found->runnerUpGbps, gpu.runnerUpGbps);
  EXPECT_EQ(found->fusion, "");
  // The same spec and bucket on the CPU is another entry, with its config.
  found = cache.lookup(cpu.key);
  ASSERT_TRUE(found.has_value());
  EXPECT_FALSE(found->isGpu());
  expectSameEntry(*found, cpu);
  // Every row storage survives.
  for (GpuRowStorage storage : {GpuRowStorage::Registers,
                                GpuRowStorage::Shared, GpuRowStorage::Global}) {
    CacheEntry entry = makeGpuEntry();
    entry.gpuConfig.rowStorage = storage;
    TuningCache again(path);
    ASSERT_EQ(takeMessage(again.store({entry})), "");
    TuningCache reread(path);
    ASSERT_EQ(takeMessage(reread.load()), "");
    ASSERT_TRUE(reread.lookup(entry.key).has_value());
    EXPECT_TRUE(reread.lookup(entry.key)->gpuConfig.rowStorage == storage);
  }
}

TEST_F(TuningCacheTest, CpuAndGpuConfigsNeverCross) {
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.store({makeGpuEntry(), makeFullEntry()})), "");
  std::string text = readBytes(path);
  std::string gpuConfig = "config = { vector_width = 8, threads_per_row = 64, "
                          "rows_per_block = 2, elements_per_thread = 16, "
                          "row_storage = \"shared\", persistent = true }";
  std::string cpuConfig = "config = { vector_width = 16, accumulators = 4, "
                          "rows_per_task = 32, threads = 12, algorithm = "
                          "\"welford\", streaming_stores = true, "
                          "fuse_residual = false, prefetch_rows = 2, "
                          "row_group = 8 }";
  ASSERT_NE(text.find(gpuConfig), std::string::npos) << text;
  ASSERT_NE(text.find(cpuConfig), std::string::npos) << text;
  // A CPU config under a CUDA device, or a GPU config under a CPU, is not
  // trusted: neither is ever read as the other.
  expectUntrusted(replaceOnce(text, gpuConfig, cpuConfig),
                  "unknown key 'config.accumulators'");
  expectUntrusted(replaceOnce(text, cpuConfig, gpuConfig),
                  "unknown key 'config.elements_per_thread'");
  // Nor is a CPU entry moved to a GPU by its device alone.
  expectUntrusted(replaceOnce(text, std::string("device = \"") + kDevice,
                              std::string("device = \"") + kGpuDevice),
                  "line ");
}

TEST_F(TuningCacheTest, BadGpuConfigsAreSetAside) {
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.store({makeGpuEntry()})), "");
  std::string text = readBytes(path);
  expectUntrusted(replaceOnce(text, "threads_per_row = 64",
                              "threads_per_row = 48"),
                  "config: threads_per_row must be a power of two");
  expectUntrusted(replaceOnce(text, "rows_per_block = 2",
                              "rows_per_block = 32"),
                  "config: rows_per_block must be at least 1 with");
  expectUntrusted(replaceOnce(text, "vector_width = 8", "vector_width = 16"),
                  "config: vector_width must be a power of two in [1, 8]");
  expectUntrusted(replaceOnce(text, "elements_per_thread = 16",
                              "elements_per_thread = 12"),
                  "config: elements_per_thread must be a multiple");
  // Past what #norm.config takes: never trusted, then refused to compile.
  expectUntrusted(replaceOnce(text, "elements_per_thread = 16",
                              "elements_per_thread = 2048"),
                  "config: elements_per_thread must be a multiple of "
                  "vector_width in [1, 1024], got 2048");
  expectUntrusted(replaceOnce(text, "row_storage = \"shared\"",
                              "row_storage = \"texture\""),
                  "config.row_storage must be");
  expectUntrusted(replaceOnce(text, "persistent = true", "persistent = 1"),
                  "config.persistent must be a boolean, got an integer");
  expectUntrusted(replaceOnce(text, "fusion = \"\"", "fusion = \"split\""),
                  "fusion cannot be \"split\" for a GPU entry");
  expectUntrusted(replaceOnce(text, "row_bucket = ", "threads = 2\nrow_bucket = "),
                  "threads must be absent for a GPU entry");
  // store() checks the same before writing anything.
  CacheEntry bad = makeGpuEntry();
  bad.gpuConfig.threadsPerRow = 2048;
  EXPECT_NE(takeMessage(cache.store({bad})).find("threads_per_row"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// Concurrency
//===----------------------------------------------------------------------===//

TEST_F(TuningCacheTest, FourProcessesStoringAtOnceLoseNoEntry) {
  constexpr int kChildren = 4;
  constexpr int kEntriesEach = 25;
  std::vector<pid_t> children;
  for (int child = 0; child < kChildren; ++child) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0) << std::strerror(errno);
    if (pid == 0) {
      // No gtest assertions here: the exit code is the result.
      TuningCache cache(path);
      int failed = 0;
      for (int i = 0; i < kEntriesEach; ++i) {
        CacheEntry entry = makeEntry("child" + std::to_string(child) +
                                     "-entry" + std::to_string(i));
        entry.gbps = 1 + child * 100 + i;
        if (llvm::Error error = cache.store({entry})) {
          llvm::consumeError(std::move(error));
          failed = 1;
        }
        if (!cache.getWarnings().empty())
          failed = 2;
      }
      ::_exit(failed);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child " << pid << " status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child " << pid;
  }
  TuningCache cache(path);
  ASSERT_EQ(takeMessage(cache.load()), "");
  EXPECT_TRUE(cache.getWarnings().empty());
  EXPECT_EQ(cache.getEntries().size(),
            static_cast<size_t>(kChildren * kEntriesEach));
  for (int child = 0; child < kChildren; ++child)
    for (int i = 0; i < kEntriesEach; ++i) {
      std::optional<CacheEntry> entry = cache.lookup(makeKey(
          "child" + std::to_string(child) + "-entry" + std::to_string(i)));
      ASSERT_TRUE(entry.has_value()) << child << " " << i;
      EXPECT_EQ(entry->gbps, 1 + child * 100 + i);
    }
  EXPECT_TRUE(listNames(dir, ".corrupt-").empty());
  EXPECT_TRUE(listNames(dir, ".tmp-").empty());
}

} // namespace
