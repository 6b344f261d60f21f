//===- ThreadPool.cpp - worker threads for data-parallel loops ------------===//
//
// Part of normjit. Implements ThreadPool.h. Each loop is a job on the
// caller's stack that free workers may join; chunks are claimed with one
// atomic counter, so the caller never waits for a sleeping worker to wake,
// only for the workers that joined to finish the chunks they claimed.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <pthread.h>
#include <signal.h>

using normjit::runtime::ThreadPool;

namespace {

/// Rounds that an idle worker, or a caller waiting for workers, spins before
/// it sleeps: enough to catch a kernel's next loop when loops run back to
/// back, bounded so that an idle pool does not hold the cores.
constexpr unsigned kSpinRounds = 1u << 12;

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

using Body = std::function<void(int64_t, int64_t)>;

/// Runs every chunk of a loop, in order, on the calling thread.
void runInline(int64_t n, int64_t grain, const Body &fn) {
  for (int64_t begin = 0; begin < n;) {
    int64_t end = begin + std::min(grain, n - begin);
    fn(begin, end);
    begin = end;
  }
}

/// One parallelFor call that runs on workers; lives on the caller's stack.
struct Job {
  const Body *fn = nullptr;
  int64_t n = 0;
  int64_t grain = 1;
  uint64_t numChunks = 0;
  /// How many more workers may join; guarded by the pool's mutex.
  unsigned openSlots = 0;
  /// Workers that joined and have not finished: incremented under the pool's
  /// mutex, decremented without it. A worker touches the job no more once
  /// its decrement is done.
  alignas(64) std::atomic<unsigned> active{0};
  /// The next chunk to claim; on its own cache line.
  alignas(64) std::atomic<uint64_t> next{0};

  /// Claims and runs chunks until none is left.
  void run() {
    for (;;) {
      uint64_t chunk = next.fetch_add(1, std::memory_order_relaxed);
      if (chunk >= numChunks)
        return;
      int64_t begin = static_cast<int64_t>(chunk) * grain;
      (*fn)(begin, begin + std::min(grain, n - begin));
    }
  }
};

/// The pool whose worker this thread is, if any; a loop started there runs
/// inline instead of waiting on the pool it is part of.
thread_local const void *workerOf = nullptr;

} // namespace

struct ThreadPool::Impl {
  std::mutex mutex;
  /// Idle workers sleep here until `generation` changes.
  std::condition_variable workPosted;
  /// Callers sleep here until the workers in their job have left it.
  std::condition_variable workerLeft;
  /// Jobs that workers may still join; guarded by `mutex`.
  std::vector<Job *> jobs;
  /// Bumped under `mutex` whenever a job is posted or the pool stops, so
  /// that spinning workers notice without taking the lock.
  std::atomic<uint64_t> generation{0};
  /// Guarded by `mutex`.
  bool stopping = false;
  std::vector<pthread_t> workers;

  static void *workerMain(void *self) {
    static_cast<Impl *>(self)->workerLoop();
    return nullptr;
  }

  /// Takes a place in the first job that has one and chunks left, dropping
  /// jobs that have neither from the list.
  Job *joinLocked() {
    for (size_t i = 0; i < jobs.size();) {
      Job *job = jobs[i];
      if (job->openSlots == 0 ||
          job->next.load(std::memory_order_relaxed) >= job->numChunks) {
        jobs.erase(jobs.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      if (--job->openSlots == 0)
        jobs.erase(jobs.begin() + static_cast<std::ptrdiff_t>(i));
      job->active.fetch_add(1, std::memory_order_relaxed);
      return job;
    }
    return nullptr;
  }

  void workerLoop() {
    workerOf = this;
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      if (Job *job = joinLocked()) {
        lock.unlock();
        job->run();
        bool last = job->active.fetch_sub(1, std::memory_order_acq_rel) == 1;
        // The caller may return, and `job` be gone, from here on.
        lock.lock();
        if (last)
          workerLeft.notify_all();
        continue;
      }
      if (stopping)
        return;
      uint64_t seen = generation.load(std::memory_order_relaxed);
      lock.unlock();
      for (unsigned i = 0; i < kSpinRounds &&
                           generation.load(std::memory_order_relaxed) == seen;
           ++i)
        cpuRelax();
      lock.lock();
      workPosted.wait(lock, [&] {
        return generation.load(std::memory_order_relaxed) != seen;
      });
    }
  }

  /// Runs `job` on the caller and on the workers that join it.
  void run(Job &job) {
    unsigned wanted = job.openSlots;
    {
      std::lock_guard<std::mutex> lock(mutex);
      jobs.push_back(&job);
      generation.fetch_add(1, std::memory_order_relaxed);
    }
    for (unsigned i = 0; i < wanted; ++i)
      workPosted.notify_one();

    job.run();

    // Every chunk is claimed. Close the job to latecomers, then wait for the
    // workers that joined to finish theirs: spin first, then sleep.
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = std::find(jobs.begin(), jobs.end(), &job);
      if (it != jobs.end())
        jobs.erase(it);
    }
    for (unsigned i = 0;
         i < kSpinRounds && job.active.load(std::memory_order_acquire) != 0;
         ++i)
      cpuRelax();
    if (job.active.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mutex);
      workerLeft.wait(lock, [&] {
        return job.active.load(std::memory_order_acquire) == 0;
      });
    }
  }
};

ThreadPool::ThreadPool(unsigned numThreads) : impl(std::make_unique<Impl>()) {
  if (numThreads == 0)
    numThreads = std::max(1u, std::thread::hardware_concurrency());
  // Workers start with every signal blocked, so that signals go to the
  // application's own threads.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  for (unsigned i = 1; i < numThreads; ++i) {
    pthread_t thread;
    if (pthread_create(&thread, nullptr, &Impl::workerMain, impl.get()) != 0)
      break;
    impl->workers.push_back(thread);
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(impl->mutex);
    impl->stopping = true;
    impl->generation.fetch_add(1, std::memory_order_relaxed);
  }
  impl->workPosted.notify_all();
  for (pthread_t thread : impl->workers)
    pthread_join(thread, nullptr);
}

unsigned ThreadPool::size() const {
  return static_cast<unsigned>(impl->workers.size()) + 1;
}

void ThreadPool::parallelFor(int64_t n, int64_t grain, unsigned maxThreads,
                             const Body &fn) {
  if (n <= 0)
    return;
  if (grain <= 0)
    grain = 1;
  uint64_t numChunks = static_cast<uint64_t>((n - 1) / grain) + 1;
  unsigned threads = maxThreads == 0 ? size() : std::min(maxThreads, size());
  if (numChunks == 1 || threads <= 1 || workerOf == impl.get()) {
    runInline(n, grain, fn);
    return;
  }
  Job job;
  job.fn = &fn;
  job.n = n;
  job.grain = grain;
  job.numChunks = numChunks;
  job.openSlots =
      static_cast<unsigned>(std::min<uint64_t>(threads - 1, numChunks - 1));
  impl->run(job);
}

ThreadPool &ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}
