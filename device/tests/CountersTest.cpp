// The emulator's counters (emu/Counters.h) on tiny kernels whose exact counts
// follow from the cost rules: bank conflicts of ld.shared and ldmatrix,
// sectors of coalesced and strided global loads, cp.async chunks, mma,
// barriers, shuffles, ex2, and per-iteration counts of a marked loop.
#include "TestUtil.h"
#include "TileTestUtil.h"

namespace {
using namespace loom::tile;
namespace emu = loom::device::emu;
using loom::device::bar_sync;
using loom::tile::detail::global_load;
using loom::tile::detail::global_store;
using loom::tile::detail::smem_load;
using loom::tile::detail::smem_store;

emu::Counters count(unsigned threads, std::size_t smem, const std::function<void()>& body,
                    unsigned blocks = 1) {
  emu::Counters c;
  emu::LaunchConfig cfg;
  cfg.kernel_name = "counted";
  cfg.grid = emu::dim3(blocks);
  cfg.block = emu::dim3(threads);
  cfg.shared_bytes = smem;
  cfg.counters = &c;
  emu::launch(cfg, body);
  return c;
}

const float* shared_floats() { return reinterpret_cast<const float*>(shared_scratch()); }

// One ld.shared.f32 per lane at word `word(lane)`.
emu::CounterSet shared_pattern(unsigned (*word)(unsigned)) {
  return count(32, 4096, [word] { (void)smem_load(shared_floats() + word(threadIdx.x)); }).total;
}

TEST(EmuCounters, SharedLoadWavefrontsFollowBankConflicts) {
  const auto free = shared_pattern([](unsigned l) { return l; });
  EXPECT_EQ(free.shared_loads, 1u);
  EXPECT_EQ(free.shared_load_wavefronts, 1u);
  EXPECT_EQ(shared_pattern([](unsigned l) { return 2 * l; }).shared_load_wavefronts, 2u);
  EXPECT_EQ(shared_pattern([](unsigned l) { return 4 * l; }).shared_load_wavefronts, 4u);
  EXPECT_EQ(shared_pattern([](unsigned l) { return 32 * l; }).shared_load_wavefronts, 32u);
  EXPECT_EQ(shared_pattern([](unsigned) { return 5u; }).shared_load_wavefronts, 1u)
      << "broadcast";
  // Two lanes per word of a conflict-free pattern: still one wavefront.
  EXPECT_EQ(shared_pattern([](unsigned l) { return l / 2; }).shared_load_wavefronts, 1u);
}

TEST(EmuCounters, WideSharedStoresCostTheirBytes) {
  struct alignas(16) V4 { float x[4]; };
  const auto c = count(32, 4096, [] {
    V4* s = reinterpret_cast<V4*>(shared_scratch());
    smem_store(s + threadIdx.x, V4{});        // 512 contiguous bytes: 4 wavefronts
    smem_store(s + 8 * threadIdx.x, V4{});    // every lane in banks 0-3: 32
  }).total;
  EXPECT_EQ(c.shared_stores, 2u);
  EXPECT_EQ(c.shared_store_wavefronts, 4u + 32u);
  EXPECT_EQ(c.shared_loads, 0u);
}

TEST(EmuCounters, LdmatrixX4IsFourPhases) {
  auto run = [](unsigned row_stride) {
    return count(32, 32 * 128, [row_stride] {
      uint32_t d[4];
      loom::device::ldmatrix_x4(d, shared_scratch() + row_stride * threadIdx.x);
    }).total;
  };
  const auto free = run(16); // each phase: 8 rows in 128 contiguous bytes
  EXPECT_EQ(free.ldmatrix, 1u);
  EXPECT_EQ(free.ldmatrix_wavefronts, 4u);
  EXPECT_EQ(run(128).ldmatrix_wavefronts, 4u * 8u) << "8 rows in one bank group: 8-way";
  EXPECT_EQ(run(64).ldmatrix_wavefronts, 4u * 4u) << "rows 64 bytes apart: 4-way";
}

TEST(EmuCounters, OneMmaPerWarp) {
  const auto c = count(64, 0, [] {
    float d[4] = {};
    const uint32_t a[4] = {}, b[2] = {};
    loom::device::mma_m16n8k16_f16(d, a, b, d);
    loom::device::mma_m16n8k16_bf16(d, a, b, d);
    loom::device::mma_m16n8k16_bf16(d, a, b, d);
  }).total;
  EXPECT_EQ(c.mma.at("mma.m16n8k16.f32.f16"), 2u);
  EXPECT_EQ(c.mma.at("mma.m16n8k16.f32.bf16"), 4u);
  EXPECT_EQ(c.mma_total(), 6u);
}

alignas(128) unsigned char g_bytes[64 * 1024];

TEST(EmuCounters, CpAsyncChunksBytesAndSectors) {
  const auto c = count(64, 64 * 16 * 3, [] {
    unsigned char* s = shared_scratch();
    const unsigned t = threadIdx.x;
    for (int i = 0; i < 3; ++i) // 3 chunks per thread, consecutive across the block
      loom::device::cp_async_16(s + 16 * (64 * i + t), g_bytes + 16 * (64 * i + t),
                                t == 63 ? 4 : 16);
    loom::device::cp_async_commit();
    loom::device::cp_async_wait<0>();
  }).total;
  EXPECT_EQ(c.cp_async_chunks, 64u * 3u);
  EXPECT_EQ(c.cp_async_bytes, (64u * 3u - 3u) * 16u + 3u * 4u);
  EXPECT_EQ(c.cp_async_requests, 2u * 3u); // 2 warps x 3
  EXPECT_EQ(c.cp_async_sectors, 2u * 3u * 16u); // 512 bytes per request
}

TEST(EmuCounters, GlobalSectorsOfCoalescedAndStridedLoads) {
  const float* g = reinterpret_cast<const float*>(g_bytes);
  const auto c = count(32, 0, [g] {
    const unsigned t = threadIdx.x;
    (void)global_load(g + t, true, 0.0f);        // 128 contiguous bytes: 4 sectors
    (void)global_load(g + 32 * t, true, 0.0f);   // one sector per lane: 32
    (void)global_load(g + t, t < 8, 0.0f);       // 8 lanes on: 1 sector
    (void)global_load(g + t, false, 0.0f);       // all off: no request
  }).total;
  EXPECT_EQ(c.global_loads, 3u);
  EXPECT_EQ(c.global_load_sectors, 4u + 32u + 1u);
  float* out = reinterpret_cast<float*>(g_bytes + 4096); // 128-byte aligned
  const auto s = count(32, 0, [&] {
    global_store(out + 2 * threadIdx.x, true, 1.0f); // 256 bytes: 8 sectors
  }).total;
  EXPECT_EQ(s.global_stores, 1u);
  EXPECT_EQ(s.global_store_sectors, 8u);
}

TEST(EmuCounters, BarriersShufflesAndEx2) {
  const auto c = count(64, 0, [] {
    bar_sync();
    (void)loom::device::shfl_xor(1u, 1);
    for (int i = 0; i < 3; ++i) (void)loom::device::ex2_approx((float)i);
    bar_sync();
  }, /*blocks=*/2).total;
  EXPECT_EQ(c.barriers, 2u * 2u * 2u); // 2 barriers x 2 warps x 2 blocks
  EXPECT_EQ(c.shuffles, 2u * 2u);
  EXPECT_EQ(c.ex2, 3u * 2u * 2u);
}

TEST(EmuCounters, TileOpsMatchAcrossLanesByCallSite) {
  // A masked tile load: the tail lanes are inactive in the same requests.
  using S = Shape<128>; // one element per thread of 128
  const float* src = reinterpret_cast<const float*>(g_bytes); // 128-byte aligned
  const auto c = count(kThreads, 0, [&] {
    const auto t = arange<Tile<int32_t, S>, 0>();
    (void)load(src, t, cmp_lt(t, splat<Tile<int32_t, S>>(100)));
  }).total;
  // Warps 0-2 load 128 bytes each (4 sectors); warp 3's lanes 96..99 one.
  static_assert(kThreads == 128, "one element per thread");
  EXPECT_EQ(c.global_loads, 4u);
  EXPECT_EQ(c.global_load_sectors, 3u * 4u + 1u);
}

TEST(EmuCounters, MarkedLoopsCountPerIteration) {
  const auto c = count(64, 4096, [] {
    LOOM_SITE(1);
    (void)smem_load(shared_floats() + threadIdx.x);
    for (int i = 0; i < 3; ++i) {
      LOOM_LOOP_ITER(1);
      LOOM_SITE(2);
      (void)smem_load(shared_floats() + 2 * threadIdx.x); // 2-way
      bar_sync();
    }
    LOOM_LOOP_END(1);
  }, /*blocks=*/2);
  EXPECT_EQ(c.blocks, 2u);
  EXPECT_EQ(c.total.shared_loads, 2u * 2u * 4u); // 2 blocks x 2 warps x (1 + 3)
  ASSERT_EQ(c.loops.size(), 1u);
  EXPECT_EQ(c.loops[0].id, 1u);
  EXPECT_EQ(c.loops[0].iterations, 6u);
  EXPECT_EQ(c.loops[0].counts.shared_loads, 2u * 2u * 3u);
  EXPECT_EQ(c.loops[0].counts.shared_load_wavefronts, 2u * 2u * 3u * 2u);
  EXPECT_EQ(c.loops[0].counts.barriers, 2u * 2u * 3u);
  const std::string text = c.to_string();
  EXPECT_NE(text.find("loop 1, 6 iter."), std::string::npos) << text;
  EXPECT_NE(text.find("per CTA-iter."), std::string::npos) << text;
}

TEST(EmuCounters, CostRules) {
  uintptr_t a[32];
  uint32_t n[32];
  for (unsigned l = 0; l < 32; ++l) a[l] = 4 * l, n[l] = 4;
  EXPECT_EQ(emu::shared_wavefronts(a, n, 0xffffffffu), 1u);
  EXPECT_EQ(emu::shared_wavefronts(a, n, 0), 0u);
  EXPECT_EQ(emu::global_sectors(a, n, 0xffffffffu), 4u);
  for (unsigned l = 0; l < 32; ++l) a[l] = 30 + 4 * l; // misaligned: straddles 5 sectors
  EXPECT_EQ(emu::global_sectors(a, n, 0xffffffffu), 5u);
}

} // namespace
