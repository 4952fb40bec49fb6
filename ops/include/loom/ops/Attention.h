//===- Attention.h - flash attention forward --------------------*- C++ -*-===//
//
// Exact attention with O(N) memory: a DSL kernel (online softmax in f32,
// exp2 with the scale folded in) specialized per head dim, dtype, causal
// flag and block sizes, run on any backend (cpu, emu, cuda).
//
//   O[b, i, h, :] = sum_j softmax_j(scale * Q[b,i,h,:] . K[b,j,g(h),:]) V[b,j,g(h),:]
//   LSE[b, h, i]  = log sum_j exp(scale * Q[b,i,h,:] . K[b,j,g(h),:])   (natural log)
//
// with g(h) = h / (heads_q / heads_kv) (GQA/MQA). Causal masking is
// bottom-right aligned when seqlen_q != seqlen_k (query i sees keys
// j <= i + seqlen_k - seqlen_q), as FlashAttention does. A row with no
// visible key gets O = 0 and LSE = -inf (LSE = sink with AttentionOptions::
// sinks).
//
// Non-finite inputs (every backend, forward and backward, and ring
// attention alike; see Merge.h): a score of -inf counts as a hidden key
// (as a FlexAttention score_mod masks), so a row whose visible scores are
// all -inf also gets O = 0, LSE = -inf. A NaN, or +inf, among a row's
// visible scores (a NaN in its Q row or in a key it sees; an infinite Q or
// K element) makes that row's O and LSE NaN, and the backward's gradients
// NaN wherever that row's P reaches. An infinite V element gives +-inf in O
// where float64 does (NaN where infinities of both signs meet). Beyond what
// float64 gives, a kernel tile can add NaNs: 0 x NaN (or 0 x inf) in a
// tile's matrix products reaches rows or keys of the same tile that the
// mask hides from the bad element, so under a mask which extra elements
// are NaN depends on block sizes (and differs between ring and one-device
// attention). A NaN never becomes a finite number: where float64 is NaN,
// the result is NaN.
//
// Empty tensors (every backend, forward and backward, the ring and the
// CLI alike), as PyTorch SDPA and FlashAttention users expect: a tensor
// with no elements may have null data (an empty std::vector's data()).
//   - batch 0 or seqlen 0 (seqlen_q and seqlen_k, or seqlen_q alone): an
//     empty result, no kernel launched for it, no error; with seqlen_q 0
//     and seqlen_k > 0 the backward writes dK = dV = 0 (no query sees a key);
//   - seqlen_k 0 with seqlen_q > 0: every row sees no key, so O = 0, LSE =
//     -inf (the head's sink with sinks), and the backward gives dQ = 0
//     (dK, dV are empty);
//   - the learnable gradients of an empty problem are empty sums: dsinks
//     and variant tensors' gradients are 0 (unchanged when accumulating);
//   - head_dim 0 or heads 0 (heads_q or heads_kv) is a malformed tensor,
//     empty or not: InvalidArgument "attention: q (B, S, H, 0) has head_dim
//     0; head_dim must be positive", "...: q (...) has 0 heads; heads_q must
//     be positive" (k: heads_kv).
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_ATTENTION_H
#define LOOM_OPS_ATTENTION_H

#include "loom/dsl/Kernel.h"
#include "loom/runtime/Kernel.h"

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>

namespace loom::ops {

struct BlockMask; // BlockMask.h

/// A (batch, seqlen, heads, head_dim) tensor: strides in elements for every
/// dimension; the last (head_dim) must be contiguous (stride 1).
struct Tensor4 {
  const void *data = nullptr;
  DType dtype = DType::F32;
  std::array<int64_t, 4> shape{};
  std::array<int64_t, 4> strides{};
  /// Contiguous (C order) tensor of `shape`.
  static Tensor4 contiguous(const void *data, DType dtype, std::array<int64_t, 4> shape);
};

/// Block sizes and block size (threads) of the forward kernel.
struct AttentionConfig {
  int64_t blockM = 64, blockN = 64;
  unsigned numThreads = 128;
  /// CUDA and emu backends: shared-memory slots per pipelined K/V/Q/dO tile
  /// (Specialization::numStages; 0 = no pipelining).
  unsigned numStages = 2;
};

/// The untuned default for a head dim on a backend. For GPU targets: the
/// forward up to head dim 128 runs 64x64 on 4 warps with S, P and O in
/// registers; otherwise the largest blocks whose kernel compiles without
/// register spills.
AttentionConfig defaultAttentionConfig(int64_t headDim, runtime::Backend backend);
/// The same for the backward kernels, which hold more tiles per program.
AttentionConfig defaultAttentionBackwardConfig(int64_t headDim, runtime::Backend backend);

/// What score and mask modifiers see (FlexAttention's arguments), as DSL
/// values inside the kernel. Index tiles broadcast against the score tile:
/// qIdx has one row per query, kvIdx one column per key (the backward passes
/// the transposed orientation, so mods must be elementwise with
/// broadcasting, which every DSL expression on these values is).
struct VariantContext {
  dsl::Value batch, head, numHeads; ///< i32 scalars (query head)
  dsl::Value qIdx, kvIdx;           ///< i32 token positions
  dsl::Value qValid, kvValid;       ///< i1: inside the sequence
  dsl::Value diagonal;              ///< i32 seqlen_k - seqlen_q
  dsl::Value seqlenQ, seqlenK;      ///< i32
  std::map<std::string, dsl::Value> tensors; ///< the variant's extra tensors
  std::map<std::string, dsl::Value> scalars; ///< the variant's runtime scalars
  dsl::Value window;                         ///< i32 sliding window, when the variant has one
};

/// An extra tensor a variant's mods read (AttentionOptions::variantArgs).
/// With `requiresGrad` (a float tensor), attentionBackward also returns
/// d loss / d tensor into AttentionOptions::variantGrads: dsl::derivative
/// differentiates score_mod with respect to the value each load from the
/// tensor read, and every (batch, head, query, key) pair's contribution is
/// added to the element it read, in f32, in a fixed order (so the result is
/// deterministic; no atomics). score_mod may load a differentiable tensor
/// at most once; mask_mod's reads and masked-off loads carry no gradient,
/// and a read outside the tensor at a visible pair fails the backward
/// with InvalidArgument naming the tensor. Cost: the dQ kernel writes each
/// pair's contribution and the element it read (8 bytes per batch x head x
/// query x key) to scratch in the backend's memory, which SumByKey (SumByKey.h) reduces on the same
/// stream: on emu and cuda by DSL kernels (a radix sort by element, then a
/// segmented sum; 16 more bytes per pair), on the cpu backend by one pass
/// in pair order on the stream's thread (faster there). O(seqlen_q *
/// seqlen_k) memory, every backend; at most 2^31 - 4096 pairs and elements.
struct VariantTensor {
  std::string name;
  DType dtype;
  bool requiresGrad = false;
};

/// A scalar kernel argument a variant's mods read (VariantContext::scalars):
/// changing `value` reuses the compiled kernel, where a constant captured
/// in the lambda would compile a new one. F32 or I32.
struct VariantScalar {
  std::string name;
  DType dtype = DType::F32;
  double value = 0;
};

/// A FlexAttention-style variant: score_mod rewrites the scaled score
/// (natural-log units), mask_mod hides (q, kv) pairs; both are C++ lambdas
/// building DSL IR, inlined into the forward and backward kernels, and
/// score_mod is differentiated automatically for the backward. `name`
/// identifies the variant in kernel names and caches: give different mods
/// different names. `causal` is analyzed at compile time: key blocks past
/// the diagonal are skipped, not masked. A mask_mod's tiles are classified
/// empty/partial/full at run time instead (BlockMask.h), once per call or
/// once per cached mask.
struct AttentionVariant {
  std::string name = "none";
  std::function<dsl::Value(dsl::Value score, const VariantContext &)> scoreMod;
  std::function<dsl::Value(const VariantContext &)> maskMod;
  std::vector<VariantTensor> tensors;
  /// Runtime scalars (arguments, not constants): `name` must not depend on
  /// their values, so one compiled kernel serves every value.
  std::vector<VariantScalar> scalars;
  bool causal = false;
  /// Sliding window: a key is visible only if q + seqlen_k - seqlen_q - kv <
  /// window. Analyzed like `causal`: key blocks entirely outside the window
  /// are skipped, not masked. Its size is a kernel argument (not part of
  /// the name), so every window shares the compiled kernels.
  std::optional<int64_t> window;

  static AttentionVariant none();
  /// Bottom-right aligned when seqlen_q != seqlen_k.
  static AttentionVariant causalMask();
  /// Causal and q - kv < window (positions aligned bottom-right).
  static AttentionVariant slidingWindow(int64_t window);
  /// score - slope_h * |q - kv|, slope_h = 2^(-slopeScale (h + 1) / H)
  /// (8: the ALiBi paper's slopes). The scale is a runtime scalar
  /// ("alibi_slope_scale"), so every scale shares one compiled kernel.
  static AttentionVariant alibi(double slopeScale = 8.0);
  /// cap * tanh(score / cap) on the scaled score; cap is a runtime scalar
  /// ("softcap_cap"), so every cap shares one compiled kernel.
  static AttentionVariant softcap(double cap);
  /// Prefix-LM: causal, plus every query sees the first `prefix` keys. The
  /// length is a runtime scalar ("prefix_length"), so every length shares
  /// the compiled kernels (its block mask is still classified per length).
  static AttentionVariant prefixLM(int64_t prefix);
  /// Keys and queries attend within their document: reads the i32 tensor
  /// "doc_ids" of shape (batch, seqlen_k), one id per key position; query i
  /// has the id of key position i + seqlen_k - seqlen_q.
  static AttentionVariant documentMask();
  /// score + bias[h, q, kv]: reads the f32 tensor "bias" of shape (heads_q,
  /// seqlen_q, seqlen_k) at global positions (TokenPositions), broadcast
  /// over the batch; with `requiresGrad` the backward returns d loss / d bias
  /// (AttentionOptions::variantGrads), summed over the batch.
  static AttentionVariant additiveBias(bool requiresGrad = false);
};

/// Varlen: documents packed along the sequence of a batch-1 tensor, as in
/// FlashAttention's cu_seqlens (offsets 0 = c_0 < c_1 < ... < c_n = seqlen).
/// Returns the per-token document ids for AttentionVariant::documentMask(),
/// which then keeps attention (and causality) inside each document. Throws
/// InvalidArgument naming the offending entry.
std::vector<int32_t> documentIdsFromCuSeqlens(const std::vector<int64_t> &cuSeqlens,
                                              int64_t seqlen);

/// Both variants: score mods composed in order, a's first, then b's on its
/// result; masks and-ed; tensors and scalars merged by name (a scalar both
/// define must have one value). Order matters for score mods:
/// combine(alibi(), softcap(c)) caps the biased score, combine(softcap(c),
/// alibi()) biases the capped one, and the two differ. Masks commute.
AttentionVariant combine(const AttentionVariant &a, const AttentionVariant &b);

/// The variant's name, window and scalars' values: what a block mask or a
/// ring's ranks must agree on (the name alone identifies the kernels).
std::string variantIdentity(const AttentionVariant &variant);

/// Where a tensor's tokens sit in the whole sequence, for sequence
/// parallelism (ring attention, where a rank holds a contiguous, zigzag or
/// strided share of the tokens) and chunked prefill: local token s is at
/// global position offset + s * stride of a sequence of `total` tokens
/// (the tensor's own seqlen when unset). Masks and score mods (causal,
/// window, ALiBi, prefix, document ids, custom mods) see global positions,
/// and causal/window block skipping uses them too.
struct TokenPositions {
  int64_t offset = 0, stride = 1;
  std::optional<int64_t> total;
};

/// How far a call (or a ring pass) has come; see AttentionOptions::progress.
struct AttentionProgress {
  /// "forward", "dq" or "dkdv" (the backward's kernels, dQ first).
  const char *stage = "forward";
  /// (batch, head) pairs of `stage` done, of `heads` (query heads for
  /// forward and dq, key/value heads for dkdv).
  int64_t headsDone = 0, heads = 0;
  /// Ring passes: the step (0-based) and the number of steps; 0 of 1 for
  /// one-device attention.
  int step = 0, steps = 1;
  /// Fraction of the whole call's (or ring pass's) work done, in [0, 1].
  double fraction = 0;
};
/// Launches per kernel when AttentionOptions::progress is set.
inline constexpr int64_t kProgressPieces = 64;

struct AttentionOptions {
  bool causal = false;
  AttentionVariant variant;
  /// Buffers for variant.tensors, in order.
  std::vector<runtime::Arg> variantArgs;
  /// Backward: f32 buffers receiving d loss / d tensor of each variant
  /// tensor with requiresGrad, in order, each with its tensor's element
  /// count; overwritten, or added to with accumulateGradients.
  std::vector<runtime::Arg> variantGrads;
  /// Learnable attention sinks: one f32 logit per query head (heads_q
  /// floats, in the backend's memory). Each row's softmax denominator gains
  /// exp(sink_h), a sink has no value: O = sum_j e^{s_j} V_j / (e^{sink_h} +
  /// sum_j e^{s_j}) and LSE includes the sink, so a row with no visible key
  /// gets O = 0 and LSE = sink_h. Null: no sinks.
  const float *sinks = nullptr;
  /// Backward with sinks: d loss / d sinks (heads_q f32), dsinks[h] = -sum
  /// over batch and rows of exp(sink_h - LSE) * rowsum(dO * O); overwritten,
  /// or added to with accumulateGradients. Null: not computed.
  float *dsinks = nullptr;
  /// Softmax scale; 1/sqrt(head_dim) when unset.
  std::optional<float> scale;
  /// Block sizes and threads; defaultAttentionConfig() (forward) and
  /// defaultAttentionBackwardConfig() (backward) when unset.
  std::optional<AttentionConfig> config;
  runtime::Backend backend = runtime::Backend::Auto;
  /// CPU backend: threads the kernels run on (Specialization::cpuThreads;
  /// 0: $LOOM_NUM_THREADS, else every core).
  unsigned cpuThreads = 0;
  /// Global positions of q's and k's tokens (see TokenPositions).
  TokenPositions queryPositions, keyPositions;
  /// Backward: add the gradients to dq, dk and dv instead of overwriting
  /// them (they must then be f32): ring attention accumulates over steps.
  bool accumulateGradients = false;
  /// Which (query block, key block) pairs are empty, partial or full (see
  /// BlockMask.h): the kernels visit only the non-empty ones and skip the
  /// mask in full ones. When unset and the variant has a mask_mod (whose
  /// sparsity is not known at compile time), attentionForward/Backward
  /// build one per call unless `autoBlockMask` is false; callers reusing a
  /// mask across calls (FlexAttention caches its BlockMask) create it once
  /// with createBlockMask() and pass it here. Its block sizes become the
  /// kernels' when `config` is unset.
  std::shared_ptr<const BlockMask> blockMask;
  bool autoBlockMask = true;
  /// When set, the kernels are enqueued on this stream (its backend must be
  /// the resolved `backend`) and the call returns without waiting for them:
  /// the tensors must stay alive until the stream has run them. Per-call
  /// temporaries (LSE/delta scratch, block masks) are kept alive by the
  /// stream. A block mask built per call is classified at once (its kernel
  /// reads only positions and variant tensors). Without a stream the call
  /// returns when the results are ready. With a stream (as on cuda),
  /// gradients and dO are not repacked on the host: they must have q's,
  /// k's, v's and out's strides.
  runtime::Stream *stream = nullptr;
  /// Backward: delta = rowsum(dO * O) as a contiguous f32 (batch, heads_q,
  /// seqlen_q) array from attentionBackwardDelta(); the backward then skips
  /// its preprocess (ring attention computes it once per rank instead of
  /// once per step). Unset: computed per call.
  const float *backwardDelta = nullptr;
  /// Floats backwardDelta holds; the backward checks it is batch * heads_q *
  /// seqlen_q, since the kernels read that many without other bounds.
  size_t backwardDeltaCount = 0;
  /// Progress (`loom attention`/`loom ring`'s progress line): called as the
  /// call's kernels finish parts of the work, in order. Setting it splits
  /// each kernel's grid into about kProgressPieces launches. Without a
  /// stream it runs on the calling thread; on a CPU stream on the stream's
  /// thread as the work completes; on a CUDA stream when the launches are
  /// enqueued (not when they complete).
  std::function<void(const AttentionProgress &)> progress{};
};

/// The forward kernel for one head dim, dtype (f32, f16, bf16) and variant;
/// o is written in `outDtype` (the inputs' when unset; f32 for partial
/// results that are merged later). Constants: BLOCK_M, BLOCK_N.
/// Logical grid (dsl::LogicalGrid, launched with runtime::launchLogical):
/// (ceil(seqlen_q / BLOCK_M), batch * heads_q). With `blockMask` the
/// kernel takes a block mask's lists after the variant tensors and visits
/// only their blocks (see BlockMask.h).
/// With `sinks` it takes the sinks (f32, heads_q) after the variant's
/// tensors and scalars (before a block mask's lists).
dsl::Kernel flashAttentionForwardKernel(DType dtype, int64_t headDim,
                                        const AttentionVariant &variant,
                                        std::optional<DType> outDtype = {},
                                        bool blockMask = false, bool sinks = false);
dsl::Kernel flashAttentionForwardKernel(DType dtype, int64_t headDim, bool causal);

/// Runs attention forward: `out` has q's shape and q's dtype or f32 (its
/// strides may differ), `lse` (optional) is a contiguous f32 (batch, heads_q, seqlen_q)
/// buffer. Throws loom::Error(InvalidArgument) naming the offending shape,
/// dtype, head dim or stride.
void attentionForward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                      float *lse, const AttentionOptions &options = {});

/// The backward kernels (FlashAttention-2 scheme, no atomics): a
/// preprocess computing delta = rowsum(dO * O), a kernel per KV block that
/// accumulates dK and dV in f32 over every query block and every query head
/// of its group, and a kernel per query block accumulating dQ in f32.
/// How the backward writes dq, dk, dv: in `dtype` (the inputs' when unset)
/// and, with `accumulate`, added to what the buffers hold.
struct GradientOutput {
  std::optional<DType> dtype;
  bool accumulate = false;
};
/// (The preprocess takes every kernel's arguments; `gradDtype` types its
/// unused dq/dk/dv.)
dsl::Kernel flashAttentionBackwardPreprocessKernel(DType dtype, int64_t headDim,
                                                   std::optional<DType> gradDtype = {});
dsl::Kernel flashAttentionBackwardDkDvKernel(DType dtype, int64_t headDim,
                                             const AttentionVariant &variant,
                                             const GradientOutput &grad = {},
                                             bool blockMask = false);
dsl::Kernel flashAttentionBackwardDqKernel(DType dtype, int64_t headDim,
                                           const AttentionVariant &variant,
                                           const GradientOutput &grad = {},
                                           bool blockMask = false);
/// The backward in one pass over the tile pairs, as FlashAttention-2 does
/// it: 5 block matmuls per pair instead of the dK/dV and dQ kernels' 7 (S
/// and dP are computed once). Grid (G, batch * heads_kv): program g owns key
/// blocks g, g + G, ... and adds dS K into its own f32 partial
/// `dq_partial` (G, batch, heads_q, seqlen_q, headDim), zeroed by the
/// caller; flashAttentionBackwardDqReduceKernel then sums the G partials in
/// order, so dQ is deterministic for a given G. The partials are read and written back
/// across loop iterations by the same program, which is ordered on the CPU
/// backend only (a GPU block would need barriers, or atomics as in FA2):
/// attentionBackward uses it there. Not for variants with differentiable
/// tensors (their pair gradients come from the dQ kernel).
dsl::Kernel flashAttentionBackwardFusedKernel(DType dtype, int64_t headDim,
                                              const AttentionVariant &variant,
                                              const GradientOutput &grad = {},
                                              bool blockMask = false);
/// dQ = scale * sum over g of dq_partial[g], in g order, stored (or added)
/// to dq; grid (query blocks, batch * heads_q). Takes the preprocess's
/// arguments (the backward kernels' without variant tensors, scalars or
/// block mask), then dq_partial and the group count G.
dsl::Kernel flashAttentionBackwardDqReduceKernel(DType dtype, int64_t headDim,
                                                 const GradientOutput &grad = {});

/// d loss / d sinks from the forward's LSE and delta = rowsum(dO * O), both
/// contiguous f32 (batch, heads_q, seqlen_q): one program per query head
/// sums its rows in a fixed order. Arguments: lse, delta, sinks, dsinks
/// (f32 pointers), batch, seqlen_q, heads_q (i32). Constant BLOCK_M.
dsl::Kernel attentionSinkGradientKernel(bool accumulate);

/// Runs it: dsinks (heads_q f32) from `lse` and `delta` (contiguous f32
/// (batch, heads_q, seqlen_q)) and `sinks`; adds to dsinks with
/// options.accumulateGradients; honours options.backend, config and stream.
/// (attentionBackward calls it when options.dsinks is set; ring attention
/// per rank.)
void attentionSinkGradient(const float *lse, const float *delta, const float *sinks,
                           float *dsinks, int64_t batch, int64_t headsQ, int64_t seqlenQ,
                           const AttentionOptions &options = {});

/// Gradients of attention: dq has q's shape, dk and dv k's, all three in
/// q's dtype or all in f32 (required with options.accumulateGradients);
/// `out` (in q's dtype) and `lse` are the forward's results. Same checks as
/// attentionForward, plus dO/dq/dk/dv shapes.
void attentionBackward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                       const float *lse, const Tensor4 &dOut, const Tensor4 &dq,
                       const Tensor4 &dk, const Tensor4 &dv,
                       const AttentionOptions &options = {});

/// The backward's preprocess alone: delta = rowsum(dO * O) into `delta`, a
/// contiguous f32 (batch, heads_q, seqlen_q) array, for
/// AttentionOptions::backwardDelta. `out` and `dOut` as for
/// attentionBackward (dOut with out's strides); honours options.stream.
void attentionBackwardDelta(const Tensor4 &out, const Tensor4 &dOut, float *delta,
                            const AttentionOptions &options = {});

/// Head dims the kernels support on a backend: any multiple of 8 up to 256
/// on the CPU; 32, 64, 96, 128, 192, 256 for f16/bf16 on GPU targets.
bool supportedHeadDim(int64_t headDim, runtime::Backend backend, DType dtype);
/// Throws InvalidArgument "<what>: head_dim D is not supported for DTYPE on
/// the BACKEND backend (...)" unless supportedHeadDim(d, backend, dtype).
void requireSupportedHeadDim(const char *what, int64_t headDim, runtime::Backend backend,
                             DType dtype);

} // namespace loom::ops

#endif
