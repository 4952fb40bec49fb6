//===- CpuJit.h - ORC JIT of lowered kernels --------------------*- C++ -*-===//
#ifndef LOOM_COMPILER_CPUJIT_H
#define LOOM_COMPILER_CPUJIT_H

#include "loom/Compiler/CpuTarget.h"

#include "mlir/IR/BuiltinOps.h"

#include <memory>
#include <string>

namespace mlir {
class ExecutionEngine;
}

namespace loom::compiler {

/// A kernel JIT-compiled for a CPU target (see CpuTarget.h). The entry point takes the packed
/// argument array of MLIR's ExecutionEngine: one pointer per scalar of the
/// lowered signature (a memref<?xT> argument expands to allocated pointer,
/// aligned pointer, offset, size, stride), grid arguments last.
class CpuExecutable {
public:
  using PackedEntry = void (*)(void **);

  /// JIT-compiles `module` (already in the LLVM dialect) at LLVM `optLevel`
  /// (0-3) for `target` and looks up `kernelName`. Throws loom::Error on
  /// failure; a symbol nothing provides is one line naming the symbol, the
  /// kernel and the target.
  static std::unique_ptr<CpuExecutable> create(mlir::ModuleOp module,
                                               const std::string &kernelName,
                                               unsigned optLevel, const CpuTarget &target);
  ~CpuExecutable();

  PackedEntry entry() const { return entry_; }

private:
  CpuExecutable() = default;
  std::unique_ptr<mlir::ExecutionEngine> engine_;
  PackedEntry entry_ = nullptr;
};

/// Translates an LLVM-dialect module to LLVM IR text, its functions marked
/// for `target`, optionally after the same LLVM optimization the JIT applies.
std::string translateToLLVMIRText(mlir::ModuleOp module, unsigned optLevel,
                                  const CpuTarget &target);

} // namespace loom::compiler

#endif
