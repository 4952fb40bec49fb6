// Elementwise ops and casts of the tile layer, for scalars and for tiles.
//
// Every op is defined on scalars; the Tile overload applies it slot by slot
// (both operands have one layout, so this is thread-local, whatever the
// layout). Both operands always have identical types.
//   float:          IEEE single precision (division and sqrt correctly rounded).
//   half_t/bf16_t:  computed in float, rounded to nearest even once per op.
//   int32_t/int64_t: two's-complement wrapping; div/rem truncate toward zero.
//                   x/0 gives 0 and x%0 gives x; MIN/-1 gives MIN and MIN%-1
//                   gives 0 (PTX leaves these unspecified; the host would trap).
//   maximum/minimum propagate NaN (f32: max.NaN/min.NaN, the canonical NaN;
//   +0 > -0); comparisons are ordered (false with NaN) except cmp_ne (true
//   with NaN).
//   exp2 is ex2.approx.ftz: within 2 ulp, results below 2^-126 (and
//   subnormal inputs, as 0) flushed, as FlashAttention's and CUTLASS's
//   softmax do; the CPU backend's exp2 also gives 0 below -126.
#pragma once

#include "loom/device/tile/layout.h"

#if defined(LOOM_DEVICE_EMULATION)
#include <cmath>
#endif

namespace loom::tile {

namespace detail {

// The unsigned type used for wrapping arithmetic on T (at least 32 bits so
// that no operand is promoted back to signed int).
template <class T>
using wrap_t = typename conditional<(sizeof(T) < 4), uint32_t,
                                    typename unsigned_of<T>::type>::type;

__device__ __forceinline__ bool is_nan(float x) { return x != x; }

// Single-precision math with correctly rounded or library accuracy (not
// the fast intrinsics); exp2 alone uses ex2.approx.ftz.
#if defined(LOOM_DEVICE_EMULATION)
inline float m_log2(float x) { return std::log2(x); }
inline float m_exp(float x) { return std::exp(x); }
inline float m_log(float x) { return std::log(x); }
inline float m_tanh(float x) { return std::tanh(x); }
inline float m_sqrt(float x) { return std::sqrt(x); }
#else
__device__ __forceinline__ float m_log2(float x) { return log2f(x); }
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
#endif

// float -> integer, truncating toward zero; NaN gives 0 and out-of-range
// values saturate (as cvt.rzi.sat does), so the host never meets UB.
template <class I>
__device__ __forceinline__ I float_to_int(float x) {
  if (is_nan(x)) return 0;
  const float lo = (float)int_limits<I>::min(); // -2^(bits-1), exact
  if (x <= lo) return int_limits<I>::min();
  if (x >= -lo) return int_limits<I>::max();
  return (I)x;
}

// Number of significant bits of x (0 for 0).
__device__ __forceinline__ int bit_length(uint64_t x) {
  int n = 0;
  if (x >> 32) { n += 32; x >>= 32; }
  if (x >> 16) { n += 16; x >>= 16; }
  if (x >> 8) { n += 8; x >>= 8; }
  if (x >> 4) { n += 4; x >>= 4; }
  if (x >> 2) { n += 2; x >>= 2; }
  if (x >> 1) { n += 1; x >>= 1; }
  return n + (int)x;
}

// Integer -> half_t/bf16_t with one rounding: integers of more than 24 bits
// are first rounded to float with round-to-odd (24 >= 8 + 2 bits, so the
// final round to nearest even is then correct).
template <class U, class I>
__device__ __forceinline__ U int_to_low_float(I x) {
  const int64_t w = (int64_t)x;
  const uint64_t mag = w < 0 ? (uint64_t)0 - (uint64_t)w : (uint64_t)w;
  if (mag < (1ull << 24)) return from_float<U>((float)w);
  const int shift = bit_length(mag) - 24;
  const uint64_t m = (mag >> shift) | ((mag & ((1ull << shift) - 1)) != 0 ? 1u : 0u);
  const float scale = loom::device::u32_as_f32((uint32_t)(127 + shift) << 23);
  const float f = (float)m * scale; // exact: m < 2^24
  return from_float<U>(w < 0 ? -f : f);
}

template <class U, class X>
__device__ __forceinline__ U convert(X x) {
  if constexpr (is_same_v<U, X>) {
    return x;
  } else if constexpr (is_same_v<U, bool>) {
    if constexpr (is_float_v<X>) return to_float(x) != 0.0f;
    else return x != 0;
  } else if constexpr (is_float_v<U>) {
    if constexpr (is_float_v<X>) return from_float<U>(to_float(x));
    else if constexpr (is_same_v<X, bool>) return from_float<U>(x ? 1.0f : 0.0f);
    else if constexpr (is_same_v<U, float>) return (float)x;
    else return int_to_low_float<U>(x);
  } else {
    static_assert(is_int_v<U>, "cast: unsupported target type");
    if constexpr (is_float_v<X>) return float_to_int<U>(to_float(x));
    else if constexpr (is_same_v<X, bool>) return (U)(x ? 1 : 0);
    else return (U)(wrap_t<U>)x; // widen (sign-extend) or narrow (wrap)
  }
}

} // namespace detail

// ---- casts --------------------------------------------------------------------

template <class U, class X>
__device__ __forceinline__ auto cast(const X& x) {
  if constexpr (is_tile<X>::value) {
    Tile<U, typename X::shape, typename X::layout> r;
    LOOM_UNROLL
    for (int k = 0; k < X::kPerThread; ++k) r.v[k] = detail::convert<U>(x.v[k]);
    return r;
  } else {
    return detail::convert<U>(x);
  }
}

// ---- scalar ops -----------------------------------------------------------------

#define LOOM_TILE_ARITH(NAME, OP)                                                   \
  template <class T>                                                                \
  __device__ __forceinline__ T NAME(T a, T b) {                                     \
    if constexpr (is_low_float_v<T>) return from_float<T>(to_float(a) OP to_float(b)); \
    else if constexpr (is_int_v<T>)                                                 \
      return (T)((detail::wrap_t<T>)a OP (detail::wrap_t<T>)b);                     \
    else return a OP b;                                                             \
  }
LOOM_TILE_ARITH(add, +)
LOOM_TILE_ARITH(sub, -)
LOOM_TILE_ARITH(mul, *)
#undef LOOM_TILE_ARITH

template <class T>
__device__ __forceinline__ T div(T a, T b) {
  if constexpr (is_low_float_v<T>) {
    return from_float<T>(to_float(a) / to_float(b));
  } else if constexpr (is_int_v<T>) {
    if (b == 0) return 0;
    if (b == -1) return (T)((detail::wrap_t<T>)0 - (detail::wrap_t<T>)a);
    return (T)(a / b);
  } else {
    return a / b;
  }
}

template <class T>
__device__ __forceinline__ T rem(T a, T b) {
  static_assert(is_int_v<T>, "rem: signed integers only");
  if (b == 0) return a;
  if (b == -1) return 0;
  return (T)(a % b);
}

template <class T>
__device__ __forceinline__ T neg(T a) {
  if constexpr (is_low_float_v<T>) return T{(uint16_t)(a.bits ^ 0x8000u)};
  else if constexpr (is_int_v<T>) return (T)((detail::wrap_t<T>)0 - (detail::wrap_t<T>)a);
  else return -a;
}

template <class T>
__device__ __forceinline__ T maximum(T a, T b) {
  if constexpr (is_same_v<T, float>) {
    return loom::device::fmax_nan(a, b);
  } else if constexpr (is_float_v<T>) {
    const float x = to_float(a), y = to_float(b);
    return (detail::is_nan(x) || x > y) ? a : b;
  } else {
    return a > b ? a : b;
  }
}

template <class T>
__device__ __forceinline__ T minimum(T a, T b) {
  if constexpr (is_same_v<T, float>) {
    return loom::device::fmin_nan(a, b);
  } else if constexpr (is_float_v<T>) {
    const float x = to_float(a), y = to_float(b);
    return (detail::is_nan(x) || x < y) ? a : b;
  } else {
    return a < b ? a : b;
  }
}

#define LOOM_TILE_CMP(NAME, OP)                                                     \
  template <class T>                                                                \
  __device__ __forceinline__ bool NAME(T a, T b) {                                  \
    if constexpr (is_low_float_v<T>) return to_float(a) OP to_float(b);             \
    else return a OP b;                                                             \
  }
LOOM_TILE_CMP(cmp_lt, <)
LOOM_TILE_CMP(cmp_le, <=)
LOOM_TILE_CMP(cmp_gt, >)
LOOM_TILE_CMP(cmp_ge, >=)
LOOM_TILE_CMP(cmp_eq, ==)
LOOM_TILE_CMP(cmp_ne, !=)
#undef LOOM_TILE_CMP

#define LOOM_TILE_BITWISE(NAME, OP)                                                 \
  template <class T>                                                                \
  __device__ __forceinline__ T NAME(T a, T b) {                                     \
    static_assert(is_int_v<T> || is_same_v<T, bool>, #NAME ": integers and bool only"); \
    return (T)(a OP b);                                                             \
  }
LOOM_TILE_BITWISE(bit_and, &)
LOOM_TILE_BITWISE(bit_or, |)
LOOM_TILE_BITWISE(bit_xor, ^)
#undef LOOM_TILE_BITWISE

template <class T>
__device__ __forceinline__ T select(bool cond, T a, T b) {
  return cond ? a : b;
}

template <class T>
__device__ __forceinline__ T abs(T a) {
  if constexpr (is_low_float_v<T>) return T{(uint16_t)(a.bits & 0x7fffu)};
  else if constexpr (is_same_v<T, float>)
    return loom::device::u32_as_f32(loom::device::f32_as_u32(a) & 0x7fffffffu);
  else {
    static_assert(is_int_v<T>, "abs: float or integer types");
    return a < 0 ? neg(a) : a;
  }
}

#define LOOM_TILE_MATH(NAME, FN)                                                    \
  template <class T>                                                                \
  __device__ __forceinline__ T NAME(T a) {                                          \
    static_assert(is_float_v<T>, #NAME ": float types only");                       \
    return from_float<T>(FN(to_float(a)));                                          \
  }
LOOM_TILE_MATH(exp2, loom::device::ex2_approx_ftz)
LOOM_TILE_MATH(log2, detail::m_log2)
LOOM_TILE_MATH(exp, detail::m_exp)
LOOM_TILE_MATH(log, detail::m_log)
LOOM_TILE_MATH(tanh, detail::m_tanh)
LOOM_TILE_MATH(sqrt, detail::m_sqrt)
#undef LOOM_TILE_MATH

// ---- tile ops -------------------------------------------------------------------

#define LOOM_TILE_MAP2(NAME)                                                        \
  template <class T, class S, class L>                                              \
  __device__ __forceinline__ auto NAME(const Tile<T, S, L>& a, const Tile<T, S, L>& b) { \
    Tile<decltype(NAME(a.v[0], b.v[0])), S, L> r;                                   \
    LOOM_UNROLL                                                                     \
    for (int k = 0; k < r.kPerThread; ++k) r.v[k] = NAME(a.v[k], b.v[k]);           \
    return r;                                                                       \
  }
LOOM_TILE_MAP2(add)
LOOM_TILE_MAP2(sub)
LOOM_TILE_MAP2(mul)
LOOM_TILE_MAP2(div)
LOOM_TILE_MAP2(rem)
LOOM_TILE_MAP2(maximum)
LOOM_TILE_MAP2(minimum)
LOOM_TILE_MAP2(cmp_lt)
LOOM_TILE_MAP2(cmp_le)
LOOM_TILE_MAP2(cmp_gt)
LOOM_TILE_MAP2(cmp_ge)
LOOM_TILE_MAP2(cmp_eq)
LOOM_TILE_MAP2(cmp_ne)
LOOM_TILE_MAP2(bit_and)
LOOM_TILE_MAP2(bit_or)
LOOM_TILE_MAP2(bit_xor)
#undef LOOM_TILE_MAP2

#define LOOM_TILE_MAP1(NAME)                                                        \
  template <class T, class S, class L>                                              \
  __device__ __forceinline__ Tile<T, S, L> NAME(const Tile<T, S, L>& a) {           \
    Tile<T, S, L> r;                                                                \
    LOOM_UNROLL                                                                     \
    for (int k = 0; k < r.kPerThread; ++k) r.v[k] = NAME(a.v[k]);                   \
    return r;                                                                       \
  }
LOOM_TILE_MAP1(neg)
LOOM_TILE_MAP1(abs)
LOOM_TILE_MAP1(exp2)
LOOM_TILE_MAP1(log2)
LOOM_TILE_MAP1(exp)
LOOM_TILE_MAP1(log)
LOOM_TILE_MAP1(tanh)
LOOM_TILE_MAP1(sqrt)
#undef LOOM_TILE_MAP1

template <class T, class S, class L>
__device__ __forceinline__ Tile<T, S, L> select(const Tile<bool, S, L>& cond,
                                                const Tile<T, S, L>& a, const Tile<T, S, L>& b) {
  Tile<T, S, L> r;
  LOOM_UNROLL
  for (int k = 0; k < r.kPerThread; ++k) r.v[k] = cond.v[k] ? a.v[k] : b.v[k];
  return r;
}

} // namespace loom::tile
