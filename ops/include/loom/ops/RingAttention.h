//===- RingAttention.h - sequence-parallel attention over a ring -*- C++ -*-===//
//
// The sequence of N tokens is split over the P ranks of a communicator; each
// rank keeps its queries, and K/V shards travel the ring: at step s rank r
// computes its queries against the shard of rank (r - s) mod P on the
// compute stream while the communication stream sends that shard to rank
// r + 1 and receives the next one into a second buffer (double buffering;
// events order the two). Memory per rank is O(N / P).
//
// Forward: partial (O, LSE) of each step are merged in f32 with the
// overflow-free form of ops/Merge.h; nothing is rounded to bf16/f16 between
// steps. Backward (as ring-flash-attention): dQ accumulates locally in f32;
// each shard's dK/dV accumulate in f32 and travel the ring with it, one
// step behind its K/V so their transfer also overlaps compute; the forward's
// global LSE and output are used. NaN and inf inputs give what one-device
// attention gives (Attention.h): the merge skips only LSE = -inf partials,
// so a NaN row stays NaN.
//
// Layouts (which tokens a rank holds, see ringShard): contiguous, zigzag
// (rank r holds chunks r and 2P-1-r of 2P, balancing causal work) and stripe
// (token t on rank t mod P). Kernels get global token positions
// (AttentionOptions::queryPositions/keyPositions), so every position-based
// variant works across ranks; pairs of shards the mask makes entirely
// invisible are skipped without a launch, and invisible blocks inside a
// launch are skipped by the kernels.
//
// Backends: the scheduler only enqueues work; every kernel (K/V packing,
// attention, merge, conversions, dK/dV accumulation: RingKernels.h) runs
// on the compute stream and the ring's buffers are runtime::Memory, so the
// same code runs on cpu and emu (host pointers, in-process or MPI
// transport) and on cuda (device pointers, CUdeviceptr as in Attention.h,
// over a NCCL communicator; the calling thread's current context is the
// rank's GPU). A transport that cannot move the backend's memory (inproc
// or MPI with cuda, NCCL with cpu/emu) is refused with Unsupported naming
// both, rather than staged through host memory.
//
// Before the first transfer the ranks agree on metadata (shapes, dtype,
// variant, layout, scale, world size) and all fail together naming what
// differs. A rank that dies, stalls or skips a step makes every other rank
// fail with loom::Error(CommTimeout or PeerFailed) within the communicator's
// timeout, never a hang; the error is thrown, and ending the job (so that
// mpirun does not wait on a stalled rank) is the caller's
// Communicator::abortJob(). A transfer's deadline also covers waiting for the
// peer to finish its previous step, so the timeout must exceed the largest
// per-step compute imbalance between neighbours (60 s by default).
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_RINGATTENTION_H
#define LOOM_OPS_RINGATTENTION_H

#include "loom/ops/Attention.h"
#include "loom/runtime/Communicator.h"

#include <string>
#include <vector>

namespace loom::ops {

enum class RingLayout { Contiguous, Zigzag, Stripe };

const char *ringLayoutName(RingLayout layout);
/// Parses contiguous|zigzag|stripe; throws InvalidArgument naming the value.
RingLayout parseRingLayout(const std::string &name);

/// A run of a rank's local tokens: local tokens [localStart, localStart +
/// count) are at global positions offset + i * stride.
struct TokenSegment {
  int64_t localStart, count, offset, stride;
};

/// The tokens rank `rank` of `world` holds of a sequence of `seqlen`, in
/// local order. Throws InvalidArgument when seqlen is not divisible as the
/// layout needs (P for contiguous and stripe, 2P for zigzag) or for a bad
/// rank/world.
std::vector<TokenSegment> ringShard(RingLayout layout, int64_t seqlen, int rank, int world);

/// Copies rank `rank`'s tokens of `whole` (batch, seqlen, heads, dim) into
/// `local` (contiguous, batch, seqlen / world, heads, dim), or back
/// (unshard). Element size from the dtype.
void shardSequence(const Tensor4 &whole, void *local, RingLayout layout, int rank, int world);
void unshardSequence(const void *local, const Tensor4 &whole, RingLayout layout, int rank,
                     int world);
/// The same for an LSE-like (batch, heads, seqlen) f32 array.
void shardRows(const float *whole, float *local, int64_t batch, int64_t heads, int64_t seqlen,
               RingLayout layout, int rank, int world);
void unshardRows(const float *local, float *whole, int64_t batch, int64_t heads, int64_t seqlen,
                 RingLayout layout, int rank, int world);

struct RingAttentionOptions {
  /// Variant, scale, config and backend as for attentionForward. The
  /// positions options are set by the ring. Variant tensors are indexed by
  /// global position, so every rank passes the whole-sequence tensor (e.g.
  /// doc_ids of shape (batch, seqlen), a few bytes per token). Sinks join
  /// each merged row once; the backward's variantGrads and dsinks receive
  /// the gradients summed over every rank, in rank order on the compute
  /// stream after the shares travel the ring (the same bits on each; every
  /// backend; P x their size of scratch).
  AttentionOptions attention;
  RingLayout layout = RingLayout::Zigzag;
};

/// What one ring step did on one rank, in ms since runtime::nowMs()'s epoch.
struct RingStepTiming {
  int step = 0;
  int sourceRank = 0;         ///< whose K/V shard was computed on
  int launches = 0;           ///< kernel launches (0: the mask hid the shard)
  double computeStart = 0, computeEnd = 0;
  /// The transfer started during this step (K/V to the next rank; in the
  /// backward also the previous step's dK/dV); none on the last step.
  bool hasTransfer = false;
  double transferStart = 0, transferEnd = 0;
};

struct RingStats {
  int rank = 0, world = 1;
  std::string pass = "forward"; ///< "forward" or "backward"
  std::vector<RingStepTiming> steps;
  /// Bytes of the ring's own buffers on this rank (K/V double buffers,
  /// f32 accumulators and partials), and of the local input/output shards.
  size_t workspaceBytes = 0, shardBytes = 0;
  /// Sum over steps of the time a transfer ran while the same step's
  /// compute ran, and of min(transfer, compute): their ratio is the
  /// overlap efficiency (1 = transfers fully hidden). Derived from steps.
  double overlappedMs() const;
  double overlapBoundMs() const;
};

/// Ring attention forward on this rank's shards: q (batch, seqlen / P,
/// heads_q, dim), k and v (batch, seqlen / P, heads_kv, dim) hold the
/// layout's tokens in local order (see ringShard); `out` gets q's shape
/// and dtype; `lse` (optional) is f32 (batch, heads_q, seqlen / P). Every
/// rank of `comm` calls it with the same shapes and options.
void ringAttentionForward(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                          const Tensor4 &v, const Tensor4 &out, float *lse,
                          const RingAttentionOptions &options, RingStats *stats = nullptr);

/// Ring attention backward: `out` and `lse` are the ring forward's; dq, dk,
/// dv get q's, k's and v's shapes in q's dtype.
void ringAttentionBackward(runtime::Communicator &comm, const Tensor4 &q, const Tensor4 &k,
                           const Tensor4 &v, const Tensor4 &out, const float *lse,
                           const Tensor4 &dOut, const Tensor4 &dq, const Tensor4 &dk,
                           const Tensor4 &dv, const RingAttentionOptions &options,
                           RingStats *stats = nullptr);

/// Chrome trace format (chrome://tracing, Perfetto) of every rank's steps:
/// one process per rank, a compute and a transfer track per pass.
std::string ringTimelineJson(const std::vector<RingStats> &ranks);

} // namespace loom::ops

#endif
