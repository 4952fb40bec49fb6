//===- CpuPipeline.h - loom -> LLVM dialect for the CPU ---------*- C++ -*-===//
#ifndef LOOM_COMPILER_CPUPIPELINE_H
#define LOOM_COMPILER_CPUPIPELINE_H

#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <string>
#include <vector>

namespace loom::compiler {

/// One named step of the CPU lowering, as a textual pass pipeline (so that
/// `loom-opt --pass-pipeline=...` reproduces it exactly).
struct CpuStage {
  std::string name;
  std::string pipeline;
};

/// The stages after specialization, in order: linalg, bufferize, loops, llvm.
const std::vector<CpuStage> &cpuStages();

struct StageTiming {
  std::string name;
  double milliseconds = 0;
};

/// Called with the module after each stage ("specialize", then cpuStages()).
using StageCallback = std::function<void(const std::string &, mlir::ModuleOp)>;

/// Specializes (binds `bindings`, "name=value") and lowers `module` in place
/// to the LLVM dialect. Verifies after every pass. Throws loom::Error
/// (CompileFailed) carrying the diagnostics of the failing stage.
std::vector<StageTiming> lowerForCpu(mlir::ModuleOp module,
                                     const std::vector<std::string> &bindings,
                                     const StageCallback &afterStage = {});

} // namespace loom::compiler

#endif
