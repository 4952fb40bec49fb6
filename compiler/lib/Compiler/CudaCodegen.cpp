//===- CudaCodegen.cpp - loom -> EmitC -> CUDA C++ ------------------------===//
#include "loom/Compiler/CudaCodegen.h"

#include "loom/Compiler/Registration.h"
#include "loom/Conversion/Passes.h"
#include "loom/Support/Error.h"
#include "loom/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Target/Cpp/CppEmitter.h"
#include "mlir/Transforms/Passes.h"

#include <chrono>
#include <cstdlib>

namespace loom::compiler {

namespace {
// The environment switches of generateCuda (see CudaCodegen.h).
constexpr const char *kBlockAccessSwitch = "LOOM_BLOCK_ACCESS";
constexpr const char *kAssignLayoutsSwitch = "LOOM_ASSIGN_LAYOUTS";

bool switchedOff(const char *name) {
  const char *value = std::getenv(name);
  return value && std::string(value) == "0";
}
} // namespace

std::string cudaCodegenSwitches() {
  std::string s;
  for (const char *name : {kBlockAccessSwitch, kAssignLayoutsSwitch}) {
    const char *value = std::getenv(name);
    s += std::string(name) + "=" + (value ? value : "") + ";";
  }
  return s;
}

CudaSource generateCuda(mlir::ModuleOp module, const std::vector<std::string> &bindings,
                        const CudaCodegenOptions &codegen, const StageCallback &afterStage,
                        std::vector<StageTiming> *timings) {
  const unsigned numThreads = codegen.numThreads;
  registerAllPasses();
  auto start = std::chrono::steady_clock::now();
  auto lap = [&](const char *name) {
    auto now = std::chrono::steady_clock::now();
    if (timings)
      timings->push_back({name, std::chrono::duration<double, std::milli>(now - start).count()});
    start = now;
    if (afterStage)
      afterStage(name, module);
  };
  CudaSource out;
  for (auto func : module.getOps<mlir::func::FuncOp>())
    if (func->hasAttr(mlir::loom::kKernelAttrName))
      out.kernelName = func.getSymName().str();
  specialize(module, bindings);
  lap("specialize");

  // Strided, bounded loads and stores become loom.block_load/block_store,
  // before layouts are assigned so that the offset and mask tiles they no
  // longer need are gone. LOOM_BLOCK_ACCESS=0 keeps the generic accesses.
  if (!switchedOff(kBlockAccessSwitch)) {
    mlir::PassManager structure(module.getContext());
    structure.addNestedPass<mlir::func::FuncOp>(mlir::loom::createLoomStructureMemory());
    runStage(structure, module, "structure-memory");
  }
  lap("structure-memory");

  // LOOM_ASSIGN_LAYOUTS=0 keeps every tile blocked (for comparisons, and as
  // an escape hatch); caches are keyed by the generated code, so both forms
  // can be cached side by side.
  if (!switchedOff(kAssignLayoutsSwitch)) {
    mlir::PassManager layouts(module.getContext());
    mlir::loom::LoomAssignLayoutsOptions layoutOptions;
    layoutOptions.numThreads = numThreads;
    layouts.addPass(mlir::loom::createLoomAssignLayouts(layoutOptions));
    runStage(layouts, module, "layouts");
  }
  lap("layouts");

  // Tensor-core dot operands that loops read from global memory are copied
  // into shared-memory slots ahead of use; with no stages they stay deferred
  // (read from global memory by the dot).
  if (codegen.numStages > 8)
    throw Error(ErrorCode::InvalidArgument,
                "pipeline stages must be from 0 to 8, got " + std::to_string(codegen.numStages));
  unsigned stagesUsed = codegen.numStages;
  // The pipeline's buffers and the ops' scratch (placed after them) share
  // the block's shared memory: every byte counts against the arch's
  // per-block limit. The scratch is known only once lowered, so the most
  // stages whose lowered kernel fits are kept (the pass itself also drops
  // stages per loop until its buffers fit).
  auto runPipeline = [&](mlir::ModuleOp m, unsigned stages) {
    if (stages == 0)
      return;
    mlir::PassManager pipeline(m.getContext());
    mlir::loom::LoomPipelineDotOperandsOptions pipelineOptions;
    pipelineOptions.numStages = stages;
    pipelineOptions.maxSharedBytes = codegen.maxSharedBytes;
    pipeline.addNestedPass<mlir::func::FuncOp>(
        mlir::loom::createLoomPipelineDotOperands(pipelineOptions));
    runStage(pipeline, m, "pipeline");
  };
  auto runEmitC = [&](mlir::ModuleOp m) {
    mlir::PassManager pm(m.getContext());
    mlir::loom::ConvertLoomToEmitCOptions options;
    options.numThreads = numThreads;
    pm.addPass(mlir::loom::createConvertLoomToEmitC(options));
    runStage(pm, m, "emitc");
    return m->getAttrOfType<mlir::IntegerAttr>(mlir::loom::kSharedBytesAttrName).getInt();
  };
  for (; stagesUsed > 1; --stagesUsed) {
    mlir::OwningOpRef<mlir::ModuleOp> attempt(module.clone());
    runPipeline(*attempt, stagesUsed);
    if (runEmitC(*attempt) <= codegen.maxSharedBytes)
      break;
  }
  runPipeline(module, stagesUsed);
  lap("pipeline");
  runEmitC(module);
  lap("emitc");

  std::string code;
  llvm::raw_string_ostream os(code);
  if (failed(mlir::emitc::translateToCpp(module, os)))
    throw Error(ErrorCode::CompileFailed,
                "EmitC could not print kernel '" + out.kernelName + "' as C++");
  out.code = "// Generated by Loom from kernel '" + out.kernelName +
             "'. Compiles with NVRTC, nvcc, or a host C++20 compiler with\n"
             "// -DLOOM_DEVICE_EMULATION (Loom's emulated device).\n" +
             code;
  out.sharedBytes = module->getAttrOfType<mlir::IntegerAttr>(mlir::loom::kSharedBytesAttrName)
                        .getInt();
  out.numThreads = numThreads;
  lap("cpp");
  return out;
}

} // namespace loom::compiler
