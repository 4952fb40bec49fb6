// Reductions along one axis, and extract of a rank-0 tile, through shared
// scratch. Each leaves the block synchronized.
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
template <class TileR, int Axis, class Op, class T, class S>
__device__ __forceinline__ TileR reduce_unsynced(const Tile<T, S>& t, unsigned char* smem) {
  using R = remove_axis_t<S, Axis>;
  using A = reduce_acc_t<T>;
  static_assert(Axis >= 0 && Axis < S::rank, "reduce: axis out of range");
  static_assert(is_same_v<TileR, Tile<T, R>>, "reduce: result must be Tile<T, S without Axis>");
  constexpr int D = S::dim(Axis), inner = S::stride(Axis);
  T* buf = reinterpret_cast<T*>(smem);
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k)
    if (slot_valid<S>(k)) smem_store(buf + slot_index(k), t.v[k]);
  loom::device::bar_sync();
  TileR r;
  const Op op;
  LOOM_UNROLL
  for (int k = 0; k < TileR::kPerThread; ++k) {
    const int j = slot_index(k);
    if (slot_valid<R>(k)) {
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

template <class TileR, int Axis, class Op, class T, class S>
__device__ __forceinline__ TileR reduce(const Tile<T, S>& t, unsigned char* smem) {
  TileR r = reduce_unsynced<TileR, Axis, Op>(t, smem);
  loom::device::bar_sync();
  return r;
}

} // namespace detail

template <class TileR, int Axis, class T, class S>
__device__ __forceinline__ TileR reduce_sum(const Tile<T, S>& t, unsigned char* smem) {
  return detail::reduce<TileR, Axis, detail::SumOp>(t, smem);
}
template <class TileR, int Axis, class T, class S>
__device__ __forceinline__ TileR reduce_max(const Tile<T, S>& t, unsigned char* smem) {
  return detail::reduce<TileR, Axis, detail::MaxOp>(t, smem);
}
template <class TileR, int Axis, class T, class S>
__device__ __forceinline__ TileR reduce_min(const Tile<T, S>& t, unsigned char* smem) {
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
