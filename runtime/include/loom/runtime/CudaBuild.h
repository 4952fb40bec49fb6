//===- CudaBuild.h - kernels as CUDA C++, PTX and CUBIN ---------*- C++ -*-===//
//
// The CUDA backend's compile step: trace the DSL kernel, lower it to CUDA C++
// calling the device tile library, compile it with NVRTC for one GPU
// architecture, and cache the result on disk ($LOOM_CACHE_DIR, default
// ~/.cache/loom) keyed by the generated source, arch, NVRTC and Loom
// versions and the device library's text ("cubin"), plus an index from the
// traced IR and options to that entry ("cubin-index"), so that a kernel
// compiled before skips code generation as well as NVRTC.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_CUDABUILD_H
#define LOOM_RUNTIME_CUDABUILD_H

#include "loom/Compiler/CudaCodegen.h"
#include "loom/cuda/Nvrtc.h"
#include "loom/runtime/Kernel.h"

namespace loom::runtime {

struct CudaBuildOptions {
  std::string arch = "sm_80";
  unsigned numThreads = 128;
  bool useDiskCache = true;
};

struct CudaBuild {
  compiler::CudaSource source;   ///< generated CUDA C++ (includes tile.h)
  cuda::CompiledCuda binary;     ///< PTX, CUBIN, ptxas report
  bool fromDiskCache = false;
  std::vector<compiler::StageTiming> timings;
  std::vector<ArgInfo> signature;
  std::string cacheKey;
  /// ptxas report of the kernel (registers, spills, shared memory).
  const cuda::KernelResources &resources() const;
};

/// Generates and compiles `kernel` for `options.arch`. Throws loom::Error:
/// Unsupported for an architecture NVRTC rejects or below sm_80 (the device
/// library uses mma.sync, ldmatrix and cp.async), CompileFailed with NVRTC's
/// log and the path of the saved source.
CudaBuild buildCuda(const dsl::Kernel &kernel, const Specialization &spec,
                    const CudaBuildOptions &options,
                    const compiler::StageCallback &afterStage = {});

/// Compiles `build.source` with NVRTC (or loads it from the disk cache),
/// filling build.binary, cacheKey, fromDiskCache and timings.
void compileCudaBinary(CudaBuild &build, const CudaBuildOptions &options);

/// Generates the CUDA C++ only (no NVRTC), e.g. for the emulated device.
compiler::CudaSource generateCudaSource(const dsl::Kernel &kernel, const Specialization &spec,
                                        unsigned numThreads, std::vector<ArgInfo> *signature,
                                        const compiler::StageCallback &afterStage = {},
                                        std::vector<compiler::StageTiming> *timings = nullptr);

/// `code` with every `#include "loom/device/..."` replaced by the device
/// library text (each header once): one translation unit that NVRTC and
/// `nvcc -cubin` compile with no include paths but the CUDA toolkit's.
std::string selfContainedSource(const std::string &code);

/// The device library headers, as NVRTC gets them in memory.
const std::vector<cuda::SourceHeader> &deviceHeaders();

} // namespace loom::runtime

#endif
