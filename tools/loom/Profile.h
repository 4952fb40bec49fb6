//===- Profile.h - loom profile's helpers --------------------------------===//
#ifndef LOOM_TOOLS_LOOM_PROFILE_H
#define LOOM_TOOLS_LOOM_PROFILE_H

#include "Cli.h"

#include "loom/runtime/Kernel.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom::cli {

/// --const and --bind of `loom compile` (Compile.cpp).
runtime::Specialization parseSpecialization(const Options &opts, const std::string &kernel);

/// One Triton kernel compiled by bench/triton/compile_tutorial.py.
struct TritonKernel {
  std::string label, name, pass; ///< pass: "fwd" or "bwd"
  int warps = 0, registers = 0, spillBytes = 0;
  int64_t blockM = 0, blockN = 0, sharedBytes = 0;
  std::vector<uint8_t> cubin;
};

struct TritonResult {
  bool available = false;
  std::string why; ///< when not available
  std::vector<TritonKernel> kernels;
};

/// Compiles Triton's fused-attention tutorial (its configs for `pass`) for
/// `arch` with the Python of $LOOM_BENCH_PYTHON (else python3) running
/// $LOOM_TRITON_HELPER (else the source tree's
/// bench/triton/compile_tutorial.py). Never throws for a missing Python,
/// triton or tutorial: `why` says which.
TritonResult compileTritonTutorial(const std::string &pass, const std::string &arch,
                                   int64_t headDim, const std::string &dtype, bool causal);

} // namespace loom::cli

#endif
