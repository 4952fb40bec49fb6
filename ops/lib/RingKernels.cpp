//===- RingKernels.cpp - copy, merge, accumulate and fill as DSL kernels ---===//
//
// Memory-bound kernels: one program per row (copy) or row block (merge), a
// counted loop over column chunks where a row may be long (LSE rows hold a
// whole shard). Offsets are i64 so shards past 2^31 elements index safely.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/RingKernels.h"
#include "TensorText.h"

#include "loom/Support/Error.h"
#include "loom/dsl/Grid.h"
#include "loom/runtime/LogicalGrid.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <mutex>

namespace loom::ops {
using namespace loom::dsl;

Kernel copyConvertKernel(DType srcType, DType dstType) {
  return Kernel(fmt::format("tensor_copy_{}_{}", dtypeName(srcType), dtypeName(dstType)),
                [srcType, dstType](KernelBuilder &k) {
    Value src = k.pointer("src", srcType), dst = k.pointer("dst", dstType);
    Value n1 = k.scalar("n1", DType::I32), n2 = k.scalar("n2", DType::I32);
    Value n3 = k.scalar("n3", DType::I32);
    Value s0 = k.scalar("src_stride0", DType::I64), s1 = k.scalar("src_stride1", DType::I64),
          s2 = k.scalar("src_stride2", DType::I64);
    Value d0 = k.scalar("dst_stride0", DType::I64), d1 = k.scalar("dst_stride1", DType::I64),
          d2 = k.scalar("dst_stride2", DType::I64);
    int64_t block = k.constant("BLOCK");
    LogicalGrid grid(k); // (seqlen x heads, batch): batch may pass 65535
    Value p = grid.programId(0);
    Value i0 = grid.programId(1).to(DType::I64), i1 = (p / n2).to(DType::I64),
          i2 = (p % n2).to(DType::I64);
    (void)n1; // the grid covers it; passed so launches state the full shape
    Value srcBase = i0 * s0 + i1 * s1 + i2 * s2, dstBase = i0 * d0 + i1 * d1 + i2 * d2;
    Value cols = arange(0, block);
    Value chunks = (n3 + (block - 1)) / block;
    for_range(0, chunks, 1, {}, [&](Value chunk, const std::vector<Value> &) {
      Value col = chunk * block + cols;
      Value ok = col < n3;
      Value col64 = col.to(DType::I64);
      Value v = load(src, srcBase + col64, ok, 0.0);
      store(dst, dstBase + col64, srcType == dstType ? v : v.to(dstType), ok);
      return std::vector<Value>{};
    });
  });
}

Kernel mergePartialsKernel() {
  return Kernel("merge_partials_f32", [](KernelBuilder &k) {
    Value acc = k.pointer("acc", DType::F32), accLse = k.pointer("acc_lse", DType::F32);
    Value part = k.pointer("part", DType::F32), partLse = k.pointer("part_lse", DType::F32);
    Value rows = k.scalar("rows", DType::I32), dim = k.scalar("dim", DType::I32);
    Value accBh = k.scalar("acc_bh_stride", DType::I64),
          accRow = k.scalar("acc_row_stride", DType::I64),
          accLseBh = k.scalar("acc_lse_bh_stride", DType::I64);
    Value partBh = k.scalar("part_bh_stride", DType::I64),
          partRow = k.scalar("part_row_stride", DType::I64),
          partLseBh = k.scalar("part_lse_bh_stride", DType::I64);
    int64_t BR = k.constant("BLOCK_R"), BD = k.constant("BLOCK_D");
    LogicalGrid grid(k); // (row blocks, batch x heads): batch x heads may pass 65535
    Value bh = grid.programId(1).to(DType::I64);
    Value r = grid.programId(0) * BR + arange(0, BR);
    Value rowOk = r < rows;
    Value r64 = r.to(DType::I64);
    Value c = arange(0, BD);
    Value c64 = expand_dims(c.to(DType::I64), 0);
    Value mask = expand_dims(rowOk, 1) & expand_dims(c < dim, 0);
    Value accLseOffs = bh * accLseBh + r64;
    Value L = load(accLse, accLseOffs, rowOk, -INFINITY);
    Value lb = load(partLse, bh * partLseBh + r64, rowOk, -INFINITY);
    Value oOffs = bh * accBh + expand_dims(r64, 1) * accRow + c64;
    Value o = load(acc, oOffs, mask, 0.0);
    Value ob = load(part, bh * partBh + expand_dims(r64, 1) * partRow + c64, mask, 0.0);
    // With x = lb - L and e = exp(-|x|) in (0, 1], nothing overflows:
    //   sigmoid(x)       = x >= 0 ? 1 / (1 + e) : e / (1 + e)
    //   sigmoid(-x)      = x >= 0 ? e / (1 + e) : 1 / (1 + e)
    //   logsigmoid(-x)   = min(-x, 0) - log1p(e)
    // log1p(e) = log(u) * e / (u - 1) with u = 1 + e (exact where u rounds
    // to 1) keeps full precision for tiny e. Rows where L or lb is -inf give
    // NaN here; the selects below never pick them. A NaN L or lb is not
    // -inf, so it reaches both results (see Merge.h).
    Value x = lb - L;
    Value e = exp(-abs(x));
    Value u = 1.0 + e;
    Value big = 1.0 / u, small = e / u;
    Value w = where(x >= 0.0, big, small), wAcc = where(x >= 0.0, small, big);
    Value log1pE = where(u == 1.0, e, log(u) * e / (u - 1.0));
    Value merged = L - (minimum(-x, 0.0) - log1pE);
    Value skip = lb == -INFINITY, first = L == -INFINITY;
    Value newL = where(skip, L, where(first, lb, merged));
    Value newO = where(expand_dims(skip, 1), o,
                       where(expand_dims(first, 1), ob,
                             expand_dims(wAcc, 1) * o + expand_dims(w, 1) * ob));
    store(acc, oOffs, newO, mask);
    store(accLse, accLseOffs, newL, rowOk);
  });
}

Kernel accumulateKernel() {
  return Kernel("accumulate_f32", [](KernelBuilder &k) {
    Value y = k.pointer("y", DType::F32), x = k.pointer("x", DType::F32);
    Value n = k.scalar("n", DType::I64);
    int64_t block = k.constant("BLOCK");
    Value offs = program_id(0).to(DType::I64) * block + arange(0, block).to(DType::I64);
    Value ok = offs < n;
    store(y, offs, load(y, offs, ok, 0.0) + load(x, offs, ok, 0.0), ok);
  });
}

Kernel fillKernel() {
  return Kernel("fill_f32", [](KernelBuilder &k) {
    Value y = k.pointer("y", DType::F32);
    Value n = k.scalar("n", DType::I64);
    Value value = k.scalar("value", DType::F32);
    int64_t block = k.constant("BLOCK");
    Value offs = program_id(0).to(DType::I64) * block + arange(0, block).to(DType::I64);
    Value ok = offs < n;
    store(y, offs, full({block}, value, DType::F32), ok);
  });
}

namespace {
using runtime::Arg;

/// One Kernel object per kind, so launches hit the runtime's identity cache.
const Kernel &kernelFor(const std::string &kind, DType a = DType::F32, DType b = DType::F32) {
  static std::mutex mutex;
  static std::map<std::tuple<std::string, DType, DType>, Kernel> kernels;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_tuple(kind, a, b);
  auto it = kernels.find(key);
  if (it == kernels.end()) {
    Kernel k = kind == "copy"    ? copyConvertKernel(a, b)
               : kind == "merge" ? mergePartialsKernel()
               : kind == "add"   ? accumulateKernel()
                                 : fillKernel();
    it = kernels.emplace(key, std::move(k)).first;
  }
  return it->second;
}

std::shared_ptr<const runtime::CompiledKernel> compileFor(runtime::Stream &stream,
                                                          const Kernel &kernel,
                                                          dsl::Constants constants) {
  runtime::Specialization spec;
  spec.backend = stream.backend();
  spec.constants = std::move(constants);
  spec.numThreads = 128;
  return runtime::compile(kernel, spec);
}

int64_t pow2AtLeast(int64_t n) {
  int64_t p = 1;
  while (p < n)
    p *= 2;
  return p;
}

using detail::extent;
using detail::shapeText;

constexpr int64_t kFlatBlock = 1024;
constexpr int64_t kMaxCopyBlock = 128;

/// The grid of a flat kernel over `n` elements, checked to fit grid x
/// (2^31 - 1 programs on GPUs) before it is narrowed to uint32_t.
runtime::Grid flatGrid(size_t n, const char *what) {
  if (n > size_t(INT64_MAX) / 2)
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: {} elements is too many", what, n));
  size_t programs = (n + kFlatBlock - 1) / kFlatBlock;
  if (programs > size_t(INT32_MAX))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: {} elements need {} programs of {}, more than the grid's "
                            "2^31 - 1",
                            what, n, programs, kFlatBlock));
  return runtime::Grid(uint32_t(programs));
}
} // namespace

void copyTensorAsync(runtime::Stream &stream, const Tensor4 &src, const Tensor4 &dst) {
  if (src.shape != dst.shape)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("copyTensorAsync: source {} and destination {} shapes differ",
                            shapeText(src.shape), shapeText(dst.shape)));
  for (const Tensor4 *t : {&src, &dst}) {
    const char *name = t == &src ? "source" : "destination";
    if (!t->data)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("copyTensorAsync: {} is a null pointer", name));
    if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("copyTensorAsync: {} has dtype {}; expected f32, f16 or bf16", name,
                              dtypeName(t->dtype)));
    if (t->strides[3] != 1 && t->shape[3] > 1)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("copyTensorAsync: {} last-dimension stride is {}; it must be 1",
                              name, t->strides[3]));
    for (int i = 0; i < 4; ++i)
      if (t->shape[size_t(i)] < 0 || t->strides[size_t(i)] < 0)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("copyTensorAsync: {} has a negative size or stride in {} / {}",
                                name, shapeText(t->shape), shapeText(t->strides)));
  }
  auto [n0, n1, n2, n3] = src.shape;
  if (n0 == 0 || n1 == 0 || n2 == 0 || n3 == 0)
    return;
  // The logical grid is (seqlen x heads, batch), each axis < 2^31 (launches
  // split it to the GPU's limits). The kernel rounds dim up to whole chunks
  // of at most kMaxCopyBlock in i32, so dim must leave that much headroom
  // below 2^31.
  if (n0 > INT32_MAX || n1 * n2 > INT32_MAX || n3 > INT32_MAX - (kMaxCopyBlock - 1))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("copyTensorAsync: shape {} exceeds the copy kernel's grid (batch "
                            "and seqlen x heads < 2^31, dim <= 2^31 - {})",
                            shapeText(src.shape), kMaxCopyBlock));
  if (src.dtype == dst.dtype && stream.backend() == runtime::Backend::Cpu) {
    // The CPU backend's f16/bf16 loads and stores flush subnormals (LLVM
    // promotes them through f32), so a same-type copy there is a memcpy
    // per row on the stream, bit-exact like the GPU kernel (run on emu).
    size_t row = size_t(n3) * dtypeSize(src.dtype), es = dtypeSize(src.dtype);
    stream.submit([=](const runtime::StreamContext &) {
      for (int64_t i0 = 0; i0 < n0; ++i0)
        for (int64_t i1 = 0; i1 < n1; ++i1)
          for (int64_t i2 = 0; i2 < n2; ++i2)
            std::memcpy(static_cast<uint8_t *>(const_cast<void *>(dst.data)) +
                            (i0 * dst.strides[0] + i1 * dst.strides[1] + i2 * dst.strides[2]) * es,
                        static_cast<const uint8_t *>(src.data) +
                            (i0 * src.strides[0] + i1 * src.strides[1] + i2 * src.strides[2]) * es,
                        row);
    });
    return;
  }
  int64_t block = n3 <= 32 ? 32 : n3 <= 64 ? 64 : kMaxCopyBlock;
  auto kernel = compileFor(stream, kernelFor("copy", src.dtype, dst.dtype), {{"BLOCK", block}});
  std::vector<Arg> args = {
      Arg::buffer(src.data, src.dtype, extent(src)),
      Arg::buffer(dst.data, dst.dtype, extent(dst)),
      Arg::i32(int32_t(n1)), Arg::i32(int32_t(n2)), Arg::i32(int32_t(n3)),
      Arg::i64(src.strides[0]), Arg::i64(src.strides[1]), Arg::i64(src.strides[2]),
      Arg::i64(dst.strides[0]), Arg::i64(dst.strides[1]), Arg::i64(dst.strides[2])};
  runtime::launchLogical(*kernel, stream, {n1 * n2, n0, 1}, args);
}

void mergeAttentionPartialsAsync(runtime::Stream &stream, const PartialsView &acc,
                                 const PartialsView &block, int64_t batchHeads, int64_t rows,
                                 int64_t headDim) {
  if (!acc.out || !acc.lse || !block.out || !block.lse)
    throw Error(ErrorCode::InvalidArgument,
                "mergeAttentionPartialsAsync: an output or LSE pointer is null");
  if (headDim < 1 || headDim > 256)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("mergeAttentionPartialsAsync: head_dim {} is outside 1..256", headDim));
  if (batchHeads < 0 || rows < 0 || batchHeads > INT32_MAX || rows > INT32_MAX)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("mergeAttentionPartialsAsync: {} batch x heads and {} rows are "
                            "outside the kernel's grid (0 to 2^31 - 1 each)",
                            batchHeads, rows));
  if (batchHeads == 0 || rows == 0)
    return;
  int64_t BD = pow2AtLeast(headDim), BR = std::clamp<int64_t>(1024 / BD, 4, 32);
  auto kernel =
      compileFor(stream, kernelFor("merge"), {{"BLOCK_R", BR}, {"BLOCK_D", BD}});
  auto outSpan = [&](const PartialsView &v) {
    return size_t((batchHeads - 1) * v.outBhStride + (rows - 1) * v.outRowStride + headDim);
  };
  auto lseSpan = [&](const PartialsView &v) {
    return size_t((batchHeads - 1) * v.lseBhStride + rows);
  };
  std::vector<Arg> args = {Arg::buffer(acc.out, DType::F32, outSpan(acc)),
                           Arg::buffer(acc.lse, DType::F32, lseSpan(acc)),
                           Arg::buffer(block.out, DType::F32, outSpan(block)),
                           Arg::buffer(block.lse, DType::F32, lseSpan(block)),
                           Arg::i32(int32_t(rows)),
                           Arg::i32(int32_t(headDim)),
                           Arg::i64(acc.outBhStride),
                           Arg::i64(acc.outRowStride),
                           Arg::i64(acc.lseBhStride),
                           Arg::i64(block.outBhStride),
                           Arg::i64(block.outRowStride),
                           Arg::i64(block.lseBhStride)};
  runtime::launchLogical(*kernel, stream, {(rows + BR - 1) / BR, batchHeads, 1}, args);
}

void accumulateAsync(runtime::Stream &stream, float *y, const float *x, size_t n) {
  runtime::Grid grid = flatGrid(n, "accumulateAsync");
  if (!n)
    return;
  if (!y || !x)
    throw Error(ErrorCode::InvalidArgument, "accumulateAsync: null pointer");
  auto kernel = compileFor(stream, kernelFor("add"), {{"BLOCK", kFlatBlock}});
  std::vector<Arg> args = {Arg::buffer(y, DType::F32, n), Arg::buffer(x, DType::F32, n),
                           Arg::i64(int64_t(n))};
  kernel->launch(stream, grid, args);
}

void fillAsync(runtime::Stream &stream, float *y, float value, size_t n) {
  runtime::Grid grid = flatGrid(n, "fillAsync");
  if (!n)
    return;
  if (!y)
    throw Error(ErrorCode::InvalidArgument, "fillAsync: null pointer");
  auto kernel = compileFor(stream, kernelFor("fill"), {{"BLOCK", kFlatBlock}});
  std::vector<Arg> args = {Arg::buffer(y, DType::F32, n), Arg::i64(int64_t(n)),
                           Arg::f32(value)};
  kernel->launch(stream, grid, args);
}

} // namespace loom::ops
