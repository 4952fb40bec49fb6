//===- EmptyShapeTest.cpp - attention and ring on empty tensors -----------===//
//
// Issue 19: an empty batch or sequence gives an empty result (no error),
// seqlen_k 0 with queries gives O = 0, LSE = -inf (or the sink) and dQ = 0,
// and only a zero head dim or no heads is an error. Empty tensors come as
// empty std::vectors, whose data() is null. Outputs are poisoned (NaN)
// first, so an element the call forgot to write fails.
//
//===----------------------------------------------------------------------===//
#include "ExpectError.h"

#include "loom/ops/Attention.h"
#include "loom/ops/Reference.h"
#include "loom/ops/RingAttention.h"
#include "loom/runtime/Communicator.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace loom;
using namespace loom::ops;

namespace {
using Shape = std::array<int64_t, 4>;

size_t count(const Shape &s) { return size_t(s[0] * s[1] * s[2] * s[3]); }

std::vector<float> random(const Shape &s) { return ref::randomVector(count(s), -1, 1); }
std::vector<float> poisoned(size_t n) { return std::vector<float>(n, ref::poison()); }

Tensor4 f32(const std::vector<float> &x, const Shape &s) {
  return Tensor4::contiguous(x.data(), DType::F32, s);
}

/// Every element equals `want` (NaN never does).
void expectAll(const std::vector<float> &x, float want, const char *what) {
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_TRUE(x[i] == want) << what << "[" << i << "] = " << x[i] << ", want " << want;
}

class EmptyAttention : public ::testing::TestWithParam<runtime::Backend> {};

// Empty batch, empty sequence, and no queries: nothing to write, no error,
// and the gradients that do have elements (dK, dV with seqlen_q 0) are 0.
TEST_P(EmptyAttention, EmptyBatchOrSequenceGivesAnEmptyResult) {
  struct Case {
    Shape q, k;
  };
  for (const Case &c : {Case{{1, 0, 2, 32}, {1, 0, 2, 32}}, Case{{1, 0, 2, 32}, {1, 5, 1, 32}},
                        Case{{0, 4, 2, 32}, {0, 4, 2, 32}}}) {
    SCOPED_TRACE(::testing::Message() << "q seqlen " << c.q[1] << ", batch " << c.q[0]);
    for (bool causal : {false, true}) {
      std::vector<float> q = random(c.q), k = random(c.k), v = random(c.k), dO = random(c.q);
      std::vector<float> out = poisoned(count(c.q)),
                         lse = poisoned(size_t(c.q[0] * c.q[2] * c.q[1]));
      AttentionOptions options;
      options.backend = GetParam();
      options.causal = causal;
      attentionForward(f32(q, c.q), f32(k, c.k), f32(v, c.k), f32(out, c.q), lse.data(), options);
      EXPECT_TRUE(out.empty() && lse.empty());
      std::vector<float> dq = poisoned(count(c.q)), dk = poisoned(count(c.k)),
                         dv = poisoned(count(c.k));
      attentionBackward(f32(q, c.q), f32(k, c.k), f32(v, c.k), f32(out, c.q), lse.data(),
                        f32(dO, c.q), f32(dq, c.q), f32(dk, c.k), f32(dv, c.k), options);
      // The float64 reference agrees: no query reaches any key.
      ref::AttentionGrads want =
          ref::attentionBackward(ref::toDouble(q), ref::toDouble(k), ref::toDouble(v),
                                 ref::toDouble(dO), c.q[0], c.q[1], c.k[1], c.q[2], c.k[2], c.q[3],
                                 causal, 1 / std::sqrt(32.0));
      ASSERT_EQ(want.dk.size(), dk.size());
      for (size_t i = 0; i < dk.size(); ++i)
        ASSERT_TRUE(dk[i] == want.dk[i] && dv[i] == want.dv[i] && dk[i] == 0) << i;
    }
  }
}

// seqlen_k 0 with queries: no key is visible, so O = 0 and LSE = -inf (the
// head's sink with sinks), and dQ = 0; dsinks = 0 since O = 0.
TEST_P(EmptyAttention, NoKeysGivesZeroOutputAndEmptyLse) {
  Shape qs{2, 5, 4, 32}, ks{2, 0, 2, 32};
  for (bool withSinks : {false, true}) {
    SCOPED_TRACE(withSinks ? "sinks" : "no sinks");
    std::vector<float> q = random(qs), dO = random(qs), k, v;
    std::vector<float> sinks = ref::randomVector(4, -2, 2), dsinks = poisoned(4);
    std::vector<float> out = poisoned(count(qs)), lse = poisoned(2 * 4 * 5);
    AttentionOptions options;
    options.backend = GetParam();
    // With sinks, also a bias over no keys: (heads, seqlen_q, 0), no storage.
    std::vector<float> bias, dbias;
    if (withSinks) {
      options.sinks = sinks.data(), options.dsinks = dsinks.data();
      options.variant = AttentionVariant::additiveBias(true);
      options.variantArgs = {runtime::Arg::buffer(bias.data(), DType::F32, 0)};
      options.variantGrads = {runtime::Arg::buffer(dbias.data(), DType::F32, 0)};
    }
    attentionForward(f32(q, qs), f32(k, ks), f32(v, ks), f32(out, qs), lse.data(), options);
    expectAll(out, 0.0f, "out");
    // The kernels keep LSE in log2 units (the scale folded into exp2), so
    // a sink comes back within a rounding of itself, not always bit-exact.
    for (size_t i = 0; i < lse.size(); ++i) {
      if (withSinks)
        ASSERT_NEAR(lse[i], sinks[(i / 5) % 4], 1e-6) << "lse " << i;
      else
        ASSERT_TRUE(lse[i] == -INFINITY) << "lse " << i << " = " << lse[i];
    }
    std::vector<float> dq = poisoned(count(qs)), dk, dv;
    attentionBackward(f32(q, qs), f32(k, ks), f32(v, ks), f32(out, qs), lse.data(), f32(dO, qs),
                      f32(dq, qs), f32(dk, ks), f32(dv, ks), options);
    expectAll(dq, 0.0f, "dq");
    if (withSinks)
      expectAll(dsinks, 0.0f, "dsinks");
  }
}

// An empty batch still writes the learnable gradients: zero, like any
// empty sum (PyTorch's gradient of an unused parameter is zero too).
TEST_P(EmptyAttention, EmptyBatchZeroesSinkAndBiasGradients) {
  Shape s{0, 3, 2, 32};
  std::vector<float> none, sinks = ref::randomVector(2, -1, 1), dsinks = poisoned(2);
  std::vector<float> bias = ref::randomVector(2 * 3 * 3, -1, 1), dbias = poisoned(bias.size());
  AttentionOptions options;
  options.backend = GetParam();
  options.sinks = sinks.data(), options.dsinks = dsinks.data();
  options.variant = AttentionVariant::additiveBias(true);
  options.variantArgs = {runtime::Arg::buffer(bias.data(), DType::F32, bias.size())};
  options.variantGrads = {runtime::Arg::buffer(dbias.data(), DType::F32, dbias.size())};
  Tensor4 t = f32(none, s);
  attentionForward(t, t, t, t, nullptr, options);
  attentionBackward(t, t, t, t, nullptr, t, t, t, t, options);
  expectAll(dsinks, 0.0f, "dsinks");
  expectAll(dbias, 0.0f, "dbias");
}

// A zero head dim or no heads is malformed whatever else is empty.
TEST_P(EmptyAttention, ZeroHeadDimOrHeadsIsAnError) {
  std::vector<float> none, x = random({1, 4, 2, 32});
  AttentionOptions options;
  options.backend = GetParam();
  auto forward = [&](Shape qs, Shape ks) {
    std::vector<float> q(count(qs)), k(count(ks)), out(count(qs)),
        lse(size_t(qs[0] * qs[1] * qs[2]));
    attentionForward(f32(q, qs), f32(k, ks), f32(k, ks), f32(out, qs), lse.data(), options);
  };
  expectLoomError([&] { forward({1, 4, 2, 0}, {1, 4, 2, 0}); },
                  "attention: q (1, 4, 2, 0) has head_dim 0; head_dim must be positive");
  expectLoomError([&] { forward({0, 0, 2, 0}, {0, 0, 2, 0}); },
                  "attention: q (0, 0, 2, 0) has head_dim 0; head_dim must be positive");
  expectLoomError([&] { forward({1, 4, 0, 32}, {1, 4, 2, 32}); },
                  "attention: q (1, 4, 0, 32) has 0 heads; heads_q must be positive");
  expectLoomError([&] { forward({1, 4, 2, 32}, {1, 4, 0, 32}); },
                  "attention: k (1, 4, 0, 32) has 0 heads; heads_kv must be positive");
  expectLoomError(
      [&] {
        Shape s{1, 4, 2, 0};
        Tensor4 t = f32(none, s);
        attentionBackward(t, t, t, t, nullptr, t, t, t, t, options);
      },
      "attention: q (1, 4, 2, 0) has head_dim 0; head_dim must be positive");
  // A tensor with elements still needs storage.
  expectLoomError(
      [&] {
        Shape s{1, 4, 2, 32};
        attentionForward(f32(none, s), f32(x, s), f32(x, s), f32(x, s), nullptr, options);
      },
      "attention: q is a null pointer");
}

INSTANTIATE_TEST_SUITE_P(Backends, EmptyAttention,
                         ::testing::Values(runtime::Backend::Cpu, runtime::Backend::Emu),
                         [](const auto &info) { return runtime::backendName(info.param); });

class EmptyRing : public ::testing::TestWithParam<runtime::Backend> {};

// The ring (2 ranks) as one-device attention: empty in, empty out, the
// sink gradient zero, and the same errors for head_dim 0 and no heads.
TEST_P(EmptyRing, EmptyBatchOrSequenceGivesAnEmptyResult) {
  for (Shape s : {Shape{1, 0, 2, 32}, Shape{0, 4, 2, 32}}) {
    SCOPED_TRACE(::testing::Message() << "batch " << s[0] << ", seqlen " << s[1]);
    auto errors = runtime::runInProcessRanks(2, [&](runtime::Communicator &comm) {
      std::vector<float> q = random(s), sinks = ref::randomVector(2, -1, 1), dsinks = poisoned(2);
      RingAttentionOptions options;
      options.attention.backend = GetParam();
      options.attention.causal = true;
      options.attention.sinks = sinks.data(), options.attention.dsinks = dsinks.data();
      Tensor4 t = f32(q, s);
      ringAttentionForward(comm, t, t, t, t, nullptr, options);
      ringAttentionBackward(comm, t, t, t, t, nullptr, t, t, t, t, options);
      expectAll(dsinks, 0.0f, "dsinks");
    });
    for (const std::exception_ptr &e : errors)
      EXPECT_FALSE(e);
  }
}

TEST_P(EmptyRing, ZeroHeadDimOrHeadsIsAnError) {
  struct Case {
    Shape q, k;
    const char *message;
  };
  for (const Case &c :
       {Case{{1, 2, 2, 0}, {1, 2, 2, 0},
             "ring attention: q (1, 2, 2, 0) has head_dim 0; head_dim must be positive"},
        Case{{1, 0, 0, 32}, {1, 0, 2, 32},
             "ring attention: q (1, 0, 0, 32) has 0 heads; heads_q must be positive"},
        Case{{1, 2, 2, 32}, {1, 2, 0, 32},
             "ring attention: k (1, 2, 0, 32) has 0 heads; heads_kv must be positive"}}) {
    auto errors = runtime::runInProcessRanks(2, [&](runtime::Communicator &comm) {
      std::vector<float> q(count(c.q)), k(count(c.k)), out(count(c.q));
      RingAttentionOptions options;
      options.attention.backend = GetParam();
      expectLoomError(
          [&] {
            ringAttentionForward(comm, f32(q, c.q), f32(k, c.k), f32(k, c.k), f32(out, c.q),
                                 nullptr, options);
          },
          c.message);
    });
    for (const std::exception_ptr &e : errors)
      EXPECT_FALSE(e);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, EmptyRing,
                         ::testing::Values(runtime::Backend::Cpu, runtime::Backend::Emu),
                         [](const auto &info) { return runtime::backendName(info.param); });
} // namespace
