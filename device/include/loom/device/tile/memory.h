// Global-memory loads and stores of tiles. Thread-local: each thread touches
// only its own slots, through p[offset]; slots past the tile's size and
// masked-off elements never dereference p.
#pragma once

#include "loom/device/tile/elementwise.h"

namespace loom::tile {

namespace detail {
template <class S>
__device__ __forceinline__ bool slot_valid(int k) {
  return (S::size % kThreads == 0) || slot_index(k) < S::size;
}
} // namespace detail

// Global accesses go through detail::global_load/global_store (core.h): the
// emulated device checks them against the launch's buffers, and a lane a
// predicate turns off still takes part in the warp's request (counters).
#if defined(LOOM_DEVICE_EMULATION)
#define LOOM_CP_ASYNC_IDLE() ::loom::device::emu::cp_async_idle()
#else
#define LOOM_CP_ASYNC_IDLE() ((void)0)
#endif

template <class T, class I, class S>
__device__ __forceinline__ Tile<T, S> load(const T* p, const Tile<I, S>& off) {
  static_assert(is_same_v<I, int32_t> || is_same_v<I, int64_t>, "load: int32/int64 offsets");
  Tile<T, S> r;
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k)
    r.v[k] = detail::global_load(p + off.v[k], detail::slot_valid<S>(k), T{});
  return r;
}

template <class T, class I, class S>
__device__ __forceinline__ Tile<T, S> load(const T* p, const Tile<I, S>& off,
                                           const Tile<bool, S>& mask, const Tile<T, S>& other) {
  static_assert(is_same_v<I, int32_t> || is_same_v<I, int64_t>, "load: int32/int64 offsets");
  Tile<T, S> r;
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k)
    r.v[k] = detail::global_load(p + off.v[k], detail::slot_valid<S>(k) && mask.v[k],
                                 other.v[k]);
  return r;
}

template <class T, class I, class S>
__device__ __forceinline__ Tile<T, S> load(const T* p, const Tile<I, S>& off,
                                           const Tile<bool, S>& mask) {
  Tile<T, S> zero;
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k) zero.v[k] = T{};
  return load(p, off, mask, zero);
}

template <class T, class I, class S>
__device__ __forceinline__ void store(T* p, const Tile<I, S>& off, const Tile<T, S>& value) {
  static_assert(is_same_v<I, int32_t> || is_same_v<I, int64_t>, "store: int32/int64 offsets");
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k)
    detail::global_store(p + off.v[k], detail::slot_valid<S>(k), value.v[k]);
}

template <class T, class I, class S>
__device__ __forceinline__ void store(T* p, const Tile<I, S>& off, const Tile<T, S>& value,
                                      const Tile<bool, S>& mask) {
  static_assert(is_same_v<I, int32_t> || is_same_v<I, int64_t>, "store: int32/int64 offsets");
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k)
    detail::global_store(p + off.v[k], detail::slot_valid<S>(k) && mask.v[k], value.v[k]);
}

// Strided blocks (loom.block_load / loom.block_store): element (i_0, ...,
// i_{r-1}) of the tile is p[base + sum_d i_d * stride_d], touched only where
// i_d < bound_d for every d. The scalars come as (strides..., bounds...),
// rank of each. Each thread derives its elements' coordinates from its slot
// indices (compile-time shape), so no tile of offsets or predicates exists.
namespace detail {
template <class S>
struct BlockAccess {
  static_assert(S::rank >= 1, "block access of a tile of rank >= 1");
  int64_t strides[S::rank];
  int32_t bounds[S::rank];

  // Element `index` (row-major): its offset from base, and whether every
  // bound keeps it.
  __device__ __forceinline__ bool at(int index, int64_t& offset) const {
    bool inside = true;
    offset = 0;
    LOOM_UNROLL
    for (int d = 0; d < S::rank; ++d) {
      const int i = index / S::stride(d) % S::dim(d);
      offset += i * strides[d];
      inside = inside && i < bounds[d];
    }
    return inside;
  }
};

template <class S, class... SB>
__device__ __forceinline__ BlockAccess<S> block_access(SB... sb) {
  static_assert(sizeof...(SB) == 2 * S::rank, "block access: a stride and a bound per dimension");
  const int64_t args[] = {int64_t(sb)...};
  BlockAccess<S> a;
  LOOM_UNROLL
  for (int d = 0; d < S::rank; ++d) {
    a.strides[d] = args[d];
    a.bounds[d] = (int32_t)args[S::rank + d];
  }
  return a;
}
} // namespace detail

template <class TileT, class T, class... SB>
__device__ __forceinline__ TileT block_load(const T* p, T other, int64_t base, SB... sb) {
  using S = typename TileT::shape;
  static_assert(is_same_v<typename TileT::element_type, T>, "block_load: element type");
  static_assert(is_same_v<typename TileT::layout, Blocked>, "block_load: blocked tiles");
  const auto access = detail::block_access<S>(sb...);
  TileT r;
  LOOM_UNROLL
  for (int k = 0; k < TileT::kPerThread; ++k) {
    int64_t off;
    const bool inside = access.at(slot_index(k), off);
    r.v[k] = detail::global_load(p + base + off, detail::slot_valid<S>(k) && inside, other);
  }
  return r;
}

// A block_load that is not read into registers: its scalars, read where
// the tile is consumed. loom-structure-memory makes one for a load whose
// only user is a dot operand: dot's staging then copies global memory
// straight into shared memory (16-byte cp.async chunks for 16-bit rows,
// see stage_by_chunks; no tile live until the dot), once per dot, so a view
// defined outside a loop is read again in every iteration.
//
// kColumnMajor (the load's column_major): a rank-2 view whose columns are
// contiguous (strides[0] == 1), such as K^T. Staging keeps it transposed,
// so that the chunks run along its columns (see StagedLayout).
namespace detail {
// What every dot operand view declares (GlobalBlock, SharedBlock): its
// element type, shape and whether it is stored transposed. A base with no
// members: the views are aggregates initialized as View{{}, fields...}.
template <class T, class S, bool kColumnMajor>
struct OperandView {
  static_assert(!kColumnMajor || S::rank == 2, "column-major dot operands are 2-D");
  using element_type = T;
  using shape = S;
  static constexpr bool column_major = kColumnMajor;
};
} // namespace detail

template <class T, class S, bool kColumnMajor = false>
struct GlobalBlock : detail::OperandView<T, S, kColumnMajor> {
  const T* p;
  T other;
  int64_t base;
  detail::BlockAccess<S> access;
};

template <class ViewT, class T, class... SB>
__device__ __forceinline__ ViewT block_view(const T* p, T other, int64_t base, SB... sb) {
  static_assert(is_same_v<typename ViewT::element_type, T>, "block_view: element type");
  return ViewT{{}, p, other, base, detail::block_access<typename ViewT::shape>(sb...)};
}

// A dot operand already in shared memory, at p, in the layout the dot's
// staging would give it (StagedLayout<S, kColumnMajor>, 16-byte chunks
// swizzled along the stored rows, see dot.h): a slot of a pipeline
// (pipeline.h). The dot reads it in place.
template <class T, class S, bool kColumnMajor = false>
struct SharedBlock : detail::OperandView<T, S, kColumnMajor> {
  const T* p;
};

template <class X>
inline constexpr bool is_shared_block_v = false;
template <class T, class S, bool kColumnMajor>
inline constexpr bool is_shared_block_v<SharedBlock<T, S, kColumnMajor>> = true;

// Whether operand X is staged transposed (a column-major view or slot);
// register tiles are staged row-major.
template <class X>
inline constexpr bool is_column_major_v = false;
template <class T, class S>
inline constexpr bool is_column_major_v<GlobalBlock<T, S, true>> = true;
template <class T, class S>
inline constexpr bool is_column_major_v<SharedBlock<T, S, true>> = true;

namespace detail {
// How staging lays out a 2-D operand of shape S (before the swizzle Map
// permutes its chunks): row-major, or, column-major, as its transpose
// (S::dim(1) stored rows of S::dim(0) elements, stored row j = column j),
// so that the dimension contiguous in global memory is the one contiguous
// in shared memory and a 16-byte chunk of a stored row is one cp.async.
template <class S, bool kColumnMajor>
struct StagedLayout {
  // The view dimension along a stored row, and the one across them.
  static constexpr int kAlong = kColumnMajor ? 0 : 1, kAcross = 1 - kAlong;
  static constexpr int kRowLength = S::dim(kAlong);
  // Stored index of element (i, j).
  __device__ __forceinline__ static int index(int i, int j) {
    return kColumnMajor ? j * S::dim(0) + i : i * S::dim(1) + j;
  }
};

// Staging of a view of 16-bit elements in chunks of 8 consecutive elements
// of one stored row (StagedLayout): chunk c goes to thread c % kThreads.
// Where the view is contiguous along the stored rows (unit stride there:
// strides[1] row-major, strides[0] column-major), `other` is zero (what a
// copy does not read, it zero-fills) and both addresses are 16-byte
// aligned, a chunk is one cp.async of 16 bytes, global -> shared without
// passing through registers; otherwise its elements are copied one by one.
// `map` keeps each chunk contiguous (the swizzle permutes whole chunks).
// Issues the copies only: the caller commits and waits (cp.async) before
// its barrier.
template <class T, class S, bool kColumnMajor>
inline constexpr bool kStagedByChunks =
    S::rank == 2 && sizeof(T) == 2 && S::dim(kColumnMajor ? 0 : 1) % 8 == 0;

// The two ways issue_chunks copies a view's chunks (below).
template <class Map, class T, class S, bool kColumnMajor>
struct ChunkCopy {
  using L = StagedLayout<S, kColumnMajor>;
  static constexpr int along = L::kAlong, across = L::kAcross;
  static constexpr unsigned kChunksPerRow = L::kRowLength / 8;
  static constexpr unsigned kChunks = S::dim(across) * kChunksPerRow;
  static constexpr unsigned kSteps = (kChunks + kThreads - 1) / kThreads;

  // Chunk `step` of the calling thread: its stored row and first column,
  // how many of its 8 elements the bounds keep, and where it goes.
  struct Chunk {
    unsigned r, c0;
    int valid;
    T* dst;
  };
  __device__ __forceinline__ static bool chunk(T* buf, const BlockAccess<S>& a, unsigned step,
                                               Chunk& out) {
    const unsigned c = (unsigned)thread_rank() + step * kThreads;
    if (kChunks % kThreads != 0 && c >= kChunks)
      return false;
    out.r = c / kChunksPerRow;
    out.c0 = c % kChunksPerRow * 8;
    const int left = (int)out.r < a.bounds[across] ? a.bounds[along] - (int)out.c0 : 0;
    out.valid = left < 0 ? 0 : left > 8 ? 8 : left;
    out.dst = buf + Map{}((int)(out.r * L::kRowLength + out.c0));
    return true;
  }

  // 16-byte cp.async per chunk (zero-filled past the bounds).
  __device__ __forceinline__ static void async(T* buf, const GlobalBlock<T, S, kColumnMajor>& g) {
    const T* const start = g.p + g.base;
    LOOM_UNROLL
    for (unsigned step = 0; step < kSteps; ++step) {
      Chunk ch;
      if (!chunk(buf, g.access, step, ch)) {
        // Warp-uniform trips (a lane past the last chunk idles), so that the
        // emulator's counters see every lane in each warp's cp.async request.
        LOOM_CP_ASYNC_IDLE();
        continue;
      }
      const T* row = start + (int64_t)ch.r * g.access.strides[across];
      // (the emulated cp.async checks its source bytes against the buffers)
      loom::device::cp_async_16(ch.dst, ch.valid > 0 ? row + ch.c0 : g.p, ch.valid * 2);
    }
  }

  // Element by element (strided along the rows, misaligned, or a non-zero
  // `other`): rare, and kept out of line so the fast path's loop stays small.
  __device__ LOOM_NOINLINE static void elementwise(T* buf, GlobalBlock<T, S, kColumnMajor> g) {
    const T* const start = g.p + g.base;
    for (unsigned step = 0; step < kSteps; ++step) {
      Chunk ch;
      if (!chunk(buf, g.access, step, ch))
        break;
      const T* row = start + (int64_t)ch.r * g.access.strides[across];
      for (int e = 0; e < 8; ++e) {
        const T* src = row + ((int)ch.c0 + e) * g.access.strides[along];
        smem_store(ch.dst + e, global_load(src, e < ch.valid, g.other));
      }
    }
  }
};

// Per tile, not per chunk: whether the view is copyable and its start and
// row stride keep every chunk 16-byte aligned (the destination always is:
// slots and scratch are 16-byte aligned and the swizzle moves whole
// chunks), so the branch is block-uniform; chunk coordinates are unsigned
// compile-time divisions of an unrolled index.
template <class Map, class T, class S, bool kColumnMajor>
__device__ __forceinline__ void issue_chunks(T* buf, const GlobalBlock<T, S, kColumnMajor>& g) {
  using Copy = ChunkCopy<Map, T, S, kColumnMajor>;
  const auto& a = g.access;
  const bool aligned =
      a.strides[Copy::along] == 1 && g.other.bits == 0 &&
      (((unsigned long long)(g.p + g.base) |
        (unsigned long long)(a.strides[Copy::across] * sizeof(T))) &
       15) == 0;
  if (aligned)
    Copy::async(buf, g);
  else
    Copy::elementwise(buf, g);
}

// Copies the view into buf (see issue_chunks) and waits for the copies.
template <class Map, class T, class S, bool kColumnMajor>
__device__ __forceinline__ void stage_by_chunks(T* buf, const GlobalBlock<T, S, kColumnMajor>& g) {
  issue_chunks<Map>(buf, g);
  loom::device::cp_async_commit();
  loom::device::cp_async_wait<0>(); // visible to the block after the caller's barrier
}

// Staging (see layout.h) of a view into buf + Map{}(stored index), in its
// StagedLayout: by chunks for 16-bit stored rows of whole chunks, else each
// thread copies the elements a blocked tile would give it, in the same
// order.
template <class Map = LinearIndex, class T, class S, bool kColumnMajor>
__device__ __forceinline__ void stage(T* buf, const GlobalBlock<T, S, kColumnMajor>& g) {
  if constexpr (kStagedByChunks<T, S, kColumnMajor>) {
    stage_by_chunks<Map>(buf, g);
  } else {
    const Map map{};
    LOOM_UNROLL
    for (int k = 0; k < Blocked::slots<S>(); ++k) {
      // A lane past the tile's size idles in the warp's load (counters).
      const bool valid = slot_valid<S>(k);
      const int i = slot_index(k);
      int stored = i; // row-major: the tile's own (any-rank) index
      if constexpr (kColumnMajor)
        stored = StagedLayout<S, true>::index(i / S::dim(1), i % S::dim(1));
      int64_t off;
      const bool inside = g.access.at(i, off) && valid;
      const T x = global_load(g.p + g.base + off, inside, g.other);
      if (valid) smem_store(buf + map(stored), x);
    }
  }
}
} // namespace detail

template <class T, class S, class... SB>
__device__ __forceinline__ void block_store(T* p, const Tile<T, S>& value, int64_t base, SB... sb) {
  const auto access = detail::block_access<S>(sb...);
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k) {
    int64_t off;
    const bool inside = access.at(slot_index(k), off);
    detail::global_store(p + base + off, detail::slot_valid<S>(k) && inside, value.v[k]);
  }
}

} // namespace loom::tile
