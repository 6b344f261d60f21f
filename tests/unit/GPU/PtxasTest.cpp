//===- PtxasTest.cpp - every GPU config assembles with ptxas --------------===//
//
// Part of normjit. Runs without a GPU: for op variants covering every
// operand and dtype combination, the whole GPU search space (and each
// kernel's scalar twin) is compiled to one PTX module per chip, assembled
// by the CUDA toolkit's ptxas for sm_80 and sm_90, and ptxas's resource
// report is checked: few enough registers that a block of the config's
// size can launch (at most 255, and 65536 / block size), and spills (stores
// plus loads) of at most 16 bytes where the registers reach that bound (a
// config that does not fit), at most 64 where ptxas spills by its own
// choice with registers to spare (a persistent RMSNorm of 3238 columns:
// 32 bytes with 32 of 255 registers used).
//
// ptxas is NORMJIT_PTXAS, else /usr/local/cuda/bin/ptxas, else on PATH; the
// tests are skipped, saying so, when there is none.
//
//===----------------------------------------------------------------------===//

#include "../KernelCases.h"

#include "normjit/JIT/GpuKernelCompiler.h"
#include "normjit/tuner/SearchSpace.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>

using namespace normjit;

namespace {

std::string findPtxas() {
  if (const char *env = std::getenv("NORMJIT_PTXAS"); env && *env)
    return env;
  if (llvm::sys::fs::can_execute("/usr/local/cuda/bin/ptxas"))
    return "/usr/local/cuda/bin/ptxas";
  if (auto path = llvm::sys::findProgramByName("ptxas"))
    return *path;
  return "";
}

struct Variant {
  std::string name;
  normjit_kernel_spec_t spec;
};

void PrintTo(const Variant &variant, std::ostream *os) { *os << variant.name; }

normjit_kernel_spec_t makeSpec(normjit_op_t op, int64_t cols,
                               normjit_dtype_t in, normjit_dtype_t out,
                               bool everything) {
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
  spec.x_dtype = in;
  spec.y_dtype = out;
  if (everything) {
    spec.has_residual = 1;
    spec.residual_dtype = in;
    spec.store_sum = 1;
    spec.sum_dtype = in;
    spec.has_gamma = 1;
    spec.gamma_dtype = out;
    spec.has_beta = 1;
    spec.beta_dtype = out;
    spec.store_mean = op == NORMJIT_LAYER_NORM;
    spec.store_rstd = 1;
  }
  return spec;
}

/// Op variants: both ops, bare and with every optional operand, in each
/// dtype and a mixed combination, at column counts from tiny to long
/// (odd ones included, so vector widths fall back to 1).
std::vector<Variant> variants() {
  std::vector<Variant> result;
  struct Types {
    const char *name;
    normjit_dtype_t in, out;
  };
  const Types types[] = {{"f32", NORMJIT_F32, NORMJIT_F32},
                         {"bf16", NORMJIT_BF16, NORMJIT_BF16},
                         {"f16", NORMJIT_F16, NORMJIT_F16},
                         {"bf16_to_f32", NORMJIT_BF16, NORMJIT_F32}};
  const int64_t columns[] = {768, 4096, 1000, 64, 4097, 16384, 31, 12288};
  int index = 0;
  for (normjit_op_t op : {NORMJIT_LAYER_NORM, NORMJIT_RMS_NORM})
    for (const Types &t : types)
      for (bool everything : {false, true}) {
        int64_t cols = columns[index++ % std::size(columns)];
        std::string name =
            std::string(op == NORMJIT_LAYER_NORM ? "ln" : "rms") + "_" +
            t.name + (everything ? "_all" : "") + "_c" + std::to_string(cols);
        result.push_back({name, makeSpec(op, cols, t.in, t.out, everything)});
      }
  // A mixed residual form: f16 rows, bf16 residual, f32 sum and gamma.
  normjit_kernel_spec_t mixed =
      makeSpec(NORMJIT_LAYER_NORM, 2048, NORMJIT_F16, NORMJIT_BF16, true);
  mixed.residual_dtype = NORMJIT_BF16;
  mixed.sum_dtype = NORMJIT_F32;
  mixed.gamma_dtype = NORMJIT_F32;
  result.push_back({"ln_mixed_all_c2048", mixed});
  return result;
}

/// Bytes of spill stores plus loads per thread a kernel may have when its
/// registers reach the block's bound, and when they do not.
constexpr int kMaxSpillBytesAtBound = 16;
constexpr int kMaxSpillBytesBelowBound = 64;
/// With min_blocks_per_sm, the registers are capped on purpose and the
/// spills are the price the tuner weighs (measured with ptxas 13.0 over
/// these variants: at most 72 bytes).
constexpr int kMaxSpillBytesCapped = 128;

struct EntryReport {
  int registers = -1;
  int spillBytes = 0;
};

/// Parses ptxas -v: per entry, registers used and spilled bytes.
std::map<std::string, EntryReport> parseReport(const std::string &text) {
  std::map<std::string, EntryReport> entries;
  std::istringstream lines(text);
  std::string line, current;
  std::regex entry("Compiling entry function '([^']+)'");
  std::regex spills("([0-9]+) bytes spill stores, ([0-9]+) bytes spill loads");
  std::regex registers("Used ([0-9]+) registers");
  std::smatch match;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, match, entry)) {
      current = match[1];
      entries[current];
    } else if (!current.empty() && std::regex_search(line, match, spills)) {
      entries[current].spillBytes += std::stoi(match[1]) + std::stoi(match[2]);
    } else if (!current.empty() && std::regex_search(line, match, registers)) {
      entries[current].registers = std::stoi(match[1]);
    }
  }
  return entries;
}

/// Runs `ptxas -v` on `ptx` for `chip`; false (with `report` saying why)
/// when it fails. `report` is its output.
bool assemble(const std::string &ptxas, const std::string &ptx,
              const std::string &chip, std::string &report) {
  llvm::SmallString<128> ptxPath, logPath;
  if (llvm::sys::fs::createTemporaryFile("normjit", "ptx", ptxPath) ||
      llvm::sys::fs::createTemporaryFile("normjit", "log", logPath)) {
    report = "cannot create temporary files";
    return false;
  }
  {
    std::error_code error;
    llvm::raw_fd_ostream os(ptxPath, error);
    os << ptx;
  }
  std::string arch = "-arch=" + chip;
  llvm::StringRef args[] = {ptxas, arch, "-v", ptxPath, "-o", "/dev/null"};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, logPath.str(),
                                                logPath.str()};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects,
                                     /*SecondsToWait=*/600, 0, &message);
  auto log = llvm::MemoryBuffer::getFile(logPath);
  report = log ? (*log)->getBuffer().str() : "";
  llvm::sys::fs::remove(ptxPath);
  llvm::sys::fs::remove(logPath);
  if (rc != 0)
    report = "ptxas failed " + message + ":\n" + report;
  return rc == 0;
}

class PtxasTest
    : public ::testing::TestWithParam<std::tuple<Variant, std::string>> {};

TEST_P(PtxasTest, EveryConfigAssembles) {
  std::string ptxas = findPtxas();
  if (ptxas.empty())
    GTEST_SKIP() << "no ptxas (set NORMJIT_PTXAS or install the CUDA toolkit "
                    "in /usr/local/cuda): GPU code is not assembled";
  const auto &[variant, chip] = GetParam();
  auto target = parseGpuChip(chip);
  ASSERT_TRUE(static_cast<bool>(target)) << llvm::toString(target.takeError());
  target->smCount = chip == "sm_80" ? 108 : 132;

  std::vector<GpuConfig> space =
      tuner::buildGpuSearchSpace(variant.spec, /*rows=*/65536, *target);
  ASSERT_GE(space.size(), 4u);
  std::vector<GpuKernelRequest> requests;
  std::map<std::string, GpuConfig> configOf;
  for (size_t i = 0; i < space.size(); ++i) {
    std::string name = "k" + std::to_string(i);
    requests.push_back({variant.spec, space[i], name});
    configOf[name] = space[i];
    configOf[getUnalignedEntryName(name, space[i])] = space[i];
  }
  auto image = compileGpuPtx(requests, *target);
  ASSERT_TRUE(static_cast<bool>(image)) << llvm::toString(image.takeError());
  EXPECT_EQ(image->chip, chip);
  EXPECT_EQ(image->ptx.find(".extern .func"), std::string::npos)
      << "a kernel calls a function the driver cannot resolve";

  std::string report;
  ASSERT_TRUE(assemble(ptxas, image->ptx, chip, report)) << report;

  std::map<std::string, EntryReport> entries = parseReport(report);
  EXPECT_EQ(entries.size(), configOf.size()) << report;
  int maxCappedSpills = 0;
  for (const auto &[name, config] : configOf) {
    auto it = entries.find(name);
    ASSERT_NE(it, entries.end()) << "ptxas did not report " << name;
    const EntryReport &r = it->second;
    int64_t registerBound = std::min<int64_t>(
        255, 65536 / (config.blockSize() *
                      std::max<int64_t>(1, config.minBlocksPerSm)));
    EXPECT_GE(r.registers, 1) << name;
    EXPECT_LE(r.registers, registerBound)
        << name << " " << config.str() << " uses " << r.registers
        << " registers; a block of " << config.blockSize() << " threads allows "
        << registerBound;
    // ptxas now and then spills a few words in a loop by its own choice,
    // with registers to spare; at the bound, more than that is a config
    // that does not fit.
    int spillBound = config.minBlocksPerSm > 0 ? kMaxSpillBytesCapped
                     : r.registers >= registerBound ? kMaxSpillBytesAtBound
                                                    : kMaxSpillBytesBelowBound;
    if (config.minBlocksPerSm > 0)
      maxCappedSpills = std::max(maxCappedSpills, r.spillBytes);
    EXPECT_LE(r.spillBytes, spillBound)
        << name << " " << config.str() << " spills " << r.spillBytes
        << " bytes with " << r.registers << " of " << registerBound
        << " registers";
  }
  // What the register caps cost in this variant (in the XML report).
  RecordProperty("max_capped_spill_bytes", maxCappedSpills);
}

// min_blocks_per_sm reaches ptxas, which caps registers so that that many
// blocks fit a multiprocessor: a bf16 LayerNorm of 4096 columns, whose
// default config takes more registers than 5 or 6 blocks of 256 threads
// allow, held to 65536 / (blocks * 256) (whatever it spills for that: the
// price the knob names).
TEST(PtxasMinBlocksTest, CapsRegistersForTheBlocksAsked) {
  std::string ptxas = findPtxas();
  if (ptxas.empty())
    GTEST_SKIP() << "no ptxas (set NORMJIT_PTXAS or install the CUDA toolkit "
                    "in /usr/local/cuda): GPU code is not assembled";
  normjit_kernel_spec_t spec = makeSpec(NORMJIT_LAYER_NORM, 4096, NORMJIT_BF16,
                                        NORMJIT_BF16, /*everything=*/false);
  spec.has_gamma = spec.has_beta = 1;
  spec.gamma_dtype = spec.beta_dtype = NORMJIT_BF16;
  for (const char *chip : {"sm_80", "sm_90"}) {
    auto target = parseGpuChip(chip);
    ASSERT_TRUE(static_cast<bool>(target))
        << llvm::toString(target.takeError());
    GpuConfig base = getDefaultGpuConfig(spec, *target);
    ASSERT_EQ(base.blockSize(), 256) << base.str();
    std::vector<GpuKernelRequest> requests;
    for (int64_t blocks : {0, 5, 6}) {
      GpuConfig config = base;
      config.minBlocksPerSm = blocks;
      requests.push_back({spec, config, "k" + std::to_string(blocks)});
    }
    auto image = compileGpuPtx(requests, *target);
    ASSERT_TRUE(static_cast<bool>(image)) << llvm::toString(image.takeError());
    EXPECT_NE(image->ptx.find(".minnctapersm 5"), std::string::npos);
    EXPECT_NE(image->ptx.find(".minnctapersm 6"), std::string::npos);
    std::string report;
    ASSERT_TRUE(assemble(ptxas, image->ptx, chip, report)) << report;
    std::map<std::string, EntryReport> entries = parseReport(report);
    int uncapped = entries["k0"].registers;
    EXPECT_GT(uncapped, 65536 / (5 * 256))
        << chip << ": the default config no longer needs the cap; pick a "
        << "spec that does\n" << report;
    for (int64_t blocks : {5, 6}) {
      const EntryReport &r = entries["k" + std::to_string(blocks)];
      EXPECT_GE(r.registers, 1) << report;
      EXPECT_LE(r.registers, 65536 / (blocks * 256))
          << chip << " min_blocks_per_sm = " << blocks << "\n" << report;
    }
  }
}

std::string paramName(
    const ::testing::TestParamInfo<std::tuple<Variant, std::string>> &info) {
  return std::get<0>(info.param).name + "_" + std::get<1>(info.param);
}

INSTANTIATE_TEST_SUITE_P(Variants, PtxasTest,
                         ::testing::Combine(::testing::ValuesIn(variants()),
                                            ::testing::Values("sm_80",
                                                              "sm_90")),
                         paramName);

/// Specs drawn from a fixed seed (KernelCases.h's drawCase: every buffer's
/// dtype on its own, any optional operands, odd column counts), each for
/// one chip, sm_80 and sm_90 in turn. NORMJIT_FUZZ_SEED and
/// NORMJIT_PTXAS_FUZZ_CASES draw another set.
std::vector<std::tuple<Variant, std::string>> drawnVariants() {
  std::mt19937 rng(test::unsignedFromEnv("NORMJIT_FUZZ_SEED", 20261127));
  unsigned count = test::unsignedFromEnv("NORMJIT_PTXAS_FUZZ_CASES", 8);
  std::vector<std::tuple<Variant, std::string>> result;
  for (unsigned i = 0; i < count; ++i) {
    test::DrawnCase d = test::drawCase(rng);
    std::string name = "drawn" + std::to_string(i) + "_" + d.describe();
    result.emplace_back(Variant{name, d.spec}, i % 2 ? "sm_90" : "sm_80");
  }
  return result;
}

INSTANTIATE_TEST_SUITE_P(Drawn, PtxasTest, ::testing::ValuesIn(drawnVariants()),
                         paramName);

} // namespace
