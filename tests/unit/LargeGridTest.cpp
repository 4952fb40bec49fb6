//===- LargeGridTest.cpp - batch x heads past the GPU's grid limits -------===//
//
// Issue 19: GPUs cap grid y and z at 65535, and every backend checks the
// same limits, so kernels whose batch x heads axis may pass them declare a
// dsl::LogicalGrid and are launched in legal pieces by
// runtime::launchLogical. Attention (forward, backward, block-mask
// classification) and the ring's kernels (copy, merge) at 65,536 and 70,000
// batch x heads, against float64; tiny seqlen and head dim (and 16x16
// blocks) keep them fast. Outputs are poisoned first. The emulated device
// runs the launch mechanism (LogicalGridLaunch) only: it takes about 1.4 ms
// a block, so attention past 65535 blocks there took 93 s (forward alone).
//
//===----------------------------------------------------------------------===//
#include "ExpectError.h"

#include "loom/dsl/Grid.h"
#include "loom/ops/Attention.h"
#include "loom/ops/Reference.h"
#include "loom/ops/RingAttention.h"
#include "loom/runtime/Communicator.h"
#include "loom/runtime/LogicalGrid.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

using namespace loom;
using namespace loom::ops;
using runtime::Backend;

namespace {
using Shape = std::array<int64_t, 4>;

size_t count(const Shape &s) { return size_t(s[0] * s[1] * s[2] * s[3]); }

// --- The mechanism -----------------------------------------------------------

TEST(LogicalGrid, PiecesCoverTheGridOnceWithinTheLimits) {
  struct Case {
    runtime::LogicalGridSize size;
    uint64_t maxPrograms;
    size_t pieces;
  };
  for (const Case &c : {Case{{1, 65535, 1}, runtime::kMaxGridPrograms, 1},
                        Case{{1, 65536, 1}, runtime::kMaxGridPrograms, 2},
                        Case{{3, 70000, 1}, runtime::kMaxGridPrograms, 2},
                        Case{{2, 3, 70000}, runtime::kMaxGridPrograms, 2},
                        Case{{100, 7, 1}, 30, 28}, // 30 a piece: 30, 30, 30, 10 per row
                        Case{{5, 7, 3}, 12, 12}}) { // whole rows: 2 rows of 5 a piece
    SCOPED_TRACE(::testing::Message() << c.size[0] << " x " << c.size[1] << " x " << c.size[2]
                                      << ", at most " << c.maxPrograms);
    auto pieces = runtime::splitGrid(c.size, c.maxPrograms, "test");
    EXPECT_EQ(pieces.size(), c.pieces);
    std::set<std::array<int64_t, 3>> seen;
    for (const runtime::GridPiece &p : pieces) {
      ASSERT_LE(p.grid.size(), c.maxPrograms);
      for (size_t d = 0; d < 3; ++d)
        ASSERT_LE(p.grid.dims[d], runtime::kMaxGrid[d]);
      for (uint32_t z = 0; z < p.grid.dims[2]; ++z)
        for (uint32_t y = 0; y < p.grid.dims[1]; ++y)
          for (uint32_t x = 0; x < p.grid.dims[0]; ++x)
            ASSERT_TRUE(seen.insert({p.base[0] + x, p.base[1] + y, p.base[2] + z}).second);
    }
    EXPECT_EQ(seen.size(), size_t(c.size[0] * c.size[1] * c.size[2]));
    for (const auto &id : seen)
      for (size_t d = 0; d < 3; ++d)
        ASSERT_TRUE(id[d] >= 0 && id[d] < c.size[d]);
  }
  expectLoomError([] { runtime::splitGrid({1, 0, 1}, 1 << 20, "k"); },
                  "k: logical grid (1, 0, 1) has 0 programs along axis 1; each axis needs 1 to "
                  "2^31 - 1");
}

/// Writes each program's logical (x, y, z) and the logical sizes at its
/// linear index.
dsl::Kernel gridProbeKernel() {
  return dsl::Kernel("grid_probe", [](dsl::KernelBuilder &k) {
    using namespace dsl;
    Value out = k.pointer("out", DType::I32);
    LogicalGrid grid(k);
    Value x = grid.programId(0), y = grid.programId(1), z = grid.programId(2);
    Value linear = ((z.to(DType::I64) * grid.numPrograms(1).to(DType::I64) + y.to(DType::I64)) *
                        grid.numPrograms(0).to(DType::I64) +
                    x.to(DType::I64)) *
                   4;
    Value lane = arange(0, 4);
    Value value = where(lane == 0, x, where(lane == 1, y, where(lane == 2, z, grid.numPrograms(1))));
    store(out, linear + lane.to(DType::I64), value);
  });
}

class LogicalGridLaunch : public ::testing::TestWithParam<Backend> {};

// Every program of a logical grid past 65535 along y or z runs once, with
// its logical ids, on every backend; a plain launch of that grid is refused
// on every backend alike.
TEST_P(LogicalGridLaunch, RunsEveryProgramOnceWithLogicalIds) {
  runtime::Specialization spec;
  spec.backend = GetParam();
  spec.numThreads = 32;
  auto kernel = runtime::compile(gridProbeKernel(), spec);
  for (runtime::LogicalGridSize size :
       {runtime::LogicalGridSize{1, 65536, 1}, runtime::LogicalGridSize{1, 1, 70000}}) {
    SCOPED_TRACE(::testing::Message() << size[0] << " x " << size[1] << " x " << size[2]);
    size_t n = size_t(size[0] * size[1] * size[2]);
    std::vector<int32_t> out(4 * n, -1);
    std::vector<runtime::Arg> args = {runtime::Arg::buffer(out.data(), DType::I32, out.size())};
    uint64_t reported = 0;
    runtime::LogicalLaunchOptions launch;
    launch.afterEach = [&](uint64_t done, uint64_t total) {
      EXPECT_GT(done, reported);
      EXPECT_EQ(total, n);
      reported = done;
    };
    runtime::launchLogical(*kernel, size, args, launch);
    EXPECT_EQ(reported, n);
    for (size_t i = 0; i < n; ++i) {
      int64_t x = int64_t(i) % size[0], y = (int64_t(i) / size[0]) % size[1],
              z = int64_t(i) / (size[0] * size[1]);
      ASSERT_TRUE(out[4 * i] == x && out[4 * i + 1] == y && out[4 * i + 2] == z &&
                  out[4 * i + 3] == size[1])
          << "program " << i << ": (" << out[4 * i] << ", " << out[4 * i + 1] << ", "
          << out[4 * i + 2] << "), size y " << out[4 * i + 3];
    }
  }
  // Raw launches respect the GPU's limits on every backend.
  std::vector<int32_t> out(4);
  std::vector<runtime::Arg> raw = {runtime::Arg::buffer(out.data(), DType::I32, out.size()),
                                   runtime::Arg::i32(0), runtime::Arg::i32(0),
                                   runtime::Arg::i32(0), runtime::Arg::i32(1),
                                   runtime::Arg::i32(65536), runtime::Arg::i32(1)};
  expectLoomError([&] { kernel->launch(runtime::Grid(1, 65536), raw); },
                  "kernel 'grid_probe': grid (1, 65536, 1) exceeds the launch limits (x <= 2^31 "
                  "- 1, y and z <= 65535) along axis 1; a larger grid needs a dsl::LogicalGrid "
                  "and runtime::launchLogical");
}

INSTANTIATE_TEST_SUITE_P(Backends, LogicalGridLaunch, ::testing::Values(Backend::Cpu, Backend::Emu),
                         [](const auto &info) { return runtime::backendName(info.param); });

// --- Attention and the ring --------------------------------------------------

struct Problem {
  Shape shape; // (batch, seqlen, heads, head_dim); k and v alike
  bool causal;
  std::vector<float> q, k, v, dO;
  ref::AttentionResult want;
  ref::AttentionGrads wantGrads;
  double scale() const { return 1 / std::sqrt(double(shape[3])); }
};

Problem problem(Shape s, bool causal, bool backward) {
  Problem p{s, causal, ref::randomVector(count(s), -2, 2), ref::randomVector(count(s), -1, 1),
            ref::randomVector(count(s), -1, 1), ref::randomVector(count(s), -1, 1), {}, {}};
  auto [B, S, H, D] = s;
  p.want = ref::attention(ref::toDouble(p.q), ref::toDouble(p.k), ref::toDouble(p.v), B, S, S, H,
                          H, D, causal, p.scale());
  if (backward)
    p.wantGrads = ref::attentionBackward(ref::toDouble(p.q), ref::toDouble(p.k),
                                         ref::toDouble(p.v), ref::toDouble(p.dO), B, S, S, H, H,
                                         D, causal, p.scale());
  return p;
}

void expectClose(const std::vector<float> &got, const std::vector<double> &want,
                 const char *what) {
  // Relative to the largest element, as the other attention tests.
  ref::ErrorStats e = ref::compare(got, want, std::max(ref::maxAbs(want), 1e-3));
  EXPECT_TRUE(ref::withinRelative(e, 1e-4)) << what << ": " << ref::format(e);
}

Tensor4 f32(const std::vector<float> &x, const Shape &s) {
  return Tensor4::contiguous(x.data(), DType::F32, s);
}

AttentionOptions smallBlocks(Backend backend, bool causal) {
  AttentionOptions o;
  o.backend = backend;
  o.causal = causal;
  o.config = AttentionConfig{16, 16, backend == Backend::Cpu ? 128u : 32u};
  return o;
}

void checkAttention(const Problem &p, const AttentionOptions &options, bool backward) {
  const Shape &s = p.shape;
  std::vector<float> out(count(s), ref::poison()), lse(size_t(s[0] * s[2] * s[1]), ref::poison());
  attentionForward(f32(p.q, s), f32(p.k, s), f32(p.v, s), f32(out, s), lse.data(), options);
  expectClose(out, p.want.out, "O");
  expectClose(lse, p.want.lse, "LSE");
  if (!backward)
    return;
  std::vector<float> dq(count(s), ref::poison()), dk(count(s), ref::poison()),
      dv(count(s), ref::poison());
  attentionBackward(f32(p.q, s), f32(p.k, s), f32(p.v, s), f32(out, s), lse.data(),
                    f32(p.dO, s), f32(dq, s), f32(dk, s), f32(dv, s), options);
  expectClose(dq, p.wantGrads.dq, "dQ");
  expectClose(dk, p.wantGrads.dk, "dK");
  expectClose(dv, p.wantGrads.dv, "dV");
}

// 65,536 = 2 x 32768 heads and 70,000 batches of one head.
const Shape kWideHeads{2, 2, 32768, 8}, kWideBatch{70000, 2, 1, 8};

TEST(LargeGridAttention, CpuForwardAndBackwardPast65535BatchTimesHeads) {
  for (const Shape &s : {kWideHeads, kWideBatch}) {
    SCOPED_TRACE(::testing::Message() << "batch " << s[0] << ", heads " << s[2]);
    Problem p = problem(s, true, true);
    checkAttention(p, smallBlocks(Backend::Cpu, true), true);
  }
}

// A mask_mod variant: its block mask is classified over (query block, key
// block, batch x heads), z past 65535.
TEST(LargeGridAttention, CpuBlockMaskClassificationPast65535) {
  Problem p = problem(kWideBatch, true, false);
  AttentionOptions o = smallBlocks(Backend::Cpu, false);
  o.variant.name = "causal_mask_mod";
  o.variant.maskMod = [](const VariantContext &c) { return c.kvIdx <= c.qIdx; };
  checkAttention(p, o, false);
}

/// The ring over 2 in-process ranks (zigzag), forward and backward, on the
/// whole-sequence problem `p`.
void checkRing(const Problem &p, Backend backend, bool backward) {
  const Shape &s = p.shape;
  auto [B, S, H, D] = s;
  const int world = 2;
  Shape local{B, S / world, H, D};
  std::vector<float> out(count(s), ref::poison()), lse(size_t(B * H * S), ref::poison());
  std::vector<float> dq(count(s), ref::poison()), dk(count(s), ref::poison()),
      dv(count(s), ref::poison());
  RingAttentionOptions options;
  options.attention = smallBlocks(backend, p.causal);
  options.layout = RingLayout::Zigzag;
  auto errors = runtime::runInProcessRanks(world, [&](runtime::Communicator &comm) {
    int r = comm.rank();
    auto shard = [&](const std::vector<float> &whole) {
      std::vector<float> l(count(local));
      shardSequence(f32(whole, s), l.data(), options.layout, r, world);
      return l;
    };
    std::vector<float> lq = shard(p.q), lk = shard(p.k), lv = shard(p.v), ldo = shard(p.dO);
    std::vector<float> lo(count(local), ref::poison()), llse(size_t(B * H * (S / world)));
    ringAttentionForward(comm, f32(lq, local), f32(lk, local), f32(lv, local), f32(lo, local),
                         llse.data(), options);
    unshardSequence(lo.data(), f32(out, s), options.layout, r, world);
    unshardRows(llse.data(), lse.data(), B, H, S, options.layout, r, world);
    if (!backward)
      return;
    std::vector<float> ldq(count(local), ref::poison()), ldk(count(local), ref::poison()),
        ldv(count(local), ref::poison());
    ringAttentionBackward(comm, f32(lq, local), f32(lk, local), f32(lv, local), f32(lo, local),
                          llse.data(), f32(ldo, local), f32(ldq, local), f32(ldk, local),
                          f32(ldv, local), options);
    unshardSequence(ldq.data(), f32(dq, s), options.layout, r, world);
    unshardSequence(ldk.data(), f32(dk, s), options.layout, r, world);
    unshardSequence(ldv.data(), f32(dv, s), options.layout, r, world);
  });
  for (const std::exception_ptr &e : errors)
    if (e)
      std::rethrow_exception(e);
  expectClose(out, p.want.out, "ring O");
  expectClose(lse, p.want.lse, "ring LSE");
  if (!backward)
    return;
  expectClose(dq, p.wantGrads.dq, "ring dQ");
  expectClose(dk, p.wantGrads.dk, "ring dK");
  expectClose(dv, p.wantGrads.dv, "ring dV");
}

TEST(LargeGridRing, CpuForwardAndBackwardPast65535BatchTimesHeads) {
  for (const Shape &s : {Shape{2, 4, 32768, 8}, Shape{70000, 4, 1, 8}}) {
    SCOPED_TRACE(::testing::Message() << "batch " << s[0] << ", heads " << s[2]);
    checkRing(problem(s, true, true), Backend::Cpu, true);
  }
}
} // namespace
