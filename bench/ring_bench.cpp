//===- ring_bench.cpp - ring attention: overlap, memory per rank, model ---===//
//
// Measurements printed, never asserted:
// 1. Per-step compute and transfer milliseconds and the overlap efficiency
//    (transfer time hidden behind compute / the smaller of the two, i.e.
//    RingStats::overlappedMs / overlapBoundMs) of causal zigzag ring
//    attention on the CPU backend, for the in-process transport (ranks are
//    threads) and, when started by mpirun, for MPI:
//      mpirun -np 4 build/bin/loom-bench-ring --mpi
// 2. Memory per rank (ring workspace + local shards) against sequence
//    length for P = 1, 2, 4: it falls as 1/P.
// 3. A model, not a measurement: the fewest tokens per rank for which a
//    step's K/V transfer hides behind its compute on A100/H100 links.
//
//===----------------------------------------------------------------------===//
#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Reference.h"
#include "loom/ops/RingAttention.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

using namespace loom;

namespace {
struct Problem {
  int64_t seqlen, heads, dim;
  DType dtype;
  /// Causal, or a causal sliding window of this many tokens.
  std::optional<int64_t> window = {};
};

/// One pass (forward or backward) on one rank, summarized; plain doubles so
/// MPI ranks can allgather it.
struct PassSummary {
  double computeMs = 0, transferMs = 0; ///< summed over steps
  double steps = 0, transfers = 0;
  double overlappedMs = 0, overlapBoundMs = 0;
  double wallMs = 0, memoryBytes = 0;
};

struct RankSummary {
  PassSummary forward, backward;
};

PassSummary summarize(const ops::RingStats &s) {
  PassSummary p;
  for (const ops::RingStepTiming &t : s.steps) {
    p.computeMs += t.computeEnd - t.computeStart, p.steps += 1;
    if (t.hasTransfer)
      p.transferMs += t.transferEnd - t.transferStart, p.transfers += 1;
  }
  p.overlappedMs = s.overlappedMs(), p.overlapBoundMs = s.overlapBoundMs();
  if (!s.steps.empty())
    p.wallMs = std::max(s.steps.back().computeEnd, s.steps.back().transferEnd) -
               s.steps.front().computeStart;
  p.memoryBytes = double(s.workspaceBytes + s.shardBytes);
  return p;
}

/// This rank's shard of a random (1, seqlen, heads, dim) tensor.
std::vector<uint8_t> randomShard(const Problem &p, int world) {
  size_t n = size_t(p.seqlen / world * p.heads * p.dim);
  std::vector<float> f = ops::ref::randomVector(n, -1.5f, 1.5f);
  std::vector<uint8_t> bytes(n * dtypeSize(p.dtype));
  if (p.dtype == DType::F32)
    std::memcpy(bytes.data(), f.data(), bytes.size());
  else
    for (size_t i = 0; i < n; ++i) {
      uint16_t b = floatToBf16(f[i]);
      std::memcpy(&bytes[2 * i], &b, 2);
    }
  return bytes;
}

/// Causal zigzag forward + backward on this rank (a first call compiles the
/// kernels: main warms them up).
RankSummary runRank(runtime::Communicator &comm, const Problem &p) {
  int P = comm.size();
  std::array<int64_t, 4> shape{1, p.seqlen / P, p.heads, p.dim};
  auto q = randomShard(p, P), k = randomShard(p, P), v = randomShard(p, P), dO = randomShard(p, P);
  std::vector<uint8_t> o(q.size()), dq(q.size()), dk(q.size()), dv(q.size());
  std::vector<float> lse(size_t(p.heads * shape[1]));
  auto T = [&](std::vector<uint8_t> &b) {
    return ops::Tensor4::contiguous(b.data(), p.dtype, shape);
  };
  ops::RingAttentionOptions options;
  options.attention.causal = true;
  if (p.window)
    options.attention.variant = ops::AttentionVariant::slidingWindow(*p.window);
  options.attention.backend = runtime::Backend::Cpu;
  ops::RingStats fwd, bwd;
  ops::ringAttentionForward(comm, T(q), T(k), T(v), T(o), lse.data(), options, &fwd);
  ops::ringAttentionBackward(comm, T(q), T(k), T(v), T(o), lse.data(), T(dO), T(dq), T(dk), T(dv),
                             options, &bwd);
  return {summarize(fwd), summarize(bwd)};
}

/// Every rank's summaries (forward, backward), over `world` in-process ranks.
std::vector<RankSummary> runThreads(int world, const Problem &p) {
  std::vector<RankSummary> out(static_cast<size_t>(world));
  runtime::rethrowFirstError(runtime::runInProcessRanks(world, [&](runtime::Communicator &comm) {
    out[size_t(comm.rank())] = runRank(comm, p);
  }));
  return out;
}

void printOverlapHeader() {
  std::printf("%-7s %6s %5s %-8s %11s %11s %9s %9s\n", "ranks", "seqlen", "dtype", "pass",
              "compute/st", "transfer/st", "overlap", "wall");
  std::printf("%-7s %6s %5s %-8s %11s %11s %9s %9s\n", "", "", "", "", "ms", "ms", "", "ms");
}

/// One line per pass: per-step means over ranks and steps, overlap summed.
void printOverlap(const char *transport, int world, const Problem &p,
                  const std::vector<RankSummary> &ranks) {
  for (int pass = 0; pass < 2; ++pass) {
    PassSummary sum;
    double wall = 0;
    for (auto &r : ranks) {
      const PassSummary &s = pass ? r.backward : r.forward;
      sum.computeMs += s.computeMs, sum.steps += s.steps;
      sum.transferMs += s.transferMs, sum.transfers += s.transfers;
      sum.overlappedMs += s.overlappedMs, sum.overlapBoundMs += s.overlapBoundMs;
      wall = std::max(wall, s.wallMs);
    }
    std::string label = std::string(transport) + " " + std::to_string(world);
    std::printf("%-7s %6lld %5s %-8s %11.2f %11.3f %8.0f%% %9.1f\n", label.c_str(),
                (long long)p.seqlen, dtypeName(p.dtype).data(), pass ? "backward" : "forward",
                sum.computeMs / std::max(sum.steps, 1.0),
                sum.transferMs / std::max(sum.transfers, 1.0),
                sum.overlapBoundMs > 0 ? 100 * sum.overlappedMs / sum.overlapBoundMs : 0.0, wall);
  }
}

const std::vector<Problem> &overlapProblems() {
  static const std::vector<Problem> problems = {{512, 4, 64, DType::F32},
                                                {1024, 4, 64, DType::F32},
                                                {512, 4, 64, DType::BF16},
                                                {1024, 4, 64, DType::BF16}};
  return problems;
}

/// Under mpirun: the same problems over MPI, one process per rank; rank 0
/// prints every rank's summaries gathered through the communicator.
/// Returns this process's rank.
int measureMpi() {
  auto comm = runtime::createMpiCommunicator();
  int P = comm->size();
  if (comm->rank() == 0) {
    std::printf("1. Ring attention over MPI (%d processes, CPU backend, causal zigzag, 4 heads, "
                "head dim 64)\n",
                P);
    printOverlapHeader();
  }
  for (DType t : {DType::F32, DType::BF16})
    runRank(*comm, {64 * P, 4, 64, t}); // compiles the kernels
  for (const Problem &p : overlapProblems()) {
    if (p.seqlen % (2 * P) != 0)
      continue;
    auto mine = runRank(*comm, p);
    auto all = comm->allgather(std::span(reinterpret_cast<const uint8_t *>(&mine), sizeof mine));
    std::vector<RankSummary> ranks(all.size());
    for (size_t r = 0; r < all.size(); ++r)
      std::memcpy(&ranks[r], all[r].data(), sizeof ranks[r]);
    if (comm->rank() == 0)
      printOverlap("mpi", P, p, ranks);
  }
  return comm->rank();
}

// Model (section 3). Rank holds c tokens; per ring step it computes its c
// queries against c received keys and sends/receives c tokens of K and V.
// With h query heads, h_kv K/V heads, head dim d, s bytes per element, peak
// F FLOP/s and link bandwidth B bytes/s per direction (a ring step sends and
// receives at once):
//
//   forward compute  = 4 c^2 d h * k FLOPs   (QK^T and PV, 2 c^2 d h each;
//                                             k = 1, or 1/2 for causal with
//                                             the zigzag layout: every step
//                                             sees half of the c x c block)
//   forward transfer = 2 c d h_kv s bytes    (K and V)
//
//   hidden  <=>  4 c^2 d h k / F >= 2 c d h_kv s / B
//           <=>  c >= (h_kv s / (2 h k)) * F / B.
//
// d cancels. For MHA in bf16 (h_kv = h, s = 2), non-causal: c >= F / B, the
// Ring Attention paper's condition. GQA h/h_kv = 8 divides it by 8; causal
// doubles it. Backward: 10 c^2 d h k FLOPs (QK^T recomputed, dV, dP, dQ, dK)
// against K, V (s bytes) plus dK, dV (f32, 4 bytes) travelling the ring:
//   c >= (h_kv (s + 4) / (5 h k)) * F / B.
// It assumes the kernels run at peak F; at a fraction u of peak, c_min
// scales by u.

/// The fewest tokens per rank for which a ring step's transfer takes no
/// longer than its compute (the derivation above).
double minTokensPerRank(double peakFlops, double linkBytesPerSecond, double headsPerKVHead,
                        double bytesPerElement, bool causal, bool backward) {
  double k = causal ? 0.5 : 1.0, ratio = peakFlops / linkBytesPerSecond;
  if (backward)
    return (bytesPerElement + 4) / (5 * headsPerKVHead * k) * ratio;
  return bytesPerElement / (2 * headsPerKVHead * k) * ratio;
}

void printModel() {
  std::printf("\n3. Model, not a measurement: fewest tokens per rank c_min for which a ring "
              "step's K/V transfer hides behind its compute at peak bf16 FLOP/s\n"
              "   (c >= (h_kv s / (2 h k)) F / B; s = 2 bytes, k = 1/2 causal zigzag; the head "
              "dim, 128 here, cancels; derivation in bench/ring_bench.cpp)\n");
  struct Link {
    const char *gpu, *link;
    double flops, bytes;
  };
  const Link links[] = {{"A100", "NVLink 300 GB/s", 312e12, 300e9},
                        {"A100", "IB HDR 25 GB/s", 312e12, 25e9},
                        {"H100 SXM", "NVLink 450 GB/s", 989e12, 450e9},
                        {"H100 SXM", "IB NDR 50 GB/s", 989e12, 50e9}};
  std::printf("%-9s %-16s %7s %9s %9s %9s %9s %10s\n", "GPU", "link", "F/B", "MHA", "MHA",
              "GQA 8:1", "GQA 8:1", "MHA bwd");
  std::printf("%-9s %-16s %7s %9s %9s %9s %9s %10s\n", "", "", "FLOP/B", "full", "causal", "full",
              "causal", "causal");
  for (const Link &l : links)
    std::printf("%-9s %-16s %7.0f %9.0f %9.0f %9.0f %9.0f %10.0f\n", l.gpu, l.link,
                l.flops / l.bytes, minTokensPerRank(l.flops, l.bytes, 1, 2, false, false),
                minTokensPerRank(l.flops, l.bytes, 1, 2, true, false),
                minTokensPerRank(l.flops, l.bytes, 8, 2, false, false),
                minTokensPerRank(l.flops, l.bytes, 8, 2, true, false),
                minTokensPerRank(l.flops, l.bytes, 1, 2, true, true));
  std::printf("(tokens per rank; the sequence length is P x c_min. \"MHA bwd causal\": the "
              "backward, whose dK/dV travel in f32.)\n");
}
} // namespace

int main(int argc, char **argv) {
  bool wantMpi = argc > 1 && !std::strcmp(argv[1], "--mpi");
  if (runtime::launchedByMpi()) {
    if (measureMpi() == 0)
      printModel();
    return 0;
  }

  std::printf("1. Ring attention, in-process transport (ranks are threads; CPU backend, 2 "
              "cores), causal zigzag, 4 heads, head dim 64\n"
              "   per-step means over ranks and steps; overlap = transfer time hidden behind "
              "compute / min(compute, transfer), summed over steps;\n"
              "   a transfer lasts until the neighbours have posted theirs too, so it includes "
              "waiting for the slower rank\n");
  printOverlapHeader();
  for (DType t : {DType::F32, DType::BF16})
    runThreads(4, {256, 4, 64, t}); // compiles the kernels
  for (const Problem &p : overlapProblems())
    printOverlap("inproc", 4, p, runThreads(4, p));
  std::printf("%s: mpirun -np 4 build/bin/loom-bench-ring --mpi\n",
              wantMpi ? "--mpi needs mpirun; run" : "MPI transport");

  std::printf("\n2. Memory per rank: RingStats workspaceBytes (K/V double buffers, f32 "
              "accumulators) + shardBytes (local inputs and outputs), zigzag, f32, 4 heads, head "
              "dim 64\n   (a causal sliding window of 128 tokens keeps the compute small; the "
              "buffers do not depend on the mask)\n");
  std::printf("%6s %5s %12s %12s %9s %9s\n", "seqlen", "ranks", "forward KiB", "backward KiB",
              "fwd/P=1", "bwd/P=1");
  for (int64_t S : {1024, 2048, 4096}) {
    double baseFwd = 0, baseBwd = 0;
    for (int P : {1, 2, 4}) {
      auto ranks = runThreads(P, {S, 4, 64, DType::F32, 128});
      double fwd = 0, bwd = 0;
      for (auto &r : ranks)
        fwd = std::max(fwd, r.forward.memoryBytes), bwd = std::max(bwd, r.backward.memoryBytes);
      if (P == 1)
        baseFwd = fwd, baseBwd = bwd;
      std::printf("%6lld %5d %12.1f %12.1f %9.3f %9.3f\n", (long long)S, P, fwd / 1024, bwd / 1024,
                  fwd / baseFwd, bwd / baseBwd);
    }
  }
  printModel();
  return 0;
}
