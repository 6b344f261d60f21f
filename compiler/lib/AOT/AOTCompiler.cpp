//===- AOTCompiler.cpp - kernels to objects, a header and a manifest ------===//
//
// Part of normjit. Resolves CPU targets, compiles kernels with the JIT's
// module builder, lowering and LLVM optimization (KernelPipeline.h) into one
// object per target, generates the dispatch object (LLVM IR built here, so
// no C compiler is needed), the C header, the static library and the
// manifest.
//
//===----------------------------------------------------------------------===//

#include "normjit/AOT/AOTCompiler.h"

#include "AOTInternal.h"
#include "KernelPipeline.h"

#include "normjit/Dialect/Norm/IR/NormAttrs.h"
#include "normjit/Dialect/Norm/IR/NormDialect.h"
#include "normjit/runtime/aot.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Linker/Linker.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Object/Archive.h"
#include "llvm/Object/ArchiveWriter.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/TargetParser/X86TargetParser.h"

#include <cctype>
#include <cstddef>
#include <cstdlib>
#include <memory>

#include <dlfcn.h>

using namespace normjit;
using namespace normjit::aot;

#ifndef NORMJIT_VERSION_STRING
#define NORMJIT_VERSION_STRING "unknown"
#endif

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

llvm::StringRef normjit::aot::detail::getOpName(normjit_op_t op) {
  return op == NORMJIT_LAYER_NORM ? "layer_norm" : "rms_norm";
}

std::string normjit::aot::detail::formatFloat(float value) {
  std::string text;
  for (int precision = 1; precision <= 9; ++precision) {
    text.clear();
    llvm::raw_string_ostream(text)
        << llvm::format("%.*g", precision, static_cast<double>(value));
    if (static_cast<float>(std::strtod(text.c_str(), nullptr)) == value)
      break;
  }
  if (text.find_first_of(".eEn") == std::string::npos)
    text += ".0";
  return text;
}

std::string normjit::aot::detail::quoteToml(llvm::StringRef text) {
  std::string quoted = "\"";
  for (char c : text) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      llvm::raw_string_ostream(quoted)
          << llvm::format("\\u%04x", static_cast<unsigned>(byte));
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

std::string normjit::aot::detail::describeKernel(const AotKernel &kernel) {
  std::string text = "kernel '" + kernel.name + "'";
  if (!kernel.origin.empty())
    text += " (" + kernel.origin + ")";
  return text;
}

llvm::Error normjit::aot::detail::prefixError(llvm::Error error,
                                              const llvm::Twine &prefix) {
  normjit_status_t status = NORMJIT_INTERNAL;
  std::string message;
  llvm::handleAllErrors(
      std::move(error),
      [&](const StatusError &e) {
        status = e.getStatus();
        message = e.getMessage();
      },
      [&](const llvm::ErrorInfoBase &e) { message = e.message(); });
  return makeError(status, prefix + ": " + message);
}

const char *normjit::aot::detail::dtypeName(normjit_dtype_t dtype) {
  const char *name = normjit_dtype_name(dtype);
  return name ? name : "?";
}

std::string
normjit::aot::detail::describeSpec(const normjit_kernel_spec_t &spec) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << getOpName(spec.op) << ", cols " << spec.cols << ", x "
     << dtypeName(spec.x_dtype) << ", y " << dtypeName(spec.y_dtype);
  if (spec.has_residual)
    os << ", residual " << dtypeName(spec.residual_dtype);
  if (spec.store_sum)
    os << ", sum " << dtypeName(spec.sum_dtype);
  if (spec.has_gamma)
    os << ", gamma " << dtypeName(spec.gamma_dtype);
  if (spec.has_beta)
    os << ", beta " << dtypeName(spec.beta_dtype);
  if (spec.store_mean)
    os << ", mean f32";
  if (spec.store_rstd)
    os << ", rstd f32";
  os << ", eps " << formatFloat(spec.epsilon);
  return text;
}

std::string normjit::aot::detail::wrapComment(llvm::StringRef text,
                                              llvm::StringRef prefix,
                                              llvm::StringRef next) {
  std::string result, line = prefix.str();
  llvm::SmallVector<llvm::StringRef> words;
  text.split(words, ' ', -1, /*KeepEmpty=*/false);
  bool lineEmpty = true;
  for (llvm::StringRef word : words) {
    if (!lineEmpty && line.size() + 1 + word.size() > 78) {
      result += line + "\n";
      line = next.str();
      lineEmpty = true;
    }
    line += " " + word.str();
    lineEmpty = false;
  }
  return result + line;
}

normjit_kernel_spec_t
normjit::aot::detail::normalizeSpec(normjit_kernel_spec_t spec) {
  spec.has_residual = spec.has_residual != 0;
  spec.store_sum = spec.store_sum != 0;
  spec.has_gamma = spec.has_gamma != 0;
  spec.has_beta = spec.has_beta != 0;
  spec.store_mean = spec.store_mean != 0;
  spec.store_rstd = spec.store_rstd != 0;
  if (!spec.has_residual)
    spec.residual_dtype = NORMJIT_F32;
  if (!spec.store_sum)
    spec.sum_dtype = NORMJIT_F32;
  if (!spec.has_gamma)
    spec.gamma_dtype = NORMJIT_F32;
  if (!spec.has_beta)
    spec.beta_dtype = NORMJIT_F32;
  return spec;
}

std::string
normjit::aot::detail::getManifestSpec(const normjit_kernel_spec_t &s) {
  std::string text;
  llvm::raw_string_ostream os(text);
  auto flag = [](int value) { return value ? "true" : "false"; };
  os << "op = " << quoteToml(getOpName(s.op)) << "\n"
     << "cols = " << s.cols << "\n"
     << "x_dtype = " << quoteToml(dtypeName(s.x_dtype)) << "\n"
     << "y_dtype = " << quoteToml(dtypeName(s.y_dtype)) << "\n"
     << "residual = " << flag(s.has_residual) << "\n";
  if (s.has_residual)
    os << "residual_dtype = " << quoteToml(dtypeName(s.residual_dtype)) << "\n";
  os << "store_sum = " << flag(s.store_sum) << "\n";
  if (s.store_sum)
    os << "sum_dtype = " << quoteToml(dtypeName(s.sum_dtype)) << "\n";
  os << "gamma = " << flag(s.has_gamma) << "\n";
  if (s.has_gamma)
    os << "gamma_dtype = " << quoteToml(dtypeName(s.gamma_dtype)) << "\n";
  os << "beta = " << flag(s.has_beta) << "\n";
  if (s.has_beta)
    os << "beta_dtype = " << quoteToml(dtypeName(s.beta_dtype)) << "\n";
  os << "store_mean = " << flag(s.store_mean) << "\n"
     << "store_rstd = " << flag(s.store_rstd) << "\n"
     << "eps = " << formatFloat(s.epsilon) << "\n";
  return text;
}

std::string normjit::aot::detail::getVersionString() {
  return NORMJIT_VERSION_STRING;
}

namespace {

llvm::Error invalid(const llvm::Twine &message) {
  return makeError(NORMJIT_INVALID_ARGUMENT, message);
}

using normjit::aot::detail::dtypeName;
using normjit::aot::detail::prefixError;

const llvm::Triple &getHostTriple() {
  static const llvm::Triple triple(llvm::sys::getProcessTriple());
  return triple;
}

llvm::Expected<const llvm::Target *> getHostTarget() {
  normjit::detail::initializeLLVMOnce();
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(getHostTriple(), error);
  if (!target)
    return makeError(NORMJIT_UNSUPPORTED, "LLVM has no target for " +
                                              getHostTriple().str() + ": " +
                                              error);
  return target;
}

bool isX86_64() { return getHostTriple().getArch() == llvm::Triple::x86_64; }

/// `name` with every character that cannot be in a C identifier as '_'.
std::string toIdentifier(llvm::StringRef name) {
  std::string result = name.str();
  for (char &c : result)
    if (!std::isalnum(static_cast<unsigned char>(c)))
      c = '_';
  return result;
}

} // namespace

//===----------------------------------------------------------------------===//
// Targets
//===----------------------------------------------------------------------===//

llvm::Expected<CpuTarget> normjit::aot::resolveCpuTarget(llvm::StringRef name) {
  auto target = getHostTarget();
  if (!target)
    return target.takeError();
  const llvm::Triple &triple = getHostTriple();
  CpuTarget result;
  result.name = name.str();
  llvm::StringMap<bool> features;
  if (name == "native") {
    // Exactly what the JIT compiles for (the host's CPU and features, less
    // those NORMJIT_DISABLE_CPU_FEATURES turns off), so that the two
    // produce the same code.
    result.cpu = llvm::sys::getHostCPUName().str();
    llvm::SubtargetFeatures subtarget;
    for (const auto &feature : getHostCpuFeatures()) {
      subtarget.AddFeature(feature.first(), feature.second);
      if (feature.second)
        features[feature.first()] = true;
    }
    result.features = subtarget.getString();
  } else {
    bool valid = false;
    if (isX86_64()) {
      valid = llvm::X86::parseArchX86(name, /*Only64Bit=*/true) !=
              llvm::X86::CK_None;
    } else if (!name.empty()) {
      std::unique_ptr<llvm::MCSubtargetInfo> info(
          (*target)->createMCSubtargetInfo(triple, "", ""));
      valid = info && info->isCPUStringValid(name);
    }
    if (!valid) {
      std::string expected =
          isX86_64() ? "native, x86-64, x86-64-v2, x86-64-v3, x86-64-v4 or an "
                       "x86-64 CPU name LLVM knows (e.g. znver4, "
                       "sapphirerapids)"
                     : "native or a CPU name LLVM knows for " +
                           triple.getArchName().str();
      return invalid("unknown CPU target '" + name + "'; expected " + expected);
    }
    result.cpu = name.str();
    if (isX86_64()) {
      llvm::SmallVector<llvm::StringRef> list;
      llvm::X86::getFeaturesForCPU(name, list, /*NeedPlus=*/false);
      list.push_back("64bit");
      list.push_back("sse2");
      for (llvm::StringRef feature : list) {
        features[feature] = true;
        llvm::X86::updateImpliedFeatures(feature, true, features);
      }
      // A feature the runtime cannot see in cpuid must not be in the code:
      // the dispatch would run it where it is missing (an illegal
      // instruction). Code generation gets the CPU's model without them.
      llvm::SubtargetFeatures subtarget;
      for (const auto &feature : features)
        if (feature.second &&
            !normjit_cpu_feature_known(feature.first().str().c_str()))
          subtarget.AddFeature(feature.first(), false);
      result.features = subtarget.getString();
      for (auto &feature : features)
        if (!normjit_cpu_feature_known(feature.first().str().c_str()))
          feature.second = false;
    }
  }
  for (const auto &feature : features)
    if (feature.second &&
        normjit_cpu_feature_known(feature.first().str().c_str()))
      result.checkedFeatures.push_back(feature.first().str());
  llvm::sort(result.checkedFeatures);
  result.symbolSuffix = toIdentifier(name);
  result.description.name = result.cpu;
  result.description.avx2 = features.lookup("avx2");
  result.description.avx512f = features.lookup("avx512f");
  result.description.f16c = features.lookup("f16c");
  // As the JIT's HostCpu::avx512bf16 (the default config depends on it).
  result.description.avx512bf16 =
      features.lookup("avx512bf16") && features.lookup("avx512vl");
  result.description.cores = getHostCpu().cores;
  // The host's cache for `native`; a named CPU's is not known (the
  // rows-aware default then assumes kAssumedLastLevelCacheBytes).
  if (name == "native")
    result.description.lastLevelCacheBytes = getHostCpu().lastLevelCacheBytes;
  return result;
}

//===----------------------------------------------------------------------===//
// Configs
//===----------------------------------------------------------------------===//

bool CpuConfigKnobs::empty() const {
  return !vectorWidth && !accumulators && !rowsPerTask && !threads &&
         !welford && !streamingStores && !fuseResidual && !prefetchRows &&
         !rowGroup;
}

CpuConfig CpuConfigKnobs::applyTo(CpuConfig base) const {
  if (vectorWidth)
    base.vectorWidth = *vectorWidth;
  if (accumulators)
    base.accumulators = *accumulators;
  if (rowsPerTask)
    base.rowsPerTask = *rowsPerTask;
  if (threads)
    base.threads = *threads;
  if (welford)
    base.welford = *welford;
  if (streamingStores)
    base.streamingStores = *streamingStores;
  if (fuseResidual)
    base.fuseResidual = *fuseResidual;
  if (prefetchRows)
    base.prefetchRows = *prefetchRows;
  if (rowGroup)
    base.rowGroup = *rowGroup;
  return base;
}

std::string CpuConfigKnobs::str() const {
  std::string text = "#norm.config<cpu";
  llvm::raw_string_ostream os(text);
  auto flag = [](bool value) { return value ? "true" : "false"; };
  if (vectorWidth)
    os << ", vector_width = " << *vectorWidth;
  if (fuseResidual)
    os << ", fuse_residual = " << flag(*fuseResidual);
  if (accumulators)
    os << ", accumulators = " << *accumulators;
  if (rowsPerTask)
    os << ", rows_per_task = " << *rowsPerTask;
  // threads = 0 (all cores) is the attribute's absent knob.
  if (threads && *threads > 0)
    os << ", threads = " << *threads;
  if (welford)
    os << ", algorithm = " << (*welford ? "welford" : "two_pass");
  if (streamingStores)
    os << ", streaming_stores = " << flag(*streamingStores);
  if (prefetchRows)
    os << ", prefetch_rows = " << *prefetchRows;
  if (rowGroup)
    os << ", row_group = " << *rowGroup;
  os << ">";
  return text;
}

llvm::Expected<CpuConfigKnobs>
normjit::aot::parseCpuConfigKnobs(llvm::StringRef text) {
  auto parsed = normjit::detail::parseConfigKnobs(text);
  if (!parsed)
    return parsed.takeError();
  const norm::ConfigKnobs &config = *parsed;
  if (config.backend != norm::Backend::CPU)
    return invalid("invalid config '" + text +
                   "': it is for the gpu backend; GPU kernels are compiled "
                   "with --device cuda");
  CpuConfigKnobs knobs;
  knobs.vectorWidth = config.vectorWidth;
  knobs.accumulators = config.accumulators;
  knobs.rowsPerTask = config.rowsPerTask;
  if (config.threads)
    knobs.threads = static_cast<int>(*config.threads);
  if (config.algorithm)
    knobs.welford = *config.algorithm == norm::Algorithm::Welford;
  knobs.streamingStores = config.streamingStores;
  knobs.fuseResidual = config.fuseResidual;
  knobs.prefetchRows = config.prefetchRows;
  knobs.rowGroup = config.rowGroup;
  return knobs;
}

const char *normjit::aot::getConfigSourceName(ConfigSource source) {
  switch (source) {
  case ConfigSource::Default:
    return "default";
  case ConfigSource::Cache:
    return "cache";
  case ConfigSource::Explicit:
    return "explicit";
  }
  return "default";
}

ConfigSource AotKernel::getConfigSource() const {
  if (!knobs.empty())
    return ConfigSource::Explicit;
  return tunedConfig ? ConfigSource::Cache : ConfigSource::Default;
}

const char *normjit::aot::getAotDeviceName(AotDevice device) {
  return device == AotDevice::CUDA ? "cuda" : "cpu";
}

llvm::Expected<AotDevice> normjit::aot::parseAotDevice(llvm::StringRef name,
                                                       llvm::StringRef what) {
  if (name == "cpu")
    return AotDevice::CPU;
  if (name == "cuda")
    return AotDevice::CUDA;
  return invalid("unknown " + what + " '" + name + "'; expected cpu or cuda");
}

CpuConfig AotKernel::getConfig(const CpuTarget &target) const {
  CpuConfig base = tunedConfig ? *tunedConfig
                               : getDefaultCpuConfigForRows(
                                     spec, rowsHint, target.description);
  // The default hint's streaming stores: not for a kernel that may be
  // called for one row (see rowsHintGiven).
  if (!tunedConfig && !rowsHintGiven && base.streamingStores)
    base = getDefaultCpuConfig(spec, target.description);
  return knobs.applyTo(base);
}

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

namespace {
/// C and C++ keywords (and `main`), which no name may be.
const char *const kKeywords[] = {
    "alignas",      "alignof",  "and",           "and_eq",
    "asm",          "auto",     "bitand",        "bitor",
    "bool",         "break",    "case",          "catch",
    "char",         "char16_t", "char32_t",      "class",
    "compl",        "const",    "const_cast",    "constexpr",
    "continue",     "decltype", "default",       "delete",
    "do",           "double",   "dynamic_cast",  "else",
    "enum",         "explicit", "export",        "extern",
    "false",        "float",    "for",           "friend",
    "goto",         "if",       "inline",        "int",
    "long",         "mutable",  "namespace",     "new",
    "noexcept",     "not",      "not_eq",        "nullptr",
    "operator",     "or",       "or_eq",         "private",
    "protected",    "public",   "register",      "reinterpret_cast",
    "restrict",     "return",   "short",         "signed",
    "sizeof",       "static",   "static_assert", "static_cast",
    "struct",       "switch",   "template",      "this",
    "thread_local", "throw",    "true",          "try",
    "typedef",      "typeid",   "typename",      "union",
    "unsigned",     "using",    "virtual",       "void",
    "volatile",     "wchar_t",  "while",         "xor",
    "xor_eq",       "main",
    // C++20, C23 and GNU C keywords.
    "char8_t", "concept", "consteval", "constinit", "co_await",
    "co_return", "co_yield", "requires", "typeof", "typeof_unqual"};

/// The rules of any name normjit writes into C (a kernel's symbol, a
/// library's file names and include guard): a C identifier of at most 64
/// characters, no "__", not normjit's prefix.
llvm::Error validateIdentifier(llvm::StringRef what, llvm::StringRef name) {
  auto fail = [&](const llvm::Twine &why) {
    return invalid(what + " '" + name + "' " + why);
  };
  if (name.empty())
    return invalid(what + " must not be empty");
  if (name.size() > 64)
    return fail("is longer than 64 characters");
  if (!std::isalpha(static_cast<unsigned char>(name[0])))
    return fail("must start with a letter (it is a C identifier)");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      return fail("may hold only letters, digits and '_' (it is a C "
                  "identifier)");
  if (name.contains("__"))
    return fail("must not contain \"__\" (reserved in C++ and for normjit's "
                "own symbols)");
  if (name.starts_with_insensitive("normjit_"))
    return fail("must not start with \"normjit_\" or \"NORMJIT_\" (the "
                "runtime's prefix, and that of its macros, enumerators and "
                "the generated header's include guard)");
  return llvm::Error::success();
}
} // namespace

llvm::Error normjit::aot::validateName(llvm::StringRef what,
                                       llvm::StringRef name) {

  auto fail = [&](const llvm::Twine &why) {
    return invalid(what + " '" + name + "' " + why);
  };
  if (llvm::Error error = validateIdentifier(what, name))
    return error;
  // The type names of <stdint.h> and <stddef.h> (uint16_t, size_t) end in
  // "_t", a suffix POSIX reserves for the system's types.
  if (name.ends_with("_t"))
    return fail("must not end in \"_t\" (reserved for the types of "
                "<stdint.h>, <stddef.h> and POSIX)");
  for (const char *keyword : kKeywords)
    if (name == keyword)
      return fail("is a C or C++ keyword");
  // Macros GCC and Clang predefine in their GNU modes (their default).
  for (const char *macro : {"linux", "unix", "i386"})
    if (name == macro)
      return fail("is a macro GCC and Clang predefine (in their default GNU "
                  "modes)");
  // A macro of the headers the generated header includes (INT64_MAX, NULL):
  // the header itself would not compile.
  static const llvm::Regex kHeaderMacros(
      "^(U?INT(_LEAST|_FAST)?(8|16|32|64)_(MIN|MAX|WIDTH)|"
      "U?INT(8|16|32|64|MAX)_C|U?INT(PTR|MAX)_(MIN|MAX|WIDTH)|"
      "(PTRDIFF|SIG_ATOMIC|WCHAR|WINT)_(MIN|MAX|WIDTH)|SIZE_(MAX|WIDTH)|"
      "NULL|offsetof|unreachable)$");
  if (kHeaderMacros.match(name))
    return fail("is a macro of <stdint.h> or <stddef.h>, which the generated "
                "header includes");
  // A macro of another standard C header (C11, with <math.h>'s
  // classification macros): a host that includes it before the generated
  // header would not compile.
  static const llvm::Regex kStandardMacros(
      "^(assert|errno|EOF|BUFSIZ|FILENAME_MAX|FOPEN_MAX|L_tmpnam|TMP_MAX|"
      "SEEK_(SET|CUR|END)|_IO[FLN]BF|stdin|stdout|stderr|EXIT_(SUCCESS|"
      "FAILURE)|RAND_MAX|MB_CUR_MAX|MB_LEN_MAX|CHAR_BIT|(S|U)?CHAR_(MIN|"
      "MAX)|(U?(SHRT|INT|LONG|LLONG))_(MIN|MAX)|(FLT|DBL|LDBL)_[A-Z_0-9]+|"
      "DECIMAL_DIG|complex|imaginary|I|NAN|INFINITY|HUGE_VAL[FL]?|"
      "FP_[A-Z_]+|MATH_ERR[A-Z]+|math_errhandling|signbit|fpclassify|"
      "is(finite|inf|nan|normal|greater|greaterequal|less|lessequal|"
      "lessgreater|unordered)|va_(arg|start|end|copy)|setjmp|"
      "static_assert|noreturn|alignas|alignof|thread_local|bool|true|false|"
      "__bool_true_false_are_defined|E[A-Z0-9]+|SIG[A-Z0-9_]+|LC_[A-Z]+|"
      "CLOCKS_PER_SEC|TIME_UTC|WEOF|WCHAR_(MIN|MAX)|ATOMIC_[A-Z_]+|"
      "atomic_[a-z_]+|kill_dependency|FE_[A-Z_]+|CMPLX[FL]?|"
      "(U?(SHRT|INT|LONG|LLONG)|[SU]?CHAR|BOOL)_WIDTH|"
      "ONCE_FLAG_INIT|TSS_DTOR_ITERATIONS|PRI[a-zX][a-zA-Z0-9]*|"
      "SCN[a-zX][a-zA-Z0-9]*)$");
  if (kStandardMacros.match(name))
    return fail("is a macro of a standard C header (<assert.h>, <math.h>, "
                "<stdio.h>, <limits.h>, ...): a host that includes that "
                "header would not compile the generated one");
  // Functions of glibc's libc_nonshared.a, which the dynamic library does
  // not export (so dlsym below does not see them): a kernel of that name
  // would replace the host's.
  for (const char *function :
       {"atexit", "at_quick_exit", "pthread_atfork", "stat", "fstat", "lstat",
        "fstatat", "mknod", "mknodat", "stat64", "fstat64", "lstat64",
        "fstatat64"})
    if (name == function)
      return fail("is the name of a C library function (libc_nonshared.a); "
                  "the kernel's function would replace it");
  // A global function of the C library's (memcpy, sqrt): a kernel of that
  // name would clash with it in every host, or quietly replace it.
  std::string symbol = name.str();
  for (const char *library : {"libc.so.6", "libm.so.6"})
    if (void *handle = ::dlopen(library, RTLD_LAZY | RTLD_NOLOAD)) {
      bool taken = ::dlsym(handle, symbol.c_str()) != nullptr;
      ::dlclose(handle);
      if (taken)
        return fail("is the name of a C library function (" +
                    llvm::Twine(library) +
                    "); the kernel's function would clash with it");
    }
  return llvm::Error::success();
}

llvm::Error normjit::aot::validateLibraryName(llvm::StringRef name) {
  // The library's name makes file names and the header's include guard
  // (NORMJIT_AOT_<name>_H), no C symbol: a C identifier and no keyword,
  // but a C library function's or a macro's name (random, index, linux)
  // is fine.
  if (llvm::Error error = validateIdentifier("library name", name))
    return error;
  for (const char *keyword : kKeywords)
    if (name == keyword)
      return invalid("library name '" + name + "' is a C or C++ keyword");
  // The library's header is NAME.h: one named as a standard C header would
  // stand in for it wherever the output directory is on the include path.
  static const char *const kStandardHeaders[] = {
      "assert", "complex", "ctype",    "errno",       "fenv",    "float",
      "inttypes", "iso646", "limits",  "locale",      "math",    "setjmp",
      "signal", "stdalign", "stdarg",  "stdatomic",   "stdbool", "stddef",
      "stdint", "stdio",    "stdlib",  "stdnoreturn", "string",  "tgmath",
      "threads", "time",    "uchar",   "wchar",       "wctype"};
  for (const char *header : kStandardHeaders)
    if (name == header)
      return invalid("library name '" + name + "' would make " + name +
                     ".h, the name of a standard C header");
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Compilation
//===----------------------------------------------------------------------===//

namespace {

/// A target machine for `target`: position-independent code in the small
/// code model (objects that link into executables and shared libraries),
/// the JIT's code generation level.
llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
createTargetMachine(llvm::StringRef cpu, llvm::StringRef features) {
  auto target = getHostTarget();
  if (!target)
    return target.takeError();
  llvm::TargetOptions options;
  options.UseInitArray = true;
  std::unique_ptr<llvm::TargetMachine> machine((*target)->createTargetMachine(
      getHostTriple(), cpu, features, options, llvm::Reloc::PIC_,
      llvm::CodeModel::Small, normjit::detail::kKernelCodeGenOptLevel));
  if (!machine)
    return makeError(NORMJIT_INTERNAL,
                     "LLVM cannot create a target machine for CPU '" + cpu +
                         "'");
  return std::move(machine);
}

/// Lowers one kernel to an optimized LLVM module, as the JIT does.
llvm::Expected<std::unique_ptr<llvm::Module>>
compileKernelModule(llvm::LLVMContext &llvmContext,
                    const normjit_kernel_spec_t &spec, const CpuConfig &config,
                    llvm::TargetMachine &machine,
                    llvm::StringRef functionName) {
  auto ir = normjit::detail::buildVerifiedKernelIR(spec, config, functionName);
  if (!ir)
    return ir.takeError();
  mlir::MLIRContext &context = (*ir)->context;
  const normjit::detail::DiagnosticCollector &diagnostics = (*ir)->diagnostics;
  mlir::OwningOpRef<mlir::ModuleOp> &module = (*ir)->module;
  mlir::PassManager pm(&context);
  // Native bf16 rounding exactly when the target has it, as the JIT does
  // for the host, so that AOT and JIT code match for the same CPU.
  // As the JIT's HostCpu::avx512bf16: the 128/256-bit forms need VL.
  bool nativeBf16 =
      machine.getMCSubtargetInfo()->checkFeatures("+avx512bf16,+avx512vl");
  normjit::detail::buildCpuLoweringPipeline(pm, spec, config, nativeBf16);
  if (mlir::failed(pm.run(*module)))
    return makeError(NORMJIT_COMPILE_ERROR,
                     "lowering failed: " + diagnostics.str());
  std::unique_ptr<llvm::Module> llvmModule =
      mlir::translateModuleToLLVMIR(*module, llvmContext);
  if (!llvmModule)
    return makeError(NORMJIT_COMPILE_ERROR,
                     "translation to LLVM IR failed: " + diagnostics.str());
  llvmModule->setDataLayout(machine.createDataLayout());
  llvmModule->setTargetTriple(machine.getTargetTriple());
  if (llvm::Error error =
          normjit::detail::makeKernelLLVMOptimizer(functionName)(
              llvmModule.get()))
    return makeError(NORMJIT_COMPILE_ERROR,
                     "LLVM optimization failed: " +
                         llvm::toString(std::move(error)));
  return std::move(llvmModule);
}

/// Generates the object file of `module`.
llvm::Expected<std::string> emitObject(llvm::Module &module,
                                       llvm::TargetMachine &machine) {
  llvm::SmallString<0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager pm;
  if (machine.addPassesToEmitFile(pm, os, nullptr,
                                  llvm::CodeGenFileType::ObjectFile))
    return makeError(NORMJIT_INTERNAL,
                     "LLVM cannot emit object files for this target");
  pm.run(module);
  return std::string(buffer.str());
}

/// Gives every function `module` defines hidden visibility: the symbols
/// link between the library's objects but are not exported from a shared
/// library that embeds them.
void hideDefinitions(llvm::Module &module) {
  for (llvm::Function &function : module)
    if (!function.isDeclaration())
      function.setVisibility(llvm::GlobalValue::HiddenVisibility);
}

std::string kernelFunctionName(const AotKernel &kernel,
                               const CpuTarget &target) {
  return kernel.name + "__" + target.symbolSuffix;
}

std::string kernelSymbol(const AotKernel &kernel, const CpuTarget &target) {
  return "_mlir_ciface_" + kernelFunctionName(kernel, target);
}

} // namespace

llvm::Expected<std::string> normjit::aot::compileKernelObject(
    const normjit_kernel_spec_t &spec, const CpuConfig &config,
    const CpuTarget &target, llvm::StringRef functionName) {
  auto machine = createTargetMachine(target.cpu, target.features);
  if (!machine)
    return machine.takeError();
  llvm::LLVMContext llvmContext;
  auto module =
      compileKernelModule(llvmContext, spec, config, **machine, functionName);
  if (!module)
    return module.takeError();
  hideDefinitions(**module);
  return emitObject(**module, **machine);
}

//===----------------------------------------------------------------------===//
// The dispatch object
//===----------------------------------------------------------------------===//

namespace {

/// Builds `<library>.dispatch.o`: per kernel, the normjit_aot_kernel_t and
/// normjit_aot_variant_t descriptors of aot.h and the three C functions the
/// header declares, which call the runtime.
class DispatchBuilder {
public:
  DispatchBuilder(llvm::StringRef library, llvm::TargetMachine &machine)
      : module(std::make_unique<llvm::Module>(library.str() + ".dispatch",
                                              context)),
        builder(context) {
    module->setDataLayout(machine.createDataLayout());
    module->setTargetTriple(machine.getTargetTriple());
    llvm::Type *i32 = builder.getInt32Ty(), *i64 = builder.getInt64Ty();
    ptr = builder.getPtrTy();
    specType = llvm::StructType::create(context,
                                        {i32, i64, i32, i32, i32, i32, i32, i32,
                                         i32, i32, i32, i32, i32, i32,
                                         builder.getFloatTy()},
                                        "normjit_kernel_spec_t");
    launchType =
        llvm::StructType::create(context, {i64, i32}, "normjit_cpu_launch_t");
    variantType = llvm::StructType::create(context, {ptr, ptr, ptr, launchType},
                                           "normjit_aot_variant_t");
    kernelType = llvm::StructType::create(
        context, {ptr, specType, ptr, i64, ptr}, "normjit_aot_kernel_t");
    runFunction = declare("normjit_aot_run",
                          llvm::FunctionType::get(i32, {ptr, ptr}, false));
    targetFunction = declare("normjit_aot_target",
                             llvm::FunctionType::get(ptr, {ptr}, false));
  }

  /// Checks that LLVM lays the descriptors out as the C compiler that built
  /// this library does (the runtime reads them).
  llvm::Error checkLayout() const {
    const llvm::DataLayout &layout = module->getDataLayout();
    struct Expected {
      llvm::StructType *type;
      size_t size;
      std::vector<size_t> offsets;
    } expected[] = {{specType,
                     sizeof(normjit_kernel_spec_t),
                     {offsetof(normjit_kernel_spec_t, op),
                      offsetof(normjit_kernel_spec_t, cols),
                      offsetof(normjit_kernel_spec_t, x_dtype),
                      offsetof(normjit_kernel_spec_t, y_dtype),
                      offsetof(normjit_kernel_spec_t, has_residual),
                      offsetof(normjit_kernel_spec_t, residual_dtype),
                      offsetof(normjit_kernel_spec_t, store_sum),
                      offsetof(normjit_kernel_spec_t, sum_dtype),
                      offsetof(normjit_kernel_spec_t, has_gamma),
                      offsetof(normjit_kernel_spec_t, gamma_dtype),
                      offsetof(normjit_kernel_spec_t, has_beta),
                      offsetof(normjit_kernel_spec_t, beta_dtype),
                      offsetof(normjit_kernel_spec_t, store_mean),
                      offsetof(normjit_kernel_spec_t, store_rstd),
                      offsetof(normjit_kernel_spec_t, epsilon)}},
                    {launchType,
                     sizeof(normjit_cpu_launch_t),
                     {offsetof(normjit_cpu_launch_t, rows_per_task),
                      offsetof(normjit_cpu_launch_t, threads)}},
                    {variantType,
                     sizeof(normjit_aot_variant_t),
                     {offsetof(normjit_aot_variant_t, target),
                      offsetof(normjit_aot_variant_t, features),
                      offsetof(normjit_aot_variant_t, fn),
                      offsetof(normjit_aot_variant_t, launch)}},
                    {kernelType,
                     sizeof(normjit_aot_kernel_t),
                     {offsetof(normjit_aot_kernel_t, name),
                      offsetof(normjit_aot_kernel_t, spec),
                      offsetof(normjit_aot_kernel_t, variants),
                      offsetof(normjit_aot_kernel_t, variant_count),
                      offsetof(normjit_aot_kernel_t, selected)}}};
    for (const Expected &e : expected) {
      const llvm::StructLayout *structLayout = layout.getStructLayout(e.type);
      bool same = structLayout->getSizeInBytes() == e.size;
      for (size_t i = 0; i < e.offsets.size(); ++i)
        same = same && structLayout->getElementOffset(i) == e.offsets[i];
      if (!same)
        return makeError(NORMJIT_UNSUPPORTED,
                         "the C layout of " + e.type->getName() +
                             " differs on " + module->getTargetTriple().str());
    }
    return llvm::Error::success();
  }

  /// Adds the descriptors and functions of `kernel`.
  void addKernel(const AotKernel &kernel,
                 llvm::ArrayRef<const CpuTarget *> targets,
                 llvm::ArrayRef<CpuConfig> configs) {
    llvm::Type *i32 = builder.getInt32Ty(), *i64 = builder.getInt64Ty();
    llvm::FunctionType *kernelFnType = llvm::FunctionType::get(
        builder.getVoidTy(), llvm::SmallVector<llvm::Type *>(8, ptr), false);
    std::vector<llvm::Constant *> variants;
    for (size_t i = 0; i < targets.size(); ++i) {
      llvm::Function *fn =
          declare(kernelSymbol(kernel, *targets[i]), kernelFnType);
      fn->setVisibility(llvm::GlobalValue::HiddenVisibility);
      llvm::Constant *launch = llvm::ConstantStruct::get(
          launchType, {llvm::ConstantInt::get(i64, configs[i].rowsPerTask),
                       llvm::ConstantInt::get(i32, configs[i].threads)});
      variants.push_back(llvm::ConstantStruct::get(
          variantType,
          {string(targets[i]->name),
           string(llvm::join(targets[i]->checkedFeatures, ",")), fn, launch}));
    }
    auto *variantsType = llvm::ArrayType::get(variantType, variants.size());
    auto *variantArray = new llvm::GlobalVariable(
        *module, variantsType, /*isConstant=*/true,
        llvm::GlobalValue::PrivateLinkage,
        llvm::ConstantArray::get(variantsType, variants),
        kernel.name + ".variants");

    const normjit_kernel_spec_t &s = kernel.spec;
    auto int32 = [&](int64_t value) {
      return llvm::ConstantInt::get(i32, value);
    };
    llvm::Constant *spec = llvm::ConstantStruct::get(
        specType,
        {int32(s.op), llvm::ConstantInt::get(i64, s.cols), int32(s.x_dtype),
         int32(s.y_dtype), int32(s.has_residual), int32(s.residual_dtype),
         int32(s.store_sum), int32(s.sum_dtype), int32(s.has_gamma),
         int32(s.gamma_dtype), int32(s.has_beta), int32(s.beta_dtype),
         int32(s.store_mean), int32(s.store_rstd),
         llvm::ConstantFP::get(builder.getFloatTy(), s.epsilon)});
    // Not constant: the runtime remembers its choice in `selected`.
    auto *descriptor = new llvm::GlobalVariable(
        *module, kernelType, /*isConstant=*/false,
        llvm::GlobalValue::InternalLinkage,
        llvm::ConstantStruct::get(
            kernelType, {string(kernel.name), spec, variantArray,
                         llvm::ConstantInt::get(i64, variants.size()),
                         llvm::ConstantPointerNull::get(builder.getPtrTy())}),
        kernel.name + ".kernel");

    // normjit_status_t <name>(const normjit_run_args_t *args)
    llvm::Function *run =
        define(kernel.name, llvm::FunctionType::get(i32, {ptr}, false));
    builder.CreateRet(
        builder.CreateCall(runFunction, {descriptor, run->getArg(0)}));
    // const normjit_kernel_spec_t *<name>_spec(void)
    define(kernel.name + "_spec", llvm::FunctionType::get(ptr, false));
    builder.CreateRet(builder.CreateStructGEP(kernelType, descriptor, 1));
    // const char *<name>_target(void)
    define(kernel.name + "_target", llvm::FunctionType::get(ptr, false));
    builder.CreateRet(builder.CreateCall(targetFunction, {descriptor}));
  }

  llvm::Module &getModule() { return *module; }

private:
  llvm::Function *declare(const llvm::Twine &name, llvm::FunctionType *type) {
    return llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage,
                                  name, *module);
  }

  /// Starts the body of an exported function.
  llvm::Function *define(const llvm::Twine &name, llvm::FunctionType *type) {
    llvm::Function *function = declare(name, type);
    function->addFnAttr(llvm::Attribute::NoUnwind);
    function->setUWTableKind(llvm::UWTableKind::Async);
    builder.SetInsertPoint(
        llvm::BasicBlock::Create(context, "entry", function));
    return function;
  }

  /// A private, NUL-terminated string constant.
  llvm::Constant *string(llvm::StringRef text) {
    auto *data = llvm::ConstantDataArray::getString(context, text);
    auto *global = new llvm::GlobalVariable(
        *module, data->getType(), /*isConstant=*/true,
        llvm::GlobalValue::PrivateLinkage, data, ".str");
    global->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
    global->setAlignment(llvm::Align(1));
    return global;
  }

  llvm::LLVMContext context;
  std::unique_ptr<llvm::Module> module;
  llvm::IRBuilder<> builder;
  llvm::PointerType *ptr;
  llvm::StructType *specType, *launchType, *variantType, *kernelType;
  llvm::Function *runFunction, *targetFunction;
};

/// The most generic CPU of this architecture: what the dispatch code is
/// compiled for, since it must run before any feature is checked.
llvm::StringRef getGenericCpu() { return isX86_64() ? "x86-64" : "generic"; }

} // namespace

//===----------------------------------------------------------------------===//
// The header and the manifest
//===----------------------------------------------------------------------===//

namespace {

using normjit::aot::detail::describeSpec;
using normjit::aot::detail::wrapComment;

std::string generateHeader(llvm::StringRef library,
                           llvm::ArrayRef<const CpuTarget *> targets,
                           llvm::ArrayRef<AotKernel> kernels) {
  // The library's name as it is (names are case-sensitive, so must guards
  // be: "mylib" and "MyLib" are two libraries).
  std::string guard = "NORMJIT_AOT_" + library.str() + "_H";
  std::string targetList;
  for (const CpuTarget *target : targets)
    targetList += (targetList.empty() ? "" : ", ") + target->name;
  std::string text;
  llvm::raw_string_ostream os(text);
  os << wrapComment(library.str() +
                        ".h: ahead-of-time normjit kernels, "
                        "generated by `normjit aot` (normjit " +
                        NORMJIT_VERSION_STRING + ", LLVM " +
                        LLVM_VERSION_STRING + "); do not edit.",
                    "/*")
     << "\n *\n"
     << wrapComment("Link lib" + library.str() +
                        ".a and the normjit runtime (normjit::runtime). The "
                        "CPU targets of every kernel, tried at run time in "
                        "this order: " +
                        targetList + ".",
                    " *")
     << "\n */\n\n"
     << "#ifndef " << guard << "\n#define " << guard << "\n\n"
     << "#include <normjit/runtime/kernel.h>\n\n"
     << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n";
  for (const AotKernel &kernel : kernels) {
    const std::string &name = kernel.name;
    os << "\n"
       << wrapComment(name + ": " + describeSpec(kernel.spec) + ".", "/*")
       << " */\n\n"
       << wrapComment("Runs " + name +
                          " on args->rows rows, validating the arguments "
                          "first. Returns NORMJIT_UNSUPPORTED when this CPU "
                          "has the features of none of its targets; the "
                          "message is in normjit_last_error().",
                      "/**")
       << " */\n"
       << "normjit_status_t " << name << "(const normjit_run_args_t *args);\n"
       << "/** The spec " << name << " was compiled for. */\n"
       << "const normjit_kernel_spec_t *" << name << "_spec(void);\n"
       << wrapComment("The target " + name + " runs on this CPU, e.g. \"" +
                          targets.front()->name +
                          "\", or NULL when none runs here.",
                      "/**")
       << " */\n"
       << "const char *" << name << "_target(void);\n";
  }
  os << "\n#ifdef __cplusplus\n} /* extern \"C\" */\n#endif\n\n"
     << "#endif /* " << guard << " */\n";
  return text;
}

std::string objectName(llvm::StringRef library, const CpuTarget &target) {
  return library.str() + "." + target.name + ".o";
}

std::string generateManifest(llvm::StringRef library,
                             llvm::ArrayRef<const CpuTarget *> targets,
                             llvm::ArrayRef<AotKernel> kernels,
                             llvm::ArrayRef<std::vector<CpuConfig>> configs) {
  using normjit::aot::detail::quoteToml;
  std::string text;
  llvm::raw_string_ostream os(text);
  // The first line starts with kManifestHeader ("# normjit aot manifest").
  os << wrapComment(normjit::aot::detail::kManifestHeader.drop_front(2).str() +
                        ": what " + library.str() + ".h, lib" + library.str() +
                        ".a and the objects beside them hold. It is a spec "
                        "file too: `normjit aot --specs <this file> --out "
                        "DIR` compiles the same kernels again.",
                    "#", "#")
     << "\n"
     << "schema = 1\n"
     << "library = " << quoteToml(library) << "\n"
     << "targets = [";
  for (size_t i = 0; i < targets.size(); ++i)
    os << (i ? ", " : "") << quoteToml(targets[i]->name);
  os << "]\n"
     << "normjit_version = " << quoteToml(NORMJIT_VERSION_STRING) << "\n"
     << "llvm_version = " << quoteToml(LLVM_VERSION_STRING) << "\n"
     << "triple = " << quoteToml(getHostTriple().str()) << "\n"
     << "header = " << quoteToml(library.str() + ".h") << "\n"
     << "archive = " << quoteToml("lib" + library.str() + ".a") << "\n"
     << "dispatch = " << quoteToml(library.str() + ".dispatch.o") << "\n";
  for (const CpuTarget *target : targets)
    os << "\n[[target]]\n"
       << "name = " << quoteToml(target->name) << "\n"
       << "cpu = " << quoteToml(target->cpu) << "\n"
       << "object = " << quoteToml(objectName(library, *target)) << "\n"
       << "checked_features = "
       << quoteToml(llvm::join(target->checkedFeatures, ",")) << "\n";
  for (size_t k = 0; k < kernels.size(); ++k) {
    const AotKernel &kernel = kernels[k];
    os << "\n[[kernel]]\n"
       << "name = " << quoteToml(kernel.name) << "\n"
       << normjit::aot::detail::getManifestSpec(kernel.spec)
       << "rows_hint = " << kernel.rowsHint << "\n";
    ConfigSource source = kernel.getConfigSource();
    // What reproduces the configs when this manifest is read as a spec
    // file: the tuned config, or the user's knobs over each target's
    // default heuristic; nothing for the default heuristic itself.
    if (source == ConfigSource::Cache)
      os << "config = "
         << quoteToml(kernel.knobs.applyTo(*kernel.tunedConfig).str()) << "\n";
    else if (source == ConfigSource::Explicit)
      os << "config = " << quoteToml(kernel.knobs.str()) << "\n";
    os << "config_source = " << quoteToml(getConfigSourceName(source)) << "\n";
    for (size_t t = 0; t < targets.size(); ++t)
      os << "\n[[kernel.variant]]\n"
         << "target = " << quoteToml(targets[t]->name) << "\n"
         << "symbol = " << quoteToml(kernelSymbol(kernel, *targets[t])) << "\n"
         << "config = " << quoteToml(configs[k][t].str()) << "\n";
  }
  return text;
}

llvm::Expected<std::string>
buildArchive(llvm::ArrayRef<const AotFile *> objects) {
  std::vector<llvm::NewArchiveMember> members;
  for (const AotFile *object : objects)
    members.emplace_back(llvm::MemoryBufferRef(object->contents, object->name));
  std::string warnings;
  auto archive = llvm::writeArchiveToBuffer(
      members, llvm::SymtabWritingMode::NormalSymtab,
      llvm::object::Archive::K_GNU, /*Deterministic=*/true, /*Thin=*/false,
      [&](llvm::Error warning) {
        warnings += llvm::toString(std::move(warning));
      });
  if (!archive)
    return makeError(NORMJIT_INTERNAL, "cannot write the static library: " +
                                           llvm::toString(archive.takeError()));
  if (!warnings.empty())
    return makeError(NORMJIT_INTERNAL,
                     "cannot write the static library: " + warnings);
  return (*archive)->getBuffer().str();
}

} // namespace

//===----------------------------------------------------------------------===//
// The library
//===----------------------------------------------------------------------===//

using normjit::aot::detail::describeKernel;
using normjit::aot::detail::normalizeSpec;

llvm::Expected<std::vector<AotFile>>
normjit::aot::buildAotLibrary(llvm::StringRef library,
                              llvm::ArrayRef<std::string> targetNames,
                              llvm::ArrayRef<AotKernel> givenKernels) {
  std::vector<AotKernel> normalized(givenKernels.begin(), givenKernels.end());
  for (AotKernel &kernel : normalized)
    kernel.spec = normalizeSpec(kernel.spec);
  llvm::ArrayRef<AotKernel> kernels = normalized;
  // Everything that can be checked is checked before compiling anything.
  if (llvm::Error error = validateLibraryName(library))
    return std::move(error);
  if (targetNames.empty())
    return invalid("no CPU target given");
  if (kernels.empty())
    return invalid("no kernel to compile");
  std::vector<CpuTarget> resolved;
  llvm::StringSet<> seenTargets;
  for (const std::string &name : targetNames) {
    if (!seenTargets.insert(name).second)
      return invalid("CPU target '" + name + "' is given more than once");
    auto target = resolveCpuTarget(name);
    if (!target)
      return target.takeError();
    resolved.push_back(std::move(*target));
  }
  // Best first: the widest vectors, then the most features; the last one is
  // the most generic.
  std::vector<const CpuTarget *> targets;
  for (const CpuTarget &target : resolved)
    targets.push_back(&target);
  std::stable_sort(targets.begin(), targets.end(),
                   [](const CpuTarget *a, const CpuTarget *b) {
                     int64_t widthA = a->description.nativeVectorWidth();
                     int64_t widthB = b->description.nativeVectorWidth();
                     if (widthA != widthB)
                       return widthA > widthB;
                     return a->checkedFeatures.size() >
                            b->checkedFeatures.size();
                   });
  llvm::StringSet<> symbols, suffixes;
  for (const CpuTarget *target : targets)
    if (!suffixes.insert(target->symbolSuffix).second)
      return invalid("CPU targets '" + target->name +
                     "' and another one have the same symbol suffix '" +
                     target->symbolSuffix + "'");
  std::vector<std::vector<CpuConfig>> configs;
  for (const AotKernel &kernel : kernels) {
    if (llvm::Error error = validateName("kernel name", kernel.name))
      return std::move(error);
    for (llvm::StringRef suffix : {"", "_spec", "_target"}) {
      std::string symbol = kernel.name + suffix.str();
      if (!symbols.insert(symbol).second)
        return invalid("kernel name '" + kernel.name + "': the C function '" +
                       symbol + "' is defined twice in library '" + library +
                       "'");
    }
    if (kernel.rowsHint < 1)
      return invalid(describeKernel(kernel) +
                     ": rows_hint must be at least 1, got " +
                     llvm::Twine(kernel.rowsHint));
    if (!kernel.gpuKnobs.empty())
      return invalid(describeKernel(kernel) + ": its config " +
                     kernel.gpuKnobs.str() +
                     " is for the gpu backend; GPU kernels are compiled with "
                     "--device cuda");
    std::vector<CpuConfig> kernelConfigs;
    for (const CpuTarget *target : targets) {
      CpuConfig config = kernel.getConfig(*target);
      if (llvm::Error error =
              normjit::detail::checkKernelInputs(kernel.spec, config))
        return prefixError(std::move(error), describeKernel(kernel));
      kernelConfigs.push_back(config);
    }
    configs.push_back(std::move(kernelConfigs));
  }

  std::vector<AotFile> files;
  files.push_back(
      {library.str() + ".h", generateHeader(library, targets, kernels)});

  // One object per target holding every kernel. Each kernel is lowered and
  // optimized on its own, exactly as the JIT does, then linked in.
  std::vector<size_t> objectIndices;
  for (size_t t = 0; t < targets.size(); ++t) {
    const CpuTarget &target = *targets[t];
    auto machine = createTargetMachine(target.cpu, target.features);
    if (!machine)
      return machine.takeError();
    llvm::LLVMContext llvmContext;
    std::unique_ptr<llvm::Module> combined;
    for (size_t k = 0; k < kernels.size(); ++k) {
      const AotKernel &kernel = kernels[k];
      auto module =
          compileKernelModule(llvmContext, kernel.spec, configs[k][t],
                              **machine, kernelFunctionName(kernel, target));
      if (!module)
        return prefixError(module.takeError(), describeKernel(kernel) +
                                                   " for target '" +
                                                   target.name + "'");
      if (!combined) {
        combined = std::move(*module);
        combined->setModuleIdentifier(library.str() + "." + target.name);
      } else if (llvm::Linker::linkModules(*combined, std::move(*module))) {
        return makeError(NORMJIT_INTERNAL,
                         "cannot link kernel '" + kernel.name +
                             "' into the object for target '" + target.name +
                             "'");
      }
    }
    hideDefinitions(*combined);
    auto object = emitObject(*combined, **machine);
    if (!object)
      return object.takeError();
    objectIndices.push_back(files.size());
    files.push_back({objectName(library, target), std::move(*object)});
  }

  // The dispatch, for the most generic CPU.
  auto genericMachine = createTargetMachine(getGenericCpu(), "");
  if (!genericMachine)
    return genericMachine.takeError();
  DispatchBuilder dispatch(library, **genericMachine);
  if (llvm::Error error = dispatch.checkLayout())
    return std::move(error);
  for (size_t k = 0; k < kernels.size(); ++k)
    dispatch.addKernel(kernels[k], targets, configs[k]);
  std::string verifierMessage;
  llvm::raw_string_ostream verifierStream(verifierMessage);
  if (llvm::verifyModule(dispatch.getModule(), &verifierStream))
    return makeError(NORMJIT_INTERNAL,
                     "invalid dispatch code: " + verifierMessage);
  auto dispatchObject = emitObject(dispatch.getModule(), **genericMachine);
  if (!dispatchObject)
    return dispatchObject.takeError();
  objectIndices.push_back(files.size());
  files.push_back({library.str() + ".dispatch.o", std::move(*dispatchObject)});

  std::vector<const AotFile *> objects;
  for (size_t index : objectIndices)
    objects.push_back(&files[index]);
  auto archive = buildArchive(objects);
  if (!archive)
    return archive.takeError();
  files.push_back({"lib" + library.str() + ".a", std::move(*archive)});
  files.push_back({library.str() + normjit::aot::detail::kManifestSuffix.str(),
                   generateManifest(library, targets, kernels, configs)});
  return std::move(files);
}
