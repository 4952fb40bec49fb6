// Register layouts of tiles and the Tile value itself.
//
// A layout says which elements of a tile of shape S each thread holds. It
// is a type with four static members, all templated on S:
//   slots<S>()  number of elements per thread (the size of Tile::v)
//   index<S>(k) row-major linear index in S of the calling thread's slot k
//   valid<S>(k) whether slot k holds an element (false past the end of S)
//   owner<S>(k) whether the calling thread is the one that writes slot k's
//               element when a tile is staged through shared memory (a
//               replicated layout holds an element in several threads)
// Ops that keep each element in its thread (elementwise, casts, select,
// splat) work on any layout; ops that move elements between threads
// (convert_layout, broadcast, reduce, dot's staging) go through shared
// memory with index/owner, and have faster paths between the mma layouts.
//
//   Blocked       the default: slot k of thread t is element t + k*kThreads.
//                 Consecutive threads hold consecutive elements (coalesced
//                 global loads and stores).
//   Mma<WM, WN>   a 2-D MxN tile as the C/D fragments of mma.m16n8k16
//                 (PTX_FACTS §1): the tile is cut into 16x8 atoms, the
//                 kWarps = WM*WN warps form a WM x WN grid, warp (wm, wn)
//                 holds the contiguous block of M/16/WM x N/8/WN atoms at
//                 (wm, wn), and lane (g = l/4, t = l%4) holds (g, 2t),
//                 (g, 2t+1), (g+8, 2t), (g+8, 2t+1) of each atom.
//   MmaRows<WM, WN>
//                 a vector of M per-row values ([M] or [M, 1]) laid out like
//                 the rows of Mma<WM, WN>: each thread holds the values of
//                 the rows of its C fragments, so the four lanes of a quad
//                 and the WN warps of a row hold copies (a row reduction of
//                 an Mma tile gives it, and broadcasting it back to Mma is
//                 thread-local).
//   MmaCols<WM, WN>
//                 a vector of N per-column values ([N] or [1, N]) laid out
//                 like the columns of Mma<WM, WN>: each thread holds the two
//                 columns (2t, 2t+1) of each atom column of its warp, so the
//                 8 lanes sharing t and the WM warps of a column hold copies
//                 (column indices and masks computed here broadcast to Mma
//                 thread-locally).
#pragma once

#include "loom/device/tile/core.h"

namespace loom::tile {

struct Blocked {
  template <class S>
  __host__ __device__ static constexpr int slots() {
    return (S::size + kThreads - 1) / kThreads;
  }
  template <class S>
  __device__ __forceinline__ static int index(int k) {
    return slot_index(k);
  }
  template <class S>
  __device__ __forceinline__ static bool valid(int k) {
    return (S::size % kThreads == 0) || slot_index(k) < S::size;
  }
  template <class S>
  __device__ __forceinline__ static bool owner(int) {
    return true;
  }
};

template <int WM, int WN>
struct Mma {
  static_assert(WM > 0 && WN > 0 && WM * WN == kWarps, "Mma: WM * WN must be the warp count");
  template <class S>
  __host__ __device__ static constexpr int atoms_m() {
    static_assert(S::rank == 2 && S::dim(0) % (16 * WM) == 0 && S::dim(1) % (8 * WN) == 0,
                  "Mma: tile is not a whole number of 16x8 atoms per warp");
    return S::dim(0) / 16 / WM;
  }
  template <class S>
  __host__ __device__ static constexpr int atoms_n() {
    return S::dim(1) / 8 / WN;
  }
  template <class S>
  __host__ __device__ static constexpr int slots() {
    return atoms_m<S>() * atoms_n<S>() * 4;
  }
  __device__ __forceinline__ static int warp_m() { return thread_rank() / 32 / WN; }
  __device__ __forceinline__ static int warp_n() { return thread_rank() / 32 % WN; }
  // Slot k = (i * atoms_n + j) * 4 + e: atom (i, j) of the warp's block,
  // fragment element e (c0..c3).
  template <class S>
  __device__ __forceinline__ static int row(int k) {
    const int i = k / 4 / atoms_n<S>(), e = k % 4, lane = thread_rank() % 32;
    return (warp_m() * atoms_m<S>() + i) * 16 + lane / 4 + 8 * (e / 2);
  }
  template <class S>
  __device__ __forceinline__ static int col(int k) {
    const int j = k / 4 % atoms_n<S>(), e = k % 4, lane = thread_rank() % 32;
    return (warp_n() * atoms_n<S>() + j) * 8 + 2 * (lane % 4) + e % 2;
  }
  template <class S>
  __device__ __forceinline__ static int index(int k) {
    return row<S>(k) * S::dim(1) + col<S>(k);
  }
  template <class S>
  __device__ __forceinline__ static bool valid(int) {
    return true;
  }
  template <class S>
  __device__ __forceinline__ static bool owner(int) {
    return true;
  }
};

template <int WM, int WN>
struct MmaRows {
  static_assert(WM > 0 && WN > 0 && WM * WN == kWarps, "MmaRows: WM * WN must be the warp count");
  template <class S>
  __host__ __device__ static constexpr int atoms_m() {
    static_assert((S::rank == 1 || (S::rank == 2 && S::dim(1) == 1)) &&
                      S::dim(0) % (16 * WM) == 0,
                  "MmaRows: an [M] or [M, 1] tile with M a multiple of 16 rows per warp");
    return S::dim(0) / 16 / WM;
  }
  template <class S>
  __host__ __device__ static constexpr int slots() {
    return atoms_m<S>() * 2;
  }
  // Slot k = 2i + h: row g + 8h of the warp's i-th atom row, as in Mma.
  template <class S>
  __device__ __forceinline__ static int index(int k) {
    const int lane = thread_rank() % 32;
    return (Mma<WM, WN>::warp_m() * atoms_m<S>() + k / 2) * 16 + lane / 4 + 8 * (k % 2);
  }
  template <class S>
  __device__ __forceinline__ static bool valid(int) {
    return true;
  }
  template <class S>
  __device__ __forceinline__ static bool owner(int) {
    return thread_rank() % 4 == 0 && Mma<WM, WN>::warp_n() == 0;
  }
};

template <int WM, int WN>
struct MmaCols {
  static_assert(WM > 0 && WN > 0 && WM * WN == kWarps, "MmaCols: WM * WN must be the warp count");
  template <class S>
  __host__ __device__ static constexpr int atoms_n() {
    static_assert((S::rank == 1 || (S::rank == 2 && S::dim(0) == 1)) &&
                      S::dim(S::rank - 1) % (8 * WN) == 0,
                  "MmaCols: an [N] or [1, N] tile with N a multiple of 8 columns per warp");
    return S::dim(S::rank - 1) / 8 / WN;
  }
  template <class S>
  __host__ __device__ static constexpr int slots() {
    return atoms_n<S>() * 2;
  }
  // Slot k = 2j + h: column 2t + h of the warp's j-th atom column, as in Mma.
  template <class S>
  __device__ __forceinline__ static int index(int k) {
    const int lane = thread_rank() % 32;
    return (Mma<WM, WN>::warp_n() * atoms_n<S>() + k / 2) * 8 + 2 * (lane % 4) + k % 2;
  }
  template <class S>
  __device__ __forceinline__ static bool valid(int) {
    return true;
  }
  template <class S>
  __device__ __forceinline__ static bool owner(int) {
    return thread_rank() % 32 < 4 && Mma<WM, WN>::warp_m() == 0;
  }
};

// A tile of shape S spread over the block in layout L. Every op keeps the
// slots that are not valid initialized (to T{} or a value computed from
// initialized slots), so they never hold indeterminate values.
template <class T, class S, class L = Blocked>
struct Tile {
  using element_type = T;
  using shape = S;
  using layout = L;
  static constexpr int kPerThread = L::template slots<S>();
  T v[kPerThread];
};

template <class X>
struct is_tile {
  static constexpr bool value = false;
};
template <class T, class S, class L>
struct is_tile<Tile<T, S, L>> {
  static constexpr bool value = true;
};

namespace detail {
// Where staging puts element i of a row-major tile: buf + Map{}(i).
struct LinearIndex {
  __device__ __forceinline__ int operator()(int i) const { return i; }
};

// Writes every element the calling thread owns to buf + Map{}(linear index):
// each element of the tile is written exactly once. (A functor type rather
// than a lambda: NVRTC does not always inline lambdas, and every staging
// call sits in a kernel's hot loop.)
template <class Map = LinearIndex, class T, class S, class L>
__device__ __forceinline__ void stage(T* buf, const Tile<T, S, L>& t) {
  const Map map{};
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S, L>::kPerThread; ++k)
    if (L::template valid<S>(k) && L::template owner<S>(k))
      smem_store(buf + map(L::template index<S>(k)), t.v[k]);
}
} // namespace detail

} // namespace loom::tile
