//===- Run.cpp - `normjit run`: a norm on .npy files ----------------------===//
//
// Part of normjit. Reads the inputs, checks their shapes against each other,
// compiles the kernel their dtypes call for (for the CPU, or a CUDA device:
// the inputs are then copied to the device and the outputs back), runs it,
// and only then writes every output, so that a failure leaves no partial
// results behind.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "normjit/JIT/Context.h"
#include "normjit/tuner/Tuner.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/Support/WithColor.h"
#include "normjit/runtime/Npy.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"

#include <chrono>
#include <cmath>
#include <iterator>
#include <optional>

using namespace normjit::tool;
using normjit::runtime::NpyArray;

namespace {

/// Whether two output paths name one file: the same file when both exist
/// (through links), else the same name in the same real directory
/// ("y.npy" and "./y.npy").
bool sameFile(const std::string &a, const std::string &b) {
  if (a == b)
    return true;
  bool equivalent = false;
  if (!llvm::sys::fs::equivalent(a, b, equivalent))
    return equivalent;
  auto canonical = [](llvm::StringRef path) {
    llvm::StringRef parent = llvm::sys::path::parent_path(path);
    llvm::SmallString<256> real;
    if (llvm::sys::fs::real_path(parent.empty() ? "." : parent, real))
      return path.str();
    llvm::sys::path::append(real, llvm::sys::path::filename(path));
    return std::string(real.str());
  };
  return canonical(a) == canonical(b);
}

/// The most worker threads a CpuConfig accepts.
constexpr int64_t kMaxThreads = 1024;

const OptionInfo kRunOptions[] = {
    {"op", OptionKind::String, "layer_norm|rms_norm",
     "the normalization (required)"},
    {"x", OptionKind::String, "FILE",
     "input rows: a .npy array normalized over its last dimension, "
     "(rows, cols) or (..., cols) (required)"},
    {"residual", OptionKind::String, "FILE",
     "added to x before normalizing; x's shape"},
    {"gamma", OptionKind::String, "FILE", "scale: a 1-D .npy array of cols"},
    {"beta", OptionKind::String, "FILE", "shift: a 1-D .npy array of cols"},
    {"eps", OptionKind::Double, "E",
     "epsilon (default 1e-5 for layer_norm, 1e-6 for rms_norm)"},
    {"out-dtype", OptionKind::String, "f32|f16|bf16",
     "dtype of --out (default: the dtype of x)"},
    {"out", OptionKind::String, "FILE", "the normalized rows (required)"},
    {"sum-out", OptionKind::String, "FILE",
     "also write x + residual, in x's dtype (needs --residual); y then "
     "normalizes that rounded sum"},
    {"mean-out", OptionKind::String, "FILE",
     "also write the f32 mean of each row (layer_norm only)"},
    {"rstd-out", OptionKind::String, "FILE",
     "also write the f32 reciprocal standard deviation of each row"},
    {"device", OptionKind::String, "cpu|cuda|cuda:N",
     "where to run (default: cpu)"},
    {"threads", OptionKind::Int, "N",
     "CPU worker threads (default 0: all cores)"},
    {"cache", OptionKind::String, "FILE",
     "the tuning cache to take a tuned config from (default: the user's)"},
    {"verbose", OptionKind::Flag, "",
     "print the spec, the config and the compile time"},
};

constexpr const char *kRunSynopsis =
    "normjit run --op layer_norm|rms_norm --x X.npy --out Y.npy [options]";
constexpr const char *kRunDescription =
    "Computes LayerNorm or RMSNorm over the rows of a .npy array with a JIT-\n"
    "compiled kernel. Input dtypes come from the files: '<f4' is f32, '<f2'\n"
    "f16 and '<u2' holds bf16 bit patterns. Outputs are written only after\n"
    "the kernel ran, and all or none: when one cannot be written, no\n"
    "destination is created or replaced.";

/// "(4, 8)", "(8,)" or "()", as numpy prints shapes.
std::string shapeText(llvm::ArrayRef<int64_t> shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

/// Rewrites an error's text as "<flag>: <text>".
llvm::Error prefixError(llvm::Error error, llvm::StringRef flag) {
  return makeToolError(flag + ": " + llvm::toString(std::move(error)));
}

/// Reads the .npy file that `flag` names.
llvm::Expected<NpyArray> readInput(llvm::StringRef flag,
                                   const std::string &path) {
  NpyArray array;
  if (llvm::Error error =
          normjit::statusToError(normjit::runtime::readNpy(path, array)))
    return prefixError(std::move(error), flag);
  return array;
}

/// Reads an optional 1-D input of `cols` elements.
llvm::Expected<std::optional<NpyArray>> readVector(const ParsedOptions &options,
                                                   llvm::StringRef flag,
                                                   int64_t cols,
                                                   llvm::StringRef xPath) {
  std::optional<std::string> path = options.getString(flag.drop_front(2));
  if (!path)
    return std::nullopt;
  auto array = readInput(flag, *path);
  if (!array)
    return array.takeError();
  if (array->shape.size() != 1 || array->shape[0] != cols)
    return makeToolError(flag + ": '" + *path + "' has shape " +
                         shapeText(array->shape) + " but must have shape (" +
                         llvm::Twine(cols) + ",), the cols of --x '" + xPath +
                         "'");
  return std::optional<NpyArray>(std::move(*array));
}

/// Device memory for the buffers of one call, freed when it goes out of
/// scope.
class DeviceBuffers {
public:
  explicit DeviceBuffers(int device) : device(device) {}
  DeviceBuffers(const DeviceBuffers &) = delete;
  DeviceBuffers &operator=(const DeviceBuffers &) = delete;
  ~DeviceBuffers() {
    // Nothing may still run on the buffers when they are freed.
    if (!pointers.empty())
      normjit_cuda_synchronize(device);
    for (void *pointer : pointers)
      normjit_cuda_free(pointer);
    normjit_clear_error();
  }

  /// A device copy of `bytes` bytes at `host` (uploaded when `upload`), or
  /// null for a null `host`.
  llvm::Expected<void *> mirror(const void *host, size_t bytes, bool upload) {
    if (!host || bytes == 0)
      return nullptr;
    void *pointer = nullptr;
    if (normjit_status_t status =
            normjit_cuda_malloc(device, bytes, &pointer))
      return normjit::statusToError(status);
    pointers.push_back(pointer);
    if (upload)
      if (normjit_status_t status =
              normjit_cuda_memcpy_htod(pointer, host, bytes))
        return normjit::statusToError(status);
    return pointer;
  }

private:
  int device;
  std::vector<void *> pointers;
};

/// Runs `kernel` on CUDA device memory: copies the inputs of `hostArgs` to
/// the device, runs, waits, and copies the outputs back into the host
/// buffers of `hostArgs`.
llvm::Error runOnGpu(const normjit::CompiledGpuKernel &kernel,
                     const normjit_run_args_t &hostArgs) {
  const normjit_kernel_spec_t &spec = kernel.getSpec();
  size_t rows = static_cast<size_t>(hostArgs.rows);
  size_t elements = rows * static_cast<size_t>(spec.cols);
  size_t cols = static_cast<size_t>(spec.cols);
  auto size = [](normjit_dtype_t dtype) { return normjit_dtype_size(dtype); };
  DeviceBuffers buffers(kernel.getDevice());
  struct Buffer {
    const void *host;
    size_t bytes;
    bool input;
    void *device = nullptr;
  } x{hostArgs.x, elements * size(spec.x_dtype), true},
      residual{hostArgs.residual, elements * size(spec.residual_dtype), true},
      gamma{hostArgs.gamma, cols * size(spec.gamma_dtype), true},
      beta{hostArgs.beta, cols * size(spec.beta_dtype), true},
      y{hostArgs.y, elements * size(spec.y_dtype), false},
      sum{hostArgs.sum, elements * size(spec.sum_dtype), false},
      mean{hostArgs.mean, rows * sizeof(float), false},
      rstd{hostArgs.rstd, rows * sizeof(float), false};
  Buffer *all[] = {&x, &residual, &gamma, &beta, &y, &sum, &mean, &rstd};
  for (Buffer *buffer : all) {
    auto pointer = buffers.mirror(buffer->host, buffer->bytes, buffer->input);
    if (!pointer)
      return pointer.takeError();
    buffer->device = *pointer;
  }
  normjit_run_args_t args = hostArgs;
  args.x = x.device;
  args.residual = residual.device;
  args.gamma = gamma.device;
  args.beta = beta.device;
  args.y = y.device;
  args.sum = sum.device;
  args.mean = static_cast<float *>(mean.device);
  args.rstd = static_cast<float *>(rstd.device);
  if (llvm::Error error = kernel.run(args))
    return error;
  if (normjit_status_t status = normjit_cuda_synchronize(kernel.getDevice()))
    return normjit::statusToError(status);
  // The outputs back into the caller's (writable) host buffers.
  for (const Buffer *buffer : all)
    if (!buffer->input && buffer->device)
      if (normjit_status_t status = normjit_cuda_memcpy_dtoh(
              const_cast<void *>(buffer->host), buffer->device, buffer->bytes))
        return normjit::statusToError(status);
  return llvm::Error::success();
}

/// A zero-filled output array.
NpyArray makeOutput(normjit_dtype_t dtype, std::vector<int64_t> shape) {
  NpyArray array;
  array.dtype = dtype;
  array.shape = std::move(shape);
  array.data.assign(
      static_cast<size_t>(array.numElements()) * normjit_dtype_size(dtype), 0);
  return array;
}

} // namespace

llvm::Error normjit::tool::runCommand(llvm::ArrayRef<std::string> args,
                                      llvm::raw_ostream &out) {
  OptionParser parser("run", kRunOptions);
  auto parsed = parser.parse(args);
  if (!parsed)
    return parsed.takeError();
  const ParsedOptions &options = *parsed;
  if (options.helpRequested()) {
    parser.printHelp(out, kRunSynopsis, kRunDescription);
    return llvm::Error::success();
  }

  // Everything the command line alone decides is checked before any file is
  // read.
  for (const char *required : {"op", "x", "out"})
    if (!options.has(required))
      return makeToolError("missing required option '--" +
                           llvm::Twine(required) +
                           "' (see 'normjit run "
                           "--help')");
  auto op = parseOp("--op", *options.getString("op"));
  if (!op)
    return op.takeError();
  auto device = parseDeviceOption(options);
  if (!device)
    return device.takeError();
  if (*device >= 0 && options.has("threads"))
    return makeToolError("--threads sets CPU worker threads; it cannot be "
                         "combined with --device " +
                         getDeviceName(*device));
  std::optional<normjit_dtype_t> outDType;
  if (auto text = options.getString("out-dtype")) {
    auto dtype = parseDType("--out-dtype", *text);
    if (!dtype)
      return dtype.takeError();
    outDType = *dtype;
  }
  if (options.has("sum-out") && !options.has("residual"))
    return makeToolError("--sum-out needs --residual: without one the sum "
                         "would only copy x");
  if (options.has("mean-out") && *op != NORMJIT_LAYER_NORM)
    return makeToolError("--mean-out is only for layer_norm: rms_norm "
                         "computes no mean");
  int64_t threads = options.getInt("threads", 0);
  if (threads < 0 || threads > kMaxThreads)
    return makeToolError("--threads must be in [0, " +
                         llvm::Twine(kMaxThreads) + "], got " +
                         llvm::Twine(threads));
  auto parsedEps =
      parseEpsilonOption(options, *op == NORMJIT_LAYER_NORM ? 1e-5f : 1e-6f);
  if (!parsedEps)
    return parsedEps.takeError();
  float eps = *parsedEps;
  const char *outputFlags[] = {"out", "sum-out", "mean-out", "rstd-out"};
  for (size_t i = 0; i < std::size(outputFlags); ++i)
    for (size_t j = i + 1; j < std::size(outputFlags); ++j) {
      auto a = options.getString(outputFlags[i]);
      auto b = options.getString(outputFlags[j]);
      if (a && b && sameFile(*a, *b))
        return makeToolError("--" + llvm::Twine(outputFlags[i]) + " and --" +
                             outputFlags[j] + " name the same file '" + *a +
                             "'");
    }

  // The device, before any file is read: without one nothing can run.
  if (*device >= 0)
    if (llvm::Error error = checkGpuDevice(*device))
      return error;

  // Inputs.
  std::string xPath = *options.getString("x");
  auto x = readInput("--x", xPath);
  if (!x)
    return x.takeError();
  // Normalized over the last dimension, as torch's layer_norm over
  // (cols,): a (batch, tokens, hidden) array is batch * tokens rows.
  if (x->shape.empty())
    return makeToolError("--x: '" + xPath +
                         "' has shape () but must have at least one "
                         "dimension: rows of the last one's length");
  int64_t cols = x->shape.back();
  if (cols < 1)
    return makeToolError("--x: '" + xPath + "' has shape " +
                         shapeText(x->shape) +
                         " but a row needs at least one column");
  // The leading dimensions, the shape of the per-row statistics (() for a
  // single row of shape (cols,)); with cols >= 1 their product fits, as
  // x's element count did.
  std::vector<int64_t> rowShape(x->shape.begin(), x->shape.end() - 1);
  int64_t rows = 1;
  for (int64_t dim : rowShape)
    rows *= dim;

  std::optional<NpyArray> residual;
  if (auto path = options.getString("residual")) {
    auto array = readInput("--residual", *path);
    if (!array)
      return array.takeError();
    if (array->shape != x->shape)
      return makeToolError("--residual: '" + *path + "' has shape " +
                           shapeText(array->shape) +
                           " but must have the shape of --x '" + xPath + "', " +
                           shapeText(x->shape));
    residual = std::move(*array);
  }
  auto gamma = readVector(options, "--gamma", cols, xPath);
  if (!gamma)
    return gamma.takeError();
  auto beta = readVector(options, "--beta", cols, xPath);
  if (!beta)
    return beta.takeError();

  // The spec.
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(*op, cols);
  spec.x_dtype = x->dtype;
  spec.y_dtype = outDType.value_or(x->dtype);
  spec.sum_dtype = x->dtype;
  if (residual) {
    spec.has_residual = 1;
    spec.residual_dtype = residual->dtype;
    spec.store_sum = options.has("sum-out");
  }
  if (*gamma) {
    spec.has_gamma = 1;
    spec.gamma_dtype = (*gamma)->dtype;
  }
  if (*beta) {
    spec.has_beta = 1;
    spec.beta_dtype = (*beta)->dtype;
  }
  spec.store_mean = options.has("mean-out");
  spec.store_rstd = options.has("rstd-out");
  spec.epsilon = eps;

  // Compile (this validates the spec: cols, epsilon, ...).
  // The tuned config for this spec, row bucket, device and build when the
  // cache has one; the default heuristic otherwise.
  normjit::Context context;
  const char *configSource = "default heuristic";
  if (llvm::Error error = normjit::statusToError(
          normjit_kernel_spec_validate(&spec)))
    return error;
  normjit::tuner::TuningCache cache(options.getString("cache").value_or(
      normjit::tuner::TuningCache::getDefaultPath()));
  if (llvm::Error error = cache.load())
    return prefixError(std::move(error), "--cache");
  printCacheWarnings(cache);
  // One of the two, by device.
  std::shared_ptr<const normjit::Kernel> cpuKernel;
  std::shared_ptr<const normjit::CompiledGpuKernel> gpuKernel;
  if (*device < 0) {
    normjit::CpuConfig config =
        normjit::getDefaultCpuConfigForRows(spec, rows);
    // Entries tuned on the thread count asked for (all cores by default).
    int asked = options.has("threads") ? static_cast<int>(threads) : 0;
    if (auto entry =
            cache.lookup(normjit::tuner::makeCacheKey(spec, rows, asked))) {
      config = entry->config;
      configSource = "tuning cache";
    }
    if (options.has("threads"))
      config.threads = static_cast<int>(threads);
    auto kernel = context.getKernel(spec, config);
    if (!kernel)
      return kernel.takeError();
    cpuKernel = std::move(*kernel);
  } else {
    std::optional<normjit::GpuConfig> config;
    auto key = normjit::tuner::makeGpuCacheKey(spec, rows, *device);
    if (!key)
      return key.takeError();
    if (auto entry = cache.lookup(*key); entry && entry->isGpu()) {
      config = entry->gpuConfig;
      configSource = "tuning cache";
    }
    auto kernel = context.getGpuKernel(spec, *device, config);
    if (!kernel)
      return kernel.takeError();
    gpuKernel = std::move(*kernel);
  }

  // Run.
  // An output the spec does not store: an empty array, never written.
  auto outputIf = [](bool stored, normjit_dtype_t dtype,
                     const std::vector<int64_t> &shape) {
    return makeOutput(dtype, stored ? shape : std::vector<int64_t>{0});
  };
  NpyArray y = makeOutput(spec.y_dtype, x->shape);
  NpyArray sum = outputIf(spec.store_sum, spec.sum_dtype, x->shape);
  NpyArray mean = outputIf(spec.store_mean, NORMJIT_F32, rowShape);
  NpyArray rstd = outputIf(spec.store_rstd, NORMJIT_F32, rowShape);
  normjit_run_args_t runArgs{};
  runArgs.rows = rows;
  runArgs.x = x->data.data();
  runArgs.residual = residual ? residual->data.data() : nullptr;
  runArgs.gamma = *gamma ? (*gamma)->data.data() : nullptr;
  runArgs.beta = *beta ? (*beta)->data.data() : nullptr;
  runArgs.y = y.data.data();
  runArgs.sum = spec.store_sum ? sum.data.data() : nullptr;
  runArgs.mean =
      spec.store_mean ? reinterpret_cast<float *>(mean.data.data()) : nullptr;
  runArgs.rstd =
      spec.store_rstd ? reinterpret_cast<float *>(rstd.data.data()) : nullptr;
  auto start = std::chrono::steady_clock::now();
  // With no rows there is nothing to compute, and the empty buffers have no
  // addresses to validate.
  if (rows > 0)
    if (llvm::Error error = cpuKernel ? cpuKernel->run(runArgs)
                                      : runOnGpu(*gpuKernel, runArgs))
      return error;
  std::chrono::duration<double, std::milli> runTime =
      std::chrono::steady_clock::now() - start;

  // Outputs, only now, and all or none: each is written beside its
  // destination first, and put in place once every one could be written.
  struct Output {
    const char *flag;
    const NpyArray *array;
    normjit::runtime::StagedNpy staged;
  } outputs[] = {{"out", &y, {}},
                 {"sum-out", &sum, {}},
                 {"mean-out", &mean, {}},
                 {"rstd-out", &rstd, {}}};
  for (Output &output : outputs)
    if (auto path = options.getString(output.flag))
      if (llvm::Error error = normjit::statusToError(
              normjit::runtime::stageNpy(*path, *output.array, output.staged)))
        return prefixError(std::move(error), "--" + std::string(output.flag));
  std::vector<normjit::runtime::StagedNpy *> staged;
  std::vector<const char *> stagedFlags;
  for (Output &output : outputs)
    if (options.getString(output.flag)) {
      staged.push_back(&output.staged);
      stagedFlags.push_back(output.flag);
    }
  size_t failed = 0;
  if (llvm::Error error =
          normjit::statusToError(normjit::runtime::StagedNpy::commitAll(
              staged.data(), staged.size(), &failed)))
    return prefixError(std::move(error),
                       "--" + std::string(stagedFlags[failed]));

  if (options.getFlag("verbose", false)) {
    std::string configText =
        cpuKernel ? cpuKernel->getConfig().str() : gpuKernel->getConfig().str();
    double compileMillis = cpuKernel ? cpuKernel->getCompileMillis()
                                     : gpuKernel->getCompileMillis();
    out << "spec:    " << describeSpec(spec, rows) << "\n"
        << "config:  " << configText << " (" << configSource << ")\n"
        << "compile: " << llvm::format("%.3f", compileMillis) << " ms\n"
        << "run:     " << llvm::format("%.3f", runTime.count()) << " ms"
        << (gpuKernel ? ", copies to and from the device included" : "")
        << "\n"
        << "device:  " << getDeviceName(*device) << "\n";
  }
  return llvm::Error::success();
}
