//===- Bench.cpp - `normjit bench`: time one kernel spec ------------------===//
//
// Part of normjit. Compiles one spec, times it on deterministic data until
// both a repetition count and a minimum time are reached, and compares its
// bandwidth with a memcpy of as many bytes on as many threads.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "normjit/JIT/Context.h"
#include "normjit/runtime/ThreadPool.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

using namespace normjit::tool;

namespace {

/// The most worker threads a CpuConfig accepts.
constexpr int64_t kMaxThreads = 1024;
/// Alignment of every benchmark buffer: a cache line, and a full AVX-512
/// vector.
constexpr size_t kAlignment = 64;
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
    {"threads", OptionKind::Int, "N", "worker threads (default 0: all cores)"},
    {"warmup", OptionKind::Int, "W", "untimed calls first (default 5)"},
    {"reps", OptionKind::Int, "R",
     "at least this many timed calls (default 50)"},
    {"min-time", OptionKind::Double, "SECONDS",
     "and at least this much time in timed calls (default 0.2)"},
    {"config", OptionKind::String, "'#norm.config<cpu, ...>'",
     "compile with this config (absent knobs: the default heuristic's)"},
    {"json", OptionKind::Flag, "", "print one JSON object instead of a table"},
};

constexpr const char *kBenchSynopsis =
    "normjit bench --op layer_norm|rms_norm --rows N --cols C [options]";
constexpr const char *kBenchDescription =
    "Times one kernel on pseudo-random data and reports the median time per\n"
    "call and its bandwidth: (bytes read + bytes written) / median time. A\n"
    "memcpy moving as many bytes on as many threads is timed the same way as\n"
    "the reference.";

struct FreeDeleter {
  void operator()(void *pointer) const { std::free(pointer); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, FreeDeleter>;

/// Allocates `bytes` (at least one cache line) aligned to kAlignment.
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
  const int64_t *cols = &spec.cols;
  normjit_dtype_t dtype = spec.x_dtype;
  bool residual = spec.has_residual != 0;
  bool gamma = spec.has_gamma != 0;
  bool beta = spec.has_beta != 0;
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
  double minTime = options.getDouble("min-time", 0.2);
  if (!(minTime >= 0) || !std::isfinite(minTime))
    return makeToolError("--min-time must be a finite number of seconds >= 0, "
                         "got '" +
                         options.getString("min-time").value_or("") + "'");

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
  normjit::Context context;
  auto kernel = context.getKernel(spec, config);
  if (!kernel)
    return kernel.takeError();

  // Sizes, with every product checked.
  int64_t elementSize = static_cast<int64_t>(normjit_dtype_size(dtype));
  int64_t elements = 0, rowBytes = 0, vectorBytes = 0, traffic = 0;
  int64_t rowBuffers = residual ? 4 : 2; // x, y (+ residual, sum)
  int64_t vectors = (gamma ? 1 : 0) + (beta ? 1 : 0);
  if (llvm::MulOverflow(*rows, *cols, elements) ||
      llvm::MulOverflow(elements, elementSize, rowBytes) ||
      llvm::MulOverflow(rowBytes, rowBuffers, traffic) ||
      llvm::AddOverflow(traffic, *cols * elementSize * vectors, traffic))
    return makeToolError("--rows " + llvm::Twine(*rows) + " times --cols " +
                         llvm::Twine(*cols) + " is too large");
  vectorBytes = *cols * elementSize;
  int64_t copyBytes = traffic / 2;

  // Buffers, filled deterministically.
  AlignedBuffer x, res, y, sum, g, b, copySource, copyTarget;
  struct Allocation {
    AlignedBuffer *buffer;
    int64_t bytes;
    const char *what;
  } allocations[] = {{&x, rowBytes, "x"},
                     {&res, residual ? rowBytes : 0, "residual"},
                     {&y, rowBytes, "y"},
                     {&sum, residual ? rowBytes : 0, "sum"},
                     {&g, gamma ? vectorBytes : 0, "gamma"},
                     {&b, beta ? vectorBytes : 0, "beta"},
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
  fill(x.get(), elements, dtype, 1, 0.25f, 2.0f);
  if (residual)
    fill(res.get(), elements, dtype, 2, 0.0f, 1.0f);
  if (gamma)
    fill(g.get(), *cols, dtype, 3, 1.0f, 0.1f);
  if (beta)
    fill(b.get(), *cols, dtype, 4, 0.0f, 0.1f);
  std::memset(y.get(), 0, static_cast<size_t>(rowBytes));
  if (residual)
    std::memset(sum.get(), 0, static_cast<size_t>(rowBytes));
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
  const normjit::Kernel &k = **kernel;
  auto kernelTiming =
      measure([&] { return k.run(runArgs); }, *warmup, *reps, minTime);
  if (!kernelTiming)
    return kernelTiming.takeError();

  // memcpy of half the bytes (so that it reads and writes as many as the
  // kernel), in chunks on as many threads as the kernel used: the threads
  // allowed, but no more than it had tasks.
  auto &pool = normjit::runtime::ThreadPool::global();
  int64_t allowed =
      *threads == 0 ? pool.size() : std::min<int64_t>(pool.size(), *threads);
  int64_t rowsPerTask = k.getConfig().rowsPerTask;
  int64_t tasks = (*rows + rowsPerTask - 1) / rowsPerTask;
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
  std::string configText = k.getConfig().str();

  if (options.getFlag("json", false)) {
    llvm::json::OStream json(out);
    json.object([&] {
      json.attribute("op", getOpName(spec.op));
      json.attribute("rows", *rows);
      json.attribute("cols", *cols);
      json.attribute("dtype", normjit_dtype_name(dtype));
      json.attribute("residual", residual);
      json.attribute("store_sum", residual);
      json.attribute("gamma", gamma);
      json.attribute("beta", beta);
      json.attribute("threads", static_cast<int64_t>(usedThreads));
      json.attribute("config", configText);
      // Fixed decimals: measurements have no 17 significant digits.
      auto number = [&](llvm::StringRef key, double value) {
        json.attributeBegin(key);
        json.rawValue(
            [&](llvm::raw_ostream &os) { os << llvm::format("%.3f", value); });
        json.attributeEnd();
      };
      number("compile_ms", k.getCompileMillis());
      number("median_us", kernelTiming->medianSeconds * 1e6);
      number("min_us", kernelTiming->minSeconds * 1e6);
      json.attribute("bytes", traffic);
      number("gbps", gbps);
      number("memcpy_gbps", memcpyGbps);
      number("memcpy_percent", percent);
      json.attribute("reps", kernelTiming->reps);
      json.attribute("memcpy_reps", copyTiming->reps);
      json.attribute("memcpy_threads", static_cast<int64_t>(copyThreads));
    });
    out << "\n";
    return llvm::Error::success();
  }

  auto line = [&](llvm::StringRef label) -> llvm::raw_ostream & {
    return out << llvm::left_justify(label, 11) << " ";
  };
  line("spec") << describeSpec(spec, *rows) << "\n";
  if (residual)
    line("residual") << "fused pre-norm block: y = norm(x + residual), "
                        "the sum stored too\n";
  line("config") << configText << "\n";
  line("threads") << usedThreads << " (" << tasks
                  << (tasks == 1 ? " task" : " tasks") << " of up to "
                  << rowsPerTask << " rows)\n";
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
  return llvm::Error::success();
}
