//===- RingAttention.cpp - the ring scheduler, forward and backward -------===//
//
// Written once against runtime::Stream/Event and runtime::Communicator: the
// compute stream runs the attention kernels, the communication stream the
// grouped send/receive of each step, and events order them (see
// RingAttention.h for the schedule). Buffers are host memory: the ring runs
// on the cpu and emu backends.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/RingAttention.h"

#include "loom/Support/Error.h"
#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Merge.h"

#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <functional>
#include <set>

namespace loom::ops {
namespace {
using runtime::Event;
using runtime::Stream;
using EventPtr = std::shared_ptr<Event>;

/// Shapes and layout every rank must agree on.
struct RingProblem {
  int rank, world;
  int64_t B, localS, S, Hq, Hkv, D;
  DType dtype;
  runtime::Backend backend;
  std::vector<TokenSegment> mine;
  AttentionVariant variant; // with options.causal folded in
};

std::string shapeText(const Tensor4 &t) {
  return fmt::format("({}, {}, {}, {})", t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
}

RingProblem checkLocal(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                       const Tensor4 &v, const RingAttentionOptions &options) {
  RingProblem p;
  p.rank = comm.rank(), p.world = comm.size();
  p.backend = runtime::resolveBackend(options.attention.backend);
  if (p.backend == runtime::Backend::Cuda)
    throw Error(ErrorCode::Unsupported,
                "ring attention: the cuda backend is not supported yet (the ring keeps its "
                "buffers in host memory); use --backend cpu or emu");
  if (!q.data || !k.data || !v.data)
    throw Error(ErrorCode::InvalidArgument, "ring attention: q, k or v is a null pointer");
  if (k.shape != v.shape)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: k {} and v {} shapes differ", shapeText(k),
                            shapeText(v)));
  if (q.shape[1] != k.shape[1])
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: q and k must hold the same tokens per rank; q has "
                            "{}, k has {}",
                            q.shape[1], k.shape[1]));
  if (q.shape[0] != k.shape[0] || q.shape[3] != k.shape[3])
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: q {} and k {} differ in batch or head_dim",
                            shapeText(q), shapeText(k)));
  if (k.shape[2] <= 0 || q.shape[2] % k.shape[2] != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: heads_q ({}) is not divisible by heads_kv ({})",
                            q.shape[2], k.shape[2]));
  if (q.dtype != k.dtype || q.dtype != v.dtype)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: dtypes differ: q {}, k {}, v {}", dtypeName(q.dtype),
                            dtypeName(k.dtype), dtypeName(v.dtype)));
  p.B = q.shape[0], p.localS = q.shape[1], p.Hq = q.shape[2], p.Hkv = k.shape[2];
  p.D = q.shape[3], p.dtype = q.dtype;
  p.S = p.localS * p.world;
  p.mine = ringShard(options.layout, p.S, p.rank, p.world);
  const AttentionOptions &a = options.attention;
  p.variant = a.causal ? combine(AttentionVariant::causalMask(), a.variant) : a.variant;
  return p;
}

/// Checks this rank's inputs, then agrees on metadata with the others. A
/// rank whose own inputs are bad aborts the communicator, so its peers fail
/// with PeerFailed (naming it and the reason) instead of timing out.
/// `more` checks the pass's other arguments (outputs, LSE) in the same way.
RingProblem checkRing(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                      const Tensor4 &v, const RingAttentionOptions &options, const char *pass,
                      const std::function<void()> &more) {
  RingProblem p;
  try {
    p = checkLocal(comm, q, k, v, options);
    more();
  } catch (const std::exception &e) {
    comm.abort(e.what());
    throw;
  }
  const AttentionOptions &a = options.attention;
  // Every rank gathers every rank's metadata and compares it with rank 0's
  // field by field, so all fail together with the same message.
  std::vector<std::pair<std::string, std::string>> fields = {
      {"pass", pass},
      {"world size", std::to_string(p.world)},
      {"layout", ringLayoutName(options.layout)},
      {"q shape", shapeText(q)},
      {"k shape", shapeText(k)},
      {"dtype", std::string(dtypeName(p.dtype))},
      {"variant", p.variant.name},
      {"scale", a.scale ? fmt::format("{}", *a.scale) : "default"},
      {"backend", runtime::backendName(p.backend)}};
  std::string text;
  for (auto &[name, value] : fields)
    text += name + "=" + value + "\n";
  auto all = comm.allgather(std::span(reinterpret_cast<const uint8_t *>(text.data()), text.size()));
  std::string root(all[0].begin(), all[0].end());
  for (size_t r = 1; r < all.size(); ++r) {
    std::string other(all[r].begin(), all[r].end());
    if (other == root)
      continue;
    size_t i = 0;
    while (i < root.size() && i < other.size() && root[i] == other[i])
      ++i;
    size_t start = root.rfind('\n', i == 0 ? 0 : i - 1);
    start = start == std::string::npos ? 0 : start + 1;
    auto field = [&](const std::string &s) { return s.substr(start, s.find('\n', start) - start); };
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: ranks disagree before the first transfer: rank 0 "
                            "has {}, rank {} has {}",
                            field(root), r, field(other)));
  }
  return p;
}

/// Rows of `t` (a (batch, seqlen, heads, dim) view) for one segment.
Tensor4 segmentView(const Tensor4 &t, const TokenSegment &s) {
  Tensor4 view = t;
  view.data = static_cast<const uint8_t *>(t.data) +
              s.localStart * t.strides[1] * int64_t(dtypeSize(t.dtype));
  view.shape[1] = s.count;
  return view;
}

/// Whether the mask hides every (query, key) pair of two segments, judged
/// from the variant's analyzable parts (causal, window) in global positions.
bool hidden(const AttentionVariant &v, const TokenSegment &qs, const TokenSegment &ks) {
  int64_t qFirst = qs.offset, qLast = qs.offset + (qs.count - 1) * qs.stride;
  int64_t kFirst = ks.offset, kLast = ks.offset + (ks.count - 1) * ks.stride;
  if (v.causal && kFirst > qLast)
    return true;
  return v.window && qFirst - kLast >= *v.window;
}

AttentionOptions segmentOptions(const RingAttentionOptions &o, const RingProblem &p,
                                const TokenSegment &qs, const TokenSegment &ks) {
  AttentionOptions a = o.attention;
  a.backend = p.backend;
  a.queryPositions = {qs.offset, qs.stride, p.S};
  a.keyPositions = {ks.offset, ks.stride, p.S};
  // A block mask is for one call's shapes and positions; each segment pair
  // gets its own (built per call from the mask_mod, in global positions).
  a.blockMask = nullptr;
  return a;
}

/// Copies `t` (any strides) into contiguous storage at `dst`.
void pack(const Tensor4 &t, uint8_t *dst) {
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

/// Writes f32 `src` (element (b, s, h, d) at src[b*sb + s*ss + h*sh + d])
/// into `dst` in dst's dtype and strides.
void storeConverted(const float *src, std::array<int64_t, 3> srcStrides, const Tensor4 &dst) {
  size_t es = dtypeSize(dst.dtype);
  auto *base = static_cast<uint8_t *>(const_cast<void *>(dst.data));
  for (int64_t b = 0; b < dst.shape[0]; ++b)
    for (int64_t s = 0; s < dst.shape[1]; ++s)
      for (int64_t h = 0; h < dst.shape[2]; ++h) {
        const float *x = src + b * srcStrides[0] + s * srcStrides[1] + h * srcStrides[2];
        uint8_t *y = base + (b * dst.strides[0] + s * dst.strides[1] + h * dst.strides[2]) * es;
        for (int64_t d = 0; d < dst.shape[3]; ++d) {
          if (dst.dtype == DType::F32)
            std::memcpy(y + d * 4, &x[d], 4);
          else {
            uint16_t bits = dst.dtype == DType::F16 ? floatToHalf(x[d]) : floatToBf16(x[d]);
            std::memcpy(y + d * 2, &bits, 2);
          }
        }
      }
}

Tensor4 contiguousView(const void *data, DType dtype, int64_t B, int64_t S, int64_t H, int64_t D) {
  return Tensor4::contiguous(data, dtype, {B, S, H, D});
}

/// K and V of one shard travel together in one buffer; two buffers, so
/// one can be received while the other is computed on.
struct KvSlots {
  KvSlots(const RingProblem &p, const Tensor4 &k, const Tensor4 &v)
      : p(p), elems(size_t(p.B * p.localS * p.Hkv * p.D)),
        bytes(2 * elems * dtypeSize(p.dtype)), slots{std::vector<uint8_t>(bytes),
                                                     std::vector<uint8_t>(bytes)} {
    pack(k, slots[0].data());
    pack(v, slots[0].data() + bytes / 2);
  }
  /// The slot holding step `step`'s shard, and the one its successor
  /// arrives in.
  uint8_t *current(int step) { return slots[step % 2].data(); }
  uint8_t *next(int step) { return slots[(step + 1) % 2].data(); }
  Tensor4 k(int step) { return view(current(step)); }
  Tensor4 v(int step) { return view(current(step) + bytes / 2); }

  const RingProblem &p;
  size_t elems, bytes;
  std::vector<uint8_t> slots[2];

private:
  Tensor4 view(const uint8_t *data) const {
    return contiguousView(data, p.dtype, p.B, p.localS, p.Hkv, p.D);
  }
};

/// The two streams of a rank and the per-step events behind the timeline.
struct RingPipeline {
  runtime::Communicator &comm;
  std::unique_ptr<Stream> compute, transfer;
  struct StepEvents {
    int sourceRank = 0, launches = 0;
    EventPtr computeStart, computeEnd, transferStart, transferEnd;
  };
  std::vector<StepEvents> steps;

  RingPipeline(runtime::Communicator &c, const RingProblem &p) : comm(c) {
    compute = runtime::createStream(p.backend, fmt::format("ring compute r{}", p.rank));
    transfer = runtime::createStream(p.backend, fmt::format("ring transfer r{}", p.rank));
    steps.resize(size_t(p.world));
  }

  int next() const { return (comm.rank() + 1) % comm.size(); }
  int prev() const { return (comm.rank() + comm.size() - 1) % comm.size(); }

  /// Sends `bytes` of `send` to the next rank and receives as many into
  /// `recv` from the previous one, on the transfer stream.
  void shift(const void *send, void *recv, size_t bytes) {
    comm.sendRecv({send, bytes, next(), recv, bytes, prev()}, *transfer);
  }

  /// Submits the schedule, then waits for both streams. On any failure:
  /// tells the peers (so they fail now rather than at their timeout), lets
  /// the streams drain (queued work refers to the caller's locals, which
  /// must outlive it), and rethrows.
  template <typename F> void run(F schedule) {
    // No deadline of its own: compute may legitimately take long, and every
    // communication wait already has the communicator's deadline, so a dead
    // or stalled peer surfaces here as the transfer's CommTimeout.
    constexpr auto unbounded = std::chrono::hours(24 * 365);
    try {
      schedule();
      compute->synchronize(unbounded);
      transfer->synchronize(unbounded);
    } catch (const std::exception &e) {
      comm.abort(e.what());
      for (Stream *s : {compute.get(), transfer.get()})
        try {
          s->synchronize(unbounded);
        } catch (...) {
          // The first error is the one rethrown.
        }
      throw;
    }
  }

  void report(RingStats *stats, const char *pass, size_t workspace, size_t shards) const {
    if (!stats)
      return;
    stats->rank = comm.rank(), stats->world = comm.size(), stats->pass = pass;
    stats->workspaceBytes = workspace, stats->shardBytes = shards;
    stats->steps.clear();
    for (size_t s = 0; s < steps.size(); ++s) {
      const StepEvents &e = steps[s];
      RingStepTiming t;
      t.step = int(s), t.sourceRank = e.sourceRank, t.launches = e.launches;
      t.computeStart = e.computeStart->completedAtMs();
      t.computeEnd = e.computeEnd->completedAtMs();
      if (e.transferStart) {
        t.hasTransfer = true;
        t.transferStart = e.transferStart->completedAtMs();
        t.transferEnd = e.transferEnd->completedAtMs();
      }
      stats->steps.push_back(t);
    }
  }
};

} // namespace

void ringAttentionForward(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                          const Tensor4 &v, const Tensor4 &out, float *lse,
                          const RingAttentionOptions &options, RingStats *stats) {
  RingProblem p = checkRing(comm, q, k, v, options, "forward", [&] {
    if (!out.data || out.shape != q.shape || out.dtype != q.dtype)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("ring attention: out {} {} must have q's shape {} and dtype {}",
                              shapeText(out), dtypeName(out.dtype), shapeText(q),
                              dtypeName(q.dtype)));
  });
  size_t es = dtypeSize(p.dtype);
  size_t rows = size_t(p.B * p.Hq * p.localS);
  KvSlots kv(p, k, v);
  // f32 accumulators laid out (batch, heads, seqlen, dim) so each head's
  // rows are contiguous for the merge; partials likewise per segment.
  std::vector<float> accOut(rows * size_t(p.D), 0.0f), accLse(rows, -INFINITY);
  std::vector<float> partOut(rows * size_t(p.D)), partLse(rows);

  RingPipeline ring(comm, p);
  auto computeStep = [&](int step) {
    int source = (p.rank - step + p.world) % p.world;
    Tensor4 kShard = kv.k(step), vShard = kv.v(step);
    int launches = 0;
    for (const TokenSegment &ks : ringShard(options.layout, p.S, source, p.world))
      for (const TokenSegment &qs : p.mine) {
        if (hidden(p.variant, qs, ks))
          continue;
        int64_t n = qs.count;
        Tensor4 part{partOut.data(), DType::F32, {p.B, n, p.Hq, p.D},
                     {p.Hq * n * p.D, p.D, n * p.D, 1}};
        attentionForward(segmentView(q, qs), segmentView(kShard, ks), segmentView(vShard, ks),
                         part, partLse.data(), segmentOptions(options, p, qs, ks));
        ++launches;
        for (int64_t bh = 0; bh < p.B * p.Hq; ++bh)
          mergeAttentionPartials(accOut.data() + (bh * p.localS + qs.localStart) * p.D,
                                 accLse.data() + bh * p.localS + qs.localStart,
                                 partOut.data() + bh * n * p.D, partLse.data() + bh * n, n, p.D);
      }
    ring.steps[size_t(step)].launches = launches;
  };

  ring.run([&] {
    for (int s = 0; s < p.world; ++s) {
      auto &ev = ring.steps[size_t(s)];
      ev.sourceRank = (p.rank - s + p.world) % p.world;
      if (s + 1 < p.world) {
        // Receiving into the other slot must wait until the previous step's
        // compute has finished reading it.
        if (s > 0)
          ring.transfer->wait(ring.steps[size_t(s - 1)].computeEnd);
        ev.transferStart = ring.transfer->record();
        ring.shift(kv.current(s), kv.next(s), kv.bytes);
        ev.transferEnd = ring.transfer->record();
      }
      if (s > 0)
        ring.compute->wait(ring.steps[size_t(s - 1)].transferEnd);
      ev.computeStart = ring.compute->record();
      ring.compute->submit([&, s](const runtime::StreamContext &) { computeStep(s); });
      ev.computeEnd = ring.compute->record();
    }
  });

  storeConverted(accOut.data(), {p.Hq * p.localS * p.D, p.D, p.localS * p.D}, out);
  if (lse)
    std::memcpy(lse, accLse.data(), rows * sizeof(float));
  size_t workspace = 2 * kv.bytes + 2 * (accOut.size() + accLse.size()) * sizeof(float);
  size_t shards = (2 * size_t(p.B * p.localS * p.Hq * p.D) + 2 * kv.elems) * es + rows * 4;
  ring.report(stats, "forward", workspace, shards);
}

void ringAttentionBackward(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                           const Tensor4 &v, const Tensor4 &out, const float *lse,
                           const Tensor4 &dOut, const Tensor4 &dq, const Tensor4 &dk,
                           const Tensor4 &dv, const RingAttentionOptions &options,
                           RingStats *stats) {
  RingProblem p = checkRing(comm, q, k, v, options, "backward", [&] {
    auto requireLike = [&](const Tensor4 &t, const Tensor4 &like, const char *name,
                           const char *likeName) {
      if (!t.data || t.shape != like.shape || t.dtype != like.dtype)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("ring attention backward: {} {} {} must have {}'s shape {} and "
                                "dtype {}",
                                name, shapeText(t), dtypeName(t.dtype), likeName, shapeText(like),
                                dtypeName(like.dtype)));
    };
    requireLike(out, q, "out", "q");
    requireLike(dOut, q, "dout", "q");
    requireLike(dq, q, "dq", "q");
    requireLike(dk, k, "dk", "k");
    requireLike(dv, v, "dv", "v");
    if (!lse)
      throw Error(ErrorCode::InvalidArgument, "ring attention backward: lse is a null pointer");
  });
  size_t es = dtypeSize(p.dtype);
  KvSlots kv(p, k, v);
  size_t kvElems = kv.elems, gradBytes = 2 * kvElems * sizeof(float);
  // dK and dV of the shard being computed on (this step's share), and the
  // travelling f32 accumulators of the shard, double-buffered.
  std::vector<float> stepGrad(2 * kvElems), grads[2] = {std::vector<float>(2 * kvElems),
                                                          std::vector<float>(2 * kvElems)};
  // dQ accumulates in f32 with q's (contiguous) layout.
  std::vector<float> dqAcc(size_t(p.B * p.localS * p.Hq * p.D), 0.0f);
  Tensor4 dqAll = contiguousView(dqAcc.data(), DType::F32, p.B, p.localS, p.Hq, p.D);
  // The backward kernels read the LSE of a segment as a contiguous
  // (batch, heads, count) array.
  std::vector<std::vector<float>> segmentLse;
  for (const TokenSegment &qs : p.mine) {
    std::vector<float> l(size_t(p.B * p.Hq * qs.count));
    for (int64_t bh = 0; bh < p.B * p.Hq; ++bh)
      std::memcpy(l.data() + bh * qs.count, lse + bh * p.localS + qs.localStart,
                  size_t(qs.count) * sizeof(float));
    segmentLse.push_back(std::move(l));
  }

  RingPipeline ring(comm, p);
  auto computeStep = [&](int step) {
    int source = (p.rank - step + p.world) % p.world;
    Tensor4 kShard = kv.k(step), vShard = kv.v(step);
    Tensor4 dkStep = contiguousView(stepGrad.data(), DType::F32, p.B, p.localS, p.Hkv, p.D);
    Tensor4 dvStep =
        contiguousView(stepGrad.data() + kvElems, DType::F32, p.B, p.localS, p.Hkv, p.D);
    std::fill(stepGrad.begin(), stepGrad.end(), 0.0f);
    int launches = 0;
    for (const TokenSegment &ks : ringShard(options.layout, p.S, source, p.world))
      for (size_t i = 0; i < p.mine.size(); ++i) {
        const TokenSegment &qs = p.mine[i];
        if (hidden(p.variant, qs, ks))
          continue;
        AttentionOptions a = segmentOptions(options, p, qs, ks);
        a.accumulateGradients = true;
        attentionBackward(segmentView(q, qs), segmentView(kShard, ks), segmentView(vShard, ks),
                          segmentView(out, qs), segmentLse[i].data(), segmentView(dOut, qs),
                          segmentView(dqAll, qs), segmentView(dkStep, ks),
                          segmentView(dvStep, ks), a);
        ++launches;
      }
    ring.steps[size_t(step)].launches = launches;
  };
  // The shard's travelling accumulator: this step's share, plus what the
  // ranks before added (received during this step's kernels).
  auto accumulate = [&](int step) {
    std::vector<float> &g = grads[step % 2];
    if (step == 0)
      g = stepGrad;
    else
      for (size_t i = 0; i < g.size(); ++i)
        g[i] += stepGrad[i];
  };

  ring.run([&] {
    EventPtr gradArrived;
    for (int s = 0; s < p.world; ++s) {
      auto &ev = ring.steps[size_t(s)];
      ev.sourceRank = (p.rank - s + p.world) % p.world;
      if (s > 0 || s + 1 < p.world) {
        if (s > 0)
          ring.transfer->wait(ring.steps[size_t(s - 1)].computeEnd);
        ev.transferStart = ring.transfer->record();
        // dK/dV of the previous step's shard follow it to the next rank.
        if (s > 0) {
          ring.shift(grads[(s - 1) % 2].data(), grads[s % 2].data(), gradBytes);
          gradArrived = ring.transfer->record();
        }
        if (s + 1 < p.world)
          ring.shift(kv.current(s), kv.next(s), kv.bytes);
        ev.transferEnd = ring.transfer->record();
      }
      if (s > 0)
        ring.compute->wait(ring.steps[size_t(s - 1)].transferEnd);
      ev.computeStart = ring.compute->record();
      ring.compute->submit([&, s](const runtime::StreamContext &) { computeStep(s); });
      if (s > 0)
        ring.compute->wait(gradArrived);
      ring.compute->submit([&, s](const runtime::StreamContext &) { accumulate(s); });
      ev.computeEnd = ring.compute->record();
    }
    // The last shard's dK/dV go home: after P shifts every rank holds the
    // complete gradient of its own K/V.
    if (p.world > 1) {
      ring.transfer->wait(ring.steps.back().computeEnd);
      ring.shift(grads[(p.world - 1) % 2].data(), grads[p.world % 2].data(), gradBytes);
    }
  });

  const std::vector<float> &home = grads[p.world > 1 ? p.world % 2 : 0];
  std::array<int64_t, 3> kvStrides{p.localS * p.Hkv * p.D, p.Hkv * p.D, p.D};
  storeConverted(home.data(), kvStrides, dk);
  storeConverted(home.data() + kvElems, kvStrides, dv);
  storeConverted(dqAcc.data(), {p.localS * p.Hq * p.D, p.Hq * p.D, p.D}, dq);
  size_t workspace = 2 * kv.bytes + 3 * gradBytes + dqAcc.size() * sizeof(float);
  size_t shards = (6 * size_t(p.B * p.localS * p.Hq * p.D) + 4 * kvElems) * es;
  ring.report(stats, "backward", workspace, shards);
}

double RingStats::overlappedMs() const {
  double sum = 0;
  for (const RingStepTiming &t : steps)
    if (t.hasTransfer)
      sum += std::max(0.0, std::min(t.computeEnd, t.transferEnd) -
                               std::max(t.computeStart, t.transferStart));
  return sum;
}

double RingStats::overlapBoundMs() const {
  double sum = 0;
  for (const RingStepTiming &t : steps)
    if (t.hasTransfer)
      sum += std::min(t.computeEnd - t.computeStart, t.transferEnd - t.transferStart);
  return sum;
}

std::string ringTimelineJson(const std::vector<RingStats> &ranks) {
  std::string json = "{\"traceEvents\": [";
  bool first = true;
  double epoch = INFINITY;
  for (const RingStats &r : ranks)
    for (const RingStepTiming &t : r.steps)
      epoch = std::min({epoch, t.computeStart, t.hasTransfer ? t.transferStart : INFINITY});
  auto event = [&](int rank, int tid, const std::string &name, double start, double end,
                   const std::string &args) {
    json += fmt::format("{}\n  {{\"name\": \"{}\", \"ph\": \"X\", \"pid\": {}, \"tid\": {}, "
                        "\"ts\": {:.3f}, \"dur\": {:.3f}, \"args\": {{{}}}}}",
                        first ? "" : ",", name, rank, tid, (start - epoch) * 1000.0,
                        (end - start) * 1000.0, args);
    first = false;
  };
  // Tracks: per pass a compute and a transfer thread; one process per rank.
  std::set<int> named;
  for (const RingStats &r : ranks) {
    int base = r.pass == "backward" ? 2 : 0;
    auto meta = [&](const char *kind, int tid, const std::string &name) {
      json += fmt::format("{}\n  {{\"name\": \"{}\", \"ph\": \"M\", \"pid\": {}, \"tid\": {}, "
                          "\"args\": {{\"name\": \"{}\"}}}}",
                          first ? "" : ",", kind, r.rank, tid, name);
      first = false;
    };
    if (named.insert(r.rank).second)
      meta("process_name", 0, fmt::format("rank {}", r.rank));
    meta("thread_name", base, r.pass + " compute");
    meta("thread_name", base + 1, r.pass + " transfer");
    for (const RingStepTiming &t : r.steps) {
      std::string args = fmt::format("\"step\": {}, \"source_rank\": {}, \"launches\": {}",
                                     t.step, t.sourceRank, t.launches);
      event(r.rank, base, fmt::format("{} compute step {}", r.pass, t.step), t.computeStart,
            t.computeEnd, args);
      if (t.hasTransfer)
        event(r.rank, base + 1, fmt::format("{} transfer step {}", r.pass, t.step),
              t.transferStart, t.transferEnd, args);
    }
  }
  return json + "\n]}\n";
}

} // namespace loom::ops
