//===- RingDemo.cpp - the main job: ring attention over in-process ranks --===//
//
// Causal attention over a sequence split across 4 ranks (zigzag layout),
// forward and backward, with the K/V shards travelling a ring of threads
// while each rank computes: with a CUDA driver and 2+ GPUs, one thread per
// GPU on the cuda backend with NCCL transfers (shards in device memory);
// otherwise CPU ranks over the in-process transport. Checked against single-device attention and
// float64 with the FlashAttention tolerance rule; prints per-rank memory,
// per-step timings and overlap, and the errors.
//
//===----------------------------------------------------------------------===//
#include "RingDemo.h"
#include "Commands.h"

#include "loom/Support/Error.h"
#include "loom/Support/HalfPrecision.h"
#include "loom/cuda/Driver.h"
#include "loom/ops/Reference.h"
#include "loom/ops/RingAttention.h"
#include "loom/runtime/Memory.h"

#include <optional>

#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace loom::cli {
namespace {
namespace ref = ops::ref;

struct Problem {
  int world = 4;
  bool gpus = false; ///< cuda backend + NCCL, rank r on GPU r
  int64_t B = 1, S = 1024, Hq = 4, Hkv = 2, D = 64;
  DType dtype = DType::BF16;
  ops::RingLayout layout = ops::RingLayout::Zigzag;
};

/// bf16 bits of values, and the values the kernels see.
struct Bf16Tensor {
  std::vector<uint16_t> bits;
  std::vector<double> seen;
  explicit Bf16Tensor(size_t n) {
    auto v = ref::randomVector(n, -1.5f, 1.5f);
    bits = ref::toBf16Bits(v);
    seen = ref::toDouble(ref::roundToBf16(v));
  }
  ops::Tensor4 tensor(std::array<int64_t, 4> shape) const {
    return ops::Tensor4::contiguous(bits.data(), DType::BF16, shape);
  }
};

std::vector<float> toFloat(const std::vector<uint16_t> &bits) {
  std::vector<float> f(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    f[i] = bf16ToFloat(bits[i]);
  return f;
}

using ref::maxAbsError;

struct Whole {
  std::vector<uint16_t> o, dq, dk, dv;
};

/// Single-device attention forward and backward on the whole sequence.
Whole singleDevice(const Problem &p, const Bf16Tensor &q, const Bf16Tensor &k,
                   const Bf16Tensor &v, const Bf16Tensor &dO,
                   const ops::AttentionOptions &opt) {
  std::array<int64_t, 4> qs{p.B, p.S, p.Hq, p.D}, ks{p.B, p.S, p.Hkv, p.D};
  Whole w{std::vector<uint16_t>(q.bits.size(), 0x7fff),
          std::vector<uint16_t>(q.bits.size()),
          std::vector<uint16_t>(k.bits.size()),
          std::vector<uint16_t>(k.bits.size())};
  std::vector<float> lse(size_t(p.B * p.Hq * p.S));
  auto T = [](std::vector<uint16_t> &b, std::array<int64_t, 4> s) {
    return ops::Tensor4::contiguous(b.data(), DType::BF16, s);
  };
  ops::attentionForward(q.tensor(qs), k.tensor(ks), v.tensor(ks), T(w.o, qs),
                        lse.data(), opt);
  ops::attentionBackward(q.tensor(qs), k.tensor(ks), v.tensor(ks), T(w.o, qs),
                         lse.data(), dO.tensor(qs), T(w.dq, qs), T(w.dk, ks),
                         T(w.dv, ks), opt);
  return w;
}

/// Ring attention on `world` threads; outputs gathered in token order.
Whole ring(const Problem &p, const Bf16Tensor &q, const Bf16Tensor &k,
           const Bf16Tensor &v, const Bf16Tensor &dO,
           const ops::AttentionOptions &opt, std::vector<ops::RingStats> &fwd,
           std::vector<ops::RingStats> &bwd) {
  std::array<int64_t, 4> qs{p.B, p.S, p.Hq, p.D}, ks{p.B, p.S, p.Hkv, p.D};
  int64_t localS = p.S / p.world;
  std::array<int64_t, 4> lq{p.B, localS, p.Hq, p.D},
      lk{p.B, localS, p.Hkv, p.D};
  Whole w{std::vector<uint16_t>(q.bits.size(), 0x7fff),
          std::vector<uint16_t>(q.bits.size(), 0x7fff),
          std::vector<uint16_t>(k.bits.size(), 0x7fff),
          std::vector<uint16_t>(k.bits.size(), 0x7fff)};
  fwd.assign(size_t(p.world), {}), bwd.assign(size_t(p.world), {});
  ops::RingAttentionOptions options{opt, p.layout};
  runtime::rethrowFirstError(
      runtime::runInProcessRanks(p.world, [&](runtime::Communicator &comm) {
        int r = comm.rank();
        auto local = [](std::array<int64_t, 4> s) {
          return std::vector<uint16_t>(size_t(s[0] * s[1] * s[2] * s[3]));
        };
        auto lqv = local(lq), lkv = local(lk), lvv = local(lk), ldo = local(lq),
             lo = local(lq), ldq = local(lq), ldk = local(lk), ldv = local(lk);
        auto T = [](std::vector<uint16_t> &b, std::array<int64_t, 4> s) {
          return ops::Tensor4::contiguous(b.data(), DType::BF16, s);
        };
        ops::shardSequence(q.tensor(qs), lqv.data(), p.layout, r, p.world);
        ops::shardSequence(k.tensor(ks), lkv.data(), p.layout, r, p.world);
        ops::shardSequence(v.tensor(ks), lvv.data(), p.layout, r, p.world);
        ops::shardSequence(dO.tensor(qs), ldo.data(), p.layout, r, p.world);
        std::vector<float> lse(size_t(p.B * p.Hq * localS));
        // On GPUs: this rank's device, a NCCL communicator bootstrapped
        // through the in-process one, and device copies of the shards.
        std::optional<cuda::Context> context;
        std::unique_ptr<runtime::Communicator> nccl;
        std::vector<std::pair<cuda::DeviceBuffer, void *>> device;
        device.reserve(9);
        if (p.gpus) {
          context.emplace(r);
          nccl = runtime::createNcclCommunicator(comm, r);
        }
        auto place = [&](void *host, size_t bytes) -> void * {
          if (!p.gpus)
            return host;
          device.emplace_back(cuda::DeviceBuffer(bytes), host);
          device.back().first.copyFromHost(host, bytes);
          return reinterpret_cast<void *>(device.back().first.ptr());
        };
        auto D = [&](std::vector<uint16_t> &b, std::array<int64_t, 4> s) {
          return ops::Tensor4::contiguous(place(b.data(), b.size() * 2),
                                          DType::BF16, s);
        };
        ops::Tensor4 tq = D(lqv, lq), tk = D(lkv, lk), tv = D(lvv, lk),
                     tdo = D(ldo, lq), to = D(lo, lq), tdq = D(ldq, lq),
                     tdk = D(ldk, lk), tdv = D(ldv, lk);
        auto *tlse = static_cast<float *>(place(lse.data(), lse.size() * 4));
        runtime::Communicator &transport = nccl ? *nccl : comm;
        ops::ringAttentionForward(transport, tq, tk, tv, to, tlse, options,
                                  &fwd[size_t(r)]);
        ops::ringAttentionBackward(transport, tq, tk, tv, to, tlse, tdo, tdq,
                                   tdk, tdv, options, &bwd[size_t(r)]);
        for (auto &[buffer, host] : device)
          buffer.copyToHost(host, buffer.size());
        ops::unshardSequence(lo.data(), T(w.o, qs), p.layout, r, p.world);
        ops::unshardSequence(ldq.data(), T(w.dq, qs), p.layout, r, p.world);
        ops::unshardSequence(ldk.data(), T(w.dk, ks), p.layout, r, p.world);
        ops::unshardSequence(ldv.data(), T(w.dv, ks), p.layout, r, p.world);
      }));
  return w;
}

void printSteps(const char *pass, const std::vector<ops::RingStats> &stats) {
  std::printf("  %s, per step (compute ms / transfer ms, rank 0..%zu):\n", pass,
              stats.size() - 1);
  for (size_t s = 0; s < stats[0].steps.size(); ++s) {
    std::printf("    step %zu:", s);
    for (const ops::RingStats &r : stats) {
      const ops::RingStepTiming &t = r.steps[s];
      std::string transfer =
          t.hasTransfer ? fmt::format("{:.2f}", t.transferEnd - t.transferStart)
                        : std::string("-");
      std::printf("  %7.2f / %-5s", t.computeEnd - t.computeStart,
                  transfer.c_str());
    }
    std::printf("\n");
  }
  double hidden = 0, bound = 0;
  for (const ops::RingStats &r : stats)
    hidden += r.overlappedMs(), bound += r.overlapBoundMs();
  std::printf(
      "    overlap efficiency (transfer time hidden behind compute): %.0f%%\n",
      bound > 0 ? 100 * hidden / bound : 100.0);
}

bool check(const char *what, const std::vector<uint16_t> &ringBits,
           const std::vector<uint16_t> &singleBits,
           const std::vector<double> &want, const std::vector<double> &naive) {
  std::vector<float> ringOut = toFloat(ringBits), single = toFloat(singleBits);
  std::vector<float> naiveF(naive.begin(), naive.end());
  double ringErr = maxAbsError(ringOut, want),
         singleErr = maxAbsError(single, want),
         naiveErr = maxAbsError(naiveF, want);
  double diff = 0;
  for (size_t i = 0; i < ringOut.size(); ++i)
    diff = std::max(diff, double(std::fabs(ringOut[i] - single[i])));
  bool ok = ringErr <= 2 * naiveErr + 1e-3;
  std::printf("  %-3s max error vs float64: ring %.2e, single device %.2e, "
              "naive bf16 %.2e; "
              "|ring - single| %.2e: %s\n",
              what, ringErr, singleErr, naiveErr, diff, ok ? "PASS" : "FAIL");
  return ok;
}
} // namespace

bool ringDemo() {
  Problem p;
  std::string why;
  int gpus = cuda::driverAvailable(&why) ? cuda::deviceCount() : 0;
  size_t nq = size_t(p.B * p.S * p.Hq * p.D),
         nk = size_t(p.B * p.S * p.Hkv * p.D);
  Bf16Tensor q(nq), k(nk), v(nk), dO(nq);
  ops::AttentionOptions opt;
  opt.causal = true;
  std::vector<ops::RingStats> fwd, bwd;
  std::optional<Whole> ringOut;
  if (gpus >= 2) {
    // Zigzag needs the sequence divisible by 2P: 2 or 4 GPUs.
    p.world = gpus >= 4 ? 4 : 2;
    p.gpus = true;
    opt.backend = runtime::Backend::Cuda;
    std::printf("Loom demo: ring attention over %d GPUs (cuda backend, NCCL "
                "transfers, shards in device memory)\n",
                p.world);
    try {
      ringOut = ring(p, q, k, v, dO, opt, fwd, bwd);
    } catch (const Error &e) {
      if (e.code() != ErrorCode::DeviceUnavailable)
        throw;
      std::printf("  the GPU ring is unavailable (%s); falling back to CPU ranks\n",
                  e.what());
      p.world = 4, p.gpus = false;
    }
  }
  if (!p.gpus) {
    std::printf("Loom demo: ring attention over %d in-process ranks on the CPU "
                "backend\n",
                p.world);
    if (gpus < 2)
      std::printf("  (NCCL across GPUs needs a CUDA driver and 2+ GPUs; %s)\n",
                  gpus == 0 ? why.c_str() : "this machine has 1");
  }
  std::printf("  batch %lld, seqlen %lld, %lld query / %lld KV heads, head dim "
              "%lld, bf16, "
              "causal, %s layout\n",
              (long long)p.B, (long long)p.S, (long long)p.Hq, (long long)p.Hkv,
              (long long)p.D, ops::ringLayoutName(p.layout));
  // The single-device reference always runs on the CPU (host buffers).
  opt.backend = runtime::Backend::Cpu;
  if (!ringOut)
    ringOut = ring(p, q, k, v, dO, opt, fwd, bwd);
  Whole single = singleDevice(p, q, k, v, dO, opt);

  std::printf("  memory per rank (K/V double buffers, f32 accumulators; shards "
              "of the whole "
              "sequence):\n");
  for (size_t r = 0; r < fwd.size(); ++r)
    std::printf("    rank %zu: forward workspace %.0f KiB + shards %.0f KiB; "
                "backward workspace "
                "%.0f KiB + shards %.0f KiB\n",
                r, fwd[r].workspaceBytes / 1024.0, fwd[r].shardBytes / 1024.0,
                bwd[r].workspaceBytes / 1024.0, bwd[r].shardBytes / 1024.0);
  std::printf("    (a single device holds all %lld tokens: %.0f KiB of inputs "
              "and outputs)\n",
              (long long)p.S, double(4 * (nq + nk)) * 2 / 1024.0);
  printSteps("forward", fwd);
  printSteps("backward", bwd);
  std::printf("  (step 0 includes the one-time JIT compile of the kernels)\n");

  double scale = 1.0 / std::sqrt(double(p.D));
  auto want = ref::attention(q.seen, k.seen, v.seen, p.B, p.S, p.S, p.Hq, p.Hkv,
                             p.D, true, scale);
  auto naive = ref::attention(q.seen, k.seen, v.seen, p.B, p.S, p.S, p.Hq,
                              p.Hkv, p.D, true, scale, "bf16");
  auto grads = ref::attentionBackward(q.seen, k.seen, v.seen, dO.seen, p.B, p.S,
                                      p.S, p.Hq, p.Hkv, p.D, true, scale);
  auto naiveGrads =
      ref::attentionBackward(q.seen, k.seen, v.seen, dO.seen, p.B, p.S, p.S,
                             p.Hq, p.Hkv, p.D, true, scale, "bf16");
  bool ok = check("O", ringOut->o, single.o, want.out, naive.out);
  ok &= check("dQ", ringOut->dq, single.dq, grads.dq, naiveGrads.dq);
  ok &= check("dK", ringOut->dk, single.dk, grads.dk, naiveGrads.dk);
  ok &= check("dV", ringOut->dv, single.dv, grads.dv, naiveGrads.dv);
  return ok;
}

} // namespace loom::cli
