//===- SearchSpace.cpp - the CPU configs worth trying for a spec ----------===//
//
// Part of normjit. Implements buildCpuSearchSpace.
//
//===----------------------------------------------------------------------===//

#include "normjit/tuner/SearchSpace.h"

#include <algorithm>

using namespace normjit;

std::vector<CpuConfig>
normjit::tuner::buildCpuSearchSpace(const normjit_kernel_spec_t &spec,
                                    int64_t rows, const HostCpu &host,
                                    int64_t streamingThresholdBytes) {
  CpuConfig base = getDefaultCpuConfig(spec, host);
  std::vector<CpuConfig> space = {base};
  auto add = [&](const CpuConfig &config) {
    if (llvm::Error error = validateCpuConfig(config)) {
      llvm::consumeError(std::move(error)); // never generate what can't run
      return;
    }
    if (std::find(space.begin(), space.end(), config) == space.end())
      space.push_back(config);
  };

  int64_t cols = spec.cols;
  int64_t native = host.nativeVectorWidth();
  std::vector<int64_t> widths;
  for (int64_t width = 4; width <= 2 * native; width *= 2)
    widths.push_back(width);

  int64_t cores = std::max<int64_t>(1, host.cores);
  rows = std::max<int64_t>(rows, 1);
  std::vector<int64_t> rowsPerTask = {base.rowsPerTask};
  for (int64_t tasksPerCore : {1, 4, 16})
    rowsPerTask.push_back(std::max<int64_t>(
        1, (rows + cores * tasksPerCore - 1) / (cores * tasksPerCore)));
  std::sort(rowsPerTask.begin(), rowsPerTask.end());
  rowsPerTask.erase(std::unique(rowsPerTask.begin(), rowsPerTask.end()),
                    rowsPerTask.end());

  int64_t outputBytes =
      rows * cols * static_cast<int64_t>(normjit_dtype_size(spec.y_dtype));
  std::vector<bool> streaming = {false};
  if (outputBytes > streamingThresholdBytes)
    streaming.push_back(true);
  std::vector<int> threads = {0};
  if (cores > 1 && rows * cols < (1 << 18))
    threads.push_back(1);
  std::vector<bool> welford = {false};
  if (spec.op == NORMJIT_LAYER_NORM)
    welford.push_back(true);
  std::vector<bool> fuse = {true};
  if (spec.has_residual)
    fuse.push_back(false);

  for (int64_t width : widths)
    for (int64_t accumulators : {1, 2, 4, 8}) {
      // A group of vectors longer than the row only adds masked work.
      if (accumulators > 1 && width * accumulators > std::max(cols, width))
        continue;
      for (bool useWelford : welford)
        for (bool nt : streaming)
          for (int64_t perTask : rowsPerTask)
            for (int threadCount : threads)
              for (bool fused : fuse) {
                CpuConfig config;
                config.vectorWidth = width;
                config.accumulators = accumulators;
                config.welford = useWelford;
                config.streamingStores = nt;
                config.rowsPerTask = perTask;
                config.threads = threadCount;
                config.fuseResidual = fused;
                add(config);
              }
    }
  return space;
}
