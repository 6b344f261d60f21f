//===- Devices.cpp - `normjit devices`: what kernels can run on -----------===//
//
// Part of normjit. Prints the host CPU as code generation sees it, and the
// state of the GPU backend.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "normjit/JIT/KernelCompiler.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/Support/JSON.h"

using namespace normjit::tool;

namespace {

const OptionInfo kDevicesOptions[] = {
    {"json", OptionKind::Flag, "", "print one JSON object instead of lines"},
};

constexpr const char *kDevicesSynopsis = "normjit devices [--json]";
constexpr const char *kDevicesDescription =
    "Lists the devices normjit can compile kernels for: the host CPU (its\n"
    "LLVM name, the vector features code generation uses, its cores) and\n"
    "the GPU backend.";

/// Why there are no GPU devices.
constexpr const char *kCudaUnavailable = "GPU backend not built yet";

} // namespace

llvm::Error normjit::tool::devicesCommand(llvm::ArrayRef<std::string> args,
                                          llvm::raw_ostream &out) {
  OptionParser parser("devices", kDevicesOptions);
  auto parsed = parser.parse(args);
  if (!parsed)
    return parsed.takeError();
  if (parsed->helpRequested()) {
    parser.printHelp(out, kDevicesSynopsis, kDevicesDescription);
    return llvm::Error::success();
  }

  const normjit::HostCpu &host = normjit::getHostCpu();
  // The identity tuning-cache entries are keyed by.
  std::string fingerprint = normjit::tuner::detectCpuFingerprint().key();
  if (parsed->getFlag("json", false)) {
    llvm::json::OStream json(out);
    json.object([&] {
      json.attributeObject("cpu", [&] {
        json.attribute("name", host.name);
        json.attribute("cores", static_cast<int64_t>(host.cores));
        json.attribute("avx2", host.avx2);
        json.attribute("avx512f", host.avx512f);
        json.attribute("f16c", host.f16c);
        json.attribute("vector_width", host.nativeVectorWidth());
        json.attribute("fingerprint", fingerprint);
      });
      json.attributeObject("cuda", [&] {
        json.attribute("available", false);
        json.attribute("reason", kCudaUnavailable);
      });
    });
    out << "\n";
    return llvm::Error::success();
  }

  auto yesNo = [](bool value) { return value ? "yes" : "no"; };
  out << "cpu: " << host.name << ", " << host.cores
      << (host.cores == 1 ? " core" : " cores") << ", avx2 " << yesNo(host.avx2)
      << ", avx512f " << yesNo(host.avx512f) << ", f16c " << yesNo(host.f16c)
      << ", " << host.nativeVectorWidth() << " f32 lanes per vector\n";
  out << "  fingerprint: " << fingerprint << "\n";
  out << "cuda: not available (" << kCudaUnavailable << ")\n";
  return llvm::Error::success();
}
