//===- Attention.cpp - flash attention forward ----------------------------===//
#include "loom/ops/Attention.h"

#include "loom/Support/Error.h"

#include <cmath>
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

void attentionForward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                      float *lse, const AttentionOptions &options) {
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
