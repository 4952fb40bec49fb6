//===- Version.cpp - loom version -----------------------------------------===//
#include "Cli.h"
#include "Commands.h"

#include "loom/Version.h"

#include <cstdio>

#ifdef LOOM_HAVE_CUDA_TOOLKIT
#include <nccl.h>
#include <nvrtc.h>
#endif

int loom::cli::runVersion(int argc, char **argv) {
  Options opts("version", {}, {});
  opts.parse(argc, argv, 2);
  std::printf("Loom %s\n", LOOM_VERSION_STRING);
  std::printf("MLIR %s\n", LOOM_MLIR_VERSION_STRING);
#ifdef LOOM_HAVE_CUDA_TOOLKIT
  int major = 0, minor = 0;
  if (nvrtcVersion(&major, &minor) == NVRTC_SUCCESS)
    std::printf("NVRTC %d.%d\n", major, minor);
  else
    std::printf("NVRTC unavailable\n");
  // NCCL is reported from its headers: querying the library would need a
  // GPU-capable runtime, and the version is fixed at build time anyway.
  std::printf("NCCL %d.%d.%d (headers)\n", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
#else
  std::printf("NVRTC not built (no CUDA toolkit at configure time)\n");
  std::printf("NCCL not built (no CUDA toolkit at configure time)\n");
#endif
  return 0;
}
