// Flash attention from a plain C++ host program: JIT-specialized for the
// head dim, dtype and variant on first use, cached afterwards. Runs on the
// CPU here (--backend emu runs the generated CUDA C++ on the emulated device).
#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Attention.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <cstring>
#include <random>
#include <vector>

using namespace loom;

namespace {
int run(int argc, char **argv) {
  runtime::Backend backend =
      argc > 2 && !std::strcmp(argv[1], "--backend") ? runtime::parseBackend(argv[2])
                                                     : runtime::Backend::Cpu;
  // Llama-style GQA shape, scaled down: 8 query heads share 2 K/V heads.
  const int64_t B = 1, S = 256, Hq = 8, Hkv = 2, D = 64;
  std::mt19937 gen(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1, 1);
  auto bf16 = [&](size_t n) {
    std::vector<uint16_t> v(n);
    for (auto &x : v)
      x = floatToBf16(dist(gen));
    return v;
  };
  auto q = bf16(B * S * Hq * D), k = bf16(B * S * Hkv * D), v = bf16(B * S * Hkv * D),
       dO = bf16(B * S * Hq * D);
  std::vector<uint16_t> o(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
  std::vector<float> lse(B * Hq * S);
  auto T = [](const std::vector<uint16_t> &x, std::array<int64_t, 4> shape) {
    return ops::Tensor4::contiguous(x.data(), DType::BF16, shape);
  };
  std::array<int64_t, 4> qs{B, S, Hq, D}, ks{B, S, Hkv, D};

  ops::AttentionOptions options;
  options.causal = true;
  options.backend = backend;
  for (int iter = 0; iter < 2; ++iter) { // the second call hits the kernel cache
    auto start = std::chrono::steady_clock::now();
    ops::attentionForward(T(q, qs), T(k, ks), T(v, ks), T(o, qs), lse.data(), options);
    ops::attentionBackward(T(q, qs), T(k, ks), T(v, ks), T(o, qs), lse.data(), T(dO, qs),
                           T(dq, qs), T(dk, ks), T(dv, ks), options);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
    std::printf("call %d (%s): forward + backward %.1f ms%s\n", iter + 1,
                runtime::backendName(runtime::resolveBackend(backend)), ms,
                iter == 0 ? " (includes JIT compilation)" : "");
  }
  // Row 0 attends only to key 0 (causal), so its output is V[key 0].
  double err = 0;
  for (int64_t c = 0; c < D; ++c)
    err = std::max(err, double(std::fabs(bf16ToFloat(o[c]) - bf16ToFloat(v[c]))));
  bool finite = true;
  for (auto x : dq)
    finite &= std::isfinite(bf16ToFloat(x));
  std::printf("row 0 equals V[0] within %.2g; gradients finite: %s\n", err, finite ? "yes" : "no");
  return err < 1e-2 && finite ? 0 : 1;
}
} // namespace

// A loom::Error (a bad --backend, no CUDA driver, a compile failure) ends
// the program with its one-line message, never an uncaught exception.
int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "attention_jit: error: %s\n", e.what());
    return 1;
  }
}
