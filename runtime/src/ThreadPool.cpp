//===- ThreadPool.cpp - worker threads for data-parallel loops ------------===//
//
// Part of normjit. Implements ThreadPool.h. Each loop is a job on the
// caller's stack that free workers may join; chunks are claimed with atomic
// counters, one per contiguous segment of the loop, so the caller never
// waits for a sleeping worker to wake, only for the workers that joined to
// finish the chunks they claimed.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
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

/// The calling thread's floating-point control word (on x86, MXCSR: the
/// rounding mode and flush-to-zero / denormals-are-zero), which a loop's
/// chunks run under on every thread that takes part.
/// (The exception flags, MXCSR's low six bits, are left out.)
inline unsigned getFloatControl() {
#if defined(__SSE__)
  return __builtin_ia32_stmxcsr() & ~0x3fu;
#else
  return 0;
#endif
}

inline void setFloatControl(unsigned control) {
#if defined(__SSE__)
  __builtin_ia32_ldmxcsr((__builtin_ia32_stmxcsr() & 0x3fu) | control);
#else
  (void)control;
#endif
}

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

/// A contiguous range of a loop's chunks, claimed in units of `Job::unit`
/// chunks: by its owner from the front, by the others from the back.
struct alignas(64) Segment {
  /// The unclaimed units [front, back), packed as front << 32 | back.
  std::atomic<uint64_t> range{0};
  uint64_t first = 0; ///< the segment's first chunk
  uint64_t end = 0;   ///< one past its last chunk

  /// Claims the first (or last) unclaimed unit; false when none is left.
  bool claim(bool fromBack, uint64_t &unit) {
    uint64_t packed = range.load(std::memory_order_relaxed);
    for (;;) {
      uint64_t front = packed >> 32, back = packed & 0xffffffffu;
      if (front >= back)
        return false;
      uint64_t next =
          fromBack ? (front << 32) | (back - 1) : ((front + 1) << 32) | back;
      if (range.compare_exchange_weak(packed, next,
                                      std::memory_order_relaxed)) {
        unit = fromBack ? back - 1 : front;
        return true;
      }
    }
  }

  bool empty() const {
    uint64_t packed = range.load(std::memory_order_relaxed);
    return (packed >> 32) >= (packed & 0xffffffffu);
  }
};

/// Segments a job keeps on the caller's stack; more are allocated.
constexpr unsigned kInlineSegments = 8;
/// The most units a segment holds (they must fit 32 bits).
constexpr uint64_t kMaxUnits = 0xffffffffu;

/// One parallelFor call that runs on workers; lives on the caller's stack.
///
/// The chunks are split into one contiguous segment per thread that may
/// take part: each participant claims the chunks of its own segment front
/// to back, then takes the others' from their backs. Every thread thus
/// streams through adjacent rows, which the hardware prefetchers follow
/// across chunk boundaries (chunks dealt out round-robin made 4096x768 f32
/// LayerNorm 1.2x slower on two threads with 21-row chunks), while the
/// segment of a participant that is late or never joins is still taken by
/// the others.
struct Job {
  const Body *fn = nullptr;
  /// The caller's floating-point control word, which the workers take on
  /// while they run the job's chunks (a host that sets flush-to-zero gets
  /// it on every row, not only on those its own thread runs).
  unsigned floatControl = 0;
  int64_t n = 0;
  int64_t grain = 1;
  uint64_t numChunks = 0;
  /// Chunks per claim: 1 unless a segment has more than kMaxUnits chunks.
  uint64_t unit = 1;
  /// How many more workers may join; guarded by the pool's mutex.
  unsigned openSlots = 0;
  /// Workers that joined and have not finished: incremented under the pool's
  /// mutex, decremented without it. A worker touches the job no more once
  /// its decrement is done.
  alignas(64) std::atomic<unsigned> active{0};
  /// Participants so far (the caller is participant 0); a joining worker
  /// takes the next number, which picks its own segment.
  std::atomic<unsigned> participants{1};
  unsigned numSegments = 1;
  Segment *segments = nullptr;
  Segment inlineSegments[kInlineSegments];
  std::unique_ptr<Segment[]> heapSegments;

  /// Splits the chunks into `count` segments of (nearly) equal size.
  void split(unsigned count) {
    numSegments = std::max(1u, count);
    if (numSegments <= kInlineSegments) {
      segments = inlineSegments;
    } else {
      heapSegments = std::make_unique<Segment[]>(numSegments);
      segments = heapSegments.get();
    }
    uint64_t share = numChunks / numSegments, extra = numChunks % numSegments;
    uint64_t longest = share + (extra ? 1 : 0);
    unit = std::max<uint64_t>(1, longest / kMaxUnits + 1);
    uint64_t first = 0;
    for (unsigned k = 0; k < numSegments; ++k) {
      Segment &segment = segments[k];
      uint64_t length = share + (k < extra ? 1 : 0);
      segment.first = first;
      segment.end = first + length;
      segment.range.store((length + unit - 1) / unit,
                          std::memory_order_relaxed);
      first = segment.end;
    }
  }

  /// Whether any chunk is still unclaimed (a hint: it may change at once).
  bool hasChunksLeft() const {
    for (unsigned k = 0; k < numSegments; ++k)
      if (!segments[k].empty())
        return true;
    return false;
  }

  /// Runs the chunks of one claimed unit of `segment`.
  void runUnit(const Segment &segment, uint64_t index) {
    uint64_t chunk = segment.first + index * unit;
    uint64_t last = std::min(segment.end, chunk + unit);
    for (; chunk < last; ++chunk) {
      int64_t begin = static_cast<int64_t>(chunk) * grain;
      (*fn)(begin, begin + std::min(grain, n - begin));
    }
  }

  /// Claims and runs chunks, the participant's own segment first, until
  /// none is left.
  void run(unsigned participant) {
    for (unsigned offset = 0; offset < numSegments; ++offset) {
      Segment &segment = segments[(participant + offset) % numSegments];
      bool fromBack = offset != 0;
      for (uint64_t index; segment.claim(fromBack, index);)
        runUnit(segment, index);
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
      if (job->openSlots == 0 || !job->hasChunksLeft()) {
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
        unsigned participant =
            job->participants.fetch_add(1, std::memory_order_relaxed);
        lock.unlock();
        unsigned ownControl = getFloatControl();
        if (job->floatControl != ownControl)
          setFloatControl(job->floatControl);
        job->run(participant);
        if (job->floatControl != ownControl)
          setFloatControl(ownControl);
        // The caller reads what the chunks wrote once the job is done.
        normjit::runtime::fenceNonTemporalStores();
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

    job.run(0);

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
  job.floatControl = getFloatControl();
  job.n = n;
  job.grain = grain;
  job.numChunks = numChunks;
  job.openSlots =
      static_cast<unsigned>(std::min<uint64_t>(threads - 1, numChunks - 1));
  job.split(job.openSlots + 1);
  impl->run(job);
}

namespace {
/// The process-wide pool: created on first use, never destroyed (no join
/// at exit), and dropped in the child of a fork, whose copy of it has no
/// workers and whose mutex or condition variables a parent's thread may
/// have held: the child's first loop creates a pool of its own.
std::atomic<ThreadPool *> globalPool{nullptr};

void dropGlobalPoolInChild() {
  globalPool.store(nullptr, std::memory_order_relaxed);
}
} // namespace

ThreadPool &ThreadPool::global() {
  static const bool registered =
      ::pthread_atfork(nullptr, nullptr, &dropGlobalPoolInChild) == 0;
  (void)registered;
  ThreadPool *pool = globalPool.load(std::memory_order_acquire);
  if (pool)
    return *pool;
  auto *fresh = new ThreadPool();
  if (globalPool.compare_exchange_strong(pool, fresh,
                                         std::memory_order_acq_rel))
    return *fresh;
  delete fresh; // another thread's came first
  return *pool;
}
