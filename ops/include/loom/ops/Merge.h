//===- Merge.h - merging partial attention results --------------*- C++ -*-===//
//
// Ring attention (and split-KV decoding) computes attention of the same
// queries against disjoint key blocks and merges the partial (O, LSE) pairs.
// With accumulators O, L and a block result O_b, l_b (natural-log LSE):
//   L' = log(e^L + e^l_b),  O' = e^(L - L') O + e^(l_b - L') O_b
// written overflow-free as O <- sigmoid(L - l_b) O + sigmoid(l_b - L) O_b,
// L <- L - logsigmoid(L - l_b), in f32, so -inf (rows with no visible key
// in a block) never produces NaN and the result does not depend on how many
// blocks the keys were split into beyond f32 rounding.
//
// Non-finite values: LSE = -inf means "no visible key" (O is then 0) and
// that partial is skipped; it is the only value skipped. A NaN LSE (the
// attention kernels give NaN O and LSE for a row whose visible scores hold
// a NaN or +inf) makes the merged O and LSE NaN, and a NaN stays NaN
// through later merges, so a NaN input can never merge into a finite,
// plausible row. An infinite O (an infinite V) stays infinite with its sign
// (the weighted sum, unlike O - w (O - O_b), has no inf - inf), or becomes
// NaN when infinities of both signs meet, as in one-device attention.
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
