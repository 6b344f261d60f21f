//===- AOTGpuTest.cpp - GPU kernels ahead of time, without a GPU ----------===//
//
// Part of normjit. The GPU half of `normjit aot`: chips and configs, the
// files of a library (PTX per chip, cubins with ptxas, the generated C
// source and header, the manifest, which is a spec file for the same
// library), that the generated C compiles as C99 and C++17 without a
// warning, that a host built from it with the runtime alone picks, loads
// and launches the right image on the fake CUDA driver, and bad input.
//
//===----------------------------------------------------------------------===//

#include "normjit/AOT/AOTCompiler.h"
#include "normjit/JIT/GpuKernelCompiler.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <regex>
#include <string>
#include <vector>

using namespace normjit;
using namespace normjit::aot;

namespace {

std::string errorText(llvm::Error error) {
  return llvm::toString(std::move(error));
}

normjit_status_t errorStatus(llvm::Error error) {
  return errorToStatus(std::move(error));
}

bool contains(llvm::StringRef text, llvm::StringRef part) {
  return text.contains(part);
}

/// A scratch directory removed at the end of the test.
class ScratchDir {
public:
  ScratchDir() {
    llvm::SmallString<128> prefix, path;
    llvm::sys::path::system_temp_directory(/*ErasedOnReboot=*/true, prefix);
    llvm::sys::path::append(prefix, "normjit-aot-gpu-test");
    EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory(prefix, path));
    dir = path.str().str();
  }
  ~ScratchDir() { llvm::sys::fs::remove_directories(dir); }
  std::string path(llvm::StringRef name) const {
    return dir + "/" + name.str();
  }
  void write(llvm::StringRef name, llvm::StringRef contents) const {
    std::error_code ec;
    llvm::raw_fd_ostream os(path(name), ec);
    ASSERT_FALSE(ec) << ec.message();
    os << contents;
  }
  void writeAll(const std::vector<AotFile> &files) const {
    for (const AotFile &file : files)
      write(file.name, file.contents);
  }
  std::string dir;
};

/// Sets an environment variable (or unsets it for nullptr) for one scope.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (const char *old = std::getenv(name))
      saved = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (saved)
      setenv(name, saved->c_str(), 1);
    else
      unsetenv(name);
  }

private:
  const char *name;
  std::optional<std::string> saved;
};

/// Runs a program; returns its exit code and puts its output in `output`.
int run(llvm::ArrayRef<std::string> command, std::string &output,
        std::optional<llvm::ArrayRef<llvm::StringRef>> env = std::nullopt) {
  ScratchDir logDir;
  std::string log = logDir.path("log");
  std::optional<llvm::StringRef> redirects[] = {
      llvm::StringRef(""), llvm::StringRef(log), llvm::StringRef(log)};
  std::vector<llvm::StringRef> args(command.begin(), command.end());
  std::string error;
  int rc = llvm::sys::ExecuteAndWait(command.front(), args, env, redirects, 0,
                                     0, &error);
  auto buffer = llvm::MemoryBuffer::getFile(log);
  output = (buffer ? (*buffer)->getBuffer().str() : std::string()) + error;
  return rc;
}

normjit_kernel_spec_t makeSpec(normjit_op_t op, int64_t cols,
                               normjit_dtype_t dtype) {
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
  spec.x_dtype = spec.y_dtype = spec.gamma_dtype = spec.beta_dtype = dtype;
  spec.residual_dtype = spec.sum_dtype = dtype;
  spec.has_gamma = 1;
  spec.has_beta = op == NORMJIT_LAYER_NORM;
  spec.epsilon = op == NORMJIT_LAYER_NORM ? 1e-5f : 1e-6f;
  return spec;
}

AotKernel makeKernel(const std::string &name,
                     const normjit_kernel_spec_t &spec) {
  AotKernel kernel;
  kernel.name = name;
  kernel.spec = spec;
  return kernel;
}

/// A LayerNorm in bf16 and a pre-norm RMSNorm in f16 with knobs.
std::vector<AotKernel> smallKernels() {
  normjit_kernel_spec_t rms = makeSpec(NORMJIT_RMS_NORM, 1000, NORMJIT_F16);
  rms.has_residual = rms.store_sum = rms.store_rstd = 1;
  AotKernel withKnobs = makeKernel("rms_f16", rms);
  withKnobs.gpuKnobs.threadsPerRow = 32;
  withKnobs.gpuKnobs.rowsPerBlock = 4;
  return {
      makeKernel("ln_bf16", makeSpec(NORMJIT_LAYER_NORM, 1024, NORMJIT_BF16)),
      withKnobs};
}

AotGpuOptions noCubins() {
  AotGpuOptions options;
  options.cubins = false;
  return options;
}

const AotFile *findFile(const std::vector<AotFile> &files,
                        llvm::StringRef name) {
  for (const AotFile &file : files)
    if (file.name == name)
      return &file;
  return nullptr;
}

std::vector<std::string> fileNames(const std::vector<AotFile> &files) {
  std::vector<std::string> names;
  for (const AotFile &file : files)
    names.push_back(file.name);
  return names;
}

//===----------------------------------------------------------------------===//
// Chips and configs
//===----------------------------------------------------------------------===//

TEST(AotGpuChipTest, KnownChipsOfSm80AndNewer) {
  for (auto [name, cc] : {std::pair<const char *, int>{"sm_80", 80},
                          {"sm_86", 86},
                          {"sm_89", 89},
                          {"sm_90", 90}}) {
    auto chip = resolveGpuChip(name);
    ASSERT_TRUE(static_cast<bool>(chip)) << errorText(chip.takeError());
    EXPECT_EQ(chip->name, name);
    EXPECT_EQ(chip->cc(), cc);
  }
  auto old = resolveGpuChip("sm_70");
  ASSERT_FALSE(static_cast<bool>(old));
  EXPECT_EQ(errorText(old.takeError()),
            "GPU chip 'sm_70': normjit generates code for sm_80 and newer");
  for (const char *name : {"sm_xx", "sm_85", "sm_", "80", "compute_80", ""}) {
    auto chip = resolveGpuChip(name);
    ASSERT_FALSE(static_cast<bool>(chip)) << name;
    std::string message = errorText(chip.takeError());
    EXPECT_TRUE(contains(message, "unknown GPU chip '" + std::string(name) +
                                      "'; expected one of sm_80, sm_86"))
        << message;
    EXPECT_FALSE(contains(message, "sm_75")) << message;
  }
  auto specific = resolveGpuChip("sm_90a");
  ASSERT_FALSE(static_cast<bool>(specific));
  EXPECT_EQ(errorText(specific.takeError()),
            "GPU chip 'sm_90a': arch-specific chips are not supported; use "
            "sm_90 (its PTX also runs on newer chips)");
}

TEST(AotGpuConfigTest, KnobsParseAndPrint) {
  auto knobs = parseGpuConfigKnobs(
      "#norm.config<gpu, threads_per_row = 64, row_storage = shared, "
      "persistent = true>");
  ASSERT_TRUE(static_cast<bool>(knobs)) << errorText(knobs.takeError());
  EXPECT_EQ(knobs->threadsPerRow, 64);
  EXPECT_EQ(knobs->rowStorage, GpuRowStorage::Shared);
  EXPECT_EQ(knobs->persistent, true);
  EXPECT_FALSE(knobs->rowsPerBlock);
  EXPECT_EQ(knobs->str(), "#norm.config<gpu, threads_per_row = 64, "
                          "row_storage = shared, persistent = true>");
  auto again = parseGpuConfigKnobs(knobs->str());
  ASSERT_TRUE(static_cast<bool>(again));
  EXPECT_EQ(again->str(), knobs->str());
  GpuConfig applied = knobs->applyTo(GpuConfig());
  EXPECT_EQ(applied.threadsPerRow, 64);
  EXPECT_EQ(applied.rowsPerBlock, GpuConfig().rowsPerBlock);
  EXPECT_TRUE(GpuConfigKnobs().empty());
  EXPECT_EQ(GpuConfigKnobs().str(), "#norm.config<gpu>");

  auto cpu = parseGpuConfigKnobs("#norm.config<cpu, vector_width = 8>");
  ASSERT_FALSE(static_cast<bool>(cpu));
  EXPECT_EQ(errorText(cpu.takeError()),
            "invalid config '#norm.config<cpu, vector_width = 8>': it is for "
            "the cpu backend; --device cuda compiles GPU kernels, which take "
            "#norm.config<gpu, ...>");
  auto unfused =
      parseGpuConfigKnobs("#norm.config<gpu, fuse_residual = false>");
  ASSERT_FALSE(static_cast<bool>(unfused));
  EXPECT_TRUE(contains(errorText(unfused.takeError()),
                       "the GPU backend always fuses the residual add"));
  auto garbage = parseGpuConfigKnobs("#norm.config<gpu, warp = 3>");
  ASSERT_FALSE(static_cast<bool>(garbage));
  EXPECT_TRUE(contains(errorText(garbage.takeError()),
                       "invalid config '#norm.config<gpu, warp = 3>'"));
  // And the CPU side names the way to GPU kernels.
  auto gpuForCpu =
      parseCpuConfigKnobs("#norm.config<gpu, threads_per_row = 32>");
  ASSERT_FALSE(static_cast<bool>(gpuForCpu));
  EXPECT_EQ(errorText(gpuForCpu.takeError()),
            "invalid config '#norm.config<gpu, threads_per_row = 32>': it is "
            "for the gpu backend; GPU kernels are compiled with --device cuda");
}

//===----------------------------------------------------------------------===//
// The files of a library
//===----------------------------------------------------------------------===//

TEST(AotGpuLibraryTest, HasEveryFile) {
  auto built =
      buildAotGpuLibrary("gk", {"sm_90", "sm_80"}, smallKernels(), noCubins());
  ASSERT_TRUE(static_cast<bool>(built)) << errorText(built.takeError());
  EXPECT_FALSE(built->cubins);
  EXPECT_EQ(built->cubinNote, "--no-cubin");
  // Chips in the order of their compute capability.
  EXPECT_EQ(fileNames(built->files),
            (std::vector<std::string>{"gk.h", "gk.c", "gk.sm_80.ptx",
                                      "gk.sm_90.ptx", "gk.manifest.toml"}));

  for (const char *chip : {"sm_80", "sm_90"}) {
    const AotFile *ptx =
        findFile(built->files, "gk." + std::string(chip) + ".ptx");
    ASSERT_NE(ptx, nullptr);
    EXPECT_TRUE(contains(ptx->contents, ".target " + std::string(chip)));
    for (const char *entry : {".entry ln_bf16(", ".entry ln_bf16_unaligned(",
                              ".entry rms_f16(", ".entry rms_f16_unaligned("})
      EXPECT_TRUE(contains(ptx->contents, entry)) << chip << " " << entry;
    EXPECT_EQ(ptx->contents.find('\0'), std::string::npos);
  }

  const AotFile *header = findFile(built->files, "gk.h");
  ASSERT_NE(header, nullptr);
  for (const char *line :
       {"#ifndef NORMJIT_AOT_gk_H", "#include <normjit/runtime/kernel.h>",
        "normjit_status_t ln_bf16(int device, const normjit_run_args_t *args,",
        "const normjit_kernel_spec_t *ln_bf16_spec(void);",
        "const char *ln_bf16_image(int device);",
        "normjit_status_t rms_f16(int device, const normjit_run_args_t *args,",
        "/* rms_f16: rms_norm, cols 1000, x f16, y f16, residual f16, sum "
        "f16,"})
    EXPECT_TRUE(contains(header->contents, line)) << line;

  const AotFile *source = findFile(built->files, "gk.c");
  ASSERT_NE(source, nullptr);
  for (const char *line :
       {"#include \"gk.h\"", "#include <normjit/runtime/aot_cuda.h>",
        "static const unsigned char normjit_gen_image_0[] = {",
        "    {\"sm_80.ptx\", 80, 0, normjit_gen_image_0, sizeof "
        "normjit_gen_image_0},",
        "    {\"sm_90.ptx\", 90, 0, normjit_gen_image_1, sizeof "
        "normjit_gen_image_1},",
        "    {\"rms_f16\", \"rms_f16_unaligned\", 32, 4, 8, 0},",
        "  return normjit_aot_cuda_run(&normjit_gen_kernel_ln_bf16, device, "
        "args, stream);"})
    EXPECT_TRUE(contains(source->contents, line)) << line;

  const AotFile *manifest = findFile(built->files, "gk.manifest.toml");
  ASSERT_NE(manifest, nullptr);
  for (const char *line :
       {"# normjit aot manifest", "device = \"cuda\"\n",
        "targets = [\"sm_80\", \"sm_90\"]\n", "cubins = false\n",
        "# No cubins: --no-cubin.", "ptx = \"gk.sm_90.ptx\"\n",
        "ptx_isa = \"7.8\"\n", "ptx_isa = \"7.0\"\n",
        "config = \"#norm.config<gpu, threads_per_row = 32, rows_per_block = "
        "4>\"\nconfig_source = \"explicit\"\n",
        "config_source = \"default\"\n",
        "entry_unaligned = \"rms_f16_unaligned\""})
    EXPECT_TRUE(contains(manifest->contents, line)) << line;
  EXPECT_FALSE(contains(manifest->contents, "cubin = "));
}

TEST(AotGpuLibraryTest, ManifestIsASpecFileForTheSameLibrary) {
  auto built =
      buildAotGpuLibrary("gk", {"sm_80", "sm_90"}, smallKernels(), noCubins());
  ASSERT_TRUE(static_cast<bool>(built)) << errorText(built.takeError());
  const AotFile *manifest = findFile(built->files, "gk.manifest.toml");
  ASSERT_NE(manifest, nullptr);
  auto file = parseAotSpecText(manifest->contents, "gk.manifest.toml");
  ASSERT_TRUE(static_cast<bool>(file)) << errorText(file.takeError());
  EXPECT_EQ(file->library, "gk");
  EXPECT_EQ(file->device, AotDevice::CUDA);
  EXPECT_EQ(file->targets, (std::vector<std::string>{"sm_80", "sm_90"}));
  ASSERT_EQ(file->kernels.size(), 2u);
  EXPECT_TRUE(file->kernels[0].gpuKnobs.empty());
  EXPECT_EQ(file->kernels[1].gpuKnobs.threadsPerRow, 32);
  auto again = buildAotGpuLibrary(file->library, file->targets, file->kernels,
                                  noCubins());
  ASSERT_TRUE(static_cast<bool>(again)) << errorText(again.takeError());
  ASSERT_EQ(fileNames(again->files), fileNames(built->files));
  for (size_t i = 0; i < built->files.size(); ++i)
    EXPECT_EQ(again->files[i].contents, built->files[i].contents)
        << built->files[i].name;
}

/// The PTX of entry `name` in `module` (from `.entry name(` to the closing
/// brace), with `name` written `KERNEL` and the function's number taken out
/// of its block labels ($L__BB3_7: $L__BB_7); "" when there is none.
std::string entryText(llvm::StringRef module, llvm::StringRef name) {
  size_t begin = module.find((".entry " + name + "(").str());
  if (begin == llvm::StringRef::npos)
    return "";
  size_t end = module.find("\n}\n", begin);
  if (end == llvm::StringRef::npos)
    return "";
  std::string text = module.slice(begin, end + 3).str();
  std::string result;
  for (size_t at = 0;;) {
    size_t hit = text.find(name.str(), at);
    result += text.substr(at, hit - at);
    if (hit == std::string::npos)
      break;
    result += "KERNEL";
    at = hit + name.size();
  }
  static const std::regex label("\\$L__BB[0-9]+_");
  return std::regex_replace(result, label, "$$L__BB_");
}

// The GPU half of "AOT and JIT kernels are bit-identical for the same config
// and target": every op variant and dtype combination, in one library,
// compiles to the same PTX, entry for entry (and its scalar twin), as the
// JIT compiles for the same config and chip (GpuKernel.cpp: one request
// named normjit_kernel; the device's SM count is not used by the code
// generator). The same PTX is the same machine code under one ptxas or
// driver: outputs are then bit-identical without a GPU to show it.
TEST(AotGpuJitTest, SamePtxAsTheJitForEveryVariantAndDtype) {
  const normjit_dtype_t dtypes[] = {NORMJIT_F32, NORMJIT_F16, NORMJIT_BF16};
  std::vector<AotKernel> kernels;
  int index = 0;
  for (normjit_op_t op : {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM})
    for (normjit_dtype_t x : dtypes)
      for (normjit_dtype_t y : dtypes)
        for (int variant = 0; variant < 2; ++variant) {
          int triple = index / 2; // (op, x, y): two variants each
          // Column counts with and without 128-bit vectors, short and long;
          // each variant meets each count, with and without a residual.
          const int64_t cols[] = {4096, 1000, 768, 97};
          normjit_kernel_spec_t spec =
              makeSpec(op, cols[(triple + 2 * variant) % 4], x);
          spec.y_dtype = y;
          spec.gamma_dtype = spec.beta_dtype = y;
          bool residual = (triple + variant) % 2 == 0;
          spec.has_residual = residual;
          spec.store_sum = residual && variant == 0;
          spec.sum_dtype = variant == 0 ? y : x;
          spec.has_gamma = variant == 0 || op == NORMJIT_RMS_NORM;
          spec.has_beta = op == NORMJIT_LAYER_NORM && variant == 1;
          spec.store_mean = op == NORMJIT_LAYER_NORM && variant == 0;
          spec.store_rstd = variant == 1;
          kernels.push_back(makeKernel("k" + std::to_string(index++), spec));
        }
  // Knobs over the heuristic: each row storage, a persistent grid, warps
  // sharing a block.
  const char *knobs[] = {
      "#norm.config<gpu, threads_per_row = 64, row_storage = shared>",
      "#norm.config<gpu, threads_per_row = 128, elements_per_thread = 8, "
      "row_storage = global>",
      "#norm.config<gpu, threads_per_row = 32, rows_per_block = 4, "
      "persistent = true>"};
  for (const char *text : knobs) {
    auto parsed = parseGpuConfigKnobs(text);
    ASSERT_TRUE(static_cast<bool>(parsed)) << errorText(parsed.takeError());
    normjit_kernel_spec_t spec =
        makeSpec(index % 2 ? NORMJIT_RMS_NORM : NORMJIT_LAYER_NORM, 2048,
                 NORMJIT_BF16);
    spec.has_residual = spec.store_sum = 1;
    AotKernel kernel = makeKernel("k" + std::to_string(index++), spec);
    kernel.gpuKnobs = *parsed;
    kernels.push_back(kernel);
  }

  auto built =
      buildAotGpuLibrary("same", {"sm_80", "sm_90"}, kernels, noCubins());
  ASSERT_TRUE(static_cast<bool>(built)) << errorText(built.takeError());
  for (const char *chip : {"sm_80", "sm_90"}) {
    const AotFile *ptx =
        findFile(built->files, "same." + std::string(chip) + ".ptx");
    ASSERT_NE(ptx, nullptr);
    auto target = parseGpuChip(chip);
    ASSERT_TRUE(static_cast<bool>(target)) << errorText(target.takeError());
    for (const AotKernel &kernel : kernels) {
      GpuConfig config = kernel.getGpuConfig(*target);
      // The config the JIT would take: its default, or the same knobs
      // given as a --config / C API config text.
      if (kernel.gpuKnobs.empty()) {
        EXPECT_EQ(config, getDefaultGpuConfig(kernel.spec, *target));
      } else {
        auto jitConfig =
            parseGpuConfigFor(kernel.gpuKnobs.str(), kernel.spec, *target);
        ASSERT_TRUE(static_cast<bool>(jitConfig))
            << errorText(jitConfig.takeError());
        EXPECT_EQ(config, *jitConfig) << kernel.gpuKnobs.str();
      }
      auto jit = compileGpuPtx(
          GpuKernelRequest{kernel.spec, config, "normjit_kernel"}, *target);
      ASSERT_TRUE(static_cast<bool>(jit)) << errorText(jit.takeError());
      for (bool unaligned : {false, true}) {
        std::string aotName = kernel.name, jitName = "normjit_kernel";
        if (unaligned) {
          aotName = getUnalignedEntryName(aotName, config);
          jitName = getUnalignedEntryName(jitName, config);
        }
        std::string aotText = entryText(ptx->contents, aotName);
        ASSERT_NE(aotText, "") << chip << " " << aotName;
        EXPECT_EQ(aotText, entryText(jit->ptx, jitName))
            << chip << " " << aotName << " " << config.str();
      }
    }
  }
}

TEST(AotGpuLibraryTest, CubinsWithPtxas) {
  auto ptxas = findPtxas();
  ASSERT_TRUE(static_cast<bool>(ptxas)) << errorText(ptxas.takeError());
  if (ptxas->empty())
    GTEST_SKIP() << "no ptxas (set NORMJIT_PTXAS or install the CUDA toolkit "
                    "at /usr/local/cuda)";
  auto built = buildAotGpuLibrary("gk", {"sm_80", "sm_90"}, smallKernels());
  ASSERT_TRUE(static_cast<bool>(built)) << errorText(built.takeError());
  EXPECT_TRUE(built->cubins);
  EXPECT_EQ(built->ptxas, *ptxas);
  EXPECT_FALSE(built->ptxasVersion.empty());
  EXPECT_EQ(fileNames(built->files),
            (std::vector<std::string>{"gk.h", "gk.c", "gk.sm_80.ptx",
                                      "gk.sm_80.cubin", "gk.sm_90.ptx",
                                      "gk.sm_90.cubin", "gk.manifest.toml"}));
  for (const char *name : {"gk.sm_80.cubin", "gk.sm_90.cubin"}) {
    const AotFile *cubin = findFile(built->files, name);
    ASSERT_NE(cubin, nullptr);
    EXPECT_EQ(cubin->contents.substr(0, 4), "\x7f"
                                            "ELF")
        << name;
  }
  const AotFile *source = findFile(built->files, "gk.c");
  EXPECT_TRUE(contains(source->contents,
                       "{\"sm_90.cubin\", 90, 1, normjit_gen_image_3, "));
  const AotFile *manifest = findFile(built->files, "gk.manifest.toml");
  EXPECT_TRUE(contains(manifest->contents, "cubins = true\nptxas_version = \"" +
                                               built->ptxasVersion + "\"\n"));
  EXPECT_TRUE(contains(manifest->contents, "cubin = \"gk.sm_90.cubin\"\n"));
}

//===----------------------------------------------------------------------===//
// The generated C: compiled, linked with the runtime alone, run
//===----------------------------------------------------------------------===//

/// Kernels of many shapes: both ops, every dtype, every optional operand.
std::vector<AotKernel> manyKernels() {
  std::vector<AotKernel> kernels;
  const normjit_dtype_t dtypes[] = {NORMJIT_F32, NORMJIT_F16, NORMJIT_BF16};
  int index = 0;
  for (normjit_op_t op : {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM})
    for (normjit_dtype_t dtype : dtypes) {
      normjit_kernel_spec_t spec = makeSpec(op, 96 + 32 * index, dtype);
      spec.y_dtype = dtypes[(index + 1) % 3];
      if (index % 2) {
        spec.has_residual = spec.store_sum = 1;
        spec.store_rstd = 1;
        spec.store_mean = op == NORMJIT_LAYER_NORM;
      } else {
        spec.has_gamma = 0;
        spec.has_beta = 0;
      }
      kernels.push_back(makeKernel("k" + std::to_string(index++), spec));
    }
  kernels[1].gpuKnobs.vectorWidth = 1; // no scalar twin: a NULL entry
  kernels[1].gpuKnobs.elementsPerThread = 4;
  kernels[1].gpuKnobs.rowStorage = GpuRowStorage::Global;
  return kernels;
}

TEST(AotGpuGeneratedCodeTest, CompilesAsC99AndCxx17WithoutWarnings) {
  auto built =
      buildAotGpuLibrary("many", {"sm_80", "sm_90"}, manyKernels(), noCubins());
  ASSERT_TRUE(static_cast<bool>(built)) << errorText(built.takeError());
  ScratchDir dir;
  dir.writeAll(built->files);
  std::string include = "-I" NORMJIT_RUNTIME_INCLUDE_DIR;
  std::string output;
  int rc = run({NORMJIT_C_COMPILER, "-std=c99", "-Wall", "-Wextra", "-pedantic",
                "-Werror", include, "-c", dir.path("many.c"), "-o",
                dir.path("many.o")},
               output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(output, "");
  rc = run({NORMJIT_CXX_COMPILER, "-x", "c++", "-std=c++17", "-Wall", "-Wextra",
            "-pedantic", "-Werror", include, "-c", dir.path("many.c"), "-o",
            dir.path("many.cpp.o")},
           output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(output, "");
  // The header on its own, in both languages.
  dir.write("header.c", "#include \"many.h\"\nint main(void) { return "
                        "k0_spec() == 0; }\n");
  for (const char *language : {"c", "c++"}) {
    rc = run({language == std::string("c") ? NORMJIT_C_COMPILER
                                           : NORMJIT_CXX_COMPILER,
              "-x", language,
              language == std::string("c") ? "-std=c99" : "-std=c++17", "-Wall",
              "-Wextra", "-pedantic", "-Werror", include, "-I" + dir.dir,
              "-fsyntax-only", dir.path("header.c")},
             output);
    EXPECT_EQ(rc, 0) << language << ": " << output;
  }
}

/// A host of two generated libraries: "both" (sm_80 and sm_90) and "only90"
/// (sm_90), on the fake driver's devices 0 (sm_90) and 1 (sm_80).
constexpr const char *kFakeHost = R"(#include "both.h"
#include "only90.h"
#include <normjit/runtime/cuda.h>
#include <stdio.h>

static const char *show(const char *image) { return image ? image : "NULL"; }

int main(void) {
  normjit_run_args_t args = {0};
  void *x = NULL, *gamma = NULL, *y = NULL;
  const char *image;
  normjit_status_t status;
  printf("both on 0: %s\n", show(both_ln_image(0)));
  printf("both on 1: %s\n", show(both_ln_image(1)));
  image = only90_rms_image(1);
  printf("only90 on 1: %s: %s\n", show(image), normjit_last_error());
  printf("only90 on 0: %s\n", show(only90_rms_image(0)));
  if (normjit_cuda_malloc(1, 4 * 64 * 256, &x) ||
      normjit_cuda_malloc(1, 4 * 256, &gamma) ||
      normjit_cuda_malloc(1, 4 * 64 * 256, &y))
    return 2;
  args.rows = 64;
  args.x = x;
  args.gamma = gamma;
  args.y = y;
  status = only90_rms(1, &args, NULL);
  printf("only90_rms on 1: %s\n", normjit_status_name(status));
  status = both_rms(1, &args, NULL);
  printf("both_rms on 1: %s\n", normjit_status_name(status));
  printf("spec: cols %d\n", (int)both_rms_spec()->cols);
  return 0;
}
)";

TEST(AotGpuGeneratedCodeTest, HostRunsOnTheFakeDriverWithTheRuntimeAlone) {
  normjit_kernel_spec_t rms = makeSpec(NORMJIT_RMS_NORM, 256, NORMJIT_F32);
  normjit_kernel_spec_t ln = makeSpec(NORMJIT_LAYER_NORM, 512, NORMJIT_BF16);
  auto both = buildAotGpuLibrary(
      "both", {"sm_80", "sm_90"},
      {makeKernel("both_ln", ln), makeKernel("both_rms", rms)}, noCubins());
  ASSERT_TRUE(static_cast<bool>(both)) << errorText(both.takeError());
  auto only90 = buildAotGpuLibrary("only90", {"sm_90"},
                                   {makeKernel("only90_rms", rms)}, noCubins());
  ASSERT_TRUE(static_cast<bool>(only90)) << errorText(only90.takeError());
  ScratchDir dir;
  dir.writeAll(both->files);
  dir.writeAll(only90->files);
  dir.write("host.c", kFakeHost);
  std::string include = "-I" NORMJIT_RUNTIME_INCLUDE_DIR, output;
  for (const char *name : {"host", "both", "only90"})
    ASSERT_EQ(
        run({NORMJIT_C_COMPILER, "-std=c99", "-Wall", "-Wextra", "-pedantic",
             "-Werror", include, "-c", dir.path(std::string(name) + ".c"), "-o",
             dir.path(std::string(name) + ".o")},
            output),
        0)
        << name << ": " << output;
  ASSERT_EQ(run({NORMJIT_CXX_COMPILER, dir.path("host.o"), dir.path("both.o"),
                 dir.path("only90.o"), NORMJIT_RUNTIME_ARCHIVE, "-lpthread",
                 "-ldl", "-o", dir.path("host")},
                output),
            0)
      << output;

  std::string driver = "NORMJIT_CUDA_DRIVER=" NORMJIT_FAKE_CUDA_DRIVER;
  llvm::StringRef env[] = {driver};
  int rc = run({dir.path("host")}, output, env);
  ASSERT_EQ(rc, 0) << output;
  EXPECT_EQ(output,
            "both on 0: sm_90.ptx\n"
            "both on 1: sm_80.ptx\n"
            "only90 on 1: NULL: AOT GPU kernel 'only90_rms' has no image for "
            "CUDA device 1 (normjit Fake GPU Lite, sm_80): it has sm_90.ptx "
            "(a cubin runs on its chip only, PTX on its chip and newer ones)\n"
            "only90 on 0: sm_90.ptx\n"
            "only90_rms on 1: unsupported\n"
            "both_rms on 1: ok\n"
            "spec: cols 256\n");

  // Without a driver, every launcher says so.
  llvm::StringRef noDriver[] = {"NORMJIT_CUDA_DRIVER=/nonexistent/libcuda.so"};
  rc = run({dir.path("host")}, output, noDriver);
  EXPECT_EQ(rc, 2) << output;
  EXPECT_TRUE(contains(output, "both on 0: NULL\n")) << output;
}

//===----------------------------------------------------------------------===//
// Bad input
//===----------------------------------------------------------------------===//

TEST(AotGpuBadInputTest, ChipsAndNames) {
  std::vector<AotKernel> kernels = smallKernels();
  struct {
    std::vector<std::string> chips;
    const char *message;
  } cases[] = {
      {{}, "no GPU chip given"},
      {{"sm_80", "sm_80"}, "GPU chip 'sm_80' is given more than once"},
      {{"sm_80", "sm_70"},
       "GPU chip 'sm_70': normjit generates code for sm_80 and newer"},
      {{"x86-64-v3"}, "unknown GPU chip 'x86-64-v3'; expected one of sm_80"},
  };
  for (const auto &c : cases) {
    auto built = buildAotGpuLibrary("gk", c.chips, kernels, noCubins());
    ASSERT_FALSE(static_cast<bool>(built)) << c.message;
    std::string message = errorText(built.takeError());
    EXPECT_TRUE(contains(message, c.message)) << message;
  }
  auto noKernels = buildAotGpuLibrary("gk", {"sm_80"}, {}, noCubins());
  ASSERT_FALSE(static_cast<bool>(noKernels));
  EXPECT_EQ(errorText(noKernels.takeError()), "no kernel to compile");
  auto badLibrary = buildAotGpuLibrary("int", {"sm_80"}, kernels, noCubins());
  ASSERT_FALSE(static_cast<bool>(badLibrary));
  EXPECT_EQ(errorText(badLibrary.takeError()),
            "library name 'int' is a C or C++ keyword");

  // "a_unaligned" is the scalar twin of "a".
  normjit_kernel_spec_t spec = makeSpec(NORMJIT_RMS_NORM, 256, NORMJIT_F32);
  auto clash = buildAotGpuLibrary(
      "gk", {"sm_80"}, {makeKernel("a", spec), makeKernel("a_unaligned", spec)},
      noCubins());
  ASSERT_FALSE(static_cast<bool>(clash));
  EXPECT_EQ(errorText(clash.takeError()),
            "kernel 'a_unaligned': its GPU entry 'a_unaligned' is also an "
            "entry of kernel 'a' (the unaligned twin of a kernel is "
            "<name>_unaligned)");
  auto twice = buildAotGpuLibrary(
      "gk", {"sm_80"}, {makeKernel("a", spec), makeKernel("a_spec", spec)},
      noCubins());
  ASSERT_FALSE(static_cast<bool>(twice));
  EXPECT_EQ(errorText(twice.takeError()),
            "kernel name 'a_spec': the C function 'a_spec' is defined twice in "
            "library 'gk'");
}

TEST(AotGpuBadInputTest, KernelsTheBackendCannotCompile) {
  normjit_kernel_spec_t spec = makeSpec(NORMJIT_LAYER_NORM, 1024, NORMJIT_F32);
  AotKernel cpuKnobs = makeKernel("k", spec);
  cpuKnobs.knobs.accumulators = 2;
  auto cpu = buildAotGpuLibrary("gk", {"sm_80"}, {cpuKnobs}, noCubins());
  ASSERT_FALSE(static_cast<bool>(cpu));
  EXPECT_EQ(errorText(cpu.takeError()),
            "kernel 'k': its config #norm.config<cpu, accumulators = 2> is for "
            "the cpu backend; GPU kernels take #norm.config<gpu, ...>");

  AotKernel bigBlock = makeKernel("k", spec);
  bigBlock.gpuKnobs.threadsPerRow = 256;
  bigBlock.gpuKnobs.rowsPerBlock = 8;
  auto block = buildAotGpuLibrary("gk", {"sm_80"}, {bigBlock}, noCubins());
  ASSERT_FALSE(static_cast<bool>(block));
  EXPECT_EQ(errorStatus(block.takeError()), NORMJIT_INVALID_ARGUMENT);

  AotKernel shared =
      makeKernel("k", makeSpec(NORMJIT_LAYER_NORM, 65536, NORMJIT_F32));
  shared.gpuKnobs.rowStorage = GpuRowStorage::Shared;
  auto tooBig = buildAotGpuLibrary("gk", {"sm_80"}, {shared}, noCubins());
  ASSERT_FALSE(static_cast<bool>(tooBig));
  std::string message = errorText(tooBig.takeError());
  EXPECT_TRUE(llvm::StringRef(message).starts_with("kernel 'k': ")) << message;

  normjit_kernel_spec_t invalidSpec = spec;
  invalidSpec.store_sum = 1; // without a residual
  auto specError = buildAotGpuLibrary(
      "gk", {"sm_80"}, {makeKernel("k", invalidSpec)}, noCubins());
  ASSERT_FALSE(static_cast<bool>(specError));
  EXPECT_EQ(errorText(specError.takeError()),
            "kernel 'k': store_sum needs a residual: without one the sum would "
            "only copy x");

  // And the CPU library refuses GPU knobs.
  AotKernel gpuKnobs = makeKernel("k", spec);
  gpuKnobs.gpuKnobs.threadsPerRow = 64;
  auto cpuLibrary = buildAotLibrary("lib", {"native"}, {gpuKnobs});
  ASSERT_FALSE(static_cast<bool>(cpuLibrary));
  EXPECT_EQ(errorText(cpuLibrary.takeError()),
            "kernel 'k': its config #norm.config<gpu, threads_per_row = 64> is "
            "for the gpu backend; GPU kernels are compiled with --device cuda");
}

TEST(AotGpuBadInputTest, Ptxas) {
  std::vector<AotKernel> kernels = smallKernels();
  {
    ScopedEnv env("NORMJIT_PTXAS", "/nonexistent/ptxas");
    auto found = findPtxas();
    ASSERT_FALSE(static_cast<bool>(found));
    EXPECT_EQ(errorText(found.takeError()),
              "NORMJIT_PTXAS '/nonexistent/ptxas' is not an executable file");
    auto built = buildAotGpuLibrary("gk", {"sm_80"}, kernels);
    ASSERT_FALSE(static_cast<bool>(built));
    // --no-cubin does not look for one.
    auto ptxOnly = buildAotGpuLibrary("gk", {"sm_80"}, kernels, noCubins());
    EXPECT_TRUE(static_cast<bool>(ptxOnly)) << errorText(ptxOnly.takeError());
  }
  // A ptxas that fails: its message and a way out.
  ScratchDir dir;
  dir.write("ptxas", "#!/bin/sh\n"
                     "if [ \"$1\" = --version ]; then echo 'Cuda compilation "
                     "tools, release 1.0, V1.0.0'; exit 0; fi\n"
                     "echo \"ptxas fatal   : Unknown chip ${1#-arch=}\" >&2\n"
                     "exit 1\n");
  ASSERT_FALSE(llvm::sys::fs::setPermissions(
      dir.path("ptxas"), llvm::sys::fs::all_exe | llvm::sys::fs::owner_read |
                             llvm::sys::fs::owner_write));
  AotGpuOptions options;
  options.ptxas = dir.path("ptxas");
  auto built = buildAotGpuLibrary("gk", {"sm_80"}, kernels, options);
  ASSERT_FALSE(static_cast<bool>(built));
  EXPECT_EQ(errorText(built.takeError()),
            "ptxas '" + dir.path("ptxas") +
                "' cannot assemble the PTX for sm_80: ptxas fatal   : Unknown "
                "chip sm_80 (pass --no-cubin for PTX only)");
}

TEST(AotGpuSpecFileTest, DeviceAndConfigs) {
  const char *text = R"(library = "g"
device = "cuda"
targets = ["sm_86"]

[[kernel]]
name = "k"
op = "rms_norm"
cols = 128
config = "#norm.config<gpu, rows_per_block = 2>"
)";
  auto file = parseAotSpecText(text, "g.toml");
  ASSERT_TRUE(static_cast<bool>(file)) << errorText(file.takeError());
  EXPECT_EQ(file->device, AotDevice::CUDA);
  EXPECT_EQ(file->targets, std::vector<std::string>{"sm_86"});
  ASSERT_EQ(file->kernels.size(), 1u);
  EXPECT_EQ(file->kernels[0].gpuKnobs.rowsPerBlock, 2);
  EXPECT_TRUE(file->kernels[0].knobs.empty());

  // Compiled for the CPU instead: its targets are not used, and its GPU
  // config is an error on its line.
  auto forCpu = parseAotSpecText(text, "g.toml", AotDevice::CPU);
  ASSERT_FALSE(static_cast<bool>(forCpu));
  EXPECT_EQ(errorText(forCpu.takeError()),
            "malformed spec file g.toml:9: kernel 'k': invalid config "
            "'#norm.config<gpu, rows_per_block = 2>': it is for the gpu "
            "backend; GPU kernels are compiled with --device cuda");
  const char *cpuFile = R"(targets = ["x86-64-v3"]
[[kernel]]
name = "k"
op = "rms_norm"
cols = 128
)";
  auto forGpu = parseAotSpecText(cpuFile, "c.toml", AotDevice::CUDA);
  ASSERT_TRUE(static_cast<bool>(forGpu)) << errorText(forGpu.takeError());
  EXPECT_TRUE(forGpu->targets.empty());
  EXPECT_FALSE(forGpu->device);

  auto badDevice =
      parseAotSpecText("device = \"tpu\"\n[[kernel]]\nname = \"k\"\n"
                       "op = \"rms_norm\"\ncols = 8\n",
                       "t.toml");
  ASSERT_FALSE(static_cast<bool>(badDevice));
  EXPECT_EQ(errorText(badDevice.takeError()),
            "malformed spec file t.toml:1: unknown device 'tpu'; expected cpu "
            "or cuda");
  auto badChip = parseAotSpecText(
      "device = \"cuda\"\ntargets = [\"sm_90\", \"sm_7\"]\n[[kernel]]\n"
      "name = \"k\"\nop = \"rms_norm\"\ncols = 8\n",
      "c.toml");
  ASSERT_FALSE(static_cast<bool>(badChip));
  EXPECT_NE(errorText(badChip.takeError())
                .find("malformed spec file c.toml:2: GPU chip 'sm_7'"),
            std::string::npos);
  auto cpuConfig = parseAotSpecText(
      "device = \"cuda\"\n[[kernel]]\nname = \"k\"\nop = \"rms_norm\"\n"
      "cols = 8\nconfig = \"#norm.config<cpu, accumulators = 2>\"\n",
      "u.toml");
  ASSERT_FALSE(static_cast<bool>(cpuConfig));
  EXPECT_EQ(errorText(cpuConfig.takeError()),
            "malformed spec file u.toml:6: kernel 'k': invalid config "
            "'#norm.config<cpu, accumulators = 2>': it is for the cpu backend; "
            "--device cuda compiles GPU kernels, which take "
            "#norm.config<gpu, ...>");
}

} // namespace
