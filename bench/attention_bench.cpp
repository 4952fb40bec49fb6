//===- attention_bench.cpp - attention on the CPU backend, compile times --===//
//
// 1. The machine's measured sgemm peak (OpenBLAS, 2048^3).
// 2. Per (seqlen, head dim, causal): Loom's fused flash attention forward
//    and backward (CPU backend, f32) beside an unfused "standard attention"
//    built on OpenBLAS sgemm in the same run (S = scale Q K^T by sgemm per
//    (batch, head), masked softmax rows in plain C++, O = P V by sgemm), as
//    GFLOP/s and ratios; Loom's output is checked against the baseline's (a
//    non-zero exit when they disagree). Extra memory per sequence length:
//    linear (LSE) for the fused kernel, quadratic (scores) for the unfused.
// 3. Cold compile milliseconds per variant: CPU JIT, and CUDA C++ -> CUBIN
//    (NVRTC, sm_80). Compiled, not run on a GPU.
//
// Usage: loom-bench-attention [--heads N] [--batch N] [--no-backward]
//                             [--no-compile] [SEQLEN...]
// (default seqlens 1024 2048; e.g. 4096 8192 16384 for longer contexts).
//
// Without OpenBLAS at configure time (LOOM_BENCH_HAVE_OPENBLAS unset) the
// baseline, the check and the sgemm peak are skipped, and the output says so.
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
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#ifdef LOOM_BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif

using namespace loom;
using Clock = std::chrono::steady_clock;

namespace {
double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// Best (minimum) time of `fn`: at least one run, repeated while the total
/// stays under `budget` seconds, at most `maxReps` runs.
double bestTime(const std::function<void()> &fn, double budget = 0.6, int maxReps = 5) {
  double best = 1e30, total = 0;
  for (int rep = 0; rep < maxReps && (rep == 0 || total < budget); ++rep) {
    auto t = Clock::now();
    fn();
    double s = secondsSince(t);
    best = std::min(best, s);
    total += s;
  }
  return best;
}

std::string bytes(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  return buf;
}

/// Runs fn(begin, end) over [0, n) split across `threads` std::threads.
void parallelRows(int64_t n, unsigned threads, const std::function<void(int64_t, int64_t)> &fn) {
  int64_t parts = std::min<int64_t>(threads, n);
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  int64_t chunk = (n + parts - 1) / parts;
  for (int64_t p = 1; p < parts; ++p)
    if (p * chunk < n)
      pool.emplace_back(fn, p * chunk, std::min(n, (p + 1) * chunk));
  fn(0, std::min(n, chunk));
  for (auto &t : pool)
    t.join();
}

#ifdef LOOM_BENCH_HAVE_OPENBLAS
/// Unfused "standard attention" on (batch, seqlen, heads, head_dim) f32
/// tensors, one (batch, head) at a time: scores = scale Q K^T by sgemm into
/// an S x S buffer, masked softmax rows in plain C++ (split across
/// `threads`), O = P V by sgemm, rows scaled by 1 / rowsum. Causal runs
/// work in row panels of 256 queries and compute only the keys up to each
/// panel's diagonal (about half the sgemm FLOPs, like the fused kernel
/// skipping blocks), masking the rest of the panel. Writes O and the
/// natural-log LSE as (batch, heads, seqlen).
void unfusedAttention(const float *q, const float *k, const float *v, float *o, float *lse,
                      int64_t B, int64_t S, int64_t H, int64_t D, bool causal,
                      std::vector<float> &scores, unsigned threads) {
  const float scale = 1.0f / std::sqrt(float(D));
  const int64_t ld = H * D, panel = causal ? 256 : S;
  std::vector<float> invSum(size_t(std::min(panel, S)));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const float *Q = q + b * S * ld + h * D, *K = k + b * S * ld + h * D,
                  *V = v + b * S * ld + h * D;
      float *O = o + b * S * ld + h * D, *L = lse + (b * H + h) * S;
      for (int64_t i0 = 0; i0 < S; i0 += panel) {
        const int64_t m = std::min(panel, S - i0), n = causal ? i0 + m : S;
        float *P = scores.data() + i0 * S; // row stride S
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(D), scale,
                    Q + i0 * ld, int(ld), K, int(ld), 0.0f, P, int(S));
        parallelRows(m, threads, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) {
            float *row = P + r * S;
            const int64_t len = causal ? i0 + r + 1 : S; // visible keys
            float mx = *std::max_element(row, row + len), sum = 0;
            for (int64_t j = 0; j < len; ++j)
              sum += (row[j] = std::exp(row[j] - mx));
            std::fill(row + len, row + n, 0.0f); // masked
            invSum[r] = 1.0f / sum;
            L[i0 + r] = mx + std::log(sum);
          }
        });
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(D), int(n), 1.0f, P,
                    int(S), V, int(ld), 0.0f, O + i0 * ld, int(ld));
        for (int64_t r = 0; r < m; ++r)
          for (int64_t c = 0; c < D; ++c)
            O[(i0 + r) * ld + c] *= invSum[r];
      }
    }
}

/// GFLOP/s of an n x n x n sgemm (best of a few after a warm-up).
double sgemmPeak(int64_t n) {
  auto a = ops::ref::randomVector(n * n, -1, 1), b = ops::ref::randomVector(n * n, -1, 1);
  std::vector<float> c(n * n);
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.0f,
                a.data(), int(n), b.data(), int(n), 0.0f, c.data(), int(n));
  };
  run();
  return 2.0 * n * n * n / bestTime(run, 1.0, 5) / 1e9;
}
#endif

double maxAbsDiff(const std::vector<float> &a, const std::vector<float> &b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= m)) // NaN propagates as a failure
      m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}
} // namespace

int main(int argc, char **argv) {
  setenv("LOOM_CACHE_DIR", ("/tmp/loom-bench-attn-" + std::to_string(getpid())).c_str(), 1);
  int64_t B = 1, H = 1;
  bool backward = true, compileTable = true;
  std::vector<int64_t> seqlens;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--heads" && i + 1 < argc)
      H = std::atoll(argv[++i]);
    else if (a == "--batch" && i + 1 < argc)
      B = std::atoll(argv[++i]);
    else if (a == "--no-backward")
      backward = false;
    else if (a == "--no-compile")
      compileTable = false;
    else if (std::atoll(a.c_str()) > 0)
      seqlens.push_back(std::atoll(a.c_str()));
    else {
      std::fprintf(stderr,
                   "usage: %s [--heads N] [--batch N] [--no-backward] [--no-compile] "
                   "[SEQLEN...]\n",
                   argv[0]);
      return 2;
    }
  }
  bool defaultSeqlens = seqlens.empty();
  if (defaultSeqlens)
    seqlens = {1024, 2048};
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());

  std::printf("Attention on the CPU backend: f32, batch %lld, %lld head(s), (batch, seqlen, "
              "heads, head_dim) layout\n",
              (long long)B, (long long)H);
  std::printf("Threads: Loom CPU thread pool %u (hardware_concurrency)", threads);
#ifdef LOOM_BENCH_HAVE_OPENBLAS
  openblas_set_num_threads(int(threads));
  std::printf(", OpenBLAS sgemm %d (openblas_set_num_threads), baseline softmax %u "
              "std::threads\n",
              openblas_get_num_threads(), threads);
  std::printf("OpenBLAS: %s\n", openblas_get_config());
  double peak = sgemmPeak(2048);
  std::printf("Measured sgemm peak (OpenBLAS, 2048^3, best of up to 5): %.1f GFLOP/s\n", peak);
#else
  std::printf("\nOpenBLAS baseline skipped: %s\n", LOOM_BENCH_NO_OPENBLAS_REASON);
#endif
  std::printf("FLOPs counted: forward 4*S^2*D*H*batch (the two S x S x D matmuls), halved "
              "for causal; backward 2.5x the forward. Times: best of up to 5 runs within "
              "~0.6 s, after a compile/warm-up call at seqlen 128.\n");
  std::printf("Seqlens: %s (pass seqlens as arguments for more, e.g. `loom-bench-attention "
              "4096 8192 16384`; add --no-backward to save time)\n\n",
              defaultSeqlens ? "default 1024 2048" : "from the command line");

  std::printf("%6s %4s %6s | %9s %9s | %9s %8s %8s | %9s | %11s %11s | %s\n", "seqlen", "hd",
              "causal", "Loom fwd", "Loom bwd", "BLAS fwd", "Loom/", "Loom fwd", "max |dO|",
              "Loom extra", "BLAS extra", "time (s): Loom fwd, bwd, BLAS fwd");
  std::printf("%6s %4s %6s | %9s %9s | %9s %8s %8s | %9s | %11s %11s |\n", "", "", "",
              "GFLOP/s", "GFLOP/s", "GFLOP/s", "BLAS", "/ peak", "vs BLAS", "(LSE)",
              "(S x S)");
  bool disagree = false;
  for (int64_t S : seqlens)
    for (int64_t D : {64, 128})
      for (bool causal : {false, true}) {
        auto T = [&](const std::vector<float> &x, int64_t s) {
          return ops::Tensor4::contiguous(x.data(), DType::F32, {B, s, H, D});
        };
        ops::AttentionOptions options;
        options.backend = runtime::Backend::Cpu;
        options.causal = causal;
        { // compile (the kernels are specialized on head dim, causal and blocks, not seqlen)
          const int64_t s = 128;
          auto q = ops::ref::randomVector(B * s * H * D, -1, 1);
          std::vector<float> o(q.size()), lse(B * H * s), dq(q.size()), dk(q.size()),
              dv(q.size());
          ops::attentionForward(T(q, s), T(q, s), T(q, s), T(o, s), lse.data(), options);
          if (backward)
            ops::attentionBackward(T(q, s), T(q, s), T(q, s), T(o, s), lse.data(), T(q, s),
                                   T(dq, s), T(dk, s), T(dv, s), options);
        }
        const size_t n = size_t(B * S * H * D);
        auto q = ops::ref::randomVector(n, -1, 1), k = ops::ref::randomVector(n, -1, 1),
             v = ops::ref::randomVector(n, -1, 1), dO = ops::ref::randomVector(n, -1, 1);
        std::vector<float> o(n), lse(B * H * S), dq(n), dk(n), dv(n);
        double fwd = bestTime([&] {
          ops::attentionForward(T(q, S), T(k, S), T(v, S), T(o, S), lse.data(), options);
        });
        double bwd = 0;
        if (backward)
          bwd = bestTime([&] {
            ops::attentionBackward(T(q, S), T(k, S), T(v, S), T(o, S), lse.data(), T(dO, S),
                                   T(dq, S), T(dk, S), T(dv, S), options);
          });
        const double flops = 4.0 * S * S * D * H * B * (causal ? 0.5 : 1.0);
        const double loomExtra = 4.0 * B * H * S, blasExtra = 4.0 * S * S;
        std::printf("%6lld %4lld %6s | %9.2f ", (long long)S, (long long)D,
                    causal ? "yes" : "no", flops / fwd / 1e9);
        if (backward)
          std::printf("%9.2f | ", 2.5 * flops / bwd / 1e9);
        else
          std::printf("%9s | ", "-");
#ifdef LOOM_BENCH_HAVE_OPENBLAS
        std::vector<float> scores(size_t(S * S)), o2(n), lse2(B * H * S);
        double base = bestTime([&] {
          unfusedAttention(q.data(), k.data(), v.data(), o2.data(), lse2.data(), B, S, H, D,
                           causal, scores, threads);
        });
        double diffO = maxAbsDiff(o, o2), diffL = maxAbsDiff(lse, lse2);
        bool bad = !(diffO <= 1e-3) || !(diffL <= 1e-3);
        disagree |= bad;
        std::printf("%9.2f %7.2fx %7.1f%% | %9.1e | %11s %11s | %.3f, %.3f, %.3f%s\n",
                    flops / base / 1e9, base / fwd, 100.0 * flops / fwd / 1e9 / peak, diffO,
                    bytes(loomExtra).c_str(), bytes(blasExtra).c_str(), fwd, bwd, base,
                    bad ? "  <-- DISAGREES (O or LSE beyond 1e-3)" : "");
        if (bad)
          std::printf("       max |LSE - LSE_blas| = %.3e\n", diffL);
#else
        std::printf("%9s %8s %8s | %9s | %11s %11s | %.3f, %.3f, -\n", "-", "-", "-", "-",
                    bytes(loomExtra).c_str(), bytes(blasExtra).c_str(), fwd, bwd);
#endif
        std::fflush(stdout);
      }
  std::printf("Loom extra = the f32 LSE, batch*heads*S*4 bytes (the backward adds a delta of "
              "the same size); BLAS extra = one S x S f32 score matrix, reused across (batch, "
              "head). Both beside Q, K, V, O.\n");
#ifdef LOOM_BENCH_HAVE_OPENBLAS
  std::printf("Unfused baseline: causal rows are done in panels of 256 queries with keys up to "
              "the panel's diagonal only (~half the sgemm FLOPs); max |dO| = max |O_loom - "
              "O_blas|, LSE checked too (limit 1e-3).\n");
#endif

  if (compileTable) {
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
  }
  if (disagree) {
    std::fprintf(stderr, "loom-bench-attention: Loom's output disagrees with the OpenBLAS "
                         "baseline beyond 1e-3\n");
    return 1;
  }
  return 0;
}
