// The fiber-based CTA executor: thread/block indices, barriers, parallel
// blocks, and the errors it reports instead of hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "TestUtil.h"

namespace {
using namespace loom::device;
using namespace loom::device::test;

void index_kernel(unsigned* out, unsigned magic) {
  const unsigned tpb = blockDim.x * blockDim.y * blockDim.z;
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  out[b * tpb + t] += magic + b;
}

TEST(EmuExecutor, IndicesCoverGridOnce) {
  emu::LaunchConfig c;
  c.kernel_name = "index";
  c.grid = emu::dim3(3, 2, 2);
  c.block = emu::dim3(8, 4, 2);
  c.workers = 2;
  std::vector<unsigned> out(12 * 64, 0);
  emu::launch(c, &index_kernel, out.data(), 100u);
  for (unsigned i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], 100 + i / 64) << i;
}

TEST(EmuExecutor, BarrierOrdersSharedMemory) {
  std::vector<int> out(256);
  run_block(256, 256 * sizeof(int), [&] {
    int* s = static_cast<int*>(dynamic_shared_memory());
    const unsigned t = threadIdx.x;
    for (int round = 0; round < 3; ++round) {
      s[t] = (int)t * 10 + round;
      __syncthreads();
      out[t] = s[255 - t];
      bar_sync();
    }
  });
  for (int t = 0; t < 256; ++t) EXPECT_EQ(out[t], (255 - t) * 10 + 2);
}

// PTX (§7): a barrier does not wait for exited threads. Warp-specialized
// kernels rely on it: a producer warp that exits early must not hang or fail
// the consumers' barriers.
TEST(EmuExecutor, BarrierAfterAWarpExitedWaitsOnlyForTheOthers) {
  std::vector<int> out(128, -1);
  const std::string err = launch_error(128, 128 * sizeof(int), [&] {
    int* s = static_cast<int*>(dynamic_shared_memory());
    const unsigned t = threadIdx.x;
    if (t < 32) return; // the producer warp is done
    s[t] = (int)t;
    __syncthreads();
    out[t] = s[32 + (t - 32 + 1) % 96];
    __syncthreads();
  }, "early_exit");
  EXPECT_EQ(err, "");
  for (unsigned t = 32; t < 128; ++t) EXPECT_EQ(out[t], (int)(32 + (t - 32 + 1) % 96));
}

TEST(EmuExecutor, ThreadExitingWhileOthersWaitReleasesTheBarrier) {
  std::vector<int> passed(64, 0);
  const std::string err = launch_error(64, 0, [&] {
    if (threadIdx.x < 32) {
      __syncthreads(); // waits for warp 1, which exits instead
      passed[threadIdx.x] = 1;
    }
  });
  EXPECT_EQ(err, "");
  for (int t = 0; t < 32; ++t) EXPECT_EQ(passed[t], 1);
}

TEST(EmuExecutor, DifferentBarriersAreReported) {
  const std::string err = launch_error(64, 0, [] {
    if (threadIdx.x % 2) __syncthreads();
    else __syncthreads();
  });
  EXPECT_NE(err.find("barrier divergence"), std::string::npos) << err;
}

// Still divergence after an exit: the survivors disagree on the barrier.
TEST(EmuExecutor, DifferentBarriersAfterAnExitAreReported) {
  const std::string err = launch_error(96, 0, [] {
    if (threadIdx.x < 32) return;
    if (threadIdx.x < 64) __syncthreads();
    else __syncthreads();
  });
  EXPECT_NE(err.find("barrier divergence"), std::string::npos) << err;
}

TEST(EmuExecutor, DeadlockIsReportedWithEachThreadsWait) {
  // Lanes 0-15 wait for the whole warp in a shuffle; the rest of the block
  // waits at a barrier that needs lanes 0-15.
  const std::string err = launch_error(64, 0, [] {
    if (threadIdx.x < 16) shfl_xor(1u, 1);
    __syncthreads();
  }, "stuck");
  EXPECT_NE(err.find("deadlock"), std::string::npos) << err;
  EXPECT_NE(err.find("threads (0,0,0)..(15,0,0): waiting at shfl.sync.bfly.b32"),
            std::string::npos) << err;
  EXPECT_NE(err.find("threads (16,0,0)..(63,0,0): waiting at bar.sync 0"), std::string::npos)
      << err;
}

TEST(EmuExecutor, ErrorInOneOfManyParallelBlocksPropagates) {
  emu::LaunchConfig c;
  c.kernel_name = "boom";
  c.grid = emu::dim3(16);
  c.block = emu::dim3(32);
  c.workers = 2;
  try {
    emu::launch(c, [] {
      if (blockIdx.x == 9 && threadIdx.x == 3) throw std::out_of_range("bad index");
      __syncthreads();
    });
    FAIL() << "expected EmuError";
  } catch (const EmuError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("kernel 'boom' block (9,0,0): thread (3,0,0): uncaught exception: bad index"),
              std::string::npos) << msg;
  }
}

TEST(EmuExecutor, InvalidLaunchIsRejected) {
  emu::LaunchConfig c;
  c.block = emu::dim3(2048);
  EXPECT_THROW(emu::launch(c, [] {}), EmuError);
}

TEST(EmuExecutor, PrimitiveOutsideLaunchIsRejected) {
  EXPECT_THROW(lane_id(), EmuError);
}

} // namespace
