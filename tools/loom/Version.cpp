//===- Version.cpp - loom version -----------------------------------------===//
#include "Cli.h"
#include "Commands.h"

#include "loom/Version.h"

#include <cstdio>

#ifdef LOOM_HAVE_CUDA_TOOLKIT
#include "loom/cuda/Nvrtc.h"

#include <nccl.h>
#endif

int loom::cli::runVersion(int argc, char **argv) {
  Options opts("version", {}, {});
  opts.parse(argc, argv, 2);
  std::printf("Loom %s\n", LOOM_VERSION_STRING);
  std::printf("MLIR %s\n", LOOM_MLIR_VERSION_STRING);
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
