// Tile construction: arange, splat, reshape (per-thread copies) and
// broadcast (through shared scratch).
#pragma once

#include "loom/device/tile/memory.h"

namespace loom::tile {

// 1-D int32 tile with values Start, Start+1, ...
template <class TileT, int Start>
__device__ __forceinline__ TileT arange() {
  static_assert(is_same_v<typename TileT::element_type, int32_t>, "arange: int32 tiles");
  static_assert(TileT::shape::rank == 1, "arange: 1-D tiles");
  TileT r;
  LOOM_UNROLL
  for (int k = 0; k < TileT::kPerThread; ++k) r.v[k] = Start + slot_index(k);
  return r;
}

// Every element = scalar converted to the element type (as cast<T>).
template <class TileT, class Scalar>
__device__ __forceinline__ TileT splat(Scalar scalar) {
  const auto x = detail::convert<typename TileT::element_type>(scalar);
  TileT r;
  LOOM_UNROLL
  for (int k = 0; k < TileT::kPerThread; ++k) r.v[k] = x;
  return r;
}

// Same size and row-major order under another shape (e.g. expand_dims): the
// distribution depends only on the linear index, so this is a per-thread copy.
template <class TileT, class Src>
__device__ __forceinline__ TileT reshape(const Src& src) {
  static_assert(TileT::shape::size == Src::shape::size, "reshape: sizes differ");
  static_assert(is_same_v<typename TileT::element_type, typename Src::element_type>,
                "reshape: element types differ");
  TileT r;
  LOOM_UNROLL
  for (int k = 0; k < TileT::kPerThread; ++k) r.v[k] = src.v[k];
  return r;
}

namespace detail {
// Linear index in Src of the element of Dst at linear index i, where every
// dimension of Src is either Dst's or 1 (repeated).
template <class Dst, class Src, int D = 0>
__device__ __forceinline__ int broadcast_source(int i) {
  if constexpr (D == Dst::rank) {
    return 0;
  } else {
    constexpr int dst_stride = Dst::stride(D), dst_dim = Dst::dim(D);
    constexpr bool repeat = Src::dim(D) == 1;
    const int coord = repeat ? 0 : i / dst_stride % dst_dim;
    return coord * Src::stride(D) + broadcast_source<Dst, Src, D + 1>(i);
  }
}

template <class Dst, class Src, int D = 0>
__host__ __device__ constexpr bool broadcastable() {
  if constexpr (D == Dst::rank) return true;
  else return (Src::dim(D) == Dst::dim(D) || Src::dim(D) == 1) && broadcastable<Dst, Src, D + 1>();
}
} // namespace detail

// Repeats the size-1 dimensions of src to TileT's shape (same rank). Uses
// Src::size * sizeof(T) bytes of smem; leaves the block synchronized.
template <class TileT, class Src>
__device__ __forceinline__ TileT broadcast(const Src& src, unsigned char* smem) {
  using T = typename TileT::element_type;
  using DS = typename TileT::shape;
  using SS = typename Src::shape;
  static_assert(is_same_v<T, typename Src::element_type>, "broadcast: element types differ");
  static_assert(DS::rank == SS::rank, "broadcast: ranks differ (reshape first)");
  static_assert(detail::broadcastable<DS, SS>(), "broadcast: incompatible shapes");
  if constexpr (is_same_v<DS, SS>) {
    return reshape<TileT>(src);
  } else {
    T* buf = reinterpret_cast<T*>(smem);
    LOOM_UNROLL
    for (int k = 0; k < Src::kPerThread; ++k)
      if (detail::slot_valid<SS>(k)) detail::smem_store(buf + slot_index(k), src.v[k]);
    loom::device::bar_sync();
    TileT r;
    LOOM_UNROLL
    for (int k = 0; k < TileT::kPerThread; ++k)
      r.v[k] = detail::slot_valid<DS>(k)
                   ? detail::smem_load(buf + detail::broadcast_source<DS, SS>(slot_index(k)))
                   : T{};
    loom::device::bar_sync();
    return r;
  }
}

} // namespace loom::tile
