//===- CpuKernelTest.cpp - DSL kernels on the CPU backend vs float64 ------===//
//
// Odd sizes, masked tails, fresh random data per run, poisoned outputs.
//
//===----------------------------------------------------------------------===//
#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Examples.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/Kernel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sys/mman.h>
#include <unistd.h>

using namespace loom;
using namespace loom::runtime;
namespace ref = loom::ops::ref;

namespace {
/// Input bits for a float dtype plus the float values the kernel really sees.
struct TypedInput {
  std::vector<float> f32;      // used when dtype is f32
  std::vector<uint16_t> half;  // used when dtype is f16/bf16
  std::vector<float> seen;     // values after rounding to dtype
  Arg arg(DType t) const {
    return t == DType::F32 ? Arg::buffer(f32.data(), t, f32.size())
                           : Arg::buffer(half.data(), t, half.size());
  }
};

TypedInput makeInput(size_t n, DType t, float lo, float hi) {
  TypedInput in;
  in.f32 = ref::randomVector(n, lo, hi);
  if (t == DType::F16) {
    in.half = ref::toF16Bits(in.f32);
    in.seen = ref::roundToF16(in.f32);
  } else if (t == DType::BF16) {
    in.half = ref::toBf16Bits(in.f32);
    in.seen = ref::roundToBf16(in.f32);
  } else {
    in.seen = in.f32;
  }
  return in;
}

std::vector<float> widen(const std::vector<uint16_t> &bits, DType t) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    out[i] = t == DType::F16 ? loom::halfToFloat(bits[i]) : loom::bf16ToFloat(bits[i]);
  return out;
}
} // namespace

class VectorAdd : public ::testing::TestWithParam<std::tuple<int64_t, DType>> {};

TEST_P(VectorAdd, MatchesFloat64) {
  auto [n, dtype] = GetParam();
  auto x = makeInput(n, dtype, -10, 10), y = makeInput(n, dtype, -10, 10);
  const int64_t block = 256;
  auto k = compile(ops::vectorAddKernel(dtype), {.constants = {{"BLOCK", block}}});
  Grid grid(uint32_t((n + block - 1) / block));
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i)
    want[i] = double(x.seen[i]) + double(y.seen[i]);
  if (dtype == DType::F32) {
    std::vector<float> out(n, ref::poison());
    k->launch(grid, {x.arg(dtype), y.arg(dtype), Arg::buffer(out), Arg::i32(n)});
    EXPECT_TRUE(ref::withinRelative(ref::compare(out, want), 1e-6))
        << ref::format(ref::compare(out, want));
  } else {
    std::vector<uint16_t> out(n, 0x7fff); // NaN in both f16 and bf16
    k->launch(grid, {x.arg(dtype), y.arg(dtype), Arg::buffer(out.data(), dtype, n), Arg::i32(n)});
    // One rounding of the exact sum: half an ulp of the format.
    double tol = dtype == DType::F16 ? 1.0 / 2048 : 1.0 / 256;
    auto e = ref::compare(widen(out, dtype), want, 1e-2);
    EXPECT_TRUE(ref::withinRelative(e, tol)) << ref::format(e);
  }
}

INSTANTIATE_TEST_SUITE_P(OddSizes, VectorAdd,
                         ::testing::Combine(::testing::Values(1, 97, 1000, 1025),
                                            ::testing::Values(DType::F32, DType::F16,
                                                              DType::BF16)));

class Softmax : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(Softmax, MatchesFloat64) {
  auto [rows, cols, block] = GetParam();
  auto x = ref::randomVector(rows * cols, -8, 8);
  std::vector<float> y(rows * cols, ref::poison());
  auto k = compile(ops::softmaxKernel(DType::F32), {.constants = {{"BLOCK", block}}});
  k->launch(Grid(uint32_t(rows)),
            {Arg::buffer(x), Arg::buffer(y), Arg::i32(cols), Arg::i32(cols)});
  auto e = ref::compare(y, ref::softmaxRows(ref::toDouble(x), rows, cols), 1e-30);
  EXPECT_TRUE(ref::withinRelative(e, 1e-4)) << ref::format(e);
}

INSTANTIATE_TEST_SUITE_P(OddSizes, Softmax,
                         ::testing::Values(std::make_tuple(1, 1, 16), std::make_tuple(97, 97, 32),
                                           std::make_tuple(1000, 1025, 128),
                                           std::make_tuple(1025, 1000, 256),
                                           std::make_tuple(3, 1025, 1024)));

TEST(SoftmaxStrided, RowStrideLargerThanRow) {
  const int64_t rows = 13, cols = 97, stride = 128;
  auto x = ref::randomVector(rows * stride, -3, 3);
  std::vector<float> y(rows * stride, ref::poison());
  auto k = compile(ops::softmaxKernel(DType::F32), {.constants = {{"BLOCK", 64}}});
  k->launch(Grid(rows), {Arg::buffer(x), Arg::buffer(y), Arg::i32(cols), Arg::i32(stride)});
  std::vector<double> packed(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      packed[r * cols + c] = x[r * stride + c];
  auto want = ref::softmaxRows(packed, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_NEAR(y[r * stride + c], want[r * cols + c], 1e-6 + 1e-5 * want[r * cols + c]);
    for (int64_t c = cols; c < stride; ++c) // padding is never written
      ASSERT_TRUE(std::isnan(y[r * stride + c])) << "row " << r << " col " << c;
  }
}

/// (m, n, k) of the problem, (BLOCK_M, BLOCK_N, BLOCK_K) of the kernel.
using MatmulParam = std::tuple<std::array<int64_t, 3>, std::array<int64_t, 3>, DType>;
class Matmul : public ::testing::TestWithParam<MatmulParam> {};

TEST_P(Matmul, MatchesFloat64) {
  auto [mnk, blocks, dtype] = GetParam();
  auto [m, n, kk] = mnk;
  auto [bm, bn, bk] = blocks;
  auto a = makeInput(m * kk, dtype, -1, 1), b = makeInput(kk * n, dtype, -1, 1);
  std::vector<float> c(m * n, ref::poison());
  auto k = compile(ops::matmulKernel(dtype),
                   {.constants = {{"BLOCK_M", bm}, {"BLOCK_N", bn}, {"BLOCK_K", bk}}});
  k->launch(Grid(uint32_t((m + bm - 1) / bm), uint32_t((n + bn - 1) / bn)),
            {a.arg(dtype), b.arg(dtype), Arg::buffer(c), Arg::i32(m), Arg::i32(n), Arg::i32(kk),
             Arg::i32(kk), Arg::i32(n), Arg::i32(n)});
  // Products of the rounded inputs accumulated in f32: the only error is f32
  // summation, at most about k * 2^-24 * sum_k |a||b| in any order; the
  // observed error is far below that, so 1e-5 of sum |a||b| is a tight check.
  auto da = ref::toDouble(a.seen), db = ref::toDouble(b.seen);
  auto want = ref::matmul(da, db, m, n, kk);
  auto scale = ref::matmul(ref::absolute(da), ref::absolute(db), m, n, kk);
  auto e = ref::compareScaled(c, want, scale);
  EXPECT_TRUE(ref::withinRelative(e, 1e-5)) << ref::format(e);
}

INSTANTIATE_TEST_SUITE_P(
    OddSizes, Matmul,
    ::testing::Combine(::testing::Values(std::array<int64_t, 3>{1, 1, 1},
                                         std::array<int64_t, 3>{97, 113, 130},
                                         std::array<int64_t, 3>{64, 33, 1025},
                                         std::array<int64_t, 3>{1000, 17, 97}),
                       ::testing::Values(std::array<int64_t, 3>{32, 32, 16}),
                       ::testing::Values(DType::F32, DType::F16, DType::BF16)));

// Block shapes that are not multiples of the dot micro-kernel's rows and
// lanes (loom-vectorize-dot): row remainders, halving column widths, K = 1.
INSTANTIATE_TEST_SUITE_P(
    MicroKernelRemainders, Matmul,
    ::testing::Combine(::testing::Values(std::array<int64_t, 3>{45, 61, 37}),
                       ::testing::Values(std::array<int64_t, 3>{5, 13, 3},
                                         std::array<int64_t, 3>{1, 47, 1},
                                         std::array<int64_t, 3>{7, 31, 8},
                                         std::array<int64_t, 3>{9, 64, 5}),
                       ::testing::Values(DType::F32, DType::BF16)));

// exp2 on the CPU is an inline polynomial (loom-approximate-math), not libm:
// check its accuracy over the whole f32 range and its special values.
TEST(Exp2, PolynomialMatchesLibmAndSpecialValues) {
  dsl::Kernel kernel("exp2_values", [](dsl::KernelBuilder &kb) {
    dsl::Value x = kb.pointer("x", DType::F32), y = kb.pointer("y", DType::F32);
    dsl::Value n = kb.scalar("n", DType::I32);
    int64_t block = kb.constant("BLOCK");
    dsl::Value offs = dsl::program_id(0) * block + dsl::arange(0, block);
    dsl::Value mask = offs < n;
    dsl::store(y, offs, dsl::exp2(dsl::load(x, offs, mask)), mask);
  });
  std::vector<float> x = ref::randomVector(20000, -140.0f, 140.0f);
  for (float v : ref::randomVector(20000, -2.0f, 2.0f))
    x.push_back(v);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> special = {-inf, inf, std::nanf(""), 0.0f, -0.0f, 1.0f, -1.0f,
                                      0.5f, -125.0f, -125.5f, -126.0f, -149.0f, -200.0f,
                                      127.0f, 127.49f, 127.5f, 127.99f, 128.0f, 300.0f};
  x.insert(x.end(), special.begin(), special.end());
  std::vector<float> y(x.size(), ref::poison());
  const int64_t block = 256, n = static_cast<int64_t>(x.size());
  auto k = compile(kernel, {.constants = {{"BLOCK", block}}, .backend = Backend::Cpu});
  k->launch(Grid(uint32_t((n + block - 1) / block)),
            {Arg::buffer(x), Arg::buffer(y), Arg::i32(static_cast<int32_t>(n))});
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double want = std::exp2(static_cast<double>(x[i]));
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(y[i])) << "exp2(NaN) = " << y[i];
    } else if (x[i] >= 128.0f) {
      EXPECT_EQ(y[i], inf) << "exp2(" << x[i] << ")";
    } else if (x[i] < -125.0f) {
      // Flushed below 2^-125, as ex2.approx.ftz does on the GPU.
      EXPECT_GE(y[i], 0.0f) << "exp2(" << x[i] << ")";
      EXPECT_LE(y[i], 2.4e-38f) << "exp2(" << x[i] << ")";
    } else {
      ASSERT_TRUE(std::isfinite(y[i])) << "exp2(" << x[i] << ") = " << y[i];
      worst = std::max(worst, std::abs(y[i] - want) / want);
    }
  }
  EXPECT_EQ(y[x.size() - special.size()], 0.0f) << "exp2(-inf) must be exactly 0";
  EXPECT_EQ(y[x.size() - special.size() + 3], 1.0f) << "exp2(0) must be exactly 1";
  // A few f32 ulps (2^-23 = 1.2e-7 relative per ulp).
  EXPECT_LT(worst, 4e-7) << "worst relative error of exp2 vs float64";
}

// Masked-off lanes of a load may read element 0 of the buffer (branch-free
// loads, MemoryToLinalg.cpp; LLVM may also turn the select back into a
// branch): an empty buffer must still be safe to pass with every lane
// masked off, and give `other` everywhere.
TEST(MaskedLoad, EmptyBufferWithAllLanesMaskedOff) {
  dsl::Kernel kernel("masked_copy", [](dsl::KernelBuilder &kb) {
    dsl::Value x = kb.pointer("x", DType::F32), y = kb.pointer("y", DType::F32);
    dsl::Value n = kb.scalar("n", DType::I32), m = kb.scalar("m", DType::I32);
    int64_t block = kb.constant("BLOCK");
    dsl::Value offs = dsl::program_id(0) * block + dsl::arange(0, block);
    // Lanes past n read nothing and yield 7; lanes past m are not stored.
    dsl::store(y, offs, dsl::load(x, offs, offs < n, 7.0), offs < m);
  });
  auto k = compile(kernel, {.constants = {{"BLOCK", 64}}, .backend = Backend::Cpu});
  std::vector<float> y(100, ref::poison());
  // n = 0: x has no elements and points at a page that may not be read, so
  // a kernel touching it (rather than the runtime's stand-in, or nothing)
  // would crash.
  long pageSize = sysconf(_SC_PAGESIZE);
  void *guard = mmap(nullptr, pageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(guard, MAP_FAILED);
  k->launch(Grid(2), {Arg::buffer(guard, DType::F32, 0), Arg::buffer(y), Arg::i32(0),
                      Arg::i32(100)});
  munmap(guard, pageSize);
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_EQ(y[i], 7.0f) << "lane " << i;
  // A non-empty buffer: the first n lanes are loaded, the rest are `other`.
  std::vector<float> x = ref::randomVector(37, -1.0f, 1.0f);
  std::fill(y.begin(), y.end(), ref::poison());
  k->launch(Grid(2), {Arg::buffer(x), Arg::buffer(y), Arg::i32(37), Arg::i32(100)});
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_EQ(y[i], i < 37 ? x[i] : 7.0f) << "lane " << i;
}

// dsl::derivative through a gathered load: f(x) = tanh(x * b[g]) + b[g] / 2
// with g a gather index (masked past n). df/dx = (1 - t^2) b[g] and df/db[g]
// = (1 - t^2) x + 1/2, with the load's offsets and mask returned for the
// scatter of the chain rule.
TEST(Derivative, ThroughATensorLoad) {
  dsl::Kernel kernel("derivative_through_load", [](dsl::KernelBuilder &kb) {
    dsl::Value x = kb.pointer("x", DType::F32), b = kb.pointer("b", DType::F32);
    dsl::Value g = kb.pointer("g", DType::I32), out = kb.pointer("out", DType::F32);
    dsl::Value at = kb.pointer("at", DType::I32), n = kb.scalar("n", DType::I32);
    int64_t block = kb.constant("BLOCK");
    dsl::Value i = dsl::arange(0, block), valid = i < n;
    dsl::Value gather = dsl::load(g, i, valid, 0);
    std::vector<dsl::LoadDerivative> loads;
    dsl::Value fx;
    dsl::Value dx = dsl::derivative(
        [&](dsl::Value v) {
          dsl::Value bi = dsl::load(b, gather, valid, 0.0);
          return dsl::tanh(v * bi) + bi / 2.0;
        },
        dsl::load(x, i, valid, 0.0), &fx, {b}, &loads);
    ASSERT_EQ(loads.size(), 1u);
    dsl::store(out, i, fx, valid);
    dsl::store(out, i + block, dx, valid);
    dsl::store(out, i + 2 * block, loads[0].tangent, valid);
    dsl::store(at, i, dsl::where(loads[0].mask, loads[0].offsets, -1), i < block);
  });
  const int64_t block = 64, n = 50;
  auto k = compile(kernel, {.constants = {{"BLOCK", block}}, .backend = Backend::Cpu});
  std::vector<float> x = ref::randomVector(block, -2, 2), b = ref::randomVector(9, -2, 2);
  std::vector<int32_t> g(block), at(block, -7);
  for (int64_t j = 0; j < block; ++j)
    g[size_t(j)] = int32_t((j * 5) % 9);
  std::vector<float> out(3 * block, ref::poison());
  k->launch(Grid(1), {Arg::buffer(x), Arg::buffer(b), Arg::buffer(g), Arg::buffer(out),
                      Arg::buffer(at), Arg::i32(n)});
  for (int64_t j = 0; j < n; ++j) {
    double bj = b[size_t(g[size_t(j)])], t = std::tanh(double(x[size_t(j)]) * bj);
    EXPECT_NEAR(out[size_t(j)], t + bj / 2, 1e-5) << j;
    EXPECT_NEAR(out[size_t(block + j)], (1 - t * t) * bj, 1e-5) << j;
    EXPECT_NEAR(out[size_t(2 * block + j)], (1 - t * t) * x[size_t(j)] + 0.5, 1e-5) << j;
  }
  for (int64_t j = 0; j < block; ++j)
    EXPECT_EQ(at[size_t(j)], j < n ? g[size_t(j)] : -1) << j;
}
