//===- GpuModel.cpp - occupancy and the launch's speed-of-light time ------===//

#include "loom/cuda/GpuModel.h"

#include "loom/Support/Error.h"

#include <algorithm>
#include <cmath>

namespace loom::cuda {
namespace {
int64_t roundUp(int64_t v, int64_t unit) { return (v + unit - 1) / unit * unit; }
int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr int kRegisterAllocationUnit = 256; ///< registers, per warp
constexpr int kSubPartitions = 4;
constexpr int kSharedAllocationUnit = 128; ///< bytes
} // namespace

Occupancy occupancy(const GpuArch &gpu, int registersPerThread, int threadsPerCta,
                    int64_t sharedBytesPerCta) {
  Occupancy occ;
  occ.warpsPerCta = static_cast<int>(ceilDiv(std::max(threadsPerCta, 1), 32));
  struct Limit {
    const char *name;
    int64_t ctas;
  };
  std::vector<Limit> limits;
  // Registers: per warp in 256-register units, per sub-partition.
  int64_t regsPerWarp = roundUp(int64_t(std::max(registersPerThread, 1)) * 32,
                                kRegisterAllocationUnit);
  int64_t byRegs = 0;
  if (registersPerThread <= gpu.maxRegsPerThread &&
      regsPerWarp * roundUp(occ.warpsPerCta, kSubPartitions) <= gpu.regsPerSm) {
    int64_t warpsPerSub = (gpu.regsPerSm / kSubPartitions) / regsPerWarp;
    byRegs = warpsPerSub * kSubPartitions / occ.warpsPerCta;
  }
  limits.push_back({"registers", byRegs});
  int64_t smemPerCta = roundUp(sharedBytesPerCta, kSharedAllocationUnit) +
                       gpu.smemReservedPerCtaBytes;
  limits.push_back({"shared memory", smemPerCta > gpu.smemPerSmBytes
                                         ? 0
                                         : gpu.smemPerSmBytes / smemPerCta});
  limits.push_back({"threads", gpu.maxThreadsPerSm / (occ.warpsPerCta * 32)});
  limits.push_back({"CTAs", gpu.maxCtasPerSm});
  const Limit *least = &limits[0];
  for (const Limit &l : limits)
    if (l.ctas < least->ctas)
      least = &l;
  occ.ctasPerSm = static_cast<int>(least->ctas);
  occ.limiter = least->name;
  return occ;
}

LaunchModel modelLaunch(const GpuArch &gpu, const LaunchWork &work) {
  if (work.ctas <= 0)
    throw Error(ErrorCode::InvalidArgument,
                "launch model: " + std::to_string(work.ctas) + " CTAs (expected > 0)");
  LaunchModel m;
  m.occupancy = occupancy(gpu, work.registersPerThread, work.threadsPerCta,
                          work.sharedBytesPerCta);
  if (m.occupancy.ctasPerSm == 0)
    throw Error(ErrorCode::InvalidArgument,
                "launch model: one CTA (" + std::to_string(work.threadsPerCta) + " threads, " +
                    std::to_string(work.registersPerThread) + " registers, " +
                    std::to_string(work.sharedBytesPerCta) +
                    " bytes shared memory) does not fit on an SM of " + gpu.arch + " (" +
                    m.occupancy.limiter + ")");
  int64_t perWave = int64_t(gpu.sms) * m.occupancy.ctasPerSm;
  m.waves = ceilDiv(work.ctas, perWave);
  // The busiest SM's CTAs per wave: a lone partial wave spreads over all SMs.
  double resident = m.waves == 1 ? double(ceilDiv(work.ctas, gpu.sms))
                                 : double(m.occupancy.ctasPerSm);
  double ctasOnBusiest = double(m.waves) * resident;
  double clock = gpu.boostGHz * 1e9;
  m.tensorS = ctasOnBusiest * work.mmaPerCta * work.flopsPerMma /
              (gpu.mmaFlopsPerClkPerSm * clock);
  m.sharedS = ctasOnBusiest * work.smemWavefrontsPerCta * 128.0 /
              (gpu.smemBytesPerClkPerSm * clock);
  m.issueS = ctasOnBusiest * work.warpInstrPerCta / (gpu.issuePerClkPerSm * clock);
  m.dramS = work.dramBytes / (gpu.dramGBs * 1e9);
  m.timeS = m.tensorS;
  m.bound = "tensor";
  for (auto [t, name] : {std::pair<double, const char *>{m.sharedS, "shared memory"},
                         {m.issueS, "issue"},
                         {m.dramS, "DRAM"}})
    if (t > m.timeS) {
      m.timeS = t;
      m.bound = name;
    }
  m.tflops = m.timeS > 0 ? work.usefulFlops / m.timeS / 1e12 : 0;
  m.percentOfPeak = 100.0 * m.tflops / gpu.denseTensorTflops;
  return m;
}

} // namespace loom::cuda
