// A test kernel that uses every primitive of the device library. It is
// compiled twice: by NVRTC for sm_80/sm_90a (NvrtcTest) and as host C++ with
// LOOM_DEVICE_EMULATION on the emulator (EmuKernelTest), whose answer is
// checked against float64. No host includes, so NVRTC can compile it.
//
// Block: 64 threads = 2 warps, one block per input tile set. Warp 0 computes
// D = 2*A*B with f16 operands, warp 1 with bf16 operands; each warp loads B
// twice (ldmatrix x2 and two x1) and accumulates both products. The epilogue
// exercises shuffles, ex2 and conversions. Input per block (uint16 bits):
//   [0,256)   A16  16x16 row-major (f16)      -> ldmatrix_x4
//   [256,384) B16  16x8  K x N     (f16)      -> ldmatrix_x2_trans / x1_trans
//   [384,640) AbT  16x16 K x M, A transposed (bf16) -> ldmatrix_x4_trans
//   [640,768) BbT  8x16  N x K     (bf16)     -> ldmatrix_x2 / x1
// Output per thread: 12 floats (see kOut* below).
#pragma once

#include "loom/device/primitives.h"

namespace loom_test {
enum {
  kInPerBlock = 768,      // uint16 elements
  kThreads = 64,
  kOutPerThread = 12,
  kOutD = 0,              // d[0..3]
  kOutRowMax = 4,         // max of D rows g, g+8
  kOutRowSum = 6,         // sum of ex2(D - rowmax) over rows g, g+8
  kOutUp = 8,             // shfl_up(d[0], 1, width 4)
  kOutPacked = 9,         // lo, hi of pack(ex2(d0 - max), ex2(d1 - max)), widened
  kOutRoundTrip = 11,     // d[2] rounded to f16/bf16 and widened
};
} // namespace loom_test

extern "C" __global__ void __launch_bounds__(64)
loom_primitives_kernel(const loom::device::uint16_t* in, float* out) {
  using namespace loom::device;
  const unsigned tid = threadIdx.x, lane = lane_id(), warp = tid / 32;
  const uint16_t* src = in + blockIdx.x * loom_test::kInPerBlock;
  uint16_t* smem = static_cast<uint16_t*>(dynamic_shared_memory());

  // 96 chunks of 16 bytes; each thread copies chunks tid and tid + 64.
  for (unsigned c = tid; c < 96; c += 64) cp_async_16(smem + 8 * c, src + 8 * c, 16);
  cp_async_commit();
  cp_async_wait<0>();
  bar_sync();

  const uint16_t* A16 = smem;
  const uint16_t* B16 = smem + 256;
  const uint16_t* AbT = smem + 384;
  const uint16_t* BbT = smem + 640;
  const unsigned r8 = lane % 8, r16 = lane % 16;
  uint32_t a[4], b[2], b1[1], b2[1];
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  if (warp == 0) {
    ldmatrix_x4(a, A16 + r16 * 16 + 8 * (lane / 16));
    ldmatrix_x2_trans(b, B16 + r16 * 8);
    mma_m16n8k16_f16(acc, a, b, acc);
    ldmatrix_x1_trans(b1, B16 + r8 * 8);
    ldmatrix_x1_trans(b2, B16 + (8 + r8) * 8);
    b[0] = b1[0];
    b[1] = b2[0];
    mma_m16n8k16_f16(acc, a, b, acc);
  } else {
    const unsigned j = lane / 8;
    ldmatrix_x4_trans(a, AbT + (r8 + 8 * (j >> 1)) * 16 + 8 * (j & 1));
    ldmatrix_x2(b, BbT + r8 * 16 + 8 * (lane / 8 % 2));
    mma_m16n8k16_bf16(acc, a, b, acc);
    ldmatrix_x1(b1, BbT + r8 * 16);
    ldmatrix_x1(b2, BbT + r8 * 16 + 8);
    b[0] = b1[0];
    b[1] = b2[0];
    mma_m16n8k16_bf16(acc, a, b, acc);
  }

  // The four lanes of a group (same g) hold one row pair: reduce across them.
  float mx0 = acc[0] > acc[1] ? acc[0] : acc[1];
  float mx1 = acc[2] > acc[3] ? acc[2] : acc[3];
  for (int m = 1; m < 4; m *= 2) {
    const float o0 = shfl_xor(mx0, m, 4), o1 = shfl_xor(mx1, m, 4);
    mx0 = o0 > mx0 ? o0 : mx0;
    mx1 = o1 > mx1 ? o1 : mx1;
  }
  const float p0 = ex2_approx(acc[0] - mx0), p1 = ex2_approx(acc[1] - mx0);
  float s0 = p0 + p1;
  float s1 = ex2_approx(acc[2] - mx1) + ex2_approx(acc[3] - mx1);
  for (unsigned d = 2; d > 0; d /= 2) {
    s0 += shfl_down(s0, d, 4);
    s1 += shfl_down(s1, d, 4);
  }
  s0 = shfl_idx(s0, 0, 4); // broadcast lane t = 0's total
  s1 = shfl_idx(s1, 0, 4);
  const float up = shfl_up(acc[0], 1, 4);

  float lo, hi, rt;
  if (warp == 0) {
    const uint32_t packed = pack_f16x2_rn(p0, p1);
    lo = f16_to_f32((uint16_t)(packed & 0xffffu));
    hi = f16_to_f32((uint16_t)(packed >> 16));
    rt = f16_to_f32(f32_to_f16_rn(acc[2]));
  } else {
    const uint32_t packed = pack_bf16x2_rn(p0, p1);
    lo = bf16_to_f32((uint16_t)(packed & 0xffffu));
    hi = bf16_to_f32((uint16_t)(packed >> 16));
    rt = bf16_to_f32(f32_to_bf16_rn(acc[2]));
  }
  float* o = out + (blockIdx.x * loom_test::kThreads + tid) * loom_test::kOutPerThread;
  for (int i = 0; i < 4; ++i) o[loom_test::kOutD + i] = acc[i];
  o[loom_test::kOutRowMax] = mx0;
  o[loom_test::kOutRowMax + 1] = mx1;
  o[loom_test::kOutRowSum] = s0;
  o[loom_test::kOutRowSum + 1] = s1;
  o[loom_test::kOutUp] = up;
  o[loom_test::kOutPacked] = lo;
  o[loom_test::kOutPacked + 1] = hi;
  o[loom_test::kOutRoundTrip] = rt;
  bar_sync();
}
