//===- BlockMaskTest.cpp - block classification of mask_mods --------------===//
//
// Block masks (BlockMask.h) for masks only known at run time: the
// classification against a brute-force host count, forward and backward
// through the block lists (built per call and passed in) against float64
// references in f32 and bf16, that empty blocks are not visited, and the
// errors for a mask that does not fit the call.
//
//===----------------------------------------------------------------------===//
#include "AttentionTolerance.h"
#include "ExpectError.h"

#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Attention.h"
#include "loom/ops/BlockMask.h"
#include "loom/ops/Reference.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <tuple>

using namespace loom;
using namespace loom::ops;
namespace ref = loom::ops::ref;

namespace {
std::string fmt_name(const char *base, int64_t a, int64_t b) {
  return std::string(base) + "_" + std::to_string(a) + "_" + std::to_string(b);
}

struct Shape4 {
  int64_t B, Sq, Sk, Hq, Hkv, D;
  std::array<int64_t, 4> q() const { return {B, Sq, Hq, D}; }
  std::array<int64_t, 4> k() const { return {B, Sk, Hkv, D}; }
};

/// A mask the kernels cannot analyze: visibility is a function of both
/// positions and the head, the same in the DSL and on the host.
struct CustomMask {
  AttentionVariant variant;
  std::function<bool(int64_t b, int64_t h, int64_t i, int64_t j)> visible;
};

/// Query/key cells of `cellQ` x `cellK` tokens, every third (shifted by the
/// head) hidden, plus every row i with i % 17 == 5 hidden entirely: empty,
/// partial and full tiles, and rows with no visible key.
CustomMask checkerboard(int64_t cellQ, int64_t cellK) {
  CustomMask m;
  m.variant.name = fmt_name("checker", cellQ, cellK);
  m.variant.maskMod = [cellQ, cellK](const VariantContext &c) {
    return ((c.qIdx / cellQ + c.kvIdx / cellK + c.head) % 3 != 0) & (c.qIdx % 17 != 5);
  };
  m.visible = [cellQ, cellK](int64_t, int64_t h, int64_t i, int64_t j) {
    return (i / cellQ + j / cellK + h) % 3 != 0 && i % 17 != 5;
  };
  return m;
}

/// Block-diagonal documents of `doc` tokens: with doc a multiple of the
/// block size every tile is empty or full.
CustomMask blockDiagonal(int64_t doc) {
  CustomMask m;
  m.variant.name = fmt_name("blockdiag", doc, 0);
  m.variant.maskMod = [doc](const VariantContext &c) { return c.qIdx / doc == c.kvIdx / doc; };
  m.visible = [doc](int64_t, int64_t, int64_t i, int64_t j) { return i / doc == j / doc; };
  return m;
}
/// Inputs in `dtype` (bits) plus the values the kernel sees, as doubles.
struct Input {
  std::vector<float> f32;
  std::vector<uint16_t> bits;
  std::vector<double> seen;
  Input(size_t n, DType dtype) {
    f32 = ref::randomVector(n, -1.5f, 1.5f);
    if (dtype == DType::BF16) {
      bits = ref::toBf16Bits(f32);
      seen = ref::toDouble(ref::roundToBf16(f32));
    } else {
      seen = ref::toDouble(f32);
    }
  }
  const void *data() const {
    return bits.empty() ? static_cast<const void *>(f32.data()) : bits.data();
  }
};

struct Output {
  DType dtype;
  std::vector<float> f32;
  std::vector<uint16_t> bits;
  Output(size_t n, DType dtype) : dtype(dtype), f32(n, ref::poison()), bits(n, 0x7fff) {}
  void *data() { return dtype == DType::F32 ? (void *)f32.data() : (void *)bits.data(); }
  std::vector<float> values() const {
    if (dtype == DType::F32)
      return f32;
    std::vector<float> out(bits.size());
    for (size_t i = 0; i < bits.size(); ++i)
      out[i] = bf16ToFloat(bits[i]);
    return out;
  }
};

struct Results {
  std::vector<float> o, lse, dq, dk, dv;
};

struct Problem {
  Shape4 s;
  DType dtype;
  Input q, k, v, dO;
  Problem(const Shape4 &s, DType dtype)
      : s(s), dtype(dtype), q(size_t(s.B * s.Sq * s.Hq * s.D), dtype),
        k(size_t(s.B * s.Sk * s.Hkv * s.D), dtype), v(size_t(s.B * s.Sk * s.Hkv * s.D), dtype),
        dO(size_t(s.B * s.Sq * s.Hq * s.D), dtype) {}

  Tensor4 T(const void *data, std::array<int64_t, 4> shape) const {
    return Tensor4::contiguous(data, dtype, shape);
  }
  /// Forward and backward into poisoned outputs.
  Results run(const AttentionOptions &options) const {
    size_t nq = q.f32.size(), nk = k.f32.size();
    Output o(nq, dtype), dq(nq, dtype), dk(nk, dtype), dv(nk, dtype);
    std::vector<float> lse(size_t(s.B * s.Hq * s.Sq), ref::poison());
    attentionForward(T(q.data(), s.q()), T(k.data(), s.k()), T(v.data(), s.k()), T(o.data(), s.q()),
                     lse.data(), options);
    attentionBackward(T(q.data(), s.q()), T(k.data(), s.k()), T(v.data(), s.k()),
                      T(o.data(), s.q()), lse.data(), T(dO.data(), s.q()), T(dq.data(), s.q()),
                      T(dk.data(), s.k()), T(dv.data(), s.k()), options);
    return {o.values(), lse, dq.values(), dk.values(), dv.values()};
  }
};

void expectMatchesReference(const Problem &p, const Results &r, const CustomMask &mask) {
  const Shape4 &s = p.s;
  ref::RefVariant rv;
  rv.visible = mask.visible;
  double scale = 1.0 / std::sqrt(double(s.D));
  auto fwd = ref::attention(p.q.seen, p.k.seen, p.v.seen, s.B, s.Sq, s.Sk, s.Hq, s.Hkv, s.D,
                            false, scale, nullptr, &rv);
  auto bwd = ref::attentionBackward(p.q.seen, p.k.seen, p.v.seen, p.dO.seen, s.B, s.Sq, s.Sk,
                                    s.Hq, s.Hkv, s.D, false, scale, nullptr, &rv);
  std::optional<ref::AttentionResult> nf;
  std::optional<ref::AttentionGrads> nb;
  if (p.dtype != DType::F32) {
    nf = ref::attention(p.q.seen, p.k.seen, p.v.seen, s.B, s.Sq, s.Sk, s.Hq, s.Hkv, s.D, false,
                        scale, "bf16", &rv);
    nb = ref::attentionBackward(p.q.seen, p.k.seen, p.v.seen, p.dO.seen, s.B, s.Sq, s.Sk, s.Hq,
                                s.Hkv, s.D, false, scale, "bf16", &rv);
  }
  expectAttentionClose("O", p.dtype, r.o, fwd.out, nf ? &nf->out : nullptr);
  auto lseErr = ref::compare(r.lse, fwd.lse, 1.0);
  EXPECT_TRUE(ref::withinRelative(lseErr, p.dtype == DType::F32 ? 1e-5 : 1e-3))
      << "LSE: " << ref::format(lseErr);
  expectAttentionClose("dq", p.dtype, r.dq, bwd.dq, nb ? &nb->dq : nullptr);
  expectAttentionClose("dk", p.dtype, r.dk, bwd.dk, nb ? &nb->dk : nullptr);
  expectAttentionClose("dv", p.dtype, r.dv, bwd.dv, nb ? &nb->dv : nullptr);
}

bool sameBits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// Forward and backward with a block mask built per call and with one
/// passed in (bitwise the same: same lists, same kernels), both against the
/// float64 reference; in f32 also the unmasked-loop path.
void checkMasked(const Shape4 &s, DType dtype, const CustomMask &mask, int64_t block,
                 runtime::Backend backend = runtime::Backend::Cpu) {
  Problem p(s, dtype);
  AttentionOptions options;
  options.variant = mask.variant;
  options.backend = backend;
  options.config = AttentionConfig{block, block, 128};
  Results perCall = p.run(options);
  expectMatchesReference(p, perCall, mask);

  AttentionOptions passed = options;
  passed.blockMask = createBlockMask(s.q(), s.k(), options);
  Results withMask = p.run(passed);
  for (auto [a, b, name] : {std::tuple{&perCall.o, &withMask.o, "O"},
                            std::tuple{&perCall.lse, &withMask.lse, "LSE"},
                            std::tuple{&perCall.dq, &withMask.dq, "dq"},
                            std::tuple{&perCall.dk, &withMask.dk, "dk"},
                            std::tuple{&perCall.dv, &withMask.dv, "dv"}})
    EXPECT_TRUE(sameBits(*a, *b)) << name << " differs between per-call and passed block masks";

  if (dtype == DType::F32 && backend == runtime::Backend::Cpu) {
    AttentionOptions dense = options;
    dense.autoBlockMask = false;
    expectMatchesReference(p, p.run(dense), mask);
  }
}

/// Brute-force kinds of every tile from the host predicate, in global
/// positions.
std::vector<int8_t> bruteForceKinds(const Shape4 &s, int64_t BM, int64_t BN, const CustomMask &m,
                                    const TokenPositions &qp, const TokenPositions &kp) {
  int64_t nQB = (s.Sq + BM - 1) / BM, nKB = (s.Sk + BN - 1) / BN;
  std::vector<int8_t> kinds;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.Hq; ++h)
      for (int64_t mb = 0; mb < nQB; ++mb)
        for (int64_t nb = 0; nb < nKB; ++nb) {
          int64_t valid = 0, visible = 0;
          for (int64_t i = mb * BM; i < std::min(s.Sq, (mb + 1) * BM); ++i)
            for (int64_t j = nb * BN; j < std::min(s.Sk, (nb + 1) * BN); ++j) {
              ++valid;
              visible += m.visible(b, h, qp.offset + i * qp.stride, kp.offset + j * kp.stride);
            }
          kinds.push_back(int8_t(visible == 0 ? 0 : visible == valid ? 2 : 1));
        }
  return kinds;
}
} // namespace

TEST(BlockMask, ClassificationMatchesBruteForce) {
  Shape4 s{2, 150, 133, 4, 2, 32};
  for (bool withPositions : {false, true}) {
    CustomMask m = checkerboard(64, 48);
    AttentionOptions options;
    options.variant = m.variant;
    options.backend = runtime::Backend::Cpu;
    options.config = AttentionConfig{32, 16, 128};
    if (withPositions) { // a strided shard of a longer sequence, as under ring attention
      options.queryPositions = {3, 2, 400};
      options.keyPositions = {1, 3, 500};
    }
    auto bm = createBlockMask(s.q(), s.k(), options);
    auto want = bruteForceKinds(s, 32, 16, m, options.queryPositions, options.keyPositions);
    ASSERT_EQ(bm->kinds.size(), want.size());
    int64_t counts[3] = {0, 0, 0};
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(int(bm->kinds[i]), int(want[i])) << "tile " << i << " positions " << withPositions;
      ++counts[want[i]];
    }
    EXPECT_EQ(bm->count(BlockKind::Empty), counts[0]);
    EXPECT_EQ(bm->count(BlockKind::Partial), counts[1]);
    EXPECT_EQ(bm->count(BlockKind::Full), counts[2]);
    EXPECT_GT(counts[1], 0);
    if (!withPositions) {
      EXPECT_GT(counts[0], 0) << "cells of 64x48 tokens hide whole 32x16 tiles";
    }
    // The lists hold every non-empty tile once, in both orientations.
    int64_t listed = 0, listedT = 0;
    for (int32_t c : bm->kvCounts)
      listed += c;
    for (int32_t c : bm->qCounts)
      listedT += c;
    EXPECT_EQ(listed, counts[1] + counts[2]);
    EXPECT_EQ(listedT, counts[1] + counts[2]);
  }
}

TEST(BlockMask, CheckerboardForwardBackwardF32) {
  checkMasked({2, 150, 133, 4, 2, 32}, DType::F32, checkerboard(24, 40), 32);
}

TEST(BlockMask, CheckerboardForwardBackwardBf16) {
  checkMasked({1, 97, 120, 2, 1, 32}, DType::BF16, checkerboard(20, 36), 32);
}

TEST(BlockMask, FullTilesAtTheRaggedEndKeepBoundsMasks) {
  // Documents of two blocks: every tile empty or full, and the last tiles
  // (seqlens not multiples of 32) are full with rows and columns past the
  // sequences, which must stay masked.
  checkMasked({1, 150, 150, 2, 2, 32}, DType::F32, blockDiagonal(64), 32);
}

TEST(BlockMask, EmptyBlocksAreNotVisited) {
  Shape4 s{1, 512, 512, 2, 1, 32};
  CustomMask m = blockDiagonal(64);
  AttentionOptions options;
  options.variant = m.variant;
  options.backend = runtime::Backend::Cpu;
  options.config = AttentionConfig{32, 32, 128};
  auto bm = createBlockMask(s.q(), s.k(), options);
  // 16 x 16 tiles per head; only the 2 x 2 tiles of each document are
  // visible, all full.
  EXPECT_EQ(bm->numTiles(), 2 * 16 * 16);
  EXPECT_EQ(bm->visitedTiles(), 2 * 16 * 2);
  EXPECT_EQ(bm->count(BlockKind::Partial), 0);
  for (int64_t l = 0; l < 2 * 16; ++l) {
    int64_t m0 = l % 16 / 2 * 2; // the document's first block
    EXPECT_EQ(bm->kvCounts[size_t(2 * l)], 0);     // partial
    EXPECT_EQ(bm->kvCounts[size_t(2 * l + 1)], 2); // full
    EXPECT_EQ(bm->kvIndices[size_t((2 * l + 1) * 16)], int32_t(m0));
    EXPECT_EQ(bm->kvIndices[size_t((2 * l + 1) * 16 + 1)], int32_t(m0 + 1));
  }
  // The kernels visit those lists only and give the reference's results
  // (GQA, so the transposed lists gather both query heads of the group).
  checkMasked({1, 200, 200, 2, 1, 32}, DType::F32, m, 32);
}

TEST(BlockMask, OnTheEmulatedDevice) {
  // The generated CUDA C++ of the list walks (1-element loads reduced to
  // scalars, loop bounds read from memory), run thread by thread.
  checkMasked({1, 40, 36, 2, 1, 32}, DType::BF16, checkerboard(12, 20), 16,
              runtime::Backend::Emu);
}

TEST(BlockMask, SparseForwardTiming) {
  // Printed, not asserted: a forward over 1/8 of the tiles with and
  // without the block mask (the latter masks every tile of every row).
  Shape4 s{1, 1024, 1024, 2, 2, 64};
  CustomMask m = blockDiagonal(128);
  Problem p(s, DType::F32);
  AttentionOptions options;
  options.variant = m.variant;
  options.backend = runtime::Backend::Cpu;
  options.config = AttentionConfig{64, 64, 128};
  AttentionOptions dense = options;
  dense.autoBlockMask = false;
  AttentionOptions passed = options;
  passed.blockMask = createBlockMask(s.q(), s.k(), options);
  std::vector<float> o(p.q.f32.size()), lse(size_t(s.B * s.Hq * s.Sq));
  auto forward = [&](const AttentionOptions &o2) {
    auto start = std::chrono::steady_clock::now();
    attentionForward(p.T(p.q.data(), s.q()), p.T(p.k.data(), s.k()), p.T(p.v.data(), s.k()),
                     p.T(o.data(), s.q()), lse.data(), o2);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  };
  forward(dense), forward(passed); // compile
  double denseMs = forward(dense), maskedMs = forward(passed), perCallMs = forward(options);
  auto start = std::chrono::steady_clock::now();
  auto bm = createBlockMask(s.q(), s.k(), options);
  double buildMs =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ report   ] sparse forward 1024x1024, 2 heads, d64, %lld/%lld tiles: no block "
              "mask %.1f ms, passed block mask %.1f ms, per-call block mask %.1f ms "
              "(building it %.1f ms)\n",
              (long long)bm->visitedTiles(), (long long)bm->numTiles(), denseMs, maskedMs,
              perCallMs, buildMs);
}

TEST(BlockMask, MismatchedMaskIsAnError) {
  std::vector<float> x(64 * 32, 0.5f);
  auto t = Tensor4::contiguous(x.data(), DType::F32, {1, 64, 1, 32});
  CustomMask m = blockDiagonal(16);
  AttentionOptions options;
  options.variant = m.variant;
  options.backend = runtime::Backend::Cpu;
  options.config = AttentionConfig{32, 16, 128};
  auto bm = createBlockMask({1, 64, 1, 32}, {1, 64, 1, 32}, options);
  options.blockMask = bm;
  options.config = AttentionConfig{64, 64, 128};
  expectLoomError([&] { attentionForward(t, t, t, t, nullptr, options); },
                  "attention: block mask blocks 32x16 differ from the kernel config's blockM x "
                  "blockN 64x64");
  // Without a config the kernels take the mask's block sizes.
  options.config.reset();
  attentionForward(t, t, t, t, nullptr, options);
  options.variant = blockDiagonal(8).variant;
  expectLoomError([&] { attentionForward(t, t, t, t, nullptr, options); },
                  "attention: block mask is for variant 'blockdiag_16_0'; the call uses "
                  "'blockdiag_8_0'");
  options.variant = m.variant;
  options.keyPositions = {0, 1, 100};
  expectLoomError([&] { attentionForward(t, t, t, t, nullptr, options); },
                  "attention: block mask is for query positions (offset 0, stride 1, total 64) "
                  "and key positions (offset 0, stride 1, total 64); the call has (offset 0, "
                  "stride 1, total 64) and (offset 0, stride 1, total 100)");
  expectLoomError([&] { createBlockMask({1, 64, 3, 32}, {1, 64, 2, 32}, options); },
                  "createBlockMask: heads_q (3) is not divisible by heads_kv (2)");
}
