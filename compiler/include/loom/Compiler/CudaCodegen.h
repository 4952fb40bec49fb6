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

/// Specializes `module` (binding `bindings`), turns strided loads and stores
/// into block accesses (loom-structure-memory), assigns register layouts
/// (loom-assign-layouts), lowers it through convert-loom-to-emitc and prints
/// C++. Reports the IR after the "specialize", "structure-memory", "layouts"
/// and "emitc" stages to `afterStage`. In the environment,
/// LOOM_BLOCK_ACCESS=0 keeps the generic loads and stores and
/// LOOM_ASSIGN_LAYOUTS=0 skips the layout assignment (every tile blocked).
/// Throws loom::Error.
CudaSource generateCuda(mlir::ModuleOp module, const std::vector<std::string> &bindings,
                        unsigned numThreads, const StageCallback &afterStage = {},
                        std::vector<StageTiming> *timings = nullptr);

} // namespace loom::compiler

#endif
