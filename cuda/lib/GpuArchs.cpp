//===- GpuArchs.cpp - the per-arch constants of the speed-of-light model --===//
//
// One product per arch. docs/gpu-model.md gives each figure's source; keep
// the two in step.
//
//===----------------------------------------------------------------------===//
#include "loom/cuda/GpuModel.h"

#include "loom/Support/Error.h"

namespace loom::cuda {

namespace {
struct Row {
  const char *arch, *product;
  int sms;
  double boostGHz, mmaFlopsPerClkPerSm, denseTensorTflops, dramGBs;
  int maxThreadsPerSm, maxCtasPerSm, smemPerSmKB;
};

GpuArch fromRow(const Row &r) {
  GpuArch g;
  g.arch = r.arch;
  g.product = r.product;
  g.sms = r.sms;
  g.boostGHz = r.boostGHz;
  g.mmaFlopsPerClkPerSm = r.mmaFlopsPerClkPerSm;
  g.denseTensorTflops = r.denseTensorTflops;
  g.dramGBs = r.dramGBs;
  g.maxThreadsPerSm = r.maxThreadsPerSm;
  g.maxCtasPerSm = r.maxCtasPerSm;
  g.smemPerSmBytes = r.smemPerSmKB * 1024;
  return g;
}
} // namespace

const std::vector<GpuArch> &gpuArchs() {
  // FLOPs/clk/SM = dense peak / (SMs x boost clock): A100 312e12 / (108 x
  // 1.41e9) = 2048; A10 125e12 / (72 x 1.695e9) = 1024; L4 121e12 / (58 x
  // 2.04e9) = 1024; H100 wgmma 989.4e12 / (132 x 1.83e9) = 4096, of which
  // mma.sync reaches about 2/3 (FlashAttention-3 paper, section 2).
  static const Row rows[] = {
      {"sm_80", "A100 SXM4 80GB", 108, 1.410, 2048, 312, 2039, 2048, 32, 164},
      {"sm_86", "A10", 72, 1.695, 1024, 125, 600, 1536, 16, 100},
      {"sm_89", "L4", 58, 2.040, 1024, 121, 300, 1536, 24, 100},
      {"sm_90a", "H100 SXM5 80GB (mma.sync path)", 132, 1.830, 4096.0 * 2 / 3, 989.4, 3350,
       2048, 32, 228},
  };
  static const std::vector<GpuArch> table = [] {
    std::vector<GpuArch> t;
    for (const Row &r : rows)
      t.push_back(fromRow(r));
    return t;
  }();
  return table;
}

const GpuArch &gpuArch(const std::string &arch) {
  std::string known;
  for (const GpuArch &g : gpuArchs()) {
    if (g.arch == arch)
      return g;
    known += (known.empty() ? "" : ", ") + g.arch;
  }
  throw Error(ErrorCode::InvalidArgument,
              "arch '" + arch + "' has no GPU model (known: " + known + ")");
}

} // namespace loom::cuda
