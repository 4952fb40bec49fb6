//===- DeviceKernel.h - emu and cuda backends (private) ---------*- C++ -*-===//
#ifndef LOOM_RUNTIME_LIB_DEVICEKERNEL_H
#define LOOM_RUNTIME_LIB_DEVICEKERNEL_H

#include "loom/runtime/CudaBuild.h"

#include "mlir/IR/BuiltinOps.h"

namespace loom::runtime {

/// The launch signature of a traced kernel and the bindings of `spec`,
/// checked against it; returns the bindings as loom-specialize takes them.
std::vector<std::string> launchSignature(mlir::ModuleOp module, const dsl::Kernel &kernel,
                                         const Specialization &spec, std::vector<ArgInfo> &sig,
                                         std::map<std::string, ScalarValue> &bindings);

/// Generates and compiles an already traced kernel (consumed) for
/// options.arch and options.numThreads (which override spec's). With the
/// disk cache on and no afterStage, a kernel this machine compiled before
/// is found by its traced IR (an index entry beside the CUBIN's), skipping
/// code generation as well as NVRTC.
void buildCudaFromModule(CudaBuild &build, mlir::ModuleOp module, const dsl::Kernel &kernel,
                         const Specialization &spec, const CudaBuildOptions &options,
                         std::map<std::string, ScalarValue> &bindings,
                         const compiler::StageCallback &afterStage);

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
