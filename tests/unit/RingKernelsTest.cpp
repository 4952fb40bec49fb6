//===- RingKernelsTest.cpp - the ring's copy/merge/accumulate kernels ------===//
//
// The DSL kernels that replaced the ring's host loops, checked against those
// loops (kept here as the reference) on the cpu backend and the emulated
// device (the generated CUDA C++), the merge also against float64; and
// compiled by NVRTC for sm_80 and sm_90a without register spills. Memory on
// the cuda backend fails fast without a driver.
//
//===----------------------------------------------------------------------===//
#include "ExpectError.h"

#include "loom/Support/HalfPrecision.h"
#include "loom/cuda/Driver.h"
#include "loom/ops/Merge.h"
#include "loom/ops/Reference.h"
#include "loom/ops/RingKernels.h"
#include "loom/runtime/CudaBuild.h"
#include "loom/runtime/Memory.h"
#include "loom/runtime/Stream.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <random>

using namespace loom;
using namespace loom::ops;
namespace ref = loom::ops::ref;
using runtime::Backend;

namespace {
const Backend kBackends[] = {Backend::Cpu, Backend::Emu};

/// The ring's former host packing loop: `t` (any strides) into contiguous
/// storage.
void hostPack(const Tensor4 &t, uint8_t *dst) {
  size_t es = dtypeSize(t.dtype), row = size_t(t.shape[3]) * es;
  for (int64_t b = 0; b < t.shape[0]; ++b)
    for (int64_t s = 0; s < t.shape[1]; ++s)
      for (int64_t h = 0; h < t.shape[2]; ++h) {
        std::memcpy(dst, static_cast<const uint8_t *>(t.data) +
                             (b * t.strides[0] + s * t.strides[1] + h * t.strides[2]) * es,
                    row);
        dst += row;
      }
}

/// Its former f32 -> dtype conversion (round to nearest even).
std::vector<uint8_t> hostConvert(const std::vector<float> &x, DType to) {
  std::vector<uint8_t> out(x.size() * dtypeSize(to));
  for (size_t i = 0; i < x.size(); ++i) {
    if (to == DType::F32) {
      std::memcpy(out.data() + 4 * i, &x[i], 4);
      continue;
    }
    uint16_t bits = to == DType::F16 ? floatToHalf(x[i]) : floatToBf16(x[i]);
    std::memcpy(out.data() + 2 * i, &bits, 2);
  }
  return out;
}

std::vector<uint16_t> randomBits(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<uint16_t> v(n);
  for (auto &x : v)
    x = uint16_t(gen() & 0x7f7f); // finite bf16/f16 bit patterns, both signs excluded
  return v;
}
} // namespace

TEST(RingKernels, CopyPacksStridedShardsLikeTheHostLoop) {
  // A bf16 K shard viewed inside a padded buffer (gaps after each head,
  // token and batch), packed into the contiguous transfer layout.
  std::array<int64_t, 4> shape{2, 5, 3, 40};
  std::array<int64_t, 4> strides{5 * 136 + 16, 136, 48, 1};
  size_t extent = size_t((shape[0] - 1) * strides[0] + (shape[1] - 1) * strides[1] +
                         (shape[2] - 1) * strides[2] + shape[3]);
  auto bits = randomBits(extent, 7);
  Tensor4 src{bits.data(), DType::BF16, shape, strides};
  size_t n = size_t(shape[0] * shape[1] * shape[2] * shape[3]);
  std::vector<uint8_t> want(2 * n);
  hostPack(src, want.data());
  for (Backend backend : kBackends) {
    auto stream = runtime::createStream(backend, "copy");
    std::vector<uint8_t> got(2 * n, 0xAB);
    copyTensorAsync(*stream, src, Tensor4::contiguous(got.data(), DType::BF16, shape));
    stream->synchronize();
    size_t diffs = 0;
    for (size_t i = 0; i < got.size(); i += 2)
      if (std::memcmp(&got[i], &want[i], 2) != 0 && diffs++ < 5)
        ADD_FAILURE() << runtime::backendName(backend) << " element " << i / 2 << ": got 0x"
                      << std::hex << (got[i] | got[i + 1] << 8) << ", want 0x"
                      << (want[i] | want[i + 1] << 8) << std::dec;
    EXPECT_EQ(diffs, 0u) << runtime::backendName(backend);
  }
}

TEST(RingKernels, ConvertingAccumulatorsMatchesTheHostRounding) {
  // f32 accumulators in (batch, heads, seqlen, dim) order written out as
  // (batch, seqlen, heads, dim) f16/bf16/f32, including values that round
  // to even, overflow f16, and subnormals.
  std::array<int64_t, 4> shape{1, 7, 2, 24};
  int64_t S = shape[1], H = shape[2], D = shape[3];
  std::vector<float> acc = ref::randomVector(size_t(S * H * D), -3.f, 3.f);
  acc[0] = 70000.f, acc[1] = 1e-6f, acc[2] = 1.00390625f, acc[3] = -0.f;
  Tensor4 src{acc.data(), DType::F32, shape, {H * S * D, D, S * D, 1}};
  std::vector<float> ordered(acc.size());
  hostPack(src, reinterpret_cast<uint8_t *>(ordered.data()));
  for (DType to : {DType::F32, DType::F16, DType::BF16})
    for (Backend backend : kBackends) {
      auto stream = runtime::createStream(backend, "convert");
      std::vector<uint8_t> got(acc.size() * dtypeSize(to), 0xCD);
      copyTensorAsync(*stream, src, Tensor4::contiguous(got.data(), to, shape));
      stream->synchronize();
      EXPECT_EQ(got, hostConvert(ordered, to))
          << runtime::backendName(backend) << " to " << dtypeName(to);
    }
}

TEST(RingKernels, LongRowsCopyInChunks) {
  // LSE rows of a segment: (batch * heads) rows of `count` floats out of
  // rows of localS, longer than one BLOCK chunk.
  int64_t BH = 3, localS = 700, start = 211, count = 333;
  auto lse = ref::randomVector(size_t(BH * localS), -5.f, 5.f);
  std::vector<float> want(size_t(BH * count));
  for (int64_t r = 0; r < BH; ++r)
    for (int64_t i = 0; i < count; ++i)
      want[size_t(r * count + i)] = lse[size_t(r * localS + start + i)];
  for (Backend backend : kBackends) { // emu: the kernel's chunk loop
    auto stream = runtime::createStream(backend, "rows");
    std::vector<float> got(want.size(), ref::poison());
    copyTensorAsync(*stream,
                    {lse.data() + start, DType::F32, {1, BH, 1, count}, {0, localS, 0, 1}},
                    {got.data(), DType::F32, {1, BH, 1, count}, {0, count, 0, 1}});
    stream->synchronize();
    EXPECT_EQ(got, want) << runtime::backendName(backend);
  }
}

namespace {
/// float64 merge of every block of a row: L = log sum e^l_b, O = sum
/// e^(l_b - L) O_b.
void mergeFloat64(const std::vector<std::vector<float>> &outs,
                  const std::vector<std::vector<float>> &lses, int64_t rows, int64_t D,
                  std::vector<double> &out, std::vector<double> &lse) {
  out.assign(size_t(rows * D), 0.0), lse.assign(size_t(rows), -INFINITY);
  for (int64_t r = 0; r < rows; ++r) {
    double m = -INFINITY;
    for (const auto &l : lses)
      m = std::max(m, double(l[size_t(r)]));
    if (m == -INFINITY)
      continue;
    double sum = 0;
    for (const auto &l : lses)
      sum += std::exp(double(l[size_t(r)]) - m);
    double L = m + std::log(sum);
    lse[size_t(r)] = L;
    for (size_t b = 0; b < lses.size(); ++b) {
      double w = std::exp(double(lses[b][size_t(r)]) - L);
      for (int64_t c = 0; c < D; ++c)
        out[size_t(r * D + c)] += w * double(outs[b][size_t(r * D + c)]);
    }
  }
}
} // namespace

TEST(RingKernels, MergeMatchesTheHostMergeAndFloat64) {
  // Batch x heads = 3 rows groups of 37 rows, head dim 40 (not a power of
  // two), 6 partials per row. LSEs mix ordinary values, -inf (a block that
  // saw no key for the row: whole rows of -inf too) and 80/90, where e^L
  // overflows f32 in the naive form.
  const int64_t BH = 3, rows = 37, D = 40, blocks = 6, R = BH * rows;
  std::mt19937 gen(11);
  std::vector<std::vector<float>> outs, lses;
  for (int64_t b = 0; b < blocks; ++b) {
    outs.push_back(ref::randomVector(size_t(R * D), -2.f, 2.f));
    std::vector<float> l(static_cast<size_t>(R));
    for (int64_t r = 0; r < R; ++r) {
      int kind = int(gen() % 6);
      l[size_t(r)] = kind == 0   ? -INFINITY
                     : kind == 1 ? 80.f + float(gen() % 100) / 50.f
                     : kind == 2 ? 90.f
                                 : float(int(gen() % 2000) - 1000) / 100.f;
      if (r % rows == 5)
        l[size_t(r)] = -INFINITY; // never a key
      if (r % rows == 6 && b != 3)
        l[size_t(r)] = -INFINITY; // keys in one block only
    }
    lses.push_back(l);
  }
  std::vector<double> want, wantLse;
  mergeFloat64(outs, lses, R, D, want, wantLse);
  std::vector<float> hostOut(size_t(R * D), 0.f), hostLse(size_t(R), -INFINITY);
  for (int64_t b = 0; b < blocks; ++b)
    mergeAttentionPartials(hostOut.data(), hostLse.data(), outs[size_t(b)].data(),
                           lses[size_t(b)].data(), R, D);
  for (Backend backend : kBackends) {
    auto stream = runtime::createStream(backend, "merge");
    std::vector<float> out(size_t(R * D), 0.f), lse(size_t(R), -INFINITY);
    for (int64_t b = 0; b < blocks; ++b)
      mergeAttentionPartialsAsync(*stream, {out.data(), lse.data(), rows * D, D, rows},
                                  {outs[size_t(b)].data(), lses[size_t(b)].data(), rows * D, D,
                                   rows},
                                  BH, rows, D);
    stream->synchronize();
    const char *name = runtime::backendName(backend);
    double worstOut = 0, worstLse = 0, worstHost = 0;
    for (int64_t r = 0; r < R; ++r) {
      if (wantLse[size_t(r)] == -INFINITY) {
        EXPECT_EQ(lse[size_t(r)], -INFINITY) << name << " row " << r;
        for (int64_t c = 0; c < D; ++c)
          EXPECT_EQ(out[size_t(r * D + c)], 0.f) << name << " row " << r;
        continue;
      }
      ASSERT_TRUE(std::isfinite(lse[size_t(r)])) << name << " row " << r;
      worstLse = std::max(worstLse, std::fabs(lse[size_t(r)] - wantLse[size_t(r)]) /
                                        std::max(1.0, std::fabs(wantLse[size_t(r)])));
      worstHost = std::max(worstHost, double(std::fabs(lse[size_t(r)] - hostLse[size_t(r)])));
      for (int64_t c = 0; c < D; ++c) {
        size_t i = size_t(r * D + c);
        ASSERT_TRUE(std::isfinite(out[i])) << name << " row " << r;
        worstOut = std::max(worstOut, std::fabs(out[i] - want[i]));
        worstHost = std::max(worstHost, double(std::fabs(out[i] - hostOut[i])));
      }
      if (r % rows == 6) { // one contributing block: its values exactly
        for (int64_t c = 0; c < D; ++c)
          EXPECT_EQ(out[size_t(r * D + c)], outs[3][size_t(r * D + c)]) << name;
      }
    }
    // f32 rounding of a few merges: at LSEs near 90 the f32 spacing is
    // 7.6e-6, which bounds the weights' accuracy, so O (|O| <= 2) is within
    // 1.5e-5 of float64 and LSE within 1e-6 relative; the host merge (same
    // formula, libm's exp/log) within 1e-6 of the kernel.
    EXPECT_LT(worstOut, 1.5e-5) << name;
    EXPECT_LT(worstLse, 1e-6) << name;
    EXPECT_LT(worstHost, 1e-6) << name;
    std::printf("[ measure  ] %s merge vs float64: O %.2e, LSE rel %.2e; vs host merge %.2e\n",
                name, worstOut, worstLse, worstHost);
  }
}

TEST(RingKernels, MergeKeepsNaNAndInfinity) {
  // LSE = -inf ("no visible key") is the only partial the merge skips: a
  // NaN partial (a NaN among a row's scores) makes the row NaN whatever its
  // order among the partials, and an infinite O (an infinite V) stays
  // infinite, on the host and in the kernels.
  const int64_t R = 8, D = 4;
  const float nan = NAN, inf = INFINITY;
  // Per row: (O, LSE) of two partials, O given by its first column (the
  // others are 0.5 and 0.25 where the partial is finite).
  struct Row {
    float o1, l1, o2, l2;
  };
  const Row rows[R] = {{nan, nan, 1, 2},   {1, 2, nan, nan},  {0, -inf, nan, nan},
                       {nan, nan, 0, -inf}, {inf, 1, 2, 3},   {1, 3, -inf, 1},
                       {0, -inf, 0, -inf},  {inf, 1, -inf, 1}};
  std::vector<float> o1(R * D), l1(R), o2(R * D), l2(R);
  for (int64_t r = 0; r < R; ++r) {
    const Row &x = rows[r];
    l1[size_t(r)] = x.l1, l2[size_t(r)] = x.l2;
    for (int64_t c = 0; c < D; ++c) {
      auto fill = [&](float first, float lse) {
        return c == 0 ? first : std::isnan(lse) ? nan : lse == -inf ? 0.f : c == 1 ? 0.5f : 0.25f;
      };
      o1[size_t(r * D + c)] = fill(x.o1, x.l1);
      o2[size_t(r * D + c)] = fill(x.o2, x.l2);
    }
  }
  auto check = [&](const char *name, const std::vector<float> &out, const std::vector<float> &lse) {
    SCOPED_TRACE(name);
    for (int64_t r : {0, 1, 2, 3}) {
      EXPECT_TRUE(std::isnan(lse[size_t(r)])) << "row " << r << " LSE " << lse[size_t(r)];
      for (int64_t c = 0; c < D; ++c)
        EXPECT_TRUE(std::isnan(out[size_t(r * D + c)])) << "row " << r << " col " << c;
    }
    EXPECT_EQ(out[4 * D], inf);
    EXPECT_EQ(out[5 * D], -inf);
    for (int64_t r : {4, 5, 7}) {
      EXPECT_TRUE(std::isfinite(lse[size_t(r)])) << "row " << r;
      for (int64_t c = 1; c < D; ++c)
        EXPECT_TRUE(std::isfinite(out[size_t(r * D + c)])) << "row " << r << " col " << c;
    }
    EXPECT_EQ(lse[6], -inf);
    for (int64_t c = 0; c < D; ++c)
      EXPECT_EQ(out[size_t(6 * D + c)], 0.f);
    EXPECT_TRUE(std::isnan(out[7 * D])) << "inf and -inf meet";
  };
  std::vector<float> hostOut(R * D, 0.f), hostLse(R, -inf);
  mergeAttentionPartials(hostOut.data(), hostLse.data(), o1.data(), l1.data(), R, D);
  mergeAttentionPartials(hostOut.data(), hostLse.data(), o2.data(), l2.data(), R, D);
  check("host", hostOut, hostLse);
  for (Backend backend : kBackends) {
    auto stream = runtime::createStream(backend, "merge");
    std::vector<float> out(R * D, 0.f), lse(R, -inf);
    for (auto *part : {&o1, &o2})
      mergeAttentionPartialsAsync(*stream, {out.data(), lse.data(), R * D, D, R},
                                  {part->data(), (part == &o1 ? l1 : l2).data(), R * D, D, R}, 1,
                                  R, D);
    stream->synchronize();
    check(runtime::backendName(backend), out, lse);
  }
}

TEST(RingKernels, AccumulateAndFillMatchTheHostLoops) {
  size_t n = 3000; // not a multiple of the 1024-element block
  auto y0 = ref::randomVector(n, -1.f, 1.f), x = ref::randomVector(n, -1.f, 1.f);
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i)
    want[i] = y0[i] + x[i];
  for (Backend backend : kBackends) {
    auto stream = runtime::createStream(backend, "flat");
    std::vector<float> y = y0, filled(n + 1, 5.f);
    accumulateAsync(*stream, y.data(), x.data(), n);
    fillAsync(*stream, filled.data(), -INFINITY, n);
    stream->synchronize();
    EXPECT_EQ(y, want) << runtime::backendName(backend);
    for (size_t i = 0; i < n; ++i)
      ASSERT_EQ(filled[i], -INFINITY) << i;
    EXPECT_EQ(filled[n], 5.f) << "wrote past the end";
  }
}

TEST(RingKernels, BadArgumentsNameTheValue) {
  auto stream = runtime::createStream(Backend::Cpu, "bad");
  std::vector<float> a(16), b(16);
  expectLoomError(
      [&] {
        copyTensorAsync(*stream, Tensor4::contiguous(a.data(), DType::F32, {1, 2, 2, 4}),
                        Tensor4::contiguous(b.data(), DType::F32, {1, 4, 1, 4}));
      },
      "copyTensorAsync: source (1, 2, 2, 4) and destination (1, 4, 1, 4) shapes differ");
  expectLoomError(
      [&] {
        mergeAttentionPartialsAsync(*stream, {a.data(), b.data(), 4, 4, 1},
                                    {a.data(), b.data(), 4, 4, 1}, 1, 1, 300);
      },
      "mergeAttentionPartialsAsync: head_dim 300 is outside 1..256");
  stream->synchronize();
}

TEST(RingKernels, ShapesPastTheGridAreRejectedBeforeLaunching) {
  // Nothing is read or written: the checks run before any launch, so the
  // small buffers stand in for huge ones.
  auto stream = runtime::createStream(Backend::Emu, "huge");
  std::vector<float> a(16), b(16);
  // dim + (BLOCK - 1) must fit the kernel's i32 chunk count.
  int64_t dim = int64_t(INT32_MAX) - 100;
  expectLoomError(
      [&] {
        copyTensorAsync(*stream, Tensor4::contiguous(a.data(), DType::F32, {1, 1, 1, dim}),
                        Tensor4::contiguous(b.data(), DType::F32, {1, 1, 1, dim}));
      },
      fmt::format("copyTensorAsync: shape (1, 1, 1, {}) exceeds the copy kernel's grid (batch "
                  "and seqlen x heads < 2^31, dim <= 2^31 - 128)",
                  dim));
  // 2^31 programs of 1024 elements: one past grid x.
  size_t n = (size_t(1) << 31) * 1024;
  expectLoomError([&] { fillAsync(*stream, a.data(), 0.0f, n); },
                  fmt::format("fillAsync: {} elements need 2147483648 programs of 1024, more "
                              "than the grid's 2^31 - 1",
                              n));
  expectLoomError([&] { accumulateAsync(*stream, a.data(), b.data(), n); },
                  fmt::format("accumulateAsync: {} elements need 2147483648 programs of 1024, "
                              "more than the grid's 2^31 - 1",
                              n));
  stream->synchronize();
}

TEST(RingKernels, CompileForGpusWithoutSpills) {
  // The constants the ring launches them with (copy BLOCK 32/64/128, merge
  // BLOCK_D up to 256), 128 threads.
  struct Build {
    dsl::Kernel kernel;
    dsl::Constants constants;
  };
  std::vector<Build> builds = {
      {copyConvertKernel(DType::BF16, DType::BF16), {{"BLOCK", 64}}},
      {copyConvertKernel(DType::F32, DType::BF16), {{"BLOCK", 128}}},
      {copyConvertKernel(DType::F32, DType::F16), {{"BLOCK", 32}}},
      {copyConvertKernel(DType::F32, DType::F32), {{"BLOCK", 128}}},
      {mergePartialsKernel(), {{"BLOCK_R", 16}, {"BLOCK_D", 64}}},
      {mergePartialsKernel(), {{"BLOCK_R", 8}, {"BLOCK_D", 128}}},
      {mergePartialsKernel(), {{"BLOCK_R", 4}, {"BLOCK_D", 256}}},
      {accumulateKernel(), {{"BLOCK", 1024}}},
      {fillKernel(), {{"BLOCK", 1024}}}};
  for (const Build &b : builds)
    for (const char *arch : {"sm_80", "sm_90a"}) {
      runtime::Specialization spec;
      spec.constants = b.constants;
      runtime::CudaBuildOptions options;
      options.arch = arch;
      options.numThreads = 128;
      auto build = runtime::buildCuda(b.kernel, spec, options);
      const auto &r = build.resources();
      EXPECT_EQ(r.spillStoreBytes + r.spillLoadBytes, 0) << b.kernel.name() << " " << arch;
      std::printf("[ report   ] %s %s: %d registers, %d spill bytes\n", b.kernel.name().c_str(),
                  arch, r.registers, r.spillStoreBytes + r.spillLoadBytes);
    }
}

TEST(RuntimeMemory, HostOnCpuAndEmuDeviceOnCudaFailsFastWithoutDriver) {
  for (Backend backend : kBackends) {
    runtime::Memory m(backend, 100);
    ASSERT_NE(m.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data()) % 64, 0u);
    std::memset(m.data(), 1, 100); // host memory: writable here
    auto stream = runtime::createStream(backend, "copy");
    runtime::Memory other(backend, 100);
    runtime::copyAsync(*stream, other.data(), m.data(), 100);
    stream->synchronize();
    EXPECT_EQ(std::memcmp(other.data(), m.data(), 100), 0);
  }
  std::string why;
  if (cuda::driverAvailable(&why))
    GTEST_SKIP() << "a CUDA driver is present; this checks the no-driver path";
  expectLoomErrorContaining([] { runtime::Memory m(Backend::Cuda, 100); },
                            ErrorCode::DeviceUnavailable,
                            {"cannot allocate 100 bytes of CUDA device memory", "no CUDA driver"});
}
