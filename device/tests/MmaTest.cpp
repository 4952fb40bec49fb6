// mma.sync.m16n8k16 f16/bf16 with f32 accumulation (PTX_FACTS §1): fragments of
// known matrices on all 32 lanes, D checked against a float64 matmul.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "Fragments.h"
#include "TestUtil.h"

namespace {
using namespace loom::device;
using namespace loom::device::test;

TEST(EmuMma, FragmentTableMatchesDocumentedExample) {
  // PTX_FACTS §1, lane 5 (g=1, t=1).
  EXPECT_EQ(a_element(5, 0).row, 1u);
  EXPECT_EQ(a_element(5, 0).col, 2u);
  EXPECT_EQ(a_element(5, 1).col, 3u);
  EXPECT_EQ(a_element(5, 6).row, 9u);
  EXPECT_EQ(a_element(5, 6).col, 10u);
  EXPECT_EQ(a_element(5, 7).col, 11u);
  EXPECT_EQ(b_element(5, 2).row, 10u);
  EXPECT_EQ(b_element(5, 2).col, 1u);
  EXPECT_EQ(b_element(5, 3).row, 11u);
  EXPECT_EQ(c_element(5, 2).row, 9u);
  EXPECT_EQ(c_element(5, 2).col, 2u);
  // Every element is held by exactly one lane.
  int a_seen[16][16] = {}, b_seen[16][8] = {}, c_seen[16][8] = {};
  for (unsigned l = 0; l < 32; ++l)
    for (unsigned e = 0; e < 8; ++e) {
      ++a_seen[a_element(l, e).row][a_element(l, e).col];
      if (e < 4) {
        ++b_seen[b_element(l, e).row][b_element(l, e).col];
        ++c_seen[c_element(l, e).row][c_element(l, e).col];
      }
    }
  for (auto& r : a_seen) for (int v : r) EXPECT_EQ(v, 1);
  for (auto& r : b_seen) for (int v : r) EXPECT_EQ(v, 1);
  for (auto& r : c_seen) for (int v : r) EXPECT_EQ(v, 1);
}

struct Problem {
  float A[16][16], B[16][8], C[16][8];
  uint16_t Abits[16][16], Bbits[16][8];
};

// Random operands already rounded to the 16-bit type, so float64 of the
// decoded values is the exact product the hardware approximates.
Problem make_problem(bool bf16, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-2.f, 2.f);
  Problem p;
  auto round = [&](float x, uint16_t& bits) {
    bits = bf16 ? f32_to_bf16_rn(x) : f32_to_f16_rn(x);
    return bf16 ? bf16_to_f32(bits) : f16_to_f32(bits);
  };
  for (auto& r : p.A) for (float& v : r) v = d(rng);
  for (unsigned i = 0; i < 16; ++i)
    for (unsigned k = 0; k < 16; ++k) p.A[i][k] = round(p.A[i][k], p.Abits[i][k]);
  for (unsigned k = 0; k < 16; ++k)
    for (unsigned n = 0; n < 8; ++n) p.B[k][n] = round(d(rng), p.Bbits[k][n]);
  for (auto& r : p.C) for (float& v : r) v = d(rng);
  return p;
}

void check_mma(bool bf16, bool alias_c) {
  const Problem p = make_problem(bf16, bf16 ? 11 : 12);
  float out[32][4];
  run_block(32, 0, [&] {
    const unsigned l = threadIdx.x;
    uint32_t a[4], b[2];
    float c[4], d[4];
    for (unsigned r = 0; r < 4; ++r) {
      const RowCol lo = a_element(l, 2 * r), hi = a_element(l, 2 * r + 1);
      a[r] = pack(p.Abits[lo.row][lo.col], p.Abits[hi.row][hi.col]);
      const RowCol e = c_element(l, r);
      c[r] = p.C[e.row][e.col];
    }
    for (unsigned r = 0; r < 2; ++r) {
      const RowCol lo = b_element(l, 2 * r), hi = b_element(l, 2 * r + 1);
      b[r] = pack(p.Bbits[lo.row][lo.col], p.Bbits[hi.row][hi.col]);
    }
    float* dst = alias_c ? c : d;
    if (bf16) mma_m16n8k16_bf16(dst, a, b, c);
    else mma_m16n8k16_f16(dst, a, b, c);
    for (unsigned r = 0; r < 4; ++r) out[l][r] = dst[r];
  });
  for (unsigned l = 0; l < 32; ++l)
    for (unsigned r = 0; r < 4; ++r) {
      const RowCol e = c_element(l, r);
      double want = p.C[e.row][e.col], mag = std::fabs(want);
      for (unsigned k = 0; k < 16; ++k) {
        want += (double)p.A[e.row][k] * p.B[k][e.col];
        mag += std::fabs((double)p.A[e.row][k] * p.B[k][e.col]);
      }
      // fp32 accumulation of 17 terms in unspecified order.
      EXPECT_NEAR(out[l][r], want, 1e-6 * mag + 1e-30) << "lane " << l << " d[" << r << "]";
    }
}

TEST(EmuMma, F16MatchesFloat64) { check_mma(false, false); }
TEST(EmuMma, Bf16MatchesFloat64) { check_mma(true, false); }
TEST(EmuMma, AccumulatorMayAliasOutput) { check_mma(false, true); }

TEST(EmuMma, PartialWarpIsRejected) {
  const std::string err = launch_error(16, 0, [] {
    uint32_t a[4] = {}, b[2] = {};
    float c[4] = {}, d[4];
    mma_m16n8k16_f16(d, a, b, c);
  }, "partial");
  EXPECT_NE(err.find("needs all 32 lanes"), std::string::npos) << err;
  EXPECT_NE(err.find("kernel 'partial'"), std::string::npos) << err;
}

TEST(EmuMma, DivergentCallSitesAreRejected) {
  const std::string err = launch_error(32, 0, [] {
    uint32_t a[4] = {}, b[2] = {};
    float c[4] = {}, d[4];
    if (threadIdx.x < 16) mma_m16n8k16_f16(d, a, b, c);
    else mma_m16n8k16_f16(d, a, b, c);
  });
  EXPECT_NE(err.find("warp divergence"), std::string::npos) << err;
}

TEST(EmuMma, ExitedLaneIsRejected) {
  const std::string err = launch_error(32, 0, [] {
    if (threadIdx.x == 31) return;
    uint32_t a[4] = {}, b[2] = {};
    float c[4] = {}, d[4];
    mma_m16n8k16_bf16(d, a, b, c);
  });
  EXPECT_NE(err.find("needs all 32 lanes"), std::string::npos) << err;
}

} // namespace
