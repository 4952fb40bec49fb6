// cp.async / commit_group / wait_group (PTX_FACTS §4): copies become visible
// only when a wait retires their group, so a missing wait is observable.
#include <gtest/gtest.h>

#include <array>

#include "TestUtil.h"

namespace {
using namespace loom::device;
using namespace loom::device::test;

using Chunk = std::array<unsigned char, 16>;

alignas(16) unsigned char g_src[64 * 16];

void fill_source() {
  for (unsigned i = 0; i < sizeof g_src; ++i) g_src[i] = (unsigned char)(i * 7 + 3);
}

Chunk chunk_of(const void* p) {
  Chunk c;
  std::memcpy(c.data(), p, 16);
  return c;
}

Chunk source_chunk(unsigned i) { return chunk_of(g_src + 16 * i); }

const Chunk kPoison = [] {
  Chunk c;
  c.fill(0xff);
  return c;
}();

TEST(EmuCpAsync, InvisibleBeforeWaitVisibleAfter) {
  fill_source();
  Chunk before[32], after[32];
  run_block(32, 32 * 16, [&] {
    auto* s = static_cast<unsigned char*>(dynamic_shared_memory());
    const unsigned l = threadIdx.x;
    cp_async_16(s + 16 * l, g_src + 16 * l, 16);
    cp_async_commit();
    before[l] = chunk_of(s + 16 * l);
    cp_async_wait<0>();
    after[l] = chunk_of(s + 16 * l);
  });
  for (unsigned l = 0; l < 32; ++l) {
    EXPECT_EQ(before[l], kPoison) << l;
    EXPECT_EQ(after[l], source_chunk(l)) << l;
  }
}

TEST(EmuCpAsync, WaitGroupRetiresOldestGroupsOnly) {
  fill_source();
  Chunk seen[4][3];
  run_block(1, 3 * 16, [&] {
    auto* s = static_cast<unsigned char*>(dynamic_shared_memory());
    auto snap = [&](int k) { for (int i = 0; i < 3; ++i) seen[k][i] = chunk_of(s + 16 * i); };
    cp_async_16(s, g_src, 16);
    cp_async_commit();                // group 0
    cp_async_16(s + 16, g_src + 16, 16);
    cp_async_commit();                // group 1
    cp_async_16(s + 32, g_src + 32, 16); // not committed
    cp_async_wait<1>();               // group 0 done, group 1 may pend
    snap(0);
    cp_async_wait<0>();               // group 1 done; uncommitted copy not covered
    snap(1);
    cp_async_commit();
    cp_async_wait<0>();
    snap(2);
    cp_async_commit();                // an empty group completes trivially
    cp_async_wait<0>();
    snap(3);
  });
  EXPECT_EQ(seen[0][0], source_chunk(0));
  EXPECT_EQ(seen[0][1], kPoison);
  EXPECT_EQ(seen[1][1], source_chunk(1));
  EXPECT_EQ(seen[1][2], kPoison);
  EXPECT_EQ(seen[2][2], source_chunk(2));
  EXPECT_EQ(seen[3][2], source_chunk(2));
}

TEST(EmuCpAsync, SrcSizeZeroFills) {
  fill_source();
  Chunk got[3];
  run_block(1, 48, [&] {
    auto* s = static_cast<unsigned char*>(dynamic_shared_memory());
    cp_async_16(s, g_src, 5);
    cp_async_16(s + 16, nullptr, 0); // src-size 0 reads nothing
    cp_async_16(s + 32, g_src + 32, 16);
    cp_async_commit();
    cp_async_wait<0>();
    for (int i = 0; i < 3; ++i) got[i] = chunk_of(s + 16 * i);
  });
  Chunk want{};
  std::memcpy(want.data(), g_src, 5);
  EXPECT_EQ(got[0], want);
  EXPECT_EQ(got[1], Chunk{});
  EXPECT_EQ(got[2], source_chunk(2));
}

// The CUTLASS idiom is wait_group then bar.sync; without the wait, other
// threads read shared memory the copies have not reached.
TEST(EmuCpAsync, MissingWaitIsObservable) {
  fill_source();
  Chunk with_wait[64], without_wait[64];
  for (bool wait : {true, false}) {
    run_block(64, 64 * 16, [&] {
      auto* s = static_cast<unsigned char*>(dynamic_shared_memory());
      const unsigned l = threadIdx.x;
      cp_async_16(s + 16 * l, g_src + 16 * l, 16);
      cp_async_commit();
      if (wait) cp_async_wait<0>();
      bar_sync();
      (wait ? with_wait : without_wait)[l] = chunk_of(s + 16 * (63 - l));
    });
  }
  for (unsigned l = 0; l < 64; ++l) {
    EXPECT_EQ(with_wait[l], source_chunk(63 - l));
    EXPECT_EQ(without_wait[l], kPoison);
  }
}

TEST(EmuCpAsync, DestinationOutsideSharedIsReported) {
  const std::string err = launch_error(1, 32, [] {
    auto* s = static_cast<unsigned char*>(dynamic_shared_memory());
    cp_async_16(s + 32, g_src, 16);
  });
  EXPECT_NE(err.find("cp.async destination"), std::string::npos) << err;
  EXPECT_NE(err.find("outside the block's shared memory"), std::string::npos) << err;
}

TEST(EmuCpAsync, SrcSizeAboveCpSizeIsRejected) {
  const std::string err = launch_error(1, 32, [] {
    cp_async_16(dynamic_shared_memory(), g_src, 17);
  });
  EXPECT_NE(err.find("src-size 17"), std::string::npos) << err;
}

} // namespace
