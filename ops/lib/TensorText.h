//===- TensorText.h - shape text and buffer extents (ops-private) -*- C++ -*-===//
//
// Shared by the attention, ring and ring-kernel hosts so that every error
// prints shapes alike and every bounds-checked launch sizes its buffers the
// same way.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_LIB_TENSORTEXT_H
#define LOOM_OPS_LIB_TENSORTEXT_H

#include "loom/Support/Error.h"
#include "loom/ops/Attention.h"

#include <array>
#include <cstdint>
#include <fmt/format.h>
#include <string>

namespace loom::ops::detail {

/// "(a, b, c, d)": a shape, or strides.
inline std::string shapeText(const std::array<int64_t, 4> &s) {
  return fmt::format("({}, {}, {}, {})", s[0], s[1], s[2], s[3]);
}
inline std::string shapeText(const Tensor4 &t) { return shapeText(t.shape); }

/// Elements from data[0] to the last one a view touches, inclusive (0 for
/// an empty view): what a bounds-checked launch (cpu/emu) must allow.
inline size_t extent(const std::array<int64_t, 4> &shape, const std::array<int64_t, 4> &strides) {
  size_t n = 1;
  for (size_t i = 0; i < 4; ++i) {
    if (shape[i] == 0)
      return 0;
    n += size_t(shape[i] - 1) * size_t(strides[i]);
  }
  return n;
}
inline size_t extent(const Tensor4 &t) { return extent(t.shape, t.strides); }

/// Empty batches and sequences are valid (an empty or all-masked result);
/// no heads or a zero head dim is a malformed tensor, even when empty.
/// `what` starts the message ("attention", "ring attention").
inline void requireHeadsAndHeadDim(const char *what, const Tensor4 &q, const Tensor4 &k) {
  if (q.shape[3] == 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: q {} has head_dim 0; head_dim must be positive", what,
                            shapeText(q)));
  if (q.shape[2] == 0 || k.shape[2] == 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: {} {} has 0 heads; heads_{} must be positive", what,
                            q.shape[2] == 0 ? "q" : "k", shapeText(q.shape[2] == 0 ? q : k),
                            q.shape[2] == 0 ? "q" : "kv"));
}

} // namespace loom::ops::detail

#endif // LOOM_OPS_LIB_TENSORTEXT_H
