// Width-based shuffles (the CUDA __shfl_*_sync forms) built on the raw
// shfl.sync primitives of the selected layer.
//
// The c operand is built exactly as the CUDA intrinsics do (PTX_FACTS §5):
// c = ((32 - width) << 8) | 0x1f for idx/down/bfly and (32 - width) << 8 for
// up. This is plain logic shared by both layers; the semantics of c live in
// the primitives themselves.
#pragma once

namespace loom::device {

__device__ __forceinline__ uint32_t shfl_c_operand(int width, bool up) {
  uint32_t seg = (uint32_t)(32 - width) << 8;
  return up ? seg : (seg | 0x1fu);
}

__device__ __forceinline__ uint32_t shfl_xor(uint32_t v, int lane_mask,
                                             int width = 32,
                                             uint32_t membermask = 0xffffffffu) {
  return shfl_sync_bfly(membermask, v, (uint32_t)lane_mask,
                        shfl_c_operand(width, false));
}
__device__ __forceinline__ uint32_t shfl_down(uint32_t v, unsigned delta,
                                              int width = 32,
                                              uint32_t membermask = 0xffffffffu) {
  return shfl_sync_down(membermask, v, delta, shfl_c_operand(width, false));
}
__device__ __forceinline__ uint32_t shfl_up(uint32_t v, unsigned delta,
                                            int width = 32,
                                            uint32_t membermask = 0xffffffffu) {
  return shfl_sync_up(membermask, v, delta, shfl_c_operand(width, true));
}
__device__ __forceinline__ uint32_t shfl_idx(uint32_t v, int src_lane,
                                             int width = 32,
                                             uint32_t membermask = 0xffffffffu) {
  return shfl_sync_idx(membermask, v, (uint32_t)src_lane,
                       shfl_c_operand(width, false));
}

// float overloads: a shuffle moves 32 bits, so floats travel as their bits.
__device__ __forceinline__ float shfl_xor(float v, int lane_mask, int width = 32,
                                          uint32_t membermask = 0xffffffffu) {
  return u32_as_f32(shfl_xor(f32_as_u32(v), lane_mask, width, membermask));
}
__device__ __forceinline__ float shfl_down(float v, unsigned delta, int width = 32,
                                           uint32_t membermask = 0xffffffffu) {
  return u32_as_f32(shfl_down(f32_as_u32(v), delta, width, membermask));
}
__device__ __forceinline__ float shfl_up(float v, unsigned delta, int width = 32,
                                         uint32_t membermask = 0xffffffffu) {
  return u32_as_f32(shfl_up(f32_as_u32(v), delta, width, membermask));
}
__device__ __forceinline__ float shfl_idx(float v, int src_lane, int width = 32,
                                          uint32_t membermask = 0xffffffffu) {
  return u32_as_f32(shfl_idx(f32_as_u32(v), src_lane, width, membermask));
}

} // namespace loom::device
