//===- ThreadPoolTest.cpp - CPU backend thread counts ---------------------===//
#include "ExpectError.h"

#include "loom/ops/Examples.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/Kernel.h"
#include "loom/runtime/ThreadPool.h"

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

using namespace loom;
using namespace loom::runtime;

namespace {
/// Sets (or, with nullopt, unsets) LOOM_NUM_THREADS for one scope.
class ScopedThreadsEnv {
public:
  explicit ScopedThreadsEnv(std::optional<std::string> value) {
    if (const char *old = std::getenv("LOOM_NUM_THREADS"))
      old_ = old;
    if (value)
      setenv("LOOM_NUM_THREADS", value->c_str(), 1);
    else
      unsetenv("LOOM_NUM_THREADS");
  }
  ~ScopedThreadsEnv() {
    if (old_)
      setenv("LOOM_NUM_THREADS", old_->c_str(), 1);
    else
      unsetenv("LOOM_NUM_THREADS");
  }

private:
  std::optional<std::string> old_;
};

/// The distinct threads (and the largest worker index) that ran chunks of a
/// parallelFor over `n` items; each chunk sleeps so every thread has time
/// to wake and take one.
struct Seen {
  std::set<std::thread::id> threads;
  unsigned maxWorker = 0;
  uint64_t items = 0;
};
Seen runAndWatch(uint64_t n, unsigned threads) {
  Seen seen;
  std::mutex m;
  parallelFor(
      n,
      [&](unsigned worker, uint64_t begin, uint64_t end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        std::lock_guard<std::mutex> lock(m);
        seen.threads.insert(std::this_thread::get_id());
        seen.maxWorker = std::max(seen.maxWorker, worker);
        seen.items += end - begin;
      },
      threads);
  return seen;
}
} // namespace

TEST(ThreadPool, HonoursThreadCount) {
  for (unsigned t : {1u, 3u, 2u, 5u}) {
    Seen s = runAndWatch(200, t);
    EXPECT_EQ(s.threads.size(), t) << "threads " << t;
    EXPECT_LT(s.maxWorker, t);
    EXPECT_EQ(s.items, 200u);
  }
  // One thread is the caller's own.
  Seen one = runAndWatch(10, 1);
  EXPECT_EQ(*one.threads.begin(), std::this_thread::get_id());
}

TEST(ThreadPool, DefaultFromEnvironment) {
  {
    ScopedThreadsEnv env("3");
    EXPECT_EQ(defaultCpuThreads(), 3u);
    EXPECT_EQ(runAndWatch(100, 0).threads.size(), 3u);
  }
  {
    ScopedThreadsEnv env(std::nullopt);
    EXPECT_EQ(defaultCpuThreads(), std::max(1u, std::thread::hardware_concurrency()));
  }
}

TEST(ThreadPool, BadCountsRejected) {
  for (const char *bad : {"0", "-2", "abc", "4x", " 4", "+4", "1025", "99999999999999999999"}) {
    ScopedThreadsEnv env{std::string(bad)};
    expectLoomError([] { defaultCpuThreads(); },
                    fmt::format("LOOM_NUM_THREADS '{}' is not a thread count; expected an "
                                "integer in [1, 1024]",
                                bad));
  }
}

TEST(ThreadPool, KernelLaunchThreads) {
  // A launch reads $LOOM_NUM_THREADS: a bad value fails the launch by name;
  // Specialization::cpuThreads overrides it and is part of the cache key.
  Specialization spec{.constants = {{"BLOCK", 16}}, .backend = Backend::Cpu};
  auto k = compile(ops::vectorAddKernel(), spec);
  std::vector<float> x = ops::ref::randomVector(1000, -1, 1), y = x,
                     out(1000, ops::ref::poison());
  auto launch = [&](const CompiledKernel &kernel) {
    kernel.launch(Grid(63), {Arg::buffer(x), Arg::buffer(y), Arg::buffer(out), Arg::i32(1000)});
  };
  {
    ScopedThreadsEnv env("zero");
    expectLoomError([&] { launch(*k); },
                    "LOOM_NUM_THREADS 'zero' is not a thread count; expected an integer in "
                    "[1, 1024]");
    Specialization three = spec;
    three.cpuThreads = 3;
    EXPECT_NE(three.key(), spec.key());
    auto k3 = compile(ops::vectorAddKernel(), three);
    EXPECT_NE(k3.get(), k.get());
    launch(*k3);
  }
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_EQ(out[i], x[i] + y[i]) << i;
  Specialization tooMany = spec;
  tooMany.cpuThreads = 1025;
  expectLoomError([&] { compile(ops::vectorAddKernel(), tooMany); },
                  "kernel 'vector_add_f32': Specialization::cpuThreads 1025 exceeds the limit "
                  "of 1024");
}
