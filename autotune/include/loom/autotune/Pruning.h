//===- Pruning.h - dropping configs before timing them ----------*- C++ -*-===//
//
// A config whose compiled kernel cannot run well is dropped without being
// timed, from ptxas' report (cuda::KernelResources, via runtime::buildCuda;
// NVRTC only, no GPU needed) and the architecture's per-SM limits:
//
//   - more than 255 registers per thread, or any spill (local-memory loads
//     or stores: the attention kernels are latency bound and a spill
//     costs more than any block-size gain);
//   - more shared memory per block than the arch allows (opt-in maximum);
//   - registers * threads per block over the register file (cannot launch);
//   - occupancy below a threshold: resident warps per SM (limited by
//     registers, shared memory, threads and blocks per SM, as the CUDA
//     occupancy calculator computes them) over the SM's maximum.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_AUTOTUNE_PRUNING_H
#define LOOM_AUTOTUNE_PRUNING_H

#include "loom/cuda/Nvrtc.h"

#include <optional>
#include <string>

namespace loom::autotune {

/// Per-SM limits of a GPU architecture (CUDA C Programming Guide, "Compute
/// Capabilities" table).
struct ArchLimits {
  int computeCapability = 80;
  int registersPerSm = 65536;
  int maxRegistersPerThread = 255;
  int registerAllocationUnit = 256; ///< Registers are allocated per warp in these.
  int maxThreadsPerSm = 2048;
  int maxBlocksPerSm = 32;
  int sharedPerSm = 167936;         ///< Bytes usable by blocks.
  int sharedPerBlockOptIn = 166912; ///< Largest block allocation (opt-in).
  int sharedReservedPerBlock = 1024; ///< Driver reserve per resident block (sm_80+).
};

/// Limits of "sm_80", "sm_86", "sm_89", "sm_90", "sm_90a". Throws
/// InvalidArgument naming the arch for anything else.
ArchLimits archLimits(const std::string &arch);

struct Occupancy {
  int blocksPerSm = 0;
  double fraction = 0; ///< Resident warps / max warps per SM.
  std::string limiter; ///< "registers", "shared memory", "threads" or "blocks".
};

Occupancy occupancy(const cuda::KernelResources &r, unsigned threadsPerBlock,
                    const ArchLimits &limits, int dynamicSharedBytes = 0);

/// Occupancy under which a config is dropped: 1/16 of the SM's warps (e.g.
/// one 128-thread block on sm_80). Flash attention kernels run well at one
/// or two 4-8 warp blocks per SM, so the bar is low; it drops configs that
/// leave most of the SM's latency hiding unused.
inline constexpr double kDefaultMinOccupancy = 1.0 / 16;

/// Why `r` should not be timed, or nullopt when it should.
std::optional<std::string> pruneReason(const cuda::KernelResources &r, unsigned threadsPerBlock,
                                       const ArchLimits &limits,
                                       double minOccupancy = kDefaultMinOccupancy);

} // namespace loom::autotune

#endif
