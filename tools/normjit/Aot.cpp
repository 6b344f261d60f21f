//===- Aot.cpp - `normjit aot`: kernels compiled ahead of time ------------===//
//
// Part of normjit. Compiles one spec (given by flags) or the kernels of a
// spec file into an output directory. CPU: for one or more CPU targets, a C
// header, one object per target, the dispatch object, a static library of
// them and a manifest; each kernel takes the tuned config from the tuning
// cache when there is one, unless its config is given. GPU (--device cuda):
// for one or more chips, PTX (and cubins when ptxas is at hand) embedded in
// a generated C source with a launcher per kernel, a C header and a
// manifest; each kernel takes the default GPU heuristic unless its config
// is given.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "normjit/AOT/AOTCompiler.h"
#include "normjit/tuner/Tuner.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"

#include <cmath>

using namespace normjit;
using namespace normjit::aot;
using namespace normjit::tool;

namespace {

const OptionInfo kAotOptions[] = {
    {"name", OptionKind::String, "NAME",
     "the kernel's C function (one spec; required without --specs)"},
    {"op", OptionKind::String, "layer_norm|rms_norm", "the normalization"},
    {"cols", OptionKind::Int, "C", "columns per row"},
    {"dtype", OptionKind::String, "f32|f16|bf16",
     "dtype of every buffer (default f32)"},
    {"residual", OptionKind::Flag, "",
     "add a residual and store the sum (the fused pre-norm block)"},
    {"gamma", OptionKind::NegatableFlag, "", "scale by gamma (default on)"},
    {"beta", OptionKind::NegatableFlag, "",
     "shift by beta (default on for layer_norm)"},
    NORMJIT_SPEC_DETAIL_OPTIONS,
    {"eps", OptionKind::Double, "E", "epsilon (default 1e-5, rms_norm 1e-6)"},
    {"specs", OptionKind::String, "FILE.toml",
     "compile the kernels of a spec file (or a manifest) instead"},
    {"device", OptionKind::String, "cpu|cuda",
     "the backend (default: the spec file's, else cpu)"},
    {"lib", OptionKind::String, "NAME",
     "the library: file names and header guard (default: --name, or the "
     "spec file's library or name; given, the file's is not read)"},
    {"target", OptionKind::String, "T[,T...]",
     "CPU targets: native, x86-64, x86-64-v2, x86-64-v3, x86-64-v4 or a CPU "
     "name (default: the spec file's, else native); with --device cuda, GPU "
     "chips: sm_80, sm_86, sm_89, sm_90, ... (default: the spec file's, else "
     "sm_80,sm_90); given, the file's are not read"},
    {"no-cubin", OptionKind::Flag, "",
     "--device cuda: PTX only, no cubins even when ptxas is found "
     "($NORMJIT_PTXAS, /usr/local/cuda/bin/ptxas or PATH)"},
    {"config", OptionKind::String, "CONFIG",
     "knobs as '#norm.config<cpu, ...>' (one spec; no tuning cache then), or "
     "'#norm.config<gpu, ...>' with --device cuda"},
    {"vector-width", OptionKind::Int, "N", "CPU config knob (one spec)"},
    {"accumulators", OptionKind::Int, "N", "CPU config knob (one spec)"},
    {"rows-per-task", OptionKind::Int, "N", "CPU config knob (one spec)"},
    {"threads", OptionKind::Int, "N",
     "CPU config knob (one spec): worker threads, 0 for all cores"},
    {"algorithm", OptionKind::String, "two_pass|welford",
     "CPU config knob (one spec)"},
    {"streaming-stores", OptionKind::NegatableFlag, "",
     "CPU config knob (one spec)"},
    {"fuse-residual", OptionKind::NegatableFlag, "",
     "CPU config knob (one spec)"},
    {"prefetch-rows", OptionKind::Int, "N",
     "CPU config knob (one spec): software prefetches N rows ahead, 0 for "
     "none"},
    {"row-group", OptionKind::Int, "N",
     "CPU config knob (one spec): rows normalized together"},
    {"rows-hint", OptionKind::Int, "N",
     "rows per call the kernel is for: picks the tuning cache's row bucket, "
     "and without a tuned config the default heuristic's row grouping, and "
     "its streaming stores for calls far beyond the cache (given only; one "
     "CPU spec; default 4096)"},
    {"cache", OptionKind::String, "FILE",
     "the tuning cache of CPU kernels (default: $NORMJIT_CACHE_DIR, "
     "$XDG_CACHE_HOME or ~/.cache)"},
    {"no-cache", OptionKind::Flag, "",
     "ignore the tuning cache: default configs unless given"},
    {"out", OptionKind::String, "DIR", "the output directory (required)"},
    {"force", OptionKind::Flag, "",
     "replace DIR if it holds an earlier output and nothing else (or nothing)"},
};

constexpr const char *kAotSynopsis =
    "normjit aot (--name NAME --op OP --cols C [spec options] | --specs "
    "FILE.toml) [--device cpu|cuda] --out DIR [options]";
constexpr const char *kAotDescription =
    "Compiles kernels ahead of time, with the JIT's compiler, for one or more\n"
    "CPU targets, into DIR: NAME.h (one C function per kernel), one object\n"
    "per target NAME.TARGET.o, NAME.dispatch.o (picks the best target the\n"
    "CPU has at run time), libNAME.a holding those objects, and\n"
    "NAME.manifest.toml (spec, config, targets and versions; a spec file\n"
    "itself). A host links libNAME.a and normjit::runtime, no LLVM or MLIR.\n"
    "A kernel takes the tuned config from the tuning cache when there is one\n"
    "for its spec and row bucket on this machine, unless its config is given;\n"
    "missing knobs come from each target's default heuristic.\n"
    "\n"
    "With --device cuda, for one or more GPU chips: NAME.CHIP.ptx per chip\n"
    "(one PTX module holding every kernel), NAME.CHIP.cubin per chip when\n"
    "ptxas is found (unless --no-cubin), NAME.c embedding them with one\n"
    "launcher per kernel, KERNEL(device, args, stream), NAME.h and the\n"
    "manifest. A host compiles NAME.c and links normjit::runtime alone; a\n"
    "device runs the cubin of its chip, else the PTX of the newest chip not\n"
    "newer than it. GPU kernels do not read the tuning cache: a kernel takes\n"
    "the default GPU heuristic, with the knobs of --config or of its spec\n"
    "file's `config` over it.\n"
    "\n"
    "DIR appears complete or not at all.";

/// The single-spec options that --specs excludes.
const char *const kSpecOnlyOptions[] = {
    "name",          "op",         "cols",           "dtype",
    "x-dtype",       "y-dtype",    "residual-dtype", "sum-dtype",
    "gamma-dtype",   "beta-dtype", "residual",       "store-sum",
    "gamma",         "beta",       "store-mean",     "store-rstd",
    "eps",           "config",     "vector-width",   "accumulators",
    "rows-per-task", "threads",    "algorithm",      "streaming-stores",
    "fuse-residual", "prefetch-rows", "row-group",     "rows-hint"};

/// The options that only CPU kernels take.
const char *const kCpuOnlyOptions[] = {
    "vector-width",  "accumulators", "rows-per-task",
    "threads",       "algorithm",    "streaming-stores",
    "fuse-residual", "prefetch-rows", "row-group",    "rows-hint",
    "cache"};

/// The one kernel that the spec flags describe, for `device`.
llvm::Expected<AotKernel> getKernel(const ParsedOptions &options,
                                    AotDevice device) {
  for (const char *required : {"name", "op", "cols"})
    if (!options.has(required))
      return makeToolError("missing required option '--" +
                           llvm::Twine(required) +
                           "' (see 'normjit aot --help')");
  AotKernel kernel;
  kernel.name = *options.getString("name");
  if (llvm::Error error = validateName("--name", kernel.name))
    return std::move(error);
  auto spec = parseSpecOptions(options, "aot");
  if (!spec)
    return spec.takeError();
  kernel.spec = *spec;

  kernel.rowsHint = options.getInt("rows-hint", 4096);
  kernel.rowsHintGiven = options.has("rows-hint");
  if (kernel.rowsHint < 1)
    return makeToolError("--rows-hint must be at least 1, got " +
                         llvm::Twine(kernel.rowsHint));

  if (device == AotDevice::CUDA) {
    if (std::optional<std::string> text = options.getString("config")) {
      auto knobs = parseGpuConfigKnobs(*text);
      if (!knobs)
        return knobs.takeError();
      kernel.gpuKnobs = *knobs;
    }
    return kernel;
  }

  // The config knobs: --config first, single flags over it.
  if (std::optional<std::string> text = options.getString("config")) {
    auto knobs = parseCpuConfigKnobs(*text);
    if (!knobs)
      return knobs.takeError();
    kernel.knobs = *knobs;
  }
  CpuConfigKnobs &knobs = kernel.knobs;
  if (options.has("vector-width"))
    knobs.vectorWidth = options.getInt("vector-width", 0);
  if (options.has("accumulators"))
    knobs.accumulators = options.getInt("accumulators", 0);
  if (options.has("rows-per-task"))
    knobs.rowsPerTask = options.getInt("rows-per-task", 0);
  if (options.has("threads")) {
    auto threads = getThreadsOption(options);
    if (!threads)
      return threads.takeError();
    // 0 (all cores) is what a config says by leaving the knob out: not a
    // knob of its own, so a tuned config still applies (and the manifest,
    // which records the knobs as config text, reads back the same).
    if (*threads > 0)
      knobs.threads = *threads;
  }
  if (std::optional<std::string> algorithm = options.getString("algorithm")) {
    if (*algorithm != "two_pass" && *algorithm != "welford")
      return makeToolError("unknown --algorithm '" + *algorithm +
                           "'; expected two_pass or welford");
    knobs.welford = *algorithm == "welford";
  }
  if (options.has("streaming-stores"))
    knobs.streamingStores = options.getFlag("streaming-stores", false);
  if (options.has("fuse-residual"))
    knobs.fuseResidual = options.getFlag("fuse-residual", true);
  if (options.has("prefetch-rows"))
    knobs.prefetchRows = options.getInt("prefetch-rows", 0);
  // (0, the default, is the knob left out: #norm.config has no 0.)
  if (int64_t group = options.getInt("row-group", 0))
    knobs.rowGroup = group;
  return kernel;
}

/// "x86-64-v3,x86-64-v4" as a list; empty items are an error.
llvm::Expected<std::vector<std::string>> splitTargets(llvm::StringRef text) {
  llvm::SmallVector<llvm::StringRef> items;
  text.split(items, ',');
  std::vector<std::string> targets;
  for (llvm::StringRef item : items) {
    item = item.trim();
    if (item.empty())
      return makeToolError("--target '" + text + "' has an empty target name");
    targets.push_back(item.str());
  }
  return targets;
}

/// Fails on an option for CPU kernels only.
llvm::Error checkNoCpuOnlyOptions(const ParsedOptions &options) {
  for (const char *option : kCpuOnlyOptions)
    if (options.has(option))
      return makeToolError("--" + llvm::Twine(option) +
                           " is for CPU kernels; GPU kernels take "
                           "--config '#norm.config<gpu, ...>'");
  return llvm::Error::success();
}

/// Compiles and writes a GPU library.
llvm::Error
writeGpuLibrary(const ParsedOptions &options, const std::string &outDir,
                const std::string &library, std::vector<std::string> chips,
                llvm::ArrayRef<AotKernel> kernels, llvm::raw_ostream &out) {
  // Reached with --specs too: the options a spec file leaves to the
  // command line, for CPU kernels only.
  if (llvm::Error error = checkNoCpuOnlyOptions(options))
    return error;
  if (chips.empty())
    chips = {"sm_80", "sm_90"};
  AotGpuOptions gpuOptions;
  gpuOptions.cubins = !options.getFlag("no-cubin", false);
  auto built = buildAotGpuLibrary(library, chips, kernels, gpuOptions);
  if (!built)
    return built.takeError();
  if (llvm::Error error =
          writeAotOutput(outDir, built->files, options.getFlag("force", false)))
    return error;

  out << "wrote " << outDir << ": ";
  for (size_t i = 0; i < built->files.size(); ++i)
    out << (i ? ", " : "") << built->files[i].name;
  out << "\n";
  if (built->cubins)
    out << "  cubins: made with ptxas " << built->ptxasVersion << " ("
        << built->ptxas << ")\n";
  else
    out << "  cubins: none (" << built->cubinNote << "); PTX only\n";
  for (const AotKernel &kernel : kernels)
    out << "  " << kernel.name << ": " << getOpName(kernel.spec.op)
        << " cols=" << kernel.spec.cols << ", config from "
        << (kernel.getGpuConfigSource() == ConfigSource::Explicit
                ? "the given knobs"
                : "the default GPU heuristic")
        << "\n";
  return llvm::Error::success();
}

} // namespace

llvm::Error normjit::tool::aotCommand(llvm::ArrayRef<std::string> args,
                                      llvm::raw_ostream &out) {
  OptionParser parser("aot", kAotOptions);
  auto parsed = parser.parse(args);
  if (!parsed)
    return parsed.takeError();
  const ParsedOptions &options = *parsed;
  if (options.helpRequested()) {
    parser.printHelp(out, kAotSynopsis, kAotDescription);
    return llvm::Error::success();
  }
  if (!options.has("out"))
    return makeToolError(
        "missing required option '--out' (see 'normjit aot --help')");
  std::string outDir = *options.getString("out");
  if (options.has("cache") && options.has("no-cache"))
    return makeToolError("--cache and --no-cache exclude each other");

  std::optional<AotDevice> deviceOption;
  if (std::optional<std::string> text = options.getString("device")) {
    auto parsedDevice = parseAotDevice(*text, "--device");
    if (!parsedDevice)
      return parsedDevice.takeError();
    deviceOption = *parsedDevice;
  }

  // What to compile.
  AotDevice device = deviceOption.value_or(AotDevice::CPU);
  std::string library;
  // Where the library's name came from, when not from --lib or the spec
  // file's `library`: "the spec file" or "--name".
  const char *namedAfter = nullptr;
  std::vector<std::string> targets;
  std::vector<AotKernel> kernels;
  if (std::optional<std::string> specs = options.getString("specs")) {
    for (const char *option : kSpecOnlyOptions)
      if (options.has(option))
        return makeToolError("--" + llvm::Twine(option) +
                             " cannot be used with --specs: the spec file "
                             "describes the kernels");
    // The file's library name and targets, when --lib and --target replace
    // them, are not read (nor checked: a file written for another machine
    // builds for this one's targets).
    AotSpecReplaced replaced;
    replaced.library = options.has("lib");
    replaced.targets = options.has("target");
    auto file = parseAotSpecFile(*specs, deviceOption, replaced);
    if (!file)
      return file.takeError();
    device = deviceOption.value_or(file->device.value_or(AotDevice::CPU));
    kernels = std::move(file->kernels);
    targets = std::move(file->targets);
    library = file->library;
    if (library.empty()) {
      // "kernels.toml" -> "kernels"; a manifest "x.manifest.toml" -> "x".
      llvm::StringRef stem = llvm::sys::path::stem(*specs);
      stem.consume_back(".manifest");
      library = stem.str();
      namedAfter = "the spec file";
    }
  } else {
    if (device == AotDevice::CUDA)
      if (llvm::Error error = checkNoCpuOnlyOptions(options))
        return error;
    auto kernel = getKernel(options, device);
    if (!kernel)
      return kernel.takeError();
    library = kernel->name;
    namedAfter = "--name";
    kernels.push_back(std::move(*kernel));
  }
  if (std::optional<std::string> lib = options.getString("lib")) {
    library = *lib;
    namedAfter = nullptr;
  }
  if (llvm::Error error = validateLibraryName(library)) {
    if (!namedAfter)
      return error;
    std::string remedy =
        llvm::StringRef(namedAfter) == "--name"
            ? "the library is named after --name unless --lib NAME is given"
            : "the library is named after the spec file when the file has "
              "no `library = \"NAME\"`: set one there or give --lib NAME";
    return makeToolError(llvm::toString(std::move(error)) + "; " + remedy);
  }
  if (std::optional<std::string> text = options.getString("target")) {
    auto list = splitTargets(*text);
    if (!list)
      return list.takeError();
    targets = std::move(*list);
  }
  if (device == AotDevice::CUDA)
    return writeGpuLibrary(options, outDir, library, targets, kernels, out);
  if (options.has("no-cubin"))
    return makeToolError("--no-cubin is for --device cuda");
  if (targets.empty())
    targets.push_back("native");

  // The tuned configs of kernels whose config is not given.
  if (!options.has("no-cache")) {
    tuner::TuningCache cache(options.getString("cache").value_or(
        tuner::TuningCache::getDefaultPath()));
    bool needed = llvm::any_of(
        kernels, [](const AotKernel &k) { return k.knobs.empty(); });
    if (needed) {
      // aot only reads the cache: a file it cannot trust (perhaps not a
      // cache at all) is left alone.
      if (llvm::Error error = cache.load(/*setAsideUntrusted=*/false))
        return makeToolError("--cache: " + llvm::toString(std::move(error)));
      printCacheWarnings(cache);
      for (AotKernel &kernel : kernels) {
        if (!kernel.knobs.empty() ||
            normjit_kernel_spec_validate(&kernel.spec) != NORMJIT_OK)
          continue;
        if (auto entry =
                cache.lookup(tuner::makeCacheKey(kernel.spec, kernel.rowsHint)))
          kernel.tunedConfig = entry->config;
      }
      normjit_clear_error();
    }
  }

  auto files = buildAotLibrary(library, targets, kernels);
  if (!files)
    return files.takeError();
  if (llvm::Error error =
          writeAotOutput(outDir, *files, options.getFlag("force", false)))
    return error;

  out << "wrote " << outDir << ": ";
  for (size_t i = 0; i < files->size(); ++i)
    out << (i ? ", " : "") << (*files)[i].name;
  out << "\n";
  for (const AotKernel &kernel : kernels)
    out << "  " << kernel.name << ": " << getOpName(kernel.spec.op)
        << " cols=" << kernel.spec.cols << ", config from "
        << (kernel.getConfigSource() == ConfigSource::Cache ? "the tuning cache"
            : kernel.getConfigSource() == ConfigSource::Explicit
                ? "the given knobs"
                : "the default heuristic")
        << "\n";
  return llvm::Error::success();
}
