//===- AttentionTolerance.h - the attention tests' accuracy rule -*- C++ -*-===//
#ifndef LOOM_TESTS_ATTENTIONTOLERANCE_H
#define LOOM_TESTS_ATTENTIONTOLERANCE_H

#include "loom/dsl/DType.h"
#include "loom/ops/Reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

/// f32: normwise relative error < 1e-4 against float64, normalized by
/// max(max |want|, f32Floor); f16/bf16 (FlashAttention's rule): max error at
/// most twice that of `naive`, a naive attention in the same low precision,
/// plus 1e-3.
inline void expectAttentionClose(const char *what, loom::DType dtype,
                                 const std::vector<float> &got,
                                 const std::vector<double> &want,
                                 const std::vector<double> *naive, double f32Floor = 1e-3) {
  namespace ref = loom::ops::ref;
  if (dtype == loom::DType::F32) {
    auto e = ref::compare(got, want, std::max(ref::maxAbs(want), f32Floor));
    EXPECT_TRUE(ref::withinRelative(e, 1e-4)) << what << ": " << ref::format(e);
    return;
  }
  std::vector<float> low(naive->begin(), naive->end());
  double kernelErr = ref::maxAbsError(got, want), naiveErr = ref::maxAbsError(low, want);
  EXPECT_LE(kernelErr, 2 * naiveErr + 1e-3)
      << what << ": kernel error " << kernelErr << " vs naive error " << naiveErr;
}

#endif
