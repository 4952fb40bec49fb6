//===- Attention.cpp - flash attention forward ----------------------------===//
//
// Host side of the attention kernels: argument checks, one cached Kernel
// per stage/dtype/variant, argument packing, and block masks (the per-call
// classification of non-analyzable masks, see BlockMask.h).
//
//===----------------------------------------------------------------------===//
#include "loom/ops/Attention.h"
#include "loom/ops/AttentionTuning.h"
#include "loom/ops/BlockMask.h"
#include "loom/ops/SumByKey.h"
#include "TensorText.h"

#include "loom/Support/Error.h"
#include "loom/cuda/Driver.h"
#include "loom/runtime/LogicalGrid.h"
#include "loom/runtime/Memory.h"
#include "loom/runtime/Stream.h"
#include "loom/runtime/ThreadPool.h"

#include <algorithm>
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

void requireSupportedHeadDim(const char *what, int64_t d, runtime::Backend backend,
                             DType dtype) {
  if (!supportedHeadDim(d, backend, dtype))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: head_dim {} is not supported for {} on the {} backend "
                            "(cpu: multiples of 8 up to 256; gpu: 32, 64, 96, 128, 192, 256)",
                            what, d, dtypeName(dtype), runtime::backendName(backend)));
}

AttentionConfig defaultAttentionConfig(int64_t headDim, runtime::Backend backend) {
  if (runtime::resolveBackend(backend) == runtime::Backend::Cpu)
    return {64, 64, 128};
  // Up to head dim 128: 4 warps of 16 rows each, so S, P and O stay in mma
  // fragments of one warp's rows (P . V reads P from registers), without
  // spills on sm_80/sm_90a: 64x64 up to d 96 (153 registers at d 64),
  // 64x32 at d 128 (254; 64x64 spills 88 bytes there when causal). Above,
  // the 8-warp 16x16 blocks: a 64-row O at d 256 does not fit in registers.
  if (headDim <= 96)
    return {64, 64, 128};
  if (headDim <= 128)
    return {64, 32, 128};
  return {16, 16, 256};
}

AttentionConfig defaultAttentionBackwardConfig(int64_t headDim, runtime::Backend backend) {
  if (runtime::resolveBackend(backend) == runtime::Backend::Cpu)
    return {64, 64, 128};
  // 16x16 on 8 warps: no spills up to head dim 256 (dK/dV 149-154 registers
  // there) since dot-only tiles go global -> shared by cp.async; the 8 warps
  // split the 32 column atoms of a 16x256 accumulator, so dK/dV/dQ stay in
  // mma fragments.
  return {16, 16, 256};
}

namespace {
const char *kNames[] = {"batch", "seqlen", "heads", "head_dim"};
using detail::extent;
using detail::shapeText;

void requireValid(const Tensor4 &t, const char *name) {
  // A tensor with no elements may have no storage: an empty std::vector's
  // data() is null, and nothing is ever read from or written to it.
  if (!t.data && extent(t) > 0)
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

/// One Kernel object per (stage, dtype, output dtype, accumulation, head
/// dim, variant name and differentiable tensors, block mask, sinks), so
/// repeated calls hit the runtime's identity cache without re-tracing.
/// `outDtype` is o's type (forward) or the gradients'.
enum class Stage { Forward, Preprocess, DkDv, Dq, Fused, DqReduce, Classify };
const Kernel &attentionKernel(Stage stage, DType dtype, DType outDtype, bool accumulate,
                              int64_t d, const AttentionVariant &v, bool blockMask = false,
                              bool sinks = false) {
  static std::mutex mutex;
  static std::map<std::tuple<Stage, DType, DType, bool, int64_t, std::string, bool, bool>, Kernel>
      kernels;
  std::lock_guard<std::mutex> lock(mutex);
  // requiresGrad changes the dQ kernel, not the variant's name. The
  // preprocess and the dQ reduction read no variant: one kernel for all.
  std::string variantKey;
  if (stage != Stage::Preprocess && stage != Stage::DqReduce) {
    variantKey = v.name;
    for (const VariantTensor &t : v.tensors)
      if (t.requiresGrad)
        variantKey += "|grad:" + t.name;
  }
  auto key = std::make_tuple(stage, dtype, outDtype, accumulate, d, variantKey, blockMask, sinks);
  auto it = kernels.find(key);
  if (it == kernels.end()) {
    GradientOutput grad{outDtype, accumulate};
    Kernel k =
        stage == Stage::Forward
            ? flashAttentionForwardKernel(dtype, d, v, outDtype, blockMask, sinks)
        : stage == Stage::Preprocess ? flashAttentionBackwardPreprocessKernel(dtype, d, outDtype)
        : stage == Stage::DkDv ? flashAttentionBackwardDkDvKernel(dtype, d, v, grad, blockMask)
        : stage == Stage::Dq   ? flashAttentionBackwardDqKernel(dtype, d, v, grad, blockMask)
        : stage == Stage::Fused ? flashAttentionBackwardFusedKernel(dtype, d, v, grad, blockMask)
        : stage == Stage::DqReduce ? flashAttentionBackwardDqReduceKernel(dtype, d, grad)
                                   : blockMaskKernel(v);
    it = kernels.emplace(key, std::move(k)).first;
  }
  return it->second;
}

runtime::Specialization specFor(const AttentionConfig &config, runtime::Backend backend,
                                unsigned cpuThreads = 0) {
  runtime::Specialization spec;
  spec.cpuThreads = cpuThreads;
  spec.constants = {{"BLOCK_M", config.blockM}, {"BLOCK_N", config.blockN}};
  spec.backend = backend;
  spec.numThreads = config.numThreads;
  spec.numStages = config.numStages;
  return spec;
}

AttentionVariant effectiveVariant(const AttentionOptions &options) {
  return options.causal ? combine(AttentionVariant::causalMask(), options.variant)
                        : options.variant;
}

void checkVariantArgs(const AttentionVariant &v, const std::vector<runtime::Arg> &args) {
  for (const VariantTensor &t : v.tensors)
    if (t.requiresGrad && t.dtype != DType::F32 && t.dtype != DType::F16 &&
        t.dtype != DType::BF16)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention: variant '{}' tensor '{}' requires a gradient but has "
                              "dtype {}; only f32, f16 and bf16 tensors are differentiable",
                              v.name, t.name, dtypeName(t.dtype)));
  for (const VariantScalar &s : v.scalars) {
    if (s.dtype != DType::F32 && s.dtype != DType::I32)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention: variant '{}' scalar '{}' has dtype {}; expected f32 "
                              "or i32",
                              v.name, s.name, dtypeName(s.dtype)));
    if (s.dtype == DType::I32 && (s.value != std::trunc(s.value) || std::fabs(s.value) > INT32_MAX))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention: variant '{}' scalar '{}' is i32 but has value {}",
                              v.name, s.name, s.value));
  }
  std::string want;
  for (const VariantTensor &t : v.tensors)
    want += fmt::format("{}{}: {}", want.empty() ? "" : ", ", t.name, dtypeName(t.dtype));
  if (args.size() != v.tensors.size())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: variant '{}' needs {} tensor(s) ({}), got {}", v.name,
                            v.tensors.size(), want.empty() ? "none" : want, args.size()));
  for (size_t i = 0; i < args.size(); ++i)
    if (args[i].kind() != runtime::Arg::Kind::Buffer || args[i].dtype() != v.tensors[i].dtype)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention: variant '{}' tensor '{}' must be a buffer of {}, got {}",
                              v.name, v.tensors[i].name, dtypeName(v.tensors[i].dtype),
                              args[i].describe()));
}

/// The variant's kernel arguments: its tensors' buffers, its scalars'
/// values, then its window (declareArgs' order).
std::vector<runtime::Arg> variantKernelArgs(const AttentionVariant &v,
                                            const std::vector<runtime::Arg> &tensors) {
  std::vector<runtime::Arg> args = tensors;
  // An empty tensor (a bias over no keys, from an empty vector) may have no
  // storage; the kernels read none of it but every pointer must be valid.
  static const uint64_t dummy = 0;
  for (runtime::Arg &a : args)
    if (a.kind() == runtime::Arg::Kind::Buffer && a.numElements() == 0 && !a.data())
      a = runtime::Arg::buffer(&dummy, a.dtype(), 1);
  for (const VariantScalar &s : v.scalars)
    args.push_back(s.dtype == DType::I32 ? runtime::Arg::i32(int32_t(s.value))
                                         : runtime::Arg::f32(float(s.value)));
  if (v.window)
    args.push_back(runtime::Arg::i32(int32_t(*v.window))); // <= 2^31 - 1 (slidingWindow)
  return args;
}

/// The argument list every attention kernel takes (see declareArgs in
/// AttentionKernels.cpp); tensors a stage does not use are passed as q.
struct KernelTensors {
  Tensor4 q, k, v, o, dO, dq, dk, dv;
  const float *lse = nullptr;
  float *delta = nullptr;
  size_t statCount = 1;
};

/// Global positions, validated (see TokenPositions).
struct Positions {
  int64_t qOffset, qStride, qTotal, kvOffset, kvStride, kvTotal;
};

std::vector<runtime::Arg> kernelArgs(const KernelTensors &t, int64_t Sq, int64_t Sk, int64_t Hq,
                                     int64_t Hkv, const Positions &pos, float scale,
                                     const std::vector<runtime::Arg> &variantArgs) {
  using runtime::Arg;
  static const uint64_t dummy = 0;
  auto buf = [&](const Tensor4 &x) {
    size_t n = extent(x);
    return n ? Arg::buffer(x.data, x.dtype, n) : Arg::buffer(&dummy, x.dtype, 1);
  };
  static const float noStats = 0;
  std::vector<Arg> args = {
      buf(t.q), buf(t.k), buf(t.v), buf(t.o), buf(t.dO),
      Arg::buffer(t.lse ? t.lse : &noStats, DType::F32, t.lse ? t.statCount : 1),
      Arg::buffer(t.delta ? t.delta : &noStats, DType::F32, t.delta ? t.statCount : 1),
      buf(t.dq), buf(t.dk), buf(t.dv),
      Arg::i32(Sq), Arg::i32(Sk), Arg::i32(Hq / Hkv), Arg::i32(Hq),
      Arg::i32(pos.qOffset), Arg::i32(pos.qStride), Arg::i32(pos.kvOffset),
      Arg::i32(pos.kvStride), Arg::i32(pos.qTotal), Arg::i32(pos.kvTotal),
      Arg::i64(t.q.strides[0]), Arg::i64(t.q.strides[1]), Arg::i64(t.q.strides[2]),
      Arg::i64(t.k.strides[0]), Arg::i64(t.k.strides[1]), Arg::i64(t.k.strides[2]),
      Arg::i64(t.v.strides[0]), Arg::i64(t.v.strides[1]), Arg::i64(t.v.strides[2]),
      Arg::i64(t.o.strides[0]), Arg::i64(t.o.strides[1]), Arg::i64(t.o.strides[2]),
      Arg::f32(scale)};
  args.insert(args.end(), variantArgs.begin(), variantArgs.end());
  return args;
}
} // namespace

namespace {
/// f32 scratch the kernels write (LSE when the caller wants none, the
/// backward's delta) in the backend's memory (device memory on cuda, whose
/// kernels take device pointers). Shared so that a stream can keep it
/// alive until its kernels have run.
std::shared_ptr<runtime::Memory> scratch(runtime::Backend backend, size_t count) {
  return std::make_shared<runtime::Memory>(backend, std::max<size_t>(count, 1) * sizeof(float));
}

/// Runs `kernel` over a logical grid now, or enqueues it on options.stream.
void launchOn(const AttentionOptions &options, const runtime::CompiledKernel &kernel,
              const runtime::LogicalGridSize &grid, std::span<const runtime::Arg> args,
              const runtime::LogicalLaunchOptions &launch = {}) {
  if (options.stream)
    runtime::launchLogical(kernel, *options.stream, grid, args, launch);
  else
    runtime::launchLogical(kernel, grid, args, launch);
}

/// How a stage reports options.progress: its logical grid has `perHead`
/// programs per (batch, head) pair of `heads`, in head order, and covers
/// [from, to) of the call's work. Without a progress callback: launches as
/// large as the limits allow.
runtime::LogicalLaunchOptions progressLaunch(const AttentionOptions &options, const char *stage,
                                             int64_t perHead, int64_t heads, double from,
                                             double to) {
  runtime::LogicalLaunchOptions launch;
  if (!options.progress)
    return launch;
  uint64_t total = uint64_t(perHead) * uint64_t(heads);
  // Pieces of at least 256 programs keep a CPU's threads busy.
  launch.maxPrograms = std::max<uint64_t>((total + kProgressPieces - 1) / kProgressPieces, 256);
  launch.afterEach = [report = options.progress, stage, perHead, heads, from,
                      to](uint64_t done, uint64_t all) {
    AttentionProgress p;
    p.stage = stage;
    p.headsDone = int64_t(done / uint64_t(perHead)), p.heads = heads;
    p.fraction = from + (to - from) * double(done) / double(all);
    report(p);
  };
  return launch;
}

/// Keeps a call's temporaries alive until options.stream has run its
/// kernels (without a stream the call waited for them already). Hands them
/// to the stream when the call ends, normally or by an exception: once one
/// kernel is enqueued they must outlive it, whatever fails after it.
class RetainOnExit {
public:
  explicit RetainOnExit(const AttentionOptions &options) : stream_(options.stream) {}
  RetainOnExit(const RetainOnExit &) = delete;
  RetainOnExit &operator=(const RetainOnExit &) = delete;
  void add(std::shared_ptr<const void> object) {
    if (stream_ && object)
      objects_.push_back(std::move(object));
  }
  ~RetainOnExit() {
    for (std::shared_ptr<const void> &object : objects_) {
      try {
        stream_->retainUntilDone(std::move(object));
      } catch (...) {
        // A destructor may be running during unwinding and must not throw;
        // waiting for the stream makes freeing the object safe instead.
        try {
          stream_->synchronize();
        } catch (...) {
          // The stream failed: the error surfaces from its next use.
        }
      }
    }
  }

private:
  runtime::Stream *stream_;
  std::vector<std::shared_ptr<const void>> objects_;
};
} // namespace

struct Checked {
  int64_t B, Sq, Sk, Hq, Hkv, D;
  runtime::Backend backend;
  AttentionConfig config;
  float scale;
  Positions positions;
};

namespace {
/// Every token of a tensor of `seqlen` tokens must map inside the global
/// sequence, and positions must fit the kernels' i32 arithmetic.
void checkPositions(const TokenPositions &p, int64_t seqlen, const char *name) {
  int64_t total = p.total.value_or(seqlen);
  if (p.offset < 0 || p.stride < 1 || total < 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: {} positions need offset >= 0, stride >= 1 and total >= "
                            "0; got offset {}, stride {}, total {}",
                            name, p.offset, p.stride, total));
  if (total > INT32_MAX || p.stride > INT32_MAX)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: {} positions exceed 2^31 - 1 (stride {}, total {})", name,
                            p.stride, total));
  if (seqlen > 0 && p.offset + (seqlen - 1) * p.stride >= total)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: {} token {} is at position {} + {} * {} = {}, outside the "
                            "sequence of {} tokens",
                            name, seqlen - 1, p.offset, seqlen - 1, p.stride,
                            p.offset + (seqlen - 1) * p.stride, total));
}
} // namespace

/// Validates q, k, v, out and options; throws InvalidArgument naming the
/// offending shape, dtype, head dim or stride.
Checked checkAttention(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                       const AttentionOptions &options) {
  requireValid(q, "q");
  requireValid(k, "k");
  requireValid(v, "v");
  requireValid(out, "out");
  if (k.dtype != q.dtype || v.dtype != q.dtype || (out.dtype != q.dtype && out.dtype != DType::F32))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: dtypes differ: q {}, k {}, v {}, out {} (k and v need q's "
                            "dtype; out q's or f32)",
                            dtypeName(q.dtype), dtypeName(k.dtype), dtypeName(v.dtype),
                            dtypeName(out.dtype)));
  detail::requireHeadsAndHeadDim("attention", q, k);
  if (k.shape != v.shape)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: k {} and v {} shapes differ", shapeText(k), shapeText(v)));
  if (out.shape != q.shape)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: out {} must have q's shape {}", shapeText(out),
                            shapeText(q)));
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
  requireSupportedHeadDim("attention", D, backend, q.dtype);
  for (int64_t s : {Sq, Sk})
    if (s > INT32_MAX)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention: seqlen {} exceeds 2^31 - 1", s));
  AttentionConfig config =
      resolveAttentionConfig(options, AttentionPass::Forward, q.dtype, D, Sq, Sk, backend);
  if (config.blockM <= 0 || config.blockN <= 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: block sizes must be positive, got {}x{}", config.blockM,
                            config.blockN));
  float scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(D)));
  if (!std::isfinite(scale))
    throw Error(ErrorCode::InvalidArgument, fmt::format("attention: scale {} is not finite", scale));
  checkPositions(options.queryPositions, Sq, "query");
  checkPositions(options.keyPositions, Sk, "key");
  const TokenPositions &qp = options.queryPositions, &kp = options.keyPositions;
  Positions positions{qp.offset, qp.stride, qp.total.value_or(Sq),
                      kp.offset, kp.stride, kp.total.value_or(Sk)};
  return {B, Sq, Sk, Hq, Hkv, D, backend, config, scale, positions};
}

namespace {
/// Classifies every tile with blockMaskKernel and builds the lists the
/// block-mask kernels walk (layouts in BlockMask.h).
std::shared_ptr<const BlockMask>
buildBlockMask(int64_t B, int64_t Sq, int64_t Sk, int64_t Hq, int64_t Hkv,
               const AttentionConfig &config, const AttentionVariant &variant,
               const std::vector<runtime::Arg> &variantArgs, const Positions &pos,
               runtime::Backend backend) {
  auto mask = std::make_shared<BlockMask>();
  BlockMask &bm = *mask;
  int64_t BM = config.blockM, BN = config.blockN;
  int64_t nQB = (Sq + BM - 1) / BM, nKB = (Sk + BN - 1) / BN, group = Hq / Hkv;
  bm.blockM = BM, bm.blockN = BN, bm.batch = B, bm.headsQ = Hq, bm.headsKv = Hkv;
  bm.seqlenQ = Sq, bm.seqlenK = Sk, bm.numQueryBlocks = nQB, bm.numKeyBlocks = nKB;
  bm.variantName = variantIdentity(variant);
  bm.queryPositions = {pos.qOffset, pos.qStride, pos.qTotal};
  bm.keyPositions = {pos.kvOffset, pos.kvStride, pos.kvTotal};
  bm.onCuda = backend == runtime::Backend::Cuda;
  size_t tiles = size_t(B * Hq * nQB * nKB);
  std::vector<int32_t> kinds(std::max<size_t>(tiles, 1), 0);
  if (tiles > 0) {
    // The classification reads no q/k/v: pass a dummy for every tensor.
    static const float dummy = 0;
    Tensor4 none{&dummy, DType::F32, {0, 0, 0, 0}, {0, 0, 0, 1}};
    KernelTensors t{none, none, none, none, none, none, none, none, nullptr, nullptr, 1};
    auto args =
        kernelArgs(t, Sq, Sk, Hq, Hkv, pos, 1.0f, variantKernelArgs(variant, variantArgs));
    auto kernel = runtime::compile(
        attentionKernel(Stage::Classify, DType::F32, DType::F32, false, 0, variant),
        specFor(config, backend));
    runtime::LogicalGridSize grid{nQB, nKB, B * Hq};
    if (bm.onCuda) {
      cuda::DeviceBuffer out(tiles * sizeof(int32_t));
      args.push_back(runtime::Arg::buffer(reinterpret_cast<const void *>(out.ptr()),
                                          DType::I32, tiles));
      runtime::launchLogical(*kernel, grid, args);
      out.copyToHost(kinds.data(), tiles * sizeof(int32_t));
    } else {
      args.push_back(runtime::Arg::buffer(kinds.data(), DType::I32, tiles));
      runtime::launchLogical(*kernel, grid, args);
    }
  }
  bm.kinds.assign(kinds.begin(), kinds.begin() + tiles);
  // Forward/dQ lists: per (batch, query head, query block), key blocks.
  bm.kvCounts.assign(std::max<size_t>(size_t(2 * B * Hq * nQB), 1), 0);
  bm.kvIndices.assign(std::max<size_t>(2 * tiles, 1), 0);
  for (int64_t l = 0; l < B * Hq * nQB; ++l)
    for (int64_t n = 0; n < nKB; ++n)
      if (int32_t k = kinds[size_t(l * nKB + n)]) {
        int64_t list = 2 * l + (k - 1);
        bm.kvIndices[size_t(list * nKB + bm.kvCounts[size_t(list)]++)] = int32_t(n);
      }
  // dK/dV lists: per (batch, kv head, key block), the (query head of the
  // group, query block) pairs.
  int64_t capacity = group * nQB;
  bm.qCounts.assign(std::max<size_t>(size_t(2 * B * Hkv * nKB), 1), 0);
  bm.qIndices.assign(std::max<size_t>(2 * tiles, 1), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t hk = 0; hk < Hkv; ++hk)
      for (int64_t n = 0; n < nKB; ++n)
        for (int64_t g = 0; g < group; ++g)
          for (int64_t m = 0; m < nQB; ++m)
            if (int32_t k = kinds[size_t(((b * Hq + hk * group + g) * nQB + m) * nKB + n)]) {
              int64_t list = 2 * ((b * Hkv + hk) * nKB + n) + (k - 1);
              bm.qIndices[size_t(list * capacity + bm.qCounts[size_t(list)]++)] =
                  int32_t(g * nQB + m);
            }
  if (bm.onCuda) {
    auto storage = std::make_shared<std::vector<cuda::DeviceBuffer>>();
    storage->reserve(4);
    const std::vector<int32_t> *lists[] = {&bm.kvCounts, &bm.kvIndices, &bm.qCounts,
                                           &bm.qIndices};
    for (int i = 0; i < 4; ++i) {
      size_t bytes = lists[i]->size() * sizeof(int32_t);
      storage->emplace_back(bytes);
      storage->back().copyFromHost(lists[i]->data(), bytes);
      bm.devicePtrs[size_t(i)] = reinterpret_cast<const void *>(storage->back().ptr());
    }
    bm.deviceStorage = storage;
  }
  return mask;
}

/// The lists, in declareArgs' order after the variant tensors.
std::vector<runtime::Arg> blockMaskArgs(const BlockMask &bm) {
  const std::vector<int32_t> *lists[] = {&bm.kvCounts, &bm.kvIndices, &bm.qCounts,
                                         &bm.qIndices};
  std::vector<runtime::Arg> args;
  for (size_t i = 0; i < 4; ++i)
    args.push_back(runtime::Arg::buffer(bm.onCuda ? bm.devicePtrs[i] : lists[i]->data(),
                                        DType::I32, lists[i]->size()));
  return args;
}

std::string positionsStr(const TokenPositions &p) {
  return fmt::format("offset {}, stride {}, total {}", p.offset, p.stride, p.total.value_or(-1));
}

/// The block mask a call uses: options.blockMask (checked against the call;
/// its block sizes become the config's unless options.config is set), one
/// built for this call when the variant has a mask_mod, or none.
std::shared_ptr<const BlockMask>
blockMaskFor(const AttentionOptions &options, const AttentionVariant &variant, int64_t B,
             int64_t Sq, int64_t Sk, int64_t Hq, int64_t Hkv, runtime::Backend backend,
             const Positions &pos, AttentionConfig &config) {
  const std::shared_ptr<const BlockMask> &bm = options.blockMask;
  if (!bm) {
    if (!variant.maskMod || !options.autoBlockMask)
      return nullptr;
    return buildBlockMask(B, Sq, Sk, Hq, Hkv, config, variant, options.variantArgs, pos,
                          backend);
  }
  if (!options.config)
    config.blockM = bm->blockM, config.blockN = bm->blockN;
  if (bm->blockM != config.blockM || bm->blockN != config.blockN)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: block mask blocks {}x{} differ from the kernel config's "
                            "blockM x blockN {}x{}",
                            bm->blockM, bm->blockN, config.blockM, config.blockN));
  if (bm->batch != B || bm->seqlenQ != Sq || bm->seqlenK != Sk || bm->headsQ != Hq ||
      bm->headsKv != Hkv)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: block mask is for batch {}, seqlen_q {}, seqlen_k {}, "
                            "heads {}/{}; the call has batch {}, seqlen_q {}, seqlen_k {}, "
                            "heads {}/{}",
                            bm->batch, bm->seqlenQ, bm->seqlenK, bm->headsQ, bm->headsKv, B, Sq,
                            Sk, Hq, Hkv));
  if (bm->variantName != variantIdentity(variant))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: block mask is for variant '{}'; the call uses '{}'",
                            bm->variantName, variantIdentity(variant)));
  TokenPositions qp{pos.qOffset, pos.qStride, pos.qTotal},
      kp{pos.kvOffset, pos.kvStride, pos.kvTotal};
  auto same = [](const TokenPositions &a, const TokenPositions &b) {
    return a.offset == b.offset && a.stride == b.stride && a.total == b.total;
  };
  if (!same(bm->queryPositions, qp) || !same(bm->keyPositions, kp))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: block mask is for query positions ({}) and key positions "
                            "({}); the call has ({}) and ({})",
                            positionsStr(bm->queryPositions), positionsStr(bm->keyPositions),
                            positionsStr(qp), positionsStr(kp)));
  if (bm->onCuda != (backend == runtime::Backend::Cuda))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention: block mask lives on the {}; the call runs on the {} "
                            "backend",
                            bm->onCuda ? "cuda device" : "host", runtime::backendName(backend)));
  return bm;
}
} // namespace

int64_t BlockMask::count(BlockKind k) const {
  return int64_t(std::count(kinds.begin(), kinds.end(), int8_t(k)));
}

std::shared_ptr<const BlockMask> createBlockMask(const std::array<int64_t, 4> &qShape,
                                                 const std::array<int64_t, 4> &kShape,
                                                 const AttentionOptions &options) {
  for (const auto *shape : {&qShape, &kShape})
    for (int i = 0; i < 4; ++i)
      if ((*shape)[size_t(i)] < 0)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("createBlockMask: {} has negative {} ({})",
                                shape == &qShape ? "q" : "k", kNames[i], (*shape)[size_t(i)]));
  int64_t B = qShape[0], Sq = qShape[1], Hq = qShape[2], Sk = kShape[1], Hkv = kShape[2];
  if (kShape[0] != B)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("createBlockMask: batch of q ({}) and k ({}) differ", B, kShape[0]));
  if (Hkv == 0 || Hq % Hkv != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("createBlockMask: heads_q ({}) is not divisible by heads_kv ({})", Hq,
                            Hkv));
  for (int64_t s : {Sq, Sk})
    if (s > INT32_MAX)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("createBlockMask: seqlen {} exceeds 2^31 - 1", s));
  runtime::Backend backend = runtime::resolveBackend(options.backend);
  AttentionConfig config = options.config.value_or(defaultAttentionConfig(qShape[3], backend));
  if (config.blockM <= 0 || config.blockN <= 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("createBlockMask: block sizes must be positive, got {}x{}",
                            config.blockM, config.blockN));
  checkPositions(options.queryPositions, Sq, "query");
  checkPositions(options.keyPositions, Sk, "key");
  AttentionVariant variant = effectiveVariant(options);
  checkVariantArgs(variant, options.variantArgs);
  const TokenPositions &qp = options.queryPositions, &kp = options.keyPositions;
  Positions pos{qp.offset, qp.stride, qp.total.value_or(Sq),
                kp.offset, kp.stride, kp.total.value_or(Sk)};
  return buildBlockMask(B, Sq, Sk, Hq, Hkv, config, variant, options.variantArgs, pos, backend);
}


void attentionForward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                      float *lse, const AttentionOptions &options) {
  auto [B, Sq, Sk, Hq, Hkv, D, backend, config, scale, positions] =
      checkAttention(q, k, v, out, options);
  if (B == 0 || Sq == 0 || Hq == 0)
    return;
  AttentionVariant variant = effectiveVariant(options);
  checkVariantArgs(variant, options.variantArgs);
  RetainOnExit temporaries(options);
  std::shared_ptr<runtime::Memory> lseScratch;
  if (!lse)
    lse = (lseScratch = scratch(backend, size_t(B * Hq * Sq)))->as<float>();
  temporaries.add(lseScratch);
  auto blockMask =
      blockMaskFor(options, variant, B, Sq, Sk, Hq, Hkv, backend, positions, config);
  temporaries.add(blockMask);
  runtime::Specialization spec = specFor(config, backend, options.cpuThreads);
  auto kernel = runtime::compile(attentionKernel(Stage::Forward, q.dtype, out.dtype, false, D,
                                                 variant, bool(blockMask), bool(options.sinks)),
                                 spec);
  KernelTensors t{q, k, v, out, q, q, k, v, lse, nullptr, size_t(B * Hq * Sq)};
  auto args = kernelArgs(t, Sq, Sk, Hq, Hkv, positions, scale,
                         variantKernelArgs(variant, options.variantArgs));
  if (options.sinks)
    args.push_back(runtime::Arg::buffer(options.sinks, DType::F32, size_t(Hq)));
  if (blockMask) {
    auto extra = blockMaskArgs(*blockMask);
    args.insert(args.end(), extra.begin(), extra.end());
  }
  int64_t qBlocks = (Sq + config.blockM - 1) / config.blockM;
  launchOn(options, *kernel, {qBlocks, B * Hq, 1}, args,
           progressLaunch(options, "forward", qBlocks, B * Hq, 0, 1));
}

} // namespace loom::ops

namespace loom::ops {
namespace {
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

/// The learnable inputs of a backward call, checked: the names of the
/// variant's differentiable tensors (options.variantGrads holds one f32
/// buffer per name, the size of its tensor), and dsinks only with sinks.
std::vector<std::string> checkLearnableInputs(const AttentionVariant &variant,
                                              const AttentionOptions &options) {
  if (options.dsinks && !options.sinks)
    throw Error(ErrorCode::InvalidArgument,
                "attention backward: options.dsinks is set but options.sinks is not");
  std::vector<std::string> names;
  std::vector<size_t> sizes;
  for (size_t i = 0; i < variant.tensors.size(); ++i)
    if (variant.tensors[i].requiresGrad) {
      names.push_back(variant.tensors[i].name);
      sizes.push_back(options.variantArgs[i].numElements());
    }
  if (options.variantGrads.size() != names.size()) {
    std::string list;
    for (const std::string &n : names)
      list += (list.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: variant '{}' has {} differentiable tensor(s) "
                            "({}); options.variantGrads has {} buffer(s)",
                            variant.name, names.size(), list.empty() ? "none" : list,
                            options.variantGrads.size()));
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const runtime::Arg &g = options.variantGrads[i];
    if (g.kind() != runtime::Arg::Kind::Buffer || g.dtype() != DType::F32 ||
        g.numElements() != sizes[i])
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention backward: the gradient of variant tensor '{}' must be "
                              "an f32 buffer of {} elements (its tensor's), got {}",
                              names[i], sizes[i], g.describe()));
  }
  return names;
}

/// Per-pair scratch of the dQ kernel for each differentiable variant tensor
/// (layout (batch, heads_q, seqlen_q, seqlen_k)), in the backend's memory:
/// d loss / d (value read) and the element read (the tensor's element
/// count: none), summed per element on the same stream by SumByKey's
/// kernels, in pair order, so the gradient is deterministic.
class PairGradients {
public:
  PairGradients(runtime::Backend backend, const std::vector<std::string> &names,
                const std::vector<size_t> &sizes, int64_t pairs, unsigned cpuThreads)
      : names_(names) {
    if (pairs > kSumByKeyMaxCount)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention backward: gradients of variant tensor '{}' are summed "
                              "over batch x heads_q x seqlen_q x seqlen_k = {} pairs, more than "
                              "{}",
                              names.front(), pairs, kSumByKeyMaxCount));
    for (size_t i = 0; i < names.size(); ++i)
      if (int64_t(sizes[i]) > kSumByKeyMaxCount)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("attention backward: variant tensor '{}' has {} elements; its "
                                "gradient takes at most {}",
                                names[i], sizes[i], kSumByKeyMaxCount));
    size_t n = size_t(std::max<int64_t>(pairs, 1));
    for (size_t i = 0; i < names.size(); ++i) {
      grads_.emplace_back(backend, n * sizeof(float));
      keys_.emplace_back(backend, n * sizeof(int32_t));
      sizes_.push_back(sizes[i]);
    }
    // One sorter's scratch serves every tensor in turn (one stream).
    if (!names.empty())
      sorter_ = std::make_unique<SumByKey>(backend, pairs, cpuThreads);
  }
  /// Marks every pair "no element" (the dQ kernel skips hidden blocks).
  void clear(runtime::Stream *stream) {
    for (size_t i = 0; i < keys_.size(); ++i)
      sorter_->fill(stream, keys_[i].as<int32_t>(), int32_t(sizes_[i]));
  }
  /// The dQ kernel's arguments after the shared ones: (grad, key, element
  /// count) per tensor.
  void appendArgs(std::vector<runtime::Arg> &args) const {
    for (size_t i = 0; i < grads_.size(); ++i) {
      size_t n = grads_[i].bytes() / sizeof(float);
      args.push_back(runtime::Arg::buffer(grads_[i].data(), DType::F32, n));
      args.push_back(runtime::Arg::buffer(keys_[i].data(), DType::I32, n));
      args.push_back(runtime::Arg::i32(int32_t(sizes_[i])));
    }
  }
  /// Writes (or, with `accumulate`, adds) each tensor's gradient to `out`,
  /// on `stream` (null: now).
  void reduceInto(runtime::Stream *stream, const std::vector<runtime::Arg> &out,
                  bool accumulate) {
    for (size_t i = 0; i < grads_.size(); ++i)
      sorter_->run(stream, keys_[i].as<int32_t>(), grads_[i].as<float>(),
                   static_cast<float *>(const_cast<void *>(out[i].data())), int64_t(sizes_[i]),
                   accumulate,
                   fmt::format("attention backward: score_mod read variant tensor '{}' outside "
                               "its {} elements (at a visible query/key pair); its gradient "
                               "is undefined",
                               names_[i], sizes_[i]));
  }

private:
  std::vector<std::string> names_;
  std::vector<runtime::Memory> grads_, keys_;
  std::vector<size_t> sizes_;
  std::unique_ptr<SumByKey> sorter_;
};

std::shared_ptr<const runtime::CompiledKernel>
sinkGradientKernel(bool accumulate, const runtime::Specialization &spec) {
  static const Kernel kernels[2] = {attentionSinkGradientKernel(false),
                                    attentionSinkGradientKernel(true)};
  return runtime::compile(kernels[accumulate], spec);
}

/// `t` must have `like`'s shape, and its dtype unless `dtype` names another.
void requireLike(const Tensor4 &t, const Tensor4 &like, const char *name, const char *likeName,
                 std::optional<DType> dtype = {}) {
  requireValid(t, name);
  if (t.shape != like.shape)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: {} {} must have {}'s shape {}", name, shapeText(t),
                            likeName, shapeText(like)));
  if (t.dtype != dtype.value_or(like.dtype))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: {} has dtype {}, {} has {}", name,
                            dtypeName(t.dtype), likeName, dtypeName(like.dtype)));
}
} // namespace

void attentionBackward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                       const float *lse, const Tensor4 &dOut, const Tensor4 &dq,
                       const Tensor4 &dk, const Tensor4 &dv, const AttentionOptions &options) {
  auto [B, Sq, Sk, Hq, Hkv, D, backend, forwardConfig, scale, positions] =
      checkAttention(q, k, v, out, options);
  AttentionConfig config =
      resolveAttentionConfig(options, AttentionPass::Backward, q.dtype, D, Sq, Sk, backend);
  requireLike(out, q, "out", "q");
  requireLike(dOut, q, "dout", "q");
  requireValid(dq, "dq");
  DType gradDtype = dq.dtype;
  if (gradDtype != q.dtype && gradDtype != DType::F32)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: dq has dtype {}; expected q's ({}) or f32",
                            dtypeName(gradDtype), dtypeName(q.dtype)));
  if (options.accumulateGradients && gradDtype != DType::F32)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: accumulating gradients needs f32 dq, dk, dv; "
                            "dq is {}",
                            dtypeName(gradDtype)));
  requireLike(dq, q, "dq", "q", gradDtype);
  requireLike(dk, k, "dk", "k", gradDtype);
  requireLike(dv, v, "dv", "v", gradDtype);
  // No query rows (empty batch or sequence): no LSE to read.
  size_t rows = size_t(B * Hq * Sq);
  if (!lse && rows > 0)
    throw Error(ErrorCode::InvalidArgument, "attention backward: lse is a null pointer");
  if (config.blockM <= 0 || config.blockN <= 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: block sizes must be positive, got {}x{}",
                            config.blockM, config.blockN));
  // The kernels read B * Hq * Sq floats of a caller's delta, unchecked.
  if (options.backwardDelta && options.backwardDeltaCount != size_t(B * Hq * Sq))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward: options.backwardDelta holds {} floats "
                            "(backwardDeltaCount); the call needs batch x heads_q x seqlen_q = "
                            "{} x {} x {} = {}",
                            options.backwardDeltaCount, B, Hq, Sq, B * Hq * Sq));
  // An empty batch launches no attention kernel but still runs to the end:
  // dsinks and the variant tensors' gradients are then zero (or unchanged
  // when accumulating), as they are for an empty sequence.
  // Device tensors are not repacked on the host, nor are tensors of an
  // asynchronous call: the gradients (and dO) must come in the layout the
  // kernels use.
  if (backend == runtime::Backend::Cuda || options.stream)
    for (auto [t, like, name, likeName] :
         {std::tuple{&dOut, &out, "dout", "out"}, {&dq, &q, "dq", "q"}, {&dk, &k, "dk", "k"},
          {&dv, &v, "dv", "v"}})
      if (t->strides != like->strides)
        throw Error(ErrorCode::Unsupported,
                    fmt::format("attention backward on the {}: {} must have {}'s "
                                "strides (device tensors are not repacked)",
                                options.stream ? "a stream" : "cuda backend", name, likeName));
  std::vector<uint8_t> dOutStore, dqStore, dkStore, dvStore;
  Tensor4 dO = withStrides(dOut, out, dOutStore, true);
  // Gradients use q's/k's/v's strides; a repacked accumulator starts from
  // the caller's values.
  bool acc = options.accumulateGradients;
  Tensor4 dQ = withStrides(dq, q, dqStore, acc), dK = withStrides(dk, k, dkStore, acc),
          dV = withStrides(dv, v, dvStore, acc);
  RetainOnExit temporaries(options);
  std::shared_ptr<runtime::Memory> deltaScratch;
  float *delta = const_cast<float *>(options.backwardDelta);
  if (!delta)
    delta = (deltaScratch = scratch(backend, rows))->as<float>();
  temporaries.add(deltaScratch);
  std::shared_ptr<runtime::Memory> lseScratch; // never read: there are no rows
  if (!lse)
    lse = (lseScratch = scratch(backend, 1))->as<float>();
  temporaries.add(lseScratch);
  AttentionVariant variant = effectiveVariant(options);
  checkVariantArgs(variant, options.variantArgs);
  std::vector<std::string> learnable = checkLearnableInputs(variant, options);
  auto blockMask =
      blockMaskFor(options, variant, B, Sq, Sk, Hq, Hkv, backend, positions, config);
  temporaries.add(blockMask);
  runtime::Specialization spec = specFor(config, backend, options.cpuThreads);
  size_t statCount = size_t(std::max<int64_t>(B * Hq * Sq, 1));
  KernelTensors t{q, k, v, out, dO, dQ, dK, dV, lse, delta, statCount};
  std::vector<runtime::Arg> variantArgs = variantKernelArgs(variant, options.variantArgs);
  auto args = kernelArgs(t, Sq, Sk, Hq, Hkv, positions, scale, variantArgs);
  size_t baseArgs = args.size() - variantArgs.size();
  if (blockMask) {
    auto extra = blockMaskArgs(*blockMask);
    args.insert(args.end(), extra.begin(), extra.end());
  }
  // Every stage is compiled before the first launch, so a compile error
  // cannot leave a partial backward queued on options.stream.
  struct StageLaunch {
    Stage stage;
    runtime::LogicalGridSize grid;
    std::shared_ptr<const runtime::CompiledKernel> kernel;
  };
  std::vector<StageLaunch> stages;
  int64_t qBlocks = (Sq + config.blockM - 1) / config.blockM;
  int64_t kBlocks = (Sk + config.blockN - 1) / config.blockN;
  // The CPU runs the single-pass backward (5 block matmuls per tile pair,
  // not 7) with G groups of key blocks, each with its own f32 dQ partial of
  // dq's size: about two programs per thread, never more groups than key
  // blocks nor more than kMaxDqGroups partials. Where that leaves fewer
  // programs than threads (few key blocks, or few heads on many cores),
  // the dK/dV and dQ kernels keep every thread busy instead.
  constexpr int64_t kMaxDqGroups = 4;
  int64_t threads = options.cpuThreads ? options.cpuThreads : runtime::defaultCpuThreads();
  int64_t groups = B * Hkv > 0 && kBlocks > 0
                       ? std::clamp<int64_t>((2 * threads + B * Hkv - 1) / (B * Hkv), 1,
                                             std::min(kBlocks, kMaxDqGroups))
                       : 0;
  bool fused = backend == runtime::Backend::Cpu && learnable.empty() && B > 0 && Sq > 0 &&
               Sk > 0 && groups * B * Hkv >= threads;
  std::shared_ptr<runtime::Memory> dqPartial;
  if (fused) {
    dqPartial = scratch(backend, size_t(groups * B * Hq * Sq * D));
    temporaries.add(dqPartial);
    // Zeroed in stream order, like the kernels that add into it.
    auto zero = [mem = dqPartial.get()] { std::memset(mem->data(), 0, mem->bytes()); };
    if (options.stream)
      options.stream->submit([zero](const runtime::StreamContext &) { zero(); });
    else
      zero();
  }
  if (B > 0 && Sq > 0 && !options.backwardDelta)
    stages.push_back({Stage::Preprocess, {qBlocks, B * Hq, 1}, nullptr});
  if (fused) {
    stages.push_back({Stage::Fused, {groups, B * Hkv, 1}, nullptr});
    stages.push_back({Stage::DqReduce, {qBlocks, B * Hq, 1}, nullptr});
  } else {
    if (B > 0 && Sq > 0)
      stages.push_back({Stage::Dq, {qBlocks, B * Hq, 1}, nullptr});
    if (B > 0 && Sk > 0)
      stages.push_back({Stage::DkDv, {kBlocks, B * Hkv, 1}, nullptr});
  }
  for (StageLaunch &l : stages) {
    bool masked = (l.stage == Stage::Dq || l.stage == Stage::DkDv || l.stage == Stage::Fused) &&
                  blockMask;
    l.kernel = runtime::compile(
        attentionKernel(l.stage, q.dtype, gradDtype, acc, D, variant, masked), spec);
  }
  if (options.dsinks) // compiled before the first launch, like the stages
    sinkGradientKernel(acc, spec);
  // Differentiable variant tensors: the dQ kernel writes every pair's
  // contribution and the element it read; SumByKey's kernels (compiled
  // here, before the first launch) sum them per element after it.
  std::vector<size_t> learnableSizes;
  for (const runtime::Arg &g : options.variantGrads)
    learnableSizes.push_back(g.numElements());
  std::shared_ptr<PairGradients> pairs;
  if (!learnable.empty()) {
    pairs = std::make_shared<PairGradients>(backend, learnable, learnableSizes, B * Hq * Sq * Sk,
                                            options.cpuThreads);
    temporaries.add(pairs);
  }
  for (const StageLaunch &l : stages) {
    // The preprocess and the dQ reduction read no variant tensors or block
    // mask; they take the same arguments minus them.
    bool base = l.stage == Stage::Preprocess || l.stage == Stage::DqReduce;
    std::vector<runtime::Arg> stageArgs(args.begin(), args.begin() + (base ? baseArgs : args.size()));
    if (l.stage == Stage::Dq && pairs) {
      pairs->clear(options.stream);
      pairs->appendArgs(stageArgs);
    }
    if (l.stage == Stage::Fused || l.stage == Stage::DqReduce)
      stageArgs.push_back(runtime::Arg::buffer(dqPartial->as<float>(), DType::F32,
                                               dqPartial->bytes() / sizeof(float)));
    if (l.stage == Stage::DqReduce)
      stageArgs.push_back(runtime::Arg::i32(int32_t(groups)));
    // dQ does 3 of the backward's 7 block matmuls per tile, dK/dV 4.
    runtime::LogicalLaunchOptions launch =
        l.stage == Stage::Dq     ? progressLaunch(options, "dq", l.grid[0], l.grid[1], 0, 3.0 / 7)
        : l.stage == Stage::DkDv ? progressLaunch(options, "dkdv", l.grid[0], l.grid[1],
                                                  B > 0 && Sq > 0 ? 3.0 / 7 : 0, 1)
        : l.stage == Stage::Fused ? progressLaunch(options, "backward", l.grid[0], l.grid[1], 0, 1)
                                  : runtime::LogicalLaunchOptions{};
    launchOn(options, *l.kernel, l.grid, stageArgs, launch);
  }
  if (options.dsinks) {
    AttentionOptions sinkOptions = options;
    sinkOptions.backend = backend;
    sinkOptions.config = config;
    attentionSinkGradient(lse, delta, options.sinks, options.dsinks, B, Hq, Sq, sinkOptions);
  }
  if (pairs)
    pairs->reduceInto(options.stream, options.variantGrads, acc);
  copyBack(dQ, dq);
  copyBack(dK, dk);
  copyBack(dV, dv);
}

void attentionSinkGradient(const float *lse, const float *delta, const float *sinks,
                           float *dsinks, int64_t B, int64_t Hq, int64_t Sq,
                           const AttentionOptions &options) {
  if (!lse || !delta || !sinks || !dsinks)
    throw Error(ErrorCode::InvalidArgument,
                "attention sink gradient: lse, delta, sinks and dsinks must not be null");
  if (B < 0 || Hq < 0 || Sq < 0 || Sq > INT32_MAX || B * Hq > INT32_MAX)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention sink gradient: bad batch {}, heads {} or seqlen {}", B, Hq,
                            Sq));
  if (Hq == 0)
    return;
  runtime::Backend backend = runtime::resolveBackend(options.backend);
  AttentionConfig config = options.config.value_or(defaultAttentionBackwardConfig(64, backend));
  size_t rows = size_t(std::max<int64_t>(B * Hq * Sq, 1));
  std::vector<runtime::Arg> args = {runtime::Arg::buffer(lse, DType::F32, rows),
                                    runtime::Arg::buffer(delta, DType::F32, rows),
                                    runtime::Arg::buffer(sinks, DType::F32, size_t(Hq)),
                                    runtime::Arg::buffer(dsinks, DType::F32, size_t(Hq)),
                                    runtime::Arg::i32(int32_t(B)),
                                    runtime::Arg::i32(int32_t(Sq)),
                                    runtime::Arg::i32(int32_t(Hq))};
  launchOn(options, *sinkGradientKernel(options.accumulateGradients, specFor(config, backend, options.cpuThreads)),
           {Hq, 1, 1}, args);
}

void attentionBackwardDelta(const Tensor4 &out, const Tensor4 &dOut, float *delta,
                            const AttentionOptions &options) {
  requireValid(out, "out");
  requireLike(dOut, out, "dout", "out");
  if (dOut.strides != out.strides)
    throw Error(ErrorCode::InvalidArgument,
                "attention backward delta: dout must have out's strides");
  auto [B, Sq, Hq, D] = out.shape;
  if (!delta && B * Hq * Sq > 0)
    throw Error(ErrorCode::InvalidArgument, "attention backward delta: delta is a null pointer");
  if (B == 0 || Sq == 0 || Hq == 0)
    return;
  runtime::Backend backend = runtime::resolveBackend(options.backend);
  requireSupportedHeadDim("attention backward delta", D, backend, out.dtype);
  // The kernel takes seqlen as i32 (batch x heads past the GPU's grid y
  // go through the logical grid).
  if (Sq > INT32_MAX)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward delta: seqlen {} exceeds 2^31 - 1", Sq));
  // Only the block height matters to the preprocess; the backward's.
  AttentionConfig config =
      resolveAttentionConfig(options, AttentionPass::Backward, out.dtype, D, Sq, Sq, backend);
  if (config.blockM <= 0 || config.blockN <= 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention backward delta: block sizes must be positive, got {}x{}",
                            config.blockM, config.blockN));
  // The preprocess takes every backward kernel's arguments; it reads o, dO
  // and writes delta, so the others are out (never read). Positions are
  // unused (delta has no mask).
  Positions pos{0, 1, Sq, 0, 1, Sq};
  KernelTensors t{out, out, out, out, dOut, out, out, out, delta, delta,
                  size_t(B * Hq * Sq)};
  auto args = kernelArgs(t, Sq, Sq, Hq, Hq, pos, 1.0f, {});
  auto kernel = runtime::compile(
      attentionKernel(Stage::Preprocess, out.dtype, out.dtype, false, D, AttentionVariant::none()),
      specFor(config, backend, options.cpuThreads));
  launchOn(options, *kernel, {(Sq + config.blockM - 1) / config.blockM, B * Hq, 1}, args);
}

} // namespace loom::ops
