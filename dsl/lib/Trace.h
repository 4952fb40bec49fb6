//===- Trace.h - state of the kernel being traced (private) -----*- C++ -*-===//
#ifndef LOOM_DSL_LIB_TRACE_H
#define LOOM_DSL_LIB_TRACE_H

#include "loom/dsl/Kernel.h"
#include "loom/Support/Error.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Location.h"

#include <string>

namespace loom::dsl {

struct KernelBuilder::State {
  mlir::MLIRContext &ctx;
  mlir::OpBuilder builder;
  std::string kernelName;
  const Constants &constants;
  mlir::func::FuncOp func;
  std::vector<std::string> argNames;
  std::map<std::string, int64_t> usedConstants;
};

namespace detail {
/// The kernel being traced on this thread; throws if there is none.
KernelBuilder::State &currentTrace(const char *op, SourceLoc loc);
void setCurrentTrace(KernelBuilder::State *state);

/// "file:line: error: op: message" as loom::Error(InvalidArgument).
[[noreturn]] void fail(SourceLoc loc, std::string_view op, const std::string &message);
mlir::Location toMlirLoc(mlir::MLIRContext &ctx, SourceLoc loc);
std::string shapeStr(const Shape &shape);
/// "tile 64x32 of f16", "i32 scalar", "literal 0.5".
std::string describe(const Value &v);

/// Makes `v` a value of `dtype` (literals are materialized as constants,
/// other values must already have that dtype).
Value materialize(KernelBuilder::State &s, const Value &v, DType dtype,
                  std::string_view op, SourceLoc loc);
/// Broadcasts tiles/scalars to a common shape and dtype (NumPy rules;
/// literals take the dtype of the others).
std::vector<Value> unify(KernelBuilder::State &s, std::vector<Value> values,
                         std::string_view op, SourceLoc loc);
} // namespace detail
} // namespace loom::dsl

#endif
