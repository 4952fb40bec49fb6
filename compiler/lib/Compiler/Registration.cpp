//===- Registration.cpp - dialects and passes Loom uses -------------------===//
#include "loom/Compiler/Registration.h"

#include "loom/Compiler/CpuPipeline.h"
#include "loom/Conversion/Passes.h"
#include "loom/Transforms/Passes.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

#include <mutex>

void loom::compiler::registerAllDialects(mlir::DialectRegistry &registry) {
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
  registry.insert<mlir::loom::LoomDialect>();
}

void loom::compiler::registerAllPasses() {
  static std::once_flag once;
  std::call_once(once, [] {
    mlir::registerAllPasses();
    mlir::loom::registerLoomTransformsPasses();
    mlir::loom::registerLoomConversionPasses();
    mlir::PassPipelineRegistration<>(
        "loom-cpu-pipeline",
        "Lower loom kernels to the LLVM dialect for the CPU backend "
        "(for $LOOM_CPU_TARGET, else the host CPU)",
        [](mlir::OpPassManager &pm) {
          for (const CpuStage &stage : cpuStages(resolveCpuTarget()))
            if (failed(mlir::parsePassPipeline(stage.pipeline, pm)))
              llvm::report_fatal_error("bad built-in pipeline");
        });
  });
}

std::unique_ptr<mlir::MLIRContext> loom::compiler::createContext() {
  mlir::DialectRegistry registry;
  loom::compiler::registerAllDialects(registry);
  auto ctx = std::make_unique<mlir::MLIRContext>(
      registry, mlir::MLIRContext::Threading::DISABLED);
  ctx->loadDialect<mlir::loom::LoomDialect>();
  return ctx;
}
