//===- AttentionTest.cpp - flash attention forward vs float64 -------------===//
#include "AttentionTolerance.h"
#include "ExpectError.h"
#include "TypedBuffers.h"

#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Attention.h"
#include "loom/ops/Reference.h"
#include "loom/cuda/Nvrtc.h"
#include "loom/runtime/CudaBuild.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <fmt/format.h>

using namespace loom;
using namespace loom::ops;
namespace ref = loom::ops::ref;

namespace {
struct Problem {
  int64_t batch, seqlenQ, seqlenK, headsQ, headsKV, headDim;
  bool causal;
};

std::string describe(const Problem &p) {
  return fmt::format("b{}_sq{}_sk{}_hq{}_hkv{}_d{}{}", p.batch, p.seqlenQ, p.seqlenK, p.headsQ,
                     p.headsKV, p.headDim, p.causal ? "_causal" : "");
}

using Input = TypedInput;
using Output = TypedOutput;

using ref::maxAbs;

using ref::maxAbsError;

/// Runs attention forward and checks O and LSE against float64 with the
/// FlashAttention rule for f16/bf16 (error <= 2x a naive same-precision
/// attention's + 1e-4) and normwise relative error < 1e-4 for f32.
void checkForward(const Problem &p, DType dtype, runtime::Backend backend, int64_t block = 0,
                  unsigned threads = 128, unsigned stages = 2) {
  std::array<int64_t, 4> qShape{p.batch, p.seqlenQ, p.headsQ, p.headDim};
  std::array<int64_t, 4> kShape{p.batch, p.seqlenK, p.headsKV, p.headDim};
  size_t nq = size_t(p.batch * p.seqlenQ * p.headsQ * p.headDim);
  size_t nk = size_t(p.batch * p.seqlenK * p.headsKV * p.headDim);
  Input q(nq, dtype), k(nk, dtype), v(nk, dtype);
  Output o(nq, dtype);
  std::vector<float> lse(size_t(p.batch * p.headsQ * p.seqlenQ), ref::poison());
  AttentionOptions options;
  options.causal = p.causal;
  options.backend = backend;
  if (block)
    options.config = AttentionConfig{block, block, threads, stages};
  attentionForward(Tensor4::contiguous(q.data(), dtype, qShape),
                   Tensor4::contiguous(k.data(), dtype, kShape),
                   Tensor4::contiguous(v.data(), dtype, kShape),
                   Tensor4::contiguous(o.data(), dtype, qShape), lse.data(), options);
  double scale = 1.0 / std::sqrt(double(p.headDim));
  auto want = ref::attention(q.seen, k.seen, v.seen, p.batch, p.seqlenQ, p.seqlenK, p.headsQ,
                             p.headsKV, p.headDim, p.causal, scale);
  std::vector<float> got = o.values();
  auto lseErr = ref::compare(lse, want.lse, 1.0);
  EXPECT_TRUE(ref::withinRelative(lseErr, dtype == DType::F32 ? 1e-5 : 1e-3))
      << "LSE: " << ref::format(lseErr);
  if (dtype == DType::F32) {
    auto e = ref::compare(got, want.out, std::max(maxAbs(want.out), 1e-3));
    EXPECT_TRUE(ref::withinRelative(e, 1e-4)) << "O: " << ref::format(e);
    return;
  }
  auto naive = ref::attention(q.seen, k.seen, v.seen, p.batch, p.seqlenQ, p.seqlenK, p.headsQ,
                              p.headsKV, p.headDim, p.causal, scale, dtypeName(dtype).data());
  std::vector<float> naiveOut(naive.out.begin(), naive.out.end());
  double kernelErr = maxAbsError(got, want.out), naiveErr = maxAbsError(naiveOut, want.out);
  EXPECT_LE(kernelErr, 2 * naiveErr + 1e-4)
      << "kernel error " << kernelErr << " vs naive " << dtypeName(dtype) << " error " << naiveErr;
}
/// Forward then backward; dq, dk, dv checked against float64 with the same
/// rules as the forward.
void checkBackward(const Problem &p, DType dtype, runtime::Backend backend, int64_t block = 0,
                   unsigned threads = 128, unsigned stages = 2, unsigned cpuThreads = 0) {
  std::array<int64_t, 4> qShape{p.batch, p.seqlenQ, p.headsQ, p.headDim};
  std::array<int64_t, 4> kShape{p.batch, p.seqlenK, p.headsKV, p.headDim};
  size_t nq = size_t(p.batch * p.seqlenQ * p.headsQ * p.headDim);
  size_t nk = size_t(p.batch * p.seqlenK * p.headsKV * p.headDim);
  Input q(nq, dtype), k(nk, dtype), v(nk, dtype), dO(nq, dtype);
  Output o(nq, dtype), dq(nq, dtype), dk(nk, dtype), dv(nk, dtype);
  std::vector<float> lse(size_t(p.batch * p.headsQ * p.seqlenQ), ref::poison());
  AttentionOptions options;
  options.causal = p.causal;
  options.backend = backend;
  options.cpuThreads = cpuThreads;
  if (block)
    options.config = AttentionConfig{block, block, threads, stages};
  auto T = [&](const void *data, std::array<int64_t, 4> shape) {
    return Tensor4::contiguous(data, dtype, shape);
  };
  attentionForward(T(q.data(), qShape), T(k.data(), kShape), T(v.data(), kShape),
                   T(o.data(), qShape), lse.data(), options);
  attentionBackward(T(q.data(), qShape), T(k.data(), kShape), T(v.data(), kShape),
                    T(o.data(), qShape), lse.data(), T(dO.data(), qShape),
                    T(dq.data(), qShape), T(dk.data(), kShape),
                    T(dv.data(), kShape), options);
  double scale = 1.0 / std::sqrt(double(p.headDim));
  auto want = ref::attentionBackward(q.seen, k.seen, v.seen, dO.seen, p.batch, p.seqlenQ,
                                     p.seqlenK, p.headsQ, p.headsKV, p.headDim, p.causal, scale);
  std::optional<ref::AttentionGrads> naive;
  if (dtype != DType::F32)
    naive = ref::attentionBackward(q.seen, k.seen, v.seen, dO.seen, p.batch, p.seqlenQ,
                                   p.seqlenK, p.headsQ, p.headsKV, p.headDim, p.causal, scale,
                                   dtypeName(dtype).data());
  // The f32 floor: with one visible key per row (seqlen_k = 1) dP equals
  // delta exactly, the true dQ/dK are 0, and f32 gets them as a difference
  // of terms of dP's size rounded differently (FMA in the dot, rounded
  // products in delta): a few f32 ulps of |dP| <= d * max|dO| * max|V|,
  // the best f32 can do. The floor is 1e-3 of that bound (a fixed 2e-3 let
  // the rounding of |dP| ~ 5 at d = 32 exceed 1e-4 of it on some inputs).
  const double dPBound = double(p.headDim) * ref::maxAbs(dO.seen) * ref::maxAbs(v.seen);
  auto check = [&](const char *name, const Output &got, const std::vector<double> &ref64,
                   const std::vector<double> *refLow) {
    expectAttentionClose(name, dtype, got.values(), ref64, refLow, 1e-3 * dPBound);
  };
  check("dq", dq, want.dq, naive ? &naive->dq : nullptr);
  check("dk", dk, want.dk, naive ? &naive->dk : nullptr);
  check("dv", dv, want.dv, naive ? &naive->dv : nullptr);
}
} // namespace

class AttentionBackwardCpu : public ::testing::TestWithParam<std::tuple<Problem, DType>> {};

TEST_P(AttentionBackwardCpu, GradientsMatchFloat64) {
  auto [p, dtype] = GetParam();
  checkBackward(p, dtype, runtime::Backend::Cpu);
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, AttentionBackwardCpu,
    ::testing::Combine(
        ::testing::Values(Problem{1, 1, 1, 1, 1, 32, false}, Problem{2, 97, 97, 4, 2, 64, true},
                          Problem{1, 113, 203, 2, 1, 64, false},
                          Problem{1, 203, 113, 2, 2, 32, true}, // rows with no visible key
                          Problem{1, 130, 130, 4, 1, 128, true}),
        ::testing::Values(DType::F32, DType::BF16)),
    [](const auto &info) {
      return describe(std::get<0>(info.param)) + "_" +
             std::string(dtypeName(std::get<1>(info.param)));
    });

TEST(AttentionBackwardCpu, OnePassAtEveryThreadCount) {
  // The CPU's one-pass backward splits the 11 key blocks into G groups,
  // about 2 x threads programs over batch x kv heads (4 here), at most 4:
  // 1 thread gives G = 1, 3 threads G = 2 (blocks 0, 2, ... and 1, 3,
  // ...), 8 threads G = 4; each group adds into its own dQ partial. Every
  // split must give float64's gradients, with batch 2, GQA (2 query heads
  // per kv head) and causal, in f32 and bf16.
  for (unsigned cpuThreads : {1u, 3u, 8u}) {
    SCOPED_TRACE("cpuThreads = " + std::to_string(cpuThreads));
    checkBackward(Problem{2, 300, 700, 4, 2, 64, true}, DType::F32, runtime::Backend::Cpu, 0, 128,
                  2, cpuThreads);
  }
  checkBackward(Problem{2, 300, 700, 4, 2, 64, false}, DType::BF16, runtime::Backend::Cpu, 0, 128,
                2, 3);
}

TEST(AttentionBackwardCpu, OnePassIsBitwiseReproducibleAtAThreadCount) {
  // The dQ partials are summed in group order, never in completion order.
  const std::array<int64_t, 4> shape{1, 500, 2, 64};
  const size_t n = 500 * 2 * 64;
  std::vector<float> q = ref::randomVector(n, -1, 1), k = ref::randomVector(n, -1, 1),
                     v = ref::randomVector(n, -1, 1), dO = ref::randomVector(n, -1, 1);
  std::vector<float> o(n), lse(1000);
  AttentionOptions options;
  options.causal = true;
  options.backend = runtime::Backend::Cpu;
  options.cpuThreads = 3;
  auto T = [&](const std::vector<float> &x) { return Tensor4::contiguous(x.data(), DType::F32, shape); };
  attentionForward(T(q), T(k), T(v), T(o), lse.data(), options);
  std::vector<float> first[3];
  for (int run = 0; run < 2; ++run) {
    std::vector<float> dq(n, ref::poison()), dk(n, ref::poison()), dv(n, ref::poison());
    attentionBackward(T(q), T(k), T(v), T(o), lse.data(), T(dO), T(dq), T(dk), T(dv), options);
    if (run == 0) {
      first[0] = dq, first[1] = dk, first[2] = dv;
      continue;
    }
    EXPECT_EQ(std::memcmp(dq.data(), first[0].data(), n * 4), 0) << "dq differs bitwise";
    EXPECT_EQ(std::memcmp(dk.data(), first[1].data(), n * 4), 0) << "dk differs bitwise";
    EXPECT_EQ(std::memcmp(dv.data(), first[2].data(), n * 4), 0) << "dv differs bitwise";
  }
}

TEST(AttentionBackwardEmu, GradientsOnTheEmulatedDevice) {
  checkBackward(Problem{1, 33, 40, 2, 1, 32, true}, DType::BF16, runtime::Backend::Emu, 32);
}

TEST(AttentionBackwardEmu, DefaultGpuConfigAtHeadDim256) {
  // The untuned GPU default at the largest head dim (16x16 blocks on 8
  // warps, accumulators in mma fragments, K/V staged by cp.async chunks) on
  // the emulated device.
  checkBackward(Problem{1, 20, 24, 1, 1, 256, true}, DType::BF16, runtime::Backend::Emu);
}

TEST(AttentionBackwardEmu, GradientsWithAccumulatorsInMmaLayouts) {
  // 64x64 blocks on 4 warps: every dot result, dK/dV/dQ carried across the
  // loop, in #loom.mma<4, 1> (loom-assign-layouts), P and dS staged from it.
  checkBackward(Problem{1, 70, 75, 1, 1, 32, true}, DType::F16, runtime::Backend::Emu, 64, 128);
}

class AttentionCpu : public ::testing::TestWithParam<std::tuple<Problem, DType>> {};

TEST_P(AttentionCpu, ForwardMatchesFloat64) {
  auto [p, dtype] = GetParam();
  checkForward(p, dtype, runtime::Backend::Cpu);
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, AttentionCpu,
    ::testing::Combine(
        ::testing::Values(Problem{1, 1, 1, 1, 1, 32, false}, Problem{2, 97, 97, 4, 2, 64, true},
                          Problem{1, 113, 203, 2, 1, 128, false},
                          Problem{1, 203, 113, 2, 2, 64, true}, // rows with no visible key
                          Problem{1, 200, 200, 3, 3, 40, true}, Problem{1, 64, 31, 8, 1, 256, false}),
        ::testing::Values(DType::F32, DType::BF16, DType::F16)),
    [](const auto &info) {
      return describe(std::get<0>(info.param)) + "_" +
             std::string(dtypeName(std::get<1>(info.param)));
    });

TEST(AttentionCpu, LongOddSequences) {
  // The long odd lengths, once each (the float64 reference is
  // quadratic): 1023 x 1025 both ways, forward and backward, and 3816.
  checkForward(Problem{1, 1023, 1025, 2, 1, 64, true}, DType::BF16, runtime::Backend::Cpu);
  checkBackward(Problem{1, 1025, 1023, 2, 1, 64, true}, DType::F32, runtime::Backend::Cpu);
  checkForward(Problem{1, 3816, 3816, 1, 1, 64, true}, DType::F32, runtime::Backend::Cpu);
}

TEST(AttentionCpu, FullyMaskedRowsAreZeroWithMinusInfinityLse) {
  // Causal with seqlen_q > seqlen_k: the first seqlen_q - seqlen_k rows see nothing.
  const int64_t sq = 40, sk = 8, d = 32;
  auto q = ref::randomVector(sq * d, -1, 1), k = ref::randomVector(sk * d, -1, 1),
       v = ref::randomVector(sk * d, -1, 1);
  std::vector<float> o(sq * d, ref::poison()), lse(sq, ref::poison());
  AttentionOptions options;
  options.causal = true;
  options.backend = runtime::Backend::Cpu;
  attentionForward(Tensor4::contiguous(q.data(), DType::F32, {1, sq, 1, d}),
                   Tensor4::contiguous(k.data(), DType::F32, {1, sk, 1, d}),
                   Tensor4::contiguous(v.data(), DType::F32, {1, sk, 1, d}),
                   Tensor4::contiguous(o.data(), DType::F32, {1, sq, 1, d}), lse.data(), options);
  for (int64_t i = 0; i < sq - sk; ++i) {
    EXPECT_EQ(lse[i], -INFINITY) << "row " << i;
    for (int64_t c = 0; c < d; ++c)
      ASSERT_EQ(o[i * d + c], 0.0f) << "row " << i;
  }
  for (int64_t i = sq - sk; i < sq; ++i)
    EXPECT_TRUE(std::isfinite(lse[i])) << "row " << i;
}

TEST(AttentionCpu, StridedLayoutsAndDeterminism) {
  // Q, K, V and O stored as (batch, heads, seqlen, head_dim): strides differ
  // from the logical (batch, seqlen, heads, head_dim) order.
  const int64_t B = 2, S = 57, H = 3, D = 64;
  auto bhsd = [&](const std::vector<float> &data) {
    Tensor4 t{data.data(), DType::F32, {B, S, H, D}, {H * S * D, D, S * D, 1}};
    return t;
  };
  auto q = ref::randomVector(B * S * H * D, -1, 1), k = ref::randomVector(B * S * H * D, -1, 1),
       v = ref::randomVector(B * S * H * D, -1, 1);
  std::vector<float> o1(B * S * H * D, ref::poison()), o2 = o1;
  AttentionOptions options;
  options.backend = runtime::Backend::Cpu;
  options.causal = true;
  Tensor4 out1 = bhsd(o1), out2 = bhsd(o2);
  attentionForward(bhsd(q), bhsd(k), bhsd(v), out1, nullptr, options);
  attentionForward(bhsd(q), bhsd(k), bhsd(v), out2, nullptr, options);
  EXPECT_EQ(std::memcmp(o1.data(), o2.data(), o1.size() * 4), 0) << "runs differ bitwise";
  // Reference on the logical layout.
  auto toBshd = [&](const std::vector<float> &x) {
    std::vector<double> r(x.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t c = 0; c < D; ++c)
            r[((b * S + s) * H + h) * D + c] = x[((b * H + h) * S + s) * D + c];
    return r;
  };
  auto want = ref::attention(toBshd(q), toBshd(k), toBshd(v), B, S, S, H, H, D, true,
                             1.0 / std::sqrt(double(D)));
  auto got = toBshd(o1);
  std::vector<float> gotF(got.begin(), got.end());
  auto e = ref::compare(gotF, want.out, std::max(maxAbs(want.out), 1e-3));
  EXPECT_TRUE(ref::withinRelative(e, 1e-4)) << ref::format(e);
}

TEST(AttentionErrors, BadInputsNameTheValue) {
  std::vector<float> buf(4096, 0.f);
  auto t = [&](std::array<int64_t, 4> shape) {
    return Tensor4::contiguous(buf.data(), DType::F32, shape);
  };
  AttentionOptions cpu;
  cpu.backend = runtime::Backend::Cpu;
  expectLoomError([&] { attentionForward(t({1, 4, 6, 32}), t({1, 4, 4, 32}), t({1, 4, 4, 32}),
                                         t({1, 4, 6, 32}), nullptr, cpu); },
                  "attention: heads_q (6) is not divisible by heads_kv (4)");
  expectLoomError([&] { attentionForward(t({1, 4, 2, 32}), t({1, 4, 2, 16}), t({1, 4, 2, 16}),
                                         t({1, 4, 2, 32}), nullptr, cpu); },
                  "attention: head_dim of q (32) and k (16) differ");
  expectLoomError([&] { attentionForward(t({1, 4, 2, 12}), t({1, 4, 2, 12}), t({1, 4, 2, 12}),
                                         t({1, 4, 2, 12}), nullptr, cpu); },
                  "attention: head_dim 12 is not supported for f32 on the cpu backend (cpu: "
                  "multiples of 8 up to 256; gpu: 32, 64, 96, 128, 192, 256)");
  expectLoomError([&] { attentionForward(t({1, 4, 2, 32}), t({1, 5, 2, 32}), t({1, 6, 2, 32}),
                                         t({1, 4, 2, 32}), nullptr, cpu); },
                  "attention: k (1, 5, 2, 32) and v (1, 6, 2, 32) shapes differ");
  Tensor4 strided = t({1, 4, 2, 32});
  strided.strides[3] = 2;
  expectLoomError([&] { attentionForward(strided, t({1, 4, 2, 32}), t({1, 4, 2, 32}),
                                         t({1, 4, 2, 32}), nullptr, cpu); },
                  "attention: q head_dim stride is 2; the last dimension must be contiguous "
                  "(stride 1)");
  Tensor4 half = t({1, 4, 2, 32});
  half.dtype = DType::BF16;
  expectLoomError([&] { attentionForward(t({1, 4, 2, 32}), half, t({1, 4, 2, 32}),
                                         t({1, 4, 2, 32}), nullptr, cpu); },
                  "attention: dtypes differ: q f32, k bf16, v f32, out f32 (k and v need q's dtype; out q's or f32)");
}

TEST(AttentionErrors, BackwardDeltaChecksConfigGridAndSeqlen) {
  // Every check runs before anything is read, so the small buffers stand in
  // for the huge shapes.
  std::vector<float> buf(4096, 0.f), delta(64, 0.f);
  auto t = [&](std::array<int64_t, 4> shape) {
    return Tensor4::contiguous(buf.data(), DType::F32, shape);
  };
  AttentionOptions cpu;
  cpu.backend = runtime::Backend::Cpu;
  AttentionOptions zeroBlock = cpu;
  zeroBlock.config = AttentionConfig{0, 64, 128};
  expectLoomError([&] { attentionBackwardDelta(t({1, 4, 2, 32}), t({1, 4, 2, 32}), delta.data(),
                                               zeroBlock); },
                  "attention backward delta: block sizes must be positive, got 0x64");
  zeroBlock.config = AttentionConfig{64, -1, 128};
  expectLoomError([&] { attentionBackwardDelta(t({1, 4, 2, 32}), t({1, 4, 2, 32}), delta.data(),
                                               zeroBlock); },
                  "attention backward delta: block sizes must be positive, got 64x-1");
  int64_t longSeq = int64_t(INT32_MAX) + 1;
  expectLoomError([&] { attentionBackwardDelta(t({1, longSeq, 1, 32}), t({1, longSeq, 1, 32}),
                                               delta.data(), cpu); },
                  "attention backward delta: seqlen 2147483648 exceeds 2^31 - 1");
}

TEST(AttentionErrors, BackwardChecksTheSizeOfAGivenDelta) {
  // B * Hq * Sq = 1 * 2 * 4 = 8 floats; the count must say so.
  std::vector<float> buf(4 * 2 * 32, 0.5f), lse(8, 0.f), delta(8, 0.f), grads(3 * 4 * 2 * 32);
  auto t = [&](float *data) { return Tensor4::contiguous(data, DType::F32, {1, 4, 2, 32}); };
  AttentionOptions options;
  options.backend = runtime::Backend::Cpu;
  options.backwardDelta = delta.data();
  auto backward = [&] {
    attentionBackward(t(buf.data()), t(buf.data()), t(buf.data()), t(buf.data()), lse.data(),
                      t(buf.data()), t(grads.data()), t(grads.data() + 256),
                      t(grads.data() + 512), options);
  };
  expectLoomError(backward, "attention backward: options.backwardDelta holds 0 floats "
                            "(backwardDeltaCount); the call needs batch x heads_q x seqlen_q = "
                            "1 x 2 x 4 = 8");
  options.backwardDeltaCount = 7;
  expectLoomError(backward, "attention backward: options.backwardDelta holds 7 floats "
                            "(backwardDeltaCount); the call needs batch x heads_q x seqlen_q = "
                            "1 x 2 x 4 = 8");
  options.backwardDeltaCount = 8;
  backward(); // the right size runs
}

TEST(AttentionErrors, CudaBackwardNeedsKernelLayoutGradients) {
  // Device tensors are never repacked on the host: a strided dq on the cuda
  // backend is refused before anything touches the device.
  std::vector<float> buf(4 * 2 * 64, 0.5f), wide(4 * 2 * 64 * 2, 0.f), lse(8, 0.f);
  auto t = [&](std::vector<float> &b) {
    return Tensor4::contiguous(b.data(), DType::F32, {1, 4, 2, 64});
  };
  Tensor4 strided = t(wide);
  strided.strides = {4 * 2 * 128, 2 * 128, 128, 1};
  AttentionOptions cuda;
  cuda.backend = runtime::Backend::Cuda;
  expectLoomError([&] { attentionBackward(t(buf), t(buf), t(buf), t(buf), lse.data(), t(buf),
                                          strided, t(buf), t(buf), cuda); },
                  "attention backward on the cuda backend: dq must have q's strides (device "
                  "tensors are not repacked)",
                  ErrorCode::Unsupported);
}

TEST(AttentionEmu, ForwardOnTheEmulatedDevice) {
  // The generated CUDA C++ (tensor-core dot for bf16/f16), run thread by thread.
  checkForward(Problem{1, 33, 47, 2, 1, 32, true}, DType::BF16, runtime::Backend::Emu, 32);
  checkForward(Problem{1, 40, 40, 1, 1, 64, false}, DType::F16, runtime::Backend::Emu, 32);
}

TEST(AttentionEmu, EveryPipelineDepthMatchesFloat64) {
  // Q (and dK/dV's K, V) hoisted into shared memory once; K/V (and Q, dO in
  // the backward) copied numStages - 1 blocks ahead. 100 keys in 32-blocks:
  // four iterations, the last one ragged, so three stages skip copies past
  // the end. No pipelining (0), copies in the same iteration (1), and two
  // blocks ahead (3); the default (2) runs in every other emu test.
  for (unsigned stages : {0u, 1u, 3u}) {
    SCOPED_TRACE("stages = " + std::to_string(stages));
    checkForward(Problem{1, 40, 100, 2, 1, 32, true}, DType::BF16, runtime::Backend::Emu, 32,
                 128, stages);
    checkBackward(Problem{1, 40, 100, 1, 1, 32, false}, DType::F16, runtime::Backend::Emu, 32,
                  128, stages);
  }
}

TEST(AttentionEmu, ForwardWithAccumulatorsInMmaLayouts) {
  // O, the running max and sum carried in #loom.mma<4, 1> / #loom.mma_rows
  // (64-row blocks on 4 warps, one warp per 16 rows: quad-shuffle row
  // reductions), and on 2 x 2 warps (32-row blocks: rows shared by 2 warps).
  checkForward(Problem{1, 70, 90, 2, 1, 64, true}, DType::BF16, runtime::Backend::Emu, 64, 128);
  checkForward(Problem{1, 45, 45, 1, 1, 32, false}, DType::F16, runtime::Backend::Emu, 32, 128);
}

namespace {
/// ptxas' spill bytes for `kernel` built with `config` for `arch`; prints the
/// report line.
int spilledBytes(const dsl::Kernel &kernel, const AttentionConfig &config, const char *arch) {
  runtime::Specialization spec;
  spec.constants = {{"BLOCK_M", config.blockM}, {"BLOCK_N", config.blockN}};
  runtime::CudaBuildOptions options;
  options.arch = arch;
  options.numThreads = config.numThreads;
  auto build = runtime::buildCuda(kernel, spec, options);
  const auto &r = build.resources();
  EXPECT_NE(build.binary.ptx.find("mma.sync.aligned.m16n8k16"), std::string::npos)
      << kernel.name();
  // Dot-only K/V (and Q) tiles go global -> shared in 16-byte cp.async chunks.
  EXPECT_NE(build.binary.ptx.find("cp.async.cg.shared.global"), std::string::npos)
      << kernel.name();
  std::printf("[ report   ] %s %lldx%lld, %u threads, %s: %d registers, %d bytes spilled, "
              "%lld bytes smem\n",
              kernel.name().c_str(), (long long)config.blockM, (long long)config.blockN,
              config.numThreads, arch, r.registers, r.spillStoreBytes + r.spillLoadBytes,
              (long long)build.source.sharedBytes);
  return r.spillStoreBytes + r.spillLoadBytes;
}

/// Forward, dK/dV and dQ of `variant` at head dim `d` with the default
/// (untuned) GPU configs must not spill on sm_80 or sm_90a.
void expectDefaultsDoNotSpill(int64_t d, const AttentionVariant &variant) {
  AttentionConfig fwd = defaultAttentionConfig(d, runtime::Backend::Cuda);
  AttentionConfig bwd = defaultAttentionBackwardConfig(d, runtime::Backend::Cuda);
  for (const char *arch : {"sm_80", "sm_90a"}) {
    EXPECT_EQ(spilledBytes(flashAttentionForwardKernel(DType::BF16, d, variant), fwd, arch), 0);
    EXPECT_EQ(spilledBytes(flashAttentionBackwardDkDvKernel(DType::BF16, d, variant), bwd, arch), 0);
    EXPECT_EQ(spilledBytes(flashAttentionBackwardDqKernel(DType::BF16, d, variant), bwd, arch), 0);
  }
}
} // namespace

TEST(AttentionCuda, DefaultConfigsCompileForGpusWithoutSpills) {
  // The default (untuned) block sizes per head dim, for every GPU target:
  // no kernel may spill (block loads and stores keep no per-element offset
  // or mask tiles in registers, and dot-only loads go straight to shared
  // memory; docs/layouts.md).
  for (int64_t d : {32, 64, 96, 128, 192, 256})
    expectDefaultsDoNotSpill(d, AttentionVariant::causalMask());
}

TEST(AttentionCuda, PipelineStagesFitTheArchsSharedMemory) {
  // 64x64 at head dim 128 on 4 warps with 3 stages: Q (16 KB) plus 3 slots
  // each of K and V (96 KB) and the epilogue's scratch. Every byte counts
  // against the arch's per-block limit: it fits sm_80's 163 KB, while
  // sm_86's 99 KB keeps fewer stages, and neither kernel exceeds its limit.
  runtime::Specialization spec;
  spec.constants = {{"BLOCK_M", 64}, {"BLOCK_N", 64}};
  spec.numStages = 3;
  int64_t bytes[2] = {0, 0};
  const char *archs[2] = {"sm_80", "sm_86"};
  for (int i = 0; i < 2; ++i) {
    runtime::CudaBuildOptions options;
    options.arch = archs[i];
    options.numThreads = 128;
    auto build = runtime::buildCuda(
        flashAttentionForwardKernel(DType::BF16, 128, AttentionVariant::none()), spec, options);
    bytes[i] = build.source.sharedBytes;
    EXPECT_LE(bytes[i], cuda::maxSharedBytesPerBlock(archs[i])) << archs[i];
  }
  EXPECT_GT(bytes[0], 99 * 1024) << "sm_80 should keep all 3 stages";
  EXPECT_LT(bytes[1], bytes[0]) << "sm_86 should drop a stage";
}

TEST(AttentionCuda, EveryBuiltInVariantCompilesWithoutSpillsAtLargeHeadDims) {
  // The head dims closest to the register limit, with every other built-in
  // variant's score and mask code inlined.
  for (int64_t d : {192, 256})
    for (const AttentionVariant &v :
         {AttentionVariant::none(), AttentionVariant::alibi(), AttentionVariant::softcap(30.0),
          AttentionVariant::slidingWindow(64), AttentionVariant::prefixLM(8),
          AttentionVariant::documentMask()})
      expectDefaultsDoNotSpill(d, v);
}
