//===- EmuBackendTest.cpp - the generated CUDA C++ run on the emulator ----===//
//
// The same kernels as CpuKernelTest, through the CUDA code path: generated
// CUDA C++, compiled by the host compiler against the emulated primitives,
// run thread by thread. Smaller sizes: the emulator is slow.
//
//===----------------------------------------------------------------------===//
#include "loom/Support/Error.h"
#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Examples.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/CudaBuild.h"
#include "loom/runtime/EmuLaunch.h"
#include "loom/runtime/Kernel.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace loom;
using namespace loom::runtime;
namespace ref = loom::ops::ref;

namespace {
Specialization emuSpec(dsl::Constants constants) {
  Specialization spec;
  spec.constants = std::move(constants);
  spec.backend = Backend::Emu;
  return spec;
}

struct Typed {
  std::vector<float> f32, seen;
  std::vector<uint16_t> half;
  Typed(size_t n, DType t, float lo, float hi) {
    f32 = ref::randomVector(n, lo, hi);
    if (t == DType::F16) {
      half = ref::toF16Bits(f32);
      seen = ref::roundToF16(f32);
    } else if (t == DType::BF16) {
      half = ref::toBf16Bits(f32);
      seen = ref::roundToBf16(f32);
    } else {
      seen = f32;
    }
  }
  Arg arg(DType t) const {
    return t == DType::F32 ? Arg::buffer(f32.data(), t, f32.size())
                           : Arg::buffer(half.data(), t, half.size());
  }
};
} // namespace

class EmuVectorAdd : public ::testing::TestWithParam<std::tuple<int64_t, DType>> {};

TEST_P(EmuVectorAdd, MatchesFloat64) {
  auto [n, dtype] = GetParam();
  Typed x(n, dtype, -10, 10), y(n, dtype, -10, 10);
  auto k = compile(ops::vectorAddKernel(dtype), emuSpec({{"BLOCK", 128}}));
  ASSERT_EQ(k->backend(), Backend::Emu);
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i)
    want[i] = double(x.seen[i]) + double(y.seen[i]);
  Grid grid(uint32_t((n + 127) / 128));
  if (dtype == DType::F32) {
    std::vector<float> out(n, ref::poison());
    k->launch(grid, {x.arg(dtype), y.arg(dtype), Arg::buffer(out), Arg::i32(n)});
    auto e = ref::compare(out, want);
    EXPECT_TRUE(ref::withinRelative(e, 1e-6)) << ref::format(e);
  } else {
    std::vector<uint16_t> out(n, 0x7fff);
    k->launch(grid, {x.arg(dtype), y.arg(dtype), Arg::buffer(out.data(), dtype, n), Arg::i32(n)});
    std::vector<float> got(n);
    for (int64_t i = 0; i < n; ++i)
      got[i] = dtype == DType::F16 ? halfToFloat(out[i]) : bf16ToFloat(out[i]);
    auto e = ref::compare(got, want, 1e-2);
    EXPECT_TRUE(ref::withinRelative(e, dtype == DType::F16 ? 1.0 / 2048 : 1.0 / 256))
        << ref::format(e);
  }
}

INSTANTIATE_TEST_SUITE_P(OddSizes, EmuVectorAdd,
                         ::testing::Combine(::testing::Values(1, 97, 300),
                                            ::testing::Values(DType::F32, DType::BF16)));

TEST(EmuSoftmax, MatchesFloat64) {
  const int64_t rows = 5, cols = 300;
  auto x = ref::randomVector(rows * cols, -8, 8);
  std::vector<float> y(rows * cols, ref::poison());
  auto k = compile(ops::softmaxKernel(DType::F32), emuSpec({{"BLOCK", 128}}));
  k->launch(Grid(rows), {Arg::buffer(x), Arg::buffer(y), Arg::i32(cols), Arg::i32(cols)});
  auto e = ref::compare(y, ref::softmaxRows(ref::toDouble(x), rows, cols), 1e-30);
  // ex2.approx is within 2 ulp: the f32 bound of 1e-4 holds with margin.
  EXPECT_TRUE(ref::withinRelative(e, 1e-4)) << ref::format(e);
}

class EmuMatmul : public ::testing::TestWithParam<DType> {};

TEST_P(EmuMatmul, MatchesFloat64) {
  DType dtype = GetParam();
  const int64_t m = 40, n = 24, kk = 50;
  Typed a(m * kk, dtype, -1, 1), b(kk * n, dtype, -1, 1);
  std::vector<float> c(m * n, ref::poison());
  auto k = compile(ops::matmulKernel(dtype),
                   emuSpec({{"BLOCK_M", 32}, {"BLOCK_N", 16}, {"BLOCK_K", 16}}));
  k->launch(Grid(2, 2), {a.arg(dtype), b.arg(dtype), Arg::buffer(c), Arg::i32(m), Arg::i32(n),
                         Arg::i32(kk), Arg::i32(kk), Arg::i32(n), Arg::i32(n)});
  auto da = ref::toDouble(a.seen), db = ref::toDouble(b.seen);
  auto e = ref::compareScaled(c, ref::matmul(da, db, m, n, kk),
                              ref::matmul(ref::absolute(da), ref::absolute(db), m, n, kk));
  EXPECT_TRUE(ref::withinRelative(e, 1e-5)) << ref::format(e);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, EmuMatmul,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16));

TEST(EmuChecks, OutOfBoundsIndexIsReportedNotExecuted) {
  // Unmasked load of BLOCK elements from a buffer of 100: the last program
  // reads past the end. The CPU backend would read garbage; emu reports it.
  dsl::Kernel bad("oob_copy", [](dsl::KernelBuilder &k) {
    dsl::Value x = k.pointer("x", DType::F32), y = k.pointer("y", DType::F32);
    dsl::Value offs = dsl::program_id(0) * 64 + dsl::arange(0, 64);
    dsl::store(y, offs, dsl::load(x, offs), offs < 100);
  });
  std::vector<float> x(100, 1.f), y(100, ref::poison());
  auto k = compile(bad, emuSpec({}));
  try {
    k->launch(Grid(2), {Arg::buffer(x), Arg::buffer(y)});
    ADD_FAILURE() << "out-of-bounds load not detected";
  } catch (const Error &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("oob_copy"), std::string::npos) << msg;
    EXPECT_NE(msg.find("global load: 4 bytes at"), std::string::npos) << msg;
    EXPECT_NE(msg.find("x: 400 bytes (access at byte offset 400)"), std::string::npos) << msg;
  }
}

TEST(EmuChecks, GeneratedKernelsAreRaceFree) {
  // The shared-memory race detector on: every tile op the code generator
  // emits (dot through tensor cores, reductions, broadcasts) must order its
  // shared-memory traffic with barriers.
  setenv("LOOM_EMU_RACE_CHECK", "1", 1);
  struct Unset {
    ~Unset() { unsetenv("LOOM_EMU_RACE_CHECK"); }
  } unset;
  const int64_t m = 32, n = 16, kk = 32;
  Typed a(m * kk, DType::BF16, -1, 1), b(kk * n, DType::BF16, -1, 1);
  std::vector<float> c(m * n, ref::poison());
  auto k = compile(ops::matmulKernel(DType::BF16),
                   emuSpec({{"BLOCK_M", 32}, {"BLOCK_N", 16}, {"BLOCK_K", 16}}));
  k->launch(Grid(1, 1), {a.arg(DType::BF16), b.arg(DType::BF16), Arg::buffer(c), Arg::i32(m),
                         Arg::i32(n), Arg::i32(kk), Arg::i32(kk), Arg::i32(n), Arg::i32(n)});
  auto da = ref::toDouble(a.seen), db = ref::toDouble(b.seen);
  auto e = ref::compareScaled(c, ref::matmul(da, db, m, n, kk),
                              ref::matmul(ref::absolute(da), ref::absolute(db), m, n, kk));
  EXPECT_TRUE(ref::withinRelative(e, 1e-5)) << ref::format(e);
  const int64_t rows = 3, cols = 200;
  auto x = ref::randomVector(rows * cols, -4, 4);
  std::vector<float> y(rows * cols, ref::poison());
  compile(ops::softmaxKernel(DType::F32), emuSpec({{"BLOCK", 64}}))
      ->launch(Grid(rows), {Arg::buffer(x), Arg::buffer(y), Arg::i32(cols), Arg::i32(cols)});
  EXPECT_TRUE(ref::withinRelative(
      ref::compare(y, ref::softmaxRows(ref::toDouble(x), rows, cols), 1e-30), 1e-4));
}

TEST(EmuPipeline, EveryStageCountGivesTheSameProductAndIsRaceFree) {
  // loom-pipeline-dot-operands copies the matmul's A and B tiles numStages - 1
  // iterations ahead into shared-memory slots. The emulator lands cp.async
  // copies only when a wait retires their group, so a wait count that
  // leaves a slot's group pending reads stale data; the race detector sees
  // the element-wise fallback's stores into a slot (a cp.async landing is
  // seen at its wait, not at its issue). K = 100 leaves a ragged last tile (zero-filled past the bound) and
  // rows 200 bytes apart, so odd rows take the element-wise fallback; K = 96
  // is aligned throughout. The arithmetic is the same for every stage count:
  // the products must agree bit for bit, and with float64.
  setenv("LOOM_EMU_RACE_CHECK", "1", 1);
  struct Unset {
    ~Unset() { unsetenv("LOOM_EMU_RACE_CHECK"); }
  } unset;
  const dsl::Constants blocks{{"BLOCK_M", 32}, {"BLOCK_N", 16}, {"BLOCK_K", 16}};
  for (int64_t kk : {100, 96}) {
    SCOPED_TRACE("K = " + std::to_string(kk));
    const int64_t m = 48, n = 24;
    Typed a(m * kk, DType::BF16, -1, 1), b(kk * n, DType::BF16, -1, 1);
    auto da = ref::toDouble(a.seen), db = ref::toDouble(b.seen);
    auto want = ref::matmul(da, db, m, n, kk);
    auto scale = ref::matmul(ref::absolute(da), ref::absolute(db), m, n, kk);
    std::vector<float> unpipelined;
    for (unsigned stages : {0u, 1u, 2u, 3u, 4u}) {
      SCOPED_TRACE("stages = " + std::to_string(stages));
      Specialization spec = emuSpec(blocks);
      spec.numStages = stages;
      auto source = generateCudaSource(ops::matmulKernel(DType::BF16), spec, 128, nullptr);
      EXPECT_EQ(source.code.find("loom::tile::async_copy") != std::string::npos, stages > 0);
      if (stages > 0)
        EXPECT_NE(source.code.find(", " + std::to_string(stages) + ">(v"), std::string::npos)
            << "slots per buffer";
      std::vector<float> c(m * n, ref::poison());
      compile(ops::matmulKernel(DType::BF16), spec)
          ->launch(Grid(uint32_t((m + 31) / 32), uint32_t((n + 15) / 16)),
                   {a.arg(DType::BF16), b.arg(DType::BF16), Arg::buffer(c), Arg::i32(m),
                    Arg::i32(n), Arg::i32(kk), Arg::i32(kk), Arg::i32(n), Arg::i32(n)});
      auto e = ref::compareScaled(c, want, scale);
      EXPECT_TRUE(ref::withinRelative(e, 1e-5)) << ref::format(e);
      if (stages == 0)
        unpipelined = c;
      else
        EXPECT_EQ(c, unpipelined);
    }
  }
}

TEST(EmuCounters, OneLaunchOfAGeneratedMatmul) {
  // One block of a 32x16 bf16 tile over K = 64 in BLOCK_K = 16 steps: the
  // generated loop (marked LOOM_LOOP_ITER) runs 4 times; each dot of 32x16x16
  // is (32/16) * (16/8) * (16/16) = 4 mma.m16n8k16 over the block's warps.
  const int64_t m = 32, n = 16, kk = 64;
  Typed a(m * kk, DType::BF16, -1, 1), b(kk * n, DType::BF16, -1, 1);
  std::vector<float> c(m * n, ref::poison());
  auto k = compile(ops::matmulKernel(DType::BF16),
                   emuSpec({{"BLOCK_M", 32}, {"BLOCK_N", 16}, {"BLOCK_K", 16}}));
  const Arg args[] = {a.arg(DType::BF16), b.arg(DType::BF16), Arg::buffer(c), Arg::i32(m),
                      Arg::i32(n), Arg::i32(kk), Arg::i32(kk), Arg::i32(n), Arg::i32(n)};
  const device::emu::Counters counts = emuCounters(*k, Grid(1, 1), args);
  auto da = ref::toDouble(a.seen), db = ref::toDouble(b.seen);
  auto e = ref::compareScaled(c, ref::matmul(da, db, m, n, kk),
                              ref::matmul(ref::absolute(da), ref::absolute(db), m, n, kk));
  EXPECT_TRUE(ref::withinRelative(e, 1e-5)) << ref::format(e);
  EXPECT_EQ(counts.blocks, 1u);
  EXPECT_EQ(counts.total.mma.at("mma.m16n8k16.f32.bf16"), 16u) << counts.to_string();
  ASSERT_EQ(counts.loops.size(), 1u) << counts.to_string();
  EXPECT_EQ(counts.loops[0].iterations, 4u);
  EXPECT_EQ(counts.loops[0].counts.mma_total(), 16u);
  EXPECT_GT(counts.loops[0].counts.ldmatrix, 0u);
  EXPECT_GT(counts.loops[0].counts.barriers, 0u);
  // Every lane of a request was matched: a 16-byte cp.async chunk per lane.
  // A 16-byte-aligned chunk lies in one 32-byte sector, and two chunks share
  // one at best; where between the two depends on the host allocator's
  // alignment of the inputs (16 bytes from malloc, more elsewhere), so only
  // the bounds are exact.
  EXPECT_GT(counts.total.cp_async_chunks, 0u);
  EXPECT_EQ(counts.total.cp_async_bytes, 16 * counts.total.cp_async_chunks);
  EXPECT_GE(counts.total.cp_async_sectors * 32, counts.total.cp_async_bytes)
      << counts.to_string();
  EXPECT_LE(counts.total.cp_async_sectors, counts.total.cp_async_chunks) << counts.to_string();

  // The options reach the emulator: a CPU kernel is refused by name.
  auto cpu = compile(ops::vectorAddKernel(DType::F32),
                     {.constants = {{"BLOCK", 128}}, .backend = Backend::Cpu});
  try {
    (void)emuCounters(*cpu, Grid(1), {});
    ADD_FAILURE() << "expected an error";
  } catch (const Error &err) {
    EXPECT_NE(std::string(err.what()).find("counters need the emu backend"), std::string::npos)
        << err.what();
  }
}

TEST(EmuPipeline, StageCountOutOfRangeIsAnError) {
  Specialization spec = emuSpec({{"BLOCK_M", 32}, {"BLOCK_N", 16}, {"BLOCK_K", 16}});
  spec.numStages = 9;
  try {
    compile(ops::matmulKernel(DType::BF16), spec);
    FAIL() << "9 stages compiled";
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("pipeline stages must be from 0 to 8, got 9"),
              std::string::npos)
        << e.what();
  }
}
