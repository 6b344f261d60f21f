//===- AOTGpuCompiler.cpp - GPU kernels to PTX, cubins and a C source -----===//
//
// Part of normjit. The GPU half of `normjit aot`: resolves chips, compiles
// all kernels of a library into one PTX module per chip (compileGpuPtx),
// assembles a cubin per chip with ptxas when there is one, and generates
// the C source that embeds the images and launches the kernels through the
// runtime (aot_cuda.h), its header and the manifest.
//
//===----------------------------------------------------------------------===//

#include "normjit/AOT/AOTCompiler.h"

#include "AOTInternal.h"
#include "KernelPipeline.h"

#include "normjit/Dialect/Norm/IR/NormAttrs.h"
#include "normjit/Dialect/Norm/IR/NormDialect.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/MLIRContext.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Triple.h"

#include <cstdlib>
#include <memory>

using namespace normjit;
using namespace normjit::aot;
using normjit::aot::detail::describeKernel;
using normjit::aot::detail::describeSpec;
using normjit::aot::detail::prefixError;
using normjit::aot::detail::quoteToml;
using normjit::aot::detail::wrapComment;

namespace {

llvm::Error invalid(const llvm::Twine &message) {
  return makeError(NORMJIT_INVALID_ARGUMENT, message);
}

} // namespace

//===----------------------------------------------------------------------===//
// Configs
//===----------------------------------------------------------------------===//

bool GpuConfigKnobs::empty() const {
  return !threadsPerRow && !rowsPerBlock && !elementsPerThread &&
         !vectorWidth && !rowStorage && !persistent && !minBlocksPerSm;
}

GpuConfig GpuConfigKnobs::applyTo(GpuConfig base) const {
  if (threadsPerRow)
    base.threadsPerRow = *threadsPerRow;
  if (rowsPerBlock)
    base.rowsPerBlock = *rowsPerBlock;
  if (elementsPerThread)
    base.elementsPerThread = *elementsPerThread;
  if (vectorWidth)
    base.vectorWidth = *vectorWidth;
  if (rowStorage)
    base.rowStorage = *rowStorage;
  if (persistent)
    base.persistent = *persistent;
  if (minBlocksPerSm)
    base.minBlocksPerSm = *minBlocksPerSm;
  return base;
}

std::string GpuConfigKnobs::str() const {
  // The order of GpuConfig::str().
  std::string text = "#norm.config<gpu";
  llvm::raw_string_ostream os(text);
  if (vectorWidth)
    os << ", vector_width = " << *vectorWidth;
  if (threadsPerRow)
    os << ", threads_per_row = " << *threadsPerRow;
  if (rowsPerBlock)
    os << ", rows_per_block = " << *rowsPerBlock;
  if (elementsPerThread)
    os << ", elements_per_thread = " << *elementsPerThread;
  if (rowStorage)
    os << ", row_storage = " << getGpuRowStorageName(*rowStorage);
  if (persistent)
    os << ", persistent = " << (*persistent ? "true" : "false");
  if (minBlocksPerSm)
    os << ", min_blocks_per_sm = " << *minBlocksPerSm;
  os << ">";
  return text;
}

llvm::Expected<GpuConfigKnobs>
normjit::aot::parseGpuConfigKnobs(llvm::StringRef text) {
  auto parsed = normjit::detail::parseConfigKnobs(text);
  if (!parsed)
    return parsed.takeError();
  const norm::ConfigKnobs &config = *parsed;
  if (config.backend != norm::Backend::GPU)
    return invalid("invalid config '" + text +
                   "': it is for the cpu backend; --device cuda compiles GPU "
                   "kernels, which take #norm.config<gpu, ...>");
  if (config.fuseResidual == false)
    return makeError(NORMJIT_UNSUPPORTED,
                     "invalid config '" + text +
                         "': the GPU backend always fuses the residual add "
                         "(fuse_residual = false is a CPU choice)");
  GpuConfigKnobs knobs;
  knobs.vectorWidth = config.vectorWidth;
  knobs.threadsPerRow = config.threadsPerRow;
  knobs.rowsPerBlock = config.rowsPerBlock;
  knobs.elementsPerThread = config.elementsPerThread;
  if (config.rowStorage)
    knobs.rowStorage = normjit::detail::toGpuRowStorage(*config.rowStorage);
  knobs.persistent = config.persistent;
  knobs.minBlocksPerSm = config.minBlocksPerSm;
  return knobs;
}

ConfigSource AotKernel::getGpuConfigSource() const {
  return gpuKnobs.empty() ? ConfigSource::Default : ConfigSource::Explicit;
}

GpuConfig AotKernel::getGpuConfig(const GpuTarget &target) const {
  GpuConfig config = gpuKnobs.applyTo(getDefaultGpuConfig(spec, target));
  fitGpuKnobs(config, spec.cols, getKnobsGiven(gpuKnobs));
  return config;
}

//===----------------------------------------------------------------------===//
// Chips
//===----------------------------------------------------------------------===//

namespace {

/// "sm_80, sm_86, ...": the chips normjit compiles for that LLVM knows.
std::string listKnownChips(const llvm::MCSubtargetInfo &info) {
  std::vector<std::pair<unsigned, std::string>> chips;
  for (const llvm::SubtargetSubTypeKV &kv :
       info.getAllProcessorDescriptions()) {
    llvm::StringRef name = kv.Key;
    if (unsigned value = getPlainChipNumber(name); value >= 80)
      chips.push_back({value, name.str()});
  }
  llvm::sort(chips);
  std::string list;
  for (const auto &chip : chips)
    list += (list.empty() ? "" : ", ") + chip.second;
  return list;
}

} // namespace

llvm::Expected<GpuChip> normjit::aot::resolveGpuChip(llvm::StringRef name) {
  std::string error;
  const llvm::MCSubtargetInfo *info = getNvptxSubtargetInfo(error);
  if (!info)
    return makeError(NORMJIT_UNSUPPORTED,
                     "this LLVM has no NVPTX back end: " + error);
  llvm::StringRef digits = name;
  bool wellFormed = digits.consume_front("sm_") && !digits.empty() &&
                    llvm::all_of(digits, llvm::isDigit);
  if (!wellFormed) {
    llvm::StringRef rest = name;
    if (rest.consume_front("sm_") && !rest.empty() &&
        (rest.back() == 'a' || rest.back() == 'f') &&
        llvm::all_of(rest.drop_back(), llvm::isDigit))
      return invalid("GPU chip '" + name +
                     "': arch-specific chips are not supported; use sm_" +
                     rest.drop_back() + " (its PTX also runs on newer chips)");
    return invalid("unknown GPU chip '" + name + "'; expected one of " +
                   listKnownChips(*info));
  }
  auto target = parseGpuChip(name);
  if (!target)
    return target.takeError();
  if (!info->isCPUStringValid(name) || target->chip() != name)
    return invalid("unknown GPU chip '" + name + "'; expected one of " +
                   listKnownChips(*info));
  return GpuChip{name.str(), *target};
}

//===----------------------------------------------------------------------===//
// ptxas
//===----------------------------------------------------------------------===//

llvm::Expected<std::string> normjit::aot::findPtxas(std::string *why) {
  if (const char *env = std::getenv("NORMJIT_PTXAS"); env && *env) {
    if (!llvm::sys::fs::can_execute(env))
      return makeError(NORMJIT_IO_ERROR, "NORMJIT_PTXAS '" + llvm::Twine(env) +
                                             "' is not an executable file");
    return std::string(env);
  }
  const char *standard = "/usr/local/cuda/bin/ptxas";
  if (llvm::sys::fs::can_execute(standard))
    return std::string(standard);
  if (auto path = llvm::sys::findProgramByName("ptxas"))
    return *path;
  if (why)
    *why = "no ptxas: NORMJIT_PTXAS is not set, /usr/local/cuda/bin/ptxas "
           "does not exist and PATH has none";
  return std::string();
}

namespace {

/// A temporary file removed at the end of its scope.
class TempFile {
public:
  llvm::Error create(llvm::StringRef suffix) {
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("normjit-aot", suffix, path))
      return makeError(NORMJIT_IO_ERROR,
                       "cannot create a temporary file: " + ec.message());
    return llvm::Error::success();
  }
  ~TempFile() {
    if (!path.empty())
      (void)llvm::sys::fs::remove(path);
  }
  llvm::StringRef get() const { return path; }

private:
  llvm::SmallString<128> path;
};

/// Runs `program` with `args` (args[0] is the program); its stdout and
/// stderr go to `output`. Returns its exit code, or -1 with `error` set
/// when it cannot run.
int runProgram(llvm::StringRef program, llvm::ArrayRef<llvm::StringRef> args,
               std::string &output, std::string &error) {
  TempFile log;
  if (llvm::Error e = log.create("log")) {
    error = llvm::toString(std::move(e));
    return -1;
  }
  std::optional<llvm::StringRef> redirects[] = {llvm::StringRef(""), log.get(),
                                                log.get()};
  int rc =
      llvm::sys::ExecuteAndWait(program, args, std::nullopt, redirects,
                                /*SecondsToWait=*/0, /*MemoryLimit=*/0, &error);
  if (auto buffer = llvm::MemoryBuffer::getFile(log.get()))
    output = (*buffer)->getBuffer().str();
  return rc;
}

/// Up to three lines of a tool's output, on one line.
std::string firstLines(llvm::StringRef text) {
  llvm::SmallVector<llvm::StringRef> lines;
  text.split(lines, '\n', -1, /*KeepEmpty=*/false);
  std::string result;
  for (size_t i = 0; i < lines.size() && i < 3; ++i)
    result += (i ? "; " : "") + lines[i].trim().str();
  return result.empty() ? "no output" : result;
}

/// "13.0.88" from `ptxas --version`.
llvm::Expected<std::string> getPtxasVersion(llvm::StringRef ptxas) {
  std::string output, error;
  llvm::StringRef args[] = {ptxas, "--version"};
  int rc = runProgram(ptxas, args, output, error);
  if (rc < 0)
    return makeError(NORMJIT_IO_ERROR,
                     "cannot run ptxas '" + ptxas + "': " + error);
  if (rc != 0)
    return makeError(NORMJIT_IO_ERROR,
                     "ptxas '" + ptxas + "' does not work: '" + ptxas +
                         " --version' exited with status " +
                         llvm::Twine(rc) + ": " + firstLines(output));
  llvm::SmallVector<llvm::StringRef> match;
  if (!llvm::Regex("V([0-9]+\\.[0-9]+\\.[0-9]+)").match(output, &match))
    return makeError(NORMJIT_IO_ERROR,
                     "'" + ptxas +
                         " --version' names no version: " + firstLines(output));
  return match[1].str();
}

/// Assembles `ptx` for `chip` into a cubin.
llvm::Expected<std::string>
assembleCubin(llvm::StringRef ptxas, llvm::StringRef ptx, const GpuChip &chip) {
  TempFile input, output;
  if (llvm::Error e = input.create("ptx"))
    return std::move(e);
  if (llvm::Error e = output.create("cubin"))
    return std::move(e);
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(input.get(), ec);
    if (ec)
      return makeError(NORMJIT_IO_ERROR,
                       "cannot write '" + input.get() + "': " + ec.message());
    os << ptx;
  }
  std::string arch = "-arch=" + chip.name;
  llvm::StringRef args[] = {ptxas,       arch, "-O3",
                            input.get(), "-o", output.get()};
  std::string log, error;
  int rc = runProgram(ptxas, args, log, error);
  if (rc != 0)
    return makeError(NORMJIT_COMPILE_ERROR,
                     "ptxas '" + ptxas + "' cannot assemble the PTX for " +
                         chip.name + ": " + (rc < 0 ? error : firstLines(log)) +
                         " (pass --no-cubin for PTX only)");
  auto buffer = llvm::MemoryBuffer::getFile(output.get(), /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer || (*buffer)->getBufferSize() == 0)
    return makeError(NORMJIT_COMPILE_ERROR,
                     "ptxas '" + ptxas + "' wrote no cubin for " + chip.name);
  return (*buffer)->getBuffer().str();
}

} // namespace

//===----------------------------------------------------------------------===//
// Generated files
//===----------------------------------------------------------------------===//

namespace {

/// One image of the library, as its C source embeds it.
struct Image {
  const GpuChip *chip;
  size_t chipIndex; ///< in the library's chips
  bool cubin;
  std::string fileName; ///< "gk.sm_90.cubin"
  std::string name;     ///< "sm_90.cubin", what the runtime reports
  std::string data;     ///< as embedded (PTX with its NUL)
};

/// "7.8": the PTX ISA version a PTX module declares (its `.version`
/// line, which LLVM sets to the lowest version that knows the chip).
std::string getPtxIsa(llvm::StringRef ptx) {
  for (size_t at = ptx.find(".version"); at != llvm::StringRef::npos;
       at = ptx.find(".version", at + 1)) {
    if (at != 0 && ptx[at - 1] != '\n')
      continue;
    llvm::StringRef rest = ptx.substr(at + 8).ltrim(" \t");
    return rest.take_while([](char c) { return llvm::isDigit(c) || c == '.'; })
        .str();
  }
  return "unknown";
}

const char *opEnumerator(normjit_op_t op) {
  return op == NORMJIT_LAYER_NORM ? "NORMJIT_LAYER_NORM" : "NORMJIT_RMS_NORM";
}

const char *dtypeEnumerator(normjit_dtype_t dtype) {
  switch (dtype) {
  case NORMJIT_F16:
    return "NORMJIT_F16";
  case NORMJIT_BF16:
    return "NORMJIT_BF16";
  default:
    return "NORMJIT_F32";
  }
}

/// The C99 initializer of a normjit_kernel_spec_t, fields in order.
std::string specInitializer(const normjit_kernel_spec_t &s) {
  std::string text;
  llvm::raw_string_ostream os(text);
  // One line per field group: op and cols, x and y, residual, sum, gamma,
  // beta, then mean, rstd and epsilon.
  os << "{" << opEnumerator(s.op) << ", " << s.cols << ",\n     "
     << dtypeEnumerator(s.x_dtype) << ", " << dtypeEnumerator(s.y_dtype)
     << ",\n     " << s.has_residual << ", "
     << dtypeEnumerator(s.residual_dtype) << ",\n     " << s.store_sum << ", "
     << dtypeEnumerator(s.sum_dtype) << ",\n     " << s.has_gamma << ", "
     << dtypeEnumerator(s.gamma_dtype) << ",\n     " << s.has_beta << ", "
     << dtypeEnumerator(s.beta_dtype) << ",\n     " << s.store_mean << ", "
     << s.store_rstd << ", " << normjit::aot::detail::formatFloat(s.epsilon)
     << "f}";
  return text;
}

/// `data` as the elements of a C array of unsigned char, 76 columns a line.
void writeBytes(llvm::raw_ostream &os, llvm::StringRef data) {
  std::string line = "   ";
  for (unsigned char byte : data) {
    std::string item = " " + std::to_string(byte) + ",";
    if (line.size() + item.size() > 78) {
      os << line << "\n";
      line = "   ";
    }
    line += item;
  }
  os << line << "\n";
}

std::string chipList(llvm::ArrayRef<GpuChip> chips) {
  std::string list;
  for (const GpuChip &chip : chips)
    list += (list.empty() ? "" : ", ") + chip.name;
  return list;
}

std::string generatedBy() {
  return "generated by `normjit aot --device cuda` (normjit " +
         normjit::aot::detail::getVersionString() + ", LLVM " +
         LLVM_VERSION_STRING + "); do not edit.";
}

std::string generateGpuHeader(llvm::StringRef library,
                              llvm::ArrayRef<GpuChip> chips, bool cubins,
                              llvm::ArrayRef<AotKernel> kernels) {
  std::string guard = "NORMJIT_AOT_" + library.str() + "_H";
  std::string text;
  llvm::raw_string_ostream os(text);
  os << wrapComment(library.str() + ".h: ahead-of-time normjit GPU kernels, " +
                        generatedBy(),
                    "/*")
     << "\n *\n"
     << wrapComment("Compile " + library.str() +
                        ".c (C99 or C++) with the host and link the normjit "
                        "runtime (normjit::runtime) alone. Chips: " +
                        chipList(chips) + " (PTX for each" +
                        (cubins ? ", and a cubin for each" : "") + ").",
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
       << wrapComment(
              "Launches " + name +
                  " on CUDA device `device` on `stream` (a CUstream of that "
                  "device; NULL: the default stream) with device pointers in "
                  "args, without waiting; the arguments are validated first. "
                  "The first call on a device loads the image for it: the "
                  "cubin of its chip, else the PTX of the newest chip not "
                  "newer than it. NORMJIT_UNSUPPORTED when there is none, "
                  "NORMJIT_DEVICE_ERROR without a CUDA driver; the message is "
                  "in normjit_last_error().",
              "/**")
       << " */\n"
       << "normjit_status_t " << name
       << "(int device, const normjit_run_args_t *args,\n"
       << std::string(18 + name.size(), ' ') << "void *stream);\n"
       << "/** The spec " << name << " was compiled for. */\n"
       << "const normjit_kernel_spec_t *" << name << "_spec(void);\n"
       << wrapComment("The image " + name +
                          " runs on CUDA device `device`, e.g. \"" +
                          chips.back().name + (cubins ? ".cubin" : ".ptx") +
                          "\" (loading it), or NULL when it cannot run there "
                          "(see " +
                          name + ").",
                      "/**")
       << " */\n"
       << "const char *" << name << "_image(int device);\n";
  }
  os << "\n#ifdef __cplusplus\n} /* extern \"C\" */\n#endif\n\n"
     << "#endif /* " << guard << " */\n";
  return text;
}

std::string generateGpuSource(llvm::StringRef library,
                              llvm::ArrayRef<Image> images,
                              llvm::ArrayRef<AotKernel> kernels,
                              llvm::ArrayRef<std::vector<GpuConfig>> configs) {
  std::string text;
  llvm::raw_string_ostream os(text);
  std::string imageList;
  for (const Image &image : images)
    imageList += (imageList.empty() ? "" : ", ") + image.name;
  os << wrapComment(library.str() + ".c: ahead-of-time normjit GPU kernels, " +
                        generatedBy(),
                    "/*")
     << "\n *\n"
     << wrapComment(
            "Compile it with the host (C99 or C++) and link the normjit "
            "runtime (normjit::runtime). Images: " +
                imageList +
                ". A device runs the cubin of its chip, else the PTX "
                "of the newest chip not newer than it, loaded once "
                "per device by the runtime (aot_cuda.h).",
            " *")
     << "\n */\n\n"
     << "#include \"" << library << ".h\"\n\n"
     << "#include <normjit/runtime/aot_cuda.h>\n\n"
     << "#include <stddef.h>\n";
  for (size_t i = 0; i < images.size(); ++i) {
    const Image &image = images[i];
    os << "\n/* " << image.name << ": "
       << (image.cubin
               ? "cubin"
               : "PTX ISA " + getPtxIsa(image.data) + ", NUL included")
       << ", " << image.data.size() << " bytes. */\n"
       << "static const unsigned char normjit_gen_image_" << i << "[] = {\n";
    writeBytes(os, image.data);
    os << "};\n";
  }
  os << "\nstatic const normjit_aot_cuda_image_t normjit_gen_images["
     << images.size() << "] = {\n";
  for (size_t i = 0; i < images.size(); ++i)
    os << "    {\"" << images[i].name << "\", " << images[i].chip->cc() << ", "
       << (images[i].cubin ? 1 : 0) << ", normjit_gen_image_" << i
       << ", sizeof normjit_gen_image_" << i << "},\n";
  os << "};\n";

  for (size_t k = 0; k < kernels.size(); ++k) {
    const AotKernel &kernel = kernels[k];
    const std::string &name = kernel.name;
    os << "\n"
       << wrapComment(name + ": " + describeSpec(kernel.spec) + ".", "/*")
       << " */\n"
       << "static const normjit_aot_cuda_variant_t normjit_gen_variants_"
       << name << "[" << images.size() << "] = {\n";
    for (const Image &image : images) {
      const GpuConfig *config = &configs[k][image.chipIndex];
      std::string unaligned = getUnalignedEntryName(name, *config);
      os << wrapComment(image.name + ": " + config->str(), "    /*", "     *")
         << " */\n"
         << "    {\"" << name << "\", "
         << (unaligned == name ? std::string("NULL") : "\"" + unaligned + "\"")
         << ", " << config->threadsPerRow << ", " << config->rowsPerBlock
         << ", " << config->vectorWidth << ", " << (config->persistent ? 1 : 0)
         << "},\n";
    }
    os << "};\n"
       << "static normjit_aot_cuda_kernel_t normjit_gen_kernel_" << name
       << " = {\n"
       << "    \"" << name << "\",\n"
       << "    " << specInitializer(kernel.spec) << ",\n"
       << "    normjit_gen_images, normjit_gen_variants_" << name << ", "
       << images.size() << ", NULL};\n\n"
       << "normjit_status_t " << name
       << "(int device, const normjit_run_args_t *args,\n"
       << std::string(18 + name.size(), ' ') << "void *stream) {\n"
       << "  return normjit_aot_cuda_run(&normjit_gen_kernel_" << name
       << ", device, args, stream);\n"
       << "}\n\n"
       << "const normjit_kernel_spec_t *" << name << "_spec(void) {\n"
       << "  return &normjit_gen_kernel_" << name << ".spec;\n"
       << "}\n\n"
       << "const char *" << name << "_image(int device) {\n"
       << "  return normjit_aot_cuda_image(&normjit_gen_kernel_" << name
       << ", device);\n"
       << "}\n";
  }
  return text;
}

std::string
generateGpuManifest(llvm::StringRef library, llvm::ArrayRef<GpuChip> chips,
                    llvm::ArrayRef<Image> images, const AotGpuLibrary &result,
                    llvm::ArrayRef<AotKernel> kernels,
                    llvm::ArrayRef<std::vector<GpuConfig>> configs) {
  std::string text;
  llvm::raw_string_ostream os(text);
  // The first line starts with kManifestHeader ("# normjit aot manifest").
  os << wrapComment(normjit::aot::detail::kManifestHeader.drop_front(2).str() +
                        ": what " + library.str() + ".h, " + library.str() +
                        ".c and the images beside them hold. It is a spec "
                        "file too: `normjit aot --specs <this file> --out "
                        "DIR` compiles the same kernels again.",
                    "#", "#")
     << "\n"
     << "schema = 1\n"
     << "library = " << quoteToml(library) << "\n"
     << "device = \"cuda\"\n"
     << "targets = [";
  for (size_t i = 0; i < chips.size(); ++i)
    os << (i ? ", " : "") << quoteToml(chips[i].name);
  os << "]\n"
     << "normjit_version = "
     << quoteToml(normjit::aot::detail::getVersionString()) << "\n"
     << "llvm_version = " << quoteToml(LLVM_VERSION_STRING) << "\n"
     << "header = " << quoteToml(library.str() + ".h") << "\n"
     << "source = " << quoteToml(library.str() + ".c") << "\n";
  if (result.cubins)
    os << "cubins = true\n"
       << "ptxas_version = " << quoteToml(result.ptxasVersion) << "\n";
  else
    os << wrapComment("No cubins: " + result.cubinNote + ".", "#", "#")
       << "\ncubins = false\n";
  for (const GpuChip &chip : chips) {
    os << "\n[[target]]\n"
       << "name = " << quoteToml(chip.name) << "\n"
       << "ptx = " << quoteToml(library.str() + "." + chip.name + ".ptx")
       << "\n"
       << "ptx_isa = "
       << quoteToml(getPtxIsa(llvm::find_if(images, [&](const Image &image) {
                                return image.chip == &chip && !image.cubin;
                              })->data))
       << "\n";
    if (result.cubins)
      os << "cubin = " << quoteToml(library.str() + "." + chip.name + ".cubin")
         << "\n";
  }
  for (size_t k = 0; k < kernels.size(); ++k) {
    const AotKernel &kernel = kernels[k];
    os << "\n[[kernel]]\n"
       << "name = " << quoteToml(kernel.name) << "\n"
       << normjit::aot::detail::getManifestSpec(kernel.spec);
    ConfigSource source = kernel.getGpuConfigSource();
    if (source == ConfigSource::Explicit)
      os << "config = " << quoteToml(kernel.gpuKnobs.str()) << "\n";
    os << "config_source = " << quoteToml(getConfigSourceName(source)) << "\n";
    for (size_t c = 0; c < chips.size(); ++c) {
      const GpuConfig &config = configs[k][c];
      os << "\n[[kernel.variant]]\n"
         << "target = " << quoteToml(chips[c].name) << "\n"
         << "entry = " << quoteToml(kernel.name) << "\n";
      std::string unaligned = getUnalignedEntryName(kernel.name, config);
      if (unaligned != kernel.name)
        os << "entry_unaligned = " << quoteToml(unaligned) << "\n";
      os << "config = " << quoteToml(config.str()) << "\n";
    }
  }
  return text;
}

} // namespace

//===----------------------------------------------------------------------===//
// The library
//===----------------------------------------------------------------------===//

llvm::Expected<AotGpuLibrary> normjit::aot::buildAotGpuLibrary(
    llvm::StringRef library, llvm::ArrayRef<std::string> chipNames,
    llvm::ArrayRef<AotKernel> givenKernels, const AotGpuOptions &options) {
  std::vector<AotKernel> kernels(givenKernels.begin(), givenKernels.end());
  for (AotKernel &kernel : kernels)
    kernel.spec = normjit::aot::detail::normalizeSpec(kernel.spec);
  // Everything that can be checked is checked before compiling anything.
  if (llvm::Error error = validateLibraryName(library))
    return std::move(error);
  if (chipNames.empty())
    return invalid("no GPU chip given");
  if (kernels.empty())
    return invalid("no kernel to compile");
  std::vector<GpuChip> chips;
  llvm::StringSet<> seenChips;
  for (const std::string &name : chipNames) {
    if (!seenChips.insert(name).second)
      return invalid("GPU chip '" + name + "' is given more than once");
    auto chip = resolveGpuChip(name);
    if (!chip)
      return chip.takeError();
    chips.push_back(std::move(*chip));
  }
  llvm::stable_sort(chips, [](const GpuChip &a, const GpuChip &b) {
    return a.cc() < b.cc();
  });

  llvm::StringSet<> symbols;
  llvm::StringMap<std::string> entryOwners; ///< PTX entry -> its kernel
  std::vector<std::vector<GpuConfig>> configs;
  for (const AotKernel &kernel : kernels) {
    if (llvm::Error error = validateName("kernel name", kernel.name))
      return std::move(error);
    std::string prefix = describeKernel(kernel);
    for (llvm::StringRef suffix : {"", "_spec", "_image"}) {
      std::string symbol = kernel.name + suffix.str();
      if (!symbols.insert(symbol).second)
        return invalid("kernel name '" + kernel.name + "': the C function '" +
                       symbol + "' is defined twice in library '" + library +
                       "'");
    }
    if (!kernel.knobs.empty())
      return invalid(prefix + ": its config " + kernel.knobs.str() +
                     " is for the cpu backend; GPU kernels take "
                     "#norm.config<gpu, ...>");
    if (llvm::Error error =
            statusToError(normjit_kernel_spec_validate(&kernel.spec)))
      return prefixError(std::move(error), prefix);
    std::vector<GpuConfig> kernelConfigs;
    for (const GpuChip &chip : chips) {
      GpuConfig config = kernel.getGpuConfig(chip.target);
      if (llvm::Error error = validateGpuConfig(kernel.spec, config))
        return prefixError(std::move(error), prefix);
      if (llvm::Error error = checkMinBlocksPerSm(config, chip.target))
        return prefixError(std::move(error), prefix);
      for (const std::string &entry :
           {kernel.name, getUnalignedEntryName(kernel.name, config)}) {
        auto [it, inserted] = entryOwners.try_emplace(entry, kernel.name);
        if (!inserted && it->second != kernel.name)
          return invalid(prefix + ": its GPU entry '" + entry +
                         "' is also an entry of kernel '" + it->second +
                         "' (the unaligned twin of a kernel is "
                         "<name>_unaligned)");
      }
      kernelConfigs.push_back(config);
    }
    configs.push_back(std::move(kernelConfigs));
  }

  AotGpuLibrary result;
  std::string ptxas;
  if (!options.cubins) {
    result.cubinNote = "--no-cubin";
  } else if (!options.ptxas.empty()) {
    ptxas = options.ptxas;
  } else {
    std::string why;
    auto found = findPtxas(&why);
    if (!found)
      return found.takeError();
    ptxas = *found;
    if (ptxas.empty())
      result.cubinNote = why;
  }
  if (!ptxas.empty()) {
    auto version = getPtxasVersion(ptxas);
    if (!version)
      return version.takeError();
    result.cubins = true;
    result.ptxas = ptxas;
    result.ptxasVersion = *version;
  }

  // One PTX module per chip holding every kernel, and its cubin.
  std::vector<Image> images;
  for (size_t c = 0; c < chips.size(); ++c) {
    const GpuChip &chip = chips[c];
    std::vector<GpuKernelRequest> requests;
    for (size_t k = 0; k < kernels.size(); ++k)
      requests.push_back({kernels[k].spec, configs[k][c], kernels[k].name});
    auto module = compileGpuPtx(requests, chip.target);
    if (!module)
      return prefixError(module.takeError(), "compiling for " + chip.name);
    std::string base = library.str() + "." + chip.name;
    images.push_back({&chip, c, false, base + ".ptx", chip.name + ".ptx",
                      module->ptx + std::string(1, '\0')});
    if (result.cubins) {
      auto cubin = assembleCubin(ptxas, module->ptx, chip);
      if (!cubin)
        return cubin.takeError();
      images.push_back({&chip, c, true, base + ".cubin", chip.name + ".cubin",
                        std::move(*cubin)});
    }
  }

  result.files.push_back(
      {library.str() + ".h",
       generateGpuHeader(library, chips, result.cubins, kernels)});
  result.files.push_back(
      {library.str() + ".c",
       generateGpuSource(library, images, kernels, configs)});
  for (const Image &image : images) {
    llvm::StringRef data = image.data;
    if (!image.cubin)
      data = data.drop_back(); // the file holds the PTX without its NUL
    result.files.push_back({image.fileName, data.str()});
  }
  result.files.push_back(
      {library.str() + normjit::aot::detail::kManifestSuffix.str(),
       generateGpuManifest(library, chips, images, result, kernels, configs)});
  return std::move(result);
}
