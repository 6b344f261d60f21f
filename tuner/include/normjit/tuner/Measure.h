//===- Measure.h - check and time one kernel on a workload -------*- C++ -*-===//
//
// Part of normjit. Buffers for a spec at a row count, filled with
// deterministic data; a correctness check of a kernel against the fp64
// reference (on a smaller check workload) before it may be timed; and
// timing that can be trusted: warm-up, repetitions until the median is
// stable or the budget is spent, an optional cold-cache mode. The GPU side
// keeps a workload in device memory and times with CUDA events on a stream.
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

  /// Fills the outputs with values no correct kernel leaves (NaN bit
  /// patterns), so that a candidate that skips a write cannot pass on what
  /// an earlier one left behind.
  void poisonOutputs();
  /// Compares the outputs now in this workload's buffers (written by a
  /// kernel, or copied back from a device) with the fp64 reference, with
  /// the tolerances of compareWithReference.
  llvm::Error checkOutputs();

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

/// A Workload in the memory of one CUDA device: inputs uploaded once,
/// outputs in buffers of their own (never aliasing an input, so no run can
/// change what the next one reads), a stream and two timing events. Frees
/// everything when destroyed.
class GpuWorkload {
public:
  /// Allocates and uploads. Without a driver or device, or out of device
  /// memory: the driver layer's error.
  static llvm::Expected<std::unique_ptr<GpuWorkload>>
  create(const normjit_kernel_spec_t &spec, int64_t rows, int device,
         unsigned seed = 1234);
  ~GpuWorkload();
  GpuWorkload(const GpuWorkload &) = delete;
  GpuWorkload &operator=(const GpuWorkload &) = delete;

  const normjit_kernel_spec_t &getSpec() const { return host.getSpec(); }
  int64_t getRows() const { return host.getRows(); }
  int getDevice() const { return device; }
  /// Bytes one call reads and writes (the GB/s numerator).
  double getBytes() const { return host.getBytes(); }
  /// The call arguments over the device buffers.
  const normjit_run_args_t &getArgs() const { return args; }
  /// The stream launches and events go to (a CUstream).
  void *getStream() const { return stream; }

  /// Uploads the inputs again, poisons the device outputs, runs `kernel`
  /// once on the stream, copies the outputs back and compares them with the
  /// fp64 reference. An error describes the first mismatches, or says why
  /// the kernel could not run.
  llvm::Error check(const CompiledGpuKernel &kernel);

  /// Seconds of `count` back-to-back launches of `kernel` on the stream,
  /// between two events (after an L2 flush on the stream, outside the
  /// events, when `flushL2`). Waits for the end event.
  llvm::Expected<double> timeLaunches(const CompiledGpuKernel &kernel,
                                      int count, bool flushL2);

  /// Prepares the batch timeBatch times, replacing an earlier one: launches
  /// of `kernel` enough for a sample of at least `minSampleSeconds` when
  /// one launch took `onceSeconds` (at most 1000). Where the driver can,
  /// a batch of several is recorded once into a CUDA graph (replayed once
  /// untimed, which uploads it) and replayed per sample, so that its
  /// kernels run back to back and not at the host's launch rate (a launch
  /// and its argument checks take microseconds, as long as a short kernel
  /// runs); the graph's own time then sizes the batch again. Direct
  /// launches otherwise (no graph entry points, or a recording or replay
  /// that failed). Returns the launches per sample.
  llvm::Expected<int> prepareBatch(const CompiledGpuKernel &kernel,
                                   double onceSeconds,
                                   double minSampleSeconds);
  /// Seconds of the prepared batch between two events (waits for the end
  /// event).
  llvm::Expected<double> timeBatch(const CompiledGpuKernel &kernel);
  /// Whether the prepared batch replays a graph (of `kernel`).
  bool isBatchGraph(const CompiledGpuKernel &kernel) const {
    return graph && graphKernel == &kernel;
  }

private:
  GpuWorkload(const normjit_kernel_spec_t &spec, int64_t rows, int device,
              unsigned seed);
  llvm::Error allocate();
  llvm::Error uploadInputs();

  /// One device buffer and the host buffer it mirrors.
  struct Mirror {
    void *device = nullptr;
    void *host = nullptr;
    size_t bytes = 0;
  };
  Workload host;
  int device;
  normjit_run_args_t hostArgs{};
  normjit_run_args_t args{};
  Mirror x, residual, gamma, beta, y, sum, mean, rstd;
  void *stream = nullptr;
  normjit_cuda_event_t *start = nullptr;
  normjit_cuda_event_t *end = nullptr;
  normjit_cuda_graph_t *graph = nullptr; ///< the batch, when recorded
  const CompiledGpuKernel *graphKernel = nullptr; ///< what `graph` replays
  int batch = 1;

  /// Forgets the recorded batch.
  void dropBatch();

  /// Records `count` launches into `graph` (left null when it cannot).
  void recordBatch(const CompiledGpuKernel &kernel, int count);
  /// Seconds between two events around what `submit` puts on the stream.
  template <typename Submit> llvm::Expected<double> timeEvents(Submit submit);
};

/// Times `kernel` on `workload` with CUDA events: `warmup` launches, then
/// samples of a batch of launches between two events (the batch sized so a
/// sample lasts at least minSampleSeconds, replayed from a CUDA graph
/// where the driver can: see GpuWorkload::prepareBatch), until the median
/// is stable, or maxSamples or maxSeconds is reached. With coldCache, L2 is
/// flushed before every sample and a sample is one launch.
llvm::Expected<Timing> timeGpuKernel(const CompiledGpuKernel &kernel,
                                     GpuWorkload &workload,
                                     const TimingOptions &options);

} // namespace normjit::tuner

#endif // NORMJIT_TUNER_MEASURE_H
