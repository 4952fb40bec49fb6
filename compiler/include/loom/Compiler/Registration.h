//===- Registration.h - dialects and passes Loom uses -----------*- C++ -*-===//
#ifndef LOOM_COMPILER_REGISTRATION_H
#define LOOM_COMPILER_REGISTRATION_H

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include <memory>

namespace loom::compiler {
/// Registers the loom dialect and every upstream dialect, interface and
/// translation the CPU pipeline needs.
void registerAllDialects(mlir::DialectRegistry &registry);
/// Registers loom's passes, upstream passes and the `loom-cpu-pipeline`
/// pass pipeline (idempotent, thread-safe).
void registerAllPasses();
/// A context with every dialect registered and threading disabled (Loom
/// compiles many small kernels; MLIR's own thread pool only adds latency).
std::unique_ptr<mlir::MLIRContext> createContext();
} // namespace loom::compiler

#endif
