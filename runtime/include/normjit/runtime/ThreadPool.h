//===- ThreadPool.h - worker threads for data-parallel loops ----*- C++ -*-===//
//
// Part of normjit. A fixed pool of worker threads on which CPU kernels split
// their rows, built for a dispatch latency of microseconds. Uses no
// exceptions; builds without MLIR or LLVM.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_RUNTIME_THREADPOOL_H
#define NORMJIT_RUNTIME_THREADPOOL_H

#include <cstdint>
#include <functional>
#include <memory>

namespace normjit::runtime {

/// Orders the calling thread's earlier non-temporal (streaming) stores
/// before its later memory operations. x86's streaming stores are weakly
/// ordered: without this, another thread that synchronizes with this one
/// (a pool's join, a release store) could still read stale data from
/// their destination. CPU kernels with `streaming_stores` issue them; a
/// fence with none pending costs a few cycles.
inline void fenceNonTemporalStores() {
#if defined(__SSE__)
  __builtin_ia32_sfence();
#endif
}

/// A fixed set of worker threads that run data-parallel loops for CPU kernels.
///
/// parallelFor may be called from several threads at once: each call is a
/// job whose chunks are claimed with an atomic counter by the calling thread
/// and by whichever workers are free. A call made from one of this pool's
/// workers (a nested loop) runs inline on that worker.
class ThreadPool {
public:
  /// `numThreads` counts the calling thread too; 0 means
  /// std::thread::hardware_concurrency() (at least 1). If the system refuses
  /// to start a worker, the pool keeps the ones it got (see size()).
  explicit ThreadPool(unsigned numThreads = 0);
  /// Stops and joins the workers. No parallelFor may be running.
  ~ThreadPool();

  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  /// The number of threads a loop can run on, the caller included.
  unsigned size() const;

  /// Calls fn(begin, end) for consecutive chunks [begin, end) covering
  /// [0, n), each at most `grain` long (grain <= 0 is treated as 1), on up to
  /// `maxThreads` threads including the caller (0 = size()). Blocks until
  /// every chunk is done. n <= 0 returns at once. When one chunk covers n or
  /// maxThreads == 1 it runs inline on the caller with no synchronization at
  /// all (small inputs must not pay for dispatch). Chunks run in no
  /// particular order, each under the caller's floating-point control word
  /// (x86 MXCSR: rounding, flush-to-zero); `fn` must not throw.
  void parallelFor(int64_t n, int64_t grain, unsigned maxThreads,
                   const std::function<void(int64_t, int64_t)> &fn);

  /// The process-wide pool with one thread per core, created on first use
  /// and never destroyed. In the child of a fork() the parent's pool is
  /// left behind (its workers did not come along) and the child's first
  /// use creates a new one.
  static ThreadPool &global();

private:
  struct Impl;
  std::unique_ptr<Impl> impl;
};

} // namespace normjit::runtime

#endif // NORMJIT_RUNTIME_THREADPOOL_H
