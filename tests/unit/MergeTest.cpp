//===- MergeTest.cpp - merging partial attention results ------------------===//
#include "loom/ops/Attention.h"
#include "loom/ops/Merge.h"
#include "loom/ops/Reference.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace loom;
using namespace loom::ops;
namespace ref = loom::ops::ref;

TEST(MergePartials, SplittingKeysIntoBlocksMatchesOneDevice) {
  // The same queries against the keys split into P contiguous blocks (a ring
  // of P ranks without causality), merged in f32: the error against float64
  // stays at f32 rounding and does not grow with P.
  const int64_t S = 40, Sk = 266, H = 1, D = 32;
  auto q = ref::randomVector(S * D, -1.5, 1.5), k = ref::randomVector(Sk * D, -1.5, 1.5),
       v = ref::randomVector(Sk * D, -1.5, 1.5);
  auto want = ref::attention(ref::toDouble(q), ref::toDouble(k), ref::toDouble(v), 1, S, Sk, H, H,
                             D, false, 1.0 / std::sqrt(double(D)));
  AttentionOptions options;
  options.backend = runtime::Backend::Cpu;
  double worst = 0;
  for (int64_t P : {1, 2, 3, 7, 133}) {
    std::vector<float> out(S * D, 0.f), lse(S, -INFINITY), blockOut(S * D), blockLse(S);
    for (int64_t p = 0; p < P; ++p) {
      int64_t begin = Sk * p / P, end = Sk * (p + 1) / P;
      Tensor4 kb{k.data() + begin * D, DType::F32, {1, end - begin, H, D}, {Sk * D, D, D, 1}};
      Tensor4 vb{v.data() + begin * D, DType::F32, {1, end - begin, H, D}, {Sk * D, D, D, 1}};
      std::fill(blockOut.begin(), blockOut.end(), ref::poison());
      attentionForward(Tensor4::contiguous(q.data(), DType::F32, {1, S, H, D}), kb, vb,
                       Tensor4::contiguous(blockOut.data(), DType::F32, {1, S, H, D}),
                       blockLse.data(), options);
      mergeAttentionPartials(out.data(), lse.data(), blockOut.data(), blockLse.data(), S, D);
    }
    auto e = ref::compare(out, want.out, std::max(ref::maxAbs(want.out), 1e-3));
    EXPECT_TRUE(ref::withinRelative(e, 1e-5)) << "P = " << P << ": " << ref::format(e);
    auto le = ref::compare(lse, want.lse, 1.0);
    EXPECT_TRUE(ref::withinRelative(le, 1e-5)) << "P = " << P << " LSE: " << ref::format(le);
    worst = std::max(worst, e.maxRel);
  }
  std::printf("[ measure  ] worst normwise error over P in {1,2,3,7,133}: %.3g\n", worst);
}

TEST(MergePartials, MinusInfinityAndHugeLseStayFinite) {
  const int64_t D = 2;
  // Row 0: no block sees a key. Row 1: only the second block does. Row 2:
  // LSEs of 80 and 90, where e^90 overflows f32 in the naive formula.
  std::vector<float> out(3 * D, 0.f), lse(3, -INFINITY);
  std::vector<float> o1 = {9, 9, 9, 9, 1, 2}, l1 = {-INFINITY, -INFINITY, 80.f};
  std::vector<float> o2 = {7, 7, 3, 4, 5, 6}, l2 = {-INFINITY, 1.5f, 90.f};
  mergeAttentionPartials(out.data(), lse.data(), o1.data(), l1.data(), 3, D);
  mergeAttentionPartials(out.data(), lse.data(), o2.data(), l2.data(), 3, D);
  EXPECT_EQ(lse[0], -INFINITY);
  EXPECT_EQ(out[0], 0.f);
  EXPECT_EQ(out[1], 0.f);
  EXPECT_FLOAT_EQ(lse[1], 1.5f);
  EXPECT_FLOAT_EQ(out[2], 3.f);
  EXPECT_FLOAT_EQ(out[3], 4.f);
  double w = 1.0 / (1.0 + std::exp(-10.0)); // weight of the second block
  EXPECT_NEAR(lse[2], 90.0 + std::log1p(std::exp(-10.0)), 1e-5);
  EXPECT_NEAR(out[4], (1 - w) * 1 + w * 5, 1e-5);
  EXPECT_NEAR(out[5], (1 - w) * 2 + w * 6, 1e-5);
  for (float x : out)
    EXPECT_TRUE(std::isfinite(x));
}
