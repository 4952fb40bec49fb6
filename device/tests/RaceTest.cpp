// The emulator's optional shared-memory race detector (LaunchConfig::
// detect_races / LOOM_EMU_RACE_CHECK): correct tile ops run clean; planted
// write-read, write-write and read-write races, a missing barrier between two
// tile ops sharing the scratch, and races through ldmatrix and cp.async are
// reported with both threads and the offset; with detection off nothing is.
#include "TestUtil.h"
#include "TileTestUtil.h"

#include <cstdlib>
#include <random>

namespace {
using namespace loom::tile;
using namespace loom::tile::test;
using loom::device::bar_sync;
namespace emu = loom::device::emu;
using loom::device::EmuError;
using loom::tile::detail::smem_load;
using loom::tile::detail::smem_store;

// The EmuError message of one block of `threads` threads, or "" if none.
std::string race_error(unsigned threads, std::size_t shared_bytes,
                       const std::function<void()>& body, bool detect = true) {
  emu::LaunchConfig c;
  c.kernel_name = "race";
  c.block = emu::dim3(threads);
  c.shared_bytes = shared_bytes;
  c.workers = 1;
  c.detect_races = detect;
  try {
    emu::launch(c, body);
  } catch (const EmuError& e) {
    return e.what();
  }
  return "";
}

int* shared_ints() { return reinterpret_cast<int*>(shared_scratch()); }

// Sets (or, with nullptr, removes) LOOM_EMU_RACE_CHECK for its lifetime.
class RaceCheckEnv {
public:
  explicit RaceCheckEnv(const char* value) {
    const char* old = std::getenv(kName);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value) setenv(kName, value, 1);
    else unsetenv(kName);
  }
  ~RaceCheckEnv() {
    if (had_) setenv(kName, old_.c_str(), 1);
    else unsetenv(kName);
  }

private:
  static constexpr const char* kName = "LOOM_EMU_RACE_CHECK";
  bool had_;
  std::string old_;
};

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

// ---- planted races on plain instrumented accesses ----------------------------------

TEST(EmuRace, WriteThenReadByAnotherThreadIsReported) {
  const std::string err = race_error(64, 256, [] {
    int* s = shared_ints();
    smem_store(s + threadIdx.x, (int)threadIdx.x);
    if (threadIdx.x == 5) (void)smem_load(s + 3); // no bar_sync since thread 3 wrote it
  });
  EXPECT_HAS(err, "kernel 'race' block (0,0,0): thread (5,0,0): shared-memory race: thread "
                  "(5,0,0) reads bytes [offset 12, +4) written by thread (3,0,0) since the "
                  "last barrier");
  EXPECT_HAS(err, "write-read race");
}

TEST(EmuRace, WriteWriteIsReported) {
  const std::string err = race_error(32, 64, [] {
    if (threadIdx.x == 2 || threadIdx.x == 9) smem_store(shared_ints() + 4, (int)threadIdx.x);
  });
  EXPECT_HAS(err, "shared-memory race: thread (9,0,0) writes bytes [offset 16, +4) written by "
                  "thread (2,0,0) since the last barrier");
  EXPECT_HAS(err, "write-write race");
}

TEST(EmuRace, ReadThenWriteByAnotherThreadIsReported) {
  const std::string err = race_error(32, 64, [] {
    int* s = shared_ints();
    if (threadIdx.x == 0) (void)smem_load(s + 8);
    if (threadIdx.x == 7) smem_store(s + 8, 1);
  });
  EXPECT_HAS(err, "shared-memory race: thread (7,0,0) writes bytes [offset 32, +4) read by "
                  "thread (0,0,0) since the last barrier");
  EXPECT_HAS(err, "read-write race");
}

TEST(EmuRace, ReadThenWriteIsFoundAmongManyReaders) {
  // Threads 0..31 read (thread 0 first); after a shuffle (which lets every
  // lane run up to it) thread 0 writes: another reader must be named.
  const std::string err = race_error(32, 64, [] {
    int* s = shared_ints();
    (void)smem_load(s + 1);
    (void)loom::device::shfl_sync_idx(0xffffffffu, 0, 0, 31);
    if (threadIdx.x == 0) smem_store(s + 1, 0);
  });
  EXPECT_HAS(err, "thread (0,0,0) writes bytes [offset 4, +4) read by thread (1,0,0)");
}

TEST(EmuRace, BarriersOrderAccessesAndOwnAccessesNeverRace) {
  std::vector<int> out(256);
  const std::string err = race_error(256, 256 * sizeof(int), [&] {
    int* s = shared_ints();
    const unsigned t = threadIdx.x;
    for (int round = 0; round < 3; ++round) {
      smem_store(s + t, (int)t * 10 + round);
      (void)smem_load(s + t); // own write: fine
      smem_store(s + t, (int)t * 10 + round);
      __syncthreads();
      out[t] = smem_load(s + 255 - t);
      (void)smem_load(s + 7); // many readers of one byte: fine
      bar_sync();
    }
  });
  EXPECT_EQ(err, "");
  for (int t = 0; t < 256; ++t) EXPECT_EQ(out[t], (255 - t) * 10 + 2);
}

// ---- off by default; the environment switch -------------------------------------

TEST(EmuRace, OffMeansNoReport) {
  const RaceCheckEnv env(nullptr);
  const std::string err = race_error(64, 256, [] {
    int* s = shared_ints();
    smem_store(s + threadIdx.x, (int)threadIdx.x);
    smem_store(s, 1);
    if (threadIdx.x == 5) (void)smem_load(s + 3);
  }, /*detect=*/false);
  EXPECT_EQ(err, "");
  EXPECT_EQ(emu::instrumented_launches.load(), 0u);
}

TEST(EmuRace, EnvironmentTurnsItOn) {
  auto racy = [] {
    if (threadIdx.x == 2 || threadIdx.x == 9) smem_store(shared_ints() + 4, (int)threadIdx.x);
  };
  {
    const RaceCheckEnv env("0");
    EXPECT_EQ(race_error(32, 64, racy, /*detect=*/false), "");
  }
  const RaceCheckEnv env("1");
  const std::string err = race_error(32, 64, racy, /*detect=*/false);
  EXPECT_HAS(err, "thread (9,0,0) writes bytes [offset 16, +4) written by thread (2,0,0)");
  EXPECT_EQ(emu::instrumented_launches.load(), 0u) << "the count is restored after a failure";
}

// ---- primitives: ldmatrix reads, cp.async writes -----------------------------------

TEST(EmuRace, LdmatrixReadingAnotherLanesUnsyncedRowIsReported) {
  const std::string err = race_error(32, 32 * 16, [] {
    auto* s = reinterpret_cast<uint32_t*>(shared_scratch());
    const unsigned l = threadIdx.x;
    for (int i = 0; i < 4; ++i) smem_store(s + 4 * l + i, l);
    uint32_t d[4];
    // Lane l supplies row (l+1)%32, written by lane l+1 with no barrier.
    loom::device::ldmatrix_x4(d, s + 4 * ((l + 1) % 32));
  });
  EXPECT_HAS(err, "shared-memory race: thread (0,0,0) reads bytes [offset 16, +16) written by "
                  "thread (1,0,0) since the last barrier (write-read race, at ldmatrix.x4");
}

TEST(EmuRace, LdmatrixAfterBarrierIsClean) {
  const std::string err = race_error(32, 32 * 16, [] {
    auto* s = reinterpret_cast<uint32_t*>(shared_scratch());
    const unsigned l = threadIdx.x;
    for (int i = 0; i < 4; ++i) smem_store(s + 4 * l + i, l);
    bar_sync();
    uint32_t d[4];
    loom::device::ldmatrix_x4(d, s + 4 * ((l + 1) % 32));
  });
  EXPECT_EQ(err, "");
}

alignas(16) unsigned char g_src[32 * 16];

TEST(EmuRace, CpAsyncIsAWriteFromItsIssue) {
  auto body = [](bool sync) {
    return [sync] {
      auto* s = shared_scratch();
      const unsigned l = threadIdx.x;
      loom::device::cp_async_16(s + 16 * l, g_src + 16 * l, 16);
      loom::device::cp_async_commit();
      loom::device::cp_async_wait<0>();
      if (sync) bar_sync();
      (void)smem_load(reinterpret_cast<const int*>(s + 16 * ((l + 1) % 32)));
    };
  };
  EXPECT_EQ(race_error(32, 32 * 16, body(true)), "");
  // Lane 0 reads lane 1's chunk before lane 1 issued its copy: the copy
  // may land as soon as it is issued, over bytes lane 0 read.
  const std::string err = race_error(32, 32 * 16, body(false));
  EXPECT_HAS(err, "thread (1,0,0) writes bytes [offset 16, +16) read by thread (0,0,0) since "
                  "the last barrier (read-write race, at cp.async;");
}

// ---- the tile layer ---------------------------------------------------------------

emu::LaunchConfig tile_config(std::size_t scratch) {
  emu::LaunchConfig c;
  c.kernel_name = "tile_race";
  c.block = emu::dim3(kThreads);
  c.shared_bytes = round16(scratch);
  c.workers = 1;
  c.detect_races = true;
  return c;
}

TEST(EmuRace, TileOpsRunClean) {
  constexpr int M = 32, N = 16, K = 32;
  std::mt19937 rng(fresh_seed());
  const auto a16 = random_values<half_t>(rng, M * K, -2, 2);
  const auto b16 = random_values<half_t>(rng, K * N, -2, 2);
  const auto af = random_values<float>(rng, 7 * 9, -2, 2);
  const auto bf = random_values<float>(rng, 9 * 5, -2, 2);
  std::vector<float> d16(M * N), dfma(7 * 5), rows(M), bc(M * N);
  float total = 0;
  const std::size_t scratch = (M * K + K * N) * 2 + M * N * 4;
  emu::launch(tile_config(scratch), [&] {
    unsigned char* smem = shared_scratch();
    using TF = Tile<float, Shape<M, N>>;
    // Consecutive ops reuse the scratch: each leaves the block synchronized.
    const TF c = dot<TF>(load_all<half_t, Shape<M, K>>(a16.data()),
                         load_all<half_t, Shape<K, N>>(b16.data()), splat<TF>(0.0f), smem);
    store_all(d16.data(), c);
    using TG = Tile<float, Shape<7, 5>>;
    store_all(dfma.data(), dot<TG>(load_all<float, Shape<7, 9>>(af.data()),
                                   load_all<float, Shape<9, 5>>(bf.data()), splat<TG>(1.0f),
                                   smem));
    auto r = reduce_sum<Tile<float, Shape<M>>, 1>(c, smem);
    store_all(rows.data(), r);
    store_all(bc.data(), broadcast<TF>(reshape<Tile<float, Shape<M, 1>>>(r), smem));
    auto all = reduce_max<Tile<float, Shape<>>, 0>(r, smem);
    const float x = extract(all, smem);
    if (threadIdx.x == 0) total = x;
  });
  float mx = -INFINITY;
  for (int m = 0; m < M; ++m) {
    double s = 0;
    for (int n = 0; n < N; ++n) {
      double e = 0;
      for (int k = 0; k < K; ++k) e += f16v(a16[m * K + k]) * f16v(b16[k * N + n]);
      EXPECT_NEAR(d16[m * N + n], e, 1e-3);
      s += d16[m * N + n];
    }
    EXPECT_NEAR(rows[m], s, 1e-3);
    for (int n = 0; n < N; ++n) EXPECT_EQ(bc[m * N + n], rows[m]);
    mx = std::max(mx, rows[m]);
  }
  EXPECT_EQ(total, mx);
  for (int m = 0; m < 7; ++m)
    for (int n = 0; n < 5; ++n) {
      double e = 1;
      for (int k = 0; k < 9; ++k) e += (double)af[m * 9 + k] * bf[k * 5 + n];
      EXPECT_NEAR(dfma[m * 5 + n], e, 1e-4);
    }
}

TEST(EmuRace, MissingBarrierBetweenTileOpsSharingScratchIsReported) {
  using S = Shape<4, 32>;
  std::vector<float> v(S::size, 1.0f);
  auto run = [&](bool with_barrier) -> std::string {
    try {
      emu::launch(tile_config(S::size * 4), [&] {
        unsigned char* smem = shared_scratch();
        auto t = load_all<float, S>(v.data());
        using R = Tile<float, Shape<4>>;
        (void)detail::reduce_unsynced<R, 1, detail::SumOp>(t, smem);
        if (with_barrier) bar_sync(); // what reduce_sum adds
        (void)detail::reduce_unsynced<R, 1, detail::SumOp>(t, smem);
        bar_sync();
      });
    } catch (const EmuError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(run(true), "");
  // Thread 0 has folded row 0 (bytes 0..127) and moved on; thread 1 stages its
  // element of the second reduction into bytes thread 0 read.
  const std::string err = run(false);
  EXPECT_HAS(err, "kernel 'tile_race' block (0,0,0): thread (1,0,0): shared-memory race: "
                  "thread (1,0,0) writes bytes [offset 4, +4) read by thread (0,0,0) since the "
                  "last barrier");
}

} // namespace
