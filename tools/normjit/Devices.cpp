//===- Devices.cpp - `normjit devices`: what kernels can run on -----------===//
//
// Part of normjit. Prints the host CPU as code generation sees it, and each
// CUDA device (or why there is none: no driver, no device), with the
// fingerprints that key their tuning-cache entries.
//
//===----------------------------------------------------------------------===//

#include "Commands.h"
#include "Options.h"

#include "normjit/JIT/KernelCompiler.h"
#include "normjit/runtime/cuda.h"
#include "normjit/tuner/Tuner.h"
#include "normjit/tuner/TuningCache.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"

#include <vector>

using namespace normjit::tool;

namespace {

const OptionInfo kDevicesOptions[] = {
    {"json", OptionKind::Flag, "", "print one JSON object instead of lines"},
};

constexpr const char *kDevicesSynopsis = "normjit devices [--json]";
constexpr const char *kDevicesDescription =
    "Lists the devices normjit can compile kernels for: the host CPU (its\n"
    "LLVM name, the vector features code generation uses, its cores) and\n"
    "each CUDA device (name, compute capability, SMs, memory, theoretical\n"
    "DRAM bandwidth), each with the fingerprint its tuning-cache entries are\n"
    "keyed by; or why there is no CUDA device. Never fails for want of one.";

/// One CUDA device as listed.
struct CudaDevice {
  normjit_cuda_device_info_t info;
  std::string fingerprint;
};

/// What the CUDA driver layer reports: the devices, or why there are none
/// (`reason` empty when the driver loaded).
struct CudaState {
  std::string reason;
  std::vector<CudaDevice> devices;
  std::vector<std::string> problems; ///< "cuda:N: why" for devices skipped
};

/// The driver layer's message for a failed call.
std::string takeMessage(normjit_status_t status) {
  return llvm::toString(normjit::statusToError(status));
}

CudaState queryCuda() {
  CudaState state;
  int count = 0;
  if (normjit_status_t status = normjit_cuda_device_count(&count)) {
    state.reason = takeMessage(status);
    return state;
  }
  for (int ordinal = 0; ordinal < count; ++ordinal) {
    CudaDevice device;
    if (normjit_status_t status =
            normjit_cuda_device_info(ordinal, &device.info)) {
      state.problems.push_back("cuda:" + std::to_string(ordinal) + ": " +
                               takeMessage(status));
      continue;
    }
    auto fingerprint = normjit::tuner::getGpuFingerprint(ordinal);
    if (!fingerprint) {
      state.problems.push_back("cuda:" + std::to_string(ordinal) + ": " +
                               llvm::toString(fingerprint.takeError()));
      continue;
    }
    device.fingerprint = *fingerprint;
    state.devices.push_back(std::move(device));
  }
  return state;
}

std::string chipName(const normjit_cuda_device_info_t &info) {
  return "sm_" + std::to_string(info.cc_major) + std::to_string(info.cc_minor);
}

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
  CudaState cuda = queryCuda();
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
        if (!normjit::getDisabledHostCpuFeatures().empty())
          json.attributeArray("disabled_features", [&] {
            for (const std::string &feature :
                 normjit::getDisabledHostCpuFeatures())
              json.value(feature);
          });
      });
      json.attributeObject("cuda", [&] {
        json.attribute("available", !cuda.devices.empty());
        if (!cuda.reason.empty())
          json.attribute("reason", cuda.reason);
        else if (cuda.devices.empty())
          json.attribute("reason", "the CUDA driver reports no usable device");
        if (const char *path = normjit_cuda_driver_path())
          json.attribute("driver", path);
        json.attributeArray("devices", [&] {
          for (const CudaDevice &device : cuda.devices)
            json.object([&] {
              const normjit_cuda_device_info_t &info = device.info;
              json.attribute("device", "cuda:" + std::to_string(info.ordinal));
              json.attribute("name", info.name);
              json.attribute("chip", chipName(info));
              json.attribute("sm_count", static_cast<int64_t>(info.sm_count));
              json.attribute("memory_bytes",
                             static_cast<int64_t>(info.total_memory));
              json.attribute("dram_gbps", info.dram_bandwidth_gbps);
              json.attribute("l2_bytes",
                             static_cast<int64_t>(info.l2_cache_bytes));
              json.attribute("driver_version",
                             static_cast<int64_t>(info.driver_version));
              json.attribute("fingerprint", device.fingerprint);
            });
        });
        if (!cuda.problems.empty())
          json.attributeArray("problems", [&] {
            for (const std::string &problem : cuda.problems)
              json.value(problem);
          });
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
  if (!normjit::getDisabledHostCpuFeatures().empty())
    out << "  turned off (NORMJIT_DISABLE_CPU_FEATURES): "
        << llvm::join(normjit::getDisabledHostCpuFeatures(), ",") << "\n";
  out << "  fingerprint: " << fingerprint << "\n";
  if (!cuda.reason.empty()) {
    out << "cuda: not available (" << cuda.reason << ")\n";
  } else if (cuda.devices.empty() && cuda.problems.empty()) {
    out << "cuda: not available (the CUDA driver reports no device)\n";
  }
  for (const CudaDevice &device : cuda.devices) {
    const normjit_cuda_device_info_t &info = device.info;
    out << "cuda:" << info.ordinal << ": " << info.name << ", "
        << chipName(info) << ", " << info.sm_count << " SMs, "
        << llvm::format("%.1f GiB", static_cast<double>(info.total_memory) /
                                        static_cast<double>(uint64_t(1) << 30));
    if (info.dram_bandwidth_gbps > 0)
      out << llvm::format(", %.0f GB/s DRAM", info.dram_bandwidth_gbps);
    out << "\n  fingerprint: " << device.fingerprint << "\n";
  }
  for (const std::string &problem : cuda.problems)
    out << problem << " (skipped)\n";
  return llvm::Error::success();
}
