// Primitive layer for real GPUs (sm_80 and later): thin inline-PTX wrappers.
//
// Instruction spellings follow the PTX ISA grammar order as recorded in
// PTX_FACTS.md (e.g. ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16). Every
// wrapper that touches memory has a "memory" clobber so the compiler cannot
// move ordinary shared-memory accesses across it. No host headers: this file
// must compile under NVRTC with only in-memory sources.
#pragma once

#include "loom/device/types.h"

namespace loom::device {

// ---- bits and lanes --------------------------------------------------------

__device__ __forceinline__ uint32_t f32_as_u32(float x) { return __float_as_uint(x); }
__device__ __forceinline__ float u32_as_f32(uint32_t x) { return __uint_as_float(x); }

__device__ __forceinline__ uint32_t lane_id() {
  uint32_t l;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(l));
  return l;
}

// Start of the block's dynamic shared memory (the launch's shared bytes).
__device__ __forceinline__ void* dynamic_shared_memory() {
  extern __shared__ __align__(128) unsigned char loom_dynamic_smem[];
  return loom_dynamic_smem;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

// ---- barriers --------------------------------------------------------------

// bar.sync 0 with all threads of the CTA; the same barrier __syncthreads uses.
__device__ __forceinline__ void bar_sync() { asm volatile("bar.sync 0;" ::: "memory"); }

// ---- mma.sync m16n8k16, f32 accumulate (PTX_FACTS §1) -----------------------

__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const uint32_t a[4],
                                                 const uint32_t b[2], const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
        "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4],
                                                  const uint32_t b[2], const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
        "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// ---- ldmatrix (PTX_FACTS §3); row is this lane's 16-byte row in shared ------

__device__ __forceinline__ void ldmatrix_x1(uint32_t d[1], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];"
               : "=r"(d[0]) : "r"(smem_u32(row)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t d[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];"
               : "=r"(d[0]), "=r"(d[1]) : "r"(smem_u32(row)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t d[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(smem_u32(row)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t d[1], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];"
               : "=r"(d[0]) : "r"(smem_u32(row)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t d[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];"
               : "=r"(d[0]), "=r"(d[1]) : "r"(smem_u32(row)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t d[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(smem_u32(row)) : "memory");
}

// ---- cp.async (PTX_FACTS §4) -------------------------------------------------

// Copies src_bytes (0..16) from global to shared and zero-fills the rest of the
// 16 bytes. .cg (L2 only) is the one cache hint that allows cp-size 16 in both
// .ca and .cg forms and keeps streamed tiles out of L1.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
               :: "r"(smem_u32(smem)), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}
// wait_group N: all but the N most recent committed groups are complete.
// Uncommitted copies are not waited for (unlike CuTe's cp_async_wait<0>).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory");
}

// ---- shfl.sync (PTX_FACTS §5): raw a, b, c, membermask; *in_range gets p ------

#define LOOM_SM80_SHFL(NAME, MODE)                                                 \
  __device__ __forceinline__ uint32_t NAME(uint32_t membermask, uint32_t a,        \
                                           uint32_t b, uint32_t c,                 \
                                           bool* in_range = 0) {                   \
    uint32_t d, p;                                                                 \
    asm volatile("{\n\t.reg .pred p;\n\t"                                          \
                 "shfl.sync." MODE ".b32 %0|p, %2, %3, %4, %5;\n\t"                \
                 "selp.u32 %1, 1, 0, p;\n\t}"                                      \
                 : "=r"(d), "=r"(p) : "r"(a), "r"(b), "r"(c), "r"(membermask));    \
    if (in_range) *in_range = p != 0;                                              \
    return d;                                                                      \
  }
LOOM_SM80_SHFL(shfl_sync_up, "up")
LOOM_SM80_SHFL(shfl_sync_down, "down")
LOOM_SM80_SHFL(shfl_sync_bfly, "bfly")
LOOM_SM80_SHFL(shfl_sync_idx, "idx")
#undef LOOM_SM80_SHFL

// ---- math (PTX_FACTS §6) ------------------------------------------------------

// 2^x within 2 ulp; no .ftz so subnormals behave as in the emulator.
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// 2^x within 2 ulp, subnormal inputs and results flushed to zero (.ftz):
// without .ftz, sm_80 SASS wraps MUFU.EX2 in a range fix-up of 3 more
// instructions per call. The tile layer's exp2 uses this one.
__device__ __forceinline__ float ex2_approx_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// max/min that return NaN when either operand is NaN (.NaN, sm_80+): one
// FMNMX instead of the two compares and a select of a NaN-propagating
// maximum written in C++.
__device__ __forceinline__ float fmax_nan(float a, float b) {
  float y;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(y) : "f"(a), "f"(b));
  return y;
}
__device__ __forceinline__ float fmin_nan(float a, float b) {
  float y;
  asm("min.NaN.f32 %0, %1, %2;" : "=f"(y) : "f"(a), "f"(b));
  return y;
}

// ---- conversions (PTX_FACTS §6); f16/bf16 values travel as raw 16-bit bits ----

__device__ __forceinline__ uint16_t f32_to_f16_rn(float x) {
  uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
  return h;
}
__device__ __forceinline__ uint16_t f32_to_bf16_rn(float x) {
  uint16_t h;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x));
  return h;
}
__device__ __forceinline__ float f16_to_f32(uint16_t h) {
  float x;
  asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h));
  return x;
}
// bf16 is the upper half of an f32, so widening is exact and needs no cvt
// (cvt.f32.bf16 would need sm_90).
__device__ __forceinline__ float bf16_to_f32(uint16_t h) {
  return __uint_as_float((uint32_t)h << 16);
}
// PTX operand order: d[31:16] = cvt(a), d[15:0] = cvt(b).
__device__ __forceinline__ uint32_t cvt_rn_f16x2_f32(float a, float b) {
  uint32_t d;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(a), "f"(b));
  return d;
}
__device__ __forceinline__ uint32_t cvt_rn_bf16x2_f32(float a, float b) {
  uint32_t d;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(a), "f"(b));
  return d;
}
// Element order of mma fragments: lo (element 2j) in bits 15:0.
__device__ __forceinline__ uint32_t pack_f16x2_rn(float lo, float hi) {
  return cvt_rn_f16x2_f32(hi, lo);
}
__device__ __forceinline__ uint32_t pack_bf16x2_rn(float lo, float hi) {
  return cvt_rn_bf16x2_f32(hi, lo);
}

} // namespace loom::device
