//===- Bench.cpp - `normjit bench`: time one kernel spec ------------------===//
//
// Part of normjit. Compiles one spec, times it on deterministic data until
// both a repetition count and a minimum time are reached, and compares its
// bandwidth with a memcpy of as many bytes on as many threads (CPU) or with
// the device's theoretical DRAM bandwidth (GPU: timed with CUDA events on a
// stream, optionally with L2 flushed before every launch).
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "normjit/JIT/Context.h"
#include "normjit/runtime/ThreadPool.h"
#include "normjit/tuner/Measure.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace normjit::tool;

namespace {

/// The most worker threads a CpuConfig accepts.
constexpr int64_t kMaxThreads = 1024;
/// The most --warmup or --reps calls one run takes (each timed call keeps
/// an 8-byte sample) and the longest --min-time, an hour.
constexpr int64_t kMaxCalls = 100'000'000;
constexpr double kMaxMinTime = 3600;
/// Alignment of every benchmark buffer: a page, as a large tensor's (and
/// the tuner's buffers). Where y starts relative to x modulo 4 KiB decides
/// whether stores of y falsely delay later loads of x (4K aliasing, up to
/// 20% on L3-resident shapes), so buffers placed by the heap would time
/// the same config differently from one spec to the next.
constexpr size_t kAlignment = 4096;
/// Bytes one memcpy task copies.
constexpr int64_t kCopyChunk = 256 << 10;

const OptionInfo kBenchOptions[] = {
    {"op", OptionKind::String, "layer_norm|rms_norm",
     "the normalization (required)"},
    {"rows", OptionKind::Int, "N", "rows per call (required)"},
    {"cols", OptionKind::Int, "C", "columns per row (required)"},
    {"dtype", OptionKind::String, "f32|f16|bf16",
     "dtype of every buffer (default f32)"},
    {"residual", OptionKind::Flag, "",
     "add a residual and store the sum (the fused pre-norm block)"},
    {"gamma", OptionKind::NegatableFlag, "", "scale by gamma (default on)"},
    {"beta", OptionKind::NegatableFlag, "",
     "shift by beta (default on for layer_norm, off for rms_norm)"},
    NORMJIT_SPEC_DETAIL_OPTIONS,
    {"eps", OptionKind::Double, "E",
     "epsilon (default 1e-5, rms_norm 1e-6; the spec's, as tune and aot)"},
    {"device", OptionKind::String, "cpu|cuda|cuda:N",
     "where to run (default: cpu)"},
    {"threads", OptionKind::Int, "N",
     "CPU worker threads (default 0: all cores)"},
    {"warmup", OptionKind::Int, "W", "untimed calls first (default 5)"},
    {"reps", OptionKind::Int, "R",
     "at least this many timed calls (default 50)"},
    {"min-time", OptionKind::Double, "SECONDS",
     "and at least this much time in timed calls (default 0.2)"},
    {"config", OptionKind::String, "'#norm.config<cpu|gpu, ...>'",
     "compile with this config, cpu or gpu as --device (absent knobs: the "
     "spec's default heuristic's, as Context::getKernel; gpu "
     "elements_per_thread follows the threads_per_row and vector_width "
     "given). Without it the spec's default is timed, and a last line says "
     "the default for the row count when that differs"},
    {"versus", OptionKind::String, "'#norm.config<cpu, ...>'",
     "CPU: also time this config, in turns with the first (same buffers, "
     "same process), and report the ratio"},
    {"cold", OptionKind::Flag, "",
     "GPU: flush L2 before every timed launch (cold-cache timing)"},
    {"json", OptionKind::Flag, "", "print one JSON object instead of a table"},
};

constexpr const char *kBenchSynopsis =
    "normjit bench --op layer_norm|rms_norm --rows N --cols C [options]";
constexpr const char *kBenchDescription =
    "Times one kernel on pseudo-random data and reports the median time per\n"
    "call and its bandwidth: (bytes read + bytes written) / median time. A\n"
    "memcpy moving as many bytes on as many threads is timed the same way as\n"
    "the reference. With --device cuda:N the kernel runs on that GPU, timed\n"
    "with CUDA events around batches of back-to-back launches, recorded once\n"
    "into a CUDA graph and replayed where the driver can (single launches\n"
    "after an L2 flush with --cold), and is compared with the\n"
    "device's theoretical DRAM bandwidth. With --versus, a second CPU config\n"
    "is timed in turns with the first (seven rounds each, on the same\n"
    "buffers), so that two configs are compared under the same machine\n"
    "state; the ratio is versus time / config time (> 1: --config faster).\n"
    "--threads sets both configs' threads; otherwise the versus config keeps\n"
    "a thread count it names and runs on the first config's when it names\n"
    "none.";

struct FreeDeleter {
  void operator()(void *pointer) const { std::free(pointer); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, FreeDeleter>;

/// Allocates `bytes` (at least one page) aligned to kAlignment.
llvm::Expected<AlignedBuffer> allocate(uint64_t bytes, llvm::StringRef what) {
  uint64_t rounded = llvm::alignTo(std::max<uint64_t>(bytes, 1), kAlignment);
  void *pointer =
      rounded < bytes ? nullptr : std::aligned_alloc(kAlignment, rounded);
  if (!pointer)
    return normjit::makeError(NORMJIT_OUT_OF_MEMORY, "cannot allocate " +
                                                         llvm::Twine(bytes) +
                                                         " bytes for " + what);
  return AlignedBuffer(static_cast<uint8_t *>(pointer));
}

/// splitmix64: a small, fast generator whose output depends only on the
/// seed, so every run benchmarks the same values.
class Random {
public:
  explicit Random(uint64_t seed) : state(seed) {}
  /// A float in [-1, 1).
  float next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }

private:
  uint64_t state;
};

/// Fills `count` elements of `dtype` with offset + scale * [-1, 1).
void fill(uint8_t *data, int64_t count, normjit_dtype_t dtype, uint64_t seed,
          float offset, float scale) {
  Random random(seed);
  for (int64_t i = 0; i < count; ++i) {
    float value = offset + scale * random.next();
    switch (dtype) {
    case NORMJIT_F32:
      std::memcpy(data + 4 * i, &value, 4);
      break;
    case NORMJIT_F16: {
      uint16_t bits = normjit_f32_to_f16(value);
      std::memcpy(data + 2 * i, &bits, 2);
      break;
    }
    case NORMJIT_BF16: {
      uint16_t bits = normjit_f32_to_bf16(value);
      std::memcpy(data + 2 * i, &bits, 2);
      break;
    }
    }
  }
}

/// The result of timing one function.
struct Timing {
  double medianSeconds = 0;
  double minSeconds = 0;
  int64_t reps = 0;
};

/// Calls `fn` `warmup` times, then times single calls until at least `reps`
/// calls and `minTime` seconds of them are done.
template <typename Fn>
llvm::Expected<Timing> measure(Fn &&fn, int64_t warmup, int64_t reps,
                               double minTime) {
  using Clock = std::chrono::steady_clock;
  for (int64_t i = 0; i < warmup; ++i)
    if (llvm::Error error = fn())
      return std::move(error);
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(reps));
  double total = 0;
  while (static_cast<int64_t>(samples.size()) < reps || total < minTime) {
    Clock::time_point start = Clock::now();
    if (llvm::Error error = fn())
      return std::move(error);
    std::chrono::duration<double> elapsed = Clock::now() - start;
    samples.push_back(elapsed.count());
    total += elapsed.count();
  }
  Timing timing;
  timing.reps = static_cast<int64_t>(samples.size());
  std::sort(samples.begin(), samples.end());
  size_t middle = samples.size() / 2;
  timing.medianSeconds = samples.size() % 2
                             ? samples[middle]
                             : (samples[middle - 1] + samples[middle]) / 2;
  timing.minSeconds = samples.front();
  return timing;
}

/// Writes a measurement as a JSON number with fixed decimals: a timing has
/// no 17 significant digits.
void writeMeasurement(llvm::json::OStream &json, llvm::StringRef key,
                      double value) {
  if (!std::isfinite(value)) { // JSON has no NaN or infinity
    json.attribute(key, nullptr);
    return;
  }
  json.attributeBegin(key);
  json.rawValue(
      [&](llvm::raw_ostream &os) { os << llvm::format("%.3f", value); });
  json.attributeEnd();
}

/// The spec's buffers in a JSON result: "dtype" (x's), whether each
/// optional buffer is there, and each buffer's dtype.
void writeSpecAttributes(llvm::json::OStream &json,
                         const normjit_kernel_spec_t &spec) {
  json.attribute("dtype", normjit_dtype_name(spec.x_dtype));
  json.attribute("residual", spec.has_residual != 0);
  json.attribute("store_sum", spec.store_sum != 0);
  json.attribute("gamma", spec.has_gamma != 0);
  json.attribute("beta", spec.has_beta != 0);
  json.attribute("store_mean", spec.store_mean != 0);
  json.attribute("store_rstd", spec.store_rstd != 0);
  json.attribute("x_dtype", normjit_dtype_name(spec.x_dtype));
  json.attribute("y_dtype", normjit_dtype_name(spec.y_dtype));
  if (spec.has_residual)
    json.attribute("residual_dtype", normjit_dtype_name(spec.residual_dtype));
  if (spec.store_sum)
    json.attribute("sum_dtype", normjit_dtype_name(spec.sum_dtype));
  if (spec.has_gamma)
    json.attribute("gamma_dtype", normjit_dtype_name(spec.gamma_dtype));
  if (spec.has_beta)
    json.attribute("beta_dtype", normjit_dtype_name(spec.beta_dtype));
}

/// The report's residual line.
const char *describeResidual(const normjit_kernel_spec_t &spec) {
  return spec.store_sum ? "fused pre-norm block: y = norm(x + residual), "
                          "the sum stored too"
                        : "fused pre-norm block: y = norm(x + residual), "
                          "the sum not stored";
}

/// Rounds of each config when --versus compares two.
constexpr int kVersusRounds = 7;

/// The median of rounds' medians (and their minimum and total reps).
Timing medianOfRounds(std::vector<Timing> rounds) {
  Timing timing;
  for (const Timing &round : rounds)
    timing.reps += round.reps;
  std::sort(rounds.begin(), rounds.end(), [](const Timing &a, const Timing &b) {
    return a.medianSeconds < b.medianSeconds;
  });
  timing.medianSeconds = rounds[rounds.size() / 2].medianSeconds;
  timing.minSeconds = rounds.front().minSeconds;
  for (const Timing &round : rounds)
    timing.minSeconds = std::min(timing.minSeconds, round.minSeconds);
  return timing;
}

/// A GPU sample lasts at least this long: a batch of launches between two
/// events, long against the events' resolution (about half a microsecond).
constexpr double kGpuMinSampleSeconds = 50e-6;

/// Times `kernel` on CUDA device memory and prints the report.
llvm::Error benchGpu(const normjit_kernel_spec_t &spec, int64_t rows,
                     int device, std::optional<std::string> configText,
                     int64_t warmup, int64_t reps, double minTime, bool cold,
                     bool asJson, llvm::raw_ostream &out) {
  auto target = normjit::getGpuTarget(device);
  if (!target)
    return target.takeError();
  normjit_cuda_device_info_t info;
  if (normjit_status_t status = normjit_cuda_device_info(device, &info))
    return normjit::statusToError(status);
  // The device's own chip; `target` may be an older one (the newest this
  // LLVM knows).
  std::string deviceChip = "sm_" + std::to_string(info.cc_major) +
                           std::to_string(info.cc_minor);
  normjit::GpuConfig config = normjit::getDefaultGpuConfig(spec, *target);
  if (configText) {
    auto parsedConfig = normjit::parseGpuConfigFor(*configText, spec, *target);
    if (!parsedConfig)
      return parsedConfig.takeError();
    config = *parsedConfig;
  }
  normjit::Context context;
  auto kernel = context.getGpuKernel(spec, device, config);
  if (!kernel)
    return kernel.takeError();
  const normjit::CompiledGpuKernel &k = **kernel;
  // The workload lives on the device and, to fill it, on the host.
  double needed = normjit::tuner::Workload::getBytes(spec, rows);
  if (needed > static_cast<double>(info.total_memory))
    return makeToolError("--rows " + llvm::Twine(rows) + " times --cols " +
                         llvm::Twine(spec.cols) + " needs " +
                         llvm::Twine(static_cast<int64_t>(needed)) +
                         " bytes, more than the " +
                         llvm::Twine(info.total_memory) +
                         " bytes of cuda:" + llvm::Twine(device));
  auto workload = normjit::tuner::GpuWorkload::create(spec, rows, device);
  if (!workload)
    return workload.takeError();
  normjit::tuner::GpuWorkload &w = **workload;

  for (int64_t i = 0; i < warmup; ++i)
    if (llvm::Error error = k.run(w.getArgs(), w.getStream()))
      return error;
  // One timed launch sizes the batch (and waits for the warm-up).
  auto once = w.timeLaunches(k, 1, cold);
  if (!once)
    return once.takeError();
  int batch = 1;
  if (!cold) {
    auto prepared = w.prepareBatch(k, *once, kGpuMinSampleSeconds);
    if (!prepared)
      return prepared.takeError();
    batch = *prepared;
  }
  std::vector<double> samples;
  double total = 0;
  // --min-time counts the events' time; the wall clock bounds the loop
  // where they measure (next to) none.
  auto begin = std::chrono::steady_clock::now();
  double wallLimit = 10 * minTime + 10;
  while (static_cast<int64_t>(samples.size()) < reps || total < minTime) {
    auto seconds = cold ? w.timeLaunches(k, 1, /*flushL2=*/true)
                        : w.timeBatch(k);
    if (!seconds)
      return seconds.takeError();
    samples.push_back(*seconds / batch);
    total += *seconds;
    if (static_cast<int64_t>(samples.size()) < std::max<int64_t>(reps, 1))
      continue;
    if (!(total > 0))
      return makeToolError("CUDA events measured no time for the kernel");
    std::chrono::duration<double> wall =
        std::chrono::steady_clock::now() - begin;
    if (wall.count() > wallLimit)
      break;
  }
  std::sort(samples.begin(), samples.end());
  size_t middle = samples.size() / 2;
  double median = samples.size() % 2
                      ? samples[middle]
                      : (samples[middle - 1] + samples[middle]) / 2;
  double minimum = samples.front();
  double bytes = w.getBytes();
  double gbps = bytes / std::max(median, 1e-12) / 1e9;
  double peak = info.dram_bandwidth_gbps;
  double percent = peak > 0 ? 100.0 * gbps / peak : 0.0;
  std::string deviceName = "cuda:" + std::to_string(device);
  std::string configString = k.getConfig().str();

  if (asJson) {
    llvm::json::OStream json(out);
    json.object([&] {
      json.attribute("op", getOpName(spec.op));
      json.attribute("rows", rows);
      json.attribute("cols", spec.cols);
      writeSpecAttributes(json, spec);
      json.attribute("device", deviceName);
      json.attribute("device_name", info.name);
      json.attribute("chip", deviceChip);
      json.attribute("ptx_chip", target->chip());
      json.attribute("config", configString);
      writeMeasurement(json, "compile_ms", k.getCompileMillis());
      writeMeasurement(json, "median_us", median * 1e6);
      writeMeasurement(json, "min_us", minimum * 1e6);
      writeMeasurement(json, "time_us", median * 1e6);
      json.attribute("bytes", static_cast<int64_t>(bytes));
      writeMeasurement(json, "gbps", gbps);
      writeMeasurement(json, "dram_gbps", peak);
      writeMeasurement(json, "dram_percent", percent);
      json.attribute("reps", static_cast<int64_t>(samples.size()));
      json.attribute("batch", static_cast<int64_t>(batch));
      json.attribute("graph", w.isBatchGraph(k));
      json.attribute("cold", cold);
    });
    out << "\n";
    return llvm::Error::success();
  }

  auto line = [&](llvm::StringRef label) -> llvm::raw_ostream & {
    return out << llvm::left_justify(label, 11) << " ";
  };
  line("spec") << describeSpec(spec, rows) << "\n";
  if (spec.has_residual)
    line("residual") << describeResidual(spec) << "\n";
  line("device") << deviceName << " " << info.name << " (" << deviceChip
                 << ", " << info.sm_count << " SMs"
                 << (deviceChip != target->chip()
                         ? ", PTX for " + target->chip() +
                               ", the newest chip this LLVM knows"
                         : std::string())
                 << ")\n";
  line("config") << configString << "\n";
  line("compile") << llvm::format("%.3f ms", k.getCompileMillis()) << "\n";
  line("time") << llvm::format("%.3f us median, %.3f us min, %lld samples",
                               median * 1e6, minimum * 1e6,
                               static_cast<long long>(samples.size()))
               << (batch == 1 ? std::string(" of 1 launch")
                              : " of " + std::to_string(batch) + " launches")
               << " (CUDA events" << (cold ? ", L2 flushed before each" : "")
               << (w.isBatchGraph(k) ? ", replayed from a CUDA graph" : "")
               << ")\n";
  line("bytes") << static_cast<int64_t>(bytes) << " read + written per call\n";
  line("bandwidth") << llvm::format("%.2f GB/s", gbps) << "\n";
  if (peak > 0) {
    line("dram peak") << llvm::format("%.2f GB/s", peak)
                      << " (theoretical: memory clock x bus width)\n";
    line("of peak") << llvm::format("%.1f %%", percent) << "\n";
  }
  return llvm::Error::success();
}

/// memcpy through a volatile pointer, so that copies into buffers nobody
/// reads are not optimized away.
void *(*volatile copyFunction)(void *, const void *, size_t) = std::memcpy;

/// Reads an Int option that must be at least `minimum`.
llvm::Expected<int64_t> getAtLeast(const ParsedOptions &options,
                                   llvm::StringRef name, int64_t otherwise,
                                   int64_t minimum) {
  int64_t value = options.getInt(name, otherwise);
  if (value < minimum)
    return makeToolError("--" + name + " must be at least " +
                         llvm::Twine(minimum) + ", got " + llvm::Twine(value));
  return value;
}

} // namespace

llvm::Error normjit::tool::benchCommand(llvm::ArrayRef<std::string> args,
                                        llvm::raw_ostream &out) {
  OptionParser parser("bench", kBenchOptions);
  auto parsed = parser.parse(args);
  if (!parsed)
    return parsed.takeError();
  const ParsedOptions &options = *parsed;
  if (options.helpRequested()) {
    parser.printHelp(out, kBenchSynopsis, kBenchDescription);
    return llvm::Error::success();
  }

  if (!options.has("rows"))
    return makeToolError("missing required option '--rows' (see 'normjit "
                         "bench --help')");
  auto parsedSpec = parseSpecOptions(options, "bench");
  if (!parsedSpec)
    return parsedSpec.takeError();
  const normjit_kernel_spec_t spec = *parsedSpec;
  auto rows = getAtLeast(options, "rows", 0, 1);
  if (!rows)
    return rows.takeError();
  auto device = parseDeviceOption(options);
  if (!device)
    return device.takeError();
  std::optional<std::string> configText = options.getString("config");
  if (configText)
    if (llvm::Error error = checkConfigDevice("--config", *configText, *device))
      return error;
  bool cold = options.getFlag("cold", false);
  if (*device < 0 && cold)
    return makeToolError("--cold flushes a GPU's L2 before every launch; it "
                         "needs --device cuda:N");
  if (*device >= 0 && options.has("threads"))
    return makeToolError("--threads sets CPU worker threads; it cannot be "
                         "combined with --device " +
                         getDeviceName(*device));
  const int64_t *cols = &spec.cols;
  auto threads = getAtLeast(options, "threads", 0, 0);
  if (!threads)
    return threads.takeError();
  if (*threads > kMaxThreads)
    return makeToolError("--threads must be at most " +
                         llvm::Twine(kMaxThreads) + ", got " +
                         llvm::Twine(*threads));
  auto warmup = getAtLeast(options, "warmup", 5, 0);
  if (!warmup)
    return warmup.takeError();
  auto reps = getAtLeast(options, "reps", 50, 1);
  if (!reps)
    return reps.takeError();
  // Every timed call keeps its sample: bound what one run may ask for.
  for (auto [name, value] : {std::pair<const char *, int64_t>{"warmup", *warmup},
                             {"reps", *reps}})
    if (value > kMaxCalls)
      return makeToolError("--" + llvm::Twine(name) + " must be at most " +
                           llvm::Twine(kMaxCalls) + ", got " +
                           llvm::Twine(value));
  double minTime = options.getDouble("min-time", 0.2);
  if (!(minTime >= 0) || !(minTime <= kMaxMinTime))
    return makeToolError("--min-time must be a number of seconds from 0 to " +
                         llvm::Twine(static_cast<int>(kMaxMinTime)) +
                         ", got '" +
                         options.getString("min-time").value_or("") + "'");

  std::optional<std::string> versusText = options.getString("versus");
  if (versusText && *device >= 0)
    return makeToolError("--versus compares CPU configs; it cannot be used "
                         "with --device cuda");
  if (*device >= 0) {
    int64_t elements = 0;
    if (llvm::MulOverflow(*rows, *cols, elements) ||
        elements > (int64_t(1) << 40))
      return makeToolError("--rows " + llvm::Twine(*rows) + " times --cols " +
                           llvm::Twine(*cols) + " is too large");
    if (llvm::Error error = checkGpuDevice(*device))
      return error;
    return benchGpu(spec, *rows, *device, configText, *warmup, *reps, minTime,
                    cold, options.getFlag("json", false), out);
  }

  // The kernel.
  normjit::CpuConfig config = normjit::getDefaultCpuConfig(spec);
  if (auto text = options.getString("config")) {
    auto parsedConfig = normjit::parseCpuConfig(*text, config);
    if (!parsedConfig)
      return parsedConfig.takeError();
    config = *parsedConfig;
  }
  if (options.has("threads") || !options.has("config"))
    config.threads = static_cast<int>(*threads);
  // What a kernel gets where the row count is known (TunedKernels, run,
  // aot --rows-hint) without a tuned config, said when it differs from the
  // spec's default timed here.
  normjit::CpuConfig rowsDefault =
      normjit::getDefaultCpuConfigForRows(spec, *rows);
  rowsDefault.threads = config.threads;
  bool showRowsDefault = !options.has("config") && !options.has("versus") &&
                         !(rowsDefault == config);
  normjit::Context context;
  auto kernel = context.getKernel(spec, config);
  if (!kernel)
    return kernel.takeError();
  std::shared_ptr<const normjit::Kernel> versus;
  if (versusText) {
    auto parsedVersus = normjit::parseCpuConfig(
        *versusText, normjit::getDefaultCpuConfig(spec));
    if (!parsedVersus)
      return makeToolError("--versus: " +
                           llvm::toString(parsedVersus.takeError()));
    // --threads sets both; otherwise the versus config keeps a thread
    // count it names, and takes the first config's when it names none (so
    // that `--versus '#norm.config<cpu, threads = 1>'` compares one
    // thread with the default).
    if (options.has("threads"))
      parsedVersus->threads = static_cast<int>(*threads);
    else if (parsedVersus->threads == 0)
      parsedVersus->threads = config.threads;
    auto versusKernel = context.getKernel(spec, *parsedVersus);
    if (!versusKernel)
      return versusKernel.takeError();
    versus = std::move(*versusKernel);
  }

  // Sizes, with every product checked: each buffer in its own dtype.
  int64_t elements = 0;
  if (llvm::MulOverflow(*rows, *cols, elements) ||
      elements > (int64_t(1) << 40))
    return makeToolError("--rows " + llvm::Twine(*rows) + " times --cols " +
                         llvm::Twine(*cols) + " is too large");
  auto bytesOf = [](normjit_dtype_t type, int64_t count) {
    return count * static_cast<int64_t>(normjit_dtype_size(type));
  };
  int64_t xBytes = bytesOf(spec.x_dtype, elements);
  int64_t residualBytes =
      spec.has_residual ? bytesOf(spec.residual_dtype, elements) : 0;
  int64_t yBytes = bytesOf(spec.y_dtype, elements);
  int64_t sumBytes = spec.store_sum ? bytesOf(spec.sum_dtype, elements) : 0;
  int64_t gammaBytes = spec.has_gamma ? bytesOf(spec.gamma_dtype, *cols) : 0;
  int64_t betaBytes = spec.has_beta ? bytesOf(spec.beta_dtype, *cols) : 0;
  int64_t meanBytes = spec.store_mean ? bytesOf(NORMJIT_F32, *rows) : 0;
  int64_t rstdBytes = spec.store_rstd ? bytesOf(NORMJIT_F32, *rows) : 0;
  int64_t traffic = xBytes + residualBytes + yBytes + sumBytes + gammaBytes +
                    betaBytes + meanBytes + rstdBytes;
  int64_t copyBytes = traffic / 2;

  // Buffers, filled deterministically.
  AlignedBuffer x, res, y, sum, g, b, mean, rstd, copySource, copyTarget;
  struct Allocation {
    AlignedBuffer *buffer;
    int64_t bytes;
    const char *what;
  } allocations[] = {{&x, xBytes, "x"},
                     {&res, residualBytes, "residual"},
                     {&y, yBytes, "y"},
                     {&sum, sumBytes, "sum"},
                     {&g, gammaBytes, "gamma"},
                     {&b, betaBytes, "beta"},
                     {&mean, meanBytes, "mean"},
                     {&rstd, rstdBytes, "rstd"},
                     {&copySource, copyBytes, "the memcpy source"},
                     {&copyTarget, copyBytes, "the memcpy target"}};
  for (const Allocation &allocation : allocations) {
    if (allocation.bytes == 0)
      continue;
    auto buffer =
        allocate(static_cast<uint64_t>(allocation.bytes), allocation.what);
    if (!buffer)
      return buffer.takeError();
    *allocation.buffer = std::move(*buffer);
  }
  fill(x.get(), elements, spec.x_dtype, 1, 0.25f, 2.0f);
  if (spec.has_residual)
    fill(res.get(), elements, spec.residual_dtype, 2, 0.0f, 1.0f);
  if (spec.has_gamma)
    fill(g.get(), *cols, spec.gamma_dtype, 3, 1.0f, 0.1f);
  if (spec.has_beta)
    fill(b.get(), *cols, spec.beta_dtype, 4, 0.0f, 0.1f);
  for (auto [output, bytes] :
       {std::pair{&y, yBytes}, {&sum, sumBytes}, {&mean, meanBytes},
        {&rstd, rstdBytes}})
    if (bytes)
      std::memset(output->get(), 0, static_cast<size_t>(bytes));
  std::memset(copySource.get(), 1, static_cast<size_t>(copyBytes));
  std::memset(copyTarget.get(), 0, static_cast<size_t>(copyBytes));

  // The kernel.
  normjit_run_args_t runArgs{};
  runArgs.rows = *rows;
  runArgs.x = x.get();
  runArgs.residual = res.get();
  runArgs.gamma = g.get();
  runArgs.beta = b.get();
  runArgs.y = y.get();
  runArgs.sum = sum.get();
  runArgs.mean = reinterpret_cast<float *>(mean.get());
  runArgs.rstd = reinterpret_cast<float *>(rstd.get());
  const normjit::Kernel &k = **kernel;
  std::optional<Timing> versusTiming;
  llvm::Expected<Timing> kernelTiming = Timing();
  if (!versus) {
    kernelTiming =
        measure([&] { return k.run(runArgs); }, *warmup, *reps, minTime);
  } else {
    // Rounds of the two configs in turns (which goes first alternates);
    // each one's time is the median of its rounds' medians.
    std::vector<Timing> mine, theirs;
    int64_t roundReps = std::max<int64_t>(1, *reps / kVersusRounds);
    double roundTime = minTime / kVersusRounds;
    for (int round = 0; round < kVersusRounds; ++round) {
      for (int turn = 0; turn < 2; ++turn) {
        bool first = (turn == 0) == (round % 2 == 0);
        const normjit::Kernel &which = first ? k : *versus;
        auto timing = measure([&] { return which.run(runArgs); },
                              round == 0 ? *warmup : 1, roundReps, roundTime);
        if (!timing)
          return timing.takeError();
        (first ? mine : theirs).push_back(*timing);
      }
    }
    kernelTiming = medianOfRounds(mine);
    versusTiming = medianOfRounds(theirs);
  }
  if (!kernelTiming)
    return kernelTiming.takeError();

  // memcpy of half the bytes (so that it reads and writes as many as the
  // kernel), in chunks on as many threads as the kernel used: the threads
  // allowed, but no more than it had tasks.
  auto &pool = normjit::runtime::ThreadPool::global();
  // The kernel's own config decides (--threads, else the config's threads
  // knob, else all cores), and its tasks are as normjit_cpu_launch makes
  // them.
  normjit_cpu_launch_t launch{k.getConfig().rowsPerTask,
                              k.getConfig().threads};
  int64_t allowed = launch.threads == 0
                        ? pool.size()
                        : std::min<int64_t>(pool.size(), launch.threads);
  int64_t taskRows = normjit_cpu_launch_task_rows(&spec, *rows, &launch);
  int64_t tasks = taskRows > 0 ? (*rows + taskRows - 1) / taskRows : 0;
  unsigned usedThreads = static_cast<unsigned>(std::min(allowed, tasks));
  int64_t chunks = (copyBytes + kCopyChunk - 1) / kCopyChunk;
  unsigned copyThreads =
      static_cast<unsigned>(std::min<int64_t>(usedThreads, chunks));
  uint8_t *source = copySource.get(), *target = copyTarget.get();
  auto copyTiming = measure(
      [&] {
        pool.parallelFor(
            chunks, 1, copyThreads, [&](int64_t begin, int64_t end) {
              int64_t offset = begin * kCopyChunk;
              int64_t bytes = std::min(end * kCopyChunk, copyBytes) - offset;
              copyFunction(target + offset, source + offset,
                           static_cast<size_t>(bytes));
            });
        return llvm::Error::success();
      },
      *warmup, *reps, minTime);
  if (!copyTiming)
    return copyTiming.takeError();

  auto gigabytesPerSecond = [](int64_t bytes, double seconds) {
    return static_cast<double>(bytes) / std::max(seconds, 1e-12) / 1e9;
  };
  double gbps = gigabytesPerSecond(traffic, kernelTiming->medianSeconds);
  double memcpyGbps =
      gigabytesPerSecond(2 * copyBytes, copyTiming->medianSeconds);
  double percent = memcpyGbps > 0 ? 100.0 * gbps / memcpyGbps : 0.0;
  std::string kernelConfig = k.getConfig().str();

  if (options.getFlag("json", false)) {
    llvm::json::OStream json(out);
    json.object([&] {
      json.attribute("op", getOpName(spec.op));
      json.attribute("rows", *rows);
      json.attribute("cols", *cols);
      writeSpecAttributes(json, spec);
      json.attribute("device", "cpu");
      json.attribute("threads", static_cast<int64_t>(usedThreads));
      json.attribute("config", kernelConfig);
      if (showRowsDefault)
        json.attribute("rows_default_config", rowsDefault.str());
      if (!normjit::getDisabledHostCpuFeatures().empty())
        json.attributeArray("disabled_features", [&] {
          for (const std::string &feature :
               normjit::getDisabledHostCpuFeatures())
            json.value(feature);
        });
      writeMeasurement(json, "compile_ms", k.getCompileMillis());
      writeMeasurement(json, "median_us", kernelTiming->medianSeconds * 1e6);
      writeMeasurement(json, "min_us", kernelTiming->minSeconds * 1e6);
      writeMeasurement(json, "time_us", kernelTiming->medianSeconds * 1e6);
      json.attribute("bytes", traffic);
      writeMeasurement(json, "gbps", gbps);
      writeMeasurement(json, "memcpy_gbps", memcpyGbps);
      writeMeasurement(json, "memcpy_percent", percent);
      json.attribute("reps", kernelTiming->reps);
      json.attribute("memcpy_reps", copyTiming->reps);
      json.attribute("memcpy_threads", static_cast<int64_t>(copyThreads));
      if (versusTiming) {
        json.attribute("versus_config", versus->getConfig().str());
        writeMeasurement(json, "versus_median_us",
                         versusTiming->medianSeconds * 1e6);
        writeMeasurement(
            json, "versus_gbps",
            gigabytesPerSecond(traffic, versusTiming->medianSeconds));
        writeMeasurement(json, "versus_ratio",
                         versusTiming->medianSeconds /
                             std::max(kernelTiming->medianSeconds, 1e-12));
      }
    });
    out << "\n";
    return llvm::Error::success();
  }

  auto line = [&](llvm::StringRef label) -> llvm::raw_ostream & {
    return out << llvm::left_justify(label, 11) << " ";
  };
  line("spec") << describeSpec(spec, *rows) << "\n";
  if (spec.has_residual)
    line("residual") << describeResidual(spec) << "\n";
  line("config") << kernelConfig << "\n";
  if (!normjit::getDisabledHostCpuFeatures().empty())
    line("cpu") << "compiled without "
                << llvm::join(normjit::getDisabledHostCpuFeatures(), ",")
                << " (NORMJIT_DISABLE_CPU_FEATURES)\n";
  line("threads") << usedThreads << " (" << tasks
                  << (tasks == 1 ? " task" : " tasks") << " of up to "
                  << taskRows << " rows)\n";
  line("compile") << llvm::format("%.3f ms", k.getCompileMillis()) << "\n";
  line("time") << llvm::format("%.3f us median, %.3f us min, %lld reps",
                               kernelTiming->medianSeconds * 1e6,
                               kernelTiming->minSeconds * 1e6,
                               static_cast<long long>(kernelTiming->reps))
               << "\n";
  line("bytes") << traffic << " read + written per call\n";
  line("bandwidth") << llvm::format("%.2f GB/s", gbps) << "\n";
  line("memcpy") << llvm::format("%.2f GB/s", memcpyGbps) << " (" << copyBytes
                 << " bytes copied per call on " << copyThreads
                 << (copyThreads == 1 ? " thread" : " threads") << ")\n";
  line("of memcpy") << llvm::format("%.1f %%", percent) << "\n";
  if (versusTiming) {
    line("versus") << versus->getConfig().str() << "\n";
    line("its time") << llvm::format(
                            "%.3f us median (%.2f GB/s), in turns with the "
                            "config above over %d rounds",
                            versusTiming->medianSeconds * 1e6,
                            gigabytesPerSecond(traffic,
                                               versusTiming->medianSeconds),
                            kVersusRounds)
                     << "\n";
    line("ratio") << llvm::format(
                         "%.3f (versus time / config time; > 1: the config "
                         "is faster)",
                         versusTiming->medianSeconds /
                             std::max(kernelTiming->medianSeconds, 1e-12))
                  << "\n";
  }
  if (showRowsDefault)
    line("rows hint") << "where the row count is known (TunedKernels, run, "
                         "aot --rows-hint), the default for "
                      << *rows << " rows is " << rowsDefault.str() << "\n";
  return llvm::Error::success();
}
