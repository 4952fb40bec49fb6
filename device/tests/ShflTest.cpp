// shfl.sync.{up,down,bfly,idx}.b32 (PTX_FACTS §5): the width forms against the
// CUDA-level description (segments of `width` lanes), and the raw forms
// against the clamp/segment rules, including out-of-range lanes and b values.
#include <gtest/gtest.h>

#include "TestUtil.h"

namespace {
using namespace loom::device;
using namespace loom::device::test;

uint32_t val(unsigned lane) { return 1000 + 7 * lane; }

struct Result {
  uint32_t d[32];
  bool p[32];
};

// Runs op(lane) on all 32 lanes.
template <class Op>
Result run(Op op) {
  Result r{};
  run_block(32, 0, [&] {
    const unsigned l = threadIdx.x;
    r.d[l] = op(l, &r.p[l]);
  });
  return r;
}

TEST(EmuShfl, WidthForms) {
  for (int w : {32, 16, 8, 4, 2, 1}) {
    for (unsigned delta : {0u, 1u, 3u, 5u, 16u}) {
      const Result up = run([&](unsigned l, bool*) { return shfl_up(val(l), delta, w); });
      const Result down = run([&](unsigned l, bool*) { return shfl_down(val(l), delta, w); });
      for (unsigned l = 0; l < 32; ++l) {
        const unsigned pos = l % w; // position within the segment
        // up keeps the lowest `delta` lanes of each segment, down the highest.
        EXPECT_EQ(up.d[l], pos >= delta ? val(l - delta) : val(l)) << w << " " << delta << " " << l;
        EXPECT_EQ(down.d[l], pos + delta < (unsigned)w ? val(l + delta) : val(l))
            << w << " " << delta << " " << l;
      }
    }
    for (int mask = 0; mask < w; ++mask) {
      const Result x = run([&](unsigned l, bool*) { return shfl_xor(val(l), mask, w); });
      for (unsigned l = 0; l < 32; ++l) EXPECT_EQ(x.d[l], val(l ^ mask)) << w << " " << mask;
    }
    for (int src : {0, 1, 5, 13, 31, 37, -1}) {
      const Result x = run([&](unsigned l, bool*) { return shfl_idx(val(l), src, w); });
      for (unsigned l = 0; l < 32; ++l) {
        const unsigned seg_start = l - l % w;
        // Only b[4:0] is used, so -1 reads lane 31 % w of the segment.
        EXPECT_EQ(x.d[l], val(seg_start + (unsigned)(src & 31) % w)) << w << " " << src;
      }
    }
  }
}

TEST(EmuShfl, FloatOverloadsMoveBits) {
  float out[32];
  run_block(32, 0, [&] {
    const float v = -1.5f * (float)threadIdx.x;
    out[threadIdx.x] = shfl_xor(v, 1) + shfl_idx(v, 3);
  });
  for (unsigned l = 0; l < 32; ++l) EXPECT_EQ(out[l], -1.5f * (float)(l ^ 1) + -4.5f);
}

TEST(EmuShfl, RawClampAndPredicate) {
  // down with clamp 15 and no segment mask: lanes past 15 are out of range.
  Result r = run([](unsigned l, bool* p) { return shfl_sync_down(~0u, val(l), 4, 0x0f, p); });
  for (unsigned l = 0; l < 32; ++l) {
    const bool ok = l + 4 <= 15;
    // maxLane = clamp for every lane (seg = 0): j = l + 4 must be <= 15.
    EXPECT_EQ(r.p[l], ok) << l;
    EXPECT_EQ(r.d[l], ok ? val(l + 4) : val(l)) << l;
  }
  // up: b = 40 uses only b[4:0] = 8; maxLane = clamp = 0, so j = l - 8 >= 0.
  r = run([](unsigned l, bool* p) { return shfl_sync_up(~0u, val(l), 40, 0, p); });
  for (unsigned l = 0; l < 32; ++l) {
    EXPECT_EQ(r.p[l], l >= 8) << l;
    EXPECT_EQ(r.d[l], l >= 8 ? val(l - 8) : val(l)) << l;
  }
  // idx with c = 0x1f: j = b & 31 for all lanes, always in range.
  r = run([](unsigned l, bool* p) { return shfl_sync_idx(~0u, val(l), 31 - l, 0x1f, p); });
  for (unsigned l = 0; l < 32; ++l) {
    EXPECT_TRUE(r.p[l]);
    EXPECT_EQ(r.d[l], val(31 - l));
  }
  // idx with clamp 7 and no segments: lanes asking for j > 7 keep their own.
  r = run([](unsigned l, bool* p) { return shfl_sync_idx(~0u, val(l), l, 0x07, p); });
  for (unsigned l = 0; l < 32; ++l) EXPECT_EQ(r.d[l], val(l)) << l; // j = l either way
  r = run([](unsigned l, bool* p) { return shfl_sync_idx(~0u, val(l), 9, 0x07, p); });
  for (unsigned l = 0; l < 32; ++l) {
    EXPECT_FALSE(r.p[l]);
    EXPECT_EQ(r.d[l], val(l));
  }
}

TEST(EmuShfl, BflyWithMaskPastWidthReadsLowerSegment) {
  // Width 8, lane mask 8: only j <= maxLane (the segment's end) is checked, so
  // lanes in odd segments read the segment below, even segments keep their own.
  const Result r = run([](unsigned l, bool* p) {
    return shfl_sync_bfly(~0u, val(l), 8, shfl_c_operand(8, false), p);
  });
  for (unsigned l = 0; l < 32; ++l) {
    const bool odd_segment = (l / 8) % 2 == 1;
    EXPECT_EQ(r.p[l], odd_segment) << l;
    EXPECT_EQ(r.d[l], odd_segment ? val(l - 8) : val(l)) << l;
  }
}

TEST(EmuShfl, PartialMembermask) {
  uint32_t out[32] = {};
  run_block(32, 0, [&] {
    const unsigned l = threadIdx.x;
    if (l < 16) out[l] = shfl_sync_down(0x0000ffffu, val(l), 8, 0x1f);
  });
  for (unsigned l = 0; l < 8; ++l) EXPECT_EQ(out[l], val(l + 8));
  // Lanes 8..15 read lanes 16..23, outside the mask: undefined, poisoned.
  for (unsigned l = 8; l < 16; ++l) EXPECT_EQ(out[l], emu::isa::kShflUndefined);
}

TEST(EmuShfl, DisjointMasksRunSideBySide) {
  uint32_t out[32] = {};
  run_block(32, 0, [&] {
    const unsigned l = threadIdx.x;
    const uint32_t mask = l < 16 ? 0x0000ffffu : 0xffff0000u;
    out[l] = shfl_xor(val(l), 1, 16, mask);
  });
  for (unsigned l = 0; l < 32; ++l) EXPECT_EQ(out[l], val(l ^ 1));
}

TEST(EmuShfl, ExitedLanesAreNotWaitedFor) {
  uint32_t out[32] = {};
  run_block(32, 0, [&] {
    const unsigned l = threadIdx.x;
    if (l >= 16) return;
    out[l] = shfl_xor(val(l), 1);
  });
  for (unsigned l = 0; l < 16; ++l) EXPECT_EQ(out[l], val(l ^ 1));
}

TEST(EmuShfl, LaneOutsideItsOwnMaskIsRejected) {
  const std::string err = launch_error(32, 0, [] { shfl_sync_idx(0x1u, 0, 0, 0x1f); });
  EXPECT_NE(err.find("not in membermask"), std::string::npos) << err;
}

TEST(EmuShfl, ModeMismatchIsRejected) {
  const std::string err = launch_error(32, 0, [] {
    if (threadIdx.x % 2) shfl_sync_up(~0u, 0, 1, 0);
    else shfl_sync_down(~0u, 0, 1, 0x1f);
  });
  EXPECT_NE(err.find("disagree"), std::string::npos) << err;
}

} // namespace
