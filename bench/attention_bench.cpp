//===- attention_bench.cpp - attention on the CPU backend, compile times --===//
//
// 1. Fused flash attention forward and backward (CPU backend, f32) against
//    an unfused attention in the same run: S = Q K^T materialized, softmax,
//    O = P V, with plain cache-blocked C++ loops (no BLAS on this machine).
//    Printed as GFLOP/s and ratios; peak extra memory per sequence length
//    (linear for the fused kernel, quadratic for the unfused one).
// 2. Cold compile milliseconds per variant: CPU JIT, and CUDA C++ -> CUBIN
//    (NVRTC, sm_80). Compiled, not run on a GPU.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/Attention.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/CudaBuild.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

using namespace loom;
using Clock = std::chrono::steady_clock;

namespace {
double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// Unfused single-head attention: materializes the S x S score matrix.
void unfused(const float *q, const float *k, const float *v, float *o, int64_t S, int64_t D,
             std::vector<float> &scores) {
  float scale = 1.0f / std::sqrt(float(D));
  for (int64_t i = 0; i < S; ++i) {
    float *row = &scores[i * S];
    for (int64_t j = 0; j < S; ++j) {
      float acc = 0;
      for (int64_t c = 0; c < D; ++c)
        acc += q[i * D + c] * k[j * D + c];
      row[j] = acc * scale;
    }
    float m = *std::max_element(row, row + S), l = 0;
    for (int64_t j = 0; j < S; ++j)
      l += (row[j] = std::exp(row[j] - m));
    for (int64_t c = 0; c < D; ++c)
      o[i * D + c] = 0;
    for (int64_t j = 0; j < S; ++j) {
      float p = row[j] / l;
      for (int64_t c = 0; c < D; ++c)
        o[i * D + c] += p * v[j * D + c];
    }
  }
}
} // namespace

int main(int argc, char **argv) {
  setenv("LOOM_CACHE_DIR", ("/tmp/loom-bench-attn-" + std::to_string(getpid())).c_str(), 1);
  int64_t maxS = argc > 1 ? std::atoll(argv[1]) : 2048;
  std::printf("Attention on the CPU backend (f32, 1 batch, 1 head, non-causal), 2 cores\n");
  std::printf("%6s %4s %12s %12s %12s %9s %14s %14s\n", "seqlen", "hd", "fused fwd", "fused bwd",
              "unfused fwd", "fused/", "fused extra", "unfused extra");
  std::printf("%6s %4s %12s %12s %12s %9s %14s %14s\n", "", "", "GFLOP/s", "GFLOP/s", "GFLOP/s",
              "unfused", "memory (KiB)", "memory (KiB)");
  for (int64_t D : {64, 128})
    for (int64_t S = 512; S <= maxS; S *= 2) {
      auto q = ops::ref::randomVector(S * D, -1, 1), k = ops::ref::randomVector(S * D, -1, 1),
           v = ops::ref::randomVector(S * D, -1, 1), dO = ops::ref::randomVector(S * D, -1, 1);
      std::vector<float> o(S * D), lse(S), dq(S * D), dk(S * D), dv(S * D);
      auto T = [&](const std::vector<float> &x) {
        return ops::Tensor4::contiguous(x.data(), DType::F32, {1, S, 1, D});
      };
      ops::AttentionOptions options;
      options.backend = runtime::Backend::Cpu;
      ops::attentionForward(T(q), T(k), T(v), T(o), lse.data(), options); // compile + warm up
      ops::attentionBackward(T(q), T(k), T(v), T(o), lse.data(), T(dO), T(dq), T(dk), T(dv),
                             options);
      auto t = Clock::now();
      ops::attentionForward(T(q), T(k), T(v), T(o), lse.data(), options);
      double fwd = secondsSince(t);
      t = Clock::now();
      ops::attentionBackward(T(q), T(k), T(v), T(o), lse.data(), T(dO), T(dq), T(dk), T(dv),
                             options);
      double bwd = secondsSince(t);
      std::vector<float> scores(S * S), o2(S * D);
      t = Clock::now();
      unfused(q.data(), k.data(), v.data(), o2.data(), S, D, scores);
      double base = secondsSince(t);
      double flops = 4.0 * S * S * D; // two S x S x D matmuls
      std::printf("%6lld %4lld %12.2f %12.2f %12.2f %8.2fx %14.1f %14.1f\n", (long long)S,
                  (long long)D, flops / fwd / 1e9, 2.5 * flops / bwd / 1e9, flops / base / 1e9,
                  base / fwd, (S * 4.0 /*lse*/) / 1024, (S * S * 4.0) / 1024);
    }

  std::printf("\nCold compile per variant (ms; bf16, head dim 64; CUDA: sm_80, NVRTC)\n");
  std::printf("%-28s %10s %10s\n", "variant", "cpu fwd", "cuda fwd");
  for (const auto &variant :
       {ops::AttentionVariant::none(), ops::AttentionVariant::causalMask(),
        ops::AttentionVariant::slidingWindow(256), ops::AttentionVariant::alibi(),
        ops::AttentionVariant::softcap(30), ops::AttentionVariant::prefixLM(64),
        ops::AttentionVariant::documentMask()}) {
    auto kernel = ops::flashAttentionForwardKernel(DType::BF16, 64, variant);
    runtime::Specialization spec;
    spec.constants = {{"BLOCK_M", 64}, {"BLOCK_N", 32}};
    spec.backend = runtime::Backend::Cpu;
    auto t = Clock::now();
    runtime::compileUncached(kernel, spec);
    double cpuMs = secondsSince(t) * 1e3;
    runtime::CudaBuildOptions cudaOptions;
    cudaOptions.numThreads = 256;
    cudaOptions.useDiskCache = false;
    t = Clock::now();
    runtime::buildCuda(kernel, spec, cudaOptions);
    double cudaMs = secondsSince(t) * 1e3;
    std::printf("%-28s %10.1f %10.1f\n", variant.name.c_str(), cpuMs, cudaMs);
  }
  return 0;
}
