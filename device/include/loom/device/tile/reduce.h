// Reductions along one axis, and extract of a rank-0 tile, through shared
// scratch (row reductions of an Mma tile into MmaRows mostly by shuffles).
// Each leaves the block synchronized.
#pragma once

#include "loom/device/tile/construct.h"

namespace loom::tile {

namespace detail {

// Accumulator type: float for the float types, T for integers (wrapping).
template <class T>
using reduce_acc_t = typename conditional<is_float_v<T>, float, T>::type;

struct SumOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const { return add(a, b); }
};
struct MaxOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const { return maximum(a, b); }
};
struct MinOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const { return minimum(a, b); }
};

// A 32-bit accumulator from lane (lane ^ mask).
template <class A>
__device__ __forceinline__ A shfl_bits(A x, int mask) {
  static_assert(sizeof(A) == 4, "shfl_bits: 32-bit values");
  if constexpr (is_same_v<A, float>) return loom::device::shfl_xor(x, mask);
  else return (A)loom::device::shfl_xor((uint32_t)x, mask);
}

// Whether R (MmaRows<WM, WN>) holds the rows of L (Mma<WM, WN>).
template <class R, class L>
inline constexpr bool mma_rows_of_v = false;
template <int WM, int WN>
inline constexpr bool mma_rows_of_v<MmaRows<WM, WN>, Mma<WM, WN>> = true;

template <class A, class T>
__device__ __forceinline__ A widen(T x) {
  if constexpr (is_float_v<T>) return to_float(x);
  else return x;
}
template <class T, class A>
__device__ __forceinline__ T narrow(A x) {
  if constexpr (is_float_v<T>) return from_float<T>(x);
  else return x;
}

// The tile is staged in smem (S::size elements, row-major); output element j
// (outer o, inner n around Axis) folds src[o][0..D)[n]. Each thread starts
// its fold at a different position along the axis when the axis is innermost
// (rotation by j), so that the threads of a warp read different banks.
// Without the final barrier (reduce() adds it): the scratch is still being
// read when this returns.
template <class TileR, int Axis, class Op, class T, class S, class L>
__device__ __forceinline__ TileR reduce_staged(const Tile<T, S, L>& t, unsigned char* smem) {
  using R = remove_axis_t<S, Axis>;
  using RL = typename TileR::layout;
  using A = reduce_acc_t<T>;
  constexpr int D = S::dim(Axis), inner = S::stride(Axis);
  T* buf = reinterpret_cast<T*>(smem);
  stage(buf, t);
  loom::device::bar_sync();
  TileR r;
  const Op op;
  LOOM_UNROLL
  for (int k = 0; k < TileR::kPerThread; ++k) {
    const int j = RL::template index<R>(k);
    if (RL::template valid<R>(k)) {
      const T* src = buf + (j / inner) * (D * inner) + j % inner;
      int a = (inner == 1 && D > 1) ? j % D : 0;
      A acc = widen<A>(smem_load(src + a * inner));
      for (int n = 1; n < D; ++n) {
        a = a + 1 == D ? 0 : a + 1;
        acc = op(acc, widen<A>(smem_load(src + a * inner)));
      }
      r.v[k] = narrow<T>(acc);
    } else {
      r.v[k] = T{};
    }
  }
  return r;
}

// Rows of an Mma<WM, WN> tile into MmaRows<WM, WN>: each thread folds its
// own elements of a row, the four lanes of a quad (which share the row)
// combine theirs with two butterfly shuffles, and when WN > 1 warps also
// share rows, lane t = 0 of each writes its partial to smem (WN * M
// accumulators) and every thread folds the WN partials in warp order.
template <class TileR, class Op, class T, class S, int WM, int WN>
__device__ __forceinline__ TileR reduce_mma_rows(const Tile<T, S, Mma<WM, WN>>& t,
                                                 unsigned char* smem) {
  using A = reduce_acc_t<T>;
  using L = Mma<WM, WN>;
  constexpr int AM = L::template atoms_m<S>(), AN = L::template atoms_n<S>(), M = S::dim(0);
  const Op op;
  A part[2 * AM];
  LOOM_UNROLL
  for (int i = 0; i < AM; ++i) {
    LOOM_UNROLL
    for (int h = 0; h < 2; ++h) {
      A acc = widen<A>(t.v[i * AN * 4 + 2 * h]);
      acc = op(acc, widen<A>(t.v[i * AN * 4 + 2 * h + 1]));
      LOOM_UNROLL
      for (int jj = 1; jj < AN; ++jj) {
        acc = op(acc, widen<A>(t.v[(i * AN + jj) * 4 + 2 * h]));
        acc = op(acc, widen<A>(t.v[(i * AN + jj) * 4 + 2 * h + 1]));
      }
      acc = op(acc, shfl_bits(acc, 1));
      acc = op(acc, shfl_bits(acc, 2));
      part[2 * i + h] = acc;
    }
  }
  TileR r;
  if constexpr (WN == 1) {
    LOOM_UNROLL
    for (int k = 0; k < 2 * AM; ++k) r.v[k] = narrow<T>(part[k]);
  } else {
    using RL = MmaRows<WM, WN>;
    using R = typename TileR::shape;
    A* buf = reinterpret_cast<A*>(smem);
    const int wn = L::warp_n();
    if (thread_rank() % 4 == 0) {
      LOOM_UNROLL
      for (int k = 0; k < 2 * AM; ++k) smem_store(buf + wn * M + RL::template index<R>(k), part[k]);
    }
    loom::device::bar_sync();
    LOOM_UNROLL
    for (int k = 0; k < 2 * AM; ++k) {
      const int row = RL::template index<R>(k);
      A acc = smem_load(buf + row);
      for (int w = 1; w < WN; ++w) acc = op(acc, smem_load(buf + w * M + row));
      r.v[k] = narrow<T>(acc);
    }
  }
  return r;
}

template <class TileR, int Axis, class Op, class T, class S, class L>
__device__ __forceinline__ TileR reduce_unsynced(const Tile<T, S, L>& t, unsigned char* smem) {
  using R = remove_axis_t<S, Axis>;
  static_assert(Axis >= 0 && Axis < S::rank, "reduce: axis out of range");
  static_assert(is_same_v<typename TileR::shape, R> && is_same_v<typename TileR::element_type, T>,
                "reduce: result must be a T tile of S without Axis");
  if constexpr (Axis == 1 && mma_rows_of_v<typename TileR::layout, L> && sizeof(T) <= 4)
    return reduce_mma_rows<TileR, Op>(t, smem);
  else
    return reduce_staged<TileR, Axis, Op>(t, smem);
}

template <class TileR, int Axis, class Op, class T, class S, class L>
__device__ __forceinline__ TileR reduce(const Tile<T, S, L>& t, unsigned char* smem) {
  TileR r = reduce_unsynced<TileR, Axis, Op>(t, smem);
  loom::device::bar_sync();
  return r;
}

} // namespace detail

template <class TileR, int Axis, class T, class S, class L>
__device__ __forceinline__ TileR reduce_sum(const Tile<T, S, L>& t, unsigned char* smem) {
  return detail::reduce<TileR, Axis, detail::SumOp>(t, smem);
}
template <class TileR, int Axis, class T, class S, class L>
__device__ __forceinline__ TileR reduce_max(const Tile<T, S, L>& t, unsigned char* smem) {
  return detail::reduce<TileR, Axis, detail::MaxOp>(t, smem);
}
template <class TileR, int Axis, class T, class S, class L>
__device__ __forceinline__ TileR reduce_min(const Tile<T, S, L>& t, unsigned char* smem) {
  return detail::reduce<TileR, Axis, detail::MinOp>(t, smem);
}

// The single element of a rank-0 tile (held by thread 0), in every thread.
// Uses 16 bytes of smem.
template <class T>
__device__ __forceinline__ T extract(const Tile<T, Shape<>>& t, unsigned char* smem) {
  static_assert(sizeof(T) <= 16, "extract: element too large");
  T* buf = reinterpret_cast<T*>(smem);
  if (thread_rank() == 0) detail::smem_store(buf, t.v[0]);
  loom::device::bar_sync();
  const T x = detail::smem_load(buf);
  loom::device::bar_sync();
  return x;
}

} // namespace loom::tile
