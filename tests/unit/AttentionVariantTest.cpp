//===- AttentionVariantTest.cpp - built-in and custom variants ------------===//
//
// Every built-in variant and two custom ones (a relative-position bias read
// from a tensor, and a composition), forward and backward, against float64
// references written independently of the DSL mods.
//
//===----------------------------------------------------------------------===//
#include "ExpectError.h"

#include "loom/ops/Attention.h"
#include "loom/ops/Reference.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace loom;
using namespace loom::ops;
namespace ref = loom::ops::ref;

namespace {
struct Shape4 {
  int64_t B, Sq, Sk, Hq, Hkv, D;
};

using ref::maxAbs;

void expectClose(const char *what, const std::vector<float> &got, const std::vector<double> &want) {
  auto e = ref::compare(got, want, std::max(maxAbs(want), 1e-3));
  EXPECT_TRUE(ref::withinRelative(e, 1e-4)) << what << ": " << ref::format(e);
}

/// Forward and backward in f32 on `backend`, checked against the references.
void checkVariant(const Shape4 &s, const AttentionVariant &variant,
                  std::vector<runtime::Arg> variantArgs, const ref::RefVariant &refVariant,
                  runtime::Backend backend = runtime::Backend::Cpu) {
  size_t nq = size_t(s.B * s.Sq * s.Hq * s.D), nk = size_t(s.B * s.Sk * s.Hkv * s.D);
  auto q = ref::randomVector(nq, -1.5, 1.5), k = ref::randomVector(nk, -1.5, 1.5),
       v = ref::randomVector(nk, -1.5, 1.5), dO = ref::randomVector(nq, -1, 1);
  std::vector<float> o(nq, ref::poison()), lse(size_t(s.B * s.Hq * s.Sq), ref::poison()),
      dq(nq, ref::poison()), dk(nk, ref::poison()), dv(nk, ref::poison());
  std::array<int64_t, 4> qs{s.B, s.Sq, s.Hq, s.D}, ks{s.B, s.Sk, s.Hkv, s.D};
  auto T = [](const std::vector<float> &x, std::array<int64_t, 4> shape) {
    return Tensor4::contiguous(x.data(), DType::F32, shape);
  };
  AttentionOptions options;
  options.variant = variant;
  options.variantArgs = std::move(variantArgs);
  options.backend = backend;
  if (backend != runtime::Backend::Cpu)
    options.config = AttentionConfig{16, 16, 128};
  attentionForward(T(q, qs), T(k, ks), T(v, ks), T(o, qs), lse.data(), options);
  attentionBackward(T(q, qs), T(k, ks), T(v, ks), T(o, qs), lse.data(), T(dO, qs), T(dq, qs),
                    T(dk, ks), T(dv, ks), options);
  double scale = 1.0 / std::sqrt(double(s.D));
  auto fwd = ref::attention(ref::toDouble(q), ref::toDouble(k), ref::toDouble(v), s.B, s.Sq, s.Sk,
                            s.Hq, s.Hkv, s.D, false, scale, nullptr, &refVariant);
  auto bwd = ref::attentionBackward(ref::toDouble(q), ref::toDouble(k), ref::toDouble(v),
                                    ref::toDouble(dO), s.B, s.Sq, s.Sk, s.Hq, s.Hkv, s.D, false,
                                    scale, nullptr, &refVariant);
  expectClose("O", o, fwd.out);
  auto lseErr = ref::compare(lse, fwd.lse, 1.0);
  EXPECT_TRUE(ref::withinRelative(lseErr, 1e-5)) << "LSE: " << ref::format(lseErr);
  expectClose("dq", dq, bwd.dq);
  expectClose("dk", dk, bwd.dk);
  expectClose("dv", dv, bwd.dv);
}

bool causalVisible(const Shape4 &s, int64_t i, int64_t j) { return j <= i + s.Sk - s.Sq; }
} // namespace

TEST(AttentionVariants, SlidingWindow) {
  Shape4 s{1, 97, 97, 2, 1, 32};
  ref::RefVariant r;
  r.visible = [&](int64_t, int64_t, int64_t i, int64_t j) {
    return causalVisible(s, i, j) && i + s.Sk - s.Sq - j < 16;
  };
  checkVariant(s, AttentionVariant::slidingWindow(16), {}, r);
}

TEST(AttentionVariants, SlidingWindowSkipsWholeBlocks) {
  // Windows narrower than a block and spanning several, seqlen_q != seqlen_k:
  // the kernels start their key (and query) loops at the window, so these
  // exercise the block ranges, not only the element mask.
  for (int64_t window : {5, 70}) {
    Shape4 s{1, 150, 200, 2, 1, 32};
    ref::RefVariant r;
    r.visible = [&](int64_t, int64_t, int64_t i, int64_t j) {
      return causalVisible(s, i, j) && i + s.Sk - s.Sq - j < window;
    };
    checkVariant(s, AttentionVariant::slidingWindow(window), {}, r);
  }
}

TEST(AttentionVariants, AlibiWithGqa) {
  Shape4 s{2, 45, 60, 4, 2, 32};
  ref::RefVariant r;
  r.score = [&](double x, int64_t, int64_t h, int64_t i, int64_t j) {
    double slope = std::pow(2.0, -8.0 * double(h + 1) / double(s.Hq));
    return std::make_pair(x - slope * std::fabs(double(i + s.Sk - s.Sq - j)), 1.0);
  };
  checkVariant(s, AttentionVariant::alibi(), {}, r);
}

TEST(AttentionVariants, SoftcapIsDifferentiated) {
  Shape4 s{1, 50, 70, 2, 2, 64};
  const double cap = 1.5; // small enough that tanh saturates on these scores
  ref::RefVariant r;
  r.score = [&](double x, int64_t, int64_t, int64_t, int64_t) {
    double t = std::tanh(x / cap);
    return std::make_pair(cap * t, 1.0 - t * t);
  };
  checkVariant(s, AttentionVariant::softcap(cap), {}, r);
}

TEST(AttentionVariants, PrefixLM) {
  Shape4 s{1, 50, 50, 1, 1, 32};
  ref::RefVariant r;
  r.visible = [&](int64_t, int64_t, int64_t i, int64_t j) { return causalVisible(s, i, j) || j < 10; };
  checkVariant(s, AttentionVariant::prefixLM(10), {}, r);
}

TEST(AttentionVariants, CausalDocumentMask) {
  Shape4 s{2, 97, 97, 2, 1, 32};
  std::vector<int32_t> ids(size_t(s.B * s.Sk));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t j = 0; j < s.Sk; ++j)
      ids[b * s.Sk + j] = int32_t(b == 0 ? (j < 20 ? 0 : j < 50 ? 1 : 2) : j / 33);
  ref::RefVariant r;
  r.visible = [&](int64_t b, int64_t, int64_t i, int64_t j) {
    return causalVisible(s, i, j) && ids[b * s.Sk + i + s.Sk - s.Sq] == ids[b * s.Sk + j];
  };
  checkVariant(s, combine(AttentionVariant::causalMask(), AttentionVariant::documentMask()),
               {runtime::Arg::buffer(ids)}, r);
}

TEST(AttentionVariants, CustomRelativePositionBiasFromATensor) {
  // A user variant in a few lines: a learned bias per head and relative
  // distance, read from a tensor the score_mod indexes.
  Shape4 s{1, 40, 40, 2, 2, 32};
  const int64_t span = 2 * s.Sk - 1;
  auto bias = ref::randomVector(size_t(s.Hq * span), -2, 2);
  AttentionVariant rel;
  rel.name = "rel_bias";
  rel.tensors = {{"bias", DType::F32}};
  rel.scoreMod = [span](dsl::Value score, const VariantContext &c) {
    dsl::Value offs = c.head * span + (c.qIdx - c.kvIdx + (c.seqlenK - 1));
    return score + dsl::load(c.tensors.at("bias"), offs, c.qValid & c.kvValid, 0.0);
  };
  ref::RefVariant r;
  r.score = [&](double x, int64_t, int64_t h, int64_t i, int64_t j) {
    return std::make_pair(x + bias[h * span + (i - j + s.Sk - 1)], 1.0);
  };
  checkVariant(s, rel, {runtime::Arg::buffer(bias)}, r);
}

TEST(AttentionVariants, CustomCompositionSoftcapAlibiCausal) {
  Shape4 s{1, 33, 47, 2, 1, 32};
  auto v = combine(combine(AttentionVariant::alibi(), AttentionVariant::softcap(2.0)),
                   AttentionVariant::causalMask());
  ref::RefVariant r;
  r.visible = [&](int64_t, int64_t, int64_t i, int64_t j) { return causalVisible(s, i, j); };
  r.score = [&](double x, int64_t, int64_t h, int64_t i, int64_t j) {
    double slope = std::pow(2.0, -8.0 * double(h + 1) / double(s.Hq));
    double a = x - slope * std::fabs(double(i + s.Sk - s.Sq - j));
    double t = std::tanh(a / 2.0);
    return std::make_pair(2.0 * t, 1.0 - t * t);
  };
  checkVariant(s, v, {}, r);
}

TEST(AttentionVariants, ScoreModsComposeInTheOrderGiven) {
  // alibi then softcap, and softcap then alibi: each matches the float64
  // reference composed in its own order, and the two results differ.
  Shape4 s{1, 21, 29, 2, 2, 16};
  const double cap = 1.25;
  auto alibiThen = [&](bool capFirst) {
    ref::RefVariant r;
    r.score = [&, capFirst](double x, int64_t, int64_t h, int64_t i, int64_t j) {
      double slope = std::pow(2.0, -8.0 * double(h + 1) / double(s.Hq));
      double shift = slope * std::fabs(double(i + s.Sk - s.Sq - j));
      if (capFirst) {
        double t = std::tanh(x / cap);
        return std::make_pair(cap * t - shift, 1.0 - t * t);
      }
      double t = std::tanh((x - shift) / cap);
      return std::make_pair(cap * t, 1.0 - t * t);
    };
    return r;
  };
  checkVariant(s, combine(AttentionVariant::alibi(), AttentionVariant::softcap(cap)), {},
               alibiThen(false));
  checkVariant(s, combine(AttentionVariant::softcap(cap), AttentionVariant::alibi()), {},
               alibiThen(true));
  // Each kernel is within 1e-4 of its own order's reference, and the two
  // references are far apart, so the two orders give different results.
  auto q = ref::toDouble(ref::randomVector(size_t(s.Sq * s.Hq * s.D), -1.5, 1.5));
  auto k = ref::toDouble(ref::randomVector(size_t(s.Sk * s.Hkv * s.D), -1.5, 1.5));
  auto v = ref::toDouble(ref::randomVector(size_t(s.Sk * s.Hkv * s.D), -1.5, 1.5));
  double scale = 1.0 / std::sqrt(double(s.D));
  ref::RefVariant biasedThenCapped = alibiThen(false), cappedThenBiased = alibiThen(true);
  auto x = ref::attention(q, k, v, s.B, s.Sq, s.Sk, s.Hq, s.Hkv, s.D, false, scale, nullptr,
                          &biasedThenCapped);
  auto y = ref::attention(q, k, v, s.B, s.Sq, s.Sk, s.Hq, s.Hkv, s.D, false, scale, nullptr,
                          &cappedThenBiased);
  double diff = 0;
  for (size_t i = 0; i < x.out.size(); ++i)
    diff = std::max(diff, std::fabs(x.out[i] - y.out[i]));
  EXPECT_GT(diff, 1e-2 * maxAbs(x.out)) << "the two orders should give different results";
}

TEST(AttentionVariants, ScoreModOfMinusInfinityHidesKeys) {
  // A score of -inf hides its key, as in FlexAttention: queries 8..11 see
  // no key at all (O = 0, LSE = -inf) and their gradients are 0, not NaN
  // (the backward's exp2(s - LSE) would be -inf - -inf there).
  Shape4 s{1, 40, 40, 1, 1, 32};
  AttentionVariant hide;
  hide.name = "hide_rows";
  hide.scoreMod = [](dsl::Value score, const VariantContext &c) {
    return dsl::where((c.qIdx >= 8) & (c.qIdx < 12), -INFINITY, score);
  };
  ref::RefVariant r;
  r.score = [](double x, int64_t, int64_t, int64_t i, int64_t) {
    return i >= 8 && i < 12 ? std::make_pair(-double(INFINITY), 0.0) : std::make_pair(x, 1.0);
  };
  checkVariant(s, hide, {}, r);
}

TEST(AttentionVariants, OnTheEmulatedDevice) {
  Shape4 s{1, 20, 28, 2, 1, 32};
  ref::RefVariant r;
  r.visible = [&](int64_t, int64_t, int64_t i, int64_t j) { return causalVisible(s, i, j); };
  r.score = [&](double x, int64_t, int64_t, int64_t, int64_t) {
    double t = std::tanh(x / 1.5);
    return std::make_pair(1.5 * t, 1.0 - t * t);
  };
  checkVariant(s, combine(AttentionVariant::causalMask(), AttentionVariant::softcap(1.5)), {}, r,
               runtime::Backend::Emu);
}

TEST(AttentionVariants, MissingVariantTensorIsAnError) {
  std::vector<float> x(64 * 32, 0.5f);
  auto t = Tensor4::contiguous(x.data(), DType::F32, {1, 64, 1, 32});
  AttentionOptions options;
  options.backend = runtime::Backend::Cpu;
  options.variant = AttentionVariant::documentMask();
  expectLoomError([&] { attentionForward(t, t, t, t, nullptr, options); },
                  "attention: variant 'document' needs 1 tensor(s) (doc_ids: i32), got 0");
  expectLoomError([] { AttentionVariant::slidingWindow(0); },
                  "sliding_window: window must be positive, got 0");
  expectLoomError([] { AttentionVariant::softcap(-1); },
                  "softcap: cap must be a positive number, got -1");
}
