// Planted hazards that value tests alone pass and hardware would not: a
// cp.async destination touched between issue and wait, cp.async landing at
// either extreme, global-memory races across and within blocks, and two
// kernel-level ops that share one tile-library barrier or mma line.
#include "TestUtil.h"
#include "TileTestUtil.h"

#include <cstdlib>

namespace {
using namespace loom::tile;
namespace emu = loom::device::emu;
using loom::device::bar_sync;
using loom::device::EmuError;
using loom::device::cp_async_16;
using loom::device::cp_async_commit;
using loom::device::cp_async_wait;
using loom::tile::detail::global_load;
using loom::tile::detail::global_store;
using loom::tile::detail::smem_load;

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

std::string error_of(emu::LaunchConfig c, const std::function<void()>& body) {
  try {
    emu::launch(c, body);
  } catch (const EmuError& e) {
    return e.what();
  }
  return "";
}

emu::LaunchConfig block_config(unsigned threads, std::size_t smem, bool races = true) {
  emu::LaunchConfig c;
  c.kernel_name = "fidelity";
  c.block = emu::dim3(threads);
  c.shared_bytes = smem;
  c.workers = 1;
  c.detect_races = races;
  return c;
}

// Sets (or removes, with nullptr) an environment variable for its lifetime.
class EnvVar {
public:
  EnvVar(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~EnvVar() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }

private:
  const char* name_;
  bool had_;
  std::string old_;
};

alignas(16) unsigned char g_src[32 * 16];

// ---- cp.async: a pending write from issue to wait ------------------------------------

// The early-reuse bug of a pipeline slot: thread 0 refills chunk 0 while
// thread 1 still reads the old contents, a barrier apart but before thread
// 0's wait. Landing at the wait, thread 1 reads the old bytes and value
// tests pass; on hardware the copy may already have landed.
TEST(EmuFidelity, ReadOfAPendingCopyByAnotherThreadIsARace) {
  auto body = [](bool reuse_after_wait) {
    return [reuse_after_wait] {
      unsigned char* s = shared_scratch();
      if (threadIdx.x == 0) {
        cp_async_16(s, g_src, 16);
        cp_async_commit();
        if (reuse_after_wait) cp_async_wait<0>();
      }
      bar_sync();
      if (threadIdx.x == 1) (void)smem_load(reinterpret_cast<const int*>(s));
      bar_sync();
      if (threadIdx.x == 0) cp_async_wait<0>();
    };
  };
  EXPECT_EQ(error_of(block_config(32, 64), body(true)), "");
  const std::string err = error_of(block_config(32, 64), body(false));
  EXPECT_HAS(err, "thread (1,0,0): shared-memory race: thread (1,0,0) reads bytes [offset 0, "
                  "+4) that a cp.async issued by thread (0,0,0) may still be writing");
}

TEST(EmuFidelity, WriteOfAPendingCopyByAnotherThreadIsARace) {
  const std::string err = error_of(block_config(32, 64), [] {
    unsigned char* s = shared_scratch();
    if (threadIdx.x == 0) {
      cp_async_16(s, g_src, 16);
      cp_async_commit();
    }
    bar_sync();
    if (threadIdx.x == 3) loom::tile::detail::smem_store(reinterpret_cast<int*>(s + 8), 1);
    bar_sync();
    if (threadIdx.x == 0) cp_async_wait<0>();
  });
  EXPECT_HAS(err, "thread (3,0,0) writes bytes [offset 8, +4) that a cp.async issued by "
                  "thread (0,0,0) may still be writing");
}

TEST(EmuFidelity, IssuersOwnReadBeforeItsWaitIsAMissingWait) {
  const std::string err = error_of(block_config(32, 32 * 16), [] {
    unsigned char* s = shared_scratch() + 16 * threadIdx.x;
    cp_async_16(s, g_src + 16 * threadIdx.x, 16);
    cp_async_commit();
    (void)smem_load(reinterpret_cast<const int*>(s));
    cp_async_wait<0>();
  });
  EXPECT_HAS(err, "thread (0,0,0) reads bytes [offset 0, +4) that its own cp.async has not "
                  "landed yet (missing cp.async.wait_group");
}

TEST(EmuFidelity, LdmatrixOfAPendingCopyIsARace) {
  const std::string err = error_of(block_config(32, 32 * 16), [] {
    unsigned char* s = shared_scratch();
    if (threadIdx.x == 5) {
      cp_async_16(s + 16 * 5, g_src, 16);
      cp_async_commit();
    }
    bar_sync();
    uint32_t d[4];
    loom::device::ldmatrix_x4(d, s + 16 * ((threadIdx.x + 1) % 32)); // lane 4 reads row 5
    bar_sync();
    cp_async_wait<0>();
  });
  EXPECT_HAS(err, "thread (4,0,0) reads bytes [offset 80, +16) (at ldmatrix.x4) that a cp.async "
                  "issued by thread (5,0,0) may still be writing");
}

// ---- cp.async: landing at issue or at the wait ----------------------------------------

// What the issuer sees in its destination before its wait (no race check:
// this is the value a racy read returns) under each landing option.
std::vector<unsigned char> seen_before_wait(const emu::LaunchConfig& c) {
  for (unsigned i = 0; i < sizeof g_src; ++i) g_src[i] = (unsigned char)(i * 5 + 1);
  std::vector<unsigned char> seen(16), after(16);
  emu::launch(c, [&] {
    unsigned char* s = shared_scratch();
    cp_async_16(s, g_src, 16);
    cp_async_commit();
    std::memcpy(seen.data(), s, 16);
    cp_async_wait<0>();
    std::memcpy(after.data(), s, 16);
  });
  EXPECT_EQ(0, std::memcmp(after.data(), g_src, 16)) << "landed by the wait in either mode";
  return seen;
}

TEST(EmuFidelity, CpAsyncLandsAtIssueOrAtWait) {
  const EnvVar env("LOOM_EMU_CP_ASYNC_LAND", nullptr);
  emu::LaunchConfig c = block_config(1, 16, false);
  EXPECT_EQ(seen_before_wait(c), std::vector<unsigned char>(16, 0xff));
  c.cp_async_land = emu::LaunchConfig::CpAsyncLand::AtIssue;
  const auto seen = seen_before_wait(c);
  EXPECT_EQ(0, std::memcmp(seen.data(), g_src, 16));
}

TEST(EmuFidelity, CpAsyncLandingFromTheEnvironment) {
  const emu::LaunchConfig c = block_config(1, 16, false);
  {
    const EnvVar env("LOOM_EMU_CP_ASYNC_LAND", "issue");
    const auto seen = seen_before_wait(c);
    EXPECT_EQ(0, std::memcmp(seen.data(), g_src, 16));
  }
  {
    const EnvVar env("LOOM_EMU_CP_ASYNC_LAND", "wait");
    emu::LaunchConfig at_issue = c;
    at_issue.cp_async_land = emu::LaunchConfig::CpAsyncLand::AtIssue; // the environment wins
    EXPECT_EQ(seen_before_wait(at_issue), std::vector<unsigned char>(16, 0xff));
  }
  const EnvVar env("LOOM_EMU_CP_ASYNC_LAND", "soon");
  EXPECT_HAS(error_of(c, [] {}), "LOOM_EMU_CP_ASYNC_LAND='soon' is neither 'issue' nor 'wait'");
}

// ---- global-memory races ----------------------------------------------------------------

emu::LaunchConfig grid_config(unsigned blocks, unsigned threads, std::vector<int>& buf) {
  emu::LaunchConfig c;
  c.kernel_name = "global_race";
  c.grid = emu::dim3(blocks);
  c.block = emu::dim3(threads);
  c.workers = 2;
  c.detect_global_races = true;
  c.global_buffers = {{buf.data(), buf.size() * sizeof(int), "out"}};
  return c;
}

TEST(EmuFidelity, TwoBlocksWritingOneElementIsARace) {
  std::vector<int> out(64, 0);
  emu::LaunchConfig c = grid_config(2, 32, out);
  c.workers = 1; // block 0 runs first, so the report names block (1,0,0)
  const std::string err = error_of(c, [&] {
    if (threadIdx.x == 0) global_store(out.data() + 7, true, (int)blockIdx.x);
  });
  EXPECT_HAS(err, "block (1,0,0): thread (0,0,0): global-memory race: thread (0,0,0) of block "
                  "(1,0,0) writes the byte at");
  EXPECT_HAS(err, "(out, byte offset 28), at global store, written by thread (0,0,0) of block "
                  "(0,0,0) in the same launch (write-write race");
  c.detect_global_races = false;
  EXPECT_EQ(error_of(c, [&] {
    if (threadIdx.x == 0) global_store(out.data() + 7, true, (int)blockIdx.x);
  }), "") << "off: not reported";
}

TEST(EmuFidelity, OneBlockReadingWhatAnotherWroteIsARace) {
  std::vector<int> out(64, 0);
  emu::LaunchConfig c = grid_config(2, 32, out);
  c.workers = 1;
  const std::string err = error_of(c, [&] {
    if (blockIdx.x == 0) global_store(out.data() + threadIdx.x, true, 1);
    else (void)global_load(out.data() + 31 - threadIdx.x, true, 0);
  });
  EXPECT_HAS(err, "thread (0,0,0) of block (1,0,0) reads the byte at");
  EXPECT_HAS(err, "(out, byte offset 124), at global load, written by thread (31,0,0) of block "
                  "(0,0,0) in the same launch (write-read race");
}

TEST(EmuFidelity, GlobalAccessesInOneBlockNeedABarrier) {
  std::vector<int> out(64, 0);
  auto body = [&](bool sync) {
    return [&, sync] {
      global_store(out.data() + threadIdx.x, true, (int)threadIdx.x);
      if (sync) bar_sync();
      (void)global_load(out.data() + (threadIdx.x + 1) % 32, true, 0);
    };
  };
  EXPECT_EQ(error_of(grid_config(1, 32, out), body(true)), "");
  const std::string err = error_of(grid_config(1, 32, out), body(false));
  EXPECT_HAS(err, "thread (1,0,0) of block (0,0,0) writes the byte at");
  EXPECT_HAS(err, "read by thread (0,0,0) of block (0,0,0) since the last barrier (read-write "
                  "race");
}

TEST(EmuFidelity, DisjointGlobalAccessesRunClean) {
  std::vector<int> out(8 * 64, 0);
  const std::string err = error_of(grid_config(8, 64, out), [&] {
    int* mine = out.data() + 64 * blockIdx.x;
    global_store(mine + threadIdx.x, true, 3);
    (void)global_load(mine + threadIdx.x, true, 0); // own write
    bar_sync();
    (void)global_load(mine + 63 - threadIdx.x, true, 0);
    (void)global_load(out.data(), false, 0); // predicated off: touches nothing
  });
  EXPECT_EQ(err, "");
  for (int x : out) EXPECT_EQ(x, 3);
}

TEST(EmuFidelity, GlobalRaceCheckFromTheEnvironment) {
  std::vector<int> out(64, 0);
  emu::LaunchConfig c = grid_config(2, 32, out);
  c.detect_global_races = false;
  const EnvVar env("LOOM_EMU_GLOBAL_RACE_CHECK", "1");
  EXPECT_HAS(error_of(c, [&] { global_store(out.data(), threadIdx.x == 0, 1); }),
             "global-memory race");
}

// ---- kernel-level call sites --------------------------------------------------------------

// One tile-library line for the barrier and the mma, as every dot.h mma is.
void library_barrier() { bar_sync(); }
void library_mma() {
  float d[4] = {};
  const uint32_t a[4] = {}, b[2] = {};
  loom::device::mma_m16n8k16_f16(d, a, b, d);
}

TEST(EmuFidelity, BarriersOfDifferentKernelOpsAreDivergence) {
  auto body = [](bool marked) {
    return [marked] {
      // Warp 0 runs kernel op 1, warp 1 kernel op 2: different bar.sync
      // instructions in the kernel, one line of the library.
      if (threadIdx.x < 32) {
        if (marked) LOOM_SITE(1);
        library_barrier();
      } else {
        if (marked) LOOM_SITE(2);
        library_barrier();
      }
    };
  };
  EXPECT_EQ(error_of(block_config(64, 0, false), body(false)), "")
      << "without sites the library line is all the emulator sees";
  const std::string err = error_of(block_config(64, 0, false), body(true));
  EXPECT_HAS(err, "barrier divergence: this thread reached bar.sync 0 at");
  EXPECT_HAS(err, "in kernel op 2 while other threads wait at bar.sync 0 at");
  EXPECT_HAS(err, "in kernel op 1");
}

TEST(EmuFidelity, MmasOfDifferentKernelOpsAreDivergence) {
  auto body = [](bool marked) {
    return [marked] {
      if (threadIdx.x < 16) {
        if (marked) LOOM_SITE(3);
        library_mma();
      } else {
        if (marked) LOOM_SITE(4);
        library_mma();
      }
    };
  };
  EXPECT_EQ(error_of(block_config(32, 0, false), body(false)), "");
  const std::string err = error_of(block_config(32, 0, false), body(true));
  EXPECT_HAS(err, "warp divergence: this lane reached mma.m16n8k16.f32.f16 at");
  EXPECT_HAS(err, "in kernel op 4 while lanes (0,0,0)..(15,0,0) wait at mma.m16n8k16.f32.f16");
  EXPECT_HAS(err, "in kernel op 3");
}

TEST(EmuFidelity, OneKernelOpOnEveryWarpIsOneInstruction) {
  const std::string err = error_of(block_config(64, 0, false), [] {
    LOOM_SITE(7);
    library_mma();
    library_barrier();
    LOOM_SITE(8);
    library_barrier();
  });
  EXPECT_EQ(err, "");
}

} // namespace
