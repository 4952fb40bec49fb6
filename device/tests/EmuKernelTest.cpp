// The shared test kernel (kernels/primitives_kernel.cuh), compiled as host C++
// on the emulator and checked against float64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "TestUtil.h"
#include "kernels/primitives_kernel.cuh"

namespace {
using namespace loom::device;

TEST(EmuKernel, PrimitivesKernelMatchesFloat64) {
  constexpr unsigned kBlocks = 3;
  std::mt19937 rng(42);
  // Multiples of 1/8 in [-2, 2]: exact in f16 and bf16, and every product and
  // partial sum is exact in fp32, so D must match float64 exactly.
  std::uniform_int_distribution<int> q(-16, 16);
  std::vector<uint16_t> in(kBlocks * loom_test::kInPerBlock);
  std::vector<double> A16(kBlocks * 256), B16(kBlocks * 128), Abf(kBlocks * 256),
      Bbf(kBlocks * 128);
  for (unsigned blk = 0; blk < kBlocks; ++blk) {
    uint16_t* src = in.data() + blk * loom_test::kInPerBlock;
    for (unsigned m = 0; m < 16; ++m)
      for (unsigned k = 0; k < 16; ++k) {
        const float a = q(rng) / 8.f, abf = q(rng) / 8.f;
        A16[blk * 256 + m * 16 + k] = a;
        src[m * 16 + k] = f32_to_f16_rn(a);
        Abf[blk * 256 + m * 16 + k] = abf;
        src[384 + k * 16 + m] = f32_to_bf16_rn(abf); // stored K x M
      }
    for (unsigned k = 0; k < 16; ++k)
      for (unsigned n = 0; n < 8; ++n) {
        const float b = q(rng) / 8.f, bbf = q(rng) / 8.f;
        B16[blk * 128 + k * 8 + n] = b;
        src[256 + k * 8 + n] = f32_to_f16_rn(b);       // K x N
        Bbf[blk * 128 + k * 8 + n] = bbf;
        src[640 + n * 16 + k] = f32_to_bf16_rn(bbf);   // N x K
      }
  }
  std::vector<float> out(kBlocks * loom_test::kThreads * loom_test::kOutPerThread, NAN);

  emu::LaunchConfig c;
  c.kernel_name = "loom_primitives_kernel";
  c.grid = emu::dim3(kBlocks);
  c.block = emu::dim3(loom_test::kThreads);
  c.shared_bytes = 768 * 2;
  emu::launch(c, &loom_primitives_kernel, in.data(), out.data());

  for (unsigned blk = 0; blk < kBlocks; ++blk)
    for (unsigned tid = 0; tid < loom_test::kThreads; ++tid) {
      const bool bf = tid >= 32;
      const double* A = (bf ? Abf : A16).data() + blk * 256;
      const double* B = (bf ? Bbf : B16).data() + blk * 128;
      double D[16][8];
      for (unsigned m = 0; m < 16; ++m)
        for (unsigned n = 0; n < 8; ++n) {
          double s = 0;
          for (unsigned k = 0; k < 16; ++k) s += A[m * 16 + k] * B[k * 8 + n];
          D[m][n] = 2 * s; // the kernel accumulates the product twice
        }
      const unsigned lane = tid % 32, g = lane / 4, t = lane % 4;
      const float* o = out.data() + (blk * loom_test::kThreads + tid) * loom_test::kOutPerThread;
      const std::string where = "block " + std::to_string(blk) + " thread " + std::to_string(tid);
      const double d[4] = {D[g][2 * t], D[g][2 * t + 1], D[g + 8][2 * t], D[g + 8][2 * t + 1]};
      for (int i = 0; i < 4; ++i) ASSERT_EQ(o[loom_test::kOutD + i], d[i]) << where << " d" << i;
      for (int h = 0; h < 2; ++h) {
        const double* row = D[g + 8 * h];
        const double mx = *std::max_element(row, row + 8);
        double sum = 0;
        for (int n = 0; n < 8; ++n) sum += std::exp2(row[n] - mx);
        EXPECT_EQ(o[loom_test::kOutRowMax + h], mx) << where;
        EXPECT_NEAR(o[loom_test::kOutRowSum + h], sum, 1e-5 * sum) << where;
      }
      EXPECT_EQ(o[loom_test::kOutUp], t == 0 ? d[0] : D[g][2 * (t - 1)]) << where;
      const double mx0 = *std::max_element(D[g], D[g] + 8);
      // Half an ulp of the 16-bit type, and half its least subnormal (f16
      // probabilities this small are subnormal or flush to zero).
      const double tol = bf ? 0x1p-8 : 0x1p-11, tiny = bf ? 0.0 : 0x1p-25;
      for (int i = 0; i < 2; ++i) {
        const double p = std::exp2(d[i] - mx0);
        EXPECT_NEAR(o[loom_test::kOutPacked + i], p, tol * p + tiny) << where << " p" << i;
      }
      EXPECT_NEAR(o[loom_test::kOutRoundTrip], d[2], tol * std::fabs(d[2])) << where;
    }
}

} // namespace
