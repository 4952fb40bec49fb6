//===- CudaCodegen.h - loom -> CUDA C++ -------------------------*- C++ -*-===//
#ifndef LOOM_COMPILER_CUDACODEGEN_H
#define LOOM_COMPILER_CUDACODEGEN_H

#include "loom/Compiler/CpuPipeline.h"

#include <string>
#include <vector>

namespace loom::compiler {

/// CUDA C++ for one kernel, calling the device tile library
/// (`#include "loom/device/tile.h"`), plus what a launch needs.
struct CudaSource {
  std::string code;
  std::string kernelName;
  int64_t sharedBytes = 0; ///< dynamic shared memory per block
  unsigned numThreads = 0; ///< threads per block
};

/// What the CUDA code generator is asked for besides the kernel.
struct CudaCodegenOptions {
  unsigned numThreads = 128; ///< threads per block
  /// Shared-memory slots per pipelined dot operand (Triton's num_stages):
  /// copies run numStages - 1 loop iterations ahead; 0 = no pipelining
  /// (operands read from global memory by the dot that uses them).
  unsigned numStages = 2;
  /// Shared memory one block may use (the arch's opt-in per-block limit):
  /// the pipeline buffers and the ops' scratch together. Fewer stages are
  /// used where numStages would not fit.
  int64_t maxSharedBytes = 166912;
};

/// Specializes `module` (binding `bindings`), turns strided loads and stores
/// into block accesses (loom-structure-memory), assigns register layouts
/// (loom-assign-layouts), pipelines the dot operands of loops
/// (loom-pipeline-dot-operands), lowers it through convert-loom-to-emitc
/// and prints C++. Reports the IR after the "specialize",
/// "structure-memory", "layouts", "pipeline" and "emitc" stages to
/// `afterStage`. In the environment, LOOM_BLOCK_ACCESS=0 keeps the generic
/// loads and stores and LOOM_ASSIGN_LAYOUTS=0 skips the layout assignment
/// (every tile blocked). Throws loom::Error.
CudaSource generateCuda(mlir::ModuleOp module, const std::vector<std::string> &bindings,
                        const CudaCodegenOptions &options, const StageCallback &afterStage = {},
                        std::vector<StageTiming> *timings = nullptr);

/// The environment switches generateCuda reads, with their values, as text:
/// part of any cache key of its output.
std::string cudaCodegenSwitches();

} // namespace loom::compiler

#endif
