//===- Attention.cpp - flash attention forward ----------------------------===//
#include "loom/ops/Attention.h"

#include "loom/Support/Error.h"

#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <mutex>

namespace loom::ops {
using namespace loom::dsl;

Tensor4 Tensor4::contiguous(const void *data, DType dtype, std::array<int64_t, 4> shape) {
  Tensor4 t{data, dtype, shape, {}};
  t.strides = {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
  return t;
}

bool supportedHeadDim(int64_t d, runtime::Backend backend, DType dtype) {
  if (backend == runtime::Backend::Cpu)
    return d > 0 && d <= 256 && d % 8 == 0;
  if (dtype == DType::F32)
    return d > 0 && d <= 128 && d % 8 == 0;
  for (int64_t ok : {32, 64, 96, 128, 192, 256})
    if (d == ok)
      return true;
  return false;
}

AttentionConfig defaultAttentionConfig(int64_t headDim, runtime::Backend backend) {
  if (runtime::resolveBackend(backend) == runtime::Backend::Cpu)
    return {64, 64, 128};
  if (headDim <= 64)
    return {64, 64, 256};
  if (headDim <= 128)
    return {32, 16, 256};
  return {16, 16, 256};
}

Kernel flashAttentionForwardKernel(DType dtype, int64_t D, bool causal) {
  std::string name = fmt::format("flash_fwd_{}_d{}{}", dtypeName(dtype), D, causal ? "_causal" : "");
  return Kernel(name, [dtype, D, causal](KernelBuilder &k) {
    Value q = k.pointer("q", dtype), kk = k.pointer("k", dtype), v = k.pointer("v", dtype),
          o = k.pointer("o", dtype), lse = k.pointer("lse", DType::F32);
    Value Sq = k.scalar("seqlen_q", DType::I32), Sk = k.scalar("seqlen_k", DType::I32);
    Value group = k.scalar("group", DType::I32), Hq = k.scalar("heads_q", DType::I32);
    auto stride = [&](const char *n) { return k.scalar(n, DType::I64); };
    Value qsb = stride("q_stride_b"), qss = stride("q_stride_s"), qsh = stride("q_stride_h");
    Value ksb = stride("k_stride_b"), kss = stride("k_stride_s"), ksh = stride("k_stride_h");
    Value vsb = stride("v_stride_b"), vss = stride("v_stride_s"), vsh = stride("v_stride_h");
    Value osb = stride("o_stride_b"), oss = stride("o_stride_s"), osh = stride("o_stride_h");
    Value scaleLog2 = k.scalar("scale_log2", DType::F32);
    int64_t BM = k.constant("BLOCK_M"), BN = k.constant("BLOCK_N");

    Value pidM = program_id(0), bh = program_id(1);
    Value b = (bh / Hq).to(DType::I64), h = bh % Hq;
    Value hq = h.to(DType::I64), hk = (h / group).to(DType::I64);
    Value rows = pidM * BM + arange(0, BM);
    Value rowMask = rows < Sq;
    Value d = arange(0, D).to(DType::I64);
    Value rows64 = rows.to(DType::I64);

    Value qOffs = b * qsb + hq * qsh + expand_dims(rows64, 1) * qss + expand_dims(d, 0);
    Value qTile = load(q, qOffs, expand_dims(rowMask, 1), 0.0);
    Value kBase = b * ksb + hk * ksh, vBase = b * vsb + hk * vsh;

    // Keys past the causal diagonal of the last row of this block are never
    // visible: the loop stops before them (empty blocks are skipped).
    Value diagonal = Sk - Sq;
    Value nEnd = Sk;
    if (causal)
      nEnd = maximum(minimum(Sk, pidM * BM + BM + diagonal), 0);
    Value numBlocks = (nEnd + (BN - 1)) / BN;

    constexpr double kNegInf = -INFINITY;
    auto state = for_range(
        0, numBlocks, 1, {full({BM}, kNegInf, DType::F32), zeros({BM}, DType::F32),
                          zeros({BM, D}, DType::F32)},
        [&](Value j, const std::vector<Value> &c) -> std::vector<Value> {
          Value m = c[0], l = c[1], acc = c[2];
          Value cols = j * BN + arange(0, BN);
          Value colMask = cols < Sk;
          Value cols64 = cols.to(DType::I64);
          Value kT = load(kk, kBase + expand_dims(d, 1) + expand_dims(cols64, 0) * kss,
                          expand_dims(colMask, 0), 0.0); // [D, BN]
          Value s = dot(qTile, kT) * scaleLog2;           // [BM, BN], log2 units
          Value visible = expand_dims(colMask, 0);
          if (causal)
            visible = visible & (expand_dims(cols, 0) <= expand_dims(rows, 1) + diagonal);
          s = where(visible, s, kNegInf);
          Value mNew = maximum(m, max(s, 1));
          // A row with nothing visible yet keeps m = -inf: subtract 0 instead
          // so exp2 gives 0, not NaN.
          Value mSafe = where(mNew == kNegInf, 0.0, mNew);
          Value p = exp2(s - expand_dims(mSafe, 1));
          Value alpha = exp2(m - mSafe);
          Value vTile = load(v, vBase + expand_dims(cols64, 1) * vss + expand_dims(d, 0),
                             expand_dims(colMask, 1), 0.0); // [BN, D]
          Value pv = dot(p.to(dtype), vTile);
          return {mNew, l * alpha + sum(p, 1), acc * expand_dims(alpha, 1) + pv};
        });
    Value m = state[0], l = state[1], acc = state[2];
    Value seen = l > 0.0;
    Value lSafe = where(seen, l, 1.0);
    Value out = acc / expand_dims(lSafe, 1); // 0 for rows that saw nothing
    Value oOffs = b * osb + hq * osh + expand_dims(rows64, 1) * oss + expand_dims(d, 0);
    store(o, oOffs, out.to(dtype), expand_dims(rowMask, 1));
    constexpr double kLn2 = 0.69314718055994530942;
    Value lseRow = where(seen, (m + log2(lSafe)) * kLn2, kNegInf);
    Value lseOffs = (b * Hq.to(DType::I64) + hq) * Sq.to(DType::I64) + rows64;
    store(lse, lseOffs, lseRow, rowMask);
  });
}

namespace {
/// Arguments shared by the backward kernels, declared in one order.
struct BackwardArgs {
  Value q, k, v, o, dO, lse, delta, dq, dk, dv;
  Value Sq, Sk, group, Hq;
  Value qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh, osb, oss, osh;
  Value scaleLog2, scale;
};

BackwardArgs declareBackwardArgs(KernelBuilder &kb, DType dtype) {
  BackwardArgs a;
  a.q = kb.pointer("q", dtype), a.k = kb.pointer("k", dtype), a.v = kb.pointer("v", dtype);
  a.o = kb.pointer("o", dtype), a.dO = kb.pointer("do", dtype);
  a.lse = kb.pointer("lse", DType::F32), a.delta = kb.pointer("delta", DType::F32);
  a.dq = kb.pointer("dq", dtype), a.dk = kb.pointer("dk", dtype), a.dv = kb.pointer("dv", dtype);
  a.Sq = kb.scalar("seqlen_q", DType::I32), a.Sk = kb.scalar("seqlen_k", DType::I32);
  a.group = kb.scalar("group", DType::I32), a.Hq = kb.scalar("heads_q", DType::I32);
  // dq shares q's strides, dk k's, dv v's and do o's (the host repacks a
  // gradient whose strides differ).
  auto stride = [&](const char *n) { return kb.scalar(n, DType::I64); };
  a.qsb = stride("q_stride_b"), a.qss = stride("q_stride_s"), a.qsh = stride("q_stride_h");
  a.ksb = stride("k_stride_b"), a.kss = stride("k_stride_s"), a.ksh = stride("k_stride_h");
  a.vsb = stride("v_stride_b"), a.vss = stride("v_stride_s"), a.vsh = stride("v_stride_h");
  a.osb = stride("o_stride_b"), a.oss = stride("o_stride_s"), a.osh = stride("o_stride_h");
  a.scaleLog2 = kb.scalar("scale_log2", DType::F32), a.scale = kb.scalar("scale", DType::F32);
  return a;
}

constexpr double kLog2e = 1.4426950408889634;

/// exp2(s - lse) where (row, col) is visible, else 0: the forward's
/// probabilities recomputed from its log-sum-exp (natural log).
Value probabilities(Value sLog2, Value lseLog2, Value visible) {
  return where(visible, exp2(sLog2 - lseLog2), 0.0);
}
} // namespace

Kernel flashAttentionBackwardPreprocessKernel(DType dtype, int64_t D) {
  return Kernel(fmt::format("flash_bwd_pre_{}_d{}", dtypeName(dtype), D),
                [dtype, D](KernelBuilder &kb) {
    BackwardArgs a = declareBackwardArgs(kb, dtype);
    int64_t BM = kb.constant("BLOCK_M");
    Value pidM = program_id(0), bh = program_id(1);
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

Kernel flashAttentionBackwardDkDvKernel(DType dtype, int64_t D, bool causal) {
  return Kernel(fmt::format("flash_bwd_dkdv_{}_d{}{}", dtypeName(dtype), D, causal ? "_causal" : ""),
                [dtype, D, causal](KernelBuilder &kb) {
    BackwardArgs a = declareBackwardArgs(kb, dtype);
    int64_t BM = kb.constant("BLOCK_M"), BN = kb.constant("BLOCK_N");
    Value pidN = program_id(0), bh = program_id(1);
    Value Hkv = a.Hq / a.group;
    Value b = (bh / Hkv).to(DType::I64), hk = bh % Hkv;
    Value cols = pidN * BN + arange(0, BN);
    Value colMask = cols < a.Sk;
    Value cols64 = cols.to(DType::I64), d = arange(0, D).to(DType::I64);
    Value hk64 = hk.to(DType::I64);
    Value kOffs = b * a.ksb + hk64 * a.ksh + expand_dims(cols64, 1) * a.kss + expand_dims(d, 0);
    Value vOffs = b * a.vsb + hk64 * a.vsh + expand_dims(cols64, 1) * a.vss + expand_dims(d, 0);
    Value kTile = load(a.k, kOffs, expand_dims(colMask, 1), 0.0); // [BN, D]
    Value vTile = load(a.v, vOffs, expand_dims(colMask, 1), 0.0);
    Value diagonal = a.Sk - a.Sq;
    // Causal: rows before (first column - diagonal) see none of these keys.
    Value mBegin = 0;
    if (causal)
      mBegin = maximum(pidN * BN - diagonal, 0) / BM;
    Value mEnd = (a.Sq + (BM - 1)) / BM;
    Value numRowBlocks = maximum(mEnd - mBegin, 0);
    auto grads = for_range(0, a.group * numRowBlocks, 1,
                           {zeros({BN, D}, DType::F32), zeros({BN, D}, DType::F32)},
                           [&](Value it, const std::vector<Value> &c) -> std::vector<Value> {
      Value h = (hk * a.group + it / numRowBlocks).to(DType::I64);
      Value rows = (mBegin + it % numRowBlocks) * BM + arange(0, BM);
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
      Value lseLog2 = load(a.lse, statOffs, rowMask, 0.0) * kLog2e;
      Value delta = load(a.delta, statOffs, rowMask, 0.0);
      Value visible = expand_dims(colMask, 1) & expand_dims(rowMask, 0);
      if (causal)
        visible = visible & (expand_dims(cols, 1) <= expand_dims(rows, 0) + diagonal);
      Value sT = dot(kTile, qT) * a.scaleLog2;                      // [BN, BM]
      Value pT = probabilities(sT, expand_dims(lseLog2, 0), visible);
      Value dV = c[1] + dot(pT.to(dtype), dO);                      // [BN, D]
      Value dPT = dot(vTile, dOT);                                  // [BN, BM]
      Value dST = pT * (dPT - expand_dims(delta, 0));
      Value dK = c[0] + dot(dST.to(dtype), qTile);
      return {dK, dV};
    });
    Value dkOffs = b * a.ksb + hk64 * a.ksh + expand_dims(cols64, 1) * a.kss + expand_dims(d, 0);
    Value dvOffs = b * a.vsb + hk64 * a.vsh + expand_dims(cols64, 1) * a.vss + expand_dims(d, 0);
    store(a.dk, dkOffs, (grads[0] * a.scale).to(dtype), expand_dims(colMask, 1));
    store(a.dv, dvOffs, grads[1].to(dtype), expand_dims(colMask, 1));
  });
}

Kernel flashAttentionBackwardDqKernel(DType dtype, int64_t D, bool causal) {
  return Kernel(fmt::format("flash_bwd_dq_{}_d{}{}", dtypeName(dtype), D, causal ? "_causal" : ""),
                [dtype, D, causal](KernelBuilder &kb) {
    BackwardArgs a = declareBackwardArgs(kb, dtype);
    int64_t BM = kb.constant("BLOCK_M"), BN = kb.constant("BLOCK_N");
    Value pidM = program_id(0), bh = program_id(1);
    Value b = (bh / a.Hq).to(DType::I64), h = bh % a.Hq;
    Value hq = h.to(DType::I64), hk = (h / a.group).to(DType::I64);
    Value rows = pidM * BM + arange(0, BM);
    Value rowMask = rows < a.Sq;
    Value rows64 = rows.to(DType::I64), d = arange(0, D).to(DType::I64);
    Value qOffs = b * a.qsb + hq * a.qsh + expand_dims(rows64, 1) * a.qss + expand_dims(d, 0);
    Value oOffs = b * a.osb + hq * a.osh + expand_dims(rows64, 1) * a.oss + expand_dims(d, 0);
    Value qTile = load(a.q, qOffs, expand_dims(rowMask, 1), 0.0);
    Value dO = load(a.dO, oOffs, expand_dims(rowMask, 1), 0.0);
    Value statOffs = (b * a.Hq.to(DType::I64) + hq) * a.Sq.to(DType::I64) + rows64;
    Value lseLog2 = load(a.lse, statOffs, rowMask, 0.0) * kLog2e;
    Value delta = load(a.delta, statOffs, rowMask, 0.0);
    Value diagonal = a.Sk - a.Sq;
    Value nEnd = a.Sk;
    if (causal)
      nEnd = maximum(minimum(a.Sk, pidM * BM + BM + diagonal), 0);
    Value kBase = b * a.ksb + hk * a.ksh, vBase = b * a.vsb + hk * a.vsh;
    auto dq = for_range(0, (nEnd + (BN - 1)) / BN, 1, {zeros({BM, D}, DType::F32)},
                        [&](Value j, const std::vector<Value> &c) -> std::vector<Value> {
      Value cols = j * BN + arange(0, BN);
      Value colMask = cols < a.Sk;
      Value cols64 = cols.to(DType::I64);
      Value colT = expand_dims(cols64, 0), rowD = expand_dims(d, 1);
      Value kT = load(a.k, kBase + rowD + colT * a.kss, expand_dims(colMask, 0), 0.0);
      Value vT = load(a.v, vBase + rowD + colT * a.vss, expand_dims(colMask, 0), 0.0);
      Value kTile = load(a.k, kBase + expand_dims(cols64, 1) * a.kss + expand_dims(d, 0),
                         expand_dims(colMask, 1), 0.0);
      Value visible = expand_dims(colMask, 0) & expand_dims(rowMask, 1);
      if (causal)
        visible = visible & (expand_dims(cols, 0) <= expand_dims(rows, 1) + diagonal);
      Value s = dot(qTile, kT) * a.scaleLog2;                     // [BM, BN]
      Value p = probabilities(s, expand_dims(lseLog2, 1), visible);
      Value dP = dot(dO, vT);
      Value dS = p * (dP - expand_dims(delta, 1));
      return {c[0] + dot(dS.to(dtype), kTile)};
    });
    store(a.dq, qOffs, (dq[0] * a.scale).to(dtype), expand_dims(rowMask, 1));
  });
}

namespace {
const char *kNames[] = {"batch", "seqlen", "heads", "head_dim"};

void requireValid(const Tensor4 &t, const char *name) {
  if (!t.data)
    throw Error(ErrorCode::InvalidArgument, fmt::format("attention: {} is a null pointer", name));
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: {} has dtype {}; expected f32, f16 or bf16", name,
                            dtypeName(t.dtype)));
  for (int i = 0; i < 4; ++i) {
    if (t.shape[i] < 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention: {} has negative {} ({})", name, kNames[i], t.shape[i]));
    if (t.strides[i] < 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention: {} has negative {} stride ({})", name, kNames[i],
                              t.strides[i]));
  }
  if (t.strides[3] != 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: {} head_dim stride is {}; the last dimension must be "
                            "contiguous (stride 1)",
                            name, t.strides[3]));
}

size_t extent(const Tensor4 &t) {
  size_t n = 1;
  for (int i = 0; i < 4; ++i) {
    if (t.shape[i] == 0)
      return 0;
    n += size_t(t.shape[i] - 1) * size_t(t.strides[i]);
  }
  return n;
}

std::string shapeStr(const Tensor4 &t) {
  return fmt::format("({}, {}, {}, {})", t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
}

/// One Kernel object per (dtype, head dim, causal), so repeated calls hit the
/// runtime's identity cache without re-tracing.
const Kernel &forwardKernel(DType dtype, int64_t d, bool causal) {
  static std::mutex mutex;
  static std::map<std::tuple<DType, int64_t, bool>, Kernel> kernels;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_tuple(dtype, d, causal);
  auto it = kernels.find(key);
  if (it == kernels.end())
    it = kernels.emplace(key, flashAttentionForwardKernel(dtype, d, causal)).first;
  return it->second;
}
} // namespace

struct Checked {
  int64_t B, Sq, Sk, Hq, Hkv, D;
  runtime::Backend backend;
  AttentionConfig config;
  float scale;
};

/// Validates q, k, v, out and options; throws InvalidArgument naming the
/// offending shape, dtype, head dim or stride.
Checked checkAttention(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                       const AttentionOptions &options) {
  requireValid(q, "q");
  requireValid(k, "k");
  requireValid(v, "v");
  requireValid(out, "out");
  if (k.dtype != q.dtype || v.dtype != q.dtype || out.dtype != q.dtype)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: dtypes differ: q {}, k {}, v {}, out {}",
                            dtypeName(q.dtype), dtypeName(k.dtype), dtypeName(v.dtype),
                            dtypeName(out.dtype)));
  if (k.shape != v.shape)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: k {} and v {} shapes differ", shapeStr(k), shapeStr(v)));
  if (out.shape != q.shape)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: out {} must have q's shape {}", shapeStr(out),
                            shapeStr(q)));
  if (k.shape[0] != q.shape[0])
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: batch of q ({}) and k ({}) differ", q.shape[0],
                            k.shape[0]));
  if (k.shape[3] != q.shape[3])
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: head_dim of q ({}) and k ({}) differ", q.shape[3],
                            k.shape[3]));
  int64_t B = q.shape[0], Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3];
  int64_t Sk = k.shape[1], Hkv = k.shape[2];
  if (Hkv == 0 || Hq % Hkv != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: heads_q ({}) is not divisible by heads_kv ({})", Hq, Hkv));
  runtime::Backend backend = runtime::resolveBackend(options.backend);
  if (!supportedHeadDim(D, backend, q.dtype))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: head_dim {} is not supported for {} on the {} backend "
                            "(cpu: multiples of 8 up to 256; gpu: 32, 64, 96, 128, 192, 256)",
                            D, dtypeName(q.dtype), runtime::backendName(backend)));
  for (int64_t s : {Sq, Sk})
    if (s > INT32_MAX)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention: seqlen {} exceeds 2^31 - 1", s));
  AttentionConfig config = options.config.value_or(defaultAttentionConfig(D, backend));
  if (config.blockM <= 0 || config.blockN <= 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: block sizes must be positive, got {}x{}", config.blockM,
                            config.blockN));
  float scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(D)));
  if (!std::isfinite(scale))
    throw Error(ErrorCode::InvalidArgument, fmt::format("attention: scale {} is not finite", scale));
  return {B, Sq, Sk, Hq, Hkv, D, backend, config, scale};
}


void attentionForward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                      float *lse, const AttentionOptions &options) {
  auto [B, Sq, Sk, Hq, Hkv, D, backend, config, scale] = checkAttention(q, k, v, out, options);
  if (B == 0 || Sq == 0 || Hq == 0)
    return;
  std::vector<float> lseScratch;
  if (!lse) {
    lseScratch.resize(size_t(B * Hq * Sq));
    lse = lseScratch.data();
  }
  runtime::Specialization spec;
  spec.constants = {{"BLOCK_M", config.blockM}, {"BLOCK_N", config.blockN}};
  spec.backend = backend;
  spec.numThreads = config.numThreads;
  auto kernel = runtime::compile(forwardKernel(q.dtype, D, options.causal), spec);
  using runtime::Arg;
  // An empty K (seqlen_k = 0) still needs a non-null buffer to pass checks.
  static const uint64_t dummy = 0;
  auto buf = [&](const Tensor4 &t) {
    size_t n = extent(t);
    return n ? Arg::buffer(t.data, t.dtype, n) : Arg::buffer(&dummy, t.dtype, 1);
  };
  const float log2e = 1.4426950408889634f;
  kernel->launch(
      runtime::Grid(uint32_t((Sq + config.blockM - 1) / config.blockM), uint32_t(B * Hq)),
      {buf(q), buf(k), buf(v), buf(out), Arg::buffer(lse, DType::F32, size_t(B * Hq * Sq)),
       Arg::i32(Sq), Arg::i32(Sk), Arg::i32(Hq / Hkv), Arg::i32(Hq), Arg::i64(q.strides[0]),
       Arg::i64(q.strides[1]), Arg::i64(q.strides[2]), Arg::i64(k.strides[0]),
       Arg::i64(k.strides[1]), Arg::i64(k.strides[2]), Arg::i64(v.strides[0]),
       Arg::i64(v.strides[1]), Arg::i64(v.strides[2]), Arg::i64(out.strides[0]),
       Arg::i64(out.strides[1]), Arg::i64(out.strides[2]), Arg::f32(scale * log2e)});
}

} // namespace loom::ops

namespace loom::ops {
namespace {
const Kernel &backwardKernel(int which, DType dtype, int64_t d, bool causal) {
  static std::mutex mutex;
  static std::map<std::tuple<int, DType, int64_t, bool>, Kernel> kernels;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_tuple(which, dtype, d, causal);
  auto it = kernels.find(key);
  if (it == kernels.end()) {
    Kernel k = which == 0   ? flashAttentionBackwardPreprocessKernel(dtype, d)
               : which == 1 ? flashAttentionBackwardDkDvKernel(dtype, d, causal)
                            : flashAttentionBackwardDqKernel(dtype, d, causal);
    it = kernels.emplace(key, std::move(k)).first;
  }
  return it->second;
}

/// A tensor laid out with `layout`'s strides, backed by `storage` when `t`
/// itself has other strides (copied in when `copyIn`).
Tensor4 withStrides(const Tensor4 &t, const Tensor4 &layout, std::vector<uint8_t> &storage,
                    bool copyIn) {
  if (t.strides == layout.strides)
    return t;
  size_t es = dtypeSize(t.dtype);
  storage.assign(std::max<size_t>(extent(layout), 1) * es, 0);
  Tensor4 packed{storage.data(), t.dtype, t.shape, layout.strides};
  if (copyIn)
    for (int64_t b = 0; b < t.shape[0]; ++b)
      for (int64_t s = 0; s < t.shape[1]; ++s)
        for (int64_t h = 0; h < t.shape[2]; ++h)
          std::memcpy(storage.data() +
                          (b * layout.strides[0] + s * layout.strides[1] + h * layout.strides[2]) * es,
                      static_cast<const uint8_t *>(t.data) +
                          (b * t.strides[0] + s * t.strides[1] + h * t.strides[2]) * es,
                      t.shape[3] * es);
  return packed;
}

void copyBack(const Tensor4 &packed, const Tensor4 &dst) {
  if (packed.data == dst.data)
    return;
  size_t es = dtypeSize(dst.dtype);
  for (int64_t b = 0; b < dst.shape[0]; ++b)
    for (int64_t s = 0; s < dst.shape[1]; ++s)
      for (int64_t h = 0; h < dst.shape[2]; ++h)
        std::memcpy(const_cast<uint8_t *>(static_cast<const uint8_t *>(dst.data)) +
                        (b * dst.strides[0] + s * dst.strides[1] + h * dst.strides[2]) * es,
                    static_cast<const uint8_t *>(packed.data) +
                        (b * packed.strides[0] + s * packed.strides[1] + h * packed.strides[2]) * es,
                    dst.shape[3] * es);
}

void requireLike(const Tensor4 &t, const Tensor4 &like, const char *name, const char *likeName) {
  requireValid(t, name);
  if (t.shape != like.shape)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: {} {} must have {}'s shape {}", name, shapeStr(t),
                            likeName, shapeStr(like)));
  if (t.dtype != like.dtype)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: {} has dtype {}, {} has {}", name,
                            dtypeName(t.dtype), likeName, dtypeName(like.dtype)));
}
} // namespace

void attentionBackward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                       const float *lse, const Tensor4 &dOut, const Tensor4 &dq,
                       const Tensor4 &dk, const Tensor4 &dv, const AttentionOptions &options) {
  auto [B, Sq, Sk, Hq, Hkv, D, backend, config, scale] = checkAttention(q, k, v, out, options);
  requireLike(dOut, q, "dout", "q");
  requireLike(dq, q, "dq", "q");
  requireLike(dk, k, "dk", "k");
  requireLike(dv, v, "dv", "v");
  if (!lse)
    throw Error(ErrorCode::InvalidArgument, "attention backward: lse is a null pointer");
  if (B == 0 || Hq == 0)
    return;
  std::vector<uint8_t> dOutStore, dqStore, dkStore, dvStore;
  Tensor4 dO = withStrides(dOut, out, dOutStore, true);
  Tensor4 dQ = withStrides(dq, q, dqStore, false), dK = withStrides(dk, k, dkStore, false),
          dV = withStrides(dv, v, dvStore, false);
  std::vector<float> delta(size_t(B * Hq * std::max<int64_t>(Sq, 1)));

  runtime::Specialization spec;
  spec.constants = {{"BLOCK_M", config.blockM}, {"BLOCK_N", config.blockN}};
  spec.backend = backend;
  spec.numThreads = config.numThreads;
  using runtime::Arg;
  static const uint64_t dummy = 0;
  auto buf = [&](const Tensor4 &t) {
    size_t n = extent(t);
    return n ? Arg::buffer(t.data, t.dtype, n) : Arg::buffer(&dummy, t.dtype, 1);
  };
  const float log2e = 1.4426950408889634f;
  std::vector<Arg> args = {
      buf(q), buf(k), buf(v), buf(out), buf(dO),
      Arg::buffer(lse, DType::F32, size_t(std::max<int64_t>(B * Hq * Sq, 1))),
      Arg::buffer(delta.data(), DType::F32, delta.size()), buf(dQ), buf(dK), buf(dV),
      Arg::i32(Sq), Arg::i32(Sk), Arg::i32(Hq / Hkv), Arg::i32(Hq),
      Arg::i64(q.strides[0]), Arg::i64(q.strides[1]), Arg::i64(q.strides[2]),
      Arg::i64(k.strides[0]), Arg::i64(k.strides[1]), Arg::i64(k.strides[2]),
      Arg::i64(v.strides[0]), Arg::i64(v.strides[1]), Arg::i64(v.strides[2]),
      Arg::i64(out.strides[0]), Arg::i64(out.strides[1]), Arg::i64(out.strides[2]),
      Arg::f32(scale * log2e), Arg::f32(scale)};
  auto kernel = [&](int which) {
    return runtime::compile(backwardKernel(which, q.dtype, D, options.causal), spec);
  };
  uint32_t qBlocks = uint32_t((Sq + config.blockM - 1) / config.blockM);
  if (Sq > 0) {
    kernel(0)->launch(runtime::Grid(qBlocks, uint32_t(B * Hq)), args);
    kernel(2)->launch(runtime::Grid(qBlocks, uint32_t(B * Hq)), args);
  }
  if (Sk > 0)
    kernel(1)->launch(
        runtime::Grid(uint32_t((Sk + config.blockN - 1) / config.blockN), uint32_t(B * Hkv)), args);
  copyBack(dQ, dq);
  copyBack(dK, dk);
  copyBack(dV, dv);
}

} // namespace loom::ops
