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
  std::string why;                ///< when not available
  std::string source;             ///< which triton and file, from the helper
  std::vector<std::string> notes; ///< configs that did not compile, and why
  std::vector<TritonKernel> kernels;
};

/// The problem shape, for the helper's argument specialization (Triton's
/// JIT specializes integers divisible by 16 or equal to 1).
struct TritonShape {
  int64_t batch = 4, heads = 16, seqlen = 4096, headDim = 128;
};

/// The Python that `loom profile` asks for triton: $LOOM_BENCH_PYTHON, else
/// $LOOM_TRITON_VENV/bin/python (default ~/.local/share/loom/triton-venv)
/// when it exists, else python3.
std::string tritonBenchPython();

/// Compiles Triton's fused-attention tutorial (its configs for `pass`) for
/// `arch` with tritonBenchPython() running $LOOM_TRITON_HELPER (else the
/// source tree's bench/triton/compile_tutorial.py). Never throws for a
/// missing Python, triton or tutorial: `why` says which. `firstOnly`: its
/// first config only (one compile instead of two or three).
TritonResult compileTritonTutorial(const std::string &pass, const std::string &arch,
                                   const TritonShape &shape, const std::string &dtype,
                                   bool causal, bool firstOnly);

} // namespace loom::cli

#endif
