//===- RingAttention.cpp - the ring scheduler, forward and backward -------===//
//
// Written once against runtime::Stream/Event, runtime::Memory and
// runtime::Communicator: the compute stream runs every kernel (packing K/V,
// attention, the f32 merge, dK/dV accumulation, the final conversions; see
// RingKernels.h), the communication stream the grouped send/receive of each
// step, and events order them (see RingAttention.h for the schedule). The
// host thread only enqueues: buffers live in the backend's memory (host for
// cpu/emu, device for cuda), so the same schedule runs on every backend.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/RingAttention.h"
#include "TensorText.h"

#include "loom/Support/Error.h"
#include "loom/Support/HalfPrecision.h"
#include "loom/cuda/Driver.h"
#include "loom/ops/AttentionTuning.h"
#include "loom/ops/BlockMask.h"
#include "loom/ops/RingKernels.h"
#include "loom/runtime/Memory.h"

#include <algorithm>
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

using detail::extent;
using detail::shapeText;

RingProblem checkLocal(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                       const Tensor4 &v, const RingAttentionOptions &options) {
  RingProblem p;
  p.rank = comm.rank(), p.world = comm.size();
  p.backend = runtime::resolveBackend(options.attention.backend);
  const AttentionOptions &a = options.attention;
  if (a.dsinks && !a.sinks)
    throw Error(ErrorCode::InvalidArgument,
                "ring attention backward: options.dsinks is set but options.sinks is not");
  // The transport must move the memory the backend's buffers live in:
  // NCCL moves device memory, in-process and MPI host memory. (Staging
  // device shards through host memory would serialize every step on two
  // PCIe copies; use NCCL, which also runs over sockets and InfiniBand.)
  bool device = p.backend == runtime::Backend::Cuda;
  std::string transport = comm.transport();
  if (device && transport != "nccl")
    throw Error(ErrorCode::Unsupported,
                fmt::format("ring attention: the cuda backend keeps the ring's buffers in device "
                            "memory, which the '{}' transport cannot move; use a NCCL "
                            "communicator (runtime::createNcclCommunicator) or the cpu/emu "
                            "backend",
                            transport));
  if (!device && transport == "nccl")
    throw Error(ErrorCode::Unsupported,
                fmt::format("ring attention: the '{}' backend keeps the ring's buffers in host "
                            "memory, which the 'nccl' transport cannot move; use the cuda "
                            "backend or an inproc/mpi communicator",
                            runtime::backendName(p.backend)));
  if (std::string why; device && !cuda::driverAvailable(&why))
    throw Error(ErrorCode::DeviceUnavailable, "ring attention on the cuda backend: " + why);
  // Tensors with no elements may have no storage (an empty vector's data()).
  if ((!q.data && extent(q) > 0) || (!k.data && extent(k) > 0) || (!v.data && extent(v) > 0))
    throw Error(ErrorCode::InvalidArgument, "ring attention: q, k or v is a null pointer");
  detail::requireHeadsAndHeadDim("ring attention", q, k);
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
  p.variant = a.causal ? combine(AttentionVariant::causalMask(), a.variant) : a.variant;
  return p;
}

/// The learnable gradients a pass returns (their element counts; dsinks),
/// which travel the ring in one buffer, so every rank must have the same.
std::string learnableText(const AttentionOptions &a) {
  std::string text;
  for (const runtime::Arg &g : a.variantGrads)
    text += fmt::format("{}{} floats", text.empty() ? "" : ", ", g.numElements());
  if (a.dsinks)
    text += text.empty() ? "dsinks" : ", dsinks";
  return text.empty() ? "none" : text;
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
      {"variant", variantIdentity(p.variant)},
      {"scale", a.scale ? fmt::format("{}", *a.scale) : "default"},
      {"backend", runtime::backendName(p.backend)},
      {"sinks", a.sinks ? "yes" : "no"},
      {"learnable gradients", learnableText(a)}};
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
  // The ring adds sinks once per row (they start the merged softmax) and
  // sums their gradients once per rank; no step sees them. (The backward's
  // probabilities come from the merged LSE, which includes the sinks.)
  a.sinks = nullptr;
  a.dsinks = nullptr;
  return a;
}

Tensor4 contiguousView(const void *data, DType dtype, int64_t B, int64_t S, int64_t H, int64_t D) {
  return Tensor4::contiguous(data, dtype, {B, S, H, D});
}

bool isContiguous(const Tensor4 &t) {
  return t.strides == Tensor4::contiguous(t.data, t.dtype, t.shape).strides;
}

/// Float offset `n` into a buffer in the backend's memory (no dereference:
/// on cuda it is a device address).
float *offset(void *base, int64_t n) { return static_cast<float *>(base) + n; }

/// K and V of one shard travel together in one buffer, in the backend's
/// memory; two buffers, so one can be received while the other is
/// computed on.
struct KvSlots {
  KvSlots(const RingProblem &p)
      : p(p), elems(size_t(p.B * p.localS * p.Hkv * p.D)),
        bytes(2 * elems * dtypeSize(p.dtype)),
        slots{runtime::Memory(p.backend, bytes), runtime::Memory(p.backend, bytes)} {}
  /// Packs this rank's k and v (any strides) into slot 0, on `stream`.
  void pack(Stream &stream, const Tensor4 &k, const Tensor4 &v) {
    copyTensorAsync(stream, k, this->k(0));
    copyTensorAsync(stream, v, this->v(0));
  }
  /// The slot holding step `step`'s shard, and the one its successor
  /// arrives in.
  uint8_t *current(int step) { return slots[step % 2].as<uint8_t>(); }
  uint8_t *next(int step) { return slots[(step + 1) % 2].as<uint8_t>(); }
  Tensor4 k(int step) { return view(current(step)); }
  Tensor4 v(int step) { return view(current(step) + bytes / 2); }

  const RingProblem &p;
  size_t elems, bytes;
  runtime::Memory slots[2];

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
  /// Recorded on the compute stream before the schedule: step times are
  /// measured from it. CUDA events report only when the host *observed*
  /// them complete (all at once, after the run), so spans come from device
  /// timestamps (elapsedMsSince, valid across streams of one device) instead.
  EventPtr origin;

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
      origin = compute->record();
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
    // Times stay on the steady-clock scale of completedAtMs() (so ranks of
    // one process share a timeline): the origin's time plus the elapsed
    // time since it. For CPU events that is exactly their completion time.
    double base = origin->completedAtMs();
    auto at = [&](const EventPtr &e) { return base + e->elapsedMsSince(*origin); };
    for (size_t s = 0; s < steps.size(); ++s) {
      const StepEvents &e = steps[s];
      RingStepTiming t;
      t.step = int(s), t.sourceRank = e.sourceRank, t.launches = e.launches;
      t.computeStart = at(e.computeStart);
      t.computeEnd = at(e.computeEnd);
      if (e.transferStart) {
        t.hasTransfer = true;
        t.transferStart = at(e.transferStart);
        t.transferEnd = at(e.transferEnd);
      }
      stats->steps.push_back(t);
    }
  }
};

/// The learnable gradients (variant tensors', then the sinks') of a
/// backward pass: this rank's share in one f32 buffer, and a slot per rank
/// that the shares travel into around the ring, in the backend's memory.
struct LearnableGrads {
  std::vector<size_t> offsets, sizes; // per user buffer, in floats
  std::vector<float *> outs;          // the caller's buffers
  size_t floats = 0;
  runtime::Memory slots;

  LearnableGrads(const RingProblem &p, const AttentionOptions &user) {
    for (const runtime::Arg &g : user.variantGrads)
      add(static_cast<float *>(const_cast<void *>(g.data())), g.numElements());
    if (user.dsinks)
      add(user.dsinks, size_t(p.Hq));
    slots = runtime::Memory(p.backend, std::max<size_t>(floats, 1) * size_t(p.world) * 4);
  }
  /// This rank's share: slot `rank` (no copy needed before the gather).
  float *mine(const RingProblem &p, size_t buffer) const {
    return slots.as<float>() + size_t(p.rank) * floats + offsets[buffer];
  }
  float *slot(int rank) const { return slots.as<float>() + size_t(rank) * floats; }

  /// Gathers every rank's share around the ring (P - 1 shifts on the
  /// transfer stream, after `ready`), then sums them in rank order on the
  /// compute stream into the caller's buffers: the same operands in the
  /// same order on every rank, so every rank gets the same bits.
  void sumOverRanks(RingPipeline &ring, const RingProblem &p, EventPtr ready) {
    if (!floats)
      return;
    Stream &compute = *ring.compute;
    if (p.world > 1) {
      ring.transfer->wait(ready);
      // Step s: pass on the share received at step s - 1 (this rank's own
      // first), and receive the share of the rank s before this one.
      for (int s = 1; s < p.world; ++s)
        ring.shift(slot((p.rank - s + 1 + p.world) % p.world), slot((p.rank - s + p.world) % p.world),
                   floats * 4);
      compute.wait(ring.transfer->record());
    }
    for (int r = 1; r < p.world; ++r)
      accumulateAsync(compute, slot(0), slot(r), floats);
    for (size_t i = 0; i < outs.size(); ++i)
      runtime::copyAsync(compute, outs[i], slot(0) + offsets[i], sizes[i] * 4);
  }

private:
  void add(float *out, size_t n) {
    offsets.push_back(floats), sizes.push_back(n), outs.push_back(out);
    floats += n;
  }
};

/// Runs `body`; if it throws, aborts the communicator with the reason (so
/// the peers, already past the metadata agreement and waiting in their
/// first transfer, fail with PeerFailed now instead of at the deadline) and
/// rethrows. abort() is idempotent, so RingPipeline::run aborting first is
/// harmless.
template <typename F> void abortPeersOnError(runtime::Communicator &comm, F body) {
  try {
    body();
  } catch (const std::exception &e) {
    comm.abort(e.what());
    throw;
  } catch (...) {
    comm.abort("unknown exception");
    throw;
  }
}

/// One attention call of a pass: query segment `q` of this rank against key
/// segment `ks` of the step's shard, with its options (positions, config,
/// block mask, stream) fixed before the first transfer.
struct PairLaunch {
  size_t q;
  TokenSegment ks;
  AttentionOptions options;
};

/// Every pass's launches, step by step, skipping pairs the mask hides.
/// Block masks of mask_mod variants are classified here, before any
/// transfer, so no synchronous classification runs while the ring's
/// transfers are in flight (on cuda it would wait on them); each gets the
/// config the call would resolve, so tuned configs still apply.
std::vector<std::vector<PairLaunch>> planPass(const RingAttentionOptions &o, const RingProblem &p,
                                              AttentionPass pass, Stream &compute) {
  std::vector<std::vector<PairLaunch>> steps(size_t(p.world));
  bool masks = p.variant.maskMod && o.attention.autoBlockMask;
  for (int step = 0; step < p.world; ++step) {
    int source = (p.rank - step + p.world) % p.world;
    for (const TokenSegment &ks : ringShard(o.layout, p.S, source, p.world))
      for (size_t i = 0; i < p.mine.size(); ++i) {
        const TokenSegment &qs = p.mine[i];
        if (hidden(p.variant, qs, ks))
          continue;
        AttentionOptions a = segmentOptions(o, p, qs, ks);
        a.stream = &compute;
        if (masks) {
          if (!a.config)
            a.config = resolveAttentionConfig(a, pass, p.dtype, p.D, qs.count, ks.count,
                                              p.backend);
          a.blockMask =
              createBlockMask({p.B, qs.count, p.Hq, p.D}, {p.B, ks.count, p.Hkv, p.D}, a);
        }
        steps[size_t(step)].push_back({i, ks, std::move(a)});
      }
  }
  // Progress: each call's share of its step, each step 1 / P of the pass.
  if (const auto &report = o.attention.progress)
    for (int step = 0; step < p.world; ++step) {
      std::vector<PairLaunch> &pairs = steps[size_t(step)];
      for (size_t i = 0; i < pairs.size(); ++i)
        pairs[i].options.progress = [report, step, world = p.world, i,
                                     n = pairs.size()](const AttentionProgress &call) {
          AttentionProgress ring = call;
          ring.step = step, ring.steps = world;
          ring.fraction = (step + (double(i) + call.fraction) / double(n)) / world;
          report(ring);
        };
    }
  return steps;
}

} // namespace

void ringAttentionForward(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                          const Tensor4 &v, const Tensor4 &out, float *lse,
                          const RingAttentionOptions &options, RingStats *stats) {
  RingProblem p = checkRing(comm, q, k, v, options, "forward", [&] {
    if ((!out.data && extent(out) > 0) || out.shape != q.shape || out.dtype != q.dtype)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("ring attention: out {} {} must have q's shape {} and dtype {}",
                              shapeText(out), dtypeName(out.dtype), shapeText(q),
                              dtypeName(q.dtype)));
  });
  // An empty batch or sequence (on every rank: the shapes agree): no output.
  if (p.B == 0 || p.localS == 0) {
    requireSupportedHeadDim("ring attention", p.D, p.backend, p.dtype);
    if (stats)
      *stats = RingStats{p.rank, p.world, "forward", {}, 0, 0};
    return;
  }
  // Past the agreement the peers head for their first transfer: any failure
  // from here on (streams, buffers, block masks, launches) must reach them
  // now rather than at the communicator's deadline.
  abortPeersOnError(comm, [&] {
    size_t es = dtypeSize(p.dtype);
    int64_t BH = p.B * p.Hq;
    size_t rows = size_t(BH * p.localS);
    RingPipeline ring(comm, p);
    Stream &compute = *ring.compute;
    KvSlots kv(p);
    // f32 accumulators laid out (batch, heads, seqlen, dim) so each head's
    // rows are contiguous for the merge; partials likewise per segment.
    runtime::Memory accOut(p.backend, rows * size_t(p.D) * 4), accLse(p.backend, rows * 4);
    runtime::Memory partOut(p.backend, rows * size_t(p.D) * 4), partLse(p.backend, rows * 4);
    auto plan = planPass(options, p, AttentionPass::Forward, compute);

    auto enqueueStep = [&](int step) {
      Tensor4 kShard = kv.k(step), vShard = kv.v(step);
      for (const PairLaunch &l : plan[size_t(step)]) {
        const TokenSegment &qs = p.mine[l.q];
        int64_t n = qs.count;
        Tensor4 part{partOut.data(), DType::F32, {p.B, n, p.Hq, p.D},
                     {p.Hq * n * p.D, p.D, n * p.D, 1}};
        attentionForward(segmentView(q, qs), segmentView(kShard, l.ks), segmentView(vShard, l.ks),
                         part, partLse.as<float>(), l.options);
        mergeAttentionPartialsAsync(
            compute,
            {offset(accOut.data(), qs.localStart * p.D), offset(accLse.data(), qs.localStart),
             p.localS * p.D, p.D, p.localS},
            {partOut.as<float>(), partLse.as<float>(), n * p.D, p.D, n}, BH, n, p.D);
      }
      ring.steps[size_t(step)].launches = int(plan[size_t(step)].size());
    };

    ring.run([&] {
      kv.pack(compute, k, v);
      fillAsync(compute, accOut.as<float>(), 0.0f, rows * size_t(p.D));
      if (const float *sinks = options.attention.sinks) {
        // Every merged row starts from its head's sink (O = 0, LSE = sink),
        // so the sink joins its softmax exactly once whatever the steps add:
        // the (heads) sinks broadcast over batch and rows (stride 0) into the
        // (batch, heads, seqlen) LSE rows.
        std::array<int64_t, 4> shape{p.B, p.Hq, p.localS, 1};
        copyTensorAsync(compute, Tensor4{sinks, DType::F32, shape, {0, 1, 0, 1}},
                        Tensor4{accLse.data(), DType::F32, shape, {p.Hq * p.localS, p.localS, 1, 1}});
      } else {
        fillAsync(compute, accLse.as<float>(), -INFINITY, rows);
      }
      EventPtr packed = compute.record();
      for (int s = 0; s < p.world; ++s) {
        auto &ev = ring.steps[size_t(s)];
        ev.sourceRank = (p.rank - s + p.world) % p.world;
        if (s + 1 < p.world) {
          // Sending needs the packed shard; receiving into the other slot
          // must wait until the previous step's compute has finished reading
          // it.
          ring.transfer->wait(s > 0 ? ring.steps[size_t(s - 1)].computeEnd : packed);
          ev.transferStart = ring.transfer->record();
          ring.shift(kv.current(s), kv.next(s), kv.bytes);
          ev.transferEnd = ring.transfer->record();
        }
        if (s > 0)
          compute.wait(ring.steps[size_t(s - 1)].transferEnd);
        ev.computeStart = compute.record();
        enqueueStep(s);
        ev.computeEnd = compute.record();
      }
      Tensor4 acc{accOut.data(), DType::F32, q.shape, {p.Hq * p.localS * p.D, p.D, p.localS * p.D, 1}};
      copyTensorAsync(compute, acc, out);
      if (lse)
        runtime::copyAsync(compute, lse, accLse.data(), rows * sizeof(float));
    });

    size_t workspace = 2 * kv.bytes + 2 * (rows * size_t(p.D) + rows) * sizeof(float);
    size_t shards = (2 * size_t(p.B * p.localS * p.Hq * p.D) + 2 * kv.elems) * es + rows * 4;
    ring.report(stats, "forward", workspace, shards);
  });
}

void ringAttentionBackward(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                           const Tensor4 &v, const Tensor4 &out, const float *lse,
                           const Tensor4 &dOut, const Tensor4 &dq, const Tensor4 &dk,
                           const Tensor4 &dv, const RingAttentionOptions &options,
                           RingStats *stats) {
  RingProblem p = checkRing(comm, q, k, v, options, "backward", [&] {
    auto requireLike = [&](const Tensor4 &t, const Tensor4 &like, const char *name,
                           const char *likeName) {
      if ((!t.data && extent(t) > 0) || t.shape != like.shape || t.dtype != like.dtype)
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
    if (!lse && q.shape[0] * q.shape[1] > 0)
      throw Error(ErrorCode::InvalidArgument, "ring attention backward: lse is a null pointer");
  });
  // An empty batch or sequence (on every rank: the shapes agree) has nothing
  // to compute or send: dq, dk, dv are empty and the learnable gradients
  // (overwritten like the ring's sums) are zero.
  if (p.B == 0 || p.localS == 0) {
    requireSupportedHeadDim("ring attention", p.D, p.backend, p.dtype);
    const AttentionOptions &user = options.attention;
    auto stream = runtime::createStream(p.backend, fmt::format("ring zero r{}", p.rank));
    for (const runtime::Arg &g : user.variantGrads)
      fillAsync(*stream, static_cast<float *>(const_cast<void *>(g.data())), 0.0f,
                g.numElements());
    if (user.dsinks)
      fillAsync(*stream, user.dsinks, 0.0f, size_t(p.Hq));
    stream->synchronize();
    if (stats)
      *stats = RingStats{p.rank, p.world, "backward", {}, 0, 0};
    return;
  }
  // Past the agreement the peers head for their first transfer: any failure
  // from here on (streams, buffers, block masks, launches) must reach them
  // now rather than at the communicator's deadline.
  abortPeersOnError(comm, [&] {
    size_t es = dtypeSize(p.dtype);
    int64_t BH = p.B * p.Hq;
    RingPipeline ring(comm, p);
    Stream &compute = *ring.compute;
    KvSlots kv(p);
    size_t kvElems = kv.elems, gradBytes = 2 * kvElems * sizeof(float);
    size_t qElems = size_t(p.B * p.localS * p.Hq * p.D);
    // dK and dV of the shard being computed on (this step's share), and the
    // travelling f32 accumulators of the shard, double-buffered.
    runtime::Memory stepGrad(p.backend, gradBytes);
    runtime::Memory grads[2] = {runtime::Memory(p.backend, gradBytes),
                                runtime::Memory(p.backend, gradBytes)};
    // dQ accumulates in f32, contiguous. The kernels take dq with q's strides
    // and dO with out's, so q, out and dO that are not contiguous are packed
    // (on the compute stream, like everything else).
    runtime::Memory dqAcc(p.backend, qElems * sizeof(float));
    Tensor4 dqAll = contiguousView(dqAcc.data(), DType::F32, p.B, p.localS, p.Hq, p.D);
    std::vector<runtime::Memory> packedInputs;
    auto contiguousInput = [&](const Tensor4 &t) {
      if (isContiguous(t))
        return t;
      packedInputs.emplace_back(p.backend, qElems * es);
      return Tensor4::contiguous(packedInputs.back().data(), t.dtype, t.shape);
    };
    packedInputs.reserve(3);
    Tensor4 qc = contiguousInput(q), oc = contiguousInput(out), dOc = contiguousInput(dOut);
    // Per query segment: its LSE rows as the contiguous (batch, heads, count)
    // array the kernels read, and delta = rowsum(dO * O), computed once here
    // rather than by every step's backward.
    std::vector<runtime::Memory> segmentLse, segmentDelta;
    for (const TokenSegment &qs : p.mine) {
      segmentLse.emplace_back(p.backend, size_t(BH * qs.count) * sizeof(float));
      segmentDelta.emplace_back(p.backend, size_t(BH * qs.count) * sizeof(float));
    }
    auto plan = planPass(options, p, AttentionPass::Backward, compute);
    // This rank's share of the learnable gradients (variant tensors, sinks),
    // summed over ranks once the ring is done.
    const AttentionOptions &user = options.attention;
    LearnableGrads learn(p, user);
    std::vector<runtime::Arg> localGradArgs;
    for (size_t i = 0; i < user.variantGrads.size(); ++i)
      localGradArgs.push_back(
          runtime::Arg::buffer(learn.mine(p, i), DType::F32, learn.sizes[i]));
    float *localDsinks = user.dsinks ? learn.mine(p, user.variantGrads.size()) : nullptr;

    auto enqueueStep = [&](int step) {
      Tensor4 kShard = kv.k(step), vShard = kv.v(step);
      Tensor4 dkStep = contiguousView(stepGrad.data(), DType::F32, p.B, p.localS, p.Hkv, p.D);
      Tensor4 dvStep =
          contiguousView(offset(stepGrad.data(), int64_t(kvElems)), DType::F32, p.B, p.localS,
                         p.Hkv, p.D);
      fillAsync(compute, stepGrad.as<float>(), 0.0f, 2 * kvElems);
      for (const PairLaunch &l : plan[size_t(step)]) {
        const TokenSegment &qs = p.mine[l.q];
        AttentionOptions a = l.options;
        a.accumulateGradients = true;
        a.backwardDelta = segmentDelta[l.q].as<float>();
        a.backwardDeltaCount = segmentDelta[l.q].bytes() / sizeof(float);
        a.variantGrads = localGradArgs;
        attentionBackward(segmentView(qc, qs), segmentView(kShard, l.ks), segmentView(vShard, l.ks),
                          segmentView(oc, qs), segmentLse[l.q].as<float>(), segmentView(dOc, qs),
                          segmentView(dqAll, qs), segmentView(dkStep, l.ks),
                          segmentView(dvStep, l.ks), a);
      }
      ring.steps[size_t(step)].launches = int(plan[size_t(step)].size());
    };

    ring.run([&] {
      kv.pack(compute, k, v);
      if (qc.data != q.data)
        copyTensorAsync(compute, q, qc);
      if (oc.data != out.data)
        copyTensorAsync(compute, out, oc);
      if (dOc.data != dOut.data)
        copyTensorAsync(compute, dOut, dOc);
      fillAsync(compute, dqAcc.as<float>(), 0.0f, qElems);
      fillAsync(compute, learn.slot(p.rank), 0.0f, learn.floats);
      for (size_t i = 0; i < p.mine.size(); ++i) {
        const TokenSegment &qs = p.mine[i];
        // (1, batch * heads, 1, count) views of the rank's LSE rows.
        Tensor4 rowsIn{lse + qs.localStart, DType::F32, {1, BH, 1, qs.count}, {0, p.localS, 0, 1}};
        Tensor4 rowsOut{segmentLse[i].data(), DType::F32, {1, BH, 1, qs.count},
                        {0, qs.count, 0, 1}};
        copyTensorAsync(compute, rowsIn, rowsOut);
        AttentionOptions a = options.attention;
        a.backend = p.backend;
        a.stream = &compute;
        attentionBackwardDelta(segmentView(oc, qs), segmentView(dOc, qs),
                               segmentDelta[i].as<float>(), a);
        if (user.dsinks) {
          a.accumulateGradients = i > 0;
          attentionSinkGradient(segmentLse[i].as<float>(), segmentDelta[i].as<float>(),
                                user.sinks, localDsinks, p.B, p.Hq, qs.count, a);
        }
      }
      EventPtr packed = compute.record();
      EventPtr gradArrived;
      for (int s = 0; s < p.world; ++s) {
        auto &ev = ring.steps[size_t(s)];
        ev.sourceRank = (p.rank - s + p.world) % p.world;
        if (s > 0 || s + 1 < p.world) {
          ring.transfer->wait(s > 0 ? ring.steps[size_t(s - 1)].computeEnd : packed);
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
          compute.wait(ring.steps[size_t(s - 1)].transferEnd);
        ev.computeStart = compute.record();
        enqueueStep(s);
        // The shard's travelling accumulator: this step's share, plus what
        // the ranks before added (received during this step's kernels).
        if (s == 0) {
          runtime::copyAsync(compute, grads[0].data(), stepGrad.data(), gradBytes);
        } else {
          compute.wait(gradArrived);
          accumulateAsync(compute, grads[s % 2].as<float>(), stepGrad.as<float>(), 2 * kvElems);
        }
        ev.computeEnd = compute.record();
      }
      // The last shard's dK/dV go home: after P shifts every rank holds the
      // complete gradient of its own K/V.
      if (p.world > 1) {
        ring.transfer->wait(ring.steps.back().computeEnd);
        ring.shift(grads[(p.world - 1) % 2].data(), grads[p.world % 2].data(), gradBytes);
        compute.wait(ring.transfer->record());
      }
      const runtime::Memory &home = grads[p.world > 1 ? p.world % 2 : 0];
      copyTensorAsync(compute, contiguousView(home.data(), DType::F32, p.B, p.localS, p.Hkv, p.D),
                      dk);
      copyTensorAsync(compute,
                      contiguousView(offset(home.data(), int64_t(kvElems)), DType::F32, p.B,
                                     p.localS, p.Hkv, p.D),
                      dv);
      copyTensorAsync(compute, dqAll, dq);
      learn.sumOverRanks(ring, p, compute.record());
    });

    size_t workspace = 2 * kv.bytes + 3 * gradBytes + qElems * sizeof(float) + learn.slots.bytes();
    for (const auto *list : {&segmentLse, &segmentDelta, &packedInputs})
      for (const runtime::Memory &m : *list)
        workspace += m.bytes();
    size_t shards = (6 * size_t(p.B * p.localS * p.Hq * p.D) + 4 * kvElems) * es;
    ring.report(stats, "backward", workspace, shards);
  });
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
