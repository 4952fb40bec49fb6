// Core of the generic tile layer: block size, shapes, element types, thread
// indices and the grid/scratch accessors (tiles and their layouts: layout.h). Plain CUDA C++ on top of the primitive
// layer; compiles under NVRTC (no host headers) and as host C++20 with
// LOOM_DEVICE_EMULATION.
#pragma once

#include "loom/device/primitives.h"

#if defined(LOOM_DEVICE_EMULATION) || !defined(__CUDACC_RTC__)
#include <cstdint>
#endif

// LOOM_UNROLL before a loop whose index selects registers (Tile::v[k]);
// LOOM_NO_UNROLL before one that should stay a loop, so that ptxas computes
// its addresses per iteration instead of hoisting all of them into registers.
#if defined(LOOM_DEVICE_EMULATION)
#define LOOM_UNROLL
#define LOOM_NO_UNROLL
#else
#define LOOM_UNROLL _Pragma("unroll")
#define LOOM_NO_UNROLL _Pragma("unroll 1")
#endif

// LOOM_NOINLINE keeps a rarely taken path out of a hot loop's code on the
// GPU; the emulator inlines it (a host macro named __noinline__ would break
// the standard library's own attributes).
#if defined(LOOM_DEVICE_EMULATION)
#define LOOM_NOINLINE
#else
#define LOOM_NOINLINE __noinline__
#endif

#ifndef LOOM_NUM_THREADS
#define LOOM_NUM_THREADS 128
#endif

namespace loom::tile {

// ---- integer types ------------------------------------------------------------
// The host names are used in emulation and under nvcc (which has <cstdint>)
// so that host code, generated code and the library agree on one type
// (int64_t is `long` on LP64 Linux); NVRTC has no <cstdint>.
#if defined(LOOM_DEVICE_EMULATION) || !defined(__CUDACC_RTC__)
using std::int16_t;
using std::int32_t;
using std::int64_t;
using std::int8_t;
using std::uint16_t;
using std::uint32_t;
using std::uint64_t;
using std::uint8_t;
#else
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
#endif
static_assert(sizeof(int32_t) == 4 && sizeof(int64_t) == 8, "tile integer widths");

constexpr int kThreads = LOOM_NUM_THREADS;
static_assert(kThreads > 0 && kThreads % 32 == 0,
              "LOOM_NUM_THREADS must be a positive multiple of 32");
constexpr int kWarps = kThreads / 32;

// ---- shapes -------------------------------------------------------------------

template <int... Dims>
struct Shape {
  static constexpr int rank = (int)sizeof...(Dims);
  static constexpr int size = (1 * ... * Dims);
  __host__ __device__ static constexpr int dim(int i) {
    constexpr int d[rank + 1] = {Dims..., 0};
    return d[i];
  }
  // Row-major stride of dimension i (product of the later dims).
  __host__ __device__ static constexpr int stride(int i) {
    int s = 1;
    for (int j = rank - 1; j > i; --j) s *= dim(j);
    return s;
  }
};

namespace detail {
template <bool C, class A, class B>
struct conditional {
  typedef A type;
};
template <class A, class B>
struct conditional<false, A, B> {
  typedef B type;
};

// Shape<Out..., dims of S after position I except Axis>.
template <int Axis, int I, class Out, class S>
struct RemoveAxis;
template <int Axis, int I, int... Out>
struct RemoveAxis<Axis, I, Shape<Out...>, Shape<>> {
  typedef Shape<Out...> type;
};
template <int Axis, int I, int... Out, int D, int... Rest>
struct RemoveAxis<Axis, I, Shape<Out...>, Shape<D, Rest...>> {
  typedef typename RemoveAxis<
      Axis, I + 1, typename conditional<I == Axis, Shape<Out...>, Shape<Out..., D>>::type,
      Shape<Rest...>>::type type;
};
} // namespace detail
template <class S, int Axis>
using remove_axis_t = typename detail::RemoveAxis<Axis, 0, Shape<>, S>::type;

// ---- element types ------------------------------------------------------------

// IEEE binary16 and bfloat16 as raw bits (the primitive layer's convention).
struct half_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

// (Variable templates rather than static data members: NVRTC emits every
// instantiated static constexpr member into the module as a global.)
template <class A, class B>
inline constexpr bool is_same_v = false;
template <class A>
inline constexpr bool is_same_v<A, A> = true;

template <class T>
inline constexpr bool is_low_float_v = is_same_v<T, half_t> || is_same_v<T, bf16_t>;
template <class T>
inline constexpr bool is_float_v = is_same_v<T, float> || is_low_float_v<T>;
template <class T>
inline constexpr bool is_int_v = is_same_v<T, int8_t> || is_same_v<T, int16_t> ||
                                 is_same_v<T, int32_t> || is_same_v<T, int64_t>;

// The unsigned type of an integer's width, for wrapping arithmetic.
template <class T> struct unsigned_of;
template <> struct unsigned_of<int8_t> { typedef uint8_t type; };
template <> struct unsigned_of<int16_t> { typedef uint16_t type; };
template <> struct unsigned_of<int32_t> { typedef uint32_t type; };
template <> struct unsigned_of<int64_t> { typedef uint64_t type; };

// Integer limits as constexpr functions (static data members would be
// emitted into every NVRTC module as globals).
template <class T> struct int_limits;
template <> struct int_limits<int8_t> {
  __host__ __device__ static constexpr int8_t min() { return -128; }
  __host__ __device__ static constexpr int8_t max() { return 127; }
};
template <> struct int_limits<int16_t> {
  __host__ __device__ static constexpr int16_t min() { return -32768; }
  __host__ __device__ static constexpr int16_t max() { return 32767; }
};
template <> struct int_limits<int32_t> {
  __host__ __device__ static constexpr int32_t min() { return -2147483647 - 1; }
  __host__ __device__ static constexpr int32_t max() { return 2147483647; }
};
template <> struct int_limits<int64_t> {
  __host__ __device__ static constexpr int64_t min() { return -9223372036854775807LL - 1; }
  __host__ __device__ static constexpr int64_t max() { return 9223372036854775807LL; }
};

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(half_t x) { return loom::device::f16_to_f32(x.bits); }
__device__ __forceinline__ float to_float(bf16_t x) { return loom::device::bf16_to_f32(x.bits); }
__device__ __forceinline__ float to_float(bool x) { return x ? 1.0f : 0.0f; }
__device__ __forceinline__ float to_float(int8_t x) { return (float)x; }
__device__ __forceinline__ float to_float(int16_t x) { return (float)x; }
__device__ __forceinline__ float to_float(int32_t x) { return (float)x; }
__device__ __forceinline__ float to_float(int64_t x) { return (float)x; }

// float -> T: round to nearest even for half_t/bf16_t. Other T: see cast().
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ half_t from_float<half_t>(float x) {
  return half_t{loom::device::f32_to_f16_rn(x)};
}
template <>
__device__ __forceinline__ bf16_t from_float<bf16_t>(float x) {
  return bf16_t{loom::device::f32_to_bf16_rn(x)};
}

// Blocks are one-dimensional: kThreads threads along x.
__device__ __forceinline__ int thread_rank() { return (int)threadIdx.x; }

// Linear index of slot k of the calling thread.
__device__ __forceinline__ int slot_index(int k) { return thread_rank() + k * kThreads; }

// ---- grid and scratch ---------------------------------------------------------

template <int Axis>
__device__ __forceinline__ int32_t program_id() {
  static_assert(Axis >= 0 && Axis < 3, "program_id axis");
  if constexpr (Axis == 0) return (int32_t)blockIdx.x;
  else if constexpr (Axis == 1) return (int32_t)blockIdx.y;
  else return (int32_t)blockIdx.z;
}

template <int Axis>
__device__ __forceinline__ int32_t num_programs() {
  static_assert(Axis >= 0 && Axis < 3, "num_programs axis");
  if constexpr (Axis == 0) return (int32_t)gridDim.x;
  else if constexpr (Axis == 1) return (int32_t)gridDim.y;
  else return (int32_t)gridDim.z;
}

// The block's dynamic shared memory (128-byte aligned on both layers),
// kOffset bytes in: the ops' scratch starts after the pipeline buffers
// (pipeline.h), if any.
template <int kOffset = 0>
__device__ __forceinline__ unsigned char* shared_scratch() {
  return static_cast<unsigned char*>(loom::device::dynamic_shared_memory()) + kOffset;
}

// Every shared-memory access of the tile layer goes through these, so that the
// emulator's optional race detector and counters (LaunchConfig::detect_races,
// counters) see it: one test of a flag when both are off, nothing at all on
// the GPU. In emulation the accessors take their caller's source location:
// the counters match the lanes' accesses by call site (emu/Counters.h).
#if defined(LOOM_DEVICE_EMULATION)
#define LOOM_SMEM_READ(ptr, bytes) ::loom::device::emu::note_shared_read((ptr), (bytes))
#define LOOM_SMEM_WRITE(ptr, bytes) ::loom::device::emu::note_shared_write((ptr), (bytes))
#define LOOM_SITE_PARAM , std::source_location loom_site = std::source_location::current()
#else
#define LOOM_SMEM_READ(ptr, bytes) ((void)0)
#define LOOM_SMEM_WRITE(ptr, bytes) ((void)0)
#define LOOM_SITE_PARAM
#endif

// Markers of the generated code: the kernel-level op a thread executes next
// (LOOM_SITE(id), so that the emulator tells two barriers or mmas of
// different ops apart), and the iterations of a loop (LOOM_LOOP_ITER(id) at
// the top of each iteration, LOOM_LOOP_END(id) after the loop: the
// emulator's per-iteration counters). Nothing on the GPU.
#if defined(LOOM_DEVICE_EMULATION)
#define LOOM_SITE(id) ::loom::device::emu::set_kernel_site(id)
#define LOOM_LOOP_ITER(id) ::loom::device::emu::loop_iteration(id)
#define LOOM_LOOP_END(id) ::loom::device::emu::loop_end(id)
#else
#define LOOM_SITE(id) ((void)0)
#define LOOM_LOOP_ITER(id) ((void)0)
#define LOOM_LOOP_END(id) ((void)0)
#endif

namespace detail {
// A plain shared-memory load / store of one element, instrumented.
template <class T>
__device__ __forceinline__ T smem_load(const T* p LOOM_SITE_PARAM) {
#if defined(LOOM_DEVICE_EMULATION)
  ::loom::device::emu::note_shared_read(p, sizeof(T), loom_site);
#endif
  return *p;
}
template <class T>
__device__ __forceinline__ void smem_store(T* p, const T& x LOOM_SITE_PARAM) {
#if defined(LOOM_DEVICE_EMULATION)
  ::loom::device::emu::note_shared_write(p, sizeof(T), loom_site);
#endif
  *p = x;
}

// A global load / store of one element by the calling thread, skipped (and
// in emulation recorded as an inactive lane of the warp's request) when
// `active` is false. In emulation every access is checked against the
// launch's buffers and seen by the global race detector and the counters.
template <class T>
__device__ __forceinline__ T global_load(const T* p, bool active, T other LOOM_SITE_PARAM) {
#if defined(LOOM_DEVICE_EMULATION)
  ::loom::device::emu::global_request(p, sizeof(T), false, active, "global load", loom_site);
#endif
  return active ? *p : other;
}
template <class T>
__device__ __forceinline__ void global_store(T* p, bool active, const T& x LOOM_SITE_PARAM) {
#if defined(LOOM_DEVICE_EMULATION)
  ::loom::device::emu::global_request(p, sizeof(T), true, active, "global store", loom_site);
#endif
  if (active) *p = x;
}
} // namespace detail

} // namespace loom::tile
