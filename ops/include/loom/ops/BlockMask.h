//===- BlockMask.h - block sparsity of an attention mask --------*- C++ -*-===//
//
// FlexAttention's BlockMask: every (query block, key block) tile of the
// score matrix is empty (no visible pair), partial or full (every pair
// inside both sequences visible). Causal and sliding-window masks are
// analyzed at compile time; a mask_mod is opaque, so its classification is
// computed once per mask by a DSL kernel evaluating the variant's full
// visibility (mask_mod, causal, window, sequence bounds, global token
// positions) over each tile. The attention kernels then visit only the
// listed blocks: partial ones with per-element masking, full ones with the
// sequence bounds only.
//
//   auto mask = createBlockMask(qShape, kShape, options); // once
//   options.blockMask = mask;                               // every call
//   attentionForward(q, k, v, out, lse, options);
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_BLOCKMASK_H
#define LOOM_OPS_BLOCKMASK_H

#include "loom/ops/Attention.h"

namespace loom::ops {

enum class BlockKind : int8_t { Empty = 0, Partial = 1, Full = 2 };

struct BlockMask {
  int64_t blockM = 0, blockN = 0;
  int64_t batch = 0, headsQ = 0, headsKv = 0, seqlenQ = 0, seqlenK = 0;
  int64_t numQueryBlocks = 0, numKeyBlocks = 0;
  /// The (effective) variant it was computed for, and its token positions
  /// (totals resolved): calls must match both.
  std::string variantName;
  TokenPositions queryPositions, keyPositions;
  /// Whether the lists live on a CUDA device (devicePtrs) or the host.
  bool onCuda = false;

  /// (batch, heads_q, numQueryBlocks, numKeyBlocks).
  std::vector<int8_t> kinds;
  /// Forward and dQ: for list l = (b * heads_q + h) * numQueryBlocks + m,
  /// kvCounts[2l] partial and kvCounts[2l + 1] full key blocks, listed at
  /// kvIndices[(2l + kind) * numKeyBlocks ...].
  std::vector<int32_t> kvCounts, kvIndices;
  /// dK/dV: for l = (b * heads_kv + hk) * numKeyBlocks + n, the same for the
  /// (query head in group g, query block m) pairs seeing key block n,
  /// encoded g * numQueryBlocks + m, capacity group * numQueryBlocks.
  std::vector<int32_t> qCounts, qIndices;
  /// CUDA copies of kvCounts, kvIndices, qCounts, qIndices (onCuda only).
  std::array<const void *, 4> devicePtrs{};
  std::shared_ptr<const void> deviceStorage;

  BlockKind kind(int64_t b, int64_t h, int64_t m, int64_t n) const {
    return BlockKind(kinds[size_t(((b * headsQ + h) * numQueryBlocks + m) * numKeyBlocks + n)]);
  }
  /// Tiles of a kind over every batch and query head.
  int64_t count(BlockKind kind) const;
  /// Tiles the forward visits (partial + full), of numTiles().
  int64_t visitedTiles() const { return count(BlockKind::Partial) + count(BlockKind::Full); }
  int64_t numTiles() const { return int64_t(kinds.size()); }
};

/// Classifies every tile for tensors of shapes `qShape` and `kShape`
/// (batch, seqlen, heads, head_dim) under options' variant (with causal),
/// variantArgs, token positions and backend, with options.config's block
/// sizes (defaultAttentionConfig's when unset). Throws
/// loom::Error(InvalidArgument) naming the offending shape or argument.
std::shared_ptr<const BlockMask> createBlockMask(const std::array<int64_t, 4> &qShape,
                                                 const std::array<int64_t, 4> &kShape,
                                                 const AttentionOptions &options);

/// The classification kernel: the attention kernels' arguments (without
/// block-mask lists) and then an i32 `block_kinds` output in the layout of
/// BlockMask::kinds. Constants BLOCK_M, BLOCK_N. Logical grid
/// (dsl::LogicalGrid): (query blocks, key blocks, batch * heads_q).
dsl::Kernel blockMaskKernel(const AttentionVariant &variant);

} // namespace loom::ops

#endif
