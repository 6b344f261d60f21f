//===- ThreadPoolTest.cpp - the thread pool for data-parallel loops -------===//
//
// Part of normjit. Checks that parallelFor covers every index exactly once in
// grain-sized chunks on at most the threads asked for, inline where it
// should, from concurrent callers and nested loops, and how a CPU kernel's
// launch splits its rows into tasks. Asserts nothing about timing.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/ThreadPool.h"
#include "normjit/runtime/kernel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <csignal>
#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>

using normjit::runtime::ThreadPool;

namespace {

/// Records every chunk a loop runs and the threads it runs on.
struct Recorder {
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  std::set<std::thread::id> threads;

  void add(int64_t begin, int64_t end) {
    std::lock_guard<std::mutex> lock(mutex);
    chunks.emplace_back(begin, end);
    threads.insert(std::this_thread::get_id());
  }
};

/// Runs one loop and checks it: the chunks partition [0, n) into consecutive
/// grain-sized pieces, every index is visited once, and no more threads than
/// allowed took part.
void checkLoop(ThreadPool &pool, int64_t n, int64_t grain,
               unsigned maxThreads) {
  SCOPED_TRACE("pool " + std::to_string(pool.size()) + ", n " +
               std::to_string(n) + ", grain " + std::to_string(grain) +
               ", maxThreads " + std::to_string(maxThreads));
  Recorder recorder;
  std::vector<std::atomic<int>> visits(
      static_cast<size_t>(std::max<int64_t>(n, 0)));
  pool.parallelFor(n, grain, maxThreads, [&](int64_t begin, int64_t end) {
    recorder.add(begin, end);
    for (int64_t i = begin; i < end && i >= 0 && i < n; ++i)
      visits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
  });
  if (n <= 0) {
    EXPECT_TRUE(recorder.chunks.empty());
    return;
  }
  int64_t step = grain <= 0 ? 1 : grain;
  std::sort(recorder.chunks.begin(), recorder.chunks.end());
  int64_t numChunks = (n - 1) / step + 1;
  ASSERT_EQ(static_cast<int64_t>(recorder.chunks.size()), numChunks);
  for (int64_t k = 0; k < numChunks; ++k) {
    auto [begin, end] = recorder.chunks[static_cast<size_t>(k)];
    EXPECT_EQ(begin, k * step);
    EXPECT_EQ(end, std::min(n, begin + step));
    EXPECT_LE(end - begin, step);
  }
  for (size_t i = 0; i < visits.size(); ++i)
    ASSERT_EQ(visits[i].load(), 1) << "index " << i;
  unsigned allowed =
      maxThreads == 0 ? pool.size() : std::min(maxThreads, pool.size());
  EXPECT_LE(recorder.threads.size(), static_cast<size_t>(allowed));
  if (allowed == 1 || numChunks == 1) {
    EXPECT_EQ(recorder.threads, std::set{std::this_thread::get_id()});
  }
}

} // namespace

TEST(ThreadPoolTest, SizeCountsTheCaller) {
  EXPECT_EQ(ThreadPool(1).size(), 1u);
  EXPECT_EQ(ThreadPool(3).size(), 3u);
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(ThreadPool(0).size(), cores);
  EXPECT_EQ(ThreadPool().size(), cores);
  EXPECT_EQ(ThreadPool::global().size(), cores);
  EXPECT_EQ(&ThreadPool::global(), &ThreadPool::global());
}

TEST(ThreadPoolTest, VisitsEveryIndexExactlyOnce) {
  const int64_t sizes[] = {-3, 0, 1, 2, 3, 5, 17, 64, 1000};
  const int64_t grains[] = {
      -1, 0, 1, 3, 16, 1000, 5000, std::numeric_limits<int64_t>::max()};
  const unsigned maxThreads[] = {0, 1, 2, 3, 64};
  for (unsigned threads : {1u, 2u, 4u, 8u}) {
    ThreadPool pool(threads);
    ASSERT_EQ(pool.size(), threads);
    for (int64_t n : sizes)
      for (int64_t grain : grains)
        for (unsigned limit : maxThreads)
          checkLoop(pool, n, grain, limit);
  }
}

TEST(ThreadPoolTest, HugeRangesDoNotOverflow) {
  ThreadPool pool(3);
  const int64_t max = std::numeric_limits<int64_t>::max();
  Recorder recorder;
  pool.parallelFor(max, max / 2, 0, [&](int64_t begin, int64_t end) {
    recorder.add(begin, end);
  });
  std::sort(recorder.chunks.begin(), recorder.chunks.end());
  const std::vector<std::pair<int64_t, int64_t>> expected = {
      {0, max / 2}, {max / 2, 2 * (max / 2)}, {2 * (max / 2), max}};
  EXPECT_EQ(recorder.chunks, expected);
}

TEST(ThreadPoolTest, SmallOrSerialLoopsRunInlineInOrder) {
  ThreadPool pool(4);
  std::vector<std::pair<int64_t, int64_t>> chunks;
  std::set<std::thread::id> threads;
  auto record = [&](int64_t begin, int64_t end) {
    // No lock: an inline loop runs on this thread alone.
    chunks.emplace_back(begin, end);
    threads.insert(std::this_thread::get_id());
  };
  pool.parallelFor(100, 1, 1, record);
  ASSERT_EQ(chunks.size(), 100u);
  for (int64_t i = 0; i < 100; ++i)
    EXPECT_EQ(chunks[static_cast<size_t>(i)], std::make_pair(i, i + 1));
  chunks.clear();
  pool.parallelFor(100, 100, 0, record);
  pool.parallelFor(7, 1000, 4, record);
  EXPECT_EQ(chunks,
            (std::vector<std::pair<int64_t, int64_t>>{{0, 100}, {0, 7}}));
  EXPECT_EQ(threads, std::set{std::this_thread::get_id()});

  ThreadPool single(1);
  chunks.clear();
  single.parallelFor(10, 3, 0, record);
  EXPECT_EQ(chunks, (std::vector<std::pair<int64_t, int64_t>>{
                        {0, 3}, {3, 6}, {6, 9}, {9, 10}}));
  EXPECT_EQ(threads, std::set{std::this_thread::get_id()});
}

TEST(ThreadPoolTest, EachThreadStreamsThroughAdjacentChunks) {
  // The chunks are split into one contiguous segment per participant, each
  // taken in order by its owner and from the back by threads done with
  // theirs: a thread runs long runs of adjacent chunks (up or down). Dealt out
  // round-robin, two threads would alternate, about one run per chunk.
  ThreadPool pool(2);
  const int64_t chunks = 240;
  for (int repeat = 0; repeat < 10; ++repeat) {
    std::mutex mutex;
    std::vector<std::pair<std::thread::id, int64_t>> order;
    pool.parallelFor(chunks, 1, 0, [&](int64_t begin, int64_t) {
      // A little work per chunk, so that both threads take part.
      auto until =
          std::chrono::steady_clock::now() + std::chrono::microseconds(5);
      while (std::chrono::steady_clock::now() < until) {
      }
      std::lock_guard<std::mutex> lock(mutex);
      order.emplace_back(std::this_thread::get_id(), begin);
    });
    ASSERT_EQ(order.size(), static_cast<size_t>(chunks));
    std::map<std::thread::id, std::vector<int64_t>> byThread;
    for (const auto &[thread, chunk] : order)
      byThread[thread].push_back(chunk);
    size_t runs = 0;
    for (const auto &[thread, list] : byThread) {
      runs += 1;
      for (size_t i = 1; i < list.size(); ++i)
        runs += list[i] != list[i - 1] + 1 && list[i] != list[i - 1] - 1;
    }
    EXPECT_LE(runs, static_cast<size_t>(chunks / 4));
  }
}

TEST(ThreadPoolTest, ResultsAreVisibleAfterReturn) {
  // Plain, non-atomic writes from the workers must be visible to the caller
  // once parallelFor returns (ThreadSanitizer checks the ordering).
  ThreadPool pool(4);
  for (int round = 0; round < 50; ++round) {
    std::vector<int64_t> out(static_cast<size_t>(1000 + round));
    pool.parallelFor(static_cast<int64_t>(out.size()), 1 + round % 7, 0,
                     [&](int64_t begin, int64_t end) {
                       for (int64_t i = begin; i < end; ++i)
                         out[static_cast<size_t>(i)] = i * i + round;
                     });
    for (size_t i = 0; i < out.size(); ++i)
      ASSERT_EQ(out[i], static_cast<int64_t>(i * i) + round);
  }
}

TEST(ThreadPoolTest, ManySmallLoopsBackToBack) {
  // The pattern of a kernel called on a few rows at a time: every loop must
  // complete whether the workers are spinning, asleep or busy.
  ThreadPool pool(4);
  std::vector<int> rows(16);
  for (int call = 0; call < 2000; ++call) {
    pool.parallelFor(16, 1 + call % 4, 0, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        ++rows[static_cast<size_t>(i)];
    });
  }
  EXPECT_EQ(rows, std::vector<int>(16, 2000));
}

TEST(ThreadPoolTest, ConcurrentCallersAllComplete) {
  ThreadPool pool(4);
  constexpr int kCallers = 4, kLoops = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t) {
    callers.emplace_back([&, t] {
      for (int loop = 0; loop < kLoops; ++loop) {
        int64_t n = 1 + (loop * 7 + t * 13) % 300;
        std::vector<int> hits(static_cast<size_t>(n));
        pool.parallelFor(n, 1 + loop % 5, static_cast<unsigned>(loop % 4),
                         [&](int64_t begin, int64_t end) {
                           for (int64_t i = begin; i < end; ++i)
                             ++hits[static_cast<size_t>(i)];
                         });
        if (std::count(hits.begin(), hits.end(), 1) != n)
          failures.fetch_add(1);
      }
    });
  }
  for (std::thread &caller : callers)
    caller.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ThreadPoolTest, NestedLoopsComplete) {
  ThreadPool pool(4);
  constexpr int64_t kOuter = 16, kMiddle = 10, kInner = 30;
  std::vector<std::atomic<int>> hits(kOuter * kMiddle * kInner);
  pool.parallelFor(kOuter, 1, 0, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      pool.parallelFor(
          kMiddle, 3, 0, [&](int64_t middleBegin, int64_t middleEnd) {
            for (int64_t j = middleBegin; j < middleEnd; ++j)
              pool.parallelFor(
                  kInner, 4, 0, [&](int64_t innerBegin, int64_t innerEnd) {
                    for (int64_t k = innerBegin; k < innerEnd; ++k)
                      hits[static_cast<size_t>((i * kMiddle + j) * kInner + k)]
                          .fetch_add(1);
                  });
          });
  });
  for (size_t i = 0; i < hits.size(); ++i)
    ASSERT_EQ(hits[i].load(), 1) << "index " << i;
}

TEST(ThreadPoolTest, LoopsNestedAcrossTwoPoolsComplete) {
  // A's loop runs B's, whose chunks run A's again: the callers of each loop
  // can always finish it themselves, so nothing waits in a cycle.
  ThreadPool a(3), b(3);
  std::atomic<int64_t> total{0};
  a.parallelFor(8, 1, 0, [&](int64_t, int64_t) {
    b.parallelFor(6, 1, 0, [&](int64_t, int64_t) {
      a.parallelFor(5, 1, 0, [&](int64_t begin, int64_t end) {
        total.fetch_add(end - begin);
      });
    });
  });
  EXPECT_EQ(total.load(), 8 * 6 * 5);
}

TEST(ThreadPoolTest, GlobalPoolRunsLoops) {
  std::atomic<int64_t> sum{0};
  ThreadPool::global().parallelFor(1000, 10, 0,
                                   [&](int64_t begin, int64_t end) {
                                     int64_t local = 0;
                                     for (int64_t i = begin; i < end; ++i)
                                       local += i;
                                     sum.fetch_add(local);
                                   });
  EXPECT_EQ(sum.load(), 999 * 1000 / 2);
}

TEST(ThreadPoolTest, DestroysCleanly) {
  // Idle pools, pools never used, and pools destroyed right after a loop
  // (with workers still spinning) all join their workers.
  for (unsigned i = 0; i < 40; ++i) {
    ThreadPool pool(1 + i % 6);
    if (i % 2) {
      std::atomic<int> count{0};
      pool.parallelFor(64, 1, 0, [&](int64_t begin, int64_t end) {
        count.fetch_add(static_cast<int>(end - begin));
      });
      EXPECT_EQ(count.load(), 64);
    }
    if (i % 3 == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

namespace {

/// The row blocks a launch gave its kernel: (first row, rows), from x's
/// descriptor.
std::mutex launchedMutex;
std::vector<std::pair<int64_t, int64_t>> launched;
const float *launchedX = nullptr;

void recordRows(normjit_memref2d_t *x, normjit_memref2d_t *,
                normjit_memref1d_t *, normjit_memref1d_t *,
                normjit_memref2d_t *, normjit_memref2d_t *,
                normjit_memref1d_t *, normjit_memref1d_t *) {
  std::lock_guard<std::mutex> lock(launchedMutex);
  const float *first = static_cast<const float *>(x->aligned) + x->offset;
  launched.emplace_back((first - launchedX) / x->strides[0], x->sizes[0]);
}

} // namespace

TEST(CpuLaunchTest, TasksAreOfEqualSize) {
  const int64_t cols = 3;
  normjit_kernel_spec_t spec =
      normjit_kernel_spec_default(NORMJIT_RMS_NORM, cols);
  spec.has_gamma = 0;
  std::vector<float> x(100 * cols), y(100 * cols);
  // (rows, rows_per_task) and the sizes of the blocks.
  const std::pair<std::pair<int64_t, int64_t>, std::vector<int64_t>> cases[] = {
      {{16, 10}, {8, 8}},    {{16, 16}, {16}},
      {{17, 8}, {6, 6, 5}},  {{10, 3}, {3, 3, 3, 1}},
      {{1, 64}, {1}},        {{100, 1}, std::vector<int64_t>(100, 1)},
      {{100, 64}, {50, 50}}, {{99, 33}, {33, 33, 33}},
  };
  for (const auto &[shape, sizes] : cases) {
    auto [rows, rowsPerTask] = shape;
    SCOPED_TRACE(std::to_string(rows) + " rows, " +
                 std::to_string(rowsPerTask) + " per task");
    launched.clear();
    normjit_run_args_t args = {};
    args.rows = rows;
    args.x = launchedX = x.data();
    args.y = y.data();
    normjit_cpu_launch_t launch{rowsPerTask, 2};
    ASSERT_EQ(normjit_cpu_launch(&recordRows, &spec, &args, &launch),
              NORMJIT_OK);
    std::sort(launched.begin(), launched.end());
    std::vector<int64_t> got;
    int64_t next = 0;
    for (auto [first, count] : launched) {
      EXPECT_EQ(first, next);
      next = first + count;
      got.push_back(count);
    }
    EXPECT_EQ(next, rows);
    EXPECT_EQ(got, sizes);
  }
}

TEST(ThreadPoolTest, AForkedChildGetsAPoolOfItsOwnAndExits) {
  // The parent's global pool has workers (and some of them sleep on its
  // condition variable) when it forks; the child runs loops on a pool of
  // its own and exits through the static destructors, as a process of
  // Python's multiprocessing or a pre-fork server does.
  auto covers = [](ThreadPool &pool) {
    std::vector<std::atomic<int>> seen(1000);
    pool.parallelFor(1000, 7, 0, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        seen[static_cast<size_t>(i)].fetch_add(1);
    });
    return std::all_of(seen.begin(), seen.end(),
                       [](const std::atomic<int> &n) { return n == 1; });
  };
  ThreadPool &parentPool = ThreadPool::global();
  ASSERT_TRUE(covers(parentPool));
  // Let the workers fall asleep on the condition variable.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  unsigned parentSize = parentPool.size();
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ThreadPool &childPool = ThreadPool::global();
    bool ok = &childPool != &parentPool && childPool.size() == parentSize &&
              covers(childPool) && covers(childPool);
    std::exit(ok ? 0 : 1);
  }
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 1000 && done == 0; ++i) {
    done = ::waitpid(child, &status, WNOHANG);
    if (done == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL() << "the child did not exit within 10 s";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(&ThreadPool::global(), &parentPool);
  EXPECT_TRUE(covers(parentPool));
}

#if defined(__SSE__)
TEST(ThreadPoolTest, ChunksRunUnderTheCallersFloatControl) {
  // Flush-to-zero and denormals-are-zero (as -ffast-math hosts set them),
  // and rounding toward zero: every thread that runs a chunk runs it so,
  // then goes back to its own.
  ThreadPool &pool = ThreadPool::global();
  if (pool.size() < 2)
    GTEST_SKIP() << "one core: no worker to check";
  const unsigned original = __builtin_ia32_stmxcsr();
  const unsigned control = (original & ~0xffc0u) | 0x8000u | 0x0040u |
                           0x6000u | 0x1f80u;
  for (int round = 0; round < 20; ++round) {
    std::mutex mutex;
    std::set<unsigned> seen;
    std::set<std::thread::id> threads;
    __builtin_ia32_ldmxcsr(control);
    pool.parallelFor(64, 1, 0, [&](int64_t, int64_t) {
      unsigned mine = __builtin_ia32_stmxcsr() & ~0x3fu;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::lock_guard<std::mutex> lock(mutex);
      seen.insert(mine);
      threads.insert(std::this_thread::get_id());
    });
    __builtin_ia32_ldmxcsr(original);
    EXPECT_EQ(seen, std::set<unsigned>{control & ~0x3fu});
    // Once back, the workers run under their own control word again.
    pool.parallelFor(64, 1, 0, [&](int64_t, int64_t) {
      unsigned mine = __builtin_ia32_stmxcsr() & ~0x3fu;
      std::lock_guard<std::mutex> lock(mutex);
      EXPECT_EQ(mine, original & ~0x3fu);
    });
    if (threads.size() > 1)
      return;
  }
  GTEST_SKIP() << "no worker joined a loop in 20 tries";
}
#endif

TEST(CpuLaunchTest, FewRowsAreSplitOverTheThreadsWhenTheWorkPays) {
  auto taskRows = [](normjit_op_t op, int64_t cols, bool residual,
                     int64_t rows, int64_t rowsPerTask, int threads) {
    normjit_kernel_spec_t spec = normjit_kernel_spec_default(op, cols);
    spec.has_residual = spec.store_sum = residual ? 1 : 0;
    normjit_cpu_launch_t launch{rowsPerTask, threads};
    return normjit_cpu_launch_task_rows(&spec, rows, &launch);
  };
  const int64_t cores = ThreadPool::global().size();
  auto upTo = [&](int64_t threads) { return std::min(cores, threads); };
  // 16 rows of 1024 with the residual and the sum: 64K elements moved,
  // one task by the config; two tasks (one per thread) of 32K.
  EXPECT_EQ(taskRows(NORMJIT_LAYER_NORM, 1024, true, 16, 16, 2),
            16 / upTo(2));
  // Without the residual, 32K elements: two tasks of 16K would not pay.
  EXPECT_EQ(taskRows(NORMJIT_LAYER_NORM, 1024, false, 16, 16, 2), 16);
  EXPECT_EQ(taskRows(NORMJIT_RMS_NORM, 1024, true, 8, 16, 2), 8);
  // As many tasks as threads, as rows, or as 20K-element parts allow.
  int64_t tasks = std::min<int64_t>(upTo(8), 12); // 256K elements: 12 parts
  EXPECT_EQ(taskRows(NORMJIT_RMS_NORM, 4096, true, 16, 64, 8),
            (16 - 1) / tasks + 1);
  EXPECT_EQ(taskRows(NORMJIT_RMS_NORM, 65536, true, 3, 64, 0),
            (3 - 1) / std::min<int64_t>(cores, 3) + 1);
  // One thread, one row, no rows; enough tasks already.
  EXPECT_EQ(taskRows(NORMJIT_LAYER_NORM, 4096, true, 16, 16, 1), 16);
  EXPECT_EQ(taskRows(NORMJIT_LAYER_NORM, 65536, true, 1, 16, 0), 1);
  EXPECT_EQ(taskRows(NORMJIT_LAYER_NORM, 4096, true, 0, 16, 0), 0);
  EXPECT_EQ(taskRows(NORMJIT_LAYER_NORM, 1024, true, 4096, 16, 0), 16);
  EXPECT_EQ(taskRows(NORMJIT_LAYER_NORM, 1024, true, 4096, 10, 0), 10);
}
