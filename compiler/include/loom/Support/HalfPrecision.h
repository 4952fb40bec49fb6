//===- HalfPrecision.h - f16/bf16 <-> f32 on the host -----------*- C++ -*-===//
//
// Round-to-nearest-even conversions matching cvt.rn on the GPU, with NaN
// becoming 0x7FFF as in NVIDIA's host emulation. Used by the CPU JIT (as the
// compiler-runtime helpers LLVM calls) and by hosts preparing inputs.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_SUPPORT_HALFPRECISION_H
#define LOOM_SUPPORT_HALFPRECISION_H

#include <cmath>
#include <cstdint>
#include <cstring>

namespace loom {

inline uint32_t floatBits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bitsToFloat(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f)
    return bitsToFloat(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    float f = std::ldexp(static_cast<float>(mant), -24); // subnormal or zero
    return sign ? -f : f;
  }
  return bitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

inline uint16_t floatToHalf(float f) {
  uint32_t u = floatBits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t absBits = u & 0x7fffffffu;
  if (absBits > 0x7f800000u)
    return 0x7fff;
  if (absBits >= 0x477ff000u) // rounds to >= 65520: overflows to inf
    return sign | 0x7c00u;
  if (absBits < 0x38800000u) { // below the smallest normal: subnormal result
    // x * 2^24 is exact; nearbyint rounds half to even in the default mode.
    return sign | static_cast<uint16_t>(std::nearbyint(bitsToFloat(absBits) * 16777216.0f));
  }
  uint32_t rounded = absBits + 0xfffu + ((absBits >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

inline float bf16ToFloat(uint16_t b) { return bitsToFloat(uint32_t(b) << 16); }

inline uint16_t floatToBf16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return 0x7fff;
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

} // namespace loom

#endif
