//===- RingAttentionTest.cpp - ring attention over in-process ranks -------===//
//
// Whole-sequence inputs are sharded by the layout, every rank runs the ring
// forward and backward on its own thread, and the gathered results are
// checked against float64 attention over the whole sequence with the
// FlashAttention tolerance rule, for world sizes 1 to 8, every layout and
// the position-based variants. Fault tests: disagreeing metadata, a rank
// that never shows up, a rank that fails mid-ring.
//
//===----------------------------------------------------------------------===//
#include "ExpectError.h"

#include "loom/Support/HalfPrecision.h"
#include "loom/cuda/Driver.h"
#include "loom/ops/Reference.h"
#include "loom/ops/RingAttention.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <tuple>
#include <fmt/format.h>

using namespace loom;
using namespace loom::ops;
namespace ref = loom::ops::ref;
using std::chrono::milliseconds;

namespace {
struct Case {
  int world;
  RingLayout layout;
  std::string variant = "causal"; // none | causal | window | document | alibi
  DType dtype = DType::F32;
  int64_t seqlen = 0, heads = 2, headsKV = 1, dim = 32;
  runtime::Backend backend = runtime::Backend::Cpu;
  bool backward = true;
  /// A dense bias (heads, seqlen, seqlen) with its gradient and sinks with
  /// theirs, on top of the variant.
  bool learnable = false;
};

std::string describe(const Case &c) {
  return fmt::format("p{}_{}_{}{}_{}_hq{}_hkv{}", c.world, ringLayoutName(c.layout), c.variant,
                     c.learnable ? "_bias_sinks" : "", dtypeName(c.dtype), c.heads, c.headsKV);
}

void PrintTo(const Case &c, std::ostream *os) { *os << describe(c); }

/// A tensor of random values in `dtype` and the values the kernels see.
struct Data {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  std::vector<double> seen;
  DType dtype;
  Data(size_t n, DType t) : dtype(t) {
    f32 = ref::randomVector(n, -1.5f, 1.5f);
    std::vector<float> r = f32;
    if (t != DType::F32) {
      half = t == DType::F16 ? ref::toF16Bits(f32) : ref::toBf16Bits(f32);
      r = t == DType::F16 ? ref::roundToF16(f32) : ref::roundToBf16(f32);
    }
    seen = ref::toDouble(r);
  }
  void *data() { return dtype == DType::F32 ? (void *)f32.data() : (void *)half.data(); }
  std::vector<float> values() const {
    if (dtype == DType::F32)
      return f32;
    std::vector<float> v(half.size());
    for (size_t i = 0; i < half.size(); ++i)
      v[i] = dtype == DType::F16 ? halfToFloat(half[i]) : bf16ToFloat(half[i]);
    return v;
  }
  void poison() {
    std::fill(f32.begin(), f32.end(), ref::poison());
    std::fill(half.begin(), half.end(), uint16_t(0x7fff));
  }
};

/// Runs body(comm, rank) on one thread per rank; returns each rank's error.
std::vector<std::exception_ptr>
onRanks(int world, milliseconds timeout,
        const std::function<void(runtime::Communicator &, int)> &body) {
  return runtime::runInProcessRanks(
      world, [&](runtime::Communicator &comm) { body(comm, comm.rank()); }, timeout);
}

struct VariantSetup {
  AttentionOptions options;
  ref::RefVariant reference;
  bool causal = false;
  std::vector<int32_t> docIds;
};

VariantSetup variantFor(const Case &c) {
  VariantSetup s;
  int64_t S = c.seqlen;
  if (c.variant == "causal") {
    s.options.causal = s.causal = true;
  } else if (c.variant == "window") {
    int64_t w = S / 3 + 1;
    s.options.variant = AttentionVariant::slidingWindow(w);
    s.reference.visible = [w](int64_t, int64_t, int64_t i, int64_t j) {
      return j <= i && i - j < w;
    };
  } else if (c.variant == "document") {
    // Varlen: three packed documents of uneven lengths, causal inside each.
    std::vector<int64_t> cu = {0, S / 5, S / 5 + S / 2 + 1, S};
    s.docIds = documentIdsFromCuSeqlens(cu, S);
    s.options.variant = AttentionVariant::documentMask();
    s.options.causal = true;
    auto ids = s.docIds;
    s.reference.visible = [ids](int64_t, int64_t, int64_t i, int64_t j) {
      return j <= i && ids[size_t(i)] == ids[size_t(j)];
    };
  } else if (c.variant == "alibi") {
    s.options.variant = AttentionVariant::alibi();
    s.options.causal = s.causal = true;
    int64_t H = c.heads;
    s.reference.score = [H](double x, int64_t, int64_t h, int64_t i, int64_t j) {
      double slope = std::exp2(-8.0 * double(h + 1) / double(H));
      return std::make_pair(x - slope * std::fabs(double(i - j)), 1.0);
    };
  }
  if (s.causal && !s.reference.visible && s.reference.score)
    s.reference.visible = [](int64_t, int64_t, int64_t i, int64_t j) { return j <= i; };
  if (s.reference.visible || s.reference.score)
    s.causal = false; // the reference's visibility carries the mask
  return s;
}

using ref::maxAbsError;

/// f32: normwise relative error < 1e-4; f16/bf16: at most twice the error
/// of a naive attention in that precision plus a small floor.
void expectAccurate(const char *what, const Case &c, const std::vector<float> &got,
                    const std::vector<double> &want, const std::vector<double> *naive) {
  if (c.dtype == DType::F32) {
    auto e = ref::compare(got, want, std::max(ref::maxAbs(want), 1e-3));
    EXPECT_TRUE(ref::withinRelative(e, 1e-4)) << what << ": " << ref::format(e);
    return;
  }
  std::vector<float> low(naive->begin(), naive->end());
  double err = maxAbsError(got, want), naiveErr = maxAbsError(low, want);
  EXPECT_LE(err, 2 * naiveErr + 1e-3) << what << ": ring error " << err << " vs naive "
                                      << dtypeName(c.dtype) << " error " << naiveErr;
}

/// Ring forward and backward of one whole-sequence problem; outputs are
/// gathered into whole-sequence arrays and checked against float64.
/// Whole-sequence inputs of one case (fresh random values).
struct Inputs {
  Data q, k, v, dO;
  explicit Inputs(const Case &c)
      : q(size_t(c.seqlen * c.heads * c.dim), c.dtype),
        k(size_t(c.seqlen * c.headsKV * c.dim), c.dtype),
        v(size_t(c.seqlen * c.headsKV * c.dim), c.dtype),
        dO(size_t(c.seqlen * c.heads * c.dim), c.dtype) {}
};

/// Max abs errors vs float64 of the ring's outputs (O, dQ, dK, dV).
using Errors = std::array<double, 4>;

/// Whole-sequence outputs (poisoned before the run) of one case.
struct Outputs {
  Data o, dq, dk, dv;
  std::vector<float> lse;
  explicit Outputs(const Case &c)
      : o(size_t(c.seqlen * c.heads * c.dim), c.dtype), dq(o.f32.size(), c.dtype),
        dk(size_t(c.seqlen * c.headsKV * c.dim), c.dtype), dv(dk.f32.size(), c.dtype),
        lse(size_t(c.heads * c.seqlen), ref::poison()) {
    for (Data *d : {&o, &dq, &dk, &dv})
      d->poison();
  }
};

/// Case::learnable: a dense bias (heads, seqlen, seqlen) and sinks, each
/// rank's gradients of them, and the float64 reference's dbias. Lives as
/// long as the VariantSetup whose reference reads it.
struct Learnable {
  std::vector<float> bias, sinks;
  std::vector<std::vector<float>> rankDbias, rankDsinks;
  std::vector<double> wantDbias;
};

/// The options of a case: its variant (with its tensors) on its backend,
/// with `learn`'s bias and sinks when the case is learnable.
VariantSetup setupFor(const Case &c, Learnable *learn = nullptr) {
  VariantSetup setup = variantFor(c);
  if (!setup.docIds.empty())
    setup.options.variantArgs = {runtime::Arg::buffer(setup.docIds)};
  setup.options.backend = c.backend;
  if (c.learnable) {
    if (!learn)
      throw std::logic_error("setupFor: a learnable case needs its Learnable");
    // The bias indexes global positions, so every rank passes the whole
    // (heads, seqlen, seqlen) tensor and gets the whole gradient.
    int64_t S = c.seqlen, H = c.heads;
    learn->bias = ref::randomVector(size_t(H * S * S), -1, 1);
    learn->sinks = ref::randomVector(size_t(H), -1, 1.5);
    setup.options.variant = combine(AttentionVariant::additiveBias(true), setup.options.variant);
    setup.options.variantArgs.insert(setup.options.variantArgs.begin(),
                                     runtime::Arg::buffer(learn->bias));
    setup.options.sinks = learn->sinks.data();
    learn->rankDbias.assign(size_t(c.world),
                            std::vector<float>(learn->bias.size(), ref::poison()));
    learn->rankDsinks.assign(size_t(c.world),
                             std::vector<float>(learn->sinks.size(), ref::poison()));
    learn->wantDbias.assign(learn->bias.size(), 0.0);
    if (!setup.reference.visible && setup.causal)
      setup.reference.visible = [](int64_t, int64_t, int64_t i, int64_t j) { return j <= i; };
    setup.causal = false;
    auto inner = setup.reference.score;
    setup.reference.score = [inner, &bias = learn->bias, S](double x, int64_t b, int64_t h,
                                                             int64_t i, int64_t j) {
      x += bias[size_t((h * S + i) * S + j)];
      return inner ? inner(x, b, h, i, j) : std::make_pair(x, 1.0);
    };
    setup.reference.sinks = ref::toDouble(learn->sinks);
    setup.reference.scoreGrad = [&wantDbias = learn->wantDbias, S](int64_t, int64_t h, int64_t i,
                                                                    int64_t j, double d) {
      wantDbias[size_t((h * S + i) * S + j)] += d;
    };
  }
  return setup;
}

/// Ring forward (and backward) of one whole-sequence problem on c.world
/// in-process ranks; outputs are gathered into whole-sequence arrays (and
/// each rank's dbias/dsinks into `learn`).
void runRing(const Case &c, const VariantSetup &setup, Inputs &in, Outputs &out,
             std::vector<RingStats> *stats = nullptr, Learnable *learn = nullptr) {
  int64_t B = 1, S = c.seqlen, H = c.heads, Hkv = c.headsKV, D = c.dim;
  Data &q = in.q, &k = in.k, &v = in.v, &dO = in.dO;
  Data &o = out.o, &dq = out.dq, &dk = out.dk, &dv = out.dv;
  std::vector<float> &lse = out.lse;
  RingAttentionOptions options{setup.options, c.layout};
  std::array<int64_t, 4> qs{B, S, H, D}, ks{B, S, Hkv, D};
  auto whole = [&](Data &d, std::array<int64_t, 4> shape) {
    return Tensor4::contiguous(d.data(), c.dtype, shape);
  };
  if (stats)
    stats->assign(size_t(c.world), {});
  int64_t localS = S / c.world;
  runtime::rethrowFirstError(onRanks(c.world, milliseconds(20000), [&](runtime::Communicator &comm, int r) {
    size_t es = dtypeSize(c.dtype);
    std::array<int64_t, 4> lq{B, localS, H, D}, lk{B, localS, Hkv, D};
    auto buffer = [&](std::array<int64_t, 4> s) {
      return std::vector<uint8_t>(size_t(s[0] * s[1] * s[2] * s[3]) * es);
    };
    auto lqv = buffer(lq), lkv = buffer(lk), lvv = buffer(lk), ldo = buffer(lq), lo = buffer(lq),
         ldq = buffer(lq), ldk = buffer(lk), ldv = buffer(lk);
    shardSequence(whole(q, qs), lqv.data(), c.layout, r, c.world);
    shardSequence(whole(k, ks), lkv.data(), c.layout, r, c.world);
    shardSequence(whole(v, ks), lvv.data(), c.layout, r, c.world);
    shardSequence(whole(dO, qs), ldo.data(), c.layout, r, c.world);
    std::vector<float> llse(size_t(B * H * localS));
    // On cuda each rank drives its own GPU over NCCL (bootstrapped through
    // the in-process communicator): shards are copied to device memory and
    // the results back.
    std::optional<cuda::Context> context;
    std::unique_ptr<runtime::Communicator> nccl;
    std::vector<std::pair<cuda::DeviceBuffer, void *>> device;
    auto place = [&](void *host, size_t bytes) -> void * {
      if (c.backend != runtime::Backend::Cuda)
        return host;
      device.emplace_back(cuda::DeviceBuffer(bytes), host);
      device.back().first.copyFromHost(host, bytes);
      return reinterpret_cast<void *>(device.back().first.ptr());
    };
    if (c.backend == runtime::Backend::Cuda) {
      context.emplace(r);
      nccl = runtime::createNcclCommunicator(comm, r, milliseconds(60000));
    }
    device.reserve(9);
    auto T = [&](std::vector<uint8_t> &b, std::array<int64_t, 4> s) {
      return Tensor4::contiguous(place(b.data(), b.size()), c.dtype, s);
    };
    Tensor4 tq = T(lqv, lq), tk = T(lkv, lk), tv = T(lvv, lk), tdo = T(ldo, lq), to = T(lo, lq),
            tdq = T(ldq, lq), tdk = T(ldk, lk), tdv = T(ldv, lk);
    auto *tlse = static_cast<float *>(place(llse.data(), llse.size() * sizeof(float)));
    runtime::Communicator &ring = nccl ? *nccl : comm;
    RingStats fwdStats;
    RingAttentionOptions mine = options;
    if (learn && c.learnable) {
      mine.attention.variantGrads = {runtime::Arg::buffer(learn->rankDbias[size_t(r)])};
      mine.attention.dsinks = learn->rankDsinks[size_t(r)].data();
    }
    ringAttentionForward(ring, tq, tk, tv, to, tlse, mine, &fwdStats);
    if (c.backward)
      ringAttentionBackward(ring, tq, tk, tv, to, tlse, tdo, tdq, tdk, tdv, mine);
    for (auto &[buffer, host] : device)
      buffer.copyToHost(host, buffer.size());
    if (stats)
      (*stats)[size_t(r)] = fwdStats;
    unshardSequence(lo.data(), whole(o, qs), c.layout, r, c.world);
    unshardSequence(ldq.data(), whole(dq, qs), c.layout, r, c.world);
    unshardSequence(ldk.data(), whole(dk, ks), c.layout, r, c.world);
    unshardSequence(ldv.data(), whole(dv, ks), c.layout, r, c.world);
    unshardRows(llse.data(), lse.data(), B, H, S, c.layout, r, c.world);
  }));
}

void checkRing(const Case &c, std::vector<RingStats> *stats = nullptr, Inputs *given = nullptr,
               Errors *errors = nullptr) {
  int64_t B = 1, S = c.seqlen, H = c.heads, Hkv = c.headsKV, D = c.dim;
  std::optional<Inputs> fresh;
  Inputs &in = given ? *given : fresh.emplace(c);
  Data &q = in.q, &k = in.k, &v = in.v, &dO = in.dO;
  Learnable learn;
  VariantSetup setup = setupFor(c, &learn);
  Outputs out(c);
  runRing(c, setup, in, out, stats, &learn);
  Data &o = out.o, &dq = out.dq, &dk = out.dk, &dv = out.dv;
  std::vector<float> &lse = out.lse;

  double scale = 1.0 / std::sqrt(double(D));
  const ref::RefVariant *rv =
      setup.reference.visible || setup.reference.score ? &setup.reference : nullptr;
  auto fwd = ref::attention(q.seen, k.seen, v.seen, B, S, S, H, Hkv, D, setup.causal, scale,
                            nullptr, rv);
  auto bwd = ref::attentionBackward(q.seen, k.seen, v.seen, dO.seen, B, S, S, H, Hkv, D,
                                    setup.causal, scale, nullptr, rv);
  std::optional<ref::AttentionResult> naiveFwd;
  std::optional<ref::AttentionGrads> naiveBwd;
  if (c.dtype != DType::F32) {
    const char *low = dtypeName(c.dtype).data();
    naiveFwd = ref::attention(q.seen, k.seen, v.seen, B, S, S, H, Hkv, D, setup.causal, scale,
                              low, rv);
    naiveBwd = ref::attentionBackward(q.seen, k.seen, v.seen, dO.seen, B, S, S, H, Hkv, D,
                                      setup.causal, scale, low, rv);
  }
  expectAccurate("O", c, o.values(), fwd.out, naiveFwd ? &naiveFwd->out : nullptr);
  auto lseErr = ref::compare(lse, fwd.lse, 1.0);
  EXPECT_TRUE(ref::withinRelative(lseErr, c.dtype == DType::F32 ? 1e-5 : 1e-3))
      << "LSE: " << ref::format(lseErr);
  if (!c.backward)
    return;
  expectAccurate("dq", c, dq.values(), bwd.dq, naiveBwd ? &naiveBwd->dq : nullptr);
  expectAccurate("dk", c, dk.values(), bwd.dk, naiveBwd ? &naiveBwd->dk : nullptr);
  expectAccurate("dv", c, dv.values(), bwd.dv, naiveBwd ? &naiveBwd->dv : nullptr);
  if (c.learnable) {
    // Summed over ranks in rank order: every rank holds the same gradients.
    for (int r = 0; r < c.world; ++r) {
      EXPECT_EQ(learn.rankDbias[size_t(r)], learn.rankDbias[0]) << "rank " << r << " dbias";
      EXPECT_EQ(learn.rankDsinks[size_t(r)], learn.rankDsinks[0]) << "rank " << r << " dsinks";
    }
    expectAccurate("dbias", c, learn.rankDbias[0], learn.wantDbias, nullptr);
    expectAccurate("dsinks", c, learn.rankDsinks[0], bwd.dsinks, nullptr);
  }
  if (errors)
    *errors = {maxAbsError(o.values(), fwd.out), maxAbsError(dq.values(), bwd.dq),
               maxAbsError(dk.values(), bwd.dk), maxAbsError(dv.values(), bwd.dv)};
}

std::vector<Case> cases() {
  std::vector<Case> all;
  for (int p = 1; p <= 8; ++p)
    for (RingLayout l : {RingLayout::Contiguous, RingLayout::Zigzag, RingLayout::Stripe})
      all.push_back({p, l, "causal", DType::F32, 16 * p});
  for (RingLayout l : {RingLayout::Contiguous, RingLayout::Zigzag, RingLayout::Stripe}) {
    all.push_back({4, l, "none", DType::F32, 96});
    all.push_back({4, l, "window", DType::F32, 96});
    all.push_back({3, l, "document", DType::F32, 96});
    all.push_back({4, l, "causal", DType::BF16, 128, 4, 2, 64}); // GQA, bf16
  }
  all.push_back({2, RingLayout::Zigzag, "alibi", DType::F32, 64, 4, 4});
  // Learnable bias and sinks through the ring: equal to single-device
  // float64 (and so to single-device attention) within the tolerance rule.
  for (int p : {2, 4, 8})
    for (RingLayout l : {RingLayout::Contiguous, RingLayout::Zigzag, RingLayout::Stripe}) {
      Case learn{p, l, "causal", DType::F32, 16 * p, 2, 1, 32};
      learn.learnable = true;
      all.push_back(learn);
    }
  all.push_back({4, RingLayout::Stripe, "document", DType::BF16, 128, 2, 1, 64});
  return all;
}
} // namespace

class RingAttention : public ::testing::TestWithParam<Case> {};

TEST_P(RingAttention, MatchesWholeSequenceFloat64) { checkRing(GetParam()); }

INSTANTIATE_TEST_SUITE_P(InProcess, RingAttention, ::testing::ValuesIn(cases()),
                         [](const auto &info) { return describe(info.param); });

TEST(RingAttentionEmu, ForwardRunsTheGeneratedCudaOnTheEmulatedDevice) {
  // The GPU code path (tensor-core dot, global positions in the generated
  // CUDA C++) under the ring, forward only to keep emulation time small.
  Case c{2, RingLayout::Zigzag, "causal", DType::BF16, 64, 2, 1, 32};
  c.backend = runtime::Backend::Emu;
  c.backward = false;
  checkRing(c);
}

TEST(RingAttentionEmu, BiasAndSinksBackwardOnTheEmulatedDevice) {
  // The learnable gradients' device path under the ring: sinks broadcast
  // into the merged LSE, the pair gradients sorted and summed per rank, the
  // shares gathered around the ring and summed in rank order, all by the
  // generated CUDA C++.
  // Every layout, at 2, 4 and 8 ranks (the cpu suite covers each layout at
  // each size).
  for (Case c : {Case{2, RingLayout::Zigzag, "causal", DType::F32, 32, 2, 1, 32},
                 Case{4, RingLayout::Stripe, "causal", DType::F32, 32, 2, 1, 32},
                 Case{8, RingLayout::Contiguous, "none", DType::F32, 32, 2, 1, 32}}) {
    SCOPED_TRACE(describe(c));
    c.learnable = true;
    c.backend = runtime::Backend::Emu;
    checkRing(c);
  }
}

namespace {
/// How a result compares with float64 where inputs hold NaN or inf.
struct NonFiniteCheck {
  size_t nan = 0, inf = 0;  ///< non-finite elements in float64
  size_t extraNaN = 0;      ///< NaN where float64 is a number (allowed under a mask)
  size_t bad = 0;           ///< a number where float64 is NaN, a wrong inf, a far value
  size_t firstBad = SIZE_MAX;
  double maxRel = 0;        ///< over elements finite in both, normwise
};

/// NaN must stay NaN and inf the same inf; numbers must match to `tol` of
/// the largest finite float64 value. `allowExtraNaN`: a kernel tile may
/// add NaNs under a mask (0 x NaN in its products, see Attention.h).
NonFiniteCheck compareNonFinite(const std::vector<float> &got, const std::vector<double> &want,
                                double tol, bool allowExtraNaN) {
  NonFiniteCheck r;
  double scale = std::max(ref::maxAbs(want), 1e-3);
  auto fail = [&](size_t i) {
    ++r.bad;
    r.firstBad = std::min(r.firstBad, i);
  };
  for (size_t i = 0; i < want.size(); ++i) {
    double g = got[i], w = want[i];
    if (std::isnan(w)) {
      ++r.nan;
      if (!std::isnan(g))
        fail(i);
    } else if (std::isinf(w)) {
      ++r.inf;
      if (g != w && !(allowExtraNaN && std::isnan(g)))
        fail(i);
    } else if (std::isnan(g) && allowExtraNaN) {
      ++r.extraNaN;
    } else if (!std::isfinite(g)) {
      fail(i);
    } else {
      double rel = std::fabs(g - w) / scale;
      r.maxRel = std::max(r.maxRel, rel);
      if (rel > tol)
        fail(i);
    }
  }
  return r;
}

std::string describeCheck(const NonFiniteCheck &r) {
  return fmt::format("{} NaN, {} inf in float64; {} extra NaN; {} bad (first at {}); max rel "
                     "{:.3g}",
                     r.nan, r.inf, r.extraNaN, r.bad,
                     r.firstBad == SIZE_MAX ? -1 : int64_t(r.firstBad), r.maxRel);
}

/// One NaN or inf planted in Q, K or V at a token in the middle of the
/// sequence (so that under a causal mask some rows see it and some don't).
struct Plant {
  char tensor; // 'q', 'k' or 'v'
  float value;
};

void checkNonFinite(Case c, Plant plant) {
  Inputs in(c);
  Data &target = plant.tensor == 'q' ? in.q : plant.tensor == 'k' ? in.k : in.v;
  int64_t heads = plant.tensor == 'q' ? c.heads : c.headsKV;
  std::random_device rd;
  int64_t token = c.seqlen / 4 + int64_t(rd() % uint32_t(c.seqlen / 2));
  size_t at = size_t((token * heads + int64_t(rd() % uint32_t(heads))) * c.dim +
                     int64_t(rd() % uint32_t(c.dim)));
  target.f32[at] = plant.value;
  if (!target.half.empty())
    target.half[at] = c.dtype == DType::F16 ? floatToHalf(plant.value) : floatToBf16(plant.value);
  target.seen[at] = plant.value;
  std::string what = fmt::format("{} {}: {} in {} at token {} (element {})", describe(c),
                                 runtime::backendName(c.backend), plant.value, plant.tensor,
                                 token, at);
  SCOPED_TRACE(what);

  VariantSetup setup = setupFor(c);
  Outputs ring(c), single(c);
  runRing(c, setup, in, ring);
  // Single-device attention of the whole sequence on the same backend.
  std::array<int64_t, 4> qs{1, c.seqlen, c.heads, c.dim}, ks{1, c.seqlen, c.headsKV, c.dim};
  auto T = [&](Data &d, std::array<int64_t, 4> shape) {
    return Tensor4::contiguous(d.data(), c.dtype, shape);
  };
  attentionForward(T(in.q, qs), T(in.k, ks), T(in.v, ks), T(single.o, qs), single.lse.data(),
                   setup.options);
  if (c.backward)
    attentionBackward(T(in.q, qs), T(in.k, ks), T(in.v, ks), T(single.o, qs), single.lse.data(),
                      T(in.dO, qs), T(single.dq, qs), T(single.dk, ks), T(single.dv, ks),
                      setup.options);

  double scale = 1.0 / std::sqrt(double(c.dim));
  const ref::RefVariant *rv =
      setup.reference.visible || setup.reference.score ? &setup.reference : nullptr;
  auto fwd = ref::attention(in.q.seen, in.k.seen, in.v.seen, 1, c.seqlen, c.seqlen, c.heads,
                            c.headsKV, c.dim, setup.causal, scale, nullptr, rv);
  auto bwd = ref::attentionBackward(in.q.seen, in.k.seen, in.v.seen, in.dO.seen, 1, c.seqlen,
                                    c.seqlen, c.heads, c.headsKV, c.dim, setup.causal, scale,
                                    nullptr, rv);
  // bf16: P and dS are rounded to bf16 for the tensor-core products.
  double tol = c.dtype == DType::F32 ? 1e-4 : 3e-2;
  bool masked = c.variant != "none";
  // The forward's scores go through the mask's select, so a bad Q or K adds
  // no NaN there; P V (a bad V) and the backward's products can, in a tile.
  bool forwardExact = !masked || plant.tensor != 'v';
  struct Output {
    const char *name;
    std::vector<float> Outputs::*lse;
    Data Outputs::*data;
    const std::vector<double> &want;
    bool exact;
  };
  std::vector<Output> outputs = {{"O", nullptr, &Outputs::o, fwd.out, forwardExact},
                                 {"LSE", &Outputs::lse, nullptr, fwd.lse, forwardExact}};
  if (c.backward)
    for (auto [name, member, want] :
         {std::tuple{"dQ", &Outputs::dq, &bwd.dq}, std::tuple{"dK", &Outputs::dk, &bwd.dk},
          std::tuple{"dV", &Outputs::dv, &bwd.dv}})
      outputs.push_back({name, nullptr, member, *want, !masked});
  size_t nonFinite = 0;
  for (const Output &out : outputs) {
    for (Outputs *result : {&ring, &single}) {
      const char *who = result == &ring ? "ring" : "one device";
      std::vector<float> got = out.lse ? result->*out.lse : (result->*out.data).values();
      double lseTol = c.dtype == DType::F32 ? 1e-5 : 1e-3;
      NonFiniteCheck r = compareNonFinite(got, out.want, out.lse ? lseTol : tol, !out.exact);
      EXPECT_EQ(r.bad, 0u) << who << " " << out.name << ": " << describeCheck(r);
      nonFinite += r.nan + r.inf;
    }
  }
  // Guard against a test that checks nothing: the planted value reaches the
  // float64 results.
  EXPECT_GT(nonFinite, 0u);
}
} // namespace

TEST(RingAttentionNonFinite, NaNAndInfInQKVMatchOneDeviceAndFloat64) {
  // A NaN or inf in Q, K or V, through the ring (4 ranks, zigzag) and
  // one-device attention, forward and backward: NaN wherever float64 is NaN
  // (a NaN row once got LSE = -inf, "no visible key", and the merge
  // dropped it, returning a finite O), the same inf, the same numbers
  // elsewhere. Without a mask nothing else may be NaN; under the causal
  // mask the backward (and P V for a bad V) may add NaNs within a tile.
  // (-inf is +inf's mirror: an inf in Q or K already gives scores of both
  // signs.)
  for (const char *variant : {"none", "causal"})
    for (char tensor : {'q', 'k', 'v'})
      for (float value : {NAN, INFINITY})
        checkNonFinite({4, RingLayout::Zigzag, variant, DType::F32, 64, 2, 1, 32}, {tensor, value});
}

TEST(RingAttentionNonFinite, NaNAndInfOnTheEmulatedDevice) {
  // The generated CUDA C++ (bf16 tensor-core path) on the emulated device,
  // 2 ranks, causal, forward only: its backward kernels would add two
  // minutes of cold emulator builds; the backward's handling is the same
  // DSL, checked on the cpu backend above.
  Case c{2, RingLayout::Zigzag, "causal", DType::BF16, 32, 2, 1, 32};
  c.backend = runtime::Backend::Emu;
  c.backward = false;
  checkNonFinite(c, {'k', NAN});
  checkNonFinite(c, {'q', NAN});
  checkNonFinite(c, {'v', INFINITY});
}

TEST(RingAttentionNumerics, ErrorDoesNotGrowWithWorldSize) {
  // The same bf16 inputs over 1, 2, 4 and 8 ranks: every world size meets
  // the tolerance rule (checked inside), and the error stays within that
  // rule's slack of the single-rank error: merging partials in f32 adds no
  // bf16 rounding per step.
  Case c{1, RingLayout::Zigzag, "causal", DType::BF16, 128, 2, 1, 32};
  Inputs inputs(c);
  Errors single{};
  for (int p : {1, 2, 4, 8}) {
    c.world = p;
    Errors e{};
    checkRing(c, nullptr, &inputs, &e);
    if (p == 1)
      single = e;
    const char *names[] = {"O", "dQ", "dK", "dV"};
    for (int i = 0; i < 4; ++i) {
      std::printf("  P=%d %s max error vs float64 %.3e\n", p, names[i], e[size_t(i)]);
      EXPECT_LE(e[size_t(i)], 2 * single[size_t(i)] + 2e-3) << names[i] << " at P=" << p;
    }
  }
}

TEST(RingAttentionOverlap, NextTransferRunsWhileThisStepComputes) {
  // Compute dominates here (256 tokens per rank, no mask): the K/V transfer
  // started at step 0 must begin before step 0's compute ends, i.e. run
  // alongside it rather than after it.
  std::vector<RingStats> stats;
  checkRing({2, RingLayout::Contiguous, "none", DType::F32, 512, 2, 2, 64}, &stats);
  for (const RingStats &s : stats) {
    ASSERT_EQ(s.steps.size(), 2u);
    const RingStepTiming &t = s.steps[0];
    ASSERT_TRUE(t.hasTransfer);
    EXPECT_LT(t.transferStart, t.computeEnd) << "rank " << s.rank;
    EXPECT_LE(t.computeStart, t.computeEnd);
    EXPECT_FALSE(s.steps[1].hasTransfer) << "the last step sends nothing";
  }
  std::string json = ringTimelineJson(stats);
  EXPECT_NE(json.find("\"forward transfer step 0\""), std::string::npos);
  EXPECT_NE(json.find("\"forward compute step 1\""), std::string::npos);
}

TEST(RingAttentionCompile, EightRanksCompileEachKernelOnce) {
  // The ranks start the ring together and miss the kernel cache together:
  // each distinct kernel is still compiled once, not once per rank.
  runtime::KernelCache::global().clear();
  checkRing({8, RingLayout::Zigzag, "causal", DType::F32, 128});
  runtime::KernelCache::Stats stats = runtime::KernelCache::global().stats();
  ASSERT_FALSE(stats.compilesByKey.empty());
  for (const auto &[key, compiles] : stats.compilesByKey)
    EXPECT_EQ(compiles, 1u) << "kernel " << key;
  EXPECT_EQ(stats.misses, stats.compilesByKey.size());
  EXPECT_GT(stats.waits, 0u) << "no rank waited for another's compile: the ranks did not overlap";
}

TEST(RingAttentionSkipping, CausalStepsWithNothingVisibleLaunchNothing) {
  // Contiguous causal: rank 0 holds the first tokens and sees no other
  // rank's keys, so its steps 1..P-1 launch no kernel.
  std::vector<RingStats> stats;
  checkRing({4, RingLayout::Contiguous, "causal", DType::F32, 64}, &stats);
  EXPECT_EQ(stats[0].steps[0].launches, 1);
  for (int s = 1; s < 4; ++s)
    EXPECT_EQ(stats[0].steps[size_t(s)].launches, 0) << "step " << s;
  // Zigzag balances the work: every rank launches on every step.
  checkRing({4, RingLayout::Zigzag, "causal", DType::F32, 64}, &stats);
  for (const RingStats &r : stats)
    for (const RingStepTiming &t : r.steps)
      EXPECT_GT(t.launches, 0) << "rank " << r.rank << " step " << t.step;
}

namespace {
/// Runs a forward on `world` ranks where rank `odd` may use other inputs.
std::vector<std::exception_ptr>
forwardWithDeviant(int world, milliseconds timeout,
                   const std::function<void(int, Tensor4 &, RingAttentionOptions &)> &deviate,
                   const std::function<bool(int)> &participates = [](int) { return true; }) {
  return onRanks(world, timeout, [&](runtime::Communicator &comm, int r) {
    if (!participates(r))
      return;
    std::vector<float> q(2 * 16 * 32, 0.5f), o(q.size());
    Tensor4 t = Tensor4::contiguous(q.data(), DType::F32, {1, 16, 2, 32});
    RingAttentionOptions options;
    options.attention.backend = runtime::Backend::Cpu;
    Tensor4 qt = t;
    deviate(r, qt, options);
    ringAttentionForward(comm, qt, t, t, Tensor4::contiguous(o.data(), DType::F32, qt.shape),
                         nullptr, options);
  });
}

void expectAllFail(const std::vector<std::exception_ptr> &errors, ErrorCode code,
                   const std::string &needle, const std::function<bool(int)> &which) {
  for (size_t r = 0; r < errors.size(); ++r) {
    if (!which(int(r)))
      continue;
    ASSERT_TRUE(errors[r]) << "rank " << r << " did not fail";
    try {
      std::rethrow_exception(errors[r]);
    } catch (const Error &e) {
      EXPECT_EQ(errorCodeName(e.code()), std::string(errorCodeName(code))) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "rank " << r << ": " << e.what();
    }
  }
}
} // namespace

TEST(RingAttentionFaults, MismatchedMetadataFailsEveryRankBeforeTransfers) {
  auto errors = forwardWithDeviant(3, milliseconds(5000), [](int r, Tensor4 &, RingAttentionOptions &o) {
    if (r == 2)
      o.layout = RingLayout::Stripe;
  });
  expectAllFail(errors, ErrorCode::InvalidArgument,
                "ring attention: ranks disagree before the first transfer: rank 0 has "
                "layout=zigzag, rank 2 has layout=stripe",
                [](int) { return true; });
  errors = forwardWithDeviant(2, milliseconds(5000), [](int r, Tensor4 &, RingAttentionOptions &o) {
    if (r == 1)
      o.attention.causal = true;
  });
  expectAllFail(errors, ErrorCode::InvalidArgument, "rank 0 has variant=none, rank 1 has variant=causal",
                [](int) { return true; });
}

TEST(RingAttentionFaults, MissingRankTimesOutInsteadOfHanging) {
  auto start = std::chrono::steady_clock::now();
  auto errors = forwardWithDeviant(
      3, milliseconds(300), [](int, Tensor4 &, RingAttentionOptions &) {},
      [](int r) { return r != 1; });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  expectAllFail(errors, ErrorCode::CommTimeout, "", [](int r) { return r != 1; });
  EXPECT_LT(seconds, 5.0) << "ranks must fail within a few timeouts";
}

namespace {
/// Forwards everything to an inner communicator; fault and transport tests
/// override the one behaviour they change.
class ForwardingCommunicator : public runtime::Communicator {
public:
  explicit ForwardingCommunicator(runtime::Communicator &inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  const char *transport() const override { return inner_.transport(); }
  void sendRecv(const runtime::Transfer &t, runtime::Stream &s) override {
    inner_.sendRecv(t, s);
  }
  std::vector<std::vector<uint8_t>> allgather(std::span<const uint8_t> mine) override {
    return inner_.allgather(mine);
  }
  void barrier() override { inner_.barrier(); }
  void abort(const std::string &reason) override { inner_.abort(reason); }

private:
  runtime::Communicator &inner_;
};

/// A rank that agrees on the metadata and then never sends or receives:
/// forwards everything but sendRecv, which it drops.
class SilentAfterAgreement : public ForwardingCommunicator {
public:
  using ForwardingCommunicator::ForwardingCommunicator;
  const char *transport() const override { return "silent"; }
  void sendRecv(const runtime::Transfer &, runtime::Stream &) override {}
};
} // namespace

TEST(RingAttentionFaults, RankSkippingItsTransfersTimesOutTheOthers) {
  // Rank 1 passes the metadata agreement, then skips every step's transfer:
  // rank 2 (which receives from it) times out, and the failure reaches
  // rank 0 too, within a few timeouts rather than hanging.
  auto start = std::chrono::steady_clock::now();
  auto errors = onRanks(3, milliseconds(300), [](runtime::Communicator &comm, int r) {
    SilentAfterAgreement silent(comm);
    std::vector<float> q(2 * 16 * 32, 0.5f), o(q.size());
    Tensor4 t = Tensor4::contiguous(q.data(), DType::F32, {1, 16, 2, 32});
    RingAttentionOptions options;
    options.attention.backend = runtime::Backend::Cpu;
    ringAttentionForward(r == 1 ? silent : comm, t, t, t,
                         Tensor4::contiguous(o.data(), DType::F32, t.shape), nullptr, options);
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  expectAllFail(errors, ErrorCode::CommTimeout, "from rank 1", [](int r) { return r == 2; });
  ASSERT_TRUE(errors[0]) << "rank 0 must fail too";
  EXPECT_LT(seconds, 5.0);
}

TEST(RingAttentionFaults, RankWithBadInputsFailsItsPeersAtOnce) {
  // Rank 1's q and k disagree: it fails with InvalidArgument and aborts the
  // group, so the others get PeerFailed naming it well before the timeout.
  auto start = std::chrono::steady_clock::now();
  auto errors = forwardWithDeviant(3, milliseconds(20000),
                                   [](int r, Tensor4 &q, RingAttentionOptions &) {
    if (r == 1)
      q.shape[1] = 8;
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  expectAllFail(errors, ErrorCode::InvalidArgument,
                "ring attention: q and k must hold the same tokens per rank; q has 8, k has 16",
                [](int r) { return r == 1; });
  expectAllFail(errors, ErrorCode::PeerFailed, "rank 1", [](int r) { return r != 1; });
  EXPECT_LT(seconds, 5.0);
}

TEST(RingAttentionFaults, RankFailingInSetupFailsItsPeersAtOnce) {
  // Rank 1 agrees on the metadata (the config is not part of it), then
  // fails while classifying its block masks, before the first transfer:
  // the others, already waiting on their transfers, get PeerFailed naming
  // it well before the 20 s deadline. Forward and backward alike.
  for (bool backward : {false, true}) {
    auto start = std::chrono::steady_clock::now();
    auto errors = onRanks(3, milliseconds(20000), [&](runtime::Communicator &comm, int r) {
      std::vector<float> q(2 * 16 * 32, 0.5f), lse(2 * 16, 0.f);
      std::vector<std::vector<float>> outs(4, std::vector<float>(q.size()));
      Tensor4 t = Tensor4::contiguous(q.data(), DType::F32, {1, 16, 2, 32});
      auto o = [&](int i) { return Tensor4::contiguous(outs[size_t(i)].data(), DType::F32, t.shape); };
      RingAttentionOptions options;
      options.attention.backend = runtime::Backend::Cpu;
      options.attention.variant = AttentionVariant::prefixLM(4);
      if (r == 1)
        options.attention.config = AttentionConfig{0, 64, 128};
      if (backward)
        ringAttentionBackward(comm, t, t, t, t, lse.data(), t, o(0), o(1), o(2), options);
      else
        ringAttentionForward(comm, t, t, t, o(0), nullptr, options);
    });
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    expectAllFail(errors, ErrorCode::InvalidArgument,
                  "createBlockMask: block sizes must be positive, got 0x64",
                  [](int r) { return r == 1; });
    expectAllFail(errors, ErrorCode::PeerFailed, "rank 1", [](int r) { return r != 1; });
    EXPECT_LT(seconds, 10.0) << (backward ? "backward" : "forward");
  }
}

TEST(RingAttentionErrors, BadInputsNameTheValue) {
  expectLoomError([] { ringShard(RingLayout::Zigzag, 30, 0, 4); },
                  "ring attention: the zigzag layout needs the sequence length (30) divisible "
                  "by 8 (2 x world size 4)");
  expectLoomError([] { ringShard(RingLayout::Stripe, 30, 4, 4); },
                  "ring attention: rank 4 is outside world size 4");
  expectLoomError([] { parseRingLayout("spiral"); },
                  "unknown ring layout 'spiral' (expected contiguous, zigzag or stripe)");
}

namespace {
/// An in-process communicator that claims another transport, to reach the
/// ring's per-transport checks without that transport.
class Claiming : public ForwardingCommunicator {
public:
  Claiming(runtime::Communicator &inner, const char *transport)
      : ForwardingCommunicator(inner), transport_(transport) {}
  const char *transport() const override { return transport_; }

private:
  const char *transport_;
};

/// Rank errors of a 2-rank forward with `backend` over `transport`.
std::vector<std::exception_ptr> forwardOver(const char *transport, runtime::Backend backend) {
  return onRanks(2, milliseconds(5000), [&](runtime::Communicator &comm, int) {
    Claiming claiming(comm, transport);
    std::vector<float> q(2 * 16 * 32, 0.5f), o(q.size());
    Tensor4 t = Tensor4::contiguous(q.data(), DType::F32, {1, 16, 2, 32});
    RingAttentionOptions options;
    options.attention.backend = backend;
    ringAttentionForward(std::string(transport) == "inproc" ? comm : claiming, t, t, t,
                         Tensor4::contiguous(o.data(), DType::F32, t.shape), nullptr, options);
  });
}
} // namespace

TEST(RingAttentionErrors, TransportMustMoveTheBackendsMemory) {
  // Device shards cannot go over host transports, nor host shards over
  // NCCL: every rank fails at once, naming transport and backend.
  for (const char *host : {"inproc", "mpi"})
    expectAllFail(forwardOver(host, runtime::Backend::Cuda), ErrorCode::Unsupported,
                  fmt::format("ring attention: the cuda backend keeps the ring's buffers in "
                              "device memory, which the '{}' transport cannot move",
                              host),
                  [](int) { return true; });
  expectAllFail(forwardOver("nccl", runtime::Backend::Cpu), ErrorCode::Unsupported,
                "ring attention: the 'cpu' backend keeps the ring's buffers in host memory, "
                "which the 'nccl' transport cannot move",
                [](int) { return true; });
}

TEST(RingAttentionCuda, WithoutDriverFailsFastWithTheReason) {
  std::string why;
  if (cuda::driverAvailable(&why))
    GTEST_SKIP() << "a CUDA driver is present; this checks the no-driver path";
  auto start = std::chrono::steady_clock::now();
  auto errors = forwardOver("nccl", runtime::Backend::Cuda);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  expectAllFail(errors, ErrorCode::DeviceUnavailable,
                "ring attention on the cuda backend: no CUDA driver", [](int) { return true; });
  EXPECT_LT(seconds, 2.0);
}

TEST(RingAttentionCuda, NcclRingAcrossGpusMatchesFloat64) {
  // The device-memory ring: one thread per GPU, NCCL transfers on CUDA
  // streams, every kernel on the device. Same tolerance rule as the CPU
  // ring.
  std::string why;
  int gpus = cuda::driverAvailable(&why) ? cuda::deviceCount() : 0;
  if (gpus < 2)
    GTEST_SKIP() << "needs 2+ CUDA GPUs for the NCCL ring; this machine has " << gpus
                 << (why.empty() ? "" : " (" + why + ")");
  int world = std::min(gpus, 4);
  for (Case c : {Case{world, RingLayout::Zigzag, "causal", DType::BF16, 128 * world, 4, 2, 64},
                 Case{world, RingLayout::Stripe, "none", DType::F16, 64 * world, 2, 2, 128},
                 Case{world, RingLayout::Contiguous, "window", DType::BF16, 96 * world, 2, 1, 64}}) {
    c.backend = runtime::Backend::Cuda;
    SCOPED_TRACE(describe(c));
    checkRing(c);
  }
}

TEST(RingAttentionErrors, KAndQMustAgreeInBatchAndHeadDim) {
  std::vector<float> q(2 * 16 * 32, 0.5f), o(q.size()), k(2 * 16 * 64, 0.5f);
  Tensor4 qt = Tensor4::contiguous(q.data(), DType::F32, {1, 16, 2, 32});
  Tensor4 kt = Tensor4::contiguous(k.data(), DType::F32, {1, 16, 2, 64});
  auto errors = onRanks(1, milliseconds(1000), [&](runtime::Communicator &comm, int) {
    RingAttentionOptions options;
    options.attention.backend = runtime::Backend::Cpu;
    ringAttentionForward(comm, qt, kt, kt, Tensor4::contiguous(o.data(), DType::F32, qt.shape),
                         nullptr, options);
  });
  expectAllFail(errors, ErrorCode::InvalidArgument,
                "ring attention: q (1, 16, 2, 32) and k (1, 16, 2, 64) differ in batch or "
                "head_dim",
                [](int) { return true; });
}

TEST(RingAttentionFaults, RankWithBadOutputFailsItsPeersAtOnce) {
  // The output check runs before the metadata exchange, like the inputs':
  // the peers learn of rank 2's bad `out` at once.
  auto start = std::chrono::steady_clock::now();
  auto errors = onRanks(3, milliseconds(20000), [](runtime::Communicator &comm, int r) {
    std::vector<float> q(2 * 16 * 32, 0.5f), o(q.size());
    Tensor4 t = Tensor4::contiguous(q.data(), DType::F32, {1, 16, 2, 32});
    Tensor4 out = Tensor4::contiguous(o.data(), DType::F32, t.shape);
    if (r == 2)
      out.shape[2] = 1;
    RingAttentionOptions options;
    options.attention.backend = runtime::Backend::Cpu;
    ringAttentionForward(comm, t, t, t, out, nullptr, options);
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  expectAllFail(errors, ErrorCode::InvalidArgument, "must have q's shape", [](int r) { return r == 2; });
  expectAllFail(errors, ErrorCode::PeerFailed, "rank 2", [](int r) { return r != 2; });
  EXPECT_LT(seconds, 5.0);
}

TEST(RingLayouts, ShardsPartitionTheSequence) {
  for (RingLayout l : {RingLayout::Contiguous, RingLayout::Zigzag, RingLayout::Stripe})
    for (int p : {1, 2, 3, 8}) {
      std::vector<int> seen(size_t(48 * p), 0);
      for (int r = 0; r < p; ++r) {
        int64_t local = 0;
        for (const TokenSegment &s : ringShard(l, 48 * p, r, p)) {
          EXPECT_EQ(s.localStart, local);
          local += s.count;
          for (int64_t i = 0; i < s.count; ++i)
            ++seen[size_t(s.offset + i * s.stride)];
        }
        EXPECT_EQ(local, 48);
      }
      for (int n : seen)
        EXPECT_EQ(n, 1) << ringLayoutName(l) << " p" << p;
    }
  auto z = ringShard(RingLayout::Zigzag, 16, 1, 4);
  ASSERT_EQ(z.size(), 2u);
  EXPECT_EQ(z[0].offset, 2);
  EXPECT_EQ(z[1].offset, 12); // chunk 2P-1-r = 6 of 8, 2 tokens each
}

TEST(RingAttentionLayouts, StridedShardsGiveTheContiguousResultsExactly) {
  // q, k, v as views into one interleaved qkv buffer, out and dq padded:
  // the ring packs them on the compute stream (the kernels need dq with
  // q's strides and dO with out's), so the results are bit-identical to
  // contiguous inputs.
  const int64_t localS = 16, H = 2, D = 32, n = localS * H * D;
  runtime::rethrowFirstError(onRanks(2, milliseconds(20000), [&](runtime::Communicator &comm,
                                                                  int r) {
    auto q = ref::randomVector(size_t(n), -1.f, 1.f), k = ref::randomVector(size_t(n), -1.f, 1.f),
         v = ref::randomVector(size_t(n), -1.f, 1.f), dO = ref::randomVector(size_t(n), -1.f, 1.f);
    (void)r;
    std::array<int64_t, 4> shape{1, localS, H, D};
    auto C = [&](std::vector<float> &x) { return Tensor4::contiguous(x.data(), DType::F32, shape); };
    RingAttentionOptions options;
    options.attention.backend = runtime::Backend::Cpu;
    options.attention.causal = true;
    const size_t N = static_cast<size_t>(n);
    std::vector<float> o1(N), l1(static_cast<size_t>(H * localS)), dq1(N), dk1(N), dv1(N);
    ringAttentionForward(comm, C(q), C(k), C(v), C(o1), l1.data(), options);
    ringAttentionBackward(comm, C(q), C(k), C(v), C(o1), l1.data(), C(dO), C(dq1), C(dk1), C(dv1),
                          options);
    // Interleaved qkv: token stride 3 * H * D.
    std::vector<float> qkv(3 * N);
    for (int64_t s = 0; s < localS; ++s)
      for (int64_t i = 0; i < H * D; ++i) {
        qkv[size_t(s * 3 * H * D + i)] = q[size_t(s * H * D + i)];
        qkv[size_t(s * 3 * H * D + H * D + i)] = k[size_t(s * H * D + i)];
        qkv[size_t(s * 3 * H * D + 2 * H * D + i)] = v[size_t(s * H * D + i)];
      }
    std::array<int64_t, 4> qkvStrides{localS * 3 * H * D, 3 * H * D, D, 1};
    Tensor4 sq{qkv.data(), DType::F32, shape, qkvStrides},
        sk{qkv.data() + H * D, DType::F32, shape, qkvStrides},
        sv{qkv.data() + 2 * H * D, DType::F32, shape, qkvStrides};
    const int64_t pad = H * D + 8; // padded token stride
    std::array<int64_t, 4> padded{localS * pad, pad, D, 1};
    std::vector<float> o2(static_cast<size_t>(localS * pad), -7.f), l2(l1.size()),
        dq2(static_cast<size_t>(localS * pad), -7.f), dk2(N), dv2(N);
    Tensor4 so{o2.data(), DType::F32, shape, padded}, sdq{dq2.data(), DType::F32, shape, padded};
    ringAttentionForward(comm, sq, sk, sv, so, l2.data(), options);
    ringAttentionBackward(comm, sq, sk, sv, so, l2.data(), C(dO), sdq, C(dk2), C(dv2), options);
    auto unpad = [&](const std::vector<float> &x) {
      std::vector<float> y(N);
      for (int64_t s = 0; s < localS; ++s)
        for (int64_t i = 0; i < H * D; ++i)
          y[size_t(s * H * D + i)] = x[size_t(s * pad + i)];
      return y;
    };
    EXPECT_EQ(unpad(o2), o1);
    EXPECT_EQ(l2, l1);
    EXPECT_EQ(unpad(dq2), dq1);
    EXPECT_EQ(dk2, dk1);
    EXPECT_EQ(dv2, dv1);
    EXPECT_EQ(o2[size_t(H * D)], -7.f) << "wrote into the padding";
  }));
}
