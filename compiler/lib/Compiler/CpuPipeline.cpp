//===- CpuPipeline.cpp - loom -> LLVM dialect for the CPU -----------------===//
#include "loom/Compiler/CpuPipeline.h"

#include "loom/Compiler/Registration.h"
#include "loom/Support/Error.h"
#include "loom/Transforms/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include <chrono>

using namespace mlir;

namespace loom::compiler {
std::vector<CpuStage> cpuStages(const CpuTarget &target) {
  return {
      {"linalg", "convert-loom-to-linalg,"
                 "func.func(convert-elementwise-to-linalg,linalg-generalize-named-ops),"
                 "canonicalize,cse,func.func(loom-fuse-elementwise),canonicalize"},
      {"bufferize", "one-shot-bufferize{"
                    "bufferize-function-boundaries=1 allow-return-allocs-from-loops=1 "
                    "function-boundary-type-conversion=identity-layout-map},"
                    "canonicalize,func.func(buffer-hoisting,buffer-loop-hoisting),"
                    "buffer-deallocation-pipeline"},
      {"loops", "func.func(loom-vectorize-dot{" + target.dotMicroKernelOptions() +
                    "},loom-vectorize-elementwise{lanes=" + std::to_string(target.f32Lanes()) +
                    "},convert-linalg-to-loops),lower-affine,canonicalize,cse"},
      {"llvm", "expand-strided-metadata,convert-scf-to-cf,"
               "arith-expand{include-bf16=1 include-f8e8m0=0 include-f4e2m1=0},"
               "func.func(loom-select-half-floats-as-bits,loom-approximate-math),func.func(convert-math-to-llvm),convert-math-to-libm,"
               "convert-to-llvm,reconcile-unrealized-casts"},
  };
}

namespace {
double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

} // namespace

/// Runs `pm` on `module`, turning any diagnostic into a ::loom::Error.
void runStage(PassManager &pm, ModuleOp module, const std::string &stage) {
  std::string diagnostics;
  llvm::raw_string_ostream os(diagnostics);
  ScopedDiagnosticHandler handler(module.getContext(), [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error) {
      os << diag.getLocation() << ": " << diag.str() << "\n";
      for (Diagnostic &note : diag.getNotes())
        os << "  note: " << note.str() << "\n";
    }
    return success();
  });
  if (failed(pm.run(module))) {
    if (!diagnostics.empty() && diagnostics.back() == '\n')
      diagnostics.pop_back();
    throw ::loom::Error(::loom::ErrorCode::CompileFailed,
                      "compile stage '" + stage + "' failed: " + diagnostics);
  }
}

void specialize(ModuleOp module, const std::vector<std::string> &bindings) {
  PassManager pm(module.getContext());
  mlir::loom::LoomSpecializeOptions options;
  options.bindings.assign(bindings.begin(), bindings.end());
  pm.addPass(mlir::loom::createLoomSpecialize(options));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Backend-independent: both backends accumulate a dot into its
  // accumulator operand in place.
  pm.addNestedPass<func::FuncOp>(mlir::loom::createLoomFoldDotAccumulator());
  runStage(pm, module, "specialize");
}

std::vector<StageTiming>
lowerForCpu(ModuleOp module, const std::vector<std::string> &bindings,
            const CpuTarget &target, const StageCallback &afterStage) {
  registerAllPasses();
  MLIRContext *ctx = module.getContext();
  std::vector<StageTiming> timings;

  auto start = std::chrono::steady_clock::now();
  specialize(module, bindings);
  timings.push_back({"specialize", millisecondsSince(start)});
  if (afterStage)
    afterStage("specialize", module);

  for (const CpuStage &stage : cpuStages(target)) {
    start = std::chrono::steady_clock::now();
    PassManager pm(ctx);
    if (failed(parsePassPipeline(stage.pipeline, pm)))
      throw ::loom::Error(::loom::ErrorCode::Internal,
                        "built-in pipeline '" + stage.name + "' does not parse");
    runStage(pm, module, stage.name);
    timings.push_back({stage.name, millisecondsSince(start)});
    if (afterStage)
      afterStage(stage.name, module);
  }
  return timings;
}
} // namespace loom::compiler
