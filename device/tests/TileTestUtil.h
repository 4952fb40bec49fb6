// Helpers for the tile layer tests: launch one block of kThreads threads with
// a given scratch size, a guard zone after the scratch to catch ops that use
// more than their documented bytes, random data with a fresh seed per run.
#pragma once

#ifndef LOOM_NUM_THREADS
#define LOOM_NUM_THREADS 128
#endif
#include "loom/device/tile.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace loom::tile::test {

constexpr std::size_t kGuard = 256;

constexpr std::size_t round16(std::size_t n) { return (n + 15) / 16 * 16; }

// Runs body on every thread of one block; the launch has `scratch` bytes of
// shared memory plus a guard zone that must still hold the emulator's 0xFF
// fill afterwards (checked by thread 0 after a final barrier). With
// `buffers`, every global access of the tile layer must fall inside one of
// them; `detect_races` turns on the emulator's shared-memory race check.
inline void run_tile_block(std::size_t scratch, const std::function<void()>& body,
                           const char* name = "tile_test",
                           std::vector<loom::device::emu::GlobalBuffer> buffers = {},
                           bool detect_races = false) {
  const std::size_t bytes = round16(scratch);
  bool guard_ok = true;
  loom::device::emu::LaunchConfig c;
  c.kernel_name = name;
  c.block = loom::device::emu::dim3(kThreads);
  c.shared_bytes = bytes + kGuard;
  c.workers = 1;
  c.global_buffers = std::move(buffers);
  c.detect_races = detect_races; // LOOM_EMU_RACE_CHECK=1 also turns it on
  loom::device::emu::launch(c, [&] {
    body();
    loom::device::bar_sync();
    if (threadIdx.x == 0) {
      const unsigned char* g = shared_scratch() + bytes;
      for (std::size_t i = 0; i < kGuard; ++i) guard_ok = guard_ok && g[i] == 0xff;
    }
  });
  EXPECT_TRUE(guard_ok) << "op wrote past its " << bytes << " scratch bytes";
}

// A fresh seed per run (reported on failure through SCOPED_TRACE by callers).
inline unsigned fresh_seed() {
  static std::random_device rd;
  return rd();
}

inline double f16v(half_t x) { return loom::device::f16_to_f32(x.bits); }
inline double bf16v(bf16_t x) { return loom::device::bf16_to_f32(x.bits); }
inline half_t to_f16(double x) { return half_t{loom::device::f32_to_f16_rn((float)x)}; }
inline bf16_t to_bf16(double x) { return bf16_t{loom::device::f32_to_bf16_rn((float)x)}; }

template <class T>
double as_double(T x) {
  if constexpr (is_same_v<T, half_t>) return f16v(x);
  else if constexpr (is_same_v<T, bf16_t>) return bf16v(x);
  else return (double)x;
}

// Random values of T: floats in [-lo, hi) rounded to T, ints in a range.
template <class T>
std::vector<T> random_values(std::mt19937& rng, int n, double lo = -4, double hi = 4) {
  std::vector<T> v(n);
  if constexpr (is_float_v<T>) {
    std::uniform_real_distribution<double> d(lo, hi);
    for (auto& x : v) x = from_float<T>((float)d(rng));
  } else if constexpr (is_same_v<T, bool>) {
    std::bernoulli_distribution d(0.5);
    for (int i = 0; i < n; ++i) v[i] = d(rng);
  } else {
    std::uniform_int_distribution<long long> d((long long)lo, (long long)hi);
    for (auto& x : v) x = (T)d(rng);
  }
  return v;
}

// Identity offsets 0..S::size-1 (slots past the end get 0).
template <class S>
Tile<int32_t, S> iota_offsets() {
  Tile<int32_t, S> t;
  for (int k = 0; k < Tile<int32_t, S>::kPerThread; ++k) {
    const int i = slot_index(k);
    t.v[k] = i < S::size ? i : 0;
  }
  return t;
}

template <class T, class S>
Tile<T, S> load_all(const T* p) {
  return load(p, iota_offsets<S>());
}
template <class T, class S>
void store_all(T* p, const Tile<T, S>& t) {
  store(p, iota_offsets<S>(), t);
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

} // namespace loom::tile::test
