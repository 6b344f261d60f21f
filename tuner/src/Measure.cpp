//===- Measure.cpp - check and time one kernel on a workload --------------===//
//
// Part of normjit. Implements Workload, timeKernel, GpuWorkload and
// timeGpuKernel.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/Measure.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

using namespace normjit;
using namespace normjit::tuner;

namespace {
using Clock = std::chrono::steady_clock;

void fillRandom(Buffer &buffer, int64_t rows, int64_t cols, std::mt19937 &rng,
                float center, float scale) {
  std::normal_distribution<float> normal(center, scale);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      buffer.set(r, c, normal(rng));
}

/// Rows of a workload that get values of their own (the check workload has
/// fewer, so every one of its rows is distinct).
constexpr int64_t kDistinctRows = 128;

/// Copies rows [0, distinct) over rows [distinct, rows) of a contiguous
/// buffer.
void replicateRows(Buffer &buffer, int64_t distinct, int64_t rows,
                   int64_t cols, normjit_dtype_t dtype) {
  if (distinct <= 0)
    return;
  size_t block = static_cast<size_t>(distinct * cols) * normjit_dtype_size(dtype);
  auto *bytes = static_cast<char *>(buffer.data());
  for (int64_t row = distinct; row < rows; row += distinct) {
    int64_t count = std::min(distinct, rows - row);
    std::memcpy(bytes + static_cast<size_t>(row * cols) * normjit_dtype_size(dtype),
                bytes, std::min(block, static_cast<size_t>(count * cols) *
                                           normjit_dtype_size(dtype)));
  }
}

/// Whether `samples` (seconds, in the order taken) are enough: maxSamples
/// reached, or minSamples with an interquartile range within stableSpread
/// of the median or maxSeconds spent.
bool enoughSamples(const std::vector<double> &samples,
                   const TimingOptions &options, double elapsed) {
  int count = static_cast<int>(samples.size());
  if (count >= options.maxSamples)
    return true;
  if (count < options.minSamples)
    return false;
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  double median = sorted[sorted.size() / 2];
  double iqr = sorted[sorted.size() * 3 / 4] - sorted[sorted.size() / 4];
  return iqr <= options.stableSpread * median || elapsed >= options.maxSeconds;
}

/// The median, minimum, spread and GB/s of per-call `samples`.
Timing summarize(std::vector<double> samples, double bytes) {
  std::sort(samples.begin(), samples.end());
  Timing timing;
  timing.samples = static_cast<int>(samples.size());
  timing.medianSeconds = samples[samples.size() / 2];
  timing.minSeconds = samples.front();
  timing.spread = (samples[samples.size() * 3 / 4] - samples[samples.size() / 4]) /
                  timing.medianSeconds;
  timing.gbps = bytes / timing.medianSeconds / 1e9;
  return timing;
}

/// Writes a buffer larger than the last-level cache, evicting the workload.
void evictCaches() {
  static std::vector<char> junk(96 << 20);
  static char value = 0;
  ++value;
  for (size_t i = 0; i < junk.size(); i += 64)
    junk[i] = value;
}
} // namespace

Workload::Workload(const normjit_kernel_spec_t &spec, int64_t rows,
                   unsigned seed)
    : spec(spec), rows(rows), x(spec.x_dtype, rows, spec.cols, spec.cols),
      residual(spec.residual_dtype, spec.has_residual ? rows : 0, spec.cols,
               spec.cols),
      gamma(spec.gamma_dtype, 1, spec.cols, spec.cols),
      beta(spec.beta_dtype, 1, spec.cols, spec.cols),
      y(spec.y_dtype, rows, spec.cols, spec.cols),
      sum(spec.sum_dtype, spec.store_sum ? rows : 0, spec.cols, spec.cols),
      mean(static_cast<size_t>(std::max<int64_t>(rows, 1))),
      rstd(static_cast<size_t>(std::max<int64_t>(rows, 1))) {
  std::mt19937 rng(seed);
  // Random rows up to kDistinctRows, then copies of them: the kernels'
  // speed does not depend on the values, and filling hundreds of MiB with
  // normal variates would cost seconds of the tuning budget.
  int64_t distinct = std::min(rows, kDistinctRows);
  fillRandom(x, distinct, spec.cols, rng, 0.5f, 1.0f);
  replicateRows(x, distinct, rows, spec.cols, spec.x_dtype);
  if (spec.has_residual) {
    fillRandom(residual, distinct, spec.cols, rng, 0.0f, 1.0f);
    replicateRows(residual, distinct, rows, spec.cols, spec.residual_dtype);
  }
  fillRandom(gamma, 1, spec.cols, rng, 1.0f, 0.5f);
  fillRandom(beta, 1, spec.cols, rng, 0.0f, 0.5f);
}

normjit_run_args_t Workload::getArgs() {
  return makeRunArgs(spec, rows, x, residual, gamma, beta, y, sum, mean.data(),
                     rstd.data());
}

double Workload::getBytes(const normjit_kernel_spec_t &spec, int64_t rows) {
  auto size = [](normjit_dtype_t dtype) {
    return static_cast<double>(normjit_dtype_size(dtype));
  };
  double perRow = size(spec.x_dtype) + size(spec.y_dtype);
  if (spec.has_residual)
    perRow += size(spec.residual_dtype);
  if (spec.store_sum)
    perRow += size(spec.sum_dtype);
  double bytes = perRow * static_cast<double>(rows * spec.cols);
  if (spec.has_gamma)
    bytes += size(spec.gamma_dtype) * spec.cols;
  if (spec.has_beta)
    bytes += size(spec.beta_dtype) * spec.cols;
  bytes += 4.0 * rows * ((spec.store_mean ? 1 : 0) + (spec.store_rstd ? 1 : 0));
  return bytes;
}

void Workload::poisonOutputs() {
  std::memset(y.data(), 0xff, static_cast<size_t>(rows * spec.cols) *
                                  normjit_dtype_size(spec.y_dtype));
  if (spec.store_sum)
    std::memset(sum.data(), 0xff, static_cast<size_t>(rows * spec.cols) *
                                      normjit_dtype_size(spec.sum_dtype));
  std::fill(mean.begin(), mean.end(), NAN);
  std::fill(rstd.begin(), rstd.end(), NAN);
}

llvm::Error Workload::check(const Kernel &kernel) {
  poisonOutputs();
  if (llvm::Error error = kernel.run(getArgs()))
    return error;
  return checkOutputs();
}

llvm::Error Workload::checkOutputs() {
  if (!reference)
    reference = std::make_unique<ReferenceResult>(normjit::tuner::reference(
        spec, rows, x, spec.has_residual ? &residual : nullptr,
        spec.has_gamma ? &gamma : nullptr, spec.has_beta ? &beta : nullptr));
  Comparison comparison = compareWithReference(
      spec, *reference, rows, y, spec.store_sum ? &sum : nullptr,
      spec.store_mean ? mean.data() : nullptr,
      spec.store_rstd ? rstd.data() : nullptr,
      spec.has_gamma ? &gamma : nullptr, spec.has_beta ? &beta : nullptr);
  if (comparison.ok())
    return llvm::Error::success();
  std::string message = "wrong result: " +
                        std::to_string(comparison.mismatches) +
                        " mismatches against the fp64 reference";
  for (const std::string &example : comparison.examples)
    message += "; " + example;
  return makeError(NORMJIT_INTERNAL, message);
}

llvm::Expected<Timing> normjit::tuner::timeKernel(const Kernel &kernel,
                                                  Workload &workload,
                                                  const TimingOptions &options) {
  normjit_run_args_t args = workload.getArgs();
  auto call = [&]() -> llvm::Error { return kernel.run(args); };
  for (int i = 0; i < options.warmup; ++i)
    if (llvm::Error error = call())
      return std::move(error);

  // Batch calls so that one sample is long enough for the clock.
  int batch = 1;
  {
    auto begin = Clock::now();
    if (llvm::Error error = call())
      return std::move(error);
    double once = std::chrono::duration<double>(Clock::now() - begin).count();
    if (!options.coldCache && once < options.minSampleSeconds)
      batch = static_cast<int>(
          std::min(1000.0, options.minSampleSeconds / std::max(once, 1e-9)));
    batch = std::max(batch, 1);
  }

  std::vector<double> samples;
  auto start = Clock::now();
  while (true) {
    if (options.coldCache)
      evictCaches();
    auto begin = Clock::now();
    for (int i = 0; i < batch; ++i)
      if (llvm::Error error = call())
        return std::move(error);
    samples.push_back(std::chrono::duration<double>(Clock::now() - begin).count() /
                      batch);
    if (enoughSamples(samples, options,
                      std::chrono::duration<double>(Clock::now() - start)
                          .count()))
      break;
  }
  return summarize(std::move(samples), workload.getBytes());
}

//===----------------------------------------------------------------------===//
// GPU
//===----------------------------------------------------------------------===//

GpuWorkload::GpuWorkload(const normjit_kernel_spec_t &spec, int64_t rows,
                         int device, unsigned seed)
    : host(spec, rows, seed), device(device) {
  hostArgs = host.getArgs();
}

GpuWorkload::~GpuWorkload() {
  // Nothing may still run on the buffers when they are freed.
  if (stream)
    normjit_cuda_synchronize(device);
  normjit_cuda_graph_destroy(graph);
  normjit_cuda_event_destroy(start);
  normjit_cuda_event_destroy(end);
  if (stream)
    normjit_cuda_stream_destroy(stream);
  for (Mirror *mirror : {&x, &residual, &gamma, &beta, &y, &sum, &mean, &rstd})
    normjit_cuda_free(mirror->device);
  // Errors while tearing down have nowhere to go; drop their messages.
  normjit_clear_error();
}

llvm::Expected<std::unique_ptr<GpuWorkload>>
GpuWorkload::create(const normjit_kernel_spec_t &spec, int64_t rows,
                    int device, unsigned seed) {
  if (llvm::Error error = statusToError(normjit_kernel_spec_validate(&spec)))
    return std::move(error);
  if (rows < 0)
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "a workload needs a row count >= 0, got " +
                         std::to_string(rows));
  // The driver first: without one there is no point in filling buffers.
  normjit_cuda_device_info_t info;
  if (normjit_status_t status = normjit_cuda_device_info(device, &info))
    return statusToError(status);
  std::unique_ptr<GpuWorkload> workload(
      new GpuWorkload(spec, rows, device, seed));
  if (llvm::Error error = workload->allocate())
    return std::move(error);
  if (llvm::Error error = workload->uploadInputs())
    return std::move(error);
  return workload;
}

llvm::Error GpuWorkload::allocate() {
  const normjit_kernel_spec_t &spec = host.getSpec();
  size_t elements = static_cast<size_t>(host.getRows() * spec.cols);
  size_t rows = static_cast<size_t>(host.getRows());
  auto bytes = [&](bool used, normjit_dtype_t dtype, size_t count) {
    return used ? count * normjit_dtype_size(dtype) : 0;
  };
  struct Plan {
    Mirror *mirror;
    const void *host;
    size_t bytes;
  } plans[] = {
      {&x, hostArgs.x, bytes(true, spec.x_dtype, elements)},
      {&residual, hostArgs.residual,
       bytes(spec.has_residual, spec.residual_dtype, elements)},
      {&gamma, hostArgs.gamma,
       bytes(spec.has_gamma, spec.gamma_dtype, static_cast<size_t>(spec.cols))},
      {&beta, hostArgs.beta,
       bytes(spec.has_beta, spec.beta_dtype, static_cast<size_t>(spec.cols))},
      {&y, hostArgs.y, bytes(true, spec.y_dtype, elements)},
      {&sum, hostArgs.sum, bytes(spec.store_sum, spec.sum_dtype, elements)},
      {&mean, hostArgs.mean, spec.store_mean ? rows * sizeof(float) : 0},
      {&rstd, hostArgs.rstd, spec.store_rstd ? rows * sizeof(float) : 0},
  };
  for (const Plan &plan : plans) {
    // The host buffers are the Workload's own (outputs writable).
    plan.mirror->host = const_cast<void *>(plan.host);
    plan.mirror->bytes = plan.bytes;
    if (plan.bytes == 0 || !plan.host)
      continue;
    if (normjit_status_t status =
            normjit_cuda_malloc(device, plan.bytes, &plan.mirror->device))
      return statusToError(status);
  }
  args = hostArgs;
  args.x = x.device;
  args.residual = residual.device;
  args.gamma = gamma.device;
  args.beta = beta.device;
  args.y = y.device;
  args.sum = sum.device;
  args.mean = static_cast<float *>(mean.device);
  args.rstd = static_cast<float *>(rstd.device);
  if (normjit_status_t status = normjit_cuda_stream_create(device, &stream))
    return statusToError(status);
  if (normjit_status_t status = normjit_cuda_event_create(device, &start))
    return statusToError(status);
  if (normjit_status_t status = normjit_cuda_event_create(device, &end))
    return statusToError(status);
  return llvm::Error::success();
}

llvm::Error GpuWorkload::uploadInputs() {
  for (const Mirror *mirror : {&x, &residual, &gamma, &beta})
    if (mirror->device)
      if (normjit_status_t status = normjit_cuda_memcpy_htod(
              mirror->device, mirror->host, mirror->bytes))
        return statusToError(status);
  return llvm::Error::success();
}

llvm::Error GpuWorkload::check(const CompiledGpuKernel &kernel) {
  // Nothing earlier may still run on the stream (the copies below do not
  // wait for it); then the inputs as they were (whatever an earlier
  // candidate did) and the outputs poisoned, on the device and the host.
  if (normjit_status_t status = normjit_cuda_synchronize(device))
    return statusToError(status);
  if (llvm::Error error = uploadInputs())
    return error;
  for (const Mirror *mirror : {&y, &sum, &mean, &rstd})
    if (mirror->device)
      if (normjit_status_t status =
              normjit_cuda_memset(mirror->device, 0xff, mirror->bytes))
        return statusToError(status);
  host.poisonOutputs();
  if (host.getRows() > 0)
    if (llvm::Error error = kernel.run(args, stream))
      return error;
  // The stream does not synchronize with the copies: wait for the kernel
  // (this is also where a fault in it shows up).
  if (normjit_status_t status = normjit_cuda_synchronize(device))
    return statusToError(status);
  for (const Mirror *mirror : {&y, &sum, &mean, &rstd})
    if (mirror->device)
      if (normjit_status_t status = normjit_cuda_memcpy_dtoh(
              mirror->host, mirror->device, mirror->bytes))
        return statusToError(status);
  return host.checkOutputs();
}

template <typename Submit>
llvm::Expected<double> GpuWorkload::timeEvents(Submit submit) {
  if (normjit_status_t status = normjit_cuda_event_record(start, stream))
    return statusToError(status);
  if (llvm::Error error = submit())
    return std::move(error);
  if (normjit_status_t status = normjit_cuda_event_record(end, stream))
    return statusToError(status);
  float ms = 0;
  if (normjit_status_t status = normjit_cuda_event_elapsed_ms(start, end, &ms))
    return statusToError(status);
  // A driver that gives a negative or non-finite time is not measuring.
  if (!(ms >= 0) || !std::isfinite(ms))
    return makeError(NORMJIT_DEVICE_ERROR,
                     "CUDA events gave " + std::to_string(ms) +
                         " ms between two records; no time to trust");
  return static_cast<double>(ms) / 1e3;
}

llvm::Expected<double> GpuWorkload::timeLaunches(
    const CompiledGpuKernel &kernel, int count, bool flushL2) {
  if (flushL2)
    if (normjit_status_t status = normjit_cuda_flush_l2(device, stream))
      return statusToError(status);
  return timeEvents([&]() -> llvm::Error {
    for (int i = 0; i < count; ++i)
      if (llvm::Error error = kernel.run(args, stream))
        return error;
    return llvm::Error::success();
  });
}

void GpuWorkload::dropBatch() {
  normjit_cuda_graph_destroy(graph);
  graph = nullptr;
  graphKernel = nullptr;
  normjit_clear_error();
}

void GpuWorkload::recordBatch(const CompiledGpuKernel &kernel, int count) {
  dropBatch();
  if (!normjit_cuda_graphs_available() ||
      normjit_cuda_capture_begin(stream) != NORMJIT_OK) {
    normjit_clear_error();
    return;
  }
  bool recorded = true;
  for (int i = 0; i < count && recorded; ++i)
    if (llvm::Error error = kernel.run(args, stream)) {
      // Direct launches will meet the same error and report it.
      llvm::consumeError(std::move(error));
      recorded = false;
    }
  normjit_cuda_graph_t *made = nullptr;
  if (normjit_cuda_capture_end(stream, &made) != NORMJIT_OK || !recorded) {
    normjit_cuda_graph_destroy(made);
    made = nullptr;
  }
  // One untimed replay: a graph's first launch also uploads it to the
  // device, which must not land in a timed sample. A graph that cannot
  // replay leaves direct launches.
  if (made && normjit_cuda_graph_launch(made, stream) != NORMJIT_OK) {
    normjit_cuda_graph_destroy(made);
    made = nullptr;
  }
  graph = made;
  graphKernel = made ? &kernel : nullptr;
  normjit_clear_error();
}

llvm::Expected<int> GpuWorkload::prepareBatch(const CompiledGpuKernel &kernel,
                                              double onceSeconds,
                                              double minSampleSeconds) {
  auto launchesFor = [&](double seconds) {
    if (!(seconds < minSampleSeconds))
      return 1;
    return static_cast<int>(std::clamp(
        std::ceil(minSampleSeconds / std::max(seconds, 1e-9)), 1.0, 1000.0));
  };
  batch = launchesFor(onceSeconds);
  dropBatch();
  // One launch long enough for a sample has no launch rate to hide.
  if (batch == 1)
    return batch;
  recordBatch(kernel, batch);
  if (!graph || batch >= 1000)
    return batch;
  // In a graph the launches run back to back: one launch of the batch can
  // take much less than the single launch timed above.
  auto seconds = timeBatch(kernel);
  if (!seconds) {
    // The batch is launched directly then; its errors are reported there.
    llvm::consumeError(seconds.takeError());
    dropBatch();
    return batch;
  }
  int wanted = launchesFor(*seconds / batch);
  if (*seconds < minSampleSeconds && wanted > batch) {
    batch = wanted;
    recordBatch(kernel, batch);
  }
  return batch;
}

llvm::Expected<double> GpuWorkload::timeBatch(const CompiledGpuKernel &kernel) {
  // A graph replays the kernel it was recorded from, no other.
  if (!graph || graphKernel != &kernel)
    return timeLaunches(kernel, batch, /*flushL2=*/false);
  return timeEvents([&]() -> llvm::Error {
    return statusToError(normjit_cuda_graph_launch(graph, stream));
  });
}

llvm::Expected<Timing>
normjit::tuner::timeGpuKernel(const CompiledGpuKernel &kernel,
                              GpuWorkload &workload,
                              const TimingOptions &options) {
  for (int i = 0; i < options.warmup; ++i)
    if (llvm::Error error = kernel.run(workload.getArgs(), workload.getStream()))
      return std::move(error);
  // One launch (timed, which also waits for the warm-up) sizes the batch:
  // back-to-back launches between two events, so that a sample is long
  // against the events' resolution (about half a microsecond).
  auto once = workload.timeLaunches(kernel, 1, options.coldCache);
  if (!once)
    return once.takeError();
  int batch = 1;
  if (!options.coldCache) {
    auto prepared =
        workload.prepareBatch(kernel, *once, options.minSampleSeconds);
    if (!prepared)
      return prepared.takeError();
    batch = *prepared;
  }

  std::vector<double> samples;
  auto begin = Clock::now();
  while (true) {
    auto seconds = options.coldCache
                       ? workload.timeLaunches(kernel, 1, /*flushL2=*/true)
                       : workload.timeBatch(kernel);
    if (!seconds)
      return seconds.takeError();
    samples.push_back(*seconds / batch);
    if (enoughSamples(samples, options,
                      std::chrono::duration<double>(Clock::now() - begin)
                          .count()))
      break;
  }
  Timing timing = summarize(std::move(samples), workload.getBytes());
  if (!(timing.medianSeconds > 0))
    return makeError(NORMJIT_DEVICE_ERROR,
                     "CUDA events measured no time for the kernel");
  return timing;
}
