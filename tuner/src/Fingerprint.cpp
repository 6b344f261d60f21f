//===- Fingerprint.cpp - what identifies the device a config was tuned on -===//
//
// Part of normjit. Implements DeviceFingerprint::key and detectCpuFingerprint:
// the CPU's vendor, model and codegen-relevant ISA features from
// /proc/cpuinfo (LLVM's host detection where that file says nothing), and
// its core count.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/TuningCache.h"

#include "normjit/JIT/KernelCompiler.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace normjit::tuner;

namespace {

/// The ISA features that change the code LLVM generates for a norm kernel,
/// as /proc/cpuinfo spells them, with LLVM's name for each (used when
/// /proc/cpuinfo has no feature list). Only these enter a fingerprint, so
/// that unrelated flags (microcode mitigations, virtualization) do not split
/// the cache.
struct Feature {
  const char *cpuinfoName;
  const char *llvmName;
};
constexpr Feature kFeatures[] = {
    // x86
    {"sse4_2", "sse4.2"},
    {"avx", "avx"},
    {"avx2", "avx2"},
    {"fma", "fma"},
    {"f16c", "f16c"},
    {"avx512f", "avx512f"},
    {"avx512cd", "avx512cd"},
    {"avx512bw", "avx512bw"},
    {"avx512dq", "avx512dq"},
    {"avx512vl", "avx512vl"},
    {"avx512_vnni", "avx512vnni"},
    {"avx512_bf16", "avx512bf16"},
    {"avx512_fp16", "avx512fp16"},
    {"amx_tile", "amx-tile"},
    {"amx_bf16", "amx-bf16"},
    // AArch64
    {"asimd", "neon"},
    {"sve", "sve"},
    {"sve2", "sve2"},
};

/// Longest vendor or model text kept in a fingerprint.
constexpr size_t kMaxFieldSize = 256;

/// Makes a /proc/cpuinfo value fit a one-line key: printable ASCII only,
/// whitespace runs collapsed to one space, no '|' (the key's separator),
/// trimmed and bounded.
std::string canonicalize(llvm::StringRef text) {
  std::string result;
  bool pendingSpace = false;
  for (char c : text) {
    bool space = c == ' ' || c == '\t' || c == '|';
    if (space || c < 0x20 || c > 0x7e) {
      pendingSpace = !result.empty() && (space || pendingSpace);
      continue;
    }
    if (pendingSpace)
      result += ' ';
    pendingSpace = false;
    result += c;
    if (result.size() >= kMaxFieldSize)
      break;
  }
  return result;
}

/// The fields of the first processor in /proc/cpuinfo that matter here.
struct CpuInfo {
  std::string vendor;
  std::string model;
  std::vector<std::string> flags;
  bool haveFlags = false;
};

CpuInfo readCpuInfo() {
  CpuInfo info;
  std::ifstream stream("/proc/cpuinfo");
  std::string line;
  bool seenProcessor = false;
  while (std::getline(stream, line)) {
    llvm::StringRef text(line);
    auto [name, value] = text.split(':');
    name = name.trim();
    value = value.trim();
    // Only the first processor: the fields repeat for every core.
    if (name == "processor") {
      if (seenProcessor)
        break;
      seenProcessor = true;
      continue;
    }
    if (text.trim().empty() && (info.haveFlags || !info.vendor.empty()))
      break;
    if ((name == "vendor_id" || name == "CPU implementer") &&
        info.vendor.empty()) {
      info.vendor = canonicalize(value);
    } else if ((name == "model name" || name == "Hardware") &&
               info.model.empty()) {
      info.model = canonicalize(value);
    } else if ((name == "flags" || name == "Features") && !info.haveFlags) {
      info.haveFlags = true;
      llvm::SmallVector<llvm::StringRef, 128> words;
      value.split(words, ' ', -1, /*KeepEmpty=*/false);
      for (llvm::StringRef word : words)
        info.flags.push_back(word.trim().str());
    }
  }
  return info;
}

} // namespace

std::string DeviceFingerprint::key() const {
  return kind + "|" + vendor + "|" + model + "|" + features + "|" +
         std::to_string(cores);
}

DeviceFingerprint normjit::tuner::detectCpuFingerprint() {
  CpuInfo info = readCpuInfo();
  DeviceFingerprint fingerprint;
  fingerprint.kind = "cpu";
  fingerprint.vendor = info.vendor.empty() ? "unknown" : info.vendor;
  fingerprint.model = info.model;
  if (fingerprint.model.empty())
    fingerprint.model = canonicalize(llvm::sys::getHostCPUName());
  if (fingerprint.model.empty())
    fingerprint.model = "unknown";

  // Less the features NORMJIT_DISABLE_CPU_FEATURES turns off: kernels
  // compiled without them are tuned and cached apart.
  const std::vector<std::string> &disabled = getDisabledHostCpuFeatures();
  llvm::StringMap<bool> host;
  if (!info.haveFlags)
    host = llvm::sys::getHostCPUFeatures();
  std::vector<std::string> features;
  for (const Feature &feature : kFeatures) {
    bool present = info.haveFlags
                       ? llvm::is_contained(info.flags, feature.cpuinfoName)
                       : host.lookup(feature.llvmName);
    if (present && !llvm::is_contained(disabled, feature.llvmName))
      features.push_back(feature.cpuinfoName);
  }
  std::sort(features.begin(), features.end());
  for (const std::string &feature : features) {
    if (!fingerprint.features.empty())
      fingerprint.features += ",";
    fingerprint.features += feature;
  }
  fingerprint.cores = std::max(1u, std::thread::hardware_concurrency());
  return fingerprint;
}
