//===- autotune_bench.cpp - tuning cost and what tuning buys (CPU) --------===//
//
// 1. Wall time of tuning attention forward cold (empty cache: compile, time
//    and verify every config) against warm (the cached result: nothing
//    compiled or timed).
// 2. The tuned config's speed against the default config's on the CPU
//    backend, each the median of 15 runs after a warm-up, as a ratio.
//
//   loom-bench-autotune [seqlen=1024] [head_dim=64] [causal=1]
//
//===----------------------------------------------------------------------===//
#include "loom/ops/AttentionTuning.h"
#include "loom/ops/Reference.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

using namespace loom;
using Clock = std::chrono::steady_clock;

int main(int argc, char **argv) {
  std::string dir = "/tmp/loom-bench-autotune-" + std::to_string(getpid());
  setenv("LOOM_CACHE_DIR", dir.c_str(), 1);
  ops::AttentionTuningProblem p;
  p.backend = runtime::Backend::Cpu;
  p.dtype = DType::F32;
  p.seqlen = argc > 1 ? std::atoll(argv[1]) : 1024;
  p.headDim = argc > 2 ? std::atoll(argv[2]) : 64;
  p.causal = argc > 3 ? std::atoi(argv[3]) != 0 : true;
  autotune::TuneOptions o;
  o.repetitions = 5;

  std::printf("Autotuning attention forward on the CPU backend (f32, d%lld, %s, seqlen %lld, "
              "batch 1, heads 1), %u threads\n",
              (long long)p.headDim, p.causal ? "causal" : "non-causal", (long long)p.seqlen,
              std::thread::hardware_concurrency());
  autotune::TuneResult cold = ops::tuneAttention(p, o);
  autotune::TuneResult warm = ops::tuneAttention(p, o);
  std::printf("  cold tuning: %8.3f s  (%zu configs timed, %zu invalid, %zu runs)\n",
              cold.seconds, cold.count(autotune::TrialStatus::Timed),
              cold.count(autotune::TrialStatus::Invalid), cold.runs);
  std::printf("  warm tuning: %8.3f ms (cache hit: %s, %zu runs)\n", warm.seconds * 1e3,
              warm.fromCache ? "yes" : "no", warm.runs);
  std::printf("  speed-up cold/warm: %.0fx\n", cold.seconds / std::max(warm.seconds, 1e-9));

  const int64_t S = p.seqlen, D = p.headDim;
  auto q = ops::ref::randomVector(S * D, -1, 1), k = ops::ref::randomVector(S * D, -1, 1),
       v = ops::ref::randomVector(S * D, -1, 1);
  std::vector<float> out(S * D), lse(S);
  auto T = [&](std::vector<float> &x) {
    return ops::Tensor4::contiguous(x.data(), DType::F32, {1, S, 1, D});
  };
  auto timeConfig = [&](ops::AttentionConfig c) {
    ops::AttentionOptions opts;
    opts.causal = p.causal;
    opts.backend = runtime::Backend::Cpu;
    opts.config = c;
    std::vector<double> ms;
    for (int i = 0; i < 16; ++i) {
      auto t0 = Clock::now();
      ops::attentionForward(T(q), T(k), T(v), T(out), lse.data(), opts);
      if (i > 0)
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    return autotune::median(ms);
  };
  ops::AttentionConfig def = ops::defaultAttentionConfig(D, runtime::Backend::Cpu);
  ops::AttentionConfig tuned = ops::fromTuningConfig(cold.best);
  double defMs = timeConfig(def), tunedMs = timeConfig(tuned);
  std::printf("  default %s: %8.3f ms\n",
              autotune::configString(ops::toTuningConfig(def)).c_str(), defMs);
  std::printf("  tuned   %s: %8.3f ms\n", autotune::configString(cold.best).c_str(), tunedMs);
  std::printf("  tuned/default speed ratio: %.2fx\n", defMs / tunedMs);
  std::system(("rm -rf '" + dir + "'").c_str());
  return 0;
}
