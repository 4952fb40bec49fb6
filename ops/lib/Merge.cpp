//===- Merge.cpp - merging partial attention results ----------------------===//
#include "loom/ops/Merge.h"

#include <cmath>

namespace loom::ops {
namespace {
/// sigmoid(x) = 1 / (1 + e^-x) without overflow for large |x|.
float sigmoid(float x) {
  if (x >= 0)
    return 1.0f / (1.0f + std::exp(-x));
  float e = std::exp(x);
  return e / (1.0f + e);
}

/// log(sigmoid(x)) = -softplus(-x), stable for large |x|.
float logSigmoid(float x) {
  return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}
} // namespace

void mergeAttentionPartials(float *out, float *lse, const float *blockOut, const float *blockLse,
                            int64_t rows, int64_t headDim) {
  for (int64_t r = 0; r < rows; ++r) {
    float L = lse[r], lb = blockLse[r];
    if (lb == -INFINITY)
      continue; // the block saw no key for this row: nothing to add
    // A NaN L or lb is neither -inf nor a number: it flows into both results.
    float *o = out + r * headDim;
    const float *ob = blockOut + r * headDim;
    if (L == -INFINITY) { // first contribution
      for (int64_t c = 0; c < headDim; ++c)
        o[c] = ob[c];
      lse[r] = lb;
      continue;
    }
    // Weights of the block and of the accumulator in the merged softmax.
    float w = sigmoid(lb - L), wAcc = sigmoid(L - lb);
    for (int64_t c = 0; c < headDim; ++c)
      o[c] = wAcc * o[c] + w * ob[c];
    lse[r] = L - logSigmoid(L - lb);
  }
}

} // namespace loom::ops
