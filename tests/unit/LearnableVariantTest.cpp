//===- LearnableVariantTest.cpp - variants that train ---------------------===//
//
// Gradients of variant tensors (a relative-position bias table and a dense
// bias), learnable attention sinks, and runtime scalars, forward and
// backward, against the float64 reference. The reference's own gradients of
// the bias and the sinks are checked by central finite differences of its
// forward, so the kernel is never compared with an unchecked formula.
//
//===----------------------------------------------------------------------===//
#include "AttentionTolerance.h"
#include "ExpectError.h"
#include "TypedBuffers.h"

#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Attention.h"
#include "loom/ops/BlockMask.h"
#include "loom/ops/Reference.h"
#include "loom/ops/SumByKey.h"
#include "loom/runtime/CudaBuild.h"
#include "loom/runtime/Stream.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numeric>

using namespace loom;
using namespace loom::ops;
namespace ref = loom::ops::ref;

namespace {
struct Shape4 {
  int64_t B, Sq, Sk, Hq, Hkv, D;
};

/// score + table[h, (q - kv) + maxlen - 1] (positions aligned bottom-right),
/// a table of (heads, 2 * maxlen - 1); maxlen is a runtime scalar.
AttentionVariant relativePositionBias(int64_t maxlen) {
  AttentionVariant v;
  v.name = "rel_bias";
  v.tensors = {{"rel_bias", DType::F32, /*requiresGrad=*/true}};
  v.scalars = {{"rel_bias_maxlen", DType::I32, double(maxlen)}};
  v.scoreMod = [](dsl::Value score, const VariantContext &c) {
    dsl::Value maxlen = c.scalars.at("rel_bias_maxlen");
    dsl::Value at = c.head * (2 * maxlen - 1) + (c.qIdx + c.diagonal - c.kvIdx + maxlen - 1);
    return score + dsl::load(c.tensors.at("rel_bias"), at, c.qValid & c.kvValid, 0.0);
  };
  return v;
}

/// A learnable problem. The bias (when `biasSize` > 0) is variant tensor 0;
/// biasAt(b, h, i, j) is the element pair (i, j) reads, added to the scaled
/// score before `tail` (the rest of the score modifier; identity when
/// unset) is applied. `visible` is the reference mask (everything when unset).
struct Case {
  Shape4 s;
  AttentionVariant variant;
  size_t biasSize = 0;
  std::function<int64_t(int64_t b, int64_t h, int64_t i, int64_t j)> biasAt;
  std::function<std::pair<double, double>(double x, int64_t h, int64_t i, int64_t j)> tail;
  std::function<bool(int64_t b, int64_t h, int64_t i, int64_t j)> visible;
  /// Variant tensors after the bias (e.g. doc_ids).
  std::vector<runtime::Arg> moreArgs;
  bool sinks = false;
  bool cachedBlockMask = false;
  DType dtype = DType::F32;
  runtime::Backend backend = runtime::Backend::Cpu;
};

struct Params {
  std::vector<double> bias, sinks;
};

ref::RefVariant refVariant(const Case &c, const Params &p, std::vector<double> *dbias) {
  ref::RefVariant r;
  r.visible = [&c](int64_t b, int64_t h, int64_t i, int64_t j) {
    return !c.visible || c.visible(b, h, i, j);
  };
  r.score = [&c, &p](double x, int64_t b, int64_t h, int64_t i, int64_t j) {
    if (c.biasSize)
      x += p.bias[size_t(c.biasAt(b, h, i, j))];
    return c.tail ? c.tail(x, h, i, j) : std::make_pair(x, 1.0);
  };
  r.sinks = p.sinks;
  if (dbias)
    r.scoreGrad = [&c, dbias](int64_t b, int64_t h, int64_t i, int64_t j, double d) {
      if (c.biasSize)
        (*dbias)[size_t(c.biasAt(b, h, i, j))] += d;
    };
  return r;
}

using Input = TypedInput;
using Output = TypedOutput;

/// sum(O * dO), the loss whose gradients the backward computes, in float64.
double referenceLoss(const Case &c, const Input &q, const Input &k, const Input &v,
                     const Input &dO, const Params &p) {
  const Shape4 &s = c.s;
  ref::RefVariant r = refVariant(c, p, nullptr);
  auto out = ref::attention(q.seen, k.seen, v.seen, s.B, s.Sq, s.Sk, s.Hq, s.Hkv, s.D, false,
                            1.0 / std::sqrt(double(s.D)), nullptr, &r)
                 .out;
  return std::inner_product(out.begin(), out.end(), dO.seen.begin(), 0.0);
}

/// The reference's analytic gradient of `param` against central differences
/// of its forward at the elements of largest gradient and a few others.
void expectFiniteDifferences(const char *what, const Case &c, const Input &q, const Input &k,
                             const Input &v, const Input &dO, const Params &p,
                             std::vector<double> Params::*param,
                             const std::vector<double> &analytic) {
  std::vector<size_t> order(analytic.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return std::fabs(analytic[a]) > std::fabs(analytic[b]); });
  std::vector<size_t> checked(order.begin(), order.begin() + std::min<size_t>(4, order.size()));
  for (size_t n = 1; n <= 2; ++n)
    checked.push_back(order[order.size() * n / 3]);
  double eps = 1e-4, top = std::max(ref::maxAbs(analytic), 1e-6);
  for (size_t i : checked) {
    Params plus = p, minus = p;
    (plus.*param)[i] += eps;
    (minus.*param)[i] -= eps;
    double fd = (referenceLoss(c, q, k, v, dO, plus) - referenceLoss(c, q, k, v, dO, minus)) /
                (2 * eps);
    EXPECT_NEAR(fd, analytic[i], 1e-6 * top) << what << "[" << i << "]: finite differences";
  }
}

/// Forward and backward of `c` on its backend, every output poisoned first,
/// checked against float64 (f32: 1e-4 relative to the largest value;
/// f16/bf16: at most 2x a naive same-precision attention's error, bias and
/// sinks included, plus a floor).
void checkLearnable(const Case &c) {
  const Shape4 &s = c.s;
  DType dt = c.dtype;
  size_t nq = size_t(s.B * s.Sq * s.Hq * s.D), nk = size_t(s.B * s.Sk * s.Hkv * s.D);
  size_t rows = size_t(s.B * s.Hq * s.Sq);
  Input q(nq, dt), k(nk, dt), v(nk, dt), dO(nq, dt, -1, 1);
  std::vector<float> bias = ref::randomVector(c.biasSize, -1, 1);
  std::vector<float> sinks = ref::randomVector(c.sinks ? size_t(s.Hq) : 0, -1, 1.5);
  Output o(nq, dt), dq(nq, dt), dk(nk, dt), dv(nk, dt);
  std::vector<float> lse(rows, ref::poison()), dbias(c.biasSize, ref::poison()),
      dsinks(sinks.size(), ref::poison());
  std::array<int64_t, 4> qs{s.B, s.Sq, s.Hq, s.D}, ks{s.B, s.Sk, s.Hkv, s.D};
  auto T = [&](const void *x, std::array<int64_t, 4> shape) {
    return Tensor4::contiguous(x, dt, shape);
  };
  AttentionOptions options;
  options.variant = c.variant;
  options.backend = c.backend;
  if (c.biasSize) {
    options.variantArgs.push_back(runtime::Arg::buffer(bias));
    options.variantGrads.push_back(runtime::Arg::buffer(dbias));
  }
  options.variantArgs.insert(options.variantArgs.end(), c.moreArgs.begin(), c.moreArgs.end());
  if (c.sinks) {
    options.sinks = sinks.data();
    options.dsinks = dsinks.data();
  }
  if (c.backend != runtime::Backend::Cpu)
    options.config = AttentionConfig{16, 16, 128};
  if (c.cachedBlockMask)
    options.blockMask = createBlockMask(qs, ks, options);
  attentionForward(T(q.data(), qs), T(k.data(), ks), T(v.data(), ks), T(o.data(), qs),
                   lse.data(), options);
  attentionBackward(T(q.data(), qs), T(k.data(), ks), T(v.data(), ks), T(o.data(), qs),
                    lse.data(), T(dO.data(), qs), T(dq.data(), qs), T(dk.data(), ks),
                    T(dv.data(), ks), options);

  Params p{ref::toDouble(bias), ref::toDouble(sinks)};
  double scale = 1.0 / std::sqrt(double(s.D));
  std::vector<double> wantDbias(c.biasSize, 0.0), naiveDbias(c.biasSize, 0.0);
  ref::RefVariant exact = refVariant(c, p, &wantDbias), naiveVariant = refVariant(c, p, &naiveDbias);
  auto fwd = ref::attention(q.seen, k.seen, v.seen, s.B, s.Sq, s.Sk, s.Hq, s.Hkv, s.D, false,
                            scale, nullptr, &exact);
  auto bwd = ref::attentionBackward(q.seen, k.seen, v.seen, dO.seen, s.B, s.Sq, s.Sk, s.Hq,
                                    s.Hkv, s.D, false, scale, nullptr, &exact);
  std::optional<ref::AttentionResult> naiveFwd;
  std::optional<ref::AttentionGrads> naiveBwd;
  if (dt != DType::F32) {
    const char *low = dt == DType::BF16 ? "bf16" : "f16";
    naiveFwd = ref::attention(q.seen, k.seen, v.seen, s.B, s.Sq, s.Sk, s.Hq, s.Hkv, s.D, false,
                              scale, low, &naiveVariant);
    naiveBwd = ref::attentionBackward(q.seen, k.seen, v.seen, dO.seen, s.B, s.Sq, s.Sk, s.Hq,
                                      s.Hkv, s.D, false, scale, low, &naiveVariant);
  }
  // As in AttentionTest: gradients that cancel are floored at 1e-3 of the
  // size of the terms that cancel (d * max|dO| * max|V|).
  double floor = 1e-3 * double(s.D) * ref::maxAbs(dO.seen) * ref::maxAbs(v.seen);
  auto check = [&](const char *what, const std::vector<float> &got,
                   const std::vector<double> &want, const std::vector<double> *naive,
                   double f32Floor) {
    expectAttentionClose(what, dt, got, want, dt == DType::F32 ? nullptr : naive, f32Floor);
  };
  check("O", o.values(), fwd.out, naiveFwd ? &naiveFwd->out : nullptr, 1e-3);
  auto lseErr = ref::compare(lse, fwd.lse, 1.0);
  EXPECT_TRUE(ref::withinRelative(lseErr, dt == DType::F32 ? 1e-5 : 1e-3))
      << "LSE: " << ref::format(lseErr);
  check("dq", dq.values(), bwd.dq, naiveBwd ? &naiveBwd->dq : nullptr, floor);
  check("dk", dk.values(), bwd.dk, naiveBwd ? &naiveBwd->dk : nullptr, floor);
  check("dv", dv.values(), bwd.dv, naiveBwd ? &naiveBwd->dv : nullptr, floor);
  if (c.biasSize) {
    check("dbias", dbias, wantDbias, &naiveDbias, floor);
    expectFiniteDifferences("reference dbias", c, q, k, v, dO, p, &Params::bias, wantDbias);
  }
  if (c.sinks) {
    // The low-precision baseline for dsinks is what a naive implementation
    // computes from its own stored forward (O rounded to the dtype, as the
    // backward receives it): -sum_rows exp(sink - LSE) * rowsum(dO * O).
    std::vector<double> naiveDsinks(sinks.size(), 0.0);
    if (naiveFwd)
      for (int64_t b = 0; b < s.B; ++b)
        for (int64_t h = 0; h < s.Hq; ++h)
          for (int64_t i = 0; i < s.Sq; ++i) {
            double delta = 0;
            for (int64_t d = 0; d < s.D; ++d) {
              size_t at = size_t(((b * s.Sq + i) * s.Hq + h) * s.D + d);
              delta += dO.seen[at] * naiveFwd->out[at];
            }
            double lseRow = naiveFwd->lse[size_t((b * s.Hq + h) * s.Sq + i)];
            naiveDsinks[size_t(h)] -= std::exp(p.sinks[size_t(h)] - lseRow) * delta;
          }
    check("dsinks", dsinks, bwd.dsinks, &naiveDsinks, floor);
    expectFiniteDifferences("reference dsinks", c, q, k, v, dO, p, &Params::sinks, bwd.dsinks);
  }
}

bool causal(const Shape4 &s, int64_t i, int64_t j) { return j <= i + s.Sk - s.Sq; }

double alibiSlope(const Shape4 &s, int64_t h) {
  return std::pow(2.0, -8.0 * double(h + 1) / double(s.Hq));
}

/// The relative-position case: table of (heads, 2 * maxlen - 1).
Case relativeBiasCase(const Shape4 &s) {
  int64_t maxlen = std::max(s.Sq, s.Sk);
  Case c{s, relativePositionBias(maxlen)};
  c.biasSize = size_t(s.Hq * (2 * maxlen - 1));
  c.biasAt = [s, maxlen](int64_t, int64_t h, int64_t i, int64_t j) {
    return h * (2 * maxlen - 1) + (i + s.Sk - s.Sq - j + maxlen - 1);
  };
  return c;
}

Case denseBiasCase(const Shape4 &s) {
  Case c{s, AttentionVariant::additiveBias(/*requiresGrad=*/true)};
  c.biasSize = size_t(s.Hq * s.Sq * s.Sk);
  c.biasAt = [s](int64_t, int64_t h, int64_t i, int64_t j) { return (h * s.Sq + i) * s.Sk + j; };
  return c;
}
} // namespace

TEST(LearnableVariants, RelativePositionBiasTableCausalGqa) {
  Shape4 s{2, 37, 45, 4, 2, 32};
  Case c = relativeBiasCase(s);
  c.variant = combine(AttentionVariant::causalMask(), c.variant);
  c.visible = [s](int64_t, int64_t, int64_t i, int64_t j) { return causal(s, i, j); };
  checkLearnable(c);
}

TEST(LearnableVariants, DenseBiasThenAlibiThenSoftcap) {
  // The bias is added to the scaled score, then ALiBi and softcap apply:
  // the gradient flows through tanh into the bias.
  Shape4 s{1, 50, 70, 2, 1, 32};
  Case c = denseBiasCase(s);
  c.variant = combine(combine(c.variant, AttentionVariant::alibi()), AttentionVariant::softcap(2.0));
  c.tail = [s](double x, int64_t h, int64_t i, int64_t j) {
    double t = std::tanh((x - alibiSlope(s, h) * std::fabs(double(i + s.Sk - s.Sq - j))) / 2.0);
    return std::make_pair(2.0 * t, 1.0 - t * t);
  };
  checkLearnable(c);
}

TEST(LearnableVariants, SinksCausalGqa) {
  Shape4 s{2, 45, 45, 4, 2, 32};
  Case c{s, AttentionVariant::causalMask()};
  c.visible = [s](int64_t, int64_t, int64_t i, int64_t j) { return causal(s, i, j); };
  c.sinks = true;
  checkLearnable(c);
}

TEST(LearnableVariants, BiasAndSinksVarlenWithACachedBlockMask) {
  // Packed documents (varlen) as a mask_mod, classified once into a block
  // mask the calls reuse; the relative bias and the sinks on top.
  Shape4 s{1, 64, 64, 2, 1, 32};
  std::vector<int32_t> ids = documentIdsFromCuSeqlens({0, 20, 37, 64}, s.Sk);
  Case c = relativeBiasCase(s);
  // combine lists a's tensors first: rel_bias, then doc_ids.
  c.variant = combine(c.variant,
                      combine(AttentionVariant::causalMask(), AttentionVariant::documentMask()));
  c.moreArgs = {runtime::Arg::buffer(ids)};
  c.visible = [s, &ids](int64_t, int64_t, int64_t i, int64_t j) {
    return causal(s, i, j) && ids[size_t(i)] == ids[size_t(j)];
  };
  c.sinks = true;
  c.cachedBlockMask = true;
  checkLearnable(c);
}

TEST(LearnableVariants, RowsThatSeeNoKeyGetZeroAndTheSink) {
  // seqlen_q > seqlen_k, causal (bottom-right): the first 16 query rows see
  // no key. With a sink they get O = 0, LSE = sink_h and finite gradients.
  Shape4 s{1, 40, 24, 2, 2, 32};
  Case c = denseBiasCase(s);
  c.variant = combine(AttentionVariant::causalMask(), c.variant);
  c.visible = [s](int64_t, int64_t, int64_t i, int64_t j) { return causal(s, i, j); };
  c.sinks = true;
  checkLearnable(c);

  std::array<int64_t, 4> qs{s.B, s.Sq, s.Hq, s.D}, ks{s.B, s.Sk, s.Hkv, s.D};
  auto q = ref::randomVector(size_t(s.Sq * s.Hq * s.D), -1, 1);
  auto k = ref::randomVector(size_t(s.Sk * s.Hkv * s.D), -1, 1);
  std::vector<float> o(q.size(), ref::poison()), lse(size_t(s.Hq * s.Sq), ref::poison());
  std::vector<float> sinks = {0.75f, -2.5f};
  AttentionOptions options;
  options.causal = true;
  options.backend = runtime::Backend::Cpu;
  options.sinks = sinks.data();
  attentionForward(Tensor4::contiguous(q.data(), DType::F32, qs),
                   Tensor4::contiguous(k.data(), DType::F32, ks),
                   Tensor4::contiguous(k.data(), DType::F32, ks),
                   Tensor4::contiguous(o.data(), DType::F32, qs), lse.data(), options);
  for (int64_t h = 0; h < s.Hq; ++h)
    for (int64_t i = 0; i < s.Sq - s.Sk; ++i) {
      EXPECT_FLOAT_EQ(lse[size_t(h * s.Sq + i)], sinks[size_t(h)]) << "h " << h << " row " << i;
      for (int64_t d = 0; d < s.D; ++d)
        ASSERT_EQ(o[size_t((i * s.Hq + h) * s.D + d)], 0.0f) << "h " << h << " row " << i;
    }
}

TEST(LearnableVariants, Bf16BiasSinksSoftcapCausalOnTheEmulatedDevice) {
  // bf16 through the generated CUDA C++ (tensor-core dots), the naive bf16
  // reference including the bias and the sinks.
  Shape4 s{1, 24, 40, 2, 1, 32};
  Case c = relativeBiasCase(s);
  c.variant = combine(combine(AttentionVariant::causalMask(), c.variant),
                      AttentionVariant::softcap(3.0));
  c.visible = [s](int64_t, int64_t, int64_t i, int64_t j) { return causal(s, i, j); };
  c.tail = [](double x, int64_t, int64_t, int64_t) {
    double t = std::tanh(x / 3.0);
    return std::make_pair(3.0 * t, 1.0 - t * t);
  };
  c.sinks = true;
  c.dtype = DType::BF16;
  c.backend = runtime::Backend::Emu;
  checkLearnable(c);
}

TEST(LearnableVariants, OnTheEmulatedDevice) {
  // The generated CUDA C++ of the sink forward, the dQ kernel's pair
  // gradients and the sink-gradient kernel, run thread by thread.
  Shape4 s{1, 20, 28, 2, 1, 32};
  Case c = relativeBiasCase(s);
  c.variant = combine(AttentionVariant::causalMask(), c.variant);
  c.visible = [s](int64_t, int64_t, int64_t i, int64_t j) { return causal(s, i, j); };
  c.sinks = true;
  c.backend = runtime::Backend::Emu;
  checkLearnable(c);
}

TEST(LearnableVariants, RuntimeScalarsReuseTheCompiledKernel) {
  // softcap's cap, the sliding window and the bias table's maxlen are
  // kernel arguments: new values run the kernels compiled for the first.
  Shape4 s{1, 30, 30, 2, 2, 32};
  for (double cap : {1.5, 4.0}) {
    Case c{s, AttentionVariant::softcap(cap)};
    c.tail = [cap](double x, int64_t, int64_t, int64_t) {
      double t = std::tanh(x / cap);
      return std::make_pair(cap * t, 1.0 - t * t);
    };
    uint64_t before = runtime::KernelCache::global().stats().misses;
    checkLearnable(c);
    uint64_t compiled = runtime::KernelCache::global().stats().misses - before;
    if (cap != 1.5)
      EXPECT_EQ(compiled, 0u) << "cap " << cap << " recompiled " << compiled << " kernel(s)";
  }
  for (int64_t window : {7, 12}) {
    Case c{s, AttentionVariant::slidingWindow(window)};
    c.visible = [s, window](int64_t, int64_t, int64_t i, int64_t j) {
      return causal(s, i, j) && i + s.Sk - s.Sq - j < window;
    };
    uint64_t before = runtime::KernelCache::global().stats().misses;
    checkLearnable(c);
    if (window != 7)
      EXPECT_EQ(runtime::KernelCache::global().stats().misses - before, 0u);
  }
  for (double slopeScale : {8.0, 3.0}) {
    Case c{s, AttentionVariant::alibi(slopeScale)};
    c.tail = [s, slopeScale](double x, int64_t h, int64_t i, int64_t j) {
      double slope = std::pow(2.0, -slopeScale * double(h + 1) / double(s.Hq));
      return std::make_pair(x - slope * std::fabs(double(i + s.Sk - s.Sq - j)), 1.0);
    };
    uint64_t before = runtime::KernelCache::global().stats().misses;
    checkLearnable(c);
    if (slopeScale != 8.0)
      EXPECT_EQ(runtime::KernelCache::global().stats().misses - before, 0u)
          << "alibi slope scale " << slopeScale;
  }
  for (int64_t prefix : {5, 17}) { // a mask_mod: the block mask is classified per call
    Case c{s, AttentionVariant::prefixLM(prefix)};
    c.visible = [s, prefix](int64_t, int64_t, int64_t i, int64_t j) {
      return causal(s, i, j) || j < prefix;
    };
    uint64_t before = runtime::KernelCache::global().stats().misses;
    checkLearnable(c);
    if (prefix != 5)
      EXPECT_EQ(runtime::KernelCache::global().stats().misses - before, 0u)
          << "prefix length " << prefix;
  }
  for (int64_t sk : {30, 26}) { // maxlen follows seqlen_k: a new table size, the same kernels
    Shape4 t = s;
    t.Sk = sk;
    uint64_t before = runtime::KernelCache::global().stats().misses;
    checkLearnable(relativeBiasCase(t));
    if (sk != 30)
      EXPECT_EQ(runtime::KernelCache::global().stats().misses - before, 0u);
  }
}

namespace {
/// SumByKey against a float64 scatter-add: fresh random keys with many
/// repeats and "no element" keys, over enough pairs for several blocks of
/// the sort and several steps of its scan; overwriting and accumulating;
/// the same bits on a second run.
void checkSumByKey(runtime::Backend backend, int64_t n, int64_t elements,
                   SumByKeyMethod method = SumByKeyMethod::Radix) {
  SCOPED_TRACE(fmt::format("{} pairs into {} elements on {} ({})", n, elements,
                           runtime::backendName(backend),
                           method == SumByKeyMethod::Radix ? "radix" : "sequential"));
  std::vector<float> draw = ref::randomVector(size_t(n), 0.0f, float(elements) + 0.999f);
  std::vector<int32_t> keys(draw.size());
  for (size_t i = 0; i < keys.size(); ++i)
    keys[i] = std::min<int32_t>(int32_t(draw[i]), int32_t(elements)); // `elements`: none
  std::vector<float> values = ref::randomVector(size_t(n), -1, 1);
  std::vector<float> start = ref::randomVector(size_t(elements), -1, 1);
  std::vector<double> want(size_t(elements), 0.0), size(size_t(elements), 0.0);
  for (size_t i = 0; i < keys.size(); ++i)
    if (keys[i] < elements) {
      want[size_t(keys[i])] += values[i];
      size[size_t(keys[i])] += std::fabs(values[i]);
    }
  SumByKey sorter(backend, n, 0, method);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    bool accumulate = run == 2;
    std::vector<int32_t> k = keys; // the sort overwrites them
    std::vector<float> v = values;
    std::vector<float> out = accumulate ? start : std::vector<float>(start.size(), ref::poison());
    sorter.run(nullptr, k.data(), v.data(), out.data(), elements, accumulate, "unused");
    for (size_t e = 0; e < out.size(); ++e) {
      double expected = want[e] + (accumulate ? start[e] : 0.0);
      // f32 sums of a few dozen terms of at most 1.
      ASSERT_NEAR(out[e], expected, 1e-6 * (size[e] + 1.0))
          << "element " << e << (accumulate ? " (accumulating)" : "");
    }
    if (run == 0)
      first = out;
    else if (run == 1)
      EXPECT_EQ(out, first) << "a second run gave other bits";
  }
}
} // namespace

TEST(SumByKey, MatchesFloat64OnTheCpu) {
  // The radix kernels (what emu and cuda run): 13 and 10 bits, so 4 and 3
  // passes and the sorted keys end in either buffer; 35 blocks of 2048
  // pairs, so the scan takes several steps.
  checkSumByKey(runtime::Backend::Cpu, 70001, 4999);
  checkSumByKey(runtime::Backend::Cpu, 40000, 1000);
  checkSumByKey(runtime::Backend::Cpu, 3000, 1);
  checkSumByKey(runtime::Backend::Cpu, 0, 7);
  // The cpu backend's default: one pass in pair order.
  checkSumByKey(runtime::Backend::Cpu, 70001, 4999, SumByKeyMethod::Sequential);
  checkSumByKey(runtime::Backend::Cpu, 0, 7, SumByKeyMethod::Sequential);
}

TEST(SumByKey, MatchesFloat64OnTheEmulatedDevice) {
  checkSumByKey(runtime::Backend::Emu, 40001, 4999);
  checkSumByKey(runtime::Backend::Emu, 2000, 1000);
}

TEST(SumByKey, AKeyPastNoElementIsTheCallersError) {
  // numElements + 1 marks a read outside the elements: the run fails with
  // the caller's message, now without a stream, else as the stream's error.
  for (runtime::Backend backend : {runtime::Backend::Cpu, runtime::Backend::Emu})
    for (SumByKeyMethod method : {SumByKeyMethod::Sequential, SumByKeyMethod::Radix}) {
      SCOPED_TRACE(fmt::format("{} {}", runtime::backendName(backend),
                               method == SumByKeyMethod::Radix ? "radix" : "sequential"));
      std::vector<int32_t> keys = {3, 0, 7, 8, 2}; // 7 elements: 7 none, 8 outside
      std::vector<float> values(keys.size(), 1.0f), out(7, ref::poison());
      SumByKey sorter(backend, int64_t(keys.size()), 0, method);
      std::vector<int32_t> k = keys;
      std::vector<float> v = values;
      expectLoomError([&] { sorter.run(nullptr, k.data(), v.data(), out.data(), 7, false, "bad"); },
                      "bad");
      auto stream = runtime::createStream(backend, "sum-by-key test");
      k = keys, v = values;
      sorter.run(stream.get(), k.data(), v.data(), out.data(), 7, false, "bad on the stream");
      expectLoomError([&] { stream->synchronize(); }, "bad on the stream");
      // Without the outside key the same run sums.
      k = {3, 0, 7, 6, 3}, v = values;
      sorter.run(nullptr, k.data(), v.data(), out.data(), 7, false, "unused");
      EXPECT_EQ(out, (std::vector<float>{1, 0, 0, 2, 0, 0, 1}));
    }
}

TEST(LearnableVariants, BiasGradientsAreTheSameBitsEveryRun) {
  // The pairs' contributions are summed in a fixed order on the device (no
  // atomics), so repeated backwards on many threads agree bit for bit.
  Shape4 s{2, 70, 90, 4, 2, 32};
  Case c = relativeBiasCase(s);
  AttentionOptions options;
  options.variant = c.variant;
  options.backend = runtime::Backend::Cpu;
  options.cpuThreads = 4;
  size_t nq = size_t(s.B * s.Sq * s.Hq * s.D), nk = size_t(s.B * s.Sk * s.Hkv * s.D);
  auto q = ref::randomVector(nq, -1, 1), k = ref::randomVector(nk, -1, 1);
  auto v = ref::randomVector(nk, -1, 1), dO = ref::randomVector(nq, -1, 1);
  auto bias = ref::randomVector(c.biasSize, -1, 1);
  std::vector<float> o(nq), lse(size_t(s.B * s.Hq * s.Sq)), dq(nq), dk(nk), dv(nk);
  std::array<int64_t, 4> qs{s.B, s.Sq, s.Hq, s.D}, ks{s.B, s.Sk, s.Hkv, s.D};
  auto T = [](const std::vector<float> &x, std::array<int64_t, 4> shape) {
    return Tensor4::contiguous(x.data(), DType::F32, shape);
  };
  options.variantArgs = {runtime::Arg::buffer(bias)};
  attentionForward(T(q, qs), T(k, ks), T(v, ks), T(o, qs), lse.data(), options);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    std::vector<float> dbias(c.biasSize, ref::poison());
    options.variantGrads = {runtime::Arg::buffer(dbias)};
    attentionBackward(T(q, qs), T(k, ks), T(v, ks), T(o, qs), lse.data(), T(dO, qs), T(dq, qs),
                      T(dk, ks), T(dv, ks), options);
    for (float x : dbias)
      ASSERT_TRUE(std::isfinite(x));
    if (run == 0)
      first = dbias;
    else
      EXPECT_EQ(dbias, first) << "run " << run;
  }
}

TEST(LearnableVariants, BadLearnableInputsAreErrors) {
  std::vector<float> x(32 * 32, 0.5f), bias(2 * 63, 0.f), small(5, 0.f), sinks(1, 0.f);
  auto t = Tensor4::contiguous(x.data(), DType::F32, {1, 32, 1, 32});
  std::vector<float> lse(32, 0.f);
  AttentionOptions options;
  options.backend = runtime::Backend::Cpu;
  options.variant = relativePositionBias(32);
  options.variantArgs = {runtime::Arg::buffer(bias)};
  auto backward = [&] { attentionBackward(t, t, t, t, lse.data(), t, t, t, t, options); };
  expectLoomError(backward, "attention backward: variant 'rel_bias' has 1 differentiable "
                            "tensor(s) (rel_bias); options.variantGrads has 0 buffer(s)");
  options.variantGrads = {runtime::Arg::buffer(small)};
  expectLoomErrorContaining(backward, ErrorCode::InvalidArgument,
                            {"the gradient of variant tensor 'rel_bias' must be an f32 buffer of "
                             "126 elements"});
  // A table too short for the positions score_mod reads (maxlen 8 where
  // the sequence is 32): the forward read outside it too, and the backward
  // says so instead of dropping those pairs' gradient. The table is a view
  // into a larger allocation, so the forward's stray reads stay in memory.
  std::vector<float> arena(1024, 0.25f), shortGrad(15, 0.f);
  options.variant.scalars[0].value = 8;
  options.variantArgs = {runtime::Arg::buffer(arena.data() + 512, DType::F32, 15)};
  options.variantGrads = {runtime::Arg::buffer(shortGrad)};
  expectLoomErrorContaining(backward, ErrorCode::InvalidArgument,
                            {"attention backward: score_mod read variant tensor 'rel_bias' "
                             "outside its 15 elements"});
  // The emulated device checks every load against the buffers passed, so
  // it stops at the stray read itself (cuda has the reduction's check).
  options.backend = runtime::Backend::Emu;
  expectLoomErrorContaining(backward, ErrorCode::Internal,
                            {"kernel 'flash_bwd_dq_f32_d32_rel_bias_grad_rel_bias'",
                             "are outside every buffer passed to the kernel",
                             "variant_rel_bias: 60 bytes"});
  options.backend = runtime::Backend::Cpu;
  options.variant = AttentionVariant::none();
  options.variantArgs.clear();
  options.variantGrads.clear();
  options.dsinks = sinks.data();
  expectLoomError(backward, "attention backward: options.dsinks is set but options.sinks is not");
  expectLoomError(
      [] { combine(AttentionVariant::softcap(2.0), AttentionVariant::softcap(3.0)); },
      "combine: variants 'softcap' and 'softcap' both set scalar 'softcap_cap', to 2 and 3");
  AttentionVariant ids = AttentionVariant::documentMask();
  ids.tensors[0].requiresGrad = true;
  options = {};
  options.backend = runtime::Backend::Cpu;
  options.variant = ids;
  std::vector<int32_t> doc(32, 0);
  options.variantArgs = {runtime::Arg::buffer(doc)};
  expectLoomError([&] { attentionForward(t, t, t, t, nullptr, options); },
                  "attention: variant 'document' tensor 'doc_ids' requires a gradient but has "
                  "dtype i32; only f32, f16 and bf16 tensors are differentiable");
}

TEST(LearnableVariants, KernelsCompileForGpus) {
  // No GPU here: NVRTC + ptxas for sm_80 with the default GPU configs. The
  // sinks are one online-softmax update after the key loop, so the forward
  // keeps the registers of the same kernel without them (within a few); the
  // sink gradient kernel does not spill; the dQ kernel writing the pair
  // gradients of a relative-position table compiles (its report printed).
  AttentionVariant rel = combine(AttentionVariant::causalMask(), relativePositionBias(256));
  auto build = [](const dsl::Kernel &kernel, const AttentionConfig &config) {
    runtime::Specialization spec;
    spec.constants = {{"BLOCK_M", config.blockM}, {"BLOCK_N", config.blockN}};
    runtime::CudaBuildOptions options;
    options.arch = "sm_80";
    options.numThreads = config.numThreads;
    cuda::KernelResources r = runtime::buildCuda(kernel, spec, options).resources();
    std::printf("[ report   ] %s, sm_80: %d registers, %d bytes spilled\n", kernel.name().c_str(),
                r.registers, r.spillStoreBytes + r.spillLoadBytes);
    EXPECT_GT(r.registers, 0) << kernel.name();
    return r;
  };
  for (int64_t d : {64, 128}) {
    AttentionConfig fwd = defaultAttentionConfig(d, runtime::Backend::Cuda);
    AttentionConfig bwd = defaultAttentionBackwardConfig(d, runtime::Backend::Cuda);
    auto plain = build(flashAttentionForwardKernel(DType::BF16, d, AttentionVariant::causalMask()),
                       fwd);
    auto withSinks = build(flashAttentionForwardKernel(DType::BF16, d,
                                                       AttentionVariant::causalMask(), {}, false,
                                                       /*sinks=*/true),
                           fwd);
    EXPECT_LE(withSinks.registers, plain.registers + 4);
    auto sinkGrad = build(attentionSinkGradientKernel(false), bwd);
    EXPECT_EQ(sinkGrad.spillStoreBytes + sinkGrad.spillLoadBytes, 0);
    build(flashAttentionBackwardDqKernel(DType::BF16, d, rel), bwd);
  }
  // The pair gradients' reduction (SumByKey's kernels, as it launches them).
  for (const dsl::Kernel &k : {radixCountKernel(), radixScanKernel(), radixScatterKernel(),
                               runBoundsKernel(), keyFillKernel(), segmentSumKernel(false),
                               segmentSumKernel(true)}) {
    runtime::Specialization spec;
    spec.constants = sumByKeyConstants();
    runtime::CudaBuildOptions options;
    options.arch = "sm_80";
    options.numThreads = 128;
    cuda::KernelResources r = runtime::buildCuda(k, spec, options).resources();
    std::printf("[ report   ] %s, sm_80: %d registers, %d bytes spilled\n", k.name().c_str(),
                r.registers, r.spillStoreBytes + r.spillLoadBytes);
    EXPECT_EQ(r.spillStoreBytes + r.spillLoadBytes, 0) << k.name();
  }
}
