//===- Measure.h - check and time one kernel on a workload -------*- C++ -*-===//
//
// Part of normjit. Buffers for a spec at a row count, filled with
// deterministic data; a correctness check of a kernel against the fp64
// reference (on a smaller check workload) before it may be timed; and
// timing that can be trusted: warm-up, repetitions until the median is
// stable or the budget is spent, an optional cold-cache mode.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_TUNER_MEASURE_H
#define NORMJIT_TUNER_MEASURE_H

#include "normjit/JIT/Context.h"
#include "normjit/tuner/Reference.h"

#include <memory>
#include <string>

namespace normjit::tuner {

/// Input and output buffers of one spec at one row count. Inputs and outputs
/// never alias, so one candidate's outputs cannot change what the next one
/// reads.
class Workload {
public:
  Workload(const normjit_kernel_spec_t &spec, int64_t rows,
           unsigned seed = 1234);

  const normjit_kernel_spec_t &getSpec() const { return spec; }
  int64_t getRows() const { return rows; }
  /// The call arguments over this workload's buffers.
  normjit_run_args_t getArgs();
  /// Bytes one call reads and writes (the GB/s numerator).
  double getBytes() const { return getBytes(spec, rows); }
  /// Bytes a call of `spec` on `rows` rows reads and writes.
  static double getBytes(const normjit_kernel_spec_t &spec, int64_t rows);

  /// Runs `kernel` once on freshly poisoned outputs and compares them with
  /// the fp64 reference; an error describes the first mismatches.
  llvm::Error check(const Kernel &kernel);

private:
  normjit_kernel_spec_t spec;
  int64_t rows;
  Buffer x, residual, gamma, beta, y, sum;
  std::vector<float> mean, rstd;
  std::unique_ptr<ReferenceResult> reference;
};

/// How carefully to time.
struct TimingOptions {
  int warmup = 2;          ///< untimed calls first
  int minSamples = 5;      ///< at least this many samples
  int maxSamples = 200;    ///< at most this many
  double maxSeconds = 0.25; ///< stop sampling after this long
  double minSampleSeconds = 20e-6; ///< calls are batched up to this
  double stableSpread = 0.02; ///< stop once the interquartile range is this
                              ///< fraction of the median
  bool coldCache = false;  ///< evict caches before each sample
};

/// One timing.
struct Timing {
  double medianSeconds = 0; ///< per call
  double minSeconds = 0;
  double gbps = 0;          ///< bytes / median
  int samples = 0;
  double spread = 0;        ///< interquartile range / median
};

/// Times `kernel` on `workload` (outliers do not move a median; the
/// interquartile range says how stable it was).
llvm::Expected<Timing> timeKernel(const Kernel &kernel, Workload &workload,
                                  const TimingOptions &options);

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_MEASURE_H
