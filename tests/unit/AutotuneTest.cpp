//===- AutotuneTest.cpp - config spaces, pruning, tuner, cache, cluster ---===//
//
// Generic tuner behaviour on synthetic tunables (no compiles: fast and
// deterministic), then attention tuned for real on the CPU backend (wall
// clock), pruned with NVRTC for sm_80, tuned by two processes at once and by
// in-process ranks. Every test uses its own temporary cache directory.
//
//===----------------------------------------------------------------------===//
#include "loom/Support/Error.h"
#include "loom/autotune/Json.h"
#include "loom/runtime/Communicator.h"
#include "loom/runtime/CudaBuild.h"
#include "loom/autotune/Tuner.h"
#include "loom/ops/Attention.h"
#include "loom/ops/AttentionTuning.h"
#include "loom/ops/Reference.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace loom;
using namespace loom::autotune;

namespace {

/// A fresh cache directory for one test, also set as $LOOM_CACHE_DIR.
struct TempCacheDir {
  std::string root;
  TempCacheDir() {
    char tmpl[] = "/tmp/loom-autotune-test-XXXXXX";
    root = mkdtemp(tmpl);
    setenv("LOOM_CACHE_DIR", root.c_str(), 1);
  }
  ~TempCacheDir() { std::system(("rm -rf '" + root + "'").c_str()); }
  std::string autotuneDir() const { return root + "/autotune"; }
};

std::string readAll(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

DeviceKey fakeDevice() { return {"cpu", "test cpu x2", "x86_64", "none", "NVRTC 13.0", "0.1.0"}; }

/// blockM x blockN; a config's time is a fixed function of it, one config
/// throws, one gives a wrong answer. Counts runs and records the input sets.
struct Fake {
  std::atomic<int> runs{0};
  std::vector<int> sets;
  std::mutex mutex;
  Tunable tunable() {
    Tunable t;
    t.kernel = "fake/f32";
    t.shapeBucket = "n<=128";
    t.space.knob("blockM", {16, 32, 64}).knob("blockN", {16, 32});
    t.space.constraint([](const Config &c) -> std::optional<std::string> {
      if (c.at("blockM") == 64 && c.at("blockN") == 16)
        return "64x16 is not allowed";
      return std::nullopt;
    });
    t.fallback = {{"blockM", 16}, {"blockN", 16}};
    t.inputSets = 3;
    t.cost = [](const Config &c) { return -double(c.at("blockM") * c.at("blockN")); };
    t.run = [this](const Config &c, int set) {
      ++runs;
      {
        std::lock_guard<std::mutex> lock(mutex);
        sets.push_back(set);
      }
      if (c.at("blockM") == 16 && c.at("blockN") == 32)
        throw Error(ErrorCode::CompileFailed, "fake compile failure");
      // 32x32 is fastest but 64x32 is wrong (and would be faster still).
      if (c.at("blockM") == 64 && c.at("blockN") == 32)
        return 0.5;
      return c.at("blockM") == 32 && c.at("blockN") == 32 ? 1.0 : 2.0 + double(c.at("blockM"));
    };
    t.verify = [](const Config &c, int) -> std::optional<std::string> {
      if (c.at("blockM") == 64 && c.at("blockN") == 32)
        return std::string("O[3] = 7 but the default config gives 1");
      return std::nullopt;
    };
    return t;
  }
};

} // namespace

TEST(AutotuneJson, RoundTripsCanonicallyAndRejectsGarbage) {
  Json j = Json::object();
  j["b"] = 1.5;
  j["a"] = int64_t(42);
  j["s"] = "quote \" backslash \\ newline \n";
  j["l"] = Json::array();
  j["l"].push(true);
  j["l"].push(Json());
  std::string text = j.dump();
  EXPECT_EQ(Json::parse(text).dump(), text);
  EXPECT_EQ(Json::parse(text).at("a").number(), 42);
  EXPECT_EQ(Json::parse(text).at("s").string(), "quote \" backslash \\ newline \n");
  EXPECT_THROW(Json::parse("{\"a\": 1"), std::runtime_error);
  EXPECT_THROW(Json::parse("{\"a\": 1} x"), std::runtime_error);
  EXPECT_THROW(Json::parse(""), std::runtime_error);
}

TEST(AutotuneConfigSpace, EnumeratesInAFixedOrderAndAppliesTheConstraint) {
  Fake fake;
  Tunable t = fake.tunable();
  auto all = t.space.enumerate();
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(configString(all[0]), "blockM=16,blockN=16");
  EXPECT_EQ(configString(all[1]), "blockM=16,blockN=32");
  EXPECT_EQ(configString(all[5]), "blockM=64,blockN=32");
  EXPECT_EQ(t.space.invalidReason(all[4]).value_or(""), "64x16 is not allowed");
  EXPECT_EQ(parseConfig("blockM=64,blockN=32"), all[5]);
  try {
    parseConfig("blockM=64,blockN");
    FAIL();
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'blockN'"), std::string::npos) << e.what();
  }
}

TEST(AutotunePruning, DropsEachKindOfBadConfigWithItsReason) {
  ArchLimits sm80 = archLimits("sm_80");
  cuda::KernelResources ok;
  ok.registers = 128;
  ok.sharedBytes = 32 * 1024;
  EXPECT_FALSE(pruneReason(ok, 128, sm80)) << *pruneReason(ok, 128, sm80);
  Occupancy o = occupancy(ok, 128, sm80);
  EXPECT_EQ(o.blocksPerSm, 4); // 65536 / (128 * 128) registers
  EXPECT_EQ(o.limiter, "registers");

  cuda::KernelResources spills = ok;
  spills.spillStoreBytes = 8;
  EXPECT_NE(pruneReason(spills, 128, sm80).value_or("").find("spills"), std::string::npos);
  cuda::KernelResources smem = ok;
  smem.sharedBytes = 200 * 1024;
  EXPECT_NE(pruneReason(smem, 128, sm80).value_or("").find("shared memory"), std::string::npos);
  // 200 KiB fits an sm_90 block but not an sm_86 one.
  cuda::KernelResources big = ok;
  big.sharedBytes = 120 * 1024;
  EXPECT_FALSE(pruneReason(big, 128, archLimits("sm_90a")));
  EXPECT_TRUE(pruneReason(big, 128, archLimits("sm_86")));
  cuda::KernelResources regs = ok;
  regs.registers = 255;
  // 255 x 1024 threads exceeds the register file.
  EXPECT_NE(pruneReason(regs, 1024, sm80).value_or("").find("registers per SM"),
            std::string::npos);
  // 255 registers x 64 threads: one 2-warp block per... 4 blocks, 8 of 64
  // warps = 12.5%: kept at the default bar, dropped at 25%.
  EXPECT_FALSE(pruneReason(regs, 64, sm80));
  EXPECT_NE(pruneReason(regs, 64, sm80, 0.25).value_or("").find("occupancy"), std::string::npos);
  EXPECT_THROW(archLimits("sm_75"), Error);
}

TEST(AutotuneTuner, PicksTheFastestCorrectConfigThenHitsTheCache) {
  TempCacheDir dir;
  Fake fake;
  Tunable t = fake.tunable();
  TuningCache cache(dir.autotuneDir());
  TuneOptions o;
  o.repetitions = 4;
  TuneResult r = tune(t, fakeDevice(), cache, o);
  EXPECT_FALSE(r.fromCache);
  EXPECT_EQ(configString(r.best), "blockM=32,blockN=32");
  EXPECT_EQ(r.bestMs, 1.0);
  ASSERT_EQ(r.trials.size(), 6u);
  EXPECT_EQ(r.trials[4].status, TrialStatus::Invalid);
  EXPECT_EQ(r.trials[1].status, TrialStatus::Failed);
  EXPECT_NE(r.trials[1].reason.find("fake compile failure"), std::string::npos);
  EXPECT_EQ(r.trials[5].status, TrialStatus::WrongOutput); // fastest, never chosen
  EXPECT_EQ(r.count(TrialStatus::Timed), 3u);
  // Consecutive runs never reuse an input set.
  for (size_t i = 1; i < fake.sets.size(); ++i)
    if (fake.sets[i] == fake.sets[i - 1])
      ADD_FAILURE() << "run " << i << " reused input set " << fake.sets[i];

  auto entry = cache.lookup(fakeDevice(), t.cacheKey());
  ASSERT_TRUE(entry);
  EXPECT_EQ(configString(entry->config), "blockM=32,blockN=32");
  EXPECT_EQ(entry->timed, 3);

  // Second run (a fresh cache object, as in a new process): nothing runs.
  fake.runs = 0;
  TuningCache again(dir.autotuneDir());
  TuneResult r2 = tune(t, fakeDevice(), again, o);
  EXPECT_TRUE(r2.fromCache);
  EXPECT_EQ(fake.runs, 0);
  EXPECT_EQ(r2.runs, 0u);
  EXPECT_EQ(r2.best, r.best);
  // Another device kind misses.
  DeviceKey other = fakeDevice();
  other.model = "other cpu x64";
  EXPECT_FALSE(again.lookup(other, t.cacheKey()));
}

TEST(AutotuneTuner, CostModelOrdersAndMaxTimedSkips) {
  TempCacheDir dir;
  Fake fake;
  Tunable t = fake.tunable();
  TuningCache cache(dir.autotuneDir());
  TuneOptions o;
  o.maxTimed = 2; // the two largest tiles by the fake cost model
  o.writeCache = false;
  TuneResult r = tune(t, fakeDevice(), cache, o);
  EXPECT_EQ(r.trials[5].status, TrialStatus::WrongOutput); // 64x32, cost rank 1
  EXPECT_EQ(r.trials[3].status, TrialStatus::Timed);       // 32x32, rank 2
  EXPECT_EQ(r.trials[0].status, TrialStatus::Skipped);
  EXPECT_NE(r.trials[0].reason.find("cost rank"), std::string::npos);
  EXPECT_EQ(configString(r.best), "blockM=32,blockN=32");
  EXPECT_FALSE(cache.lookup(fakeDevice(), t.cacheKey()));
}

TEST(AutotuneCache, CorruptFilesWarnOnceAndReadAsMisses) {
  TempCacheDir dir;
  TuningCache cache(dir.autotuneDir());
  CacheEntry e;
  e.config = {{"blockM", 32}, {"blockN", 64}};
  e.ms = 1.25;
  cache.store(fakeDevice(), "k@1", e);
  std::string path = cache.pathFor(fakeDevice());
  std::string good = readAll(path);
  ASSERT_TRUE(cache.lookup(fakeDevice(), "k@1"));

  // A flipped value: still valid JSON, caught by the checksum.
  std::string flipped = good;
  size_t at = flipped.find("\"blockN\": 64");
  ASSERT_NE(at, std::string::npos);
  flipped.replace(at, 12, "\"blockN\": 65");
  std::ofstream(path) << flipped;
  testing::internal::CaptureStderr();
  EXPECT_FALSE(cache.lookup(fakeDevice(), "k@1"));
  EXPECT_FALSE(cache.lookup(fakeDevice(), "k@1"));
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("ignoring corrupt autotune cache file"), std::string::npos) << err;
  EXPECT_NE(err.find("checksum"), std::string::npos) << err;
  EXPECT_EQ(err.find("ignoring", err.find("ignoring") + 1), std::string::npos)
      << "warned twice: " << err;

  // A truncated file (a copy cut short): a parse error, also a miss.
  std::ofstream(path, std::ios::trunc) << good.substr(0, good.size() / 2);
  EXPECT_FALSE(cache.lookup(fakeDevice(), "k@1"));
  auto listed = cache.list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_FALSE(listed[0].valid);
  EXPECT_FALSE(listed[0].error.empty());

  // The next store replaces the corrupt file.
  testing::internal::CaptureStderr();
  cache.store(fakeDevice(), "k@2", e);
  testing::internal::GetCapturedStderr();
  EXPECT_TRUE(cache.lookup(fakeDevice(), "k@2"));
  EXPECT_FALSE(cache.lookup(fakeDevice(), "k@1"));
  EXPECT_EQ(cache.clear(), 1u);
  EXPECT_FALSE(cache.lookup(fakeDevice(), "k@2"));
}

TEST(AutotuneCluster, RanksSplitTheConfigsAndAgreeOnOneWinner) {
  TempCacheDir dir;
  const int P = 3;
  Fake fake;
  Tunable t = fake.tunable();
  auto comms = runtime::createInProcessCommunicators(P, std::chrono::seconds(30));
  std::vector<TuneResult> results(P);
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      TuningCache cache(dir.autotuneDir());
      results[size_t(r)] = tuneCluster(*comms[size_t(r)], t, fakeDevice(), cache);
    });
  for (auto &th : threads)
    th.join();
  for (int r = 0; r < P; ++r) {
    EXPECT_EQ(configString(results[size_t(r)].best), "blockM=32,blockN=32") << "rank " << r;
    ASSERT_EQ(results[size_t(r)].trials.size(), 6u);
    for (const Trial &tr : results[size_t(r)].trials)
      EXPECT_EQ(tr.rank, int(tr.index % P)) << "config " << tr.index;
  }
  TuningCache cache(dir.autotuneDir());
  auto entry = cache.lookup(fakeDevice(), t.cacheKey());
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->world, P);

  // The file copied to another node (another directory) is used there
  // without re-tuning, by every rank.
  TempCacheDir other;
  std::system(("mkdir -p '" + other.autotuneDir() + "' && cp '" + cache.pathFor(fakeDevice()) +
               "' '" + other.autotuneDir() + "/'")
                  .c_str());
  fake.runs = 0;
  auto comms2 = runtime::createInProcessCommunicators(P, std::chrono::seconds(30));
  threads.clear();
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      TuningCache c(other.autotuneDir());
      results[size_t(r)] = tuneCluster(*comms2[size_t(r)], t, fakeDevice(), c);
    });
  for (auto &th : threads)
    th.join();
  EXPECT_EQ(fake.runs, 0);
  for (int r = 0; r < P; ++r) {
    EXPECT_TRUE(results[size_t(r)].fromCache);
    EXPECT_EQ(configString(results[size_t(r)].best), "blockM=32,blockN=32");
  }
}

TEST(AutotuneCluster, MixedNodeKindsAreRejected) {
  TempCacheDir dir;
  Fake fake;
  Tunable t = fake.tunable();
  auto comms = runtime::createInProcessCommunicators(2, std::chrono::seconds(30));
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      DeviceKey d = fakeDevice();
      if (r == 1)
        d.model = "a different gpu";
      TuningCache cache(dir.autotuneDir());
      try {
        tuneCluster(*comms[size_t(r)], t, d, cache);
      } catch (const Error &e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto &th : threads)
    th.join();
  EXPECT_NE(errors[0].find("one kind of node"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("a different gpu"), std::string::npos) << errors[1];
}

//===- attention, for real ------------------------------------------------===//

namespace {
ops::AttentionTuningProblem smallProblem(bool causal) {
  ops::AttentionTuningProblem p;
  p.backend = runtime::Backend::Cpu;
  p.dtype = DType::F32;
  p.headDim = 64;
  p.seqlen = 256;
  p.causal = causal;
  ConfigSpace space;
  space.knob("blockM", {32, 64}).knob("blockN", {32, 64}).knob("numThreads", {128});
  p.space = space;
  return p;
}
TuneOptions fastOptions() {
  TuneOptions o;
  o.repetitions = 3;
  return o;
}
} // namespace

TEST(AutotuneAttention, CpuTuningIsCachedAndUsedByProductionCalls) {
  TempCacheDir dir;
  ops::AttentionTuningProblem p = smallProblem(true);
  TuneResult r = ops::tuneAttention(p, fastOptions());
  EXPECT_FALSE(r.fromCache);
  EXPECT_EQ(r.count(TrialStatus::Timed), 4u);
  for (const Trial &tr : r.trials)
    EXPECT_GT(tr.medianMs, 0) << configString(tr.config);
  EXPECT_GT(r.runs, 0u);

  TuneResult again = ops::tuneAttention(p, fastOptions());
  EXPECT_TRUE(again.fromCache);
  EXPECT_EQ(again.runs, 0u);
  EXPECT_TRUE(again.trials.empty());
  EXPECT_EQ(again.best, r.best);

  ops::AttentionOptions options;
  options.causal = true;
  options.backend = runtime::Backend::Cpu;
  ops::AttentionConfig tuned = ops::resolveAttentionConfig(
      options, ops::AttentionPass::Forward, DType::F32, 64, 200, 200, runtime::Backend::Cpu);
  EXPECT_EQ(ops::toTuningConfig(tuned), r.best);
  // Other bucket, other variant, explicit config, LOOM_AUTOTUNE=0: no entry used.
  ops::AttentionConfig def = ops::defaultAttentionConfig(64, runtime::Backend::Cpu);
  auto same = [](ops::AttentionConfig a, ops::AttentionConfig b) {
    return a.blockM == b.blockM && a.blockN == b.blockN && a.numThreads == b.numThreads;
  };
  EXPECT_TRUE(same(ops::resolveAttentionConfig(options, ops::AttentionPass::Forward, DType::F32,
                                               64, 1000, 1000, runtime::Backend::Cpu),
                   def));
  ops::AttentionOptions plain = options;
  plain.causal = false;
  EXPECT_TRUE(same(ops::resolveAttentionConfig(plain, ops::AttentionPass::Forward, DType::F32, 64,
                                               200, 200, runtime::Backend::Cpu),
                   def));
  setenv("LOOM_AUTOTUNE", "0", 1);
  EXPECT_TRUE(same(ops::resolveAttentionConfig(options, ops::AttentionPass::Forward, DType::F32,
                                               64, 200, 200, runtime::Backend::Cpu),
                   def));
  unsetenv("LOOM_AUTOTUNE");

  // A production call with the cached config is still exact.
  const int64_t S = 200, D = 64;
  auto q = ops::ref::randomVector(S * D, -1, 1), k = ops::ref::randomVector(S * D, -1, 1),
       v = ops::ref::randomVector(S * D, -1, 1);
  std::vector<float> out(S * D);
  ops::attentionForward(ops::Tensor4::contiguous(q.data(), DType::F32, {1, S, 1, D}),
                        ops::Tensor4::contiguous(k.data(), DType::F32, {1, S, 1, D}),
                        ops::Tensor4::contiguous(v.data(), DType::F32, {1, S, 1, D}),
                        ops::Tensor4::contiguous(out.data(), DType::F32, {1, S, 1, D}), nullptr,
                        options);
  auto want = ops::ref::attention(ops::ref::toDouble(q), ops::ref::toDouble(k),
                                  ops::ref::toDouble(v), 1, S, S, 1, 1, D, true,
                                  1.0 / std::sqrt(double(D)));
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i)
    worst = std::max(worst, std::fabs(out[i] - want.out[i]));
  EXPECT_LT(worst, 1e-4);
}

TEST(AutotuneAttention, BadProblemsNameTheValue) {
  TempCacheDir dir;
  ops::AttentionTuningProblem p = smallProblem(false);
  p.headDim = 100;
  try {
    ops::tuneAttention(p);
    FAIL();
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("head dim 100"), std::string::npos) << e.what();
  }
  p = smallProblem(false);
  p.seqlen = 0;
  EXPECT_THROW(ops::tuneAttention(p), Error);
}

TEST(AutotuneAttention, NvrtcPruningDropsSpillingConfigsBeforeTiming) {
  // Resources from NVRTC for sm_80 (no GPU needed), timing on the CPU: the
  // bf16 head-dim-128 forward spills at 128x64 blocks on 4 warps (its 128x64
  // f32 score and 128x128 output accumulators alone are 192 registers per
  // thread), and is pruned with its reason; 32x16 is timed.
  TempCacheDir dir;
  ops::AttentionTuningProblem p;
  p.backend = runtime::Backend::Cpu;
  p.dtype = DType::BF16;
  p.headDim = 128;
  p.seqlen = 128;
  ConfigSpace space;
  space.knob("blockM", {32, 128}).knob("blockN", {16, 64}).knob("numThreads", {128});
  space.constraint([](const Config &c) -> std::optional<std::string> {
    if (c.at("blockM") * c.at("blockN") == 32 * 16 || c.at("blockM") * c.at("blockN") == 128 * 64)
      return std::nullopt;
    return std::string("not part of this test");
  });
  p.space = space;
  TuneOptions o = fastOptions();
  o.arch = "sm_80";
  TuneResult r = ops::tuneAttention(p, o);
  ASSERT_EQ(r.trials.size(), 4u);
  const Trial &small = r.trials[0], &big = r.trials[3];
  ASSERT_TRUE(small.resources);
  EXPECT_EQ(small.status, TrialStatus::Timed) << small.reason;
  // The shared memory pruning and occupancy see is the block's total: the
  // kernel's dynamic shared memory (pipeline buffers, scratch) included.
  {
    runtime::CudaBuildOptions bo;
    bo.arch = "sm_80";
    bo.numThreads = 128;
    runtime::Specialization spec;
    spec.constants = {{"BLOCK_M", 32}, {"BLOCK_N", 16}};
    auto build = runtime::buildCuda(
        ops::flashAttentionForwardKernel(DType::BF16, 128, ops::AttentionVariant::none()), spec,
        bo);
    ASSERT_GT(build.source.sharedBytes, 0);
    EXPECT_EQ(small.resources->sharedBytes,
              build.resources().sharedBytes + int(build.source.sharedBytes));
  }
  EXPECT_EQ(big.status, TrialStatus::Pruned) << trialStatusName(big.status) << ": " << big.reason;
  EXPECT_FALSE(big.reason.empty());
  EXPECT_EQ(configString(r.best), "blockM=32,blockN=16,numThreads=128");
}

TEST(AutotuneAttention, TwoProcessesTuningAtOnceMergeIntoOneFile) {
  TempCacheDir dir;
  std::vector<pid_t> children;
  for (int child = 0; child < 2; ++child) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int status = 0;
      try {
        // Both tune both problems, in opposite orders, so that stores of
        // the same and of different entries race.
        for (int i = 0; i < 2; ++i) {
          ops::AttentionTuningProblem p = smallProblem((i + child) % 2 == 0);
          ConfigSpace space;
          space.knob("blockM", {32, 64}).knob("blockN", {64}).knob("numThreads", {128});
          p.space = space;
          ops::tuneAttention(p, fastOptions());
        }
      } catch (const std::exception &e) {
        std::fprintf(stderr, "child %d: %s\n", child, e.what());
        status = 1;
      }
      _exit(status);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  TuningCache cache;
  auto files = cache.list();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(files[0].valid) << files[0].error;
  EXPECT_EQ(files[0].entries.size(), 2u);
  for (const auto &[key, e] : files[0].entries)
    EXPECT_EQ(e.config.at("blockN"), 64) << key;
}

TEST(AutotuneAttention, InProcessRanksAgreeOnOneWinner) {
  TempCacheDir dir;
  const int P = 2;
  auto comms = runtime::createInProcessCommunicators(P, std::chrono::seconds(120));
  std::vector<TuneResult> results(P);
  std::vector<std::string> errors(P);
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      try {
        results[size_t(r)] = ops::tuneAttention(smallProblem(false), fastOptions(),
                                                comms[size_t(r)].get());
      } catch (const std::exception &e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto &th : threads)
    th.join();
  for (int r = 0; r < P; ++r)
    ASSERT_EQ(errors[size_t(r)], "") << "rank " << r;
  EXPECT_EQ(results[0].best, results[1].best);
  EXPECT_EQ(results[0].count(TrialStatus::Timed), 4u);
  EXPECT_EQ(results[0].trials[1].rank, 1);
  auto entry = TuningCache().lookup(currentDeviceKey(runtime::Backend::Cpu),
                                    ops::attentionTuningKey(ops::AttentionPass::Forward,
                                                            DType::F32, 64, "none", 256, 256));
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->config, results[0].best);
  EXPECT_EQ(entry->world, P);
}
