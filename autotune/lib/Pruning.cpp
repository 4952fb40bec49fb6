//===- Pruning.cpp - resource limits and occupancy ------------------------===//
#include "loom/autotune/Pruning.h"

#include "loom/Support/Error.h"

#include <algorithm>
#include <fmt/format.h>

namespace loom::autotune {

ArchLimits archLimits(const std::string &arch) {
  ArchLimits l;
  if (arch == "sm_80")
    return l;
  if (arch == "sm_86" || arch == "sm_89") {
    l.computeCapability = arch == "sm_86" ? 86 : 89;
    l.maxThreadsPerSm = 1536;
    l.maxBlocksPerSm = arch == "sm_86" ? 16 : 24;
    l.sharedPerSm = 102400;
    l.sharedPerBlockOptIn = 101376;
    return l;
  }
  if (arch == "sm_90" || arch == "sm_90a") {
    l.computeCapability = 90;
    l.sharedPerSm = 233472;
    l.sharedPerBlockOptIn = 232448;
    return l;
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("autotune: no resource limits for arch '{}' (known: sm_80, sm_86, "
                          "sm_89, sm_90, sm_90a)",
                          arch));
}

Occupancy occupancy(const cuda::KernelResources &r, unsigned threads, const ArchLimits &l,
                    int dynamicShared) {
  Occupancy o;
  int warps = int((threads + 31) / 32);
  int maxWarps = l.maxThreadsPerSm / 32;
  auto consider = [&](int blocks, const char *why) {
    if (o.limiter.empty() || blocks < o.blocksPerSm) {
      o.blocksPerSm = blocks;
      o.limiter = why;
    }
  };
  consider(l.maxBlocksPerSm, "blocks");
  consider(maxWarps / std::max(warps, 1), "threads");
  int regs = std::max(r.registers, 1);
  int perWarp = (regs * 32 + l.registerAllocationUnit - 1) / l.registerAllocationUnit *
                l.registerAllocationUnit;
  consider(l.registersPerSm / (perWarp * std::max(warps, 1)), "registers");
  int shared = r.sharedBytes + dynamicShared;
  if (shared > 0)
    consider(l.sharedPerSm / (shared + l.sharedReservedPerBlock), "shared memory");
  o.blocksPerSm = std::max(o.blocksPerSm, 0);
  o.fraction = double(o.blocksPerSm * warps) / maxWarps;
  return o;
}

std::optional<std::string> pruneReason(const cuda::KernelResources &r, unsigned threads,
                                       const ArchLimits &l, double minOccupancy) {
  if (r.registers > l.maxRegistersPerThread)
    return fmt::format("{} registers per thread > {}", r.registers, l.maxRegistersPerThread);
  if (r.spillStoreBytes > 0 || r.spillLoadBytes > 0)
    return fmt::format("spills ({} B stores, {} B loads)", r.spillStoreBytes, r.spillLoadBytes);
  if (r.sharedBytes > l.sharedPerBlockOptIn)
    return fmt::format("{} B shared memory per block > {} B (sm_{})", r.sharedBytes,
                       l.sharedPerBlockOptIn, l.computeCapability);
  if (int64_t(std::max(r.registers, 0)) * threads > l.registersPerSm)
    return fmt::format("{} registers x {} threads > {} registers per SM", r.registers, threads,
                       l.registersPerSm);
  Occupancy o = occupancy(r, threads, l);
  if (o.blocksPerSm < 1)
    return fmt::format("no block fits on an SM ({})", o.limiter);
  if (o.fraction < minOccupancy)
    return fmt::format("occupancy {:.1f}% < {:.1f}% ({} block(s)/SM, limited by {})",
                       100 * o.fraction, 100 * minOccupancy, o.blocksPerSm, o.limiter);
  return std::nullopt;
}

} // namespace loom::autotune
