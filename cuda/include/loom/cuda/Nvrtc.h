//===- Nvrtc.h - CUDA C++ source -> PTX + CUBIN via NVRTC -------*- C++ -*-===//
//
// Loom's CUDA backend emits CUDA C++ and compiles it in-process with NVRTC
// (no nvcc, no GPU needed). ptxas runs inside NVRTC with -v so every compile
// also yields the resource report (registers, spills, shared memory) that
// tests and the autotuner check.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_CUDA_NVRTC_H
#define LOOM_CUDA_NVRTC_H

#include <cstdint>
#include <string>
#include <vector>

namespace loom::cuda {

/// An in-memory header visible to `#include "name"` in the program.
struct SourceHeader {
  std::string name;
  std::string contents;
};

/// ptxas' report for one entry function (bytes unless stated).
struct KernelResources {
  std::string name{}; ///< As ptxas prints it (mangled unless extern "C").
  int registers = -1;
  int sharedBytes = 0; ///< Static shared memory.
  int constantBytes = 0; ///< cmem[0]: kernel parameters + driver data.
  int stackFrameBytes = 0;
  int spillStoreBytes = 0;
  int spillLoadBytes = 0;
};

struct CompileOptions {
  std::string arch = "sm_80"; ///< "sm_80", "sm_86", "sm_89", "sm_90a", ...
  std::string programName = "loom_kernel.cu"; ///< Shown in diagnostics.
  std::vector<std::string> extraOptions{};    ///< e.g. "-DBLOCK_M=128".
  bool lineInfo = false;                      ///< -lineinfo for profilers.
};

struct CompiledCuda {
  std::string arch;
  std::string ptx;
  std::vector<uint8_t> cubin;
  std::string log; ///< NVRTC + ptxas log (contains the -v report).
  std::vector<KernelResources> kernels;
  double compileMs = 0;

  /// The report for `name`, or nullptr.
  const KernelResources *kernel(const std::string &name) const;
};

/// Compiles `source` for options.arch. Throws loom::Error:
///  - Unsupported for a malformed arch or one this NVRTC cannot target;
///  - CompileFailed with NVRTC's log and the path of the saved source.
CompiledCuda compileCuda(const std::string &source, const std::vector<SourceHeader> &headers,
                         const CompileOptions &options);

/// Parses the ptxas -v lines of an NVRTC log, one entry per kernel.
std::vector<KernelResources> parsePtxasReport(const std::string &log);

/// Throws loom::Error(Unsupported) unless `arch` is well formed ("sm_" +
/// digits, optional 'a'/'f' suffix) and this NVRTC supports it. Returns the
/// numeric compute capability (e.g. 90 for "sm_90a").
int validateArch(const std::string &arch);

/// Throws loom::Error(Unsupported) for architectures without the mma.sync
/// bf16 tensor-core instructions Loom's kernels use (anything below sm_80).
int requireTensorCoreArch(const std::string &arch);

/// Shared memory one block may use on `arch` (the opt-in per-block limit,
/// CUDA C++ Programming Guide, "Compute Capabilities" table): 163 KB on
/// sm_80/sm_87, 99 KB on sm_86/sm_89, 227 KB on sm_90 and later. Throws
/// like requireTensorCoreArch for an arch Loom cannot target.
int64_t maxSharedBytesPerBlock(const std::string &arch);

/// Architectures this NVRTC can target, as compute capabilities (75, 80...).
const std::vector<int> &nvrtcSupportedArchs();

/// "NVRTC 13.0"; part of every cubin cache key.
std::string nvrtcVersionString();

/// Where failed sources are saved: $LOOM_CACHE_DIR/failed, else /tmp.
std::string failedSourceDir();

} // namespace loom::cuda

#endif
