// The generic tile layer (loom/device/tile.h) on the emulator: every op on
// random data (a fresh seed per run, printed on failure) against a float64 or
// exact host reference, on odd shapes with ragged and masked tails. Each op
// runs with exactly its documented scratch bytes, followed by a guard zone.
#include "TileTestUtil.h"

#include <array>
#include <cstdint>
#include <limits>

namespace {
using namespace loom::tile;
using namespace loom::tile::test;
using loom::device::bar_sync;

// ---- shapes, tiles, swizzle ------------------------------------------------------

static_assert(Shape<>::rank == 0 && Shape<>::size == 1);
static_assert(Shape<7>::rank == 1 && Shape<7>::size == 7 && Shape<7>::dim(0) == 7);
static_assert(Shape<3, 5, 7>::size == 105 && Shape<3, 5, 7>::dim(1) == 5 &&
              Shape<3, 5, 7>::stride(0) == 35 && Shape<3, 5, 7>::stride(2) == 1);
static_assert(is_same_v<remove_axis_t<Shape<3, 5, 7>, 1>, Shape<3, 7>>);
static_assert(is_same_v<remove_axis_t<Shape<3, 5, 7>, 0>, Shape<5, 7>>);
static_assert(is_same_v<remove_axis_t<Shape<97>, 0>, Shape<>>);
static_assert(Tile<float, Shape<>>::kPerThread == 1);
static_assert(Tile<float, Shape<48, 40>>::kPerThread == (1920 + kThreads - 1) / kThreads);
static_assert(Tile<half_t, Shape<97>>::kPerThread == (97 + kThreads - 1) / kThreads);
static_assert(sizeof(half_t) == 2 && sizeof(bf16_t) == 2);

TEST(TileSwizzle, PermutesRowsAndSpreadsLdmatrixPhasesOverAllBanks) {
  auto check = [](auto swz, int cols) {
    using Sw = decltype(swz);
    for (int r = 0; r < 32; ++r) {
      std::vector<int> seen(cols, 0);
      for (int c = 0; c < cols; ++c) {
        const int o = Sw::offset(r, c) - r * cols;
        ASSERT_TRUE(o >= 0 && o < cols) << cols;
        EXPECT_EQ(o % 8, c % 8);
        ++seen[o];
      }
      for (int s : seen) EXPECT_EQ(s, 1) << "cols " << cols << " row " << r;
    }
    // One ldmatrix phase: rows r0..r0+7 at one logical 16-byte chunk hit 8
    // different 16-byte bank groups (conflict-free).
    for (int r0 = 0; r0 < 32; r0 += 8)
      for (int c = 0; c < cols; c += 8) {
        int groups = 0;
        for (int r = r0; r < r0 + 8; ++r) groups |= 1 << (Sw::offset(r, c) / 8 % 8);
        EXPECT_EQ(groups, 0xff) << "cols " << cols << " chunk " << c / 8;
      }
  };
  check(detail::Swizzle<8>{}, 8);
  check(detail::Swizzle<16>{}, 16);
  check(detail::Swizzle<24>{}, 24);
  check(detail::Swizzle<32>{}, 32);
  check(detail::Swizzle<40>{}, 40);
  check(detail::Swizzle<48>{}, 48);
  check(detail::Swizzle<64>{}, 64);
  check(detail::Swizzle<128>{}, 128);
}

// ---- construction, load/store ---------------------------------------------------

TEST(TileConstruct, ArangeSplatReshapeProgramId) {
  std::vector<int32_t> ar(97), sp_i(7), rs(97);
  std::vector<half_t> sp_h(7);
  std::vector<bf16_t> sp_b(1);
  std::vector<int32_t> pid(4 * kThreads);
  run_tile_block(0, [&] {
    auto a = arange<Tile<int32_t, Shape<97>>, 5>();
    store_all(ar.data(), a);
    store_all(sp_i.data(), splat<Tile<int32_t, Shape<7>>>(-3.7f));
    store_all(sp_h.data(), splat<Tile<half_t, Shape<7>>>(1.0f + 1.0f / 2048)); // tie -> 1
    store_all(sp_b.data(), splat<Tile<bf16_t, Shape<1>>>(3));
    auto r2 = reshape<Tile<int32_t, Shape<97, 1>>>(a);
    store_all(rs.data(), reshape<Tile<int32_t, Shape<97>>>(r2));
    pid[threadIdx.x * 4 + 0] = program_id<0>();
    pid[threadIdx.x * 4 + 1] = program_id<1>();
    pid[threadIdx.x * 4 + 2] = num_programs<0>();
    pid[threadIdx.x * 4 + 3] = num_programs<2>();
  });
  for (int i = 0; i < 97; ++i) {
    EXPECT_EQ(ar[i], 5 + i);
    EXPECT_EQ(rs[i], 5 + i);
  }
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(sp_i[i], -3);
    EXPECT_EQ(sp_h[i].bits, 0x3c00);
  }
  EXPECT_EQ(bf16v(sp_b[0]), 3.0);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(pid[4 * t], 0);
    EXPECT_EQ(pid[4 * t + 2], 1);
    EXPECT_EQ(pid[4 * t + 3], 1);
  }
}

TEST(TileConstruct, ProgramIdAcrossGrid) {
  std::vector<int32_t> got(6 * 4, -1);
  loom::device::emu::LaunchConfig c;
  c.grid = loom::device::emu::dim3(3, 2);
  c.block = loom::device::emu::dim3(kThreads);
  loom::device::emu::launch(c, [&] {
    if (threadIdx.x == 7) {
      const int b = program_id<0>() + 3 * program_id<1>();
      got[4 * b] = program_id<0>();
      got[4 * b + 1] = program_id<1>();
      got[4 * b + 2] = num_programs<0>();
      got[4 * b + 3] = num_programs<1>();
    }
  });
  for (int b = 0; b < 6; ++b) {
    EXPECT_EQ(got[4 * b], b % 3);
    EXPECT_EQ(got[4 * b + 1], b / 3);
    EXPECT_EQ(got[4 * b + 2], 3);
    EXPECT_EQ(got[4 * b + 3], 2);
  }
}

// Loads through reversed int64 offsets with a random mask and `other`, stores
// masked into a sentinel-filled buffer; masked-off and out-of-shape elements
// must never be touched (the source is only as large as the shape).
template <class T, class S>
void check_load_store(std::mt19937& rng) {
  constexpr int n = S::size;
  const std::vector<T> src = random_values<T>(rng, n, -100, 100);
  const std::vector<T> oth = random_values<T>(rng, n, -100, 100);
  std::vector<bool> maskv(n);
  std::bernoulli_distribution coin(0.6);
  for (int i = 0; i < n; ++i) maskv[i] = coin(rng);
  std::unique_ptr<bool[]> mask(new bool[n]);
  for (int i = 0; i < n; ++i) mask[i] = maskv[i];
  const T sentinel = cast<T>(12345.0f);
  std::vector<T> plain(n), masked(n), zero_other(n), st(n, sentinel);
  std::vector<int64_t> rev(n);
  for (int i = 0; i < n; ++i) rev[i] = n - 1 - i;
  run_tile_block(0, [&] {
    auto off = load_all<int64_t, S>(rev.data());
    auto m = load_all<bool, S>(mask.get());
    auto o = load_all<T, S>(oth.data());
    store_all(plain.data(), load(src.data(), off));
    store_all(masked.data(), load(src.data(), off, m, o));
    store_all(zero_other.data(), load(src.data(), off, m));
    store(st.data(), off, load_all<T, S>(src.data()), m);
  });
  for (int i = 0; i < n; ++i) {
    const int j = n - 1 - i;
    EXPECT_TRUE(same_bits(plain[i], src[j])) << i;
    EXPECT_TRUE(same_bits(masked[i], maskv[i] ? src[j] : oth[i])) << i;
    EXPECT_TRUE(same_bits(zero_other[i], maskv[i] ? src[j] : T{})) << i;
    // store: element i goes to st[rev[i]] when mask[i].
    EXPECT_TRUE(same_bits(st[j], maskv[i] ? src[i] : sentinel)) << i;
  }
}

TEST(TileMemory, MaskedLoadStoreOddShapes) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_load_store<float, Shape<1>>(rng);
  check_load_store<float, Shape<7>>(rng);
  check_load_store<half_t, Shape<97>>(rng);
  check_load_store<bf16_t, Shape<16, 8>>(rng);
  check_load_store<int32_t, Shape<48, 40>>(rng);
  check_load_store<int64_t, Shape<3, 5, 7>>(rng);
}

TEST(TileMemory, Int32OffsetsAndBoolTiles) {
  std::vector<bool> dummy;
  bool src[10] = {true, false, true, true, false, false, true, false, true, true};
  bool dst[10] = {};
  int32_t offs[10] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
  run_tile_block(0, [&] {
    auto off = load_all<int32_t, Shape<10>>(offs);
    store(dst, off, load_all<bool, Shape<10>>(src));
  });
  for (int i = 0; i < 10; ++i) EXPECT_EQ(dst[9 - i], src[i]);
}

// ---- elementwise ------------------------------------------------------------------

template <class T>
T round_to(double x) {
  if constexpr (is_float_v<T>) return from_float<T>((float)x);
  else return (T)x;
}

template <class T>
bool is_nan_v(T x) {
  if constexpr (is_float_v<T>) return std::isnan(as_double(x));
  else return false;
}

// Exact comparison of a result with the reference (NaN matches any NaN).
template <class T>
void expect_exact(T got, T want, const char* op, int i) {
  if (is_nan_v(want)) {
    EXPECT_TRUE(is_nan_v(got)) << op << " [" << i << "]";
  } else {
    EXPECT_EQ(as_double(got), as_double(want))
        << op << " [" << i << "] " << " got " << as_double(got) << " want " << as_double(want);
  }
}

template <class T>
double rel_tol() {
  if constexpr (is_same_v<T, half_t>) return std::ldexp(1.0, -10);
  else if constexpr (is_same_v<T, bf16_t>) return std::ldexp(1.0, -7);
  else return std::ldexp(1.0, -21); // a few ulp
}

template <class T>
void check_float_ops(unsigned seed) {
  SCOPED_TRACE(std::string("seed ") + std::to_string(seed));
  using S = Shape<3, 97>;
  constexpr int n = S::size;
  std::mt19937 rng(seed);
  std::vector<T> A = random_values<T>(rng, n), B = random_values<T>(rng, n),
                 P = random_values<T>(rng, n, 1.0 / 64, 16);
  const T qnan = from_float<T>(std::numeric_limits<float>::quiet_NaN());
  A[5] = qnan;
  B[6] = qnan;
  A[7] = B[7] = qnan;
  B[8] = A[8];
  B[9] = from_float<T>(0.0f);
  B[10] = from_float<T>(-0.0f);
  P[11] = from_float<T>(0.0f);
  std::unique_ptr<bool[]> C(new bool[n]);
  for (int i = 0; i < n; ++i) C[i] = (rng() & 1) != 0;
  enum { Add, Sub, Mul, Div, Max, Min, Neg, Abs, Sel, Exp2, Log2, Exp, Log, Tanh, Sqrt, NumT };
  enum { Lt, Le, Gt, Ge, Eq, Ne, NumB };
  std::vector<std::vector<T>> out(NumT, std::vector<T>(n));
  std::vector<std::array<bool, n>> outb(NumB);
  run_tile_block(0, [&] {
    auto a = load_all<T, S>(A.data()), b = load_all<T, S>(B.data()), p = load_all<T, S>(P.data());
    auto c = load_all<bool, S>(C.get());
    store_all(out[Add].data(), add(a, b));
    store_all(out[Sub].data(), sub(a, b));
    store_all(out[Mul].data(), mul(a, b));
    store_all(out[Div].data(), div(a, b));
    store_all(out[Max].data(), maximum(a, b));
    store_all(out[Min].data(), minimum(a, b));
    store_all(out[Neg].data(), neg(a));
    store_all(out[Abs].data(), abs(a));
    store_all(out[Sel].data(), select(c, a, b));
    store_all(out[Exp2].data(), exp2(a));
    store_all(out[Log2].data(), log2(p));
    store_all(out[Exp].data(), exp(a));
    store_all(out[Log].data(), log(p));
    store_all(out[Tanh].data(), tanh(a));
    store_all(out[Sqrt].data(), sqrt(p));
    store_all(outb[Lt].data(), cmp_lt(a, b));
    store_all(outb[Le].data(), cmp_le(a, b));
    store_all(outb[Gt].data(), cmp_gt(a, b));
    store_all(outb[Ge].data(), cmp_ge(a, b));
    store_all(outb[Eq].data(), cmp_eq(a, b));
    store_all(outb[Ne].data(), cmp_ne(a, b));
  });
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int i = 0; i < n; ++i) {
    const double a = as_double(A[i]), b = as_double(B[i]), p = as_double(P[i]);
    const bool an = std::isnan(a), bn = std::isnan(b);
    expect_exact(out[Add][i], round_to<T>(a + b), "add", i);
    expect_exact(out[Sub][i], round_to<T>(a - b), "sub", i);
    expect_exact(out[Mul][i], round_to<T>(a * b), "mul", i);
    expect_exact(out[Div][i], round_to<T>(a / b), "div", i);
    expect_exact(out[Max][i], round_to<T>(an || bn ? nan : std::max(a, b)), "maximum", i);
    expect_exact(out[Min][i], round_to<T>(an || bn ? nan : std::min(a, b)), "minimum", i);
    expect_exact(out[Neg][i], round_to<T>(-a), "neg", i);
    expect_exact(out[Abs][i], round_to<T>(std::fabs(a)), "abs", i);
    EXPECT_TRUE(same_bits(out[Sel][i], C[i] ? A[i] : B[i])) << i;
    EXPECT_EQ(outb[Lt][i], a < b) << i;
    EXPECT_EQ(outb[Le][i], a <= b) << i;
    EXPECT_EQ(outb[Gt][i], a > b) << i;
    EXPECT_EQ(outb[Ge][i], a >= b) << i;
    EXPECT_EQ(outb[Eq][i], a == b) << i;
    EXPECT_EQ(outb[Ne][i], a != b) << i;
    auto near = [&](T got, double want, const char* op) {
      if (std::isnan(want)) {
        EXPECT_TRUE(is_nan_v(got)) << op << " [" << i << "]";
      } else if (std::isinf(want)) {
        EXPECT_EQ(as_double(got), want) << op << " [" << i << "]";
      } else {
        EXPECT_NEAR(as_double(got), want, rel_tol<T>() * std::fabs(want) + 1e-30)
            << op << " [" << i << "] of " << a << " / " << p;
      }
    };
    near(out[Exp2][i], std::exp2(a), "exp2");
    near(out[Log2][i], std::log2(p), "log2");
    near(out[Exp][i], std::exp(a), "exp");
    near(out[Log][i], std::log(p), "log");
    near(out[Tanh][i], std::tanh(a), "tanh");
    near(out[Sqrt][i], std::sqrt(p), "sqrt");
  }
}

TEST(TileElementwise, Float) { check_float_ops<float>(fresh_seed()); }
TEST(TileElementwise, Half) { check_float_ops<half_t>(fresh_seed()); }
TEST(TileElementwise, Bf16) { check_float_ops<bf16_t>(fresh_seed()); }

// Two's-complement wrap of an exact (128-bit) result to T.
template <class T>
T wrap(__int128 x) {
  using U = typename unsigned_of<T>::type;
  return (T)(U)(unsigned __int128)x;
}

template <class T>
void check_int_ops(unsigned seed) {
  SCOPED_TRACE(std::string("seed ") + std::to_string(seed));
  using S = Shape<3, 97>;
  constexpr int n = S::size;
  constexpr T lo = int_limits<T>::min(), hi = int_limits<T>::max();
  std::mt19937 rng(seed);
  std::vector<T> A = random_values<T>(rng, n, (double)lo, (double)hi),
                 B = random_values<T>(rng, n, -1000, 1000);
  // Wrapping and the edge cases of division.
  A[0] = lo, B[0] = -1;
  A[1] = hi, B[1] = hi;
  A[2] = 17, B[2] = 0;
  A[3] = -17, B[3] = 5;
  A[4] = 17, B[4] = -5;
  A[5] = lo, B[5] = lo;
  for (int i = 6; i < 40; ++i) B[i] = (T)((int)(rng() % 9) - 4);
  std::unique_ptr<bool[]> C(new bool[n]);
  for (int i = 0; i < n; ++i) C[i] = (rng() & 1) != 0;
  enum { Add, Sub, Mul, Div, Rem, Max, Min, Neg, Abs, And, Or, Xor, Sel, NumT };
  enum { Lt, Le, Gt, Ge, Eq, Ne, NumB };
  std::vector<std::vector<T>> out(NumT, std::vector<T>(n));
  std::vector<std::array<bool, n>> outb(NumB);
  run_tile_block(0, [&] {
    auto a = load_all<T, S>(A.data()), b = load_all<T, S>(B.data());
    auto c = load_all<bool, S>(C.get());
    store_all(out[Add].data(), add(a, b));
    store_all(out[Sub].data(), sub(a, b));
    store_all(out[Mul].data(), mul(a, b));
    store_all(out[Div].data(), div(a, b));
    store_all(out[Rem].data(), rem(a, b));
    store_all(out[Max].data(), maximum(a, b));
    store_all(out[Min].data(), minimum(a, b));
    store_all(out[Neg].data(), neg(a));
    store_all(out[Abs].data(), abs(a));
    store_all(out[And].data(), bit_and(a, b));
    store_all(out[Or].data(), bit_or(a, b));
    store_all(out[Xor].data(), bit_xor(a, b));
    store_all(out[Sel].data(), select(c, a, b));
    store_all(outb[Lt].data(), cmp_lt(a, b));
    store_all(outb[Le].data(), cmp_le(a, b));
    store_all(outb[Gt].data(), cmp_gt(a, b));
    store_all(outb[Ge].data(), cmp_ge(a, b));
    store_all(outb[Eq].data(), cmp_eq(a, b));
    store_all(outb[Ne].data(), cmp_ne(a, b));
  });
  for (int i = 0; i < n; ++i) {
    const __int128 a = A[i], b = B[i];
    EXPECT_EQ(out[Add][i], wrap<T>(a + b)) << i;
    EXPECT_EQ(out[Sub][i], wrap<T>(a - b)) << i;
    EXPECT_EQ(out[Mul][i], wrap<T>(a * b)) << i;
    EXPECT_EQ(out[Div][i], b == 0 ? T(0) : wrap<T>(a / b)) << i << ": " << (long long)a << " / " << (long long)b;
    EXPECT_EQ(out[Rem][i], b == 0 ? A[i] : wrap<T>(a % b)) << i;
    EXPECT_EQ(out[Max][i], std::max(A[i], B[i])) << i;
    EXPECT_EQ(out[Min][i], std::min(A[i], B[i])) << i;
    EXPECT_EQ(out[Neg][i], wrap<T>(-a)) << i;
    EXPECT_EQ(out[Abs][i], wrap<T>(a < 0 ? -a : a)) << i;
    EXPECT_EQ(out[And][i], (T)(A[i] & B[i])) << i;
    EXPECT_EQ(out[Or][i], (T)(A[i] | B[i])) << i;
    EXPECT_EQ(out[Xor][i], (T)(A[i] ^ B[i])) << i;
    EXPECT_EQ(out[Sel][i], C[i] ? A[i] : B[i]) << i;
    EXPECT_EQ(outb[Lt][i], a < b);
    EXPECT_EQ(outb[Le][i], a <= b);
    EXPECT_EQ(outb[Gt][i], a > b);
    EXPECT_EQ(outb[Ge][i], a >= b);
    EXPECT_EQ(outb[Eq][i], a == b);
    EXPECT_EQ(outb[Ne][i], a != b);
  }
}

TEST(TileElementwise, Int32) { check_int_ops<int32_t>(fresh_seed()); }
TEST(TileElementwise, Int64) { check_int_ops<int64_t>(fresh_seed()); }

TEST(TileElementwise, BoolAndScalars) {
  constexpr int n = 7;
  bool A[n] = {false, false, true, true, true, false, true};
  bool B[n] = {false, true, false, true, true, true, false};
  bool o_and[n], o_or[n], o_xor[n], o_eq[n], o_sel[n];
  run_tile_block(0, [&] {
    auto a = load_all<bool, Shape<n>>(A), b = load_all<bool, Shape<n>>(B);
    store_all(o_and, bit_and(a, b));
    store_all(o_or, bit_or(a, b));
    store_all(o_xor, bit_xor(a, b));
    store_all(o_eq, cmp_eq(a, b));
    store_all(o_sel, select(a, b, a));
  });
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(o_and[i], A[i] && B[i]);
    EXPECT_EQ(o_or[i], A[i] || B[i]);
    EXPECT_EQ(o_xor[i], A[i] != B[i]);
    EXPECT_EQ(o_eq[i], A[i] == B[i]);
    EXPECT_EQ(o_sel[i], A[i] ? B[i] : A[i]);
  }
  // Scalar overloads (plain functions; no block needed). Qualified: the C
  // library's ::div, ::abs, ::sqrt ... would otherwise win overload resolution.
  namespace lt = loom::tile;
  EXPECT_EQ(lt::add(2.5f, 0.25f), 2.75f);
  EXPECT_EQ(f16v(lt::add(to_f16(1.0), to_f16(1.0 / 2048))), 1.0); // RNE tie to even
  EXPECT_EQ(f16v(lt::add(to_f16(1.0 + 1.0 / 1024), to_f16(1.0 / 2048))), 1.0 + 2.0 / 1024);
  EXPECT_EQ(lt::div(-7, 2), -3);
  EXPECT_EQ(lt::rem(-7, 2), -1);
  EXPECT_EQ(lt::div((int64_t)7, (int64_t)0), 0);
  EXPECT_TRUE(std::isnan(lt::maximum(1.0f, NAN)));
  EXPECT_TRUE(std::isnan(lt::minimum(NAN, 1.0f)));
  EXPECT_FALSE(lt::cmp_lt(NAN, 1.0f));
  EXPECT_FALSE(lt::cmp_eq(NAN, NAN));
  EXPECT_TRUE(lt::cmp_ne(NAN, NAN));
  EXPECT_TRUE(lt::cmp_ne(to_bf16(NAN), to_bf16(1.0)));
  EXPECT_EQ(lt::select(true, 3, 4), 3);
  EXPECT_EQ(lt::abs(-5), 5);
  EXPECT_EQ(lt::abs(int_limits<int32_t>::min()), int_limits<int32_t>::min());
  EXPECT_EQ(lt::exp2(3.0f), 8.0f);
  EXPECT_EQ(lt::sqrt(16.0f), 4.0f);
}

// ---- casts ------------------------------------------------------------------------

TEST(TileCast, ScalarEdgeCases) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = INFINITY;
  // f32 -> f16 round to nearest even at ties; overflow; NaN.
  EXPECT_EQ(cast<half_t>(1.0f + 0x1p-11f).bits, 0x3c00);           // tie -> even (1.0)
  EXPECT_EQ(cast<half_t>(1.0f + 3 * 0x1p-11f).bits, 0x3c02);       // tie -> even (up)
  EXPECT_EQ(cast<half_t>(1.0f + 0x1p-11f + 0x1p-20f).bits, 0x3c01); // above tie
  EXPECT_EQ(cast<half_t>(65520.0f).bits, 0x7c00);                  // rounds to Inf
  EXPECT_EQ(cast<half_t>(65519.0f).bits, 0x7bff);
  EXPECT_EQ(cast<half_t>(-inf).bits, 0xfc00);
  EXPECT_TRUE(std::isnan(f16v(cast<half_t>(nan))));
  EXPECT_EQ(cast<half_t>(0x1p-25f).bits, 0x0000);                   // tie to even 0
  EXPECT_EQ(cast<half_t>(3 * 0x1p-25f).bits, 0x0002);               // tie to even subnormal
  // f32 -> bf16.
  EXPECT_EQ(cast<bf16_t>(1.0f + 0x1p-8f).bits, 0x3f80);
  EXPECT_EQ(cast<bf16_t>(1.0f + 3 * 0x1p-8f).bits, 0x3f82);
  EXPECT_TRUE(std::isnan(bf16v(cast<bf16_t>(nan))));
  // f16 <-> bf16 <-> f32.
  EXPECT_EQ(cast<float>(half_t{0x3555}), (float)f16v(half_t{0x3555}));
  EXPECT_EQ(cast<bf16_t>(half_t{0x3c01}).bits, cast<bf16_t>(1.0f + 0x1p-10f).bits);
  EXPECT_EQ(cast<half_t>(bf16_t{0x4049}).bits, cast<half_t>(3.140625f).bits);
  EXPECT_TRUE(std::isnan(cast<float>(cast<bf16_t>(cast<half_t>(nan)))));
  // float -> int truncates toward zero; NaN -> 0; saturates.
  EXPECT_EQ(cast<int32_t>(-2.7f), -2);
  EXPECT_EQ(cast<int32_t>(2.7f), 2);
  EXPECT_EQ(cast<int64_t>(-1e10f), (int64_t)-10000000000LL);
  EXPECT_EQ(cast<int32_t>(nan), 0);
  EXPECT_EQ(cast<int32_t>(1e20f), int_limits<int32_t>::max());
  EXPECT_EQ(cast<int32_t>(-inf), int_limits<int32_t>::min());
  EXPECT_EQ(cast<int64_t>(inf), int_limits<int64_t>::max());
  EXPECT_EQ(cast<int32_t>(half_t{0xc0c0}), -2); // -2.375
  // int -> float (RNE), bool -> int, int widen/narrow, int -> bool.
  EXPECT_EQ(cast<float>(16777217), 16777216.0f);
  EXPECT_EQ(cast<float>(16777219), 16777220.0f);
  EXPECT_EQ(cast<float>((int64_t)-3), -3.0f);
  EXPECT_EQ(cast<int32_t>(true), 1);
  EXPECT_EQ(cast<int64_t>(false), 0);
  EXPECT_EQ(cast<float>(true), 1.0f);
  EXPECT_EQ(cast<int64_t>(-5), (int64_t)-5);
  EXPECT_EQ(cast<int32_t>((int64_t)0x1'8000'0001LL), (int32_t)0x80000001u);
  EXPECT_EQ(cast<bool>(0), false);
  EXPECT_EQ(cast<bool>((int64_t)1 << 40), true);
  EXPECT_EQ(cast<bool>(-0.0f), false);
  EXPECT_EQ(cast<bool>(nan), true);
  // int -> bf16 rounds once: 2^24 + 2^16 + 1 is just above the tie between
  // bf16 neighbours 2^24 and 2^24 + 2^17 (a float intermediate would round
  // to the tie and then to even, 2^24).
  EXPECT_EQ(bf16v(cast<bf16_t>((int32_t)(16777216 + 65536 + 1))), 16777216.0 + 131072.0);
  EXPECT_EQ(bf16v(cast<bf16_t>((int32_t)(16777216 + 65536))), 16777216.0);
  EXPECT_EQ(bf16v(cast<bf16_t>((int64_t)-((1LL << 40) + (1LL << 32) + 1))),
            -(double)((1LL << 40) + (1LL << 33)));
  EXPECT_EQ(f16v(cast<half_t>(2049)), 2048.0);
  EXPECT_EQ(f16v(cast<half_t>(2051)), 2052.0);
}

TEST(TileCast, Tiles) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  using S = Shape<48, 40>;
  constexpr int n = S::size;
  std::vector<float> F = random_values<float>(rng, n, -70000, 70000);
  F[3] = NAN;
  std::vector<half_t> h(n);
  std::vector<bf16_t> b(n), hb(n);
  std::vector<int32_t> fi(n), hi(n);
  std::vector<int64_t> wide(n);
  std::vector<float> back(n);
  std::unique_ptr<bool[]> nz(new bool[n]);
  run_tile_block(0, [&] {
    auto f = load_all<float, S>(F.data());
    auto th = cast<half_t>(f);
    store_all(h.data(), th);
    store_all(b.data(), cast<bf16_t>(f));
    store_all(hb.data(), cast<bf16_t>(th));
    auto ti = cast<int32_t>(f);
    store_all(fi.data(), ti);
    store_all(hi.data(), cast<int32_t>(th));
    store_all(wide.data(), cast<int64_t>(ti));
    store_all(back.data(), cast<float>(ti));
    store_all(nz.get(), cast<bool>(ti));
  });
  for (int i = 0; i < n; ++i) {
    const uint16_t want_h = loom::device::f32_to_f16_rn(F[i]);
    if (std::isnan(F[i])) {
      EXPECT_TRUE(std::isnan(f16v(h[i])));
      EXPECT_TRUE(std::isnan(bf16v(b[i])));
      EXPECT_EQ(fi[i], 0);
      continue;
    }
    EXPECT_EQ(h[i].bits, want_h) << F[i];
    EXPECT_EQ(b[i].bits, loom::device::f32_to_bf16_rn(F[i])) << F[i];
    EXPECT_EQ(hb[i].bits, loom::device::f32_to_bf16_rn(loom::device::f16_to_f32(want_h)));
    EXPECT_EQ(fi[i], (int32_t)std::trunc(F[i]));
    const double hv = f16v(h[i]);
    EXPECT_EQ(hi[i], std::isinf(hv) ? (hv > 0 ? int_limits<int32_t>::max() : int_limits<int32_t>::min())
                                    : (int32_t)std::trunc(hv));
    EXPECT_EQ(wide[i], (int64_t)fi[i]);
    EXPECT_EQ(back[i], (float)fi[i]);
    EXPECT_EQ(nz[i], fi[i] != 0);
  }
}

// ---- broadcast ----------------------------------------------------------------------

template <class T, class Dst, class Src>
void check_broadcast(std::mt19937& rng) {
  // Plain arrays: std::vector<bool> has no data().
  const std::vector<T> init = random_values<T>(rng, Src::size, -1000, 1000);
  std::unique_ptr<T[]> src(new T[Src::size]), out(new T[Dst::size]);
  for (int i = 0; i < Src::size; ++i) src[i] = init[i];
  run_tile_block(Src::size * sizeof(T), [&] {
    auto s = load_all<T, Src>(src.get());
    auto d = broadcast<Tile<T, Dst>>(s, shared_scratch());
    store_all(out.get(), d);
  });
  for (int i = 0; i < Dst::size; ++i) {
    int j = 0;
    for (int d = 0; d < Dst::rank; ++d) {
      const int coord = i / Dst::stride(d) % Dst::dim(d);
      j += (Src::dim(d) == 1 ? 0 : coord) * Src::stride(d);
    }
    EXPECT_TRUE(same_bits(out[i], src[j])) << i;
  }
}

TEST(TileBroadcast, ColumnRowAndScalarShapes) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_broadcast<float, Shape<64, 32>, Shape<64, 1>>(rng);
  check_broadcast<float, Shape<64, 32>, Shape<1, 32>>(rng);
  check_broadcast<int32_t, Shape<64, 32>, Shape<64, 1>>(rng);
  check_broadcast<half_t, Shape<64, 32>, Shape<1, 32>>(rng);
  check_broadcast<bool, Shape<7, 5>, Shape<1, 1>>(rng);
  check_broadcast<int64_t, Shape<3, 4, 5>, Shape<3, 1, 5>>(rng);
  check_broadcast<bf16_t, Shape<97>, Shape<1>>(rng);
  check_broadcast<float, Shape<48, 40>, Shape<48, 40>>(rng); // identity
}

// ---- reductions and extract -----------------------------------------------------------

enum class Red { Sum, Max, Min };

template <class T, int Axis, class S>
void check_reduce(std::mt19937& rng, bool with_nan = false) {
  using R = remove_axis_t<S, Axis>;
  const bool small_ints = is_same_v<T, int32_t>;
  std::vector<T> src = is_float_v<T> ? random_values<T>(rng, S::size, -4, 4)
                       : small_ints   ? random_values<T>(rng, S::size, -100000, 100000)
                                      : random_values<T>(rng, S::size, -(1LL << 60), 1LL << 60);
  if constexpr (is_float_v<T>)
    if (with_nan) src[S::size / 2] = from_float<T>(NAN);
  std::vector<T> sum(R::size), mx(R::size), mn(R::size);
  run_tile_block(S::size * sizeof(T), [&] {
    auto t = load_all<T, S>(src.data());
    unsigned char* smem = shared_scratch();
    store_all(sum.data(), reduce_sum<Tile<T, R>, Axis>(t, smem));
    store_all(mx.data(), reduce_max<Tile<T, R>, Axis>(t, smem));
    store_all(mn.data(), reduce_min<Tile<T, R>, Axis>(t, smem));
  });
  constexpr int D = S::dim(Axis), inner = S::stride(Axis);
  for (int j = 0; j < R::size; ++j) {
    double s = 0, a = 0, hi = -INFINITY, lo = INFINITY;
    __int128 isum = 0;
    bool nan = false;
    for (int x = 0; x < D; ++x) {
      const T e = src[(j / inner) * D * inner + x * inner + j % inner];
      const double v = as_double(e);
      nan = nan || std::isnan(v);
      s += v;
      a += std::fabs(v);
      hi = std::max(hi, v);
      lo = std::min(lo, v);
      if constexpr (is_int_v<T>) isum += e;
    }
    if constexpr (is_int_v<T>) {
      EXPECT_EQ(sum[j], wrap<T>(isum)) << j;
    } else if (nan) {
      EXPECT_TRUE(is_nan_v(sum[j]) && is_nan_v(mx[j]) && is_nan_v(mn[j])) << j;
      continue;
    } else {
      // f32 accumulation, then one rounding to T.
      const double round = is_same_v<T, float> ? 0 : rel_tol<T>() / 2 * std::fabs(s);
      EXPECT_NEAR(as_double(sum[j]), s, 1e-5 * a + round + 1e-30) << j;
    }
    EXPECT_EQ(as_double(mx[j]), hi) << j;
    EXPECT_EQ(as_double(mn[j]), lo) << j;
  }
}

TEST(TileReduce, EachAxisEachType) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  check_reduce<float, 0, Shape<16, 8>>(rng);
  check_reduce<float, 1, Shape<16, 8>>(rng);
  check_reduce<float, 0, Shape<48, 40>>(rng);
  check_reduce<float, 1, Shape<48, 40>>(rng);
  check_reduce<float, 1, Shape<64, 32>>(rng);
  check_reduce<half_t, 0, Shape<32, 16>>(rng);
  check_reduce<half_t, 1, Shape<32, 16>>(rng);
  check_reduce<bf16_t, 1, Shape<48, 40>>(rng);
  check_reduce<bf16_t, 0, Shape<7, 5>>(rng);
  check_reduce<int32_t, 1, Shape<48, 40>>(rng);
  check_reduce<int32_t, 0, Shape<16, 8>>(rng);
  check_reduce<int64_t, 0, Shape<48, 40>>(rng);
  check_reduce<int64_t, 1, Shape<7, 5>>(rng);
  check_reduce<float, 1, Shape<3, 5, 7>>(rng);
  check_reduce<int32_t, 2, Shape<3, 5, 7>>(rng);
  check_reduce<float, 0, Shape<97>>(rng);
  check_reduce<float, 0, Shape<1>>(rng);
  check_reduce<float, 1, Shape<16, 8>>(rng, true);  // NaN propagates in its row
  check_reduce<half_t, 0, Shape<16, 8>>(rng, true); // ... and column
}

TEST(TileReduce, ExtractRankZeroInEveryThread) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const std::vector<float> src = random_values<float>(rng, 97);
  const std::vector<int64_t> isrc = random_values<int64_t>(rng, 7, -1e12, 1e12);
  std::vector<float> got(kThreads);
  std::vector<int64_t> igot(kThreads);
  run_tile_block(97 * sizeof(float), [&] {
    unsigned char* smem = shared_scratch();
    auto t = load_all<float, Shape<97>>(src.data());
    auto r = reduce_max<Tile<float, Shape<>>, 0>(t, smem);
    got[threadIdx.x] = extract(r, smem);
    auto ir = reduce_sum<Tile<int64_t, Shape<>>, 0>(load_all<int64_t, Shape<7>>(isrc.data()), smem);
    igot[threadIdx.x] = extract(ir, smem);
  });
  const float want = *std::max_element(src.begin(), src.end());
  int64_t isum = 0;
  for (auto v : isrc) isum += v;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(got[t], want) << t;
    EXPECT_EQ(igot[t], isum) << t;
  }
}

TEST(TileReduce, ExtractNeedsOnly16Bytes) {
  double got = 0;
  run_tile_block(16, [&] {
    Tile<double, Shape<>> t;
    t.v[0] = threadIdx.x == 0 ? 2.5 : -1.0;
    const double x = extract(t, shared_scratch());
    if (threadIdx.x == kThreads - 1) got = x;
  });
  EXPECT_EQ(got, 2.5);
}

// ---- dot ---------------------------------------------------------------------------

template <class T, int M, int N, int K>
void check_dot(bool expect_mma) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " " + std::to_string(M) + "x" +
               std::to_string(N) + "x" + std::to_string(K));
  EXPECT_EQ((detail::dot_uses_mma<T, M, N, K>), expect_mma);
  std::mt19937 rng(seed);
  const std::vector<T> A = random_values<T>(rng, M * K, -2, 2), B = random_values<T>(rng, K * N, -2, 2);
  const std::vector<float> C = random_values<float>(rng, M * N, -2, 2);
  std::vector<float> D(M * N);
  run_tile_block((M * K + K * N) * sizeof(T) + M * N * 4, [&] {
    auto a = load_all<T, Shape<M, K>>(A.data());
    auto b = load_all<T, Shape<K, N>>(B.data());
    auto c = load_all<float, Shape<M, N>>(C.data());
    store_all(D.data(), dot<Tile<float, Shape<M, N>>>(a, b, c, shared_scratch()));
  });
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = C[m * N + n], mag = std::fabs(s);
      for (int k = 0; k < K; ++k) {
        const double p = as_double(A[m * K + k]) * as_double(B[k * N + n]);
        s += p;
        mag += std::fabs(p);
      }
      ASSERT_NEAR(D[m * N + n], s, 1e-5 * mag + 1e-30) << "(" << m << ", " << n << ")";
    }
}

TEST(TileDot, F32FmaPath) {
  check_dot<float, 16, 8, 16>(false);
  check_dot<float, 7, 5, 9>(false);
  check_dot<float, 32, 16, 32>(false);
}
TEST(TileDot, F16TensorCores) {
  check_dot<half_t, 32, 16, 32>(true);
  check_dot<half_t, 64, 32, 48>(true);
  check_dot<half_t, 16, 8, 16>(true);
}
TEST(TileDot, Bf16TensorCores) {
  check_dot<bf16_t, 32, 16, 32>(true);
  check_dot<bf16_t, 64, 32, 48>(true);
  check_dot<bf16_t, 48, 40, 16>(true);
}
TEST(TileDot, HalfTypesOffTheMmaGridTakeTheFmaPath) {
  check_dot<half_t, 24, 8, 20>(false);
  check_dot<bf16_t, 5, 7, 3>(false);
  check_dot<half_t, 32, 12, 32>(false);
}

// Consecutive ops reuse one scratch buffer: each leaves the block synchronized.
TEST(TileScratch, ConsecutiveOpsShareScratch) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  constexpr int M = 32, N = 16, K = 32;
  const std::vector<half_t> A = random_values<half_t>(rng, M * K, -1, 1),
                            B = random_values<half_t>(rng, K * N, -1, 1);
  std::vector<float> rowsum(M), out(M * N);
  run_tile_block((M * K + K * N) * 2 + M * N * 4, [&] {
    unsigned char* smem = shared_scratch();
    using TF = Tile<float, Shape<M, N>>;
    auto a = load_all<half_t, Shape<M, K>>(A.data());
    auto b = load_all<half_t, Shape<K, N>>(B.data());
    TF c = dot<TF>(a, b, splat<TF>(0), smem);
    c = dot<TF>(a, b, c, smem); // twice
    auto rs = reduce_sum<Tile<float, Shape<M>>, 1>(c, smem);
    auto rs2 = broadcast<TF>(reshape<Tile<float, Shape<M, 1>>>(rs), smem);
    store_all(rowsum.data(), rs);
    store_all(out.data(), sub(c, rs2));
  });
  for (int m = 0; m < M; ++m) {
    double row[N], total = 0, mag = 0;
    for (int n = 0; n < N; ++n) {
      double s = 0;
      for (int k = 0; k < K; ++k) {
        s += f16v(A[m * K + k]) * f16v(B[k * N + n]);
        mag += 2 * std::fabs(f16v(A[m * K + k]) * f16v(B[k * N + n]));
      }
      row[n] = 2 * s;
      total += row[n];
    }
    EXPECT_NEAR(rowsum[m], total, 1e-5 * mag);
    for (int n = 0; n < N; ++n) EXPECT_NEAR(out[m * N + n], row[n] - total, 1e-5 * mag);
  }
}

} // namespace
