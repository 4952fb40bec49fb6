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

// The emulated device checks every global access against the launch's
// buffers; on the GPU the check compiles away.
#if defined(LOOM_DEVICE_EMULATION)
#define LOOM_CHECK_GLOBAL(ptr, what) \
  ::loom::device::emu::check_global((ptr), sizeof(*(ptr)), (what))
#else
#define LOOM_CHECK_GLOBAL(ptr, what) ((void)0)
#endif

template <class T, class I, class S>
__device__ __forceinline__ Tile<T, S> load(const T* p, const Tile<I, S>& off) {
  static_assert(is_same_v<I, int32_t> || is_same_v<I, int64_t>, "load: int32/int64 offsets");
  Tile<T, S> r;
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k)
    r.v[k] = detail::slot_valid<S>(k)
                 ? (LOOM_CHECK_GLOBAL(&p[off.v[k]], "global load"), p[off.v[k]])
                 : T{};
  return r;
}

template <class T, class I, class S>
__device__ __forceinline__ Tile<T, S> load(const T* p, const Tile<I, S>& off,
                                           const Tile<bool, S>& mask, const Tile<T, S>& other) {
  static_assert(is_same_v<I, int32_t> || is_same_v<I, int64_t>, "load: int32/int64 offsets");
  Tile<T, S> r;
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k)
    r.v[k] = detail::slot_valid<S>(k) && mask.v[k]
                 ? (LOOM_CHECK_GLOBAL(&p[off.v[k]], "global load"), p[off.v[k]])
                 : other.v[k];
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
    if (detail::slot_valid<S>(k)) {
      LOOM_CHECK_GLOBAL(&p[off.v[k]], "global store");
      p[off.v[k]] = value.v[k];
    }
}

template <class T, class I, class S>
__device__ __forceinline__ void store(T* p, const Tile<I, S>& off, const Tile<T, S>& value,
                                      const Tile<bool, S>& mask) {
  static_assert(is_same_v<I, int32_t> || is_same_v<I, int64_t>, "store: int32/int64 offsets");
  LOOM_UNROLL
  for (int k = 0; k < Tile<T, S>::kPerThread; ++k)
    if (detail::slot_valid<S>(k) && mask.v[k]) {
      LOOM_CHECK_GLOBAL(&p[off.v[k]], "global store");
      p[off.v[k]] = value.v[k];
    }
}

} // namespace loom::tile
