//===- AOTSpecFile.cpp - TOML files listing kernels to compile ------------===//
//
// Part of normjit. Parses the spec files of `normjit aot --specs`, strictly:
// an unknown key, a wrong type or a bad value is an error naming the file
// and line. The format:
//
//   library = "kernels"            # optional: file names and header guard
//   device = "cpu"                 # optional: cpu (default) or cuda
//   targets = ["x86-64-v3", "x86-64-v4"]   # optional: CPU targets (default
//                                  # native), or GPU chips for cuda
//                                  # (default ["sm_80", "sm_90"])
//   rows_hint = 4096               # optional default of every kernel
//
//   [[kernel]]                     # one table per kernel
//   name = "ln_bf16"               # required: its C function
//   op = "layer_norm"              # required: layer_norm or rms_norm
//   cols = 4096                    # required
//   dtype = "bf16"                 # optional default of every dtype (f32)
//   x_dtype = "bf16"               # optional, and likewise y_dtype,
//                                  # residual_dtype, sum_dtype, gamma_dtype,
//                                  # beta_dtype
//   residual = true                # optional (false): s = x + residual
//   store_sum = true               # optional (false): store s
//   gamma = true                   # optional (true)
//   beta = true                    # optional (true for layer_norm only)
//   store_mean = false             # optional (false), layer_norm only
//   store_rstd = false             # optional (false)
//   eps = 1e-5                     # optional (1e-5, or 1e-6 for rms_norm)
//   rows_hint = 4096               # optional: the tuning cache's row bucket
//                                  # (and the default's row grouping)
//   config = "#norm.config<cpu, vector_width = 16>"   # optional knobs; a
//                                  # kernel without one takes the tuned
//                                  # config from the cache, if there is one
//                                  # (cpu); for cuda, "#norm.config<gpu,
//                                  # ...>" knobs over the default heuristic
//
// The targets of a file are those of its device: compiled for another
// device (`normjit aot --device`), the file's targets are not used.
// A manifest written by `normjit aot` is a spec file too: its other keys
// (schema, versions, [[target]], [[kernel.variant]], ...) are checked for
// their types and otherwise ignored.
//
//===----------------------------------------------------------------------===//

#include "normjit/AOT/AOTCompiler.h"

#include "AOTInternal.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"

// The build has no exceptions: toml++ then reports errors in its
// parse_result. Debian's libtomlplusplus.so is built with exceptions (another
// ABI namespace), so the library is used header-only.
#define TOML_EXCEPTIONS 0
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <cmath>
#include <limits>
#include <string_view>

using namespace normjit;
using namespace normjit::aot;

namespace {

/// The keys of a manifest that a spec file does not need, with their types.
enum class Kind { String, Integer, Bool, Number, StringArray, TableArray };

struct Key {
  const char *name;
  Kind kind;
};

const Key kTopKeys[] = {
    {"schema", Kind::Integer},
    {"library", Kind::String},
    {"targets", Kind::StringArray},
    {"rows_hint", Kind::Integer},
    {"normjit_version", Kind::String},
    {"llvm_version", Kind::String},
    {"triple", Kind::String},
    {"header", Kind::String},
    {"archive", Kind::String},
    {"dispatch", Kind::String},
    {"target", Kind::TableArray},
    {"kernel", Kind::TableArray},
    {"device", Kind::String},
    {"source", Kind::String},
    {"cubins", Kind::Bool},
    {"ptxas_version", Kind::String},
};

const Key kKernelKeys[] = {
    {"name", Kind::String},
    {"op", Kind::String},
    {"cols", Kind::Integer},
    {"dtype", Kind::String},
    {"x_dtype", Kind::String},
    {"y_dtype", Kind::String},
    {"residual_dtype", Kind::String},
    {"sum_dtype", Kind::String},
    {"gamma_dtype", Kind::String},
    {"beta_dtype", Kind::String},
    {"residual", Kind::Bool},
    {"store_sum", Kind::Bool},
    {"gamma", Kind::Bool},
    {"beta", Kind::Bool},
    {"store_mean", Kind::Bool},
    {"store_rstd", Kind::Bool},
    {"eps", Kind::Number},
    {"rows_hint", Kind::Integer},
    {"config", Kind::String},
    {"config_source", Kind::String},
    {"variant", Kind::TableArray},
};

const Key kTargetKeys[] = {
    {"name", Kind::String},   {"cpu", Kind::String},
    {"object", Kind::String}, {"checked_features", Kind::String},
    {"ptx", Kind::String},    {"ptx_isa", Kind::String},
    {"cubin", Kind::String},
};

const Key kVariantKeys[] = {
    {"target", Kind::String},          {"symbol", Kind::String},
    {"config", Kind::String},          {"entry", Kind::String},
    {"entry_unaligned", Kind::String},
};

const char *kindName(Kind kind) {
  switch (kind) {
  case Kind::String:
    return "a string";
  case Kind::Integer:
    return "an integer";
  case Kind::Bool:
    return "true or false";
  case Kind::Number:
    return "a number";
  case Kind::StringArray:
    return "an array of strings";
  case Kind::TableArray:
    return "an array of tables";
  }
  return "?";
}

class SpecFileParser {
public:
  explicit SpecFileParser(llvm::StringRef path) : path(path.str()) {}

  llvm::Error error(const toml::source_region &where,
                    const llvm::Twine &message) const {
    std::string location = path;
    if (where.begin.line)
      location += ":" + std::to_string(where.begin.line);
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "malformed spec file " + location + ": " + message);
  }
  llvm::Error error(const toml::node &node, const llvm::Twine &message) const {
    return error(node.source(), message);
  }

  /// Checks that every key of `table` is one of `keys` and has its type.
  llvm::Error checkKeys(const toml::table &table, llvm::ArrayRef<Key> keys,
                        llvm::StringRef tableName) const {
    for (const auto &[key, node] : table) {
      const Key *known = llvm::find_if(
          keys, [&](const Key &k) { return key.str() == k.name; });
      if (known == keys.end())
        return error(key.source().begin.line ? key.source() : node.source(),
                     "unknown key '" + llvm::Twine(key.str()) + "' in " +
                         tableName);
      bool ok = false;
      switch (known->kind) {
      case Kind::String:
        ok = node.is_string();
        break;
      case Kind::Integer:
        ok = node.is_integer();
        break;
      case Kind::Bool:
        ok = node.is_boolean();
        break;
      case Kind::Number:
        ok = node.is_integer() || node.is_floating_point();
        break;
      case Kind::StringArray:
        ok = node.is_array() &&
             (node.as_array()->empty() ||
              node.as_array()->is_homogeneous(toml::node_type::string));
        break;
      case Kind::TableArray:
        ok = node.is_array_of_tables();
        break;
      }
      if (!ok)
        return error(node, "'" + llvm::Twine(known->name) + "' must be " +
                               kindName(known->kind));
    }
    return llvm::Error::success();
  }

  /// Checks each table of the array of tables `node` against `keys`.
  llvm::Error checkTables(const toml::node *node, llvm::ArrayRef<Key> keys,
                          llvm::StringRef tableName) const {
    if (!node)
      return llvm::Error::success();
    for (const toml::node &element : *node->as_array())
      if (llvm::Error e = checkKeys(*element.as_table(), keys, tableName))
        return e;
    return llvm::Error::success();
  }

  llvm::Expected<normjit_dtype_t> getDType(const toml::table &table,
                                           const char *key,
                                           normjit_dtype_t otherwise) const {
    const toml::node *node = table.get(key);
    if (!node)
      return otherwise;
    std::string name = *node->value_exact<std::string>();
    normjit_dtype_t dtype = NORMJIT_F32;
    if (normjit_dtype_parse(name.c_str(), &dtype) != NORMJIT_OK) {
      normjit_clear_error();
      return error(*node, "unknown " + llvm::Twine(key) + " '" + name +
                              "'; expected f32, f16 or bf16");
    }
    return dtype;
  }

  static bool getBool(const toml::table &table, const char *key,
                      bool otherwise) {
    const toml::node *node = table.get(key);
    return node ? *node->value_exact<bool>() : otherwise;
  }

  llvm::Error parseKernel(const toml::table &table, int64_t defaultRowsHint,
                          bool rowsHintGiven, AotDevice device,
                          AotSpecFile &file,
                          llvm::StringMap<std::string> &symbols) const {
    if (llvm::Error e = checkKeys(table, kKernelKeys, "a [[kernel]] table"))
      return e;
    if (llvm::Error e = checkTables(table.get("variant"), kVariantKeys,
                                    "a [[kernel.variant]] table"))
      return e;
    for (const char *required : {"name", "op", "cols"})
      if (!table.get(required))
        return error(table, "a [[kernel]] table needs '" +
                                llvm::Twine(required) + "'");

    AotKernel kernel;
    const toml::node &nameNode = *table.get("name");
    kernel.name = *nameNode.value_exact<std::string>();
    if (llvm::Error e = validateName("kernel name", kernel.name))
      return error(nameNode, llvm::toString(std::move(e)));
    // A kernel NAME defines the C functions NAME, NAME_spec and
    // NAME_target (CPU) or NAME_image (GPU): no two kernels may share one.
    std::string alsoFunction =
        device == AotDevice::CUDA ? "_image" : "_target";
    for (std::string suffix : {std::string(), std::string("_spec"),
                               alsoFunction}) {
      std::string symbol = kernel.name + suffix;
      auto [it, inserted] = symbols.try_emplace(symbol, kernel.name);
      if (inserted)
        continue;
      if (it->second == kernel.name)
        return error(nameNode,
                     "kernel '" + kernel.name + "' is defined more than once");
      return error(nameNode, "kernel '" + kernel.name + "': its C function '" +
                                 symbol + "' is also one of kernel '" +
                                 it->second + "' (a kernel NAME defines NAME, "
                                 "NAME_spec and NAME" + alsoFunction + ")");
    }
    std::string prefix = "kernel '" + kernel.name + "': ";

    const toml::node &opNode = *table.get("op");
    std::string opName = *opNode.value_exact<std::string>();
    normjit_op_t op;
    if (opName == "layer_norm")
      op = NORMJIT_LAYER_NORM;
    else if (opName == "rms_norm")
      op = NORMJIT_RMS_NORM;
    else
      return error(opNode, prefix + "unknown op '" + opName +
                               "'; expected layer_norm or rms_norm");
    bool isLayerNorm = op == NORMJIT_LAYER_NORM;
    int64_t cols = *table.get("cols")->value_exact<int64_t>();
    normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);

    auto dtype = getDType(table, "dtype", NORMJIT_F32);
    if (!dtype)
      return dtype.takeError();
    for (const SpecBufferDtype &entry : kSpecBufferDtypes) {
      std::string key = std::string(entry.buffer) + "_dtype";
      auto value = getDType(table, key.c_str(), *dtype);
      if (!value)
        return value.takeError();
      spec.*entry.field = *value;
    }
    spec.has_residual = getBool(table, "residual", false);
    spec.store_sum = getBool(table, "store_sum", false);
    spec.has_gamma = getBool(table, "gamma", true);
    spec.has_beta = getBool(table, "beta", isLayerNorm);
    spec.store_mean = getBool(table, "store_mean", false);
    spec.store_rstd = getBool(table, "store_rstd", false);
    spec.epsilon = isLayerNorm ? 1e-5f : 1e-6f;
    if (const toml::node *eps = table.get("eps")) {
      // (Its type was checked; an integer that a double cannot hold
      // exactly, which value<double>() refuses, is rounded as any other.)
      double value =
          eps->is_integer()
              ? static_cast<double>(eps->as_integer()->get())
              : eps->value<double>().value_or(
                    std::numeric_limits<double>::quiet_NaN());
      float asFloat = static_cast<float>(value);
      if (!std::isfinite(value) || !(asFloat > 0) || !std::isfinite(asFloat))
        return error(*eps, prefix + "eps must be positive and finite as an "
                                    "f32");
      spec.epsilon = asFloat;
    }
    // The spec's own rules, said in the file's terms, at the key's line.
    if (spec.store_mean && !isLayerNorm)
      return error(*table.get("store_mean"),
                   prefix + "store_mean = true, but rms_norm computes no mean");
    if (spec.store_sum && !spec.has_residual)
      return error(*table.get("store_sum"),
                   prefix + "store_sum = true needs residual = true: without "
                            "a residual the sum would only copy x");
    for (const SpecBufferDtype &entry : kSpecBufferDtypes) {
      std::string key = std::string(entry.buffer) + "_dtype";
      if (entry.present && !(spec.*entry.present))
        if (const toml::node *node = table.get(key))
          return error(*node, prefix + key + " given, but the kernel has no " +
                                  entry.buffer +
                                  (llvm::StringRef(entry.buffer) == "sum"
                                       ? " (store_sum = true stores one)"
                                       : " (" + std::string(entry.buffer) +
                                             " = true adds one)"));
    }
    if (normjit_kernel_spec_validate(&spec) != NORMJIT_OK) {
      std::string message = normjit_last_error();
      normjit_clear_error();
      // A column count out of range at its own line.
      bool aboutCols = llvm::StringRef(message).starts_with("cols");
      return error(aboutCols ? *table.get("cols") : table, prefix + message);
    }
    kernel.spec = spec;

    kernel.rowsHint = defaultRowsHint;
    kernel.rowsHintGiven = rowsHintGiven;
    if (unsigned line = table.source().begin.line)
      kernel.origin = path + ":" + std::to_string(line);
    if (const toml::node *rows = table.get("rows_hint")) {
      kernel.rowsHintGiven = true;
      kernel.rowsHint = *rows->value_exact<int64_t>();
      if (kernel.rowsHint < 1)
        return error(*rows, prefix + "rows_hint must be at least 1");
    }
    if (const toml::node *config = table.get("config")) {
      std::string text = *config->value_exact<std::string>();
      if (device == AotDevice::CUDA) {
        auto knobs = parseGpuConfigKnobs(text);
        if (!knobs)
          return error(*config, prefix + llvm::toString(knobs.takeError()));
        kernel.gpuKnobs = *knobs;
      } else {
        auto knobs = parseCpuConfigKnobs(text);
        if (!knobs)
          return error(*config, prefix + llvm::toString(knobs.takeError()));
        kernel.knobs = *knobs;
      }
    }
    if (const toml::node *source = table.get("config_source")) {
      std::string name = *source->value_exact<std::string>();
      if (name != "default" && name != "cache" && name != "explicit")
        return error(*source, prefix + "unknown config_source '" + name +
                                  "'; expected default, cache or explicit");
      // A manifest's tuned config (written whole): the config itself
      // again, not knobs over the default for the row hint, whose row
      // group (or prefetches) it would take where the tuned config left
      // them to the lowering.
      if (name == "cache" && device != AotDevice::CUDA &&
          !kernel.knobs.empty()) {
        kernel.tunedConfig =
            kernel.knobs.applyTo(getDefaultCpuConfig(kernel.spec));
        kernel.knobs = {};
      }
    }
    file.kernels.push_back(std::move(kernel));
    return llvm::Error::success();
  }

  llvm::Expected<AotSpecFile> parse(llvm::StringRef text,
                                    std::optional<AotDevice> device,
                                    AotSpecReplaced replaced) const {
    toml::parse_result result = toml::parse(
        std::string_view(text.data(), text.size()), std::string_view(path));
    if (!result) {
      const toml::parse_error &failure = result.error();
      return error(failure.source(), std::string(failure.description()));
    }
    const toml::table &root = result.table();
    if (llvm::Error e = checkKeys(root, kTopKeys, "the spec file"))
      return std::move(e);
    if (llvm::Error e =
            checkTables(root.get("target"), kTargetKeys, "a [[target]] table"))
      return std::move(e);
    if (const toml::node *schema = root.get("schema"))
      if (*schema->value_exact<int64_t>() != 1)
        return error(*schema, "unsupported schema " +
                                  llvm::Twine(*schema->value_exact<int64_t>()) +
                                  "; this normjit reads schema 1");

    AotSpecFile file;
    const toml::node *library = root.get("library");
    if (library && !replaced.library) {
      file.library = *library->value_exact<std::string>();
      if (llvm::Error e = validateLibraryName(file.library))
        return error(*library, llvm::toString(std::move(e)));
    }
    if (const toml::node *node = root.get("device")) {
      auto fileDevice =
          parseAotDevice(*node->value_exact<std::string>(), "device");
      if (!fileDevice)
        return error(*node, llvm::toString(fileDevice.takeError()));
      file.device = *fileDevice;
    }
    // Configs are read for the device the kernels are compiled for; the
    // file's targets are for its own device.
    AotDevice compiledFor =
        device.value_or(file.device.value_or(AotDevice::CPU));
    const toml::node *targets = root.get("targets");
    if (targets && !replaced.targets) {
      if (targets->as_array()->empty())
        return error(*targets, "'targets' must not be empty");
      if (compiledFor == file.device.value_or(AotDevice::CPU))
        for (const toml::node &target : *targets->as_array()) {
          std::string name = *target.value_exact<std::string>();
          // An unknown target is an error at its line of the file.
          llvm::Error unknown =
              compiledFor == AotDevice::CUDA
                  ? resolveGpuChip(name).takeError()
                  : resolveCpuTarget(name).takeError();
          if (unknown)
            return error(target, llvm::toString(std::move(unknown)));
          if (llvm::is_contained(file.targets, name))
            return error(target, "target '" + name +
                                     "' is given more than once");
          file.targets.push_back(std::move(name));
        }
    }
    int64_t rowsHint = 4096;
    bool rowsHintGiven = false;
    if (const toml::node *rows = root.get("rows_hint")) {
      rowsHintGiven = true;
      rowsHint = *rows->value_exact<int64_t>();
      if (rowsHint < 1)
        return error(*rows, "rows_hint must be at least 1");
    }
    const toml::node *kernels = root.get("kernel");
    if (!kernels || kernels->as_array()->empty())
      return error(toml::source_region(),
                   "no [[kernel]] table: nothing to compile");
    llvm::StringMap<std::string> symbols;
    for (const toml::node &kernel : *kernels->as_array())
      if (llvm::Error e = parseKernel(*kernel.as_table(), rowsHint,
                                      rowsHintGiven, compiledFor, file,
                                      symbols))
        return std::move(e);
    return file;
  }

private:
  std::string path;
};

} // namespace

llvm::Expected<AotSpecFile>
normjit::aot::parseAotSpecText(llvm::StringRef text, llvm::StringRef path,
                               std::optional<AotDevice> device,
                               AotSpecReplaced replaced) {
  return SpecFileParser(path).parse(text, device, replaced);
}

llvm::Expected<AotSpecFile>
normjit::aot::parseAotSpecFile(llvm::StringRef path,
                               std::optional<AotDevice> device,
                               AotSpecReplaced replaced) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return makeError(NORMJIT_IO_ERROR, "cannot read spec file '" + path +
                                           "': " + buffer.getError().message());
  return parseAotSpecText((*buffer)->getBuffer(), path, device, replaced);
}
