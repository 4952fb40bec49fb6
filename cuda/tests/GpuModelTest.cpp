//===- GpuModelTest.cpp - occupancy and launch model, by hand -------------===//

#include "loom/cuda/GpuModel.h"
#include "loom/Support/Error.h"

#include <gtest/gtest.h>

using namespace loom;
using namespace loom::cuda;

TEST(GpuModel, ArchTable) {
  ASSERT_EQ(gpuArchs().size(), 4u);
  // Dense peaks follow from SMs x clock x FLOPs/clk/SM (within rounding).
  const GpuArch &a100 = gpuArch("sm_80");
  EXPECT_NEAR(a100.sms * a100.boostGHz * a100.mmaFlopsPerClkPerSm / 1e3, a100.denseTensorTflops,
              1.0);
  const GpuArch &h100 = gpuArch("sm_90a");
  EXPECT_NEAR(h100.sms * h100.boostGHz * h100.mmaFlopsPerClkPerSm * 1.5 / 1e3,
              h100.denseTensorTflops, 1.0);
  try {
    gpuArch("sm_75");
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_STREQ(e.what(), "arch 'sm_75' has no GPU model (known: sm_80, sm_86, sm_89, sm_90a)");
  }
}

TEST(GpuModel, OccupancyByHand) {
  const GpuArch &a100 = gpuArch("sm_80");
  // 116 regs: 3712 -> 3840 per warp; 16384 / 3840 = 4 warps per
  // sub-partition, 16 per SM = 2 CTAs of 8 warps. Shared memory alone
  // would allow 167936 / (38912 + 1024) = 4.
  Occupancy o = occupancy(a100, 116, 256, 38912);
  EXPECT_EQ(o.ctasPerSm, 2);
  EXPECT_EQ(o.limiter, "registers");
  EXPECT_EQ(o.warpsPerSm(), 16);
  // 255 regs -> 8192 per warp: 2 warps per sub-partition, 2 CTAs of 4.
  EXPECT_EQ(occupancy(a100, 255, 128, 0).ctasPerSm, 2);
  // 100 KB + 1 KB reserve: one per A100 SM, none on sm_86's 100 KB.
  Occupancy big = occupancy(a100, 64, 128, 100 * 1024);
  EXPECT_EQ(big.ctasPerSm, 1);
  EXPECT_EQ(big.limiter, "shared memory");
  EXPECT_EQ(occupancy(gpuArch("sm_86"), 64, 128, 100 * 1024).ctasPerSm, 0);
  // 1536 threads per SM on sm_86: 6 CTAs of 256 at few registers.
  Occupancy t = occupancy(gpuArch("sm_86"), 32, 256, 0);
  EXPECT_EQ(t.ctasPerSm, 6);
  EXPECT_EQ(t.limiter, "threads");
  // 32 threads, few registers: the CTA-count limit.
  EXPECT_EQ(occupancy(a100, 16, 32, 0).limiter, "CTAs");
}

TEST(GpuModel, LaunchByHand) {
  const GpuArch &a100 = gpuArch("sm_80");
  LaunchWork w;
  w.ctas = 216; // 2 per SM in one wave (4 would fit)
  w.threadsPerCta = 128;
  w.registersPerThread = 128;
  w.mmaPerCta = 1000;
  w.warpInstrPerCta = 10000;
  w.smemWavefrontsPerCta = 2000;
  w.dramBytes = 1e6;
  w.usefulFlops = 216 * 1000 * 4096.0;
  LaunchModel m = modelLaunch(a100, w);
  EXPECT_EQ(m.occupancy.ctasPerSm, 4);
  EXPECT_EQ(m.waves, 1);
  double clk = 1.41e9;
  EXPECT_DOUBLE_EQ(m.tensorS, 2 * 1000 * 4096 / (2048 * clk));
  EXPECT_DOUBLE_EQ(m.issueS, 2 * 10000 / (4 * clk));
  EXPECT_DOUBLE_EQ(m.sharedS, 2 * 2000 / clk);
  EXPECT_DOUBLE_EQ(m.dramS, 1e6 / 2039e9);
  EXPECT_EQ(m.bound, "issue");
  EXPECT_DOUBLE_EQ(m.timeS, m.issueS);
  EXPECT_NEAR(m.tflops, w.usefulFlops / m.issueS / 1e12, 1e-9);
  EXPECT_NEAR(m.percentOfPeak, 100 * m.tflops / 312, 1e-9);

  // One CTA more than a full wave of 4 per SM: two waves of 4.
  w.ctas = 108 * 4 + 1;
  w.warpInstrPerCta = 1000; // now tensor-bound
  m = modelLaunch(a100, w);
  EXPECT_EQ(m.waves, 2);
  EXPECT_EQ(m.bound, "tensor");
  EXPECT_DOUBLE_EQ(m.tensorS, 8 * 1000 * 4096 / (2048 * clk));

  // DRAM-bound: few MMA, many bytes.
  w.dramBytes = 1e12;
  EXPECT_EQ(modelLaunch(a100, w).bound, "DRAM");

  w.sharedBytesPerCta = 200 * 1024;
  try {
    modelLaunch(a100, w);
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("does not fit on an SM of sm_80 (shared memory)"),
              std::string::npos)
        << e.what();
  }
}
