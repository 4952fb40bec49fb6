// A new attention variant in a few lines of user code: a relative-position
// bias read from a tensor plus a document mask, forward and backward (the
// score modifier is differentiated automatically).
#include "loom/ops/Attention.h"

#include <cmath>
#include <cstdio>
#include <exception>
#include <random>
#include <vector>

using namespace loom;
using namespace loom::dsl;

namespace {
int run() {
  const int64_t S = 96, H = 4, D = 32, span = 2 * S - 1;

  // ---- the variant: 12 lines ----
  ops::AttentionVariant relBias;
  relBias.name = "rel_bias";
  relBias.tensors = {{"bias", DType::F32}}; // (heads, 2 * seqlen - 1)
  relBias.scoreMod = [](Value score, const ops::VariantContext &c) {
    Value distance = c.qIdx - c.kvIdx + (c.seqlenK - 1);
    Value bias = load(c.tensors.at("bias"), c.head * (2 * c.seqlenK - 1) + distance,
                      c.qValid & c.kvValid, 0.0);
    return score + bias;
  };
  ops::AttentionVariant variant =
      ops::combine(ops::combine(ops::AttentionVariant::causalMask(), relBias),
                   ops::AttentionVariant::documentMask());
  // ---- end of the variant ----

  std::mt19937 gen(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1, 1);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float &x : v)
      x = dist(gen);
    return v;
  };
  auto q = random(S * H * D), k = random(S * H * D), v = random(S * H * D),
       dO = random(S * H * D), bias = random(H * span);
  std::vector<int32_t> docs(S);
  for (int64_t i = 0; i < S; ++i)
    docs[i] = int32_t(i < 40 ? 0 : 1); // two packed documents
  std::vector<float> o(q.size()), lse(H * S), dq(q.size()), dk(k.size()), dv(v.size());
  auto T = [&](const std::vector<float> &x) {
    return ops::Tensor4::contiguous(x.data(), DType::F32, {1, S, H, D});
  };
  ops::AttentionOptions options;
  options.variant = variant;
  options.variantArgs = {runtime::Arg::buffer(bias), runtime::Arg::buffer(docs)};
  options.backend = runtime::Backend::Cpu;
  ops::attentionForward(T(q), T(k), T(v), T(o), lse.data(), options);
  ops::attentionBackward(T(q), T(k), T(v), T(o), lse.data(), T(dO), T(dq), T(dk), T(dv), options);

  // The first query of document 1 (position 40) sees only key 40.
  double err = 0;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t c = 0; c < D; ++c)
      err = std::max(err, double(std::fabs(o[(40 * H + h) * D + c] - v[(40 * H + h) * D + c])));
  std::printf("variant '%s': query 40 attends only to key 40 (error %.2g); dq[0] = %.4f\n",
              variant.name.c_str(), err, dq[0]);
  return err < 1e-5 && std::isfinite(dq[0]) ? 0 : 1;
}
} // namespace

// A loom::Error (a bad --backend, no CUDA driver, a compile failure) ends
// the program with its one-line message, never an uncaught exception.
int main() {
  try {
    return run();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "custom_variant: error: %s\n", e.what());
    return 1;
  }
}
