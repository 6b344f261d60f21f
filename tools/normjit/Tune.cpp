//===- Tune.cpp - normjit tune: one spec or a sweep into the cache --------===//
//
// Part of normjit. Tunes one spec (the spec flags of `normjit bench`) or every
// spec of a sweep file, storing each result in the tuning cache as soon as
// it is known, so that a sweep killed half way resumes where it stopped.
// Shows progress (a bar with the time left on a terminal, plain lines
// otherwise), splits sweeps into shards (`--shard I/N`), and writes a report
// (Markdown, CSV) and an SVG plot of GB/s per shape for the tuned config,
// the default config and the memory-copy ceiling (CPU) or the theoretical
// DRAM bandwidth (GPU). `--device cuda:N` tunes for that GPU: its entries are
// keyed by its fingerprint, never mixed with the CPU's.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"
#include "Sweep.h"

#include "normjit/runtime/Error.h"
#include "normjit/runtime/ThreadPool.h"
#include "normjit/tuner/Measure.h"
#include "normjit/tuner/Tuner.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/WithColor.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <unistd.h>

using namespace normjit;
using namespace normjit::tool;
using namespace normjit::tuner;

namespace {

const OptionInfo kTuneOptions[] = {
    {"op", OptionKind::String, "layer_norm|rms_norm", "the normalization"},
    {"rows", OptionKind::Int, "N", "rows per call (picks the row bucket)"},
    {"cols", OptionKind::Int, "C", "columns per row"},
    {"dtype", OptionKind::String, "f32|f16|bf16",
     "dtype of every buffer (default f32)"},
    {"residual", OptionKind::Flag, "",
     "add a residual and store the sum (tuned fused and add-then-norm)"},
    {"gamma", OptionKind::NegatableFlag, "", "scale by gamma (default on)"},
    {"beta", OptionKind::NegatableFlag, "",
     "shift by beta (default on for layer_norm)"},
    NORMJIT_SPEC_DETAIL_OPTIONS,
    {"eps", OptionKind::Double, "E", "epsilon (default 1e-5, rms_norm 1e-6)"},
    {"sweep", OptionKind::String, "FILE.toml",
     "tune every spec of a sweep file instead of one spec"},
    {"shard", OptionKind::String, "I/N",
     "tune only the sweep's specs with index % N == I (0 <= I < N)"},
    {"budget", OptionKind::Double, "SECONDS",
     "time budget per spec, compilation included (default 2.0)"},
    {"strategy", OptionKind::String, "halving|random|exhaustive",
     "search strategy (default halving)"},
    {"seed", OptionKind::Int, "N", "seed of the random draws (default 0)"},
    {"candidates", OptionKind::Int, "N",
     "configs drawn by random/halving (default 40)"},
    {"device", OptionKind::String, "cpu|cuda|cuda:N",
     "the device to tune for (default: cpu)"},
    {"cold-cache", OptionKind::Flag, "",
     "evict the CPU caches (GPU: flush L2) before every timed sample; the "
     "results are entries of their own (cold_cache), which warm runs never "
     "use"},
    {"threads", OptionKind::Int, "N",
     "CPU: tune on N worker threads, recorded in the entry (default 0: all "
     "cores)"},
    {"cache", OptionKind::String, "FILE",
     "the tuning cache (default: $NORMJIT_CACHE_DIR, $XDG_CACHE_HOME or "
     "~/.cache)"},
    {"force", OptionKind::Flag, "", "tune again specs the cache already has"},
    {"report", OptionKind::String, "DIR",
     "write report.md, report.csv and report.svg there"},
    {"progress", OptionKind::NegatableFlag, "",
     "a progress bar (default: when stderr is a terminal)"},
    {"json", OptionKind::Flag, "",
     "one spec: print one JSON object instead of lines"},
};

constexpr const char *kTuneSynopsis =
    "normjit tune (--op OP --rows N --cols C [spec options] | --sweep FILE) "
    "[options]";
constexpr const char *kTuneDescription =
    "Finds the fastest config for each spec on the CPU or, with --device\n"
    "cuda:N, on that GPU (timed with CUDA events): candidates from the search\n"
    "space are compiled, checked against an fp64 reference (a wrong one is\n"
    "rejected, never chosen) and timed (median of repetitions until stable);\n"
    "the winner, its runner-up and the default's speed go to the tuning\n"
    "cache. Entries already tuned for this device and build are skipped, so\n"
    "an interrupted sweep resumes; sweep rows that share an entry (rows of\n"
    "one row bucket, a spec listed twice) are tuned once. Workloads are\n"
    "capped at 256 MiB per second of budget (64 to 512 MiB): larger row\n"
    "counts are measured on as many rows as fit (one row at least, which\n"
    "may take longer than the budget); a spec whose one row takes more than\n"
    "512 MiB is refused.";

/// A sweep stopped by Ctrl-C (or SIGTERM, as LLVM's handlers take it)
/// says what is kept, then ends as the signal ends a process.
void onSweepInterrupt() {
  static const char message[] =
      "\nnormjit: interrupted: the specs tuned so far are in the tuning "
      "cache; the same command resumes the sweep\n";
  (void)!::write(STDERR_FILENO, message, sizeof message - 1);
  std::signal(SIGINT, SIG_DFL);
  std::raise(SIGINT);
}

/// What the report compares the tuned GB/s with.
struct Ceiling {
  const char *title;  ///< in the Markdown table and the plot
  const char *column; ///< in the CSV
  const char *note;   ///< below the Markdown table
};
/// Sweep rows sharing an earlier row's cache entry named one by one.
constexpr size_t kDuplicatesShown = 5;

constexpr Ceiling kCpuCeiling = {
    "memcpy", "memcpy_gbps",
    "the memcpy ceiling moves the same bytes, the faster of all cores and "
    "one, measured in this run. It is a ceiling for kernels with ordinary "
    "stores: memcpy reads the lines it writes (below glibc's non-temporal "
    "threshold, about the last-level cache), while a kernel with streaming "
    "stores does not, and can pass it (above 100%)."};
constexpr Ceiling kGpuCeiling = {
    "DRAM peak", "dram_peak_gbps",
    "the ceiling is the device's theoretical DRAM bandwidth (memory clock "
    "x bus width)."};

/// The outcome of tuning one spec, whichever the device.
struct Outcome {
  std::string best, runnerUp, defaultConfig;
  double bestGbps = 0, runnerUpGbps = 0, defaultGbps = 0;
  /// CPU: the default for the row count, where it is another config.
  std::string rowsDefault;
  double rowsDefaultGbps = 0;
  bool hasRunnerUp = false;
  std::string fusion;
  double fusionMargin = 0;
  int64_t candidates = 0;
  std::vector<std::string> failures;
  double seconds = 0;
  CacheEntry entry;
};

template <typename Config>
Outcome makeOutcome(const BasicTuneResult<Config> &result, CacheEntry entry) {
  Outcome outcome;
  outcome.best = result.best.str();
  outcome.bestGbps = result.bestGbps;
  if (result.runnerUp) {
    outcome.hasRunnerUp = true;
    outcome.runnerUp = result.runnerUp->str();
    outcome.runnerUpGbps = result.runnerUpGbps;
  }
  outcome.defaultConfig = result.defaultConfig.str();
  outcome.defaultGbps = result.defaultGbps;
  if (result.rowsDefault) {
    outcome.rowsDefault = result.rowsDefault->str();
    outcome.rowsDefaultGbps = result.rowsDefaultGbps;
  }
  outcome.fusion = result.fusion;
  outcome.fusionMargin = result.fusionMargin;
  outcome.candidates = result.candidates;
  outcome.failures = result.failures;
  outcome.seconds = result.seconds;
  outcome.entry = std::move(entry);
  return outcome;
}

/// One line of the report.
struct ReportRow {
  normjit_kernel_spec_t spec;
  int64_t rows = 0;
  int64_t measuredRows = 0;
  std::string config;
  double tunedGbps = 0, defaultGbps = 0, copyGbps = 0;
  /// The default for the row count's GB/s where it is another config and
  /// was timed (tuned now, CPU); 0 otherwise.
  double rowsDefaultGbps = 0;
  std::string fusion;
  double fusionMargin = 0;
  bool fromCache = false;
};

/// GB/s of a multi-threaded memcpy moving `bytes` (read + written): the
/// ceiling a memory-bound kernel of that size can reach.
double measureCopyGbps(double bytes) {
  size_t half = static_cast<size_t>(std::max(bytes / 2, 64.0));
  std::unique_ptr<char[]> from(new char[half]), to(new char[half]);
  std::memset(from.get(), 1, half);
  std::memset(to.get(), 0, half);
  auto &pool = runtime::ThreadPool::global();
  // Chunks of at most 256 KiB, and at least one per worker (of 4 KiB or
  // more): a small copy is spread over the cores too.
  int64_t workers = std::max<int64_t>(1, pool.size());
  int64_t chunk = std::clamp<int64_t>(
      (static_cast<int64_t>(half) / workers + 4095) / 4096 * 4096, 4096,
      256 << 10);
  int64_t chunks = static_cast<int64_t>((half + chunk - 1) / chunk);
  auto parallel = [&] {
    pool.parallelFor(chunks, 1, 0, [&](int64_t begin, int64_t end) {
      size_t first = static_cast<size_t>(begin * chunk);
      size_t last = std::min(half, static_cast<size_t>(end * chunk));
      std::memcpy(to.get() + first, from.get() + first, last - first);
    });
  };
  auto serial = [&] { std::memcpy(to.get(), from.get(), half); };
  using Clock = std::chrono::steady_clock;
  auto median = [&](const std::function<void()> &copy) {
    copy();
    std::vector<double> samples;
    auto start = Clock::now();
    while (samples.size() < 5 ||
           (samples.size() < 200 &&
            std::chrono::duration<double>(Clock::now() - start).count() <
                0.1)) {
      auto begin = Clock::now();
      int repeats = half < (1 << 20) ? 64 : 1;
      for (int i = 0; i < repeats; ++i)
        copy();
      samples.push_back(
          std::chrono::duration<double>(Clock::now() - begin).count() /
          repeats);
    }
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
  };
  // The faster of all cores and one (where dispatching costs more than
  // the copy).
  double seconds = std::min(median(parallel), median(serial));
  return 2.0 * static_cast<double>(half) / seconds / 1e9;
}

llvm::Expected<std::pair<int64_t, int64_t>> parseShard(llvm::StringRef text) {
  auto [left, right] = text.split('/');
  int64_t index = 0, count = 0;
  if (left.getAsInteger(10, index) || right.getAsInteger(10, count) ||
      count < 1 || index < 0 || index >= count)
    return makeToolError("--shard expects I/N with 0 <= I < N, got '" + text +
                         "'");
  return std::make_pair(index, count);
}

std::string csvEscape(const std::string &text) {
  std::string escaped = "\"";
  for (char c : text) {
    if (c == '"')
      escaped += '"';
    escaped += c;
  }
  return escaped + "\"";
}

std::string describeDtypes(const normjit_kernel_spec_t &spec);

/// A shape's label in the plot: what the report's table says of it.
std::string shapeLabel(const ReportRow &row) {
  return std::string(getOpName(row.spec.op)) + " " + std::to_string(row.rows) +
         "x" + std::to_string(row.spec.cols) +
         (row.spec.has_residual ? " +res " : " ") + describeDtypes(row.spec);
}

/// Writes `text` to `path` atomically (temporary file + rename).
llvm::Error writeFileAtomically(const std::string &path,
                                const std::string &text) {
  // A temporary of its own (two runs may write reports into one
  // directory at once), beside the file so that the rename is atomic.
  // (Named here: LLVM's createUniqueFile replaced every '%' of the path,
  // a directory's too, and mkstemp's files are 0600 where a report is as
  // readable as the user's umask makes any file.)
  std::string temporary;
  int fd = -1;
  std::random_device random;
  for (int attempt = 0; fd < 0 && attempt < 64; ++attempt) {
    temporary = path + ".tmp-" + llvm::utohexstr(random(), /*LowerCase=*/true);
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                0666);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0)
    return makeError(NORMJIT_IO_ERROR, "cannot write '" + path +
                                           "': " + runtime::errorText(errno));
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << text;
    os.close();
    if (os.has_error()) {
      os.clear_error();
      llvm::sys::fs::remove(temporary);
      return makeError(NORMJIT_IO_ERROR, "cannot write '" + path + "'");
    }
  }
  if (std::error_code code = llvm::sys::fs::rename(temporary, path)) {
    llvm::sys::fs::remove(temporary);
    return makeError(NORMJIT_IO_ERROR,
                     "cannot write '" + path + "': " + code.message());
  }
  return llvm::Error::success();
}

std::string svgPlot(const std::vector<ReportRow> &rows,
                    const Ceiling &ceiling) {
  // Labels run down at 60 degrees from below their bars: the space below
  // the plot and right of it is made for the longest (11px sans-serif,
  // about 6.5px a character), the legend below them.
  constexpr double kCharWidth = 6.5, kSin60 = 0.866, kCos60 = 0.5;
  size_t longest = 0;
  for (const ReportRow &row : rows)
    longest = std::max(longest, shapeLabel(row).size());
  const double left = 60, top = 40, plotH = 230, slotW = 28;
  const double labels = 8 + kCharWidth * longest * kSin60 + 12;
  const double bottom = labels + 30;
  const double right =
      std::max(20.0, kCharWidth * longest * kCos60 - slotW / 2 + 10);
  const double width =
      std::max<double>(640, left + right + slotW * rows.size());
  const double height = top + plotH + bottom;
  double maxGbps = 0;
  for (const ReportRow &row : rows)
    maxGbps = std::max({maxGbps, row.tunedGbps, row.defaultGbps, row.copyGbps});
  maxGbps = maxGbps > 0 ? maxGbps * 1.1 : 1;
  // Tick labels with the digits their step needs (0.25, 2.5, 25).
  double step = maxGbps / 4;
  int digits = step >= 10 ? 0 : step >= 1 ? 1 : step >= 0.1 ? 2 : 4;
  double plotW = width - left - right;
  double slot = plotW / std::max<size_t>(rows.size(), 1);
  auto y = [&](double gbps) { return top + plotH * (1 - gbps / maxGbps); };
  std::string svg;
  llvm::raw_string_ostream os(svg);
  os << llvm::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                     "height=\"%.0f\" font-family=\"sans-serif\" "
                     "font-size=\"11\">\n",
                     width, height);
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << llvm::format("<text x=\"%.0f\" y=\"20\" font-size=\"14\">normjit "
                     "tuning: GB/s per shape (tuned, default, %s "
                     "ceiling)</text>\n",
                     left, ceiling.title);
  for (int tick = 0; tick <= 4; ++tick) {
    double value = maxGbps * tick / 4;
    os << llvm::format("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"#ddd\"/>\n",
                       left, width - right, y(value), y(value));
    os << llvm::format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f"
                       "</text>\n",
                       left - 4, y(value) + 4, digits, value);
  }
  os << llvm::format("<text x=\"14\" y=\"%.1f\" transform=\"rotate(-90 14 "
                     "%.1f)\">GB/s</text>\n",
                     top + plotH / 2, top + plotH / 2);
  if (rows.empty())
    os << llvm::format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                       "fill=\"#888\">no shapes</text>\n",
                       left + plotW / 2, top + plotH / 2);
  for (size_t i = 0; i < rows.size(); ++i) {
    const ReportRow &row = rows[i];
    double x0 = left + slot * i + slot * 0.15, barW = slot * 0.35;
    os << llvm::format("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                       "height=\"%.1f\" fill=\"#1f77b4\"><title>tuned %.1f "
                       "GB/s</title></rect>\n",
                       x0, y(row.tunedGbps), barW, top + plotH - y(row.tunedGbps),
                       row.tunedGbps);
    os << llvm::format("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                       "height=\"%.1f\" fill=\"#aec7e8\"><title>default %.1f "
                       "GB/s</title></rect>\n",
                       x0 + barW, y(row.defaultGbps), barW,
                       top + plotH - y(row.defaultGbps), row.defaultGbps);
    os << llvm::format("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"#d62728\" stroke-width=\"2\"><title>%s "
                       "%.1f GB/s</title></line>\n",
                       x0 - 2, x0 + 2 * barW + 2, y(row.copyGbps),
                       y(row.copyGbps), ceiling.title, row.copyGbps);
    double labelX = x0 + barW, labelY = top + plotH + 8;
    os << llvm::format("<text x=\"%.1f\" y=\"%.1f\" transform=\"rotate(60 "
                       "%.1f %.1f)\">",
                       labelX, labelY, labelX, labelY)
       << shapeLabel(row) << "</text>\n";
  }
  double legendY = height - 12;
  os << llvm::format("<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" "
                     "fill=\"#1f77b4\"/><text x=\"%.0f\" y=\"%.0f\">tuned"
                     "</text>\n",
                     left, legendY - 9, left + 14, legendY);
  os << llvm::format("<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" "
                     "fill=\"#aec7e8\"/><text x=\"%.0f\" y=\"%.0f\">default"
                     "</text>\n",
                     left + 70, legendY - 9, left + 84, legendY);
  os << llvm::format("<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" "
                     "stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"%.0f\" "
                     "y=\"%.0f\">%s ceiling</text>\n",
                     left + 150, left + 162, legendY - 4, legendY - 4,
                     left + 166, legendY, ceiling.title);
  os << "</svg>\n";
  return svg;
}

/// gamma's (else beta's) dtype; "-" without either.
const char *paramDtypeName(const normjit_kernel_spec_t &spec) {
  if (spec.has_gamma)
    return normjit_dtype_name(spec.gamma_dtype);
  return spec.has_beta ? normjit_dtype_name(spec.beta_dtype) : "-";
}

/// The report's dtype cell: x's, with gamma's and beta's when another,
/// "+ stats" when the row statistics are stored, and what else differs
/// from a sweep's spec of that op and dtype (y's or the residual's dtype,
/// gamma or beta left out or added, the sum not stored, epsilon), so that
/// no two specs of one shape read alike.
std::string describeDtypes(const normjit_kernel_spec_t &spec) {
  std::string text = normjit_dtype_name(spec.x_dtype);
  llvm::StringRef params = paramDtypeName(spec);
  if (params != "-" && params != text)
    text += " (" + params.str() + " gamma/beta)";
  if (spec.store_mean || spec.store_rstd)
    text += " + stats";
  auto differs = [&](normjit_dtype_t dtype) { return dtype != spec.x_dtype; };
  if (differs(spec.y_dtype))
    text += std::string(" -> ") + normjit_dtype_name(spec.y_dtype);
  if (spec.has_residual && differs(spec.residual_dtype))
    text += std::string(", ") + normjit_dtype_name(spec.residual_dtype) +
            " residual";
  if (spec.has_residual && !spec.store_sum)
    text += ", sum not stored";
  else if (spec.store_sum && differs(spec.sum_dtype))
    text += std::string(", ") + normjit_dtype_name(spec.sum_dtype) + " sum";
  if (!spec.has_gamma)
    text += ", no gamma";
  bool layerNorm = spec.op == NORMJIT_LAYER_NORM;
  if (layerNorm && !spec.has_beta)
    text += ", no beta";
  else if (!layerNorm && spec.has_beta)
    text += ", beta";
  if (spec.epsilon != (layerNorm ? 1e-5f : 1e-6f))
    text += ", eps " + formatNumber(spec.epsilon);
  return text;
}

/// The report's files in `dir`.
const char *const kReportFiles[] = {"report.md", "report.csv", "report.svg"};

/// `dir` joined with `file`, with one separator however `dir` ends.
std::string reportPath(const std::string &dir, const char *file) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, file);
  return std::string(path);
}

/// Creates the report directory (as mkdir -p does: for anyone to read, as
/// the umask allows) and checks it is writable and that no report file
/// is a directory: before tuning, so that a sweep does not fail at its
/// end.
llvm::Error checkReportDirectory(const std::string &dir) {
  if (std::error_code code = llvm::sys::fs::create_directories(
          dir, /*IgnoreExisting=*/true, llvm::sys::fs::all_all))
    return makeError(NORMJIT_IO_ERROR, "cannot create report directory '" +
                                           dir + "': " + code.message());
  // create_directories succeeds on a path that exists, whatever it is.
  if (!llvm::sys::fs::is_directory(dir))
    return makeError(NORMJIT_IO_ERROR, "cannot create report directory '" +
                                           dir + "': a file of that name "
                                           "exists and is not a directory");
  if (std::error_code code =
          llvm::sys::fs::access(dir, llvm::sys::fs::AccessMode::Write))
    return makeError(NORMJIT_IO_ERROR, "cannot write report directory '" +
                                           dir + "': " + code.message());
  for (const char *file : kReportFiles)
    if (std::string path = reportPath(dir, file);
        llvm::sys::fs::is_directory(path))
      return makeError(NORMJIT_IO_ERROR,
                       "cannot write '" + path + "': it is a directory");
  return llvm::Error::success();
}

llvm::Error writeReport(const std::string &dir,
                        const std::vector<ReportRow> &rows,
                        const Ceiling &ceiling, bool coldCache) {
  if (llvm::Error error = checkReportDirectory(dir))
    return error;
  std::string md, csv;
  llvm::raw_string_ostream mdOs(md), csvOs(csv);
  mdOs << "# normjit tuning report\n\n"
       << "| op | rows | cols | dtype | residual | tuned GB/s | default GB/s "
          "| speedup | "
       << ceiling.title << " GB/s | % of " << ceiling.title
       << " | fusion | config |\n"
       << "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---|---|\n";
  csvOs << "op,rows,measured_rows,cols,dtype,residual,tuned_gbps,default_gbps,"
           "speedup,"
        << ceiling.column
        << ",fusion,fusion_margin,from_cache,config,param_dtype,stats,"
           "rows_default_gbps,y_dtype,residual_dtype,gamma,beta,eps\n";
  double logSum = 0;
  int counted = 0;
  // Against the default for the row count, where it differs: the tuned
  // config's speedup over it, and its own over the spec's default.
  double rowsLogSum = 0, rowsDefaultLogSum = 0;
  int rowsCounted = 0;
  for (const ReportRow &row : rows) {
    double speedup = row.defaultGbps > 0 ? row.tunedGbps / row.defaultGbps : 0;
    if (speedup > 0) {
      logSum += std::log(speedup);
      ++counted;
      if (row.rowsDefaultGbps > 0) {
        rowsLogSum += std::log(row.tunedGbps / row.rowsDefaultGbps);
        rowsDefaultLogSum += std::log(row.rowsDefaultGbps / row.defaultGbps);
        ++rowsCounted;
      }
    }
    // A margin of 0: the other form was not measured (out of budget).
    std::string fusion =
        row.fusion.empty() ? "-"
        : row.fusionMargin > 0
            ? row.fusion +
                  llvm::formatv(" ({0:F2}x)", row.fusionMargin).str()
            : row.fusion + " (other form not measured)";
    mdOs << "| " << getOpName(row.spec.op) << " | " << row.rows << " | "
         << row.spec.cols << " | " << describeDtypes(row.spec) << " | "
         << (row.spec.has_residual ? "yes" : "no") << " | "
         << llvm::format("%.1f", row.tunedGbps) << " | "
         << llvm::format("%.1f", row.defaultGbps) << " | "
         << (speedup > 0 ? llvm::formatv("{0:F2}x", speedup).str() : "-")
         << " | " << llvm::format("%.1f", row.copyGbps) << " | "
         << llvm::format("%.0f%%", row.copyGbps > 0
                                       ? 100 * row.tunedGbps / row.copyGbps
                                       : 0.0)
         << " | " << fusion << " | `" << row.config << "` |\n";
    // (A cell with nothing known is empty: the rows measured and the
    // default for the row count are not kept in the cache.)
    auto number = [](const char *format, double value, bool known) {
      return known ? llvm::formatv(format, value).str() : std::string();
    };
    const normjit_kernel_spec_t &spec = row.spec;
    csvOs << getOpName(spec.op) << "," << row.rows << ","
          << (row.fromCache ? std::string() : std::to_string(row.measuredRows))
          << "," << spec.cols << "," << normjit_dtype_name(spec.x_dtype) << ","
          << (spec.has_residual ? 1 : 0) << ","
          << number("{0:F3}", row.tunedGbps, true) << ","
          << number("{0:F3}", row.defaultGbps, row.defaultGbps > 0) << ","
          << number("{0:F4}", speedup, speedup > 0) << ","
          << number("{0:F3}", row.copyGbps, row.copyGbps > 0) << ","
          << row.fusion << ","
          << number("{0:F4}", row.fusionMargin, row.fusionMargin > 0) << ","
          << (row.fromCache ? 1 : 0) << "," << csvEscape(row.config) << ","
          << paramDtypeName(spec) << ","
          << (spec.store_rstd || spec.store_mean ? 1 : 0) << ","
          << number("{0:F3}", row.rowsDefaultGbps, row.rowsDefaultGbps > 0)
          << "," << normjit_dtype_name(spec.y_dtype) << ","
          << (spec.has_residual ? normjit_dtype_name(spec.residual_dtype) : "")
          << "," << (spec.has_gamma ? 1 : 0) << "," << (spec.has_beta ? 1 : 0)
          << "," << formatNumber(spec.epsilon) << "\n";
  }
  if (counted)
    mdOs << "\nGeometric-mean speedup of the tuned over the default config: "
         << llvm::format("%.3fx", std::exp(logSum / counted)) << " over "
         << counted << (counted == 1 ? " shape.\n" : " shapes.\n");
  if (rowsCounted)
    mdOs << "\nWhere the default for the row count (what TunedKernels gives "
            "without a cache entry: row groups for inputs within the caches, "
            "streaming stores and prefetches far beyond them) "
            "is another config, "
         << rowsCounted << (rowsCounted == 1 ? " shape" : " shapes")
         << " tuned in this run (the cache keeps no figure for it)"
         << ": the tuned config "
         << llvm::format("%.3fx", std::exp(rowsLogSum / rowsCounted))
         << " over it, it "
         << llvm::format("%.3fx", std::exp(rowsDefaultLogSum / rowsCounted))
         << " over the spec's default (geometric means; `rows_default_gbps` "
            "in the CSV).\n";
  mdOs << "\nMeasured rows are capped so a workload fits in 256 MiB per "
          "second of budget (64 to 512 MiB); "
       << ceiling.note << "\n";
  if (coldCache)
    mdOs << "\nTuned with --cold-cache: the caches were flushed before every "
            "sample, so the tuned and default GB/s are cold ones.\n";
  if (llvm::Error error = writeFileAtomically(reportPath(dir, "report.md"), md))
    return error;
  if (llvm::Error error =
          writeFileAtomically(reportPath(dir, "report.csv"), csv))
    return error;
  return writeFileAtomically(reportPath(dir, "report.svg"),
                             svgPlot(rows, ceiling));
}

/// Progress on stderr: a bar with the time left on a terminal, one plain
/// line per spec otherwise.
class Progress {
public:
  Progress(size_t total, bool bar) : total(total), bar(bar) {}

  void done(size_t finished, const std::string &line) {
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (!bar) {
      llvm::errs() << "[" << finished << "/" << total << "] " << line << "\n";
      return;
    }
    double left = finished ? elapsed / finished * (total - finished) : 0;
    int filled = total ? static_cast<int>(30.0 * finished / total) : 30;
    llvm::errs() << "\r[" << std::string(filled, '#')
                 << std::string(30 - filled, '.') << "] " << finished << "/"
                 << total << llvm::format("  %.0fs left  ", left);
    if (finished == total)
      llvm::errs() << "\n";
    llvm::errs().flush();
  }

private:
  using Clock = std::chrono::steady_clock;
  size_t total;
  bool bar;
  Clock::time_point start = Clock::now();
};

llvm::Expected<double> getPositiveDouble(const ParsedOptions &options,
                                         llvm::StringRef name,
                                         double otherwise) {
  double value = options.getDouble(name, otherwise);
  if (!(value > 0) || !std::isfinite(value))
    return makeToolError("--" + name + " must be a positive number of seconds");
  return value;
}

} // namespace

llvm::Error normjit::tool::tuneCommand(llvm::ArrayRef<std::string> args,
                                       llvm::raw_ostream &out) {
  OptionParser parser("tune", kTuneOptions);
  auto parsed = parser.parse(args);
  if (!parsed)
    return parsed.takeError();
  const ParsedOptions &options = *parsed;
  if (options.helpRequested()) {
    parser.printHelp(out, kTuneSynopsis, kTuneDescription);
    return llvm::Error::success();
  }

  // What to tune.
  std::vector<SweepItem> items;
  bool sweep = options.has("sweep");
  bool asJson = options.getFlag("json", false);
  auto device = parseDeviceOption(options);
  if (!device)
    return device.takeError();
  if (sweep) {
    for (const char *specOnly : {"op", "rows", "cols", "dtype", "residual",
                                 "gamma", "beta", "eps"})
      if (options.has(specOnly))
        return makeToolError("--" + llvm::Twine(specOnly) +
                             " describes one spec; it cannot be combined "
                             "with --sweep");
    if (asJson)
      return makeToolError("--json prints the result of one spec; a sweep "
                           "writes its results with --report");
    auto loaded = loadSweep(*options.getString("sweep"));
    if (!loaded)
      return loaded.takeError();
    items = std::move(*loaded);
  } else {
    if (!options.has("rows"))
      return makeToolError("missing required option '--rows' (or --sweep "
                           "FILE; see 'normjit tune --help')");
    if (options.has("shard"))
      return makeToolError("--shard splits a sweep; it needs --sweep");
    auto spec = parseSpecOptions(options, "tune");
    if (!spec)
      return spec.takeError();
    int64_t rows = options.getInt("rows", 0);
    if (rows < 1)
      return makeToolError("--rows must be at least 1, got " +
                           llvm::Twine(rows));
    SweepItem item;
    item.spec = *spec;
    item.rows = rows;
    items.push_back(item);
  }

  // How.
  TuneOptions tuneOptions;
  auto budget = getPositiveDouble(options, "budget", 2.0);
  if (!budget)
    return budget.takeError();
  tuneOptions.budgetSeconds = *budget;
  if (auto name = options.getString("strategy")) {
    auto kind = parseStrategyKind(*name);
    if (!kind)
      return makeToolError("--strategy must be halving, random or "
                           "exhaustive, got '" +
                           *name + "'");
    tuneOptions.strategy.kind = *kind;
  }
  int64_t seed = options.getInt("seed", 0);
  if (seed < 0)
    return makeToolError("--seed must not be negative");
  tuneOptions.strategy.seed = static_cast<uint64_t>(seed);
  int64_t candidates = options.getInt("candidates", 40);
  if (candidates < 1 || candidates > 100000)
    return makeToolError("--candidates must be in [1, 100000], got " +
                         llvm::Twine(candidates));
  tuneOptions.strategy.maxCandidates = static_cast<size_t>(candidates);
  tuneOptions.coldCache = options.getFlag("cold-cache", false);
  auto threads = getThreadsOption(options);
  if (!threads)
    return threads.takeError();
  tuneOptions.threads = *threads;
  std::pair<int64_t, int64_t> shard = {0, 1};
  if (auto text = options.getString("shard")) {
    auto parsedShard = parseShard(*text);
    if (!parsedShard)
      return parsedShard.takeError();
    shard = *parsedShard;
  }
  bool force = options.getFlag("force", false);

  // Where: this CPU, or a GPU whose fingerprint keys its entries.
  std::string deviceKey;
  std::string deviceName = getDeviceName(*device);
  std::string deviceDescription = deviceName;
  double dramGbps = 0;
  if (*device >= 0 && options.has("threads"))
    return makeToolError("--threads sets CPU worker threads; it cannot be "
                         "used with --device cuda");
  if (*device >= 0) {
    if (llvm::Error error = checkGpuDevice(*device))
      return error;
    normjit_cuda_device_info_t info;
    if (normjit_status_t status = normjit_cuda_device_info(*device, &info))
      return statusToError(status);
    auto fingerprint = getGpuFingerprint(*device);
    if (!fingerprint)
      return fingerprint.takeError();
    deviceKey = *fingerprint;
    deviceDescription += std::string(" ") + info.name;
    dramGbps = info.dram_bandwidth_gbps;
  }
  auto keyFor = [&](const SweepItem &item) {
    CacheKey key =
        *device < 0 ? makeCacheKey(item.spec, item.rows, tuneOptions.threads)
                    : makeCacheKey(item.spec, item.rows, deviceKey);
    key.coldCache = tuneOptions.coldCache;
    return key;
  };
  // Sweep rows that share a cache entry (a spec listed twice, or rows of one
  // row bucket such as 1000 and 1024) are tuned once, as the first of them,
  // and said so; they are not counted as already in the cache.
  size_t duplicates = 0;
  if (sweep) {
    std::map<CacheKey, size_t> firstOf;
    std::vector<SweepItem> unique;
    for (const SweepItem &item : items) {
      CacheKey key = keyFor(item);
      auto [it, inserted] = firstOf.try_emplace(key, unique.size());
      if (inserted) {
        unique.push_back(item);
        continue;
      }
      if (++duplicates <= kDuplicatesShown) {
        const SweepItem &first = unique[it->second];
        std::string name = describeSpec(item.spec, item.rows);
        std::string firstName = describeSpec(first.spec, first.rows);
        llvm::WithColor::note(llvm::errs(), "normjit")
            << name
            << (name == firstName
                    ? " is in the sweep more than once: tuned once\n"
                    : " shares the cache entry of " + firstName +
                          " (row bucket " +
                          tuner::getRowBucketLabel(key.rowBucket) +
                          "): tuned once, as the first\n");
      }
    }
    if (duplicates > kDuplicatesShown)
      llvm::WithColor::note(llvm::errs(), "normjit")
          << duplicates - kDuplicatesShown
          << (duplicates - kDuplicatesShown == 1
                  ? " more sweep row shares"
                  : " more sweep rows share")
          << " an earlier row's cache entry\n";
    items = std::move(unique);
  }

  TuningCache cache(options.getString("cache").value_or(
      TuningCache::getDefaultPath()));
  // A sweep file given as the cache too would be set aside as a corrupt
  // cache and overwritten.
  if (sweep && llvm::sys::fs::equivalent(*options.getString("sweep"),
                                         cache.getPath()))
    return makeToolError("the tuning cache '" + cache.getPath() +
                         "' is the sweep file; give another --cache");
  if (llvm::Error error = cache.load())
    return error;
  printCacheWarnings(cache);
  std::vector<size_t> mine;
  for (size_t i = 0; i < items.size(); ++i)
    if (static_cast<int64_t>(i % shard.second) == shard.first)
      mine.push_back(i);
  // A spec that cannot be tuned stops the sweep before any tuning.
  for (size_t i : mine)
    if (llvm::Error error = tuner::checkTunable(items[i].spec))
      return makeToolError(
          (items[i].origin.empty() ? "" : items[i].origin + ": ") +
          describeSpec(items[i].spec, items[i].rows) +
          ": cannot be tuned: " + llvm::toString(std::move(error)));
  if (sweep && mine.empty())
    llvm::WithColor::warning(llvm::errs(), "normjit")
        << "shard " << shard.first << "/" << shard.second
        << " has no specs: the sweep has " << items.size()
        << (items.size() == 1 ? " spec" : " specs") << "\n";
  // Where the results go must be writable before any tuning starts; a
  // cache that holds every entry already (a shared, read-only one) need
  // not be.
  bool anyToTune = force || llvm::any_of(mine, [&](size_t i) {
                     return !cache.lookup(keyFor(items[i]));
                   });
  if (anyToTune)
    if (llvm::Error error = cache.checkWritable())
      return error;
  if (auto dir = options.getString("report"))
    if (llvm::Error error = checkReportDirectory(*dir))
      return error;

  bool bar = options.getFlag(
      "progress", llvm::sys::Process::StandardErrIsDisplayed());
  Progress progress(mine.size(), bar && sweep);
  if (sweep)
    llvm::sys::SetInterruptFunction(onSweepInterrupt);
  Context context;
  std::vector<ReportRow> report;
  size_t tuned = 0, skipped = 0, finished = 0;
  for (size_t index : mine) {
    const SweepItem &item = items[index];
    TuneOptions itemOptions = tuneOptions;
    if (item.budgetSeconds > 0 && !options.has("budget"))
      itemOptions.budgetSeconds = item.budgetSeconds;
    int64_t measuredRows = tuner::getMeasuredRows(item.spec, item.rows,
                                                  itemOptions.budgetSeconds);
    CacheKey key = keyFor(item);
    ReportRow row;
    row.spec = item.spec;
    row.rows = item.rows;
    row.measuredRows = measuredRows;
    std::optional<CacheEntry> cached = cache.lookup(key);
    if (cached && !force) {
      ++skipped;
      std::string configText = cached->getConfigText();
      if (!sweep && asJson) {
        llvm::json::OStream json(out);
        json.object([&] {
          json.attribute("spec", describeSpec(item.spec, item.rows));
          json.attribute("device", deviceName);
          json.attribute("fingerprint", key.device);
          json.attribute("cached", true);
          json.attribute("cold_cache", tuneOptions.coldCache);
          json.attribute("config", configText);
          json.attribute("gbps", cached->gbps);
          json.attribute("default_gbps", cached->defaultGbps);
          json.attribute("tuned_at", cached->tunedAt);
          json.attribute("cache", cache.getPath());
        });
        out << "\n";
      } else if (!sweep) {
        out << "spec      " << describeSpec(item.spec, item.rows) << "\n"
            << "cached    " << configText
            << (tuneOptions.coldCache ? " (cold cache)" : "") << "\n"
            << "          "
            << llvm::format("%.2f GB/s, tuned %s; --force tunes again",
                            cached->gbps, cached->tunedAt.c_str())
            << "\n";
      }
      row.config = configText;
      row.tunedGbps = cached->gbps;
      row.defaultGbps = cached->defaultGbps;
      row.fusion = cached->fusion;
      row.fusionMargin = cached->fusionMargin;
      row.fromCache = true;
    } else {
      Outcome outcome;
      if (*device < 0) {
        auto result = tuneCpu(context, item.spec, measuredRows, itemOptions);
        if (!result)
          return result.takeError();
        outcome = makeOutcome(*result,
                              makeCacheEntry(item.spec, item.rows, *result));
      } else {
        auto result = tuneGpu(context, item.spec, measuredRows, *device,
                              itemOptions);
        if (!result)
          return result.takeError();
        outcome = makeOutcome(
            *result, makeGpuCacheEntry(item.spec, item.rows, *result));
      }
      llvm::Error stored = cache.store({outcome.entry});
      printCacheWarnings(cache); // one corrupted since it was read is set aside
      if (stored)
        return stored;
      ++tuned;
      row.config = outcome.best;
      row.tunedGbps = outcome.bestGbps;
      row.defaultGbps = outcome.defaultGbps;
      row.rowsDefaultGbps = outcome.rowsDefaultGbps;
      row.fusion = outcome.fusion;
      row.fusionMargin = outcome.fusionMargin;
      double speedup =
          outcome.defaultGbps > 0 ? outcome.bestGbps / outcome.defaultGbps : 0;
      if (!sweep && asJson) {
        llvm::json::OStream json(out);
        json.object([&] {
          json.attribute("spec", describeSpec(item.spec, item.rows));
          json.attribute("device", deviceName);
          json.attribute("fingerprint", key.device);
          json.attribute("cached", false);
          json.attribute("cold_cache", tuneOptions.coldCache);
          json.attribute("config", outcome.best);
          json.attribute("gbps", outcome.bestGbps);
          json.attribute("default_config", outcome.defaultConfig);
          json.attribute("default_gbps", outcome.defaultGbps);
          if (!outcome.rowsDefault.empty()) {
            json.attribute("rows_default_config", outcome.rowsDefault);
            json.attribute("rows_default_gbps", outcome.rowsDefaultGbps);
          }
          json.attribute("speedup", speedup);
          if (outcome.hasRunnerUp) {
            json.attribute("runner_up", outcome.runnerUp);
            json.attribute("runner_up_gbps", outcome.runnerUpGbps);
          }
          json.attribute("fusion", outcome.fusion);
          json.attribute("fusion_margin", outcome.fusionMargin);
          json.attribute("candidates", outcome.candidates);
          json.attributeArray("rejected", [&] {
            for (const std::string &failure : outcome.failures)
              json.value(failure);
          });
          json.attribute("seconds", outcome.seconds);
          json.attribute("measured_rows", measuredRows);
          json.attribute("cache", cache.getPath());
        });
        out << "\n";
      } else if (!sweep) {
        out << "spec      " << describeSpec(item.spec, item.rows) << "\n";
        if (*device >= 0)
          out << "device    " << deviceDescription << "\n";
        out << "best      " << outcome.best << "\n"
            << "          " << llvm::format("%.2f GB/s", outcome.bestGbps)
            << "\n";
        if (outcome.hasRunnerUp)
          out << "runner-up " << outcome.runnerUp << "\n"
              << "          "
              << llvm::format("%.2f GB/s", outcome.runnerUpGbps) << "\n";
        out << "default   " << outcome.defaultConfig << "\n"
            << "          " << llvm::format("%.2f GB/s", outcome.defaultGbps)
            << llvm::format(" (tuned is %.2fx)", speedup) << "\n";
        if (!outcome.rowsDefault.empty()) {
          out << "for rows  " << outcome.rowsDefault << "\n"
              << "          ";
          if (outcome.rowsDefaultGbps > 0)
            out << llvm::format("%.2f GB/s (tuned is %.2fx)",
                                outcome.rowsDefaultGbps,
                                outcome.bestGbps / outcome.rowsDefaultGbps);
          else
            out << "not timed (out of budget)";
          out << ": the default for this row count, without a cache "
                 "entry\n";
        }
        if (!outcome.fusion.empty())
          out << "fusion    " << outcome.fusion
              << (outcome.fusionMargin > 0
                      ? llvm::formatv(" wins by {0:F2}x", outcome.fusionMargin)
                            .str()
                      : std::string(" (the other form was not measured)"))
              << "\n";
        out << "searched  " << outcome.candidates << " candidates ("
            << outcome.failures.size() << " rejected) in "
            << llvm::format("%.2f s", outcome.seconds);
        if (measuredRows != item.rows)
          out << ", measured on " << measuredRows << " rows";
        if (tuneOptions.coldCache)
          out << ", caches flushed before every sample (a cold-cache entry)";
        out << "\ncache     " << cache.getPath() << "\n";
      }
      if (!sweep)
        for (const std::string &failure : outcome.failures)
          llvm::WithColor::warning(llvm::errs(), "normjit")
              << "rejected " << failure << "\n";
    }
    if (options.has("report"))
      row.copyGbps = *device < 0 ? measureCopyGbps(tuner::Workload::getBytes(
                                       item.spec, measuredRows))
                                 : dramGbps;
    report.push_back(row);
    ++finished;
    if (sweep)
      progress.done(finished,
                  describeSpec(item.spec, item.rows) + ": " +
                      (row.fromCache ? "already tuned, " : "") +
                      llvm::formatv("{0:F2} GB/s ({1:F2}x default)",
                                    row.tunedGbps,
                                    row.defaultGbps > 0
                                        ? row.tunedGbps / row.defaultGbps
                                        : 0.0)
                          .str());
  }
  if (sweep)
    out << "tuned " << tuned << ", already in the cache " << skipped
        << " (shard " << shard.first << "/" << shard.second << ": "
        << mine.size() << " of " << items.size() << " specs"
        << (duplicates ? "; the whole sweep has " +
                             std::to_string(duplicates) +
                             (duplicates == 1 ? " row" : " rows") +
                             " sharing an earlier row's entry"
                       : std::string())
        << (*device >= 0 ? ", " + deviceDescription : std::string())
        << "), cache " << cache.getPath() << "\n";
  if (auto dir = options.getString("report")) {
    if (llvm::Error error =
            writeReport(*dir, report, *device < 0 ? kCpuCeiling : kGpuCeiling,
                        tuneOptions.coldCache))
      return error;
    if (!asJson)
      out << "report    " << reportPath(*dir, "report") << ".{md,csv,svg}\n";
  }
  return llvm::Error::success();
}
