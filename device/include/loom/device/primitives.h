// The primitive layer of the Loom device library.
//
// Primitives are the only code that differs between a real GPU and the CPU
// emulator (see DESIGN.md, "The device library contract"). Both layers define
// the same names and signatures in namespace loom::device:
//   mma_m16n8k16_f16 / _bf16, ldmatrix_x{1,2,4}[_trans], cp_async_16,
//   cp_async_commit, cp_async_wait<N>, shfl_sync_{up,down,bfly,idx},
//   shfl_{up,down,xor,idx}, ex2_approx, bar_sync, lane_id,
//   f32_to_{f16,bf16}_rn, {f16,bf16}_to_f32, cvt_rn_{f16,bf16}x2_f32,
//   pack_{f16,bf16}x2_rn, f32_as_u32, u32_as_f32, dynamic_shared_memory.
//
// LOOM_DEVICE_EMULATION selects the host emulator (emu.h); otherwise the code
// must be compiled by NVRTC or nvcc for the device and gets inline PTX
// (sm80.h). This header and everything it includes use no host headers on the
// device path, so NVRTC can compile it with only in-memory sources.
#pragma once

#if defined(LOOM_DEVICE_EMULATION)
#include "loom/device/arch/emu.h"
#elif defined(__CUDACC__) || defined(__CUDACC_RTC__)
#include "loom/device/arch/sm80.h"
#else
#error "loom/device/primitives.h: compile with NVRTC/nvcc, or define LOOM_DEVICE_EMULATION"
#endif

#include "loom/device/shfl_width.h"
