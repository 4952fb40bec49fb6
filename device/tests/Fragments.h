// The m16n8k16 fragment layouts of PTX_FACTS §1, written out for tests: which
// elements of A (16x16), B (16x8) and C/D (16x8) lane l holds. g = l / 4,
// t = l % 4; in each b32 the lower-indexed element is in bits 15:0.
#pragma once

#include <cstdint>

namespace loom::device::test {

struct RowCol {
  unsigned row, col;
};

// Element e (0..7) of A held by lane l: a[e/2] holds elements e (lo), e+1 (hi).
inline RowCol a_element(unsigned l, unsigned e) {
  const unsigned g = l / 4, t = l % 4;
  const unsigned row = (e / 2) % 2 ? g + 8 : g;
  const unsigned col = 2 * t + e % 2 + (e / 4) * 8;
  return {row, col};
}
// Element e (0..3) of B: (k, n).
inline RowCol b_element(unsigned l, unsigned e) {
  const unsigned g = l / 4, t = l % 4;
  return {2 * t + e % 2 + (e / 2) * 8, g};
}
// Element e (0..3) of C/D.
inline RowCol c_element(unsigned l, unsigned e) {
  const unsigned g = l / 4, t = l % 4;
  return {e / 2 ? g + 8 : g, 2 * t + e % 2};
}

} // namespace loom::device::test
