//===- CpuPipeline.h - loom -> LLVM dialect for the CPU ---------*- C++ -*-===//
#ifndef LOOM_COMPILER_CPUPIPELINE_H
#define LOOM_COMPILER_CPUPIPELINE_H

#include "loom/Compiler/CpuTarget.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

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
/// The loops stage's vector width and dot blocking follow `target`.
std::vector<CpuStage> cpuStages(const CpuTarget &target);

struct StageTiming {
  std::string name;
  double milliseconds = 0;
};

/// Called with the module after each stage ("specialize", then cpuStages()).
using StageCallback = std::function<void(const std::string &, mlir::ModuleOp)>;

/// Runs `pm` on `module`; any error diagnostic becomes loom::Error
/// (CompileFailed) "compile stage '<stage>' failed: <diagnostics>".
void runStage(mlir::PassManager &pm, mlir::ModuleOp module, const std::string &stage);
/// loom-specialize with `bindings` ("name=value"), canonicalize, cse.
void specialize(mlir::ModuleOp module, const std::vector<std::string> &bindings);

/// Specializes (binds `bindings`, "name=value") and lowers `module` in place
/// to the LLVM dialect. Verifies after every pass. Throws loom::Error
/// (CompileFailed) carrying the diagnostics of the failing stage.
std::vector<StageTiming> lowerForCpu(mlir::ModuleOp module,
                                     const std::vector<std::string> &bindings,
                                     const CpuTarget &target,
                                     const StageCallback &afterStage = {});

} // namespace loom::compiler

#endif
