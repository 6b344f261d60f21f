//===- Common.cpp - helpers the normjit subcommands share -----------------===//
//
// Part of normjit. Parsing of ops, dtypes and devices given on the command
// line, the device check of a config, and the one-line description of a
// kernel spec.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/JIT/KernelCompiler.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace normjit::tool;

llvm::Expected<normjit_op_t> normjit::tool::parseOp(llvm::StringRef flag,
                                                    llvm::StringRef text) {
  if (text == "layer_norm")
    return NORMJIT_LAYER_NORM;
  if (text == "rms_norm")
    return NORMJIT_RMS_NORM;
  return makeToolError("unknown " + flag + " '" + text +
                       "'; expected layer_norm or rms_norm");
}

llvm::Expected<normjit_dtype_t>
normjit::tool::parseDType(llvm::StringRef flag, llvm::StringRef text) {
  normjit_dtype_t dtype = NORMJIT_F32;
  std::string name = text.str();
  if (normjit_dtype_parse(name.c_str(), &dtype) != NORMJIT_OK) {
    normjit_clear_error();
    return makeToolError("unknown " + flag + " '" + text +
                         "'; expected f32, f16 or bf16");
  }
  return dtype;
}

llvm::Expected<normjit_kernel_spec_t>
normjit::tool::parseSpecOptions(const ParsedOptions &options,
                                llvm::StringRef command) {
  for (const char *required : {"op", "cols"})
    if (!options.has(required))
      return makeToolError("missing required option '--" +
                           llvm::Twine(required) + "' (see 'normjit " +
                           command + " --help')");
  auto op = parseOp("--op", *options.getString("op"));
  if (!op)
    return op.takeError();
  int64_t cols = options.getInt("cols", 0);
  if (cols < 1)
    return makeToolError("--cols must be at least 1, got " +
                         llvm::Twine(cols));
  auto getDType = [&](llvm::StringRef name, normjit_dtype_t otherwise)
      -> llvm::Expected<normjit_dtype_t> {
    if (std::optional<std::string> text = options.getString(name))
      return parseDType("--" + name.str(), *text);
    return otherwise;
  };
  auto dtype = getDType("dtype", NORMJIT_F32);
  if (!dtype)
    return dtype.takeError();
  bool isLayerNorm = *op == NORMJIT_LAYER_NORM;
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(*op, cols);
  for (const normjit::SpecBufferDtype &entry : normjit::kSpecBufferDtypes) {
    auto value = getDType(std::string(entry.buffer) + "-dtype", *dtype);
    if (!value)
      return value.takeError();
    spec.*entry.field = *value;
  }
  spec.has_residual = options.getFlag("residual", false);
  spec.store_sum = options.getFlag("store-sum", spec.has_residual);
  spec.has_gamma = options.getFlag("gamma", true);
  spec.has_beta = options.getFlag("beta", isLayerNorm);
  spec.store_mean = options.getFlag("store-mean", false);
  spec.store_rstd = options.getFlag("store-rstd", false);
  auto eps = parseEpsilonOption(options, isLayerNorm ? 1e-5f : 1e-6f);
  if (!eps)
    return eps.takeError();
  spec.epsilon = *eps;
  // A dtype for a buffer the spec does not have is a mistake in the
  // command (a forgotten --residual, say), not something to drop quietly.
  for (const normjit::SpecBufferDtype &entry : normjit::kSpecBufferDtypes) {
    std::string option = std::string(entry.buffer) + "-dtype";
    if (entry.present && !(spec.*entry.present) && options.has(option))
      return makeToolError(
          "--" + option + " given, but the spec has no " + entry.buffer +
          (llvm::StringRef(entry.buffer) == "sum"
               ? " (a sum is stored with --residual, unless --no-store-sum)"
               : " (add --" + std::string(entry.buffer) + ")"));
  }
  if (llvm::Error error =
          normjit::statusToError(normjit_kernel_spec_validate(&spec)))
    return std::move(error);
  return spec;
}

llvm::Expected<float>
normjit::tool::parseEpsilonOption(const ParsedOptions &options,
                                  float otherwise) {
  if (!options.has("eps"))
    return otherwise;
  double eps = options.getDouble("eps", 0);
  float asFloat = static_cast<float>(eps);
  if (!std::isfinite(eps) || !(asFloat > 0) || !std::isfinite(asFloat))
    return makeToolError("--eps must be positive and finite as an f32, got '" +
                         options.getString("eps").value_or("") + "'");
  return asFloat;
}

llvm::Expected<int>
normjit::tool::parseDeviceOption(const ParsedOptions &options) {
  std::string name = options.getString("device").value_or("cpu");
  auto device = normjit::parseDeviceName(name);
  if (!device) {
    llvm::consumeError(device.takeError());
    return makeToolError("unknown --device '" + name +
                         "'; expected cpu, cuda or cuda:N (N a CUDA device "
                         "number, see 'normjit devices')");
  }
  return *device;
}

std::string normjit::tool::getDeviceName(int device) {
  return device < 0 ? "cpu" : "cuda:" + std::to_string(device);
}

void normjit::tool::printCacheWarnings(tuner::TuningCache &cache) {
  for (const std::string &warning : cache.takeWarnings())
    llvm::WithColor::warning(llvm::errs(), "normjit") << warning << "\n";
}

llvm::Error normjit::tool::checkConfigDevice(llvm::StringRef flag,
                                             llvm::StringRef text,
                                             int device) {
  llvm::StringRef rest = text.trim();
  if (!rest.consume_front("#norm.config<"))
    return llvm::Error::success();
  rest = rest.ltrim();
  bool gpu = rest.starts_with("gpu"), cpu = rest.starts_with("cpu");
  if (rest.size() > 3 && !llvm::StringRef(",> \t").contains(rest[3]))
    gpu = cpu = false; // e.g. "gpus": the parser says what is wrong
  if (gpu && device < 0)
    return makeToolError(flag + " '" + text +
                         "' is a GPU config, but --device is cpu; give a "
                         "#norm.config<cpu, ...> or --device cuda:N");
  if (cpu && device >= 0)
    return makeToolError(flag + " '" + text + "' is a CPU config, but "
                         "--device is " + getDeviceName(device) +
                         "; give a #norm.config<gpu, ...> or --device cpu");
  return llvm::Error::success();
}

llvm::Error normjit::tool::checkGpuDevice(int device) {
  auto target = normjit::getGpuTarget(device);
  if (!target)
    return target.takeError();
  return llvm::Error::success();
}

llvm::StringRef normjit::tool::getOpName(normjit_op_t op) {
  return op == NORMJIT_LAYER_NORM ? "layer_norm" : "rms_norm";
}

std::string normjit::tool::formatNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

std::string normjit::tool::describeSpec(const normjit_kernel_spec_t &spec,
                                        int64_t rows) {
  std::string text;
  llvm::raw_string_ostream os(text);
  auto name = [](normjit_dtype_t dtype) {
    const char *n = normjit_dtype_name(dtype);
    return n ? n : "?";
  };
  os << getOpName(spec.op) << " rows=" << rows << " cols=" << spec.cols
     << " x=" << name(spec.x_dtype) << " y=" << name(spec.y_dtype);
  if (spec.has_residual)
    os << " residual=" << name(spec.residual_dtype);
  if (spec.store_sum)
    os << " sum=" << name(spec.sum_dtype);
  if (spec.has_gamma)
    os << " gamma=" << name(spec.gamma_dtype);
  if (spec.has_beta)
    os << " beta=" << name(spec.beta_dtype);
  if (spec.store_mean)
    os << " mean=f32";
  if (spec.store_rstd)
    os << " rstd=f32";
  os << " eps=" << llvm::format("%g", static_cast<double>(spec.epsilon));
  return text;
}
