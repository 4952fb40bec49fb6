//===- RingKernels.h - the ring's data movement as device kernels -*- C++ -*-===//
//
// Everything ring attention does to shard data besides attention itself,
// written once as small DSL kernels so it runs where the shards live (host
// memory on cpu/emu, device memory on cuda) in a stream's order:
//   - copyTensorAsync: a (batch, seqlen, heads, dim) tensor with any strides
//     into another, converting the element type (packing K/V into the
//     contiguous transfer buffer; f32 accumulators into the caller's dtype;
//     a segment's LSE rows);
//   - mergeAttentionPartialsAsync: ops/Merge.h's overflow-free f32 merge of
//     a partial (O, LSE) into the accumulators;
//   - accumulateAsync / fillAsync: y += x and y = value over f32 arrays
//     (dK/dV shares, zeroing accumulators, LSE = -inf).
// Each compiles once per backend (and dtype pair) and is cached; launches
// go on `stream`, whose backend selects the kernel's. Pointers are in that
// backend's memory (runtime/Memory.h) and must stay alive until the stream
// reaches the launch.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_RINGKERNELS_H
#define LOOM_OPS_RINGKERNELS_H

#include "loom/ops/Attention.h"
#include "loom/runtime/Stream.h"

namespace loom::ops {

/// dst[i0, i1, i2, c] = src[...] converted, for c < n3. Logical grid
/// (dsl::LogicalGrid) (n1 * n2, n0).
/// Constant BLOCK (columns per chunk).
dsl::Kernel copyConvertKernel(DType src, DType dst);
/// Merge of BLOCK_R rows x BLOCK_D (>= dim) columns per program. Logical
/// grid (ceil(rows / BLOCK_R), batch * heads).
dsl::Kernel mergePartialsKernel();
/// y[i] += x[i] (f32), BLOCK elements per program.
dsl::Kernel accumulateKernel();
/// y[i] = value (f32), BLOCK elements per program.
dsl::Kernel fillKernel();

/// Copies `src` into `dst` (same shape, any strides with a contiguous last
/// dim; f32/f16/bf16, converted with round-to-nearest-even). Same-type
/// copies on the cpu backend are row memcpys on the stream (its f16/bf16
/// loads flush subnormals); elsewhere the kernel. Throws InvalidArgument
/// naming mismatched shapes or a bad dtype.
void copyTensorAsync(runtime::Stream &stream, const Tensor4 &src, const Tensor4 &dst);

/// Partial results laid out as out[bh * outBhStride + row * outRowStride +
/// c] and lse[bh * lseBhStride + row] for bh < batch * heads.
struct PartialsView {
  float *out = nullptr;
  float *lse = nullptr;
  int64_t outBhStride = 0, outRowStride = 0, lseBhStride = 0;
};

/// mergeAttentionPartials (Merge.h) for `batchHeads` x `rows` rows of
/// `headDim` values: `acc` is updated in place with `block`.
void mergeAttentionPartialsAsync(runtime::Stream &stream, const PartialsView &acc,
                                 const PartialsView &block, int64_t batchHeads, int64_t rows,
                                 int64_t headDim);

/// y[i] += x[i] for i < n.
void accumulateAsync(runtime::Stream &stream, float *y, const float *x, size_t n);
/// y[i] = value for i < n.
void fillAsync(runtime::Stream &stream, float *y, float value, size_t n);

} // namespace loom::ops

#endif
