// Primitive layer for the CPU emulator: the names and signatures of sm80.h,
// implemented in host C++ from the PTX ISA definitions in PTX_FACTS.md (never
// from sm80.h, so that one misunderstanding cannot pass in both).
//
// Warp-collective primitives (mma, ldmatrix, shfl) deposit a pointer to the
// lane's operands with the executor (emu/Executor.h) and compute once all
// lanes are present. Aligned collectives and barriers take the caller's
// source_location as a defaulted trailing parameter so the executor can tell
// whether all lanes reached the *same* instruction; calls look identical to
// the GPU form.
#pragma once

#include <bit>
#include <cmath>
#include <cstring>
#include <source_location>
#include <string>

#include "loom/device/emu/Executor.h"
#include "loom/device/types.h"

// CUDA keywords that device code uses; on the host they mean nothing.
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif
#ifndef __global__
#define __global__
#endif
#ifndef __forceinline__
#define __forceinline__ inline
#endif
#ifndef __restrict__
#define __restrict__ __restrict
#endif
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
// Deliberately no __shared__: a static __shared__ array would silently become
// per-thread stack memory. Emulated kernels use dynamic_shared_memory().

using loom::device::emu::blockDim;
using loom::device::emu::blockIdx;
using loom::device::emu::dim3;
using loom::device::emu::gridDim;
using loom::device::emu::threadIdx;

namespace loom::device {

// ---- bits and lanes --------------------------------------------------------

inline uint32_t f32_as_u32(float x) { return std::bit_cast<uint32_t>(x); }
inline float u32_as_f32(uint32_t x) { return std::bit_cast<float>(x); }

inline uint32_t lane_id() { return emu::current_lane_id(); }

inline void* dynamic_shared_memory() { return emu::shared_base(); }

// ---- barriers (PTX_FACTS §7) ---------------------------------------------------

inline void bar_sync(std::source_location site = std::source_location::current()) {
  emu::block_barrier(site);
}

// ---- conversions (PTX_FACTS §6): IEEE round to nearest even, NaN -> 0x7FFF ------

inline uint16_t f32_to_f16_rn(float x) {
  const uint32_t u = f32_as_u32(x);
  const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  const uint32_t exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
  if (exp == 0xff) return man ? (uint16_t)0x7fff : (uint16_t)(sign | 0x7c00u);
  if (exp == 0) return sign; // |x| < 2^-126, far below half the least f16 subnormal
  const uint32_t sig = man | 0x800000u; // 24-bit significand, value sig * 2^(exp-150)
  const int e16 = (int)exp - 127 + 15;
  if (e16 >= 31) return (uint16_t)(sign | 0x7c00u);
  // Shift the significand to f16 precision: 10 fraction bits if normal, else
  // units of 2^-24 (subnormal). Carries out of the fraction bump the exponent
  // (and can reach Inf), which the encoding does by plain addition.
  const int shift = e16 >= 1 ? 13 : 14 - e16;
  if (shift > 24) return sign; // below half of 2^-24: rounds to zero
  uint32_t q = sig >> shift;
  const uint32_t rem = sig & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) ++q;
  const uint32_t enc = e16 >= 1 ? ((uint32_t)(e16 - 1) << 10) + q : q;
  return (uint16_t)(sign | (enc >= 0x7c00u ? 0x7c00u : enc));
}

inline uint16_t f32_to_bf16_rn(float x) {
  const uint32_t u = f32_as_u32(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  // bf16 keeps the top 16 bits; add just under half an ulp plus the kept lsb so
  // that exact ties round to even. Overflow carries into the exponent (Inf).
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return u32_as_f32(sign | 0x7f800000u | (man << 13));
  const float mag = exp == 0 ? std::ldexp((float)man, -24)
                             : std::ldexp((float)(man | 0x400u), (int)exp - 25);
  return sign ? -mag : mag;
}

inline float bf16_to_f32(uint16_t h) { return u32_as_f32((uint32_t)h << 16); }

// cvt.rn.{f16,bf16}x2.f32 d, a, b: d[31:16] = cvt(a), d[15:0] = cvt(b).
inline uint32_t cvt_rn_f16x2_f32(float a, float b) {
  return ((uint32_t)f32_to_f16_rn(a) << 16) | f32_to_f16_rn(b);
}
inline uint32_t cvt_rn_bf16x2_f32(float a, float b) {
  return ((uint32_t)f32_to_bf16_rn(a) << 16) | f32_to_bf16_rn(b);
}
inline uint32_t pack_f16x2_rn(float lo, float hi) { return cvt_rn_f16x2_f32(hi, lo); }
inline uint32_t pack_bf16x2_rn(float lo, float hi) { return cvt_rn_bf16x2_f32(hi, lo); }

// ---- ex2.approx.f32 (PTX_FACTS §6): within 2 ulp; no ftz ----------------------

inline float ex2_approx(float x, std::source_location site = std::source_location::current()) {
  emu::note_ex2(site);
  if (std::isnan(x)) return x;
  if (std::isinf(x)) return x < 0 ? 0.0f : x;
  // The double result rounded once to float is well within 2 ulp, including
  // subnormal results; exp2(+-0) == 1 exactly.
  return (float)std::exp2((double)x);
}

// ex2.approx.ftz.f32: a subnormal input counts as zero and a subnormal
// result becomes +0 (2^x is positive).
inline float ex2_approx_ftz(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL) x = std::copysign(0.0f, x);
  const float y = ex2_approx(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
}

// max.NaN.f32 / min.NaN.f32: the canonical NaN if either operand is NaN;
// otherwise the larger (smaller) value, +0 counting as larger than -0.
inline float fmax_nan(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return u32_as_f32(0x7fffffffu);
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}
inline float fmin_nan(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return u32_as_f32(0x7fffffffu);
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}

namespace emu::isa {

inline uint16_t lo16(uint32_t r) { return (uint16_t)(r & 0xffffu); }
inline uint16_t hi16(uint32_t r) { return (uint16_t)(r >> 16); }

// ---- mma.m16n8k16 (PTX_FACTS §1) ----------------------------------------------

struct MmaArgs {
  float* d;
  const uint32_t* a;
  const uint32_t* b;
  const float* c;
};

// Gathers the whole A (16x16), B (16x8) and C (16x8) from the 32 lanes'
// fragments, multiplies in double (products of f16/bf16 are exact, the sum is
// better than fp32 as the ISA allows), then scatters D. All inputs are read
// before any output is written, so d may alias c.
template <float (*Decode)(uint16_t)>
void mma_m16n8k16(void* const args[32], uint32_t) {
  double A[16][16], B[16][8], C[16][8];
  for (unsigned l = 0; l < 32; ++l) {
    const auto& x = *static_cast<const MmaArgs*>(args[l]);
    const unsigned g = l >> 2, t = l & 3;
    for (unsigned i = 0; i < 4; ++i) { // a[i]: row g + 8*(i&1), cols 2t + 8*(i>>1)
      const unsigned row = g + 8 * (i & 1), col = 2 * t + 8 * (i >> 1);
      A[row][col] = Decode(lo16(x.a[i]));
      A[row][col + 1] = Decode(hi16(x.a[i]));
    }
    for (unsigned i = 0; i < 2; ++i) { // b[i]: k = 2t + 8i (+1), n = g
      B[2 * t + 8 * i][g] = Decode(lo16(x.b[i]));
      B[2 * t + 8 * i + 1][g] = Decode(hi16(x.b[i]));
    }
    C[g][2 * t] = x.c[0];
    C[g][2 * t + 1] = x.c[1];
    C[g + 8][2 * t] = x.c[2];
    C[g + 8][2 * t + 1] = x.c[3];
  }
  double D[16][8];
  for (unsigned m = 0; m < 16; ++m)
    for (unsigned n = 0; n < 8; ++n) {
      double s = C[m][n];
      for (unsigned k = 0; k < 16; ++k) s += A[m][k] * B[k][n];
      D[m][n] = s;
    }
  for (unsigned l = 0; l < 32; ++l) {
    float* d = static_cast<const MmaArgs*>(args[l])->d;
    const unsigned g = l >> 2, t = l & 3;
    d[0] = (float)D[g][2 * t];
    d[1] = (float)D[g][2 * t + 1];
    d[2] = (float)D[g + 8][2 * t];
    d[3] = (float)D[g + 8][2 * t + 1];
  }
}

// ---- ldmatrix.m8n8 (PTX_FACTS §3) ---------------------------------------------

struct LdmatrixArgs {
  uint32_t* d;
  const void* row;
};

template <unsigned Num, bool Trans>
void ldmatrix(void* const args[32], uint32_t) {
  static const char* const names[2][5] = {
      {"", "ldmatrix.x1", "ldmatrix.x2", "", "ldmatrix.x4"},
      {"", "ldmatrix.x1.trans", "ldmatrix.x2.trans", "", "ldmatrix.x4.trans"}};
  // Lane 8j+r supplies row r of matrix j; other lanes' addresses are unused.
  uint16_t M[Num][8][8];
  uintptr_t rows[8 * Num];
  for (unsigned j = 0; j < Num; ++j)
    for (unsigned r = 0; r < 8; ++r) {
      const unsigned lane = 8 * j + r;
      const void* row = static_cast<const LdmatrixArgs*>(args[lane])->row;
      const bool aligned = reinterpret_cast<std::uintptr_t>(row) % 16 == 0;
      if (!aligned || !is_shared(row, 16)) { // build the message only on failure
        const std::string who = std::string(names[Trans][Num]) + ": row " +
                                std::to_string(r) + " of matrix " + std::to_string(j) +
                                " from lane " + std::to_string(lane) + " (" +
                                describe_lane(lane) + ")";
        if (!aligned) fail(who + " is not 16-byte aligned");
        check_shared(row, 16, who.c_str());
      }
      if (instrumented()) note_shared_access(row, 16, false, (int)lane, names[Trans][Num]);
      rows[lane] = reinterpret_cast<uintptr_t>(row);
      std::memcpy(M[j][r], row, 16);
    }
  if (instrumented()) count_ldmatrix_rows(rows, Num);
  for (unsigned l = 0; l < 32; ++l) {
    uint32_t* d = static_cast<const LdmatrixArgs*>(args[l])->d;
    const unsigned g = l >> 2, t = l & 3;
    for (unsigned j = 0; j < Num; ++j) {
      const uint16_t lo = Trans ? M[j][2 * t][g] : M[j][g][2 * t];
      const uint16_t hi = Trans ? M[j][2 * t + 1][g] : M[j][g][2 * t + 1];
      d[j] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
  }
}

// ---- shfl.sync (PTX_FACTS §5) -------------------------------------------------

enum class ShflMode { Up, Down, Bfly, Idx };

struct ShflArgs {
  uint32_t a, b, c;
  uint32_t d;
  bool in_range;
};

// The value a lane reads from a lane that is outside the member mask or has
// exited is undefined; it reads this quiet-NaN pattern so that it stands out.
inline constexpr uint32_t kShflUndefined = 0x7fc0deadu;

template <ShflMode Mode>
void shfl(void* const args[32], uint32_t lanes) {
  uint32_t a[32];
  for (unsigned l = 0; l < 32; ++l)
    if (lanes >> l & 1) a[l] = static_cast<ShflArgs*>(args[l])->a;
  for (unsigned l = 0; l < 32; ++l) {
    if (!(lanes >> l & 1)) continue;
    auto& x = *static_cast<ShflArgs*>(args[l]);
    const int bval = (int)(x.b & 31), clamp = (int)(x.c & 31), seg = (int)((x.c >> 8) & 31);
    const int lane = (int)l, maxLane = (lane & seg) | (clamp & ~seg), minLane = lane & seg;
    int j = 0;
    bool ok = false;
    switch (Mode) {
    case ShflMode::Up: j = lane - bval; ok = j >= maxLane; break;
    case ShflMode::Down: j = lane + bval; ok = j <= maxLane; break;
    case ShflMode::Bfly: j = lane ^ bval; ok = j <= maxLane; break;
    case ShflMode::Idx: j = minLane | (bval & ~seg); ok = j <= maxLane; break;
    }
    x.in_range = ok;
    x.d = !ok ? a[l] : (lanes >> j & 1) ? a[j] : kShflUndefined;
  }
}

} // namespace emu::isa

// ---- warp-collective primitives --------------------------------------------------

inline void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                             const float c[4],
                             std::source_location site = std::source_location::current()) {
  emu::isa::MmaArgs x{d, a, b, c};
  emu::warp_collective({"mma.m16n8k16.f32.f16", &emu::isa::mma_m16n8k16<f16_to_f32>,
                        0xffffffffu, true, site, emu::Collective::Kind::Mma},
                       &x);
}

inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                              const float c[4],
                              std::source_location site = std::source_location::current()) {
  emu::isa::MmaArgs x{d, a, b, c};
  emu::warp_collective({"mma.m16n8k16.f32.bf16", &emu::isa::mma_m16n8k16<bf16_to_f32>,
                        0xffffffffu, true, site, emu::Collective::Kind::Mma},
                       &x);
}

#define LOOM_EMU_LDMATRIX(NAME, NUM, TRANS)                                          \
  inline void NAME(uint32_t d[NUM], const void* row,                                 \
                   std::source_location site = std::source_location::current()) {    \
    emu::isa::LdmatrixArgs x{d, row};                                                \
    emu::warp_collective(                                                            \
        {#NAME, &emu::isa::ldmatrix<NUM, TRANS>, 0xffffffffu, true, site,            \
         emu::Collective::Kind::Ldmatrix}, &x);                                      \
  }
LOOM_EMU_LDMATRIX(ldmatrix_x1, 1, false)
LOOM_EMU_LDMATRIX(ldmatrix_x2, 2, false)
LOOM_EMU_LDMATRIX(ldmatrix_x4, 4, false)
LOOM_EMU_LDMATRIX(ldmatrix_x1_trans, 1, true)
LOOM_EMU_LDMATRIX(ldmatrix_x2_trans, 2, true)
LOOM_EMU_LDMATRIX(ldmatrix_x4_trans, 4, true)
#undef LOOM_EMU_LDMATRIX

// shfl.sync is not .aligned: lanes may reach it from different call sites, but
// must agree on mode and membermask; exited lanes are not waited for.
#define LOOM_EMU_SHFL(NAME, MODE, PTX)                                               \
  inline uint32_t NAME(uint32_t membermask, uint32_t a, uint32_t b, uint32_t c,      \
                       bool* in_range = nullptr,                                     \
                       std::source_location site = std::source_location::current()) {\
    if (!(membermask >> emu::current_lane_id() & 1))                                 \
      emu::fail(std::string(PTX) + ": executing lane is not in membermask");         \
    emu::isa::ShflArgs x{a, b, c, 0, false};                                         \
    emu::warp_collective({PTX, &emu::isa::shfl<emu::isa::ShflMode::MODE>,            \
                          membermask, false, site, emu::Collective::Kind::Shfl},     \
                         &x);                                                        \
    if (in_range) *in_range = x.in_range;                                            \
    return x.d;                                                                      \
  }
LOOM_EMU_SHFL(shfl_sync_up, Up, "shfl.sync.up.b32")
LOOM_EMU_SHFL(shfl_sync_down, Down, "shfl.sync.down.b32")
LOOM_EMU_SHFL(shfl_sync_bfly, Bfly, "shfl.sync.bfly.b32")
LOOM_EMU_SHFL(shfl_sync_idx, Idx, "shfl.sync.idx.b32")
#undef LOOM_EMU_SHFL

// ---- cp.async (PTX_FACTS §4) ----------------------------------------------------

// The source bytes are read at issue (src_bytes of them; the rest of the 16 are
// zero); the copy lands at the wait_group that retires its group, or at issue
// (LaunchConfig::cp_async_land), and is a pending write until that wait.
inline void cp_async_16(void* smem, const void* gmem, int src_bytes) {
  emu::cp_async_issue(smem, gmem, src_bytes);
}

inline void cp_async_commit() { emu::cp_async_commit_group(); }

// Retires the oldest committed groups until at most N are pending; copies not
// yet committed stay pending, as in PTX.
template <int N>
inline void cp_async_wait() {
  static_assert(N >= 0, "cp.async.wait_group N needs N >= 0");
  emu::cp_async_wait_groups(N);
}

} // namespace loom::device

// The CUDA spelling of bar.sync 0 for emulated device code.
inline void __syncthreads(std::source_location site = std::source_location::current()) {
  loom::device::emu::block_barrier(site);
}
