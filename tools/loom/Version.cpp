//===- Version.cpp - loom version -----------------------------------------===//
#include "Cli.h"
#include "Commands.h"

#include "loom/Compiler/CpuTarget.h"
#include "loom/Version.h"

#include <cstdio>
#include <string>

#ifdef LOOM_HAVE_CUDA_TOOLKIT
#include "loom/cuda/Nvrtc.h"

#include <nccl.h>
#endif

int loom::cli::runVersion(int argc, char **argv) {
  Options opts("version", {}, {});
  opts.parse(argc, argv, 2);
  std::printf("Loom %s\n", LOOM_VERSION_STRING);
  std::printf("MLIR %s\n", LOOM_MLIR_VERSION_STRING);
  compiler::HostCpu host = compiler::hostCpu();
  std::string features;
  for (const auto &[name, present] : host.features)
    features += std::string(features.empty() ? "" : " ") + (present ? "+" : "-") + name;
  std::printf("host CPU %s (%s)\n", host.name.c_str(), features.c_str());
  // A bad LOOM_CPU_TARGET is reported here too, as CPU kernels would.
  compiler::CpuTarget target = compiler::resolveCpuTarget();
  std::printf("CPU target %s (%s, %u-bit vectors)\n", target.name.c_str(), target.cpu.c_str(),
              target.vectorBits);
#ifdef LOOM_HAVE_CUDA_TOOLKIT
  std::printf("%s\n", loom::cuda::nvrtcVersionString().c_str());
  // NCCL is reported from its headers: querying the library would need a
  // GPU-capable runtime, and the version is fixed at build time anyway.
  std::printf("NCCL %d.%d.%d (headers)\n", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
#else
  std::printf("NVRTC not built (no CUDA toolkit at configure time)\n");
  std::printf("NCCL not built (no CUDA toolkit at configure time)\n");
#endif
  return 0;
}
