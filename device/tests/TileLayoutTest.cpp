// The register layouts of the tile layer (tile/layout.h) on the emulator:
// the Mma layout is the PTX C fragment, every element has one owner, and
// elementwise ops, row reductions, broadcasts, convert_layout and dot into
// an Mma accumulator agree with a float64 or exact host reference. Built for
// 1, 4 and 8 warps (with the race detector on for 1 and 8).
#include "TileTestUtil.h"

#include <array>

namespace {
using namespace loom::tile;
using namespace loom::tile::test;

// Two warp grids per block size: all warps along M, and a WM x WN grid with
// WN > 1 where there are several warps (rows shared between warps).
using MmaM = Mma<kWarps, 1>;
constexpr int kWm = kWarps > 1 ? kWarps / 2 : 1;
using MmaMN = Mma<kWm, kWarps / kWm>;
template <class L>
struct RowsOf;
template <int WM, int WN>
struct RowsOf<Mma<WM, WN>> {
  using type = MmaRows<WM, WN>;
};
template <class L>
struct ColsOf;
template <int WM, int WN>
struct ColsOf<Mma<WM, WN>> {
  using type = MmaCols<WM, WN>;
};

// Each thread's slots of layout L for shape S: index, valid, owner.
template <class L, class S>
std::vector<std::array<int, 3>> slot_map() {
  constexpr int n = L::template slots<S>();
  std::vector<std::array<int, 3>> map(kThreads * n);
  run_tile_block(0, [&] {
    for (int k = 0; k < n; ++k)
      map[threadIdx.x * n + k] = {L::template index<S>(k), L::template valid<S>(k),
                                  L::template owner<S>(k)};
  });
  return map;
}

template <class L, class S>
void check_owned_once() {
  std::vector<int> owners(S::size, 0), holders(S::size, 0);
  for (auto [i, valid, owner] : slot_map<L, S>()) {
    if (!valid) continue;
    ASSERT_TRUE(i >= 0 && i < S::size) << i;
    ++holders[i];
    owners[i] += owner;
  }
  for (int i = 0; i < S::size; ++i) {
    EXPECT_EQ(owners[i], 1) << i;
    EXPECT_GE(holders[i], 1) << i;
  }
}

TEST(TileLayout, EveryElementHasOneOwner) {
  check_owned_once<Blocked, Shape<97>>();
  check_owned_once<Blocked, Shape<48, 40>>();
  check_owned_once<MmaM, Shape<16 * kWarps, 24>>();
  check_owned_once<MmaMN, Shape<64, 32>>();
  check_owned_once<MmaRows<kWarps, 1>, Shape<32 * kWarps>>();
  check_owned_once<RowsOf<MmaMN>::type, Shape<64, 1>>();
  check_owned_once<MmaCols<kWarps, 1>, Shape<24>>();
  check_owned_once<ColsOf<MmaMN>::type, Shape<1, 32>>();
}

// A column index and a key-bound mask built in MmaCols (arange, compare,
// expand to [1, N]) and broadcast into an Mma tile without shared memory:
// the masking of attention's S by key position. Every element must equal
// the host's select, and the broadcast must not touch shared memory (the
// scratch pointer is null).
template <class L, int M, int N>
void check_column_mask_broadcast(std::mt19937& rng) {
  using S = Shape<M, N>;
  using C = typename ColsOf<L>::type;
  using TM = Tile<float, S, L>;
  std::vector<float> x = random_values<float>(rng, M * N, -8, 8), got(M * N, NAN);
  std::vector<int32_t> cols(N, -1);
  const int bound = N / 2 + 3;
  run_tile_block(M * N * sizeof(float), [&] {
    unsigned char* smem = shared_scratch();
    auto t = convert_layout<TM>(load_all<float, S>(x.data()), smem);
    auto c = arange<Tile<int32_t, Shape<N>, C>, 5>();
    auto keep = cmp_lt(c, splat<Tile<int32_t, Shape<N>, C>>(bound + 5));
    auto keep2 = reshape<Tile<bool, Shape<1, N>, C>>(keep);
    auto masked = select(broadcast<Tile<bool, S, L>>(keep2, nullptr), t,
                         splat<TM>(-INFINITY));
    store_all(got.data(), convert_layout<Tile<float, S>>(masked, smem));
    store_all(cols.data(), convert_layout<Tile<int32_t, Shape<N>>>(c, smem));
  });
  for (int n = 0; n < N; ++n) EXPECT_EQ(cols[n], n + 5) << n;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n)
      EXPECT_EQ(got[m * N + n], n < bound ? x[m * N + n] : -INFINITY) << m << ", " << n;
}

TEST(TileLayout, MmaColumnMaskBroadcastsPerThread) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_column_mask_broadcast<MmaM, 16 * kWarps, 24>(rng);
  check_column_mask_broadcast<MmaMN, 64, 32>(rng);
}

// PTX_FACTS §1: lane (g, t) holds c0 = (g, 2t), c1 = (g, 2t+1), c2 = (g+8, 2t),
// c3 = (g+8, 2t+1) of each 16x8 atom; with one warp the atoms are row-major.
TEST(TileLayout, MmaIsTheCFragment) {
  using S = Shape<32, 16 * kWarps>;
  using L = Mma<1, kWarps>;
  const auto map = slot_map<L, S>();
  constexpr int n = L::slots<S>(), an = L::atoms_n<S>();
  for (int tid = 0; tid < kThreads; ++tid) {
    const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    for (int k = 0; k < n; ++k) {
      const int atom = k / 4, e = k % 4;
      const int row = atom / an * 16 + g + 8 * (e / 2);
      const int col = (warp * an + atom % an) * 8 + 2 * t + e % 2;
      EXPECT_EQ(map[tid * n + k][0], row * S::dim(1) + col) << tid << " " << k;
    }
  }
}

// Elementwise ops in the Mma layout, then back: the same bits as in Blocked.
template <class L, int M, int N>
void check_elementwise_round_trip(std::mt19937& rng) {
  using S = Shape<M, N>;
  using TB = Tile<float, S>;
  using TM = Tile<float, S, L>;
  const std::vector<float> x = random_values<float>(rng, M * N), y = random_values<float>(rng, M * N);
  std::vector<float> want(M * N), got(M * N), round(M * N);
  std::vector<half_t> got16(M * N), want16(M * N);
  run_tile_block(M * N * sizeof(float), [&] {
    unsigned char* smem = shared_scratch();
    auto a = load_all<float, S>(x.data()), b = load_all<float, S>(y.data());
    auto f = [&](auto p, auto q) {
      auto s = add(mul(p, q), exp2(p));
      return select(cmp_gt(s, q), s, maximum(p, q));
    };
    store_all(want.data(), f(a, b));
    store_all(want16.data(), cast<half_t>(f(a, b)));
    auto am = convert_layout<TM>(a, smem), bm = convert_layout<TM>(b, smem);
    store_all(round.data(), convert_layout<TB>(am, smem));
    store_all(got.data(), convert_layout<TB>(f(am, bm), smem));
    store_all(got16.data(), convert_layout<Tile<half_t, S>>(cast<half_t>(f(am, bm)), smem));
  });
  for (int i = 0; i < M * N; ++i) {
    ASSERT_TRUE(same_bits(round[i], x[i])) << i;
    ASSERT_TRUE(same_bits(got[i], want[i])) << i;
    ASSERT_TRUE(same_bits(got16[i], want16[i])) << i;
  }
}

TEST(TileLayout, MmaElementwiseAndConvertRoundTrip) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_elementwise_round_trip<MmaM, 16 * kWarps, 24>(rng);
  check_elementwise_round_trip<MmaMN, 64, 32>(rng);
}

// Row max and sum of an Mma tile into MmaRows, broadcast back (thread-local)
// and subtracted, the softmax step of attention; and the same rows reduced
// through shared memory into a Blocked vector.
template <class L, int M, int N>
void check_row_reduce_broadcast(std::mt19937& rng, bool with_nan) {
  using S = Shape<M, N>;
  using R = typename RowsOf<L>::type;
  using TM = Tile<float, S, L>;
  std::vector<float> x = random_values<float>(rng, M * N, -8, 8);
  if (with_nan) x[3 * N + 5] = NAN;
  std::vector<float> rmax(M), rsum(M), rsum_blocked(M), centered(M * N), colmax(N);
  std::vector<int32_t> rows(M);
  run_tile_block(M * N * sizeof(float), [&] {
    unsigned char* smem = shared_scratch();
    auto t = convert_layout<TM>(load_all<float, S>(x.data()), smem);
    auto mx = reduce_max<Tile<float, Shape<M>, R>, 1>(t, smem);
    auto sm = reduce_sum<Tile<float, Shape<M>, R>, 1>(t, smem);
    auto mx2 = reshape<Tile<float, Shape<M, 1>, R>>(mx);
    auto c = sub(t, broadcast<TM>(mx2, smem));
    store_all(rmax.data(), convert_layout<Tile<float, Shape<M>>>(mx, smem));
    store_all(rsum.data(), convert_layout<Tile<float, Shape<M>>>(sm, smem));
    store_all(rsum_blocked.data(), reduce_sum<Tile<float, Shape<M>>, 1>(t, smem));
    store_all(colmax.data(), reduce_max<Tile<float, Shape<N>>, 0>(t, smem));
    store_all(centered.data(), convert_layout<Tile<float, S>>(c, smem));
    store_all(rows.data(), convert_layout<Tile<int32_t, Shape<M>>>(
                               arange<Tile<int32_t, Shape<M>, R>, 3>(), smem));
  });
  for (int m = 0; m < M; ++m) {
    double mx = -INFINITY, s = 0, mag = 0;
    bool nan = false;
    for (int n = 0; n < N; ++n) {
      const float v = x[m * N + n];
      nan = nan || std::isnan(v);
      mx = std::max(mx, (double)v);
      s += v;
      mag += std::fabs(v);
    }
    EXPECT_EQ(rows[m], m + 3);
    if (nan) {
      EXPECT_TRUE(std::isnan(rmax[m]) && std::isnan(rsum[m])) << m;
      continue;
    }
    EXPECT_EQ(rmax[m], (float)mx) << m;
    EXPECT_NEAR(rsum[m], s, 1e-6 * mag) << m;
    EXPECT_NEAR(rsum_blocked[m], s, 1e-6 * mag) << m;
    for (int n = 0; n < N; ++n) EXPECT_EQ(centered[m * N + n], x[m * N + n] - (float)mx);
  }
  for (int n = 0; n < N; ++n) {
    float want = -INFINITY;
    for (int m = 0; m < M; ++m) want = maximum(want, x[m * N + n]);
    EXPECT_TRUE(same_bits(colmax[n], want) || (std::isnan(colmax[n]) && std::isnan(want))) << n;
  }
}

TEST(TileLayout, MmaRowReductionAndBroadcast) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_row_reduce_broadcast<MmaM, 16 * kWarps, 24>(rng, false);
  check_row_reduce_broadcast<MmaMN, 64, 32>(rng, false);
  check_row_reduce_broadcast<MmaMN, 64, 48>(rng, true);
}

// Two chained dots accumulating in an Mma tile (a loop-carried accumulator),
// the second with its A operand in the Mma layout (P of attention):
// D = (X Y) Z + X W, staged through swizzled shared memory.
template <class T, class L, int M, int N, int K>
void check_dot_mma_acc(std::mt19937& rng) {
  SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K));
  using TM = Tile<float, Shape<M, N>, L>;
  const std::vector<T> X = random_values<T>(rng, M * K, -2, 2), Y = random_values<T>(rng, K * N, -2, 2),
                       Z = random_values<T>(rng, N * N, -2, 2), W = random_values<T>(rng, K * N, -2, 2);
  std::vector<float> D(M * N);
  std::vector<T> P(M * N);
  run_tile_block(std::max((M * K + K * N) * sizeof(T), M * N * sizeof(float)), [&] {
    unsigned char* smem = shared_scratch();
    auto x = load_all<T, Shape<M, K>>(X.data());
    TM xy = dot<TM>(x, load_all<T, Shape<K, N>>(Y.data()), splat<TM>(0.0f), smem);
    auto p = cast<T>(xy);
    store_all(P.data(), convert_layout<Tile<T, Shape<M, N>>>(p, smem));
    TM acc = dot<TM>(x, load_all<T, Shape<K, N>>(W.data()), splat<TM>(0.0f), smem);
    acc = dot<TM>(p, load_all<T, Shape<N, N>>(Z.data()), acc, smem);
    store_all(D.data(), convert_layout<Tile<float, Shape<M, N>>>(acc, smem));
  });
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        const double q = as_double(X[m * K + k]) * as_double(W[k * N + n]);
        s += q;
        mag += std::fabs(q);
      }
      for (int j = 0; j < N; ++j) {
        const double q = as_double(P[m * N + j]) * as_double(Z[j * N + n]);
        s += q;
        mag += std::fabs(q);
      }
      ASSERT_NEAR(D[m * N + n], s, 1e-5 * mag + 1e-30) << "(" << m << ", " << n << ")";
    }
}

TEST(TileLayout, DotAccumulatesInMmaFragments) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_dot_mma_acc<half_t, MmaM, 16 * kWarps, 16, 32>(rng);
  check_dot_mma_acc<bf16_t, MmaMN, 64, 32, 48>(rng);
  check_dot_mma_acc<bf16_t, MmaMN, 64, 64, 16>(rng);
}

} // namespace
