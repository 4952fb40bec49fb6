//===- GpuModel.h - speed-of-light model of one kernel launch ---*- C++ -*-===//
//
// A throughput model, no GPU needed: one launch takes at least as long as
// its busiest resource needs. Per SM, `ctasPerSm` CTAs run at once
// (occupancy); a launch runs in waves of SMs x ctasPerSm CTAs, each wave as
// long as one SM needs for its resident CTAs' tensor-core, shared-memory
// and issue work; DRAM moves the launch's compulsory bytes at the device's
// bandwidth. The modeled time is the largest of these, and that limit is
// named. Every constant, with its source, is in docs/gpu-model.md. Figures
// from here are "modeled, not measured".
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_CUDA_GPUMODEL_H
#define LOOM_CUDA_GPUMODEL_H

#include <cstdint>
#include <string>
#include <vector>

namespace loom::cuda {

/// One product per Loom target arch; see docs/gpu-model.md for sources.
struct GpuArch {
  std::string arch;    ///< "sm_80"
  std::string product; ///< "A100 SXM4 80GB"
  int sms = 0;
  double boostGHz = 0;
  /// Dense f16/bf16 tensor FLOPs per clock per SM with fp32 accumulation
  /// on the path Loom uses (mma.sync; on sm_90a below the wgmma peak).
  double mmaFlopsPerClkPerSm = 0;
  /// The datasheet's dense f16/bf16 tensor peak (TFLOP/s), the "% of peak"
  /// denominator (on H100: wgmma's, which mma.sync cannot reach).
  double denseTensorTflops = 0;
  double smemBytesPerClkPerSm = 128; ///< 32 banks x 4 bytes
  double issuePerClkPerSm = 4;       ///< 4 schedulers x 1 warp instr/clk
  double dramGBs = 0;                ///< GB/s (1e9 bytes)
  int regsPerSm = 65536;
  int maxRegsPerThread = 255;
  int maxThreadsPerSm = 2048;
  int maxCtasPerSm = 32;
  int smemPerSmBytes = 0;         ///< usable shared memory per SM
  int smemReservedPerCtaBytes = 1024; ///< reserved by the driver per CTA
};

/// The table: sm_80, sm_86, sm_89, sm_90a.
const std::vector<GpuArch> &gpuArchs();
/// Throws loom::Error(InvalidArgument) naming `arch` and the known ones.
const GpuArch &gpuArch(const std::string &arch);

struct Occupancy {
  int ctasPerSm = 0;
  std::string limiter; ///< "registers", "shared memory", "threads", "CTAs"
  int warpsPerSm() const { return ctasPerSm * warpsPerCta; }
  int warpsPerCta = 0;
};

/// CUDA's occupancy rules (cuda_occupancy.h): registers allocated per warp
/// in units of 256, per SM sub-partition; shared memory per CTA rounded up
/// to 128 bytes plus the driver's reserve. ctasPerSm is 0 when one CTA
/// does not fit (limiter says why).
Occupancy occupancy(const GpuArch &gpu, int registersPerThread, int threadsPerCta,
                    int64_t sharedBytesPerCta);

/// Work of one launch. Per-CTA figures are for the whole launch (all of a
/// CTA's loop iterations), summed over its warps.
struct LaunchWork {
  int64_t ctas = 0;
  int threadsPerCta = 0;
  int registersPerThread = 0;
  int64_t sharedBytesPerCta = 0;
  double mmaPerCta = 0;       ///< tensor-core instructions
  double flopsPerMma = 4096;  ///< m16n8k16: 2*16*8*16
  double warpInstrPerCta = 0; ///< every warp instruction, MMA included
  double smemWavefrontsPerCta = 0;
  double dramBytes = 0;   ///< compulsory bytes of the launch
  double usefulFlops = 0; ///< for TFLOP/s (e.g. 4*B*H*S^2*d, halved causal)
};

struct LaunchModel {
  Occupancy occupancy;
  int64_t waves = 0;
  double tensorS = 0, sharedS = 0, issueS = 0, dramS = 0;
  double timeS = 0;
  std::string bound; ///< "tensor", "shared memory", "issue" or "DRAM"
  double tflops = 0;
  double percentOfPeak = 0; ///< of GpuArch::denseTensorTflops
};

/// Throws loom::Error(InvalidArgument) when no CTA fits on an SM.
LaunchModel modelLaunch(const GpuArch &gpu, const LaunchWork &work);

} // namespace loom::cuda

#endif
