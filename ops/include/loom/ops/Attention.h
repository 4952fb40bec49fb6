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
// visible key gets O = 0 and LSE = -inf.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_ATTENTION_H
#define LOOM_OPS_ATTENTION_H

#include "loom/dsl/Kernel.h"
#include "loom/runtime/Kernel.h"

#include <array>
#include <optional>

namespace loom::ops {

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
};

/// The untuned default for a head dim on a backend. For GPU targets these
/// are the largest blocks whose kernel compiles without register spills
/// with the current (blocked, shared-memory-converted) tile layout.
AttentionConfig defaultAttentionConfig(int64_t headDim, runtime::Backend backend);

struct AttentionOptions {
  bool causal = false;
  /// Softmax scale; 1/sqrt(head_dim) when unset.
  std::optional<float> scale;
  /// Block sizes and threads; defaultAttentionConfig() when unset.
  std::optional<AttentionConfig> config;
  runtime::Backend backend = runtime::Backend::Auto;
};

/// The forward kernel for one head dim and dtype (f32, f16, bf16).
/// Constants: BLOCK_M, BLOCK_N. Grid: (ceil(seqlen_q / BLOCK_M), batch * heads_q).
dsl::Kernel flashAttentionForwardKernel(DType dtype, int64_t headDim, bool causal);

/// Runs attention forward: `out` has q's shape and dtype (its strides may
/// differ), `lse` (optional) is a contiguous f32 (batch, heads_q, seqlen_q)
/// buffer. Throws loom::Error(InvalidArgument) naming the offending shape,
/// dtype, head dim or stride.
void attentionForward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                      float *lse, const AttentionOptions &options = {});

/// The backward kernels (FlashAttention-2 scheme, no atomics): a
/// preprocess computing delta = rowsum(dO * O), a kernel per KV block that
/// accumulates dK and dV in f32 over every query block and every query head
/// of its group, and a kernel per query block accumulating dQ in f32.
dsl::Kernel flashAttentionBackwardPreprocessKernel(DType dtype, int64_t headDim);
dsl::Kernel flashAttentionBackwardDkDvKernel(DType dtype, int64_t headDim, bool causal);
dsl::Kernel flashAttentionBackwardDqKernel(DType dtype, int64_t headDim, bool causal);

/// Gradients of attention: dq has q's shape, dk and dv k's, all in q's
/// dtype; `out` and `lse` are the forward's results. Same checks as
/// attentionForward, plus dO/dq/dk/dv shapes.
void attentionBackward(const Tensor4 &q, const Tensor4 &k, const Tensor4 &v, const Tensor4 &out,
                       const float *lse, const Tensor4 &dOut, const Tensor4 &dq,
                       const Tensor4 &dk, const Tensor4 &dv,
                       const AttentionOptions &options = {});

/// Head dims the kernels support on a backend: any multiple of 8 up to 256
/// on the CPU; 32, 64, 96, 128, 192, 256 for f16/bf16 on GPU targets.
bool supportedHeadDim(int64_t headDim, runtime::Backend backend, DType dtype);

} // namespace loom::ops

#endif
