//===- AttentionKernels.cpp - flash attention kernels in the DSL ----------===//
//
// Forward: online softmax over key blocks in f32, exp2 with log2(e) folded
// into the scale. Backward (FlashAttention-2, no atomics): delta =
// rowsum(dO * O); per key block dK, dV accumulated over the query blocks of
// every query head of the group; per query block dQ. Probabilities are
// recomputed from the forward's log-sum-exp. Variants (score_mod, mask_mod)
// are inlined; score_mod's derivative comes from dsl::derivative. With a
// block mask (BlockMask.h) the key (or query) loops walk the mask's lists
// of partial blocks, masked, then of full blocks, where only the sequence
// bounds are masked: empty blocks are never visited.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/Attention.h"
#include "loom/ops/BlockMask.h"

#include "loom/dsl/Grid.h"

#include "loom/Support/Error.h"

#include <cmath>
#include <fmt/format.h>
#include <set>

namespace loom::ops {
using namespace loom::dsl;

namespace {
constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.69314718055994530942;
constexpr double kNegInf = -INFINITY;

/// `suffix` names the output types when they differ from the inputs'.
std::string kernelName(const char *stage, DType dtype, int64_t D, const AttentionVariant &v,
                       const std::string &suffix = "") {
  std::string variant;
  for (char c : v.name)
    variant += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return fmt::format("flash_{}_{}_d{}_{}{}", stage, dtypeName(dtype), D, variant, suffix);
}

std::string outputSuffix(DType dtype, DType outDtype, bool accumulate) {
  std::string s = outDtype == dtype ? "" : fmt::format("_out{}", dtypeName(outDtype));
  return accumulate ? s + "_acc" : s;
}

/// Arguments shared by every attention kernel, declared in one order (the
/// host passes one argument list to all of them).
struct Args {
  Value q, k, v, o, dO, lse, delta, dq, dk, dv;
  Value Sq, Sk, group, Hq;
  /// Global token positions (TokenPositions): query s is at qPos0 + s *
  /// qPosStep of a sequence of SqTotal tokens; keys likewise.
  Value qPos0, qPosStep, kvPos0, kvPosStep, SqTotal, SkTotal;
  Value qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh, osb, oss, osh;
  Value scale;
  /// The programs: (query or key block, batch * heads[, key block]) of a
  /// logical grid, which batch * heads past 65535 exceeds on GPUs.
  std::optional<LogicalGrid> grid;
  std::map<std::string, Value> variantTensors, variantScalars;
  /// Sinks (kernels built with sinks only): f32, one per query head.
  Value sinks;
  /// The sliding window (variants with one): an i32 argument, so every
  /// window size shares the compiled kernels.
  Value window;
  /// Block-mask lists (kernels built with a block mask only; see BlockMask).
  Value kvCounts, kvIndices, qCounts, qIndices;
};

/// `outDtype` is o's type in the forward (q's, or f32 for partial results
/// merged later); `gradDtype` is dq's, dk's and dv's.
Args declareArgs(KernelBuilder &kb, DType dtype, const AttentionVariant &variant,
                 DType outDtype, DType gradDtype, bool blockMask = false, bool sinks = false) {
  Args a;
  a.q = kb.pointer("q", dtype), a.k = kb.pointer("k", dtype), a.v = kb.pointer("v", dtype);
  a.o = kb.pointer("o", outDtype), a.dO = kb.pointer("do", dtype);
  a.lse = kb.pointer("lse", DType::F32), a.delta = kb.pointer("delta", DType::F32);
  a.dq = kb.pointer("dq", gradDtype), a.dk = kb.pointer("dk", gradDtype);
  a.dv = kb.pointer("dv", gradDtype);
  a.Sq = kb.scalar("seqlen_q", DType::I32), a.Sk = kb.scalar("seqlen_k", DType::I32);
  a.group = kb.scalar("group", DType::I32), a.Hq = kb.scalar("heads_q", DType::I32);
  a.qPos0 = kb.scalar("q_pos_offset", DType::I32);
  a.qPosStep = kb.scalar("q_pos_stride", DType::I32);
  a.kvPos0 = kb.scalar("kv_pos_offset", DType::I32);
  a.kvPosStep = kb.scalar("kv_pos_stride", DType::I32);
  a.SqTotal = kb.scalar("seqlen_q_total", DType::I32);
  a.SkTotal = kb.scalar("seqlen_k_total", DType::I32);
  // dq shares q's strides, dk k's, dv v's and do o's (the host repacks a
  // tensor whose strides differ).
  auto stride = [&](const char *n) { return kb.scalar(n, DType::I64); };
  a.qsb = stride("q_stride_b"), a.qss = stride("q_stride_s"), a.qsh = stride("q_stride_h");
  a.ksb = stride("k_stride_b"), a.kss = stride("k_stride_s"), a.ksh = stride("k_stride_h");
  a.vsb = stride("v_stride_b"), a.vss = stride("v_stride_s"), a.vsh = stride("v_stride_h");
  a.osb = stride("o_stride_b"), a.oss = stride("o_stride_s"), a.osh = stride("o_stride_h");
  a.scale = kb.scalar("scale", DType::F32);
  a.grid.emplace(kb);
  for (const VariantTensor &t : variant.tensors)
    a.variantTensors[t.name] = kb.pointer("variant_" + t.name, t.dtype);
  for (const VariantScalar &s : variant.scalars)
    a.variantScalars[s.name] = kb.scalar("variant_" + s.name, s.dtype);
  if (variant.window)
    a.window = kb.scalar("window", DType::I32);
  if (sinks)
    a.sinks = kb.pointer("sinks", DType::F32);
  if (blockMask) {
    a.kvCounts = kb.pointer("bm_kv_counts", DType::I32);
    a.kvIndices = kb.pointer("bm_kv_indices", DType::I32);
    a.qCounts = kb.pointer("bm_q_counts", DType::I32);
    a.qIndices = kb.pointer("bm_q_indices", DType::I32);
  }
  return a;
}

/// Scores of one (query block, key block) tile in log2 units, which pairs are
/// visible, and (backward) d score_mod / d score and, when asked for, the
/// derivatives with respect to what score_mod read from differentiable
/// variant tensors.
struct Scores {
  Value log2, visible, modGrad;
  std::vector<LoadDerivative> loads;
};

/// The names of the variant's tensors with requiresGrad.
std::vector<std::string> differentiableTensors(const AttentionVariant &variant) {
  std::vector<std::string> names;
  for (const VariantTensor &t : variant.tensors)
    if (t.requiresGrad)
      names.push_back(t.name);
  return names;
}

/// Which pairs of the tile are visible: inside both sequences and, with
/// `masks`, passing causal, window and mask_mod. Without `masks` (full
/// blocks of a block mask) only the sequence bounds remain: a full block at
/// the end of a sequence still has columns past it.
Value visibility(const AttentionVariant &variant, const VariantContext &ctx, bool masks = true) {
  Value visible = ctx.qValid & ctx.kvValid;
  if (!masks)
    return visible;
  if (variant.causal)
    visible = visible & (ctx.kvIdx <= ctx.qIdx + ctx.diagonal);
  if (variant.window)
    visible = visible & (ctx.qIdx + ctx.diagonal - ctx.kvIdx < ctx.window);
  if (variant.maskMod)
    visible = visible & variant.maskMod(ctx);
  return visible;
}

Scores scores(const AttentionVariant &variant, const Args &a, Value raw, const VariantContext &ctx,
              bool wantGrad, bool masks = true, bool wantTensorGrads = false) {
  Scores s;
  Value visible = visibility(variant, ctx, masks);
  if (!variant.scoreMod) {
    s.log2 = raw * (a.scale * kLog2e); // the scale folded into exp2's argument
  } else {
    Value scaled = raw * a.scale, modded;
    auto mod = [&](Value x) { return variant.scoreMod(x, ctx); };
    std::vector<Value> learnable;
    if (wantTensorGrads)
      for (const std::string &name : differentiableTensors(variant))
        learnable.push_back(a.variantTensors.at(name));
    if (wantGrad)
      s.modGrad = derivative(mod, scaled, &modded, learnable, &s.loads);
    else
      modded = mod(scaled);
    s.log2 = modded * kLog2e;
  }
  s.visible = visible;
  return s;
}

/// The forward's LSE of rows `offsets` in log2 units, as the backward
/// subtracts it from scores. A row that saw no key has LSE = -inf; it reads
/// as +inf so that P = exp2(s - LSE) is 0 for it even where a visible score
/// is -inf (-inf - -inf would be NaN). NaN stays NaN: P is NaN where the
/// forward's output was.
Value lseForBackward(const Args &a, Value offsets, Value rowMask) {
  Value lse = load(a.lse, offsets, rowMask, 0.0);
  return where(lse == kNegInf, INFINITY, lse) * kLog2e;
}

/// Writes an f32 gradient tile, or adds it to what the buffer holds (each
/// element has one writer per launch, so the read-modify-write is safe).
void storeGradient(Value ptr, Value offsets, Value grad, Value mask, DType gradDtype,
                   bool accumulate) {
  if (accumulate)
    grad = grad + load(ptr, offsets, mask, 0.0).to(DType::F32);
  store(ptr, offsets, grad.to(gradDtype), mask);
}

/// `qRows`/`kvCols` are local token indices; mods see global positions.
VariantContext context(const Args &a, Value b, Value h, Value qRows, Value kvCols, Value qValid,
                       Value kvValid) {
  return {b,      h,       a.Hq, a.qPos0 + qRows * a.qPosStep, a.kvPos0 + kvCols * a.kvPosStep,
          qValid, kvValid, a.SkTotal - a.SqTotal, a.SqTotal, a.SkTotal, a.variantTensors,
          a.variantScalars, a.window};
}

/// The query block a forward or dQ program owns: grid axis 0 is the block
/// of BLOCK_M queries, axis 1 is batch * heads_q.
struct QueryBlock {
  Value pidM, b32, h, b, hq, hk, rows, rowMask, rows64, d;
  /// Offsets of this block's rows in a (batch, seqlen, heads, D) tensor with
  /// the given strides. Built where used: keeping a tile of offsets live
  /// across the key loop costs registers on the GPU.
  Value offsets(Value sb, Value ss, Value sh) const {
    return b * sb + hq * sh + expand_dims(rows64, 1) * ss + expand_dims(d, 0);
  }
};

QueryBlock queryBlock(const Args &a, int64_t BM, int64_t D) {
  QueryBlock q;
  q.pidM = a.grid->programId(0);
  Value bh = a.grid->programId(1);
  q.b32 = bh / a.Hq, q.h = bh % a.Hq;
  q.b = q.b32.to(DType::I64), q.hq = q.h.to(DType::I64), q.hk = (q.h / a.group).to(DType::I64);
  q.rows = q.pidM * BM + arange(0, BM);
  q.rowMask = q.rows < a.Sq;
  q.rows64 = q.rows.to(DType::I64), q.d = arange(0, D).to(DType::I64);
  return q;
}

/// Local index range [0, n) of the tokens whose global position p =
/// offset + i * stride satisfies p <= bound: n = floor((bound - offset) /
/// stride) + 1, clamped at 0 (written so that C's truncating division never
/// sees a negative numerator).
Value countAtMost(Value bound, Value offset, Value stride) {
  return maximum(bound - offset + stride, 0) / stride;
}

/// The key blocks [begin, end) query block `pidM` can see: all of them,
/// unless causal (end at the diagonal) or windowed (begin at the window),
/// in global positions.
std::pair<Value, Value> keyBlocks(const AttentionVariant &variant, const Args &a, Value pidM,
                                  int64_t BM, int64_t BN) {
  Value diagonal = a.SkTotal - a.SqTotal;
  Value nEnd = a.Sk;
  // The block's last query sees keys up to its position + diagonal.
  if (variant.causal) {
    Value lastQuery = a.qPos0 + (pidM * BM + BM - 1) * a.qPosStep;
    nEnd = minimum(a.Sk, countAtMost(lastQuery + diagonal, a.kvPos0, a.kvPosStep));
  }
  Value begin = 0;
  // The block's first query sees keys from its position + diagonal - (window - 1).
  if (variant.window) {
    Value firstQuery = a.qPos0 + pidM * BM * a.qPosStep;
    Value hidden = countAtMost(firstQuery + diagonal - a.window, a.kvPos0, a.kvPosStep);
    begin = minimum(hidden, a.Sk) / BN;
  }
  Value end = (nEnd + (BN - 1)) / BN;
  return {minimum(begin, end), end};
}

/// The query blocks [begin, end) that can see key block `pidN`.
std::pair<Value, Value> queryBlocks(const AttentionVariant &variant, const Args &a, Value pidN,
                                    int64_t BM, int64_t BN) {
  Value diagonal = a.SkTotal - a.SqTotal;
  Value end = (a.Sq + (BM - 1)) / BM;
  Value begin = 0;
  // Causal: queries before (first key - diagonal) see none of these keys.
  if (variant.causal) {
    Value firstKey = a.kvPos0 + pidN * BN * a.kvPosStep;
    Value blind = countAtMost(firstKey - diagonal - 1, a.qPos0, a.qPosStep);
    begin = minimum(blind, a.Sq) / BM;
  }
  // Window: queries after (last key - diagonal + window - 1) see none of them.
  if (variant.window) {
    Value lastKey = a.kvPos0 + (pidN * BN + BN - 1) * a.kvPosStep;
    Value seeing = countAtMost(lastKey - diagonal + a.window - 1, a.qPos0, a.qPosStep);
    end = minimum(end, (seeing + (BM - 1)) / BM);
  }
  return {begin, maximum(end, begin)};
}

/// One i32 element of `ptr` as a scalar. DSL loads take offset tiles, so
/// this loads a 1-element tile and reduces it (a 1-D reduction is a scalar).
Value loadScalar(Value ptr, Value offset) {
  return sum(load(ptr, offset.to(DType::I64) + arange(0, 1).to(DType::I64)), 0);
}

using BlockStep = std::function<std::vector<Value>(Value block, const std::vector<Value> &carried,
                                                   bool masks)>;

/// Runs `step` over list `list` of a block mask: its partial blocks with the
/// masks, then its full blocks without them, carrying one state through
/// both loops. counts[2 * list + kind] is the length of kind's list (0
/// partial, 1 full), stored at indices[(2 * list + kind) * capacity].
std::vector<Value> overBlockLists(Value counts, Value indices, Value list, Value capacity,
                                  std::vector<Value> state, const BlockStep &step) {
  for (int kind = 0; kind < 2; ++kind) {
    Value n = loadScalar(counts, list * 2 + kind);
    Value base = (list * 2 + kind).to(DType::I64) * capacity.to(DType::I64);
    state = for_range(0, n, 1, state,
                      [&](Value it, const std::vector<Value> &c) -> std::vector<Value> {
                        return step(loadScalar(indices, base + it.to(DType::I64)), c, kind == 0);
                      });
  }
  return state;
}

const char *blockMaskSuffix(bool blockMask) { return blockMask ? "_bm" : ""; }
} // namespace

Kernel blockMaskKernel(const AttentionVariant &variant) {
  return Kernel(kernelName("block_mask", DType::F32, 0, variant), [variant](KernelBuilder &kb) {
    Args a = declareArgs(kb, DType::F32, variant, DType::F32, DType::F32);
    Value kinds = kb.pointer("block_kinds", DType::I32);
    int64_t BM = kb.constant("BLOCK_M"), BN = kb.constant("BLOCK_N");
    Value pidM = a.grid->programId(0), pidN = a.grid->programId(1), bh = a.grid->programId(2);
    Value rows = pidM * BM + arange(0, BM), cols = pidN * BN + arange(0, BN);
    Value rowMask = expand_dims(rows < a.Sq, 1), colMask = expand_dims(cols < a.Sk, 0);
    // The same context, hence the same global positions and mods, as the
    // attention kernels' (query-major) tiles.
    VariantContext ctx = context(a, bh / a.Hq, bh % a.Hq, expand_dims(rows, 1),
                                 expand_dims(cols, 0), rowMask, colMask);
    Value visible = sum(sum(visibility(variant, ctx).to(DType::I32), 1), 0);
    Value valid = sum(sum((rowMask & colMask).to(DType::I32), 1), 0);
    // 0 empty, 1 partial, 2 full: every launched tile has a valid pair.
    Value kind = (visible > 0).to(DType::I32) + (visible == valid).to(DType::I32);
    auto i64 = [](Value x) { return x.to(DType::I64); };
    Value at = (i64(bh) * i64(a.grid->numPrograms(0)) + i64(pidM)) * i64(a.grid->numPrograms(1)) +
               i64(pidN);
    store(kinds, at + arange(0, 1).to(DType::I64), kind);
  });
}

Kernel flashAttentionForwardKernel(DType dtype, int64_t D, bool causal) {
  return flashAttentionForwardKernel(
      dtype, D, causal ? AttentionVariant::causalMask() : AttentionVariant::none());
}

Kernel flashAttentionForwardKernel(DType dtype, int64_t D, const AttentionVariant &variant,
                                   std::optional<DType> outType, bool blockMask, bool sinks) {
  DType outDtype = outType.value_or(dtype);
  return Kernel(kernelName("fwd", dtype, D, variant,
                           outputSuffix(dtype, outDtype, false) + blockMaskSuffix(blockMask) +
                               (sinks ? "_sinks" : "")),
                [dtype, D, variant, outDtype, blockMask, sinks](KernelBuilder &kb) {
    Args a = declareArgs(kb, dtype, variant, outDtype, dtype, blockMask, sinks);
    int64_t BM = kb.constant("BLOCK_M"), BN = kb.constant("BLOCK_N");
    QueryBlock qb = queryBlock(a, BM, D);
    Value pidM = qb.pidM, b32 = qb.b32, h = qb.h, b = qb.b, hq = qb.hq, hk = qb.hk;
    Value rows = qb.rows, rowMask = qb.rowMask, rows64 = qb.rows64, d = qb.d;
    Value qTile = load(a.q, qb.offsets(a.qsb, a.qss, a.qsh), expand_dims(rowMask, 1), 0.0);
    Value kBase = b * a.ksb + hk * a.ksh, vBase = b * a.vsb + hk * a.vsh;
    BlockStep step = [&](Value j, const std::vector<Value> &c, bool masks) -> std::vector<Value> {
          Value m = c[0], l = c[1], acc = c[2];
          Value cols = j * BN + arange(0, BN);
          Value colMask = cols < a.Sk;
          Value cols64 = cols.to(DType::I64);
          Value kT = load(a.k, kBase + expand_dims(d, 1) + expand_dims(cols64, 0) * a.kss,
                          expand_dims(colMask, 0), 0.0); // [D, BN]
          VariantContext ctx = context(a, b32, h, expand_dims(rows, 1), expand_dims(cols, 0),
                                       expand_dims(rowMask, 1), expand_dims(colMask, 0));
          Scores sc = scores(variant, a, dot(qTile, kT), ctx, false, masks);
          Value s = where(sc.visible, sc.log2, kNegInf);
          Value mNew = maximum(m, max(s, 1));
          // A row with nothing visible yet keeps m = -inf: subtract 0 instead
          // so exp2 gives 0, not NaN.
          Value mSafe = where(mNew == kNegInf, 0.0, mNew);
          Value p = exp2(s - expand_dims(mSafe, 1));
          Value alpha = exp2(m - mSafe);
          Value vTile = load(a.v, vBase + expand_dims(cols64, 1) * a.vss + expand_dims(d, 0),
                             expand_dims(colMask, 1), 0.0); // [BN, D]
          return {mNew, l * alpha + sum(p, 1), acc * expand_dims(alpha, 1) + dot(p.to(dtype), vTile)};
        };
    std::vector<Value> state = {full({BM}, kNegInf, DType::F32), zeros({BM}, DType::F32),
                                zeros({BM, D}, DType::F32)};
    if (blockMask) {
      // (batch, head, query block)
      Value list = a.grid->programId(1) * a.grid->numPrograms(0) + pidM;
      state = overBlockLists(a.kvCounts, a.kvIndices, list, (a.Sk + (BN - 1)) / BN, state, step);
    } else {
      auto [jBegin, jEnd] = keyBlocks(variant, a, pidM, BM, BN);
      state = for_range(jBegin, jEnd, 1, state,
                        [&](Value j, const std::vector<Value> &c) { return step(j, c, true); });
    }
    Value m = state[0], l = state[1], acc = state[2];
    // l == 0 exactly when the row saw no key (a score of -inf counts as
    // hidden): its O is 0, even when a hidden V is not finite (0 x NaN in
    // P V). A NaN in a visible score (or an infinite one: inf - inf) makes l
    // NaN, and then O and LSE are NaN too, never "no key" (as `l > 0` would
    // have it), so no merge can drop it.
    Value sawNoKey = l == 0.0;
    // A sink is a key without a value that every row sees: one more online
    // softmax update after the loop (outside it, so it adds nothing to the
    // loop's registers), so it joins each row's denominator once and LSE
    // includes it. A row that saw no key then gets O = 0 and LSE = sink; a
    // sink of -inf is no sink.
    if (sinks) {
      Value sinkLog2 = loadScalar(a.sinks, h) * kLog2e;
      Value mNew = maximum(m, sinkLog2);
      Value mSafe = where(mNew == kNegInf, 0.0, mNew);
      Value alpha = exp2(m - mSafe);
      l = l * alpha + exp2(sinkLog2 - mSafe);
      acc = acc * expand_dims(alpha, 1);
      m = mNew;
    }
    // Without a sink (or with a sink of -inf) an empty row has LSE = -inf,
    // which the ring's merge skips.
    Value empty = l == 0.0;
    Value lSafe = where(empty, 1.0, l);
    store(a.o, qb.offsets(a.osb, a.oss, a.osh),
          where(expand_dims(sawNoKey, 1), 0.0, acc / expand_dims(lSafe, 1)).to(outDtype),
          expand_dims(rowMask, 1));
    Value lseOffs = (b * a.Hq.to(DType::I64) + hq) * a.Sq.to(DType::I64) + rows64;
    store(a.lse, lseOffs, where(empty, kNegInf, (m + log2(lSafe)) * kLn2), rowMask);
  });
}

Kernel flashAttentionBackwardPreprocessKernel(DType dtype, int64_t D,
                                              std::optional<DType> gradType) {
  DType gradDtype = gradType.value_or(dtype);
  return Kernel(kernelName("bwd_pre", dtype, D, AttentionVariant::none(),
                           outputSuffix(dtype, gradDtype, false)),
                [dtype, D, gradDtype](KernelBuilder &kb) {
    Args a = declareArgs(kb, dtype, AttentionVariant::none(), dtype, gradDtype);
    int64_t BM = kb.constant("BLOCK_M");
    Value pidM = a.grid->programId(0), bh = a.grid->programId(1);
    Value b = (bh / a.Hq).to(DType::I64), h = (bh % a.Hq).to(DType::I64);
    Value rows = pidM * BM + arange(0, BM);
    Value rows64 = rows.to(DType::I64), d = arange(0, D).to(DType::I64);
    Value mask = expand_dims(rows < a.Sq, 1);
    Value offs = b * a.osb + h * a.osh + expand_dims(rows64, 1) * a.oss + expand_dims(d, 0);
    Value o = load(a.o, offs, mask, 0.0).to(DType::F32);
    Value dO = load(a.dO, offs, mask, 0.0).to(DType::F32);
    Value deltaOffs = (b * a.Hq.to(DType::I64) + h) * a.Sq.to(DType::I64) + rows64;
    store(a.delta, deltaOffs, sum(o * dO, 1), rows < a.Sq);
  });
}

namespace {
/// Offsets of rows `rows64` x columns `d` of query head `h`, batch `b`, in
/// dQ partial `group` of the one-pass backward: layout (G, batch, heads_q,
/// seqlen_q, D), contiguous.
Value dqPartialOffsets(const Args &a, Value group, Value batch, Value b, Value h, Value rows64,
                       Value d, int64_t D) {
  Value head = (group.to(DType::I64) * batch + b) * a.Hq.to(DType::I64) + h;
  return (head * a.Sq.to(DType::I64) + expand_dims(rows64, 1)) * D + expand_dims(d, 0);
}

/// The dK/dV kernel, and with `fuseDq` the single-kernel backward: see
/// flashAttentionBackwardFusedKernel in Attention.h.
Kernel backwardKeyMajorKernel(DType dtype, int64_t D, const AttentionVariant &variant,
                              const GradientOutput &grad, bool blockMask, bool fuseDq) {
  DType gradDtype = grad.dtype.value_or(dtype);
  bool accumulate = grad.accumulate;
  return Kernel(kernelName(fuseDq ? "bwd_fused" : "bwd_dkdv", dtype, D, variant,
                           outputSuffix(dtype, gradDtype, accumulate) + blockMaskSuffix(blockMask)),
                [dtype, D, variant, gradDtype, accumulate, blockMask, fuseDq](KernelBuilder &kb) {
    Args a = declareArgs(kb, dtype, variant, dtype, gradDtype, blockMask);
    Value dqPartial = fuseDq ? kb.pointer("dq_partial", DType::F32) : Value();
    int64_t BM = kb.constant("BLOCK_M"), BN = kb.constant("BLOCK_N");
    Value bh = a.grid->programId(1);
    Value Hkv = a.Hq / a.group;
    Value b32 = bh / Hkv, hk = bh % Hkv;
    Value b = b32.to(DType::I64), hk64 = hk.to(DType::I64);
    Value d = arange(0, D).to(DType::I64);
    Value numKeyBlocks = (a.Sk + (BN - 1)) / BN;
    // Fused: program g of G on axis 0 owns key blocks g, g + G, ... and the
    // dQ partial sums of group g, which no other program touches.
    Value group = a.grid->programId(0), groups = a.grid->numPrograms(0);
    Value batch = a.grid->numPrograms(1).to(DType::I64) / Hkv.to(DType::I64);
    auto keyBlock = [&](Value pidN) {
      Value cols = pidN * BN + arange(0, BN);
      Value colMask = cols < a.Sk;
      Value cols64 = cols.to(DType::I64);
      Value kOffs = b * a.ksb + hk64 * a.ksh + expand_dims(cols64, 1) * a.kss + expand_dims(d, 0);
      Value vOffs = b * a.vsb + hk64 * a.vsh + expand_dims(cols64, 1) * a.vss + expand_dims(d, 0);
      Value kTile = load(a.k, kOffs, expand_dims(colMask, 1), 0.0); // [BN, D]
      Value vTile = load(a.v, vOffs, expand_dims(colMask, 1), 0.0);
      // One query block `mBlock` of query head `h32`.
      auto step = [&](Value h32, Value mBlock, const std::vector<Value> &c,
                      bool masks) -> std::vector<Value> {
        Value h = h32.to(DType::I64);
        Value rows = mBlock * BM + arange(0, BM);
        Value rowMask = rows < a.Sq;
        Value rows64 = rows.to(DType::I64);
        Value qBase = b * a.qsb + h * a.qsh, oBase = b * a.osb + h * a.osh;
        Value rowsT = expand_dims(rows64, 0), dT = expand_dims(d, 1); // [D, BM] indices
        Value rowsN = expand_dims(rows64, 1), dN = expand_dims(d, 0); // [BM, D] indices
        Value qT = load(a.q, qBase + rowsT * a.qss + dT, expand_dims(rowMask, 0), 0.0);
        Value dOT = load(a.dO, oBase + rowsT * a.oss + dT, expand_dims(rowMask, 0), 0.0);
        Value qTile = load(a.q, qBase + rowsN * a.qss + dN, expand_dims(rowMask, 1), 0.0);
        Value dO = load(a.dO, oBase + rowsN * a.oss + dN, expand_dims(rowMask, 1), 0.0);
        Value statOffs = (b * a.Hq.to(DType::I64) + h) * a.Sq.to(DType::I64) + rows64;
        Value lseLog2 = lseForBackward(a, statOffs, rowMask);
        Value delta = load(a.delta, statOffs, rowMask, 0.0);
        // Transposed orientation: keys along rows, queries along columns.
        VariantContext ctx = context(a, b32, h32, expand_dims(rows, 0), expand_dims(cols, 1),
                                     expand_dims(rowMask, 0), expand_dims(colMask, 1));
        Scores sc = scores(variant, a, dot(kTile, qT), ctx, true, masks);  // [BN, BM]
        Value pT = where(sc.visible, exp2(sc.log2 - expand_dims(lseLog2, 0)), 0.0);
        Value dV = c[1] + dot(pT.to(dtype), dO);                           // [BN, D]
        Value dST = pT * (dot(vTile, dOT) - expand_dims(delta, 0));
        if (!sc.modGrad.isNull())
          dST = dST * sc.modGrad;
        Value dSTLow = dST.to(dtype);
        if (fuseDq) {
          // dQ_partial[g, b, h, rows] += dS K (unscaled, f32): read, add,
          // write back; this program is the only one on these elements.
          Value pOffs = dqPartialOffsets(a, group, batch, b, h, rows64, d, D);
          Value rowsIn = expand_dims(rowMask, 1);
          store(dqPartial, pOffs, dot(trans(dSTLow), kTile, load(dqPartial, pOffs, rowsIn, 0.0)),
                rowsIn);
        }
        return {c[0] + dot(dSTLow, qTile), dV};
      };
      std::vector<Value> grads = {zeros({BN, D}, DType::F32), zeros({BN, D}, DType::F32)};
      if (blockMask) {
        // The transposed lists hold (head in group) * query blocks + query block.
        Value numQueryBlocks = (a.Sq + (BM - 1)) / BM;
        grads = overBlockLists(
            a.qCounts, a.qIndices, bh * numKeyBlocks + pidN, a.group * numQueryBlocks, grads,
            [&](Value code, const std::vector<Value> &c, bool masks) {
              return step(hk * a.group + code / numQueryBlocks, code % numQueryBlocks, c, masks);
            });
      } else {
        auto [mBegin, mEnd] = queryBlocks(variant, a, pidN, BM, BN);
        Value numRowBlocks = mEnd - mBegin;
        grads = for_range(0, a.group * numRowBlocks, 1, grads,
                          [&](Value it, const std::vector<Value> &c) {
                            return step(hk * a.group + it / numRowBlocks,
                                        mBegin + it % numRowBlocks, c, true);
                          });
      }
      Value kvMask = expand_dims(colMask, 1);
      storeGradient(a.dk, kOffs, grads[0] * a.scale, kvMask, gradDtype, accumulate);
      storeGradient(a.dv, vOffs, grads[1], kvMask, gradDtype, accumulate);
    };
    if (!fuseDq) {
      keyBlock(a.grid->programId(0));
      return;
    }
    Value mine = (numKeyBlocks - group + (groups - 1)) / groups;
    for_range(0, mine, 1, {}, [&](Value t, const std::vector<Value> &) {
      keyBlock(group + t * groups);
      return std::vector<Value>{};
    });
  });
}
} // namespace

Kernel flashAttentionBackwardDkDvKernel(DType dtype, int64_t D, const AttentionVariant &variant,
                                        const GradientOutput &grad, bool blockMask) {
  return backwardKeyMajorKernel(dtype, D, variant, grad, blockMask, /*fuseDq=*/false);
}

Kernel flashAttentionBackwardFusedKernel(DType dtype, int64_t D, const AttentionVariant &variant,
                                         const GradientOutput &grad, bool blockMask) {
  if (!differentiableTensors(variant).empty())
    throw Error(ErrorCode::Unsupported,
                fmt::format("attention backward: the fused kernel does not write the pair "
                            "gradients of variant '{}''s differentiable tensors; use the dK/dV "
                            "and dQ kernels",
                            variant.name));
  return backwardKeyMajorKernel(dtype, D, variant, grad, blockMask, /*fuseDq=*/true);
}

Kernel flashAttentionBackwardDqReduceKernel(DType dtype, int64_t D, const GradientOutput &grad) {
  DType gradDtype = grad.dtype.value_or(dtype);
  bool accumulate = grad.accumulate;
  return Kernel(kernelName("bwd_dq_reduce", dtype, D, AttentionVariant::none(),
                           outputSuffix(dtype, gradDtype, accumulate)),
                [dtype, D, gradDtype, accumulate](KernelBuilder &kb) {
    Args a = declareArgs(kb, dtype, AttentionVariant::none(), dtype, gradDtype);
    Value dqPartial = kb.pointer("dq_partial", DType::F32);
    Value groups = kb.scalar("groups", DType::I32);
    int64_t BM = kb.constant("BLOCK_M");
    QueryBlock qb = queryBlock(a, BM, D);
    Value rowMask = expand_dims(qb.rowMask, 1);
    Value batch = a.grid->numPrograms(1).to(DType::I64) / a.Hq.to(DType::I64);
    auto partial = [&](Value g) {
      return load(dqPartial, dqPartialOffsets(a, g, batch, qb.b, qb.hq, qb.rows64, qb.d, D),
                  rowMask, 0.0);
    };
    // Summed in group order: the result does not depend on the schedule.
    Value dq = for_range(1, groups, 1, {partial(Value(0))},
                         [&](Value g, const std::vector<Value> &c) {
                           return std::vector<Value>{c[0] + partial(g)};
                         })[0];
    storeGradient(a.dq, qb.offsets(a.qsb, a.qss, a.qsh), dq * a.scale, rowMask, gradDtype,
                  accumulate);
  });
}

Kernel flashAttentionBackwardDqKernel(DType dtype, int64_t D, const AttentionVariant &variant,
                                      const GradientOutput &grad, bool blockMask) {
  DType gradDtype = grad.dtype.value_or(dtype);
  bool accumulate = grad.accumulate;
  std::string gradTensors;
  for (const std::string &name : differentiableTensors(variant)) {
    gradTensors += "_grad_";
    for (char c : name)
      gradTensors += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return Kernel(kernelName("bwd_dq", dtype, D, variant,
                           outputSuffix(dtype, gradDtype, accumulate) +
                               blockMaskSuffix(blockMask) + gradTensors),
                [dtype, D, variant, gradDtype, accumulate, blockMask](KernelBuilder &kb) {
    Args a = declareArgs(kb, dtype, variant, dtype, gradDtype, blockMask);
    int64_t BM = kb.constant("BLOCK_M"), BN = kb.constant("BLOCK_N");
    QueryBlock qb = queryBlock(a, BM, D);
    Value pidM = qb.pidM, b32 = qb.b32, h = qb.h, b = qb.b, hq = qb.hq, hk = qb.hk;
    Value rows = qb.rows, rowMask = qb.rowMask, rows64 = qb.rows64, d = qb.d;
    Value qTile = load(a.q, qb.offsets(a.qsb, a.qss, a.qsh), expand_dims(rowMask, 1), 0.0);
    Value dO = load(a.dO, qb.offsets(a.osb, a.oss, a.osh), expand_dims(rowMask, 1), 0.0);
    Value statOffs = (b * a.Hq.to(DType::I64) + hq) * a.Sq.to(DType::I64) + rows64;
    Value lseLog2 = lseForBackward(a, statOffs, rowMask);
    Value delta = load(a.delta, statOffs, rowMask, 0.0);
    Value kBase = b * a.ksb + hk * a.ksh, vBase = b * a.vsb + hk * a.vsh;
    // Differentiable variant tensors (after every shared argument): each
    // (query, key) pair's d loss / d (value score_mod read) and the element
    // it read (as an i32 key; the tensor's element count `elems`: none) go
    // to (batch, heads_q, seqlen_q, seqlen_k) scratch, which SumByKey's
    // kernels sum per element in a fixed order. This program owns its rows'
    // pairs, so the stores never collide.
    struct PairScratch {
      Value grad, key, elems;
    };
    std::map<std::string, PairScratch> pairGrads;
    for (const std::string &name : differentiableTensors(variant)) {
      PairScratch &p = pairGrads[name];
      p.grad = kb.pointer("pair_grad_" + name, DType::F32);
      p.key = kb.pointer("pair_key_" + name, DType::I32);
      p.elems = kb.scalar("pair_elems_" + name, DType::I32);
    }
    Value pairRow = ((b * a.Hq.to(DType::I64) + hq) * a.Sq.to(DType::I64) + rows64) *
                    a.Sk.to(DType::I64);
    BlockStep step = [&](Value j, const std::vector<Value> &c, bool masks) -> std::vector<Value> {
      Value cols = j * BN + arange(0, BN);
      Value colMask = cols < a.Sk;
      Value cols64 = cols.to(DType::I64);
      Value colT = expand_dims(cols64, 0), dT = expand_dims(d, 1);
      Value kT = load(a.k, kBase + dT + colT * a.kss, expand_dims(colMask, 0), 0.0);
      Value vT = load(a.v, vBase + dT + colT * a.vss, expand_dims(colMask, 0), 0.0);
      Value kTile = load(a.k, kBase + expand_dims(cols64, 1) * a.kss + expand_dims(d, 0),
                         expand_dims(colMask, 1), 0.0);
      VariantContext ctx = context(a, b32, h, expand_dims(rows, 1), expand_dims(cols, 0),
                                   expand_dims(rowMask, 1), expand_dims(colMask, 0));
      Scores sc = scores(variant, a, dot(qTile, kT), ctx, true, masks, !pairGrads.empty());
      Value p = where(sc.visible, exp2(sc.log2 - expand_dims(lseLog2, 1)), 0.0); // [BM, BN]
      Value dS = p * (dot(dO, vT) - expand_dims(delta, 1)); // d loss / d score_mod's result
      if (!sc.loads.empty()) {
        Value pairs = expand_dims(pairRow, 1) + expand_dims(cols64, 0);
        Value inBounds = expand_dims(rowMask, 1) & expand_dims(colMask, 0);
        std::set<std::string> seen;
        for (const LoadDerivative &load : sc.loads) {
          std::string name;
          for (const auto &[n, ptr] : a.variantTensors)
            if (ptr.mlir() == load.pointer.mlir())
              name = n;
          if (!seen.insert(name).second)
            throw Error(ErrorCode::Unsupported,
                        fmt::format("attention backward: score_mod of variant '{}' reads "
                                    "differentiable tensor '{}' more than once; one load per "
                                    "tensor is supported",
                                    variant.name, name));
          const PairScratch &scratch = pairGrads.at(name);
          // A visible pair's read outside the tensor (the forward's was out
          // of bounds too) gets the key elems + 1, which fails the
          // reduction with an error naming the tensor.
          Value at = load.offsets.to(DType::I64), elems = scratch.elems.to(DType::I64);
          Value reads = load.mask.isNull() ? sc.visible : sc.visible & load.mask;
          Value inside = (at >= 0) & (at < elems);
          store(scratch.grad, pairs, where(reads & inside, dS * load.tangent, 0.0), inBounds);
          Value key = where(reads, where(inside, at, elems + 1), elems);
          store(scratch.key, pairs, key.to(DType::I32), inBounds);
        }
      }
      if (!sc.modGrad.isNull())
        dS = dS * sc.modGrad;
      return {c[0] + dot(dS.to(dtype), kTile)};
    };
    std::vector<Value> dq = {zeros({BM, D}, DType::F32)};
    if (blockMask) {
      Value list = a.grid->programId(1) * a.grid->numPrograms(0) + pidM;
      dq = overBlockLists(a.kvCounts, a.kvIndices, list, (a.Sk + (BN - 1)) / BN, dq, step);
    } else {
      auto [jBegin, jEnd] = keyBlocks(variant, a, pidM, BM, BN);
      dq = for_range(jBegin, jEnd, 1, dq,
                     [&](Value j, const std::vector<Value> &c) { return step(j, c, true); });
    }
    storeGradient(a.dq, qb.offsets(a.qsb, a.qss, a.qsh), dq[0] * a.scale,
                  expand_dims(rowMask, 1), gradDtype, accumulate);
  });
}

Kernel attentionSinkGradientKernel(bool accumulate) {
  return Kernel(accumulate ? "attention_sink_grad_acc" : "attention_sink_grad",
                [accumulate](KernelBuilder &kb) {
    Value lse = kb.pointer("lse", DType::F32), delta = kb.pointer("delta", DType::F32);
    Value sinks = kb.pointer("sinks", DType::F32), dsinks = kb.pointer("dsinks", DType::F32);
    Value B = kb.scalar("batch", DType::I32), Sq = kb.scalar("seqlen_q", DType::I32);
    Value Hq = kb.scalar("heads_q", DType::I32);
    int64_t BM = kb.constant("BLOCK_M");
    Value h = program_id(0);
    Value sink = loadScalar(sinks, h);
    Value blocks = (Sq + (BM - 1)) / BM;
    // d loss / d sink = sum over rows of P_sink * (0 - delta): the sink's
    // probability exp(sink - LSE), and no value, so dP_sink = 0. One
    // program sums every row of its head in a fixed order.
    Value sum0 = for_range(0, B * blocks, 1, {zeros({BM}, DType::F32)},
                           [&](Value it, const std::vector<Value> &c) -> std::vector<Value> {
      Value rows = (it % blocks) * BM + arange(0, BM);
      Value valid = rows < Sq;
      Value offs = ((it / blocks) * Hq + h).to(DType::I64) * Sq.to(DType::I64) +
                   rows.to(DType::I64);
      Value rowLse = load(lse, offs, valid, 0.0);
      // A row of LSE -inf (a sink of -inf, nothing visible) has no sink mass.
      Value pSink = where(valid & (rowLse > kNegInf), exp(sink - rowLse), 0.0);
      return {c[0] - pSink * load(delta, offs, valid, 0.0)};
    })[0];
    Value grad = sum(sum0, 0);
    Value at = h.to(DType::I64) + arange(0, 1).to(DType::I64);
    if (accumulate)
      grad = grad + loadScalar(dsinks, h);
    store(dsinks, at, grad);
  });
}

} // namespace loom::ops
