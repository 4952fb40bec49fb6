//===- CpuKernel.h - the CPU backend (private) ------------------*- C++ -*-===//
#ifndef LOOM_RUNTIME_LIB_CPUKERNEL_H
#define LOOM_RUNTIME_LIB_CPUKERNEL_H

#include "loom/runtime/Kernel.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace loom::compiler {
class CpuExecutable;
}

namespace loom::runtime {

/// The thread's MLIR context used for tracing and compiling.
mlir::MLIRContext &threadContext();
std::vector<ArgInfo> signatureOf(mlir::func::FuncOp func);

class CpuCompiledKernel : public CompiledKernel {
public:
  /// Lowers `traced` (consumed) and JIT-compiles it.
  CpuCompiledKernel(const dsl::Kernel &kernel, const Specialization &spec,
                    mlir::ModuleOp traced, double traceMs,
                    const compiler::StageCallback &afterStage);
  ~CpuCompiledKernel() override;

protected:
  void run(const Grid &grid, std::span<const Arg> args) const override;

private:
  std::unique_ptr<compiler::CpuExecutable> exe_;
  unsigned cpuThreads_ = 0; ///< 0: defaultCpuThreads() at each launch
};

} // namespace loom::runtime

#endif
