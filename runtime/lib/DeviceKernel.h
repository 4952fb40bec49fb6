//===- DeviceKernel.h - emu and cuda backends (private) ---------*- C++ -*-===//
#ifndef LOOM_RUNTIME_LIB_DEVICEKERNEL_H
#define LOOM_RUNTIME_LIB_DEVICEKERNEL_H

#include "loom/runtime/CudaBuild.h"

#include "mlir/IR/BuiltinOps.h"

namespace loom::runtime {

/// The CUDA C++ of an already traced kernel (consumed).
compiler::CudaSource cudaSourceFromModule(mlir::ModuleOp module, const dsl::Kernel &kernel,
                                          const Specialization &spec, std::vector<ArgInfo> &sig,
                                          std::map<std::string, ScalarValue> &bindings,
                                          const compiler::StageCallback &afterStage,
                                          std::vector<compiler::StageTiming> *timings);

/// The kernel for `spec`'s backend, compiled from the traced `module`.
std::shared_ptr<CompiledKernel> makeCompiledKernel(const dsl::Kernel &kernel,
                                                   const Specialization &spec,
                                                   mlir::ModuleOp module, double traceMs,
                                                   const compiler::StageCallback &afterStage);

} // namespace loom::runtime

#endif
