//===- TuningCache.h - the per-device TOML tuning cache ---------*- C++ -*-===//
//
// Part of normjit. Remembers the best config per kernel spec, row-count
// bucket, device fingerprint and normjit/LLVM versions, in one human-readable
// TOML file per user. Writes are atomic (temporary file + rename) under an
// exclusive file lock, re-reading the file first, so concurrent tuners lose
// no entry. A corrupt or hostile file is reported, set aside (renamed, never
// deleted) and replaced by a fresh cache: never a crash, never a trusted bad
// entry.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TUNER_TUNINGCACHE_H
#define NORMJIT_TUNER_TUNINGCACHE_H

#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/JIT/KernelCompiler.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace normjit::tuner {

/// The schema version written to and required of cache files.
constexpr int64_t kCacheSchemaVersion = 1;

/// What identifies the CPU a config was measured on. Two devices with
/// different fingerprints never share entries. (A CUDA device's key is the
/// line normjit_cuda_device_fingerprint writes, "cuda | name | sm_XY | ...".)
struct DeviceFingerprint {
  std::string kind;     ///< "cpu"
  std::string vendor;   ///< e.g. "AuthenticAMD"
  std::string model;    ///< e.g. "AMD EPYC 9R14"
  std::string features; ///< sorted, comma-separated ISA features that
                        ///< matter for codegen (avx2,avx512f,...)
  unsigned cores = 0;
  /// The canonical one-line form used in cache keys.
  std::string key() const;
};

/// The fingerprint of this machine's CPU (from /proc/cpuinfo and cpuid).
DeviceFingerprint detectCpuFingerprint();

/// Whether a cache key's device is a CUDA device (its fingerprint starts
/// with "cuda"), whose entries hold GPU configs; every other device's
/// entries hold CPU configs. So a CPU entry can never be read as a GPU
/// config, nor the reverse.
bool isGpuDeviceKey(llvm::StringRef device);

/// The power-of-two bucket a row count falls in: 0 for 0 rows, else the
/// smallest power of two >= rows, capped at 65536 (all larger counts share
/// the last bucket).
int64_t getRowBucket(int64_t rows);

/// The rows a bucket holds, as the cache's messages and `normjit cache
/// show` print it: "rows<=1024", "rows=0", and "rows>32768" for the last.
std::string getRowBucketLabel(int64_t bucket);

/// The identity of one cache entry.
struct CacheKey {
  std::string spec;     ///< normjit::getSpecKey(spec)
  int64_t rowBucket = 0;
  std::string device;   ///< DeviceFingerprint::key()
  std::string normjitVersion;
  std::string llvmVersion;
  /// CPU: the worker threads the config was tuned on, 0 for all cores
  /// (what wins depends on it: streaming stores, say, pay on two threads
  /// of a memory-bound shape and lose on one). Written only when nonzero.
  int64_t threads = 0;
  /// Tuned with the caches flushed before every sample (`normjit tune
  /// --cold-cache`). What wins cold can lose warm, so such an entry is
  /// found only by a cold-cache lookup: never by a context, `run` or
  /// `aot`, which look up warm entries. Written only when true.
  bool coldCache = false;
  bool operator==(const CacheKey &other) const;
  bool operator<(const CacheKey &other) const;
};

/// One tuned result. Its configs are CPU configs (`config`, `runnerUp`) or,
/// when the key's device is a CUDA device (isGpu()), GPU configs
/// (`gpuConfig`, `gpuRunnerUp`); the fields of the other kind are unused.
struct CacheEntry {
  CacheKey key;
  CpuConfig config;            ///< the winner (CPU)
  GpuConfig gpuConfig;         ///< the winner (GPU)
  double gbps = 0;             ///< its measured GB/s
  double defaultGbps = 0;      ///< the default heuristic's GB/s, same run
  std::optional<CpuConfig> runnerUp;
  std::optional<GpuConfig> gpuRunnerUp;
  double runnerUpGbps = 0;
  /// For residual specs: "fused" or "split" (which form won) and by how much
  /// (winner GB/s / best GB/s of the other form); empty otherwise.
  std::string fusion;
  double fusionMargin = 0;
  int64_t candidates = 0;      ///< configs measured
  std::string tunedAt;         ///< ISO 8601 UTC, e.g. 2026-11-26T18:00:00Z

  /// Whether the entry holds GPU configs (isGpuDeviceKey(key.device)).
  bool isGpu() const { return isGpuDeviceKey(key.device); }
  /// The winner as `#norm.config<cpu|gpu, ...>` text.
  std::string getConfigText() const;
  /// The runner-up as `#norm.config<...>` text, if there is one.
  std::optional<std::string> getRunnerUpText() const;
};

/// The tuning cache file.
class TuningCache {
public:
  /// The default location: $NORMJIT_CACHE_DIR/tuning.toml if set, else
  /// $XDG_CACHE_HOME/normjit/tuning.toml, else ~/.cache/normjit/tuning.toml.
  static std::string getDefaultPath();

  explicit TuningCache(std::string path);

  const std::string &getPath() const { return path; }

  /// Reads the file. A missing file is an empty cache. A file that cannot be
  /// trusted (not TOML, truncated, wrong types, out-of-range or negative
  /// values, unknown keys, another schema version) adds a warning, is
  /// renamed to `<path>.corrupt-<UTC timestamp>` and the cache starts empty.
  /// A file that is no cache at all (someone's data under a mistyped path:
  /// see tuner/README.md) is warned about and left where it is, and
  /// store(), merge() and checkWritable() refuse to write over it.
  /// Fails only when the file exists but cannot be read at all. With
  /// `setAsideUntrusted` false (a reader that never writes the cache, e.g. `normjit
  /// aot`), an untrusted file is only warned about and left where it is.
  llvm::Error load(bool setAsideUntrusted = true);

  /// The entry for `key`, if one was loaded or stored.
  std::optional<CacheEntry> lookup(const CacheKey &key) const;

  /// Adds or replaces entries and writes the file: under an exclusive lock
  /// (a lock file beside it), re-read what is on disk, merge (an existing
  /// entry with the same key is replaced), write a temporary file in the
  /// same directory, fsync, rename over the cache. Creates the directory.
  llvm::Error store(const std::vector<CacheEntry> &entries);

  /// Adds or replaces entries in memory only, for this object's lookups:
  /// what a process keeps when the file cannot be written. They stay until
  /// a store saves them or the file has an entry of the same key.
  void remember(const std::vector<CacheEntry> &entries);

  /// Whether lookup(key) finds an entry that was remembered, not saved.
  bool isUnsaved(const CacheKey &key) const;

  /// Joins other cache files (e.g. shards of a sweep) into this one. For a
  /// key present in several, the entry with the higher measured GB/s wins;
  /// every such decision is described in `messages`. Unreadable or corrupt
  /// inputs are errors (nothing is written).
  llvm::Error merge(const std::vector<std::string> &inputs,
                    std::vector<std::string> &messages);

  /// Whether store() could write the file: creates the directory, opens the
  /// lock file and checks the directory is writable, without changing the
  /// cache. Lets a long tuning run fail before it starts, not after.
  llvm::Error checkWritable() const;

  /// Removes the cache file (not the set-aside copies): only a regular file
  /// that could be a cache; anything else is refused and kept.
  llvm::Error clear();

  /// All entries, sorted by key.
  std::vector<CacheEntry> getEntries() const;

  /// Warnings not taken yet, from load(), store() and merge() (e.g. a
  /// corrupt file set aside: another process may have corrupted it after
  /// this one loaded it).
  const std::vector<std::string> &getWarnings() const { return warnings; }
  /// The warnings not taken yet, forgotten here: what a caller prints after
  /// each call, so that none is lost and none printed twice.
  std::vector<std::string> takeWarnings() {
    std::vector<std::string> taken;
    taken.swap(warnings);
    return taken;
  }

private:
  /// `entries` after `written` went to the file: those and the remembered
  /// entries it has no key of (the others count as saved).
  void keepUnsaved(std::vector<CacheEntry> written);

  std::string path;
  std::vector<CacheEntry> entries;
  std::vector<CacheEntry> unsaved; ///< remembered only, sorted by key
  std::vector<std::string> warnings;
};

/// The current UTC time as ISO 8601 (seconds), for CacheEntry::tunedAt.
std::string getUtcTimestamp();

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_TUNINGCACHE_H
