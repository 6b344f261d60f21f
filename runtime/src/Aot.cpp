//===- Aot.cpp - CPU feature detection and ahead-of-time kernel dispatch --===//
//
// Part of normjit. Implements aot.h: the ISA features of this CPU from cpuid
// and xgetbv (a feature whose register state the OS does not save counts as
// missing), the choice of an AOT kernel's variant and its launch.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/aot.h"
#include "normjit/runtime/Error.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define NORMJIT_X86 1
#endif

using normjit::runtime::setError;

namespace {

/// What the OS must save for a feature to be usable.
enum class State { None, Avx, Avx512, Apx };

/// Where cpuid reports a feature.
enum class Word {
  Leaf1Ecx,
  Leaf1Edx,
  Leaf7Ebx,
  Leaf7Ecx,
  Leaf7Edx,
  Leaf7Sub1Eax,
  Leaf7Sub1Edx,
  Ext1Ecx,
  Ext1Edx,
  Avx10Version, ///< the AVX10 version (leaf 0x24) is at least `bit`
};

struct Feature {
  const char *name; ///< LLVM's name
  Word word;
  unsigned bit;
  State state;
};

/// The features that decide which instructions compiled kernels may use.
/// System features (clwb, rdpid, shstk, ...) never appear in kernel code and
/// are not listed: `normjit aot` does not check them.
const Feature kFeatures[] = {
    {"64bit", Word::Ext1Edx, 29, State::None},
    {"x87", Word::Leaf1Edx, 0, State::None},
    {"cx8", Word::Leaf1Edx, 8, State::None},
    {"cmov", Word::Leaf1Edx, 15, State::None},
    {"mmx", Word::Leaf1Edx, 23, State::None},
    {"fxsr", Word::Leaf1Edx, 24, State::None},
    {"sse", Word::Leaf1Edx, 25, State::None},
    {"sse2", Word::Leaf1Edx, 26, State::None},
    {"sse3", Word::Leaf1Ecx, 0, State::None},
    {"pclmul", Word::Leaf1Ecx, 1, State::None},
    {"ssse3", Word::Leaf1Ecx, 9, State::None},
    {"fma", Word::Leaf1Ecx, 12, State::Avx},
    {"cx16", Word::Leaf1Ecx, 13, State::None},
    {"sse4.1", Word::Leaf1Ecx, 19, State::None},
    {"sse4.2", Word::Leaf1Ecx, 20, State::None},
    {"crc32", Word::Leaf1Ecx, 20, State::None},
    {"movbe", Word::Leaf1Ecx, 22, State::None},
    {"popcnt", Word::Leaf1Ecx, 23, State::None},
    {"aes", Word::Leaf1Ecx, 25, State::None},
    {"xsave", Word::Leaf1Ecx, 26, State::None},
    {"avx", Word::Leaf1Ecx, 28, State::Avx},
    {"f16c", Word::Leaf1Ecx, 29, State::Avx},
    {"rdrnd", Word::Leaf1Ecx, 30, State::None},
    {"bmi", Word::Leaf7Ebx, 3, State::None},
    {"avx2", Word::Leaf7Ebx, 5, State::Avx},
    {"bmi2", Word::Leaf7Ebx, 8, State::None},
    {"avx512f", Word::Leaf7Ebx, 16, State::Avx512},
    {"avx512dq", Word::Leaf7Ebx, 17, State::Avx512},
    {"rdseed", Word::Leaf7Ebx, 18, State::None},
    {"adx", Word::Leaf7Ebx, 19, State::None},
    {"avx512ifma", Word::Leaf7Ebx, 21, State::Avx512},
    {"avx512cd", Word::Leaf7Ebx, 28, State::Avx512},
    {"sha", Word::Leaf7Ebx, 29, State::None},
    {"avx512bw", Word::Leaf7Ebx, 30, State::Avx512},
    {"avx512vl", Word::Leaf7Ebx, 31, State::Avx512},
    {"avx512vbmi", Word::Leaf7Ecx, 1, State::Avx512},
    {"avx512vbmi2", Word::Leaf7Ecx, 6, State::Avx512},
    {"gfni", Word::Leaf7Ecx, 8, State::None},
    {"vaes", Word::Leaf7Ecx, 9, State::Avx},
    {"vpclmulqdq", Word::Leaf7Ecx, 10, State::Avx},
    {"avx512vnni", Word::Leaf7Ecx, 11, State::Avx512},
    {"avx512bitalg", Word::Leaf7Ecx, 12, State::Avx512},
    {"avx512vpopcntdq", Word::Leaf7Ecx, 14, State::Avx512},
    {"avx512fp16", Word::Leaf7Edx, 23, State::Avx512},
    {"avxvnni", Word::Leaf7Sub1Eax, 4, State::Avx},
    {"avx512bf16", Word::Leaf7Sub1Eax, 5, State::Avx512},
    {"avxifma", Word::Leaf7Sub1Eax, 23, State::Avx},
    {"avxvnniint8", Word::Leaf7Sub1Edx, 4, State::Avx},
    {"avxneconvert", Word::Leaf7Sub1Edx, 5, State::Avx},
    {"avx10.1", Word::Avx10Version, 1, State::Avx512},
    {"avx10.2", Word::Avx10Version, 2, State::Avx512},
    {"egpr", Word::Leaf7Sub1Edx, 21, State::Apx},
    {"push2pop2", Word::Leaf7Sub1Edx, 21, State::Apx},
    {"ppx", Word::Leaf7Sub1Edx, 21, State::Apx},
    {"ndd", Word::Leaf7Sub1Edx, 21, State::Apx},
    {"ccmp", Word::Leaf7Sub1Edx, 21, State::Apx},
    {"nf", Word::Leaf7Sub1Edx, 21, State::Apx},
    {"cf", Word::Leaf7Sub1Edx, 21, State::Apx},
    {"zu", Word::Leaf7Sub1Edx, 21, State::Apx},
    {"sahf", Word::Ext1Ecx, 0, State::None},
    {"lzcnt", Word::Ext1Ecx, 5, State::None},
    {"sse4a", Word::Ext1Ecx, 6, State::None},
    {"prfchw", Word::Ext1Ecx, 8, State::None},
    {"xop", Word::Ext1Ecx, 11, State::Avx},
    {"fma4", Word::Ext1Ecx, 16, State::Avx},
    {"tbm", Word::Ext1Ecx, 21, State::None},
};

#ifdef NORMJIT_X86
constexpr bool kIsX86 = true;
#else
constexpr bool kIsX86 = false;
#endif

/// The cpuid words and OS state, read once.
struct CpuInfo {
  uint32_t words[9] = {};
  uint32_t avx10Version = 0;
  bool avxState = false, avx512State = false, apxState = false;
};

#ifdef NORMJIT_X86
CpuInfo readCpuInfo() {
  CpuInfo info;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  unsigned maxLeaf = __get_cpuid_max(0, nullptr);
  if (maxLeaf >= 1 && __get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
    info.words[static_cast<int>(Word::Leaf1Ecx)] = ecx;
    info.words[static_cast<int>(Word::Leaf1Edx)] = edx;
  }
  bool osxsave = (ecx >> 27) & 1;
  if (osxsave) {
    uint32_t xcr0Low = 0, xcr0High = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0Low), "=d"(xcr0High) : "c"(0));
    info.avxState = (xcr0Low & 0x6) == 0x6;
    info.avx512State = (xcr0Low & 0xe6) == 0xe6;
    info.apxState = ((xcr0Low >> 19) & 1) != 0;
  }
  unsigned maxSubleaf7 = 0;
  if (maxLeaf >= 7 && __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    maxSubleaf7 = eax;
    info.words[static_cast<int>(Word::Leaf7Ebx)] = ebx;
    info.words[static_cast<int>(Word::Leaf7Ecx)] = ecx;
    info.words[static_cast<int>(Word::Leaf7Edx)] = edx;
  }
  if (maxLeaf >= 7 && maxSubleaf7 >= 1 &&
      __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) {
    info.words[static_cast<int>(Word::Leaf7Sub1Eax)] = eax;
    info.words[static_cast<int>(Word::Leaf7Sub1Edx)] = edx;
  }
  bool avx10 = (info.words[static_cast<int>(Word::Leaf7Sub1Edx)] >> 19) & 1;
  if (avx10 && maxLeaf >= 0x24 &&
      __get_cpuid_count(0x24, 0, &eax, &ebx, &ecx, &edx))
    info.avx10Version = ebx & 0xff;
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000001 &&
      __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx)) {
    info.words[static_cast<int>(Word::Ext1Ecx)] = ecx;
    info.words[static_cast<int>(Word::Ext1Edx)] = edx;
  }
  return info;
}
#else
CpuInfo readCpuInfo() { return CpuInfo(); }
#endif

const CpuInfo &getCpuInfo() {
  static const CpuInfo &info = *new CpuInfo(readCpuInfo()); // never destroyed
  return info;
}

/// The feature called `name` (`length` characters), if this architecture
/// has it.
const Feature *findFeature(const char *name, size_t length) {
  if (!kIsX86)
    return nullptr;
  for (const Feature &feature : kFeatures)
    if (std::strlen(feature.name) == length &&
        std::strncmp(feature.name, name, length) == 0)
      return &feature;
  return nullptr;
}

/// Whether `list` (comma-separated, spaces around a name ignored, as the
/// JIT reads NORMJIT_DISABLE_CPU_FEATURES) names the feature `name`.
bool listContains(const char *list, const char *name) {
  size_t length = std::strlen(name);
  while (list && *list) {
    const char *end = std::strchr(list, ',');
    const char *item = list;
    const char *itemEnd = end ? end : list + std::strlen(list);
    while (item < itemEnd && std::isspace(static_cast<unsigned char>(*item)))
      ++item;
    while (itemEnd > item &&
           std::isspace(static_cast<unsigned char>(itemEnd[-1])))
      --itemEnd;
    if (static_cast<size_t>(itemEnd - item) == length &&
        std::strncmp(item, name, length) == 0)
      return true;
    list = end ? end + 1 : nullptr;
  }
  return false;
}

bool hasFeature(const Feature &feature) {
  const CpuInfo &info = getCpuInfo();
  bool present;
  if (feature.word == Word::Avx10Version)
    present = info.avx10Version >= feature.bit;
  else
    present = (info.words[static_cast<int>(feature.word)] >> feature.bit) & 1;
  switch (feature.state) {
  case State::None:
    break;
  case State::Avx:
    present = present && info.avxState;
    break;
  case State::Avx512:
    present = present && info.avx512State;
    break;
  case State::Apx:
    present = present && info.apxState;
    break;
  }
  return present && !listContains(std::getenv("NORMJIT_DISABLE_CPU_FEATURES"),
                                  feature.name);
}

/// The first feature of `features` this CPU lacks, or "" if it has all.
std::string findMissingFeature(const char *features) {
  const char *item = features;
  while (item && *item) {
    const char *end = std::strchr(item, ',');
    size_t length = end ? static_cast<size_t>(end - item) : std::strlen(item);
    if (length != 0) {
      const Feature *feature = findFeature(item, length);
      if (!feature || !hasFeature(*feature))
        return std::string(item, length);
    }
    item = end ? end + 1 : nullptr;
  }
  return "";
}

} // namespace

extern "C" int normjit_cpu_has_features(const char *features) {
  return findMissingFeature(features).empty() ? 1 : 0;
}

extern "C" int normjit_cpu_feature_known(const char *feature) {
  return feature && findFeature(feature, std::strlen(feature)) ? 1 : 0;
}

extern "C" const normjit_aot_variant_t *
normjit_aot_select(normjit_aot_kernel_t *kernel) {
  if (!kernel) {
    setError(NORMJIT_INVALID_ARGUMENT, "AOT kernel must not be null");
    return nullptr;
  }
  const normjit_aot_variant_t *selected =
      __atomic_load_n(&kernel->selected, __ATOMIC_ACQUIRE);
  if (selected)
    return selected;
  std::string why;
  for (int64_t i = 0; i < kernel->variant_count; ++i) {
    const normjit_aot_variant_t &variant = kernel->variants[i];
    std::string missing = findMissingFeature(variant.features);
    if (missing.empty()) {
      __atomic_store_n(&kernel->selected, &variant, __ATOMIC_RELEASE);
      return &variant;
    }
    why += std::string(why.empty() ? "" : ", ") + variant.target + " needs " +
           missing;
  }
  setError(NORMJIT_UNSUPPORTED,
           std::string("AOT kernel '") + (kernel->name ? kernel->name : "?") +
               "' has no variant for this CPU (" +
               (why.empty() ? std::string("it has no variants") : why) + ")");
  return nullptr;
}

extern "C" const char *normjit_aot_target(normjit_aot_kernel_t *kernel) {
  const normjit_aot_variant_t *variant = normjit_aot_select(kernel);
  return variant ? variant->target : nullptr;
}

extern "C" normjit_status_t normjit_aot_run(normjit_aot_kernel_t *kernel,
                                            const normjit_run_args_t *args) {
  const normjit_aot_variant_t *variant = normjit_aot_select(kernel);
  if (!variant)
    return kernel ? NORMJIT_UNSUPPORTED : NORMJIT_INVALID_ARGUMENT;
  return normjit_cpu_launch(variant->fn, &kernel->spec, args, &variant->launch);
}
