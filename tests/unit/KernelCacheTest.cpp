//===- KernelCacheTest.cpp - single-flight compiles in one process --------===//
//
// Threads that request the same kernel together (in-process ranks missing
// the cache at once) must share one compile, its result or its error. A
// compile hook holds each compile until every other request is waiting on
// it, so the requests overlap by construction, not by timing luck.
//
//===----------------------------------------------------------------------===//
#include "ExpectError.h"

#include "loom/ops/Examples.h"
#include "loom/runtime/Kernel.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <optional>
#include <thread>
#include <unistd.h>

using namespace loom;
using namespace loom::runtime;
namespace fs = std::filesystem;
using Compiled = std::shared_ptr<const CompiledKernel>;

namespace {
constexpr int kRanks = 8;

/// Holds every compile of the global cache until `waitersPerCompile` more
/// requests wait on a compile in flight (KernelCache::Stats::waits) than
/// before it, or 10 s pass (then overlapped() is false: the requests did
/// not share the compile).
class HoldEachCompile {
public:
  explicit HoldEachCompile(uint64_t waitersPerCompile) {
    KernelCache::global().setCompileHook([this, waitersPerCompile](const std::string &) {
      uint64_t target = ++compiles_ * waitersPerCompile;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (KernelCache::global().stats().waits < target)
        if (std::chrono::steady_clock::now() > deadline) {
          overlapped_ = false;
          return;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
  }
  ~HoldEachCompile() { KernelCache::global().setCompileHook({}); }
  int compiles() const { return compiles_; }
  bool overlapped() const { return overlapped_; }

private:
  std::atomic<int> compiles_{0};
  std::atomic<bool> overlapped_{true};
};

/// Runs body(rank) on kRanks threads released together.
void onRanksTogether(const std::function<void(int)> &body) {
  std::latch start(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r)
    threads.emplace_back([&, r] {
      start.arrive_and_wait();
      body(r);
    });
  for (std::thread &t : threads)
    t.join();
}

/// Sets an environment variable for the scope, then restores it.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const std::string &value) : name_(name) {
    if (const char *old = std::getenv(name))
      old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

private:
  const char *name_;
  std::optional<std::string> old_;
};

const Specialization kSpec{.constants = {{"BLOCK", 64}}, .backend = Backend::Cpu};
} // namespace

TEST(KernelCacheSingleFlight, EightThreadsCompileEachKernelOnce) {
  KernelCache::global().clear();
  HoldEachCompile hold(kRanks - 1);
  // Odd ranks share Kernel objects (one flight per identity); even ranks
  // build their own, with the same IR (one flight per IR key).
  std::array<dsl::Kernel, 2> shared = {ops::softmaxKernel(), ops::vectorAddKernel()};
  std::vector<std::array<Compiled, 2>> got(kRanks);
  onRanksTogether([&](int r) {
    std::array<dsl::Kernel, 2> own = {ops::softmaxKernel(), ops::vectorAddKernel()};
    for (size_t i = 0; i < 2; ++i)
      got[size_t(r)][i] = compile(r % 2 ? shared[i] : own[i], kSpec);
  });
  EXPECT_TRUE(hold.overlapped()) << "a compile was not shared by all " << kRanks << " ranks";
  EXPECT_EQ(hold.compiles(), 2);
  for (int r = 0; r < kRanks; ++r)
    for (size_t i = 0; i < 2; ++i)
      EXPECT_EQ(got[size_t(r)][i].get(), got[0][i].get()) << "rank " << r << " kernel " << i;
  KernelCache::Stats stats = KernelCache::global().stats();
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_EQ(stats.waits, uint64_t(2 * (kRanks - 1)));
  ASSERT_EQ(stats.compilesByKey.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(stats.compilesByKey.at(got[0][i]->cacheKey()), 1u) << got[0][i]->name();
}

TEST(KernelCacheSingleFlight, FailedCompileReachesEveryWaiterAndIsRetried) {
  // A real compile failure: the emu backend's host compiler is `false`. A
  // fresh disk cache, so no earlier run's object hides the compile.
  fs::path dir = fs::temp_directory_path() / ("loom-single-flight-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ScopedEnv cacheDir("LOOM_CACHE_DIR", dir.string()), compiler("LOOM_EMU_CXX", "false");
  KernelCache::global().clear();
  Specialization spec = kSpec;
  spec.backend = Backend::Emu;
  auto kernel = ops::vectorAddKernel();
  auto expectCompileFailed = [&] {
    return expectLoomErrorContaining([&] { compile(kernel, spec); }, ErrorCode::CompileFailed,
                                     {"host compile of kernel 'vector_add_f32'"});
  };
  std::vector<std::string> messages(kRanks);
  {
    HoldEachCompile hold(kRanks - 1);
    onRanksTogether([&](int r) { messages[size_t(r)] = expectCompileFailed(); });
    EXPECT_TRUE(hold.overlapped()) << "the failing compile was not shared by all ranks";
    EXPECT_EQ(hold.compiles(), 1);
  }
  for (int r = 1; r < kRanks; ++r)
    EXPECT_EQ(messages[size_t(r)], messages[0]) << "rank " << r;
  KernelCache::Stats stats = KernelCache::global().stats();
  EXPECT_EQ(stats.failures, 1u);
  EXPECT_EQ(stats.waits, uint64_t(kRanks - 1));
  ASSERT_EQ(stats.compilesByKey.size(), 1u);
  const std::string key = stats.compilesByKey.begin()->first;
  EXPECT_EQ(stats.compilesByKey.at(key), 1u);

  // The failure is not cached: the next request compiles (and fails) again.
  expectCompileFailed();
  stats = KernelCache::global().stats();
  EXPECT_EQ(stats.compilesByKey.at(key), 2u);
  EXPECT_EQ(stats.failures, 2u);
  KernelCache::global().clear();
  fs::remove_all(dir);
}

TEST(KernelCacheSingleFlight, WaitPastTheDeadlineIsATimeoutNamingTheKernel) {
  ScopedEnv timeout("LOOM_COMPILE_WAIT_TIMEOUT", "1");
  KernelCache::global().clear();
  std::atomic<bool> compiling{false}, release{false};
  KernelCache::global().setCompileHook([&](const std::string &) {
    compiling = true;
    for (int i = 0; i < 10000 && !release; ++i) // at most 10 s
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  auto kernel = ops::vectorAddKernel();
  Compiled owner;
  std::thread first([&] { owner = compile(kernel, kSpec); });
  while (!compiling)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto start = std::chrono::steady_clock::now();
  expectLoomErrorContaining([&] { compile(kernel, kSpec); }, ErrorCode::CommTimeout,
                            {"waited 1 s for another thread to compile kernel 'vector_add_f32'",
                             "LOOM_COMPILE_WAIT_TIMEOUT"});
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  release = true;
  first.join();
  KernelCache::global().setCompileHook({});
  ASSERT_TRUE(owner);
  // The compile that was waited on finishes and is cached for later requests.
  EXPECT_EQ(compile(kernel, kSpec).get(), owner.get());
  EXPECT_EQ(KernelCache::global().stats().misses, 1u);
}
