//===- Merge.h - merging partial attention results --------------*- C++ -*-===//
//
// Ring attention (and split-KV decoding) computes attention of the same
// queries against disjoint key blocks and merges the partial (O, LSE) pairs.
// With accumulators O, L and a block result O_b, l_b (natural-log LSE):
//   L' = log(e^L + e^l_b),  O' = e^(L - L') O + e^(l_b - L') O_b
// written overflow-free as O <- O - sigmoid(l_b - L) (O - O_b),
// L <- L - logsigmoid(L - l_b), in f32, so -inf (rows with no visible key
// in a block) never produces NaN and the result does not depend on how many
// blocks the keys were split into beyond f32 rounding.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_MERGE_H
#define LOOM_OPS_MERGE_H

#include <cstdint>

namespace loom::ops {

/// Merges `rows` partial results into the accumulators: out/lse (rows x
/// headDim, rows) are updated in place with blockOut/blockLse. Start the
/// accumulators at O = 0, LSE = -inf.
void mergeAttentionPartials(float *out, float *lse, const float *blockOut, const float *blockLse,
                            int64_t rows, int64_t headDim);

} // namespace loom::ops

#endif
