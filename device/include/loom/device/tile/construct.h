// Tile construction: arange, splat, reshape (per-thread copies), broadcast
// and convert_layout (through shared scratch, or per thread between the mma
// layouts).
#pragma once

#include "loom/device/tile/memory.h"

namespace loom::tile {

// 1-D int32 tile with values Start, Start+1, ... (in any layout).
template <class TileT, int Start>
__device__ __forceinline__ TileT arange() {
  using S = typename TileT::shape;
  using L = typename TileT::layout;
  static_assert(is_same_v<typename TileT::element_type, int32_t>, "arange: int32 tiles");
  static_assert(S::rank == 1, "arange: 1-D tiles");
  TileT r;
  LOOM_UNROLL
  for (int k = 0; k < TileT::kPerThread; ++k) r.v[k] = Start + L::template index<S>(k);
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
// Blocked, MmaRows and MmaCols distributions depend only on the linear index, so this
// is a per-thread copy within one layout.
template <class TileT, class Src>
__device__ __forceinline__ TileT reshape(const Src& src) {
  static_assert(TileT::shape::size == Src::shape::size, "reshape: sizes differ");
  static_assert(is_same_v<typename TileT::element_type, typename Src::element_type>,
                "reshape: element types differ");
  static_assert(is_same_v<typename TileT::layout, typename Src::layout> &&
                    TileT::kPerThread == Src::kPerThread,
                "reshape: one layout whose slots depend only on the linear index");
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

namespace detail {
// Whether Dst (Mma<WM, WN>) repeats the rows of Src (MmaRows<WM, WN>):
// every thread already holds the row values its fragments need.
template <class Dst, class Src>
inline constexpr bool rows_to_mma_v = false;
template <int WM, int WN>
inline constexpr bool rows_to_mma_v<Mma<WM, WN>, MmaRows<WM, WN>> = true;
// Whether Dst (Mma<WM, WN>) repeats the columns of Src (MmaCols<WM, WN>).
template <class Dst, class Src>
inline constexpr bool cols_to_mma_v = false;
template <int WM, int WN>
inline constexpr bool cols_to_mma_v<Mma<WM, WN>, MmaCols<WM, WN>> = true;
} // namespace detail

namespace detail {
// src staged row-major in shared memory (Src::size * sizeof(T) bytes), then
// element i of the result (linear index in TileT's shape) read back from
// linear index source(i) of src, in TileT's layout. Barriers before and
// after the reads: leaves the block synchronized, smem free again.
template <class TileT, class Src, class SourceIndex>
__device__ __forceinline__ TileT through_shared(const Src& src, unsigned char* smem,
                                                SourceIndex source) {
  using T = typename TileT::element_type;
  using DS = typename TileT::shape;
  using DL = typename TileT::layout;
  T* buf = reinterpret_cast<T*>(smem);
  stage(buf, src);
  loom::device::bar_sync();
  TileT r;
  LOOM_UNROLL
  for (int k = 0; k < TileT::kPerThread; ++k)
    r.v[k] = DL::template valid<DS>(k) ? smem_load(buf + source(DL::template index<DS>(k))) : T{};
  loom::device::bar_sync();
  return r;
}
} // namespace detail

// Repeats the size-1 dimensions of src to TileT's shape (same rank), in
// TileT's layout. Uses Src::size * sizeof(T) bytes of smem (none for MmaRows
// [M, 1] or MmaCols [1, N] -> Mma [M, N]); leaves the block synchronized.
template <class TileT, class Src>
__device__ __forceinline__ TileT broadcast(const Src& src, unsigned char* smem) {
  using T = typename TileT::element_type;
  using DS = typename TileT::shape;
  using SS = typename Src::shape;
  using DL = typename TileT::layout;
  static_assert(is_same_v<T, typename Src::element_type>, "broadcast: element types differ");
  static_assert(DS::rank == SS::rank, "broadcast: ranks differ (reshape first)");
  static_assert(detail::broadcastable<DS, SS>(), "broadcast: incompatible shapes");
  if constexpr (is_same_v<DS, SS> && is_same_v<DL, typename Src::layout>) {
    return reshape<TileT>(src);
  } else if constexpr (detail::rows_to_mma_v<DL, typename Src::layout> && SS::dim(1) == 1) {
    // Slot k of an Mma tile is element e = k % 4 of atom k / 4, whose row is
    // MmaRows slot 2 * (atom row) + e / 2.
    TileT r;
    LOOM_UNROLL
    for (int k = 0; k < TileT::kPerThread; ++k)
      r.v[k] = src.v[2 * (k / 4 / DL::template atoms_n<DS>()) + k % 4 / 2];
    return r;
  } else if constexpr (detail::cols_to_mma_v<DL, typename Src::layout> && SS::dim(0) == 1) {
    // Slot k of an Mma tile is element e = k % 4 of atom k / 4, whose
    // column is MmaCols slot 2 * (atom column) + e % 2.
    TileT r;
    LOOM_UNROLL
    for (int k = 0; k < TileT::kPerThread; ++k)
      r.v[k] = src.v[2 * (k / 4 % DL::template atoms_n<DS>()) + k % 2];
    return r;
  } else {
    return detail::through_shared<TileT>(
        src, smem, [](int i) { return detail::broadcast_source<DS, SS>(i); });
  }
}

// The same tile in TileT's layout, through shared memory (Src::size *
// sizeof(T) bytes of smem); leaves the block synchronized.
template <class TileT, class Src>
__device__ __forceinline__ TileT convert_layout(const Src& src, unsigned char* smem) {
  static_assert(is_same_v<typename TileT::shape, typename Src::shape>,
                "convert_layout: shapes differ");
  return broadcast<TileT>(src, smem);
}

// The transpose of a 2-D tile, in TileT's layout: element (i, j) of the
// result is src's (j, i). Through shared memory (Src::size * sizeof(T)
// bytes of smem), like convert_layout; leaves the block synchronized.
template <class TileT, class Src>
__device__ __forceinline__ TileT transpose(const Src& src, unsigned char* smem) {
  using DS = typename TileT::shape;
  using SS = typename Src::shape;
  static_assert(DS::rank == 2 && SS::rank == 2 && DS::dim(0) == SS::dim(1) &&
                    DS::dim(1) == SS::dim(0),
                "transpose: the result's shape must be the source's, swapped");
  static_assert(is_same_v<typename TileT::element_type, typename Src::element_type>,
                "transpose: element types differ");
  // Result (row, col) is source (col, row).
  return detail::through_shared<TileT>(
      src, smem, [](int i) { return i % DS::dim(1) * SS::dim(1) + i / DS::dim(1); });
}

} // namespace loom::tile
