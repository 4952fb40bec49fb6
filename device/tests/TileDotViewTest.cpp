// dot of operands read straight from global memory (GlobalBlock views, the
// CUDA backend's deferred block_loads) and of pipeline slots filled by
// async_copy (SharedBlock), in every pairing of row-major and column-major
// (transposed, as K^T in attention) A and B, against a float64 reference:
// full and ragged bounds (zero-filled or `other` past them), 16-byte
// aligned views (cp.async chunks) and views that take the element-wise
// fallback (unaligned base, non-unit stride along the contiguous
// dimension). Every launch checks its global reads against the exact extent
// of each view and runs the shared-memory race detector.
#include "TileTestUtil.h"

namespace {
using namespace loom::tile;
using namespace loom::tile::test;
using loom::device::emu::GlobalBuffer;

// How one operand view addresses and bounds global memory.
struct ViewCase {
  int rows, cols;     // bounds; below the tile's shape the tail reads as `other`
  int misalign = 0;   // elements added to the base: not 16-byte aligned
  int unit = 1;       // stride along the contiguous dimension (1: cp.async chunks)
  double other = 0.0; // nonzero: copied element by element
};

// An R x C operand view: rows (or, column-major, columns) `unit` apart
// within a line, lines padded apart so that aligned lines start on 16
// bytes. The buffer ends right after the last element inside the bounds,
// so a read past them is reported by the emulator.
template <class T, int R, int C, bool kColumnMajor>
struct ViewData {
  using View = GlobalBlock<T, Shape<R, C>, kColumnMajor>;
  int64_t base, strides[2];
  int32_t bounds[2];
  T other;
  std::vector<T> mem;

  ViewData(std::mt19937& rng, const ViewCase& c)
      : base(8 + c.misalign), bounds{c.rows, c.cols}, other(from_float<T>((float)c.other)) {
    const int64_t line = (kColumnMajor ? R : C) * c.unit + 8;
    strides[0] = kColumnMajor ? c.unit : line;
    strides[1] = kColumnMajor ? line : c.unit;
    mem = random_values<T>(rng, base + (c.rows - 1) * strides[0] + (c.cols - 1) * strides[1] + 1,
                           -2, 2);
  }
  double at(int i, int j) const {
    return i < bounds[0] && j < bounds[1] ? as_double(mem[base + i * strides[0] + j * strides[1]])
                                          : as_double(other);
  }
  View view() const {
    return block_view<View>(mem.data(), other, base, strides[0], strides[1], bounds[0],
                            bounds[1]);
  }
  // Issues the copies of the view into pipeline slot 0 at kOffset.
  template <int kOffset>
  void copy_to_slot() const {
    async_copy<SharedBlock<T, Shape<R, C>, kColumnMajor>, kOffset, 1>(
        0, mem.data(), other, base, strides[0], strides[1], bounds[0], bounds[1]);
  }
  template <int kOffset>
  static SharedBlock<T, Shape<R, C>, kColumnMajor> slot() {
    return shared_slot<SharedBlock<T, Shape<R, C>, kColumnMajor>, kOffset, 1>(0);
  }
  GlobalBuffer buffer(const char* name) const { return {mem.data(), mem.size() * sizeof(T), name}; }
};

// acc + A B with A (M x K) and B (K x N) views of the given layouts, into a
// TileR accumulator (Blocked: dot_mma or dot_fma; Mma: dot_mma_acc). With
// kSlots both operands are first copied into pipeline slots (at the start
// of shared memory, the dot's scratch after them) and read in place.
template <class T, int M, int N, int K, bool kColA, bool kColB, class L = Blocked,
          bool kSlots = false>
void check_dot_views(std::mt19937& rng, const ViewCase& ca, const ViewCase& cb) {
  SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + " A " +
               (kColA ? "column" : "row") + "-major " + std::to_string(ca.rows) + "x" +
               std::to_string(ca.cols) + " misalign " + std::to_string(ca.misalign) + " unit " +
               std::to_string(ca.unit) + ", B " + (kColB ? "column" : "row") + "-major " +
               std::to_string(cb.rows) + "x" + std::to_string(cb.cols) + " misalign " +
               std::to_string(cb.misalign) + " unit " + std::to_string(cb.unit) +
               (kSlots ? ", slots" : ""));
  using TileR = Tile<float, Shape<M, N>, L>;
  using TileC = Tile<float, Shape<M, N>>;
  const ViewData<T, M, K, kColA> A(rng, ca);
  const ViewData<T, K, N, kColB> B(rng, cb);
  const std::vector<float> C = random_values<float>(rng, M * N, -2, 2);
  std::vector<float> D(M * N);
  constexpr int kSlotB = (int)round16(M * K * sizeof(T)); // slot A at 0
  constexpr int kSlotBytes = kSlots ? kSlotB + (int)round16(K * N * sizeof(T)) : 0;
  const std::size_t scratch = kSlotBytes + (M * K + K * N) * sizeof(T) + M * N * sizeof(float);
  run_tile_block(
      scratch,
      [&] {
        unsigned char* smem = shared_scratch<kSlotBytes>();
        const TileR acc = convert_layout<TileR>(load_all<float, Shape<M, N>>(C.data()), smem);
        TileR d;
        if constexpr (kSlots) {
          A.template copy_to_slot<0>();
          B.template copy_to_slot<kSlotB>();
          async_commit();
          async_wait<0>(); // the dot's barrier makes the slots visible to the block
          d = dot<TileR>(A.template slot<0>(), B.template slot<kSlotB>(), acc, smem);
        } else {
          d = dot<TileR>(A.view(), B.view(), acc, smem);
        }
        store_all(D.data(), convert_layout<TileC>(d, smem));
      },
      "tile_dot_views",
      {A.buffer("A"), B.buffer("B"), {C.data(), C.size() * sizeof(float), "C"},
       {D.data(), D.size() * sizeof(float), "D"}},
      /*detect_races=*/true);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = C[m * N + n], mag = std::fabs(s);
      for (int k = 0; k < K; ++k) {
        const double p = A.at(m, k) * B.at(k, n);
        s += p;
        mag += std::fabs(p);
      }
      ASSERT_NEAR(D[m * N + n], s, 1e-5 * mag + 1e-30) << "(" << m << ", " << n << ")";
    }
}

// Every case for one pairing of layouts on the tensor-core path.
template <class T, bool kColA, bool kColB>
void check_layout_pair(std::mt19937& rng) {
  constexpr int M = 32, N = 24, K = 48;
  // Whole tiles: every chunk one cp.async.
  check_dot_views<T, M, N, K, kColA, kColB>(rng, {M, K}, {K, N});
  // Ragged bounds: partial chunks zero-filled by cp.async, whole ones skipped.
  check_dot_views<T, M, N, K, kColA, kColB>(rng, {27, 37}, {37, 19});
  check_dot_views<T, M, N, K, kColA, kColB>(rng, {5, 9}, {9, 2});
  // Element-wise fallbacks: unaligned base, non-unit stride, nonzero other.
  check_dot_views<T, M, N, K, kColA, kColB>(rng, {27, 37, 1}, {37, 19, 3});
  check_dot_views<T, M, N, K, kColA, kColB>(rng, {M, K, 0, 2}, {K, 21, 0, 3});
  check_dot_views<T, M, N, K, kColA, kColB>(rng, {30, 40, 0, 1, 0.5}, {40, 23, 0, 1, -1.5});
  // An Mma accumulator (dot_mma_acc: paired B fragments when each warp has
  // an even number of 8-column atoms, single ones otherwise).
  using MmaN = Mma<1, kWarps>;
  check_dot_views<T, 32, 16 * kWarps, 32, kColA, kColB, MmaN>(rng, {29, 30}, {30, 16 * kWarps - 3});
  check_dot_views<T, 32, 8 * kWarps, 32, kColA, kColB, MmaN>(rng, {32, 32, 1}, {32, 8 * kWarps});
  // Pipeline slots in the same layouts, read in place.
  check_dot_views<T, M, N, K, kColA, kColB, Blocked, true>(rng, {27, 37}, {37, 19});
  check_dot_views<T, 32, 16 * kWarps, 32, kColA, kColB, MmaN, true>(rng, {32, 32}, {31, 5});
}

template <class T>
void check_every_layout_pair() {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_layout_pair<T, false, false>(rng);
  check_layout_pair<T, false, true>(rng);
  check_layout_pair<T, true, false>(rng);
  check_layout_pair<T, true, true>(rng);
}

TEST(TileDotViews, F16EveryLayoutPair) { check_every_layout_pair<half_t>(); }
TEST(TileDotViews, Bf16EveryLayoutPair) { check_every_layout_pair<bf16_t>(); }

// Shapes off the tensor-core grid and f32 take the FMA path, which reads a
// column-major view in its staged (transposed) layout: chunked where its
// columns are whole chunks (A: 24 rows), element-wise otherwise (B: 20).
TEST(TileDotViews, FmaPathReadsColumnMajorViews) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_dot_views<bf16_t, 24, 12, 20, true, true>(rng, {23, 19}, {19, 11});
  check_dot_views<half_t, 24, 12, 20, true, false>(rng, {24, 20, 1}, {20, 12});
  check_dot_views<half_t, 24, 16, 20, false, true>(rng, {24, 20}, {17, 16, 0, 2});
  check_dot_views<float, 16, 8, 16, true, true>(rng, {13, 16}, {16, 7});
  check_dot_views<float, 7, 5, 9, false, true>(rng, {7, 9}, {8, 5});
}

// The staging itself: a column-major view lands transposed, each column
// one swizzled stored row, zero past the bounds.
TEST(TileDotViews, ColumnMajorViewIsStagedTransposed) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  constexpr int R = 32, C = 16;
  const ViewData<half_t, R, C, true> V(rng, {29, 13});
  std::vector<half_t> staged(R * C);
  run_tile_block(
      R * C * sizeof(half_t),
      [&] {
        auto* buf = reinterpret_cast<half_t*>(shared_scratch());
        detail::stage<detail::SwizzledIndex<R>>(buf, V.view());
        loom::device::bar_sync();
        for (int i = thread_rank(); i < R * C; i += kThreads) staged[i] = detail::smem_load(buf + i);
      },
      "tile_stage_column_major", {V.buffer("V")}, /*detect_races=*/true);
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j)
      ASSERT_EQ(f16v(staged[detail::Swizzle<R>::offset(j, i)]), V.at(i, j))
          << "(" << i << ", " << j << ")";
}

} // namespace
