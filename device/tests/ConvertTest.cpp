// cvt (f32 <-> f16/bf16, round to nearest even, NaN -> 0x7FFF, x2 packing) and
// ex2.approx against PTX_FACTS §6. These primitives are per-thread, so they
// run without the executor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "loom/device/primitives.h"

namespace {
using namespace loom::device;

float f(uint32_t bits) { return u32_as_f32(bits); }

TEST(EmuCvt, F16RoundsTiesToEven) {
  EXPECT_EQ(f32_to_f16_rn(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16_rn(1.0f + 0x1p-11f), 0x3C00);     // tie, even stays
  EXPECT_EQ(f32_to_f16_rn(1.0f + 3 * 0x1p-11f), 0x3C02); // tie, odd rounds up
  EXPECT_EQ(f32_to_f16_rn(std::nextafter(1.0f + 0x1p-11f, 2.0f)), 0x3C01);
  EXPECT_EQ(f32_to_f16_rn(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16_rn(65504.0f), 0x7BFF);            // largest finite
  EXPECT_EQ(f32_to_f16_rn(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16_rn(65520.0f), 0x7C00);            // tie with odd max -> Inf
  EXPECT_EQ(f32_to_f16_rn(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_f16_rn(-1e10f), 0xFC00);
}

TEST(EmuCvt, F16SubnormalsZerosAndSpecials) {
  EXPECT_EQ(f32_to_f16_rn(0x1p-24f), 0x0001);                 // least subnormal
  EXPECT_EQ(f32_to_f16_rn(0x1p-25f), 0x0000);                 // tie with 0 -> even
  EXPECT_EQ(f32_to_f16_rn(std::nextafter(0x1p-25f, 1.f)), 0x0001);
  EXPECT_EQ(f32_to_f16_rn(3 * 0x1p-25f), 0x0002);             // tie 1|2 -> 2
  EXPECT_EQ(f32_to_f16_rn(0x1p-14f - 0x1p-25f), 0x0400);      // tie rounds to min normal
  EXPECT_EQ(f32_to_f16_rn(1e-30f), 0x0000);
  EXPECT_EQ(f32_to_f16_rn(-1e-30f), 0x8000);
  EXPECT_EQ(f32_to_f16_rn(f(0x00000001)), 0x0000);            // f32 subnormal
  EXPECT_EQ(f32_to_f16_rn(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16_rn(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(f32_to_f16_rn(-std::numeric_limits<float>::infinity()), 0xFC00);
  // PTX leaves the NaN pattern open; the emulator promises 0x7FFF like NVIDIA's
  // host code. Code should only rely on isnan, checked too.
  for (uint32_t nan : {0x7FC00000u, 0xFFC00001u, 0x7F800001u /*signalling*/}) {
    EXPECT_EQ(f32_to_f16_rn(f(nan)), 0x7FFF);
    EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16_rn(f(nan)))));
  }
}

TEST(EmuCvt, F16RoundTripsEveryValueAndMidpoint) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float x = f16_to_f32((uint16_t)h);
    if (std::isnan(x)) {
      EXPECT_EQ((h >> 10) & 0x1f, 0x1fu);
      continue;
    }
    ASSERT_EQ(f32_to_f16_rn(x), h) << std::hex << h;
    // The midpoint to the next value up (in magnitude) is a tie: it rounds to
    // whichever of the two has an even significand.
    const uint32_t mag = h & 0x7fff;
    if (mag <= 0x7bff) {
      // 65536 stands for the value just past the largest finite f16 (Inf).
      const double next = mag == 0x7bff ? std::copysign(65536.0, x)
                                        : (double)f16_to_f32((uint16_t)(h + 1));
      const float mid = (float)(((double)x + next) / 2); // exact in f32
      const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
      ASSERT_EQ(f32_to_f16_rn(mid), even) << std::hex << h;
    }
  }
#if defined(__FLT16_MAX__)
  // The host compiler's _Float16 is an independent RNE reference.
  std::mt19937 rng(1);
  for (int i = 0; i < 200000; ++i) {
    const float x = f((uint32_t)rng());
    if (std::isnan(x)) continue;
    const _Float16 r = (_Float16)x;
    uint16_t bits;
    std::memcpy(&bits, &r, 2);
    ASSERT_EQ(f32_to_f16_rn(x), bits) << x;
  }
#endif
}

TEST(EmuCvt, Bf16RoundsTiesToEven) {
  EXPECT_EQ(f32_to_bf16_rn(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16_rn(1.0f + 0x1p-8f), 0x3F80);      // tie, even stays
  EXPECT_EQ(f32_to_bf16_rn(1.0f + 3 * 0x1p-8f), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16_rn(std::nextafter(1.0f + 0x1p-8f, 2.f)), 0x3F81);
  EXPECT_EQ(f32_to_bf16_rn(f(0x00008000)), 0x0000);       // subnormal tie
  EXPECT_EQ(f32_to_bf16_rn(f(0x00018000)), 0x0002);
  EXPECT_EQ(f32_to_bf16_rn(f(0x80010000)), 0x8001);
  EXPECT_EQ(f32_to_bf16_rn(std::numeric_limits<float>::max()), 0x7F80); // overflow
  EXPECT_EQ(f32_to_bf16_rn(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(f32_to_bf16_rn(-0.0f), 0x8000);
  for (uint32_t nan : {0x7FC00000u, 0xFFFFFFFFu, 0x7F800001u}) {
    EXPECT_EQ(f32_to_bf16_rn(f(nan)), 0x7FFF);
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16_rn(f(nan)))));
  }
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float x = bf16_to_f32((uint16_t)h);
    if (!std::isnan(x)) {
      ASSERT_EQ(f32_to_bf16_rn(x), h);
    }
  }
}

TEST(EmuCvt, X2PutsFirstOperandInUpperHalf) {
  // cvt.rn.f16x2.f32 d, a, b: d[31:16] = cvt(a), d[15:0] = cvt(b).
  EXPECT_EQ(cvt_rn_f16x2_f32(1.0f, 2.0f), 0x3C004000u);
  EXPECT_EQ(cvt_rn_bf16x2_f32(1.0f, 2.0f), 0x3F804000u);
  // pack_*(lo, hi) is the fragment order: element 0 in bits 15:0.
  EXPECT_EQ(pack_f16x2_rn(1.0f, 2.0f), 0x40003C00u);
  EXPECT_EQ(pack_bf16x2_rn(1.0f, 2.0f), 0x40003F80u);
  EXPECT_EQ(cvt_rn_f16x2_f32(1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f), 0x3C003C02u); // RNE each
}

TEST(EmuCvt, WideningIsExact) {
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x03FF), 1023 * 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0xFC00)) && f16_to_f32(0xFC00) < 0);
  EXPECT_EQ(f32_as_u32(f16_to_f32(0x8000)), 0x80000000u);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0x0001), f(0x00010000));
}

// Distance in units in the last place between two finite floats of one sign.
int64_t ulp_distance(float a, float b) {
  return std::llabs((int64_t)f32_as_u32(a) - (int64_t)f32_as_u32(b));
}

TEST(EmuEx2, SpecialCases) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ex2_approx(-inf), 0.0f);
  EXPECT_FALSE(std::signbit(ex2_approx(-inf))); // +0
  EXPECT_EQ(ex2_approx(0.0f), 1.0f);
  EXPECT_EQ(ex2_approx(-0.0f), 1.0f);
  EXPECT_EQ(ex2_approx(inf), inf);
  EXPECT_TRUE(std::isnan(ex2_approx(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(ex2_approx(200.0f), inf);
  EXPECT_EQ(ex2_approx(-200.0f), 0.0f);
  EXPECT_EQ(ex2_approx(-149.0f), f(0x00000001)); // least subnormal, not flushed
}

TEST(EmuEx2, WithinTwoUlpOfCorrectlyRounded) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-151.0f, 128.5f);
  for (int i = 0; i < 300000; ++i) {
    const float x = i < 1000 ? (float)(i - 500) * 0.25f : dist(rng);
    const float want = (float)std::exp2l((long double)x); // correctly rounded
    const float got = ex2_approx(x);
    if (std::isinf(want)) {
      ASSERT_TRUE(std::isinf(got) || ulp_distance(got, std::numeric_limits<float>::max()) <= 2);
      continue;
    }
    ASSERT_LE(ulp_distance(got, want), 2) << "x = " << x;
  }
}

TEST(EmuEx2, FtzFlushesSubnormalInputsAndResults) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ex2_approx_ftz(-149.0f), 0.0f); // subnormal without .ftz
  EXPECT_FALSE(std::signbit(ex2_approx_ftz(-149.0f)));
  EXPECT_EQ(ex2_approx_ftz(-126.5f), 0.0f);
  EXPECT_EQ(ex2_approx_ftz(-126.0f), f(0x00800000)); // least normal stays
  EXPECT_EQ(ex2_approx_ftz(f(0x00000001)), 1.0f);    // subnormal input counts as 0
  EXPECT_EQ(ex2_approx_ftz(f(0x80000001)), 1.0f);
  EXPECT_EQ(ex2_approx_ftz(-inf), 0.0f);
  EXPECT_EQ(ex2_approx_ftz(inf), inf);
  EXPECT_TRUE(std::isnan(ex2_approx_ftz(std::numeric_limits<float>::quiet_NaN())));
  for (float x : {-100.0f, -3.25f, 0.0f, 0.5f, 7.0f, 127.0f})
    EXPECT_EQ(ex2_approx_ftz(x), ex2_approx(x)) << "x = " << x; // normal range: the same
}

TEST(EmuMinMax, NanOperandsGiveTheCanonicalNan) {
  const float nan = f(0x7fc00001), neg_nan = f(0xffc00000);
  for (float x : {nan, neg_nan}) {
    EXPECT_EQ(f32_as_u32(fmax_nan(x, 1.0f)), 0x7fffffffu);
    EXPECT_EQ(f32_as_u32(fmax_nan(1.0f, x)), 0x7fffffffu);
    EXPECT_EQ(f32_as_u32(fmin_nan(x, -1.0f)), 0x7fffffffu);
    EXPECT_EQ(f32_as_u32(fmin_nan(-1.0f, x)), 0x7fffffffu);
  }
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fmax_nan(-inf, 3.0f), 3.0f);
  EXPECT_EQ(fmin_nan(-inf, 3.0f), -inf);
  EXPECT_FALSE(std::signbit(fmax_nan(-0.0f, 0.0f)));
  EXPECT_FALSE(std::signbit(fmax_nan(0.0f, -0.0f)));
  EXPECT_TRUE(std::signbit(fmin_nan(0.0f, -0.0f)));
  EXPECT_TRUE(std::signbit(fmin_nan(-0.0f, 0.0f)));
}

} // namespace
