//===- Kernel.h - defining kernels in the tile DSL --------------*- C++ -*-===//
//
// A kernel is a C++ callable that, when traced with a set of compile-time
// constants, builds one `loom` dialect function:
//
//   Kernel softmax("softmax", [](KernelBuilder &k) {
//     Value x = k.pointer("x", DType::F32), y = k.pointer("y", DType::F32);
//     Value nCols = k.scalar("n_cols", DType::I32);
//     int64_t block = k.constant("BLOCK");
//     Value cols = arange(0, block);
//     Value offs = program_id(0) * nCols + cols;
//     Value v = load(x, offs, cols < nCols, -INFINITY);
//     Value e = exp2((v - max(v, 0)) * 1.4426950408889634);
//     store(y, offs, e / sum(e, 0), cols < nCols);
//   });
//
// Misuse (mismatched shapes or dtypes, bad axes, unknown constants) throws
// loom::Error naming the operation, the operands and the user's file:line.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_DSL_KERNEL_H
#define LOOM_DSL_KERNEL_H

#include "loom/dsl/Ops.h"
#include "loom/dsl/Value.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace loom::dsl {

/// Compile-time constants of one specialization (block sizes, head dim, ...).
using Constants = std::map<std::string, int64_t>;

class KernelBuilder {
public:
  /// Declares a pointer argument to `elem` elements in global memory.
  Value pointer(const std::string &name, DType elem, SourceLoc loc = SourceLoc::current());
  /// Declares a scalar argument (i32, i64 or f32).
  Value scalar(const std::string &name, DType type, SourceLoc loc = SourceLoc::current());
  /// A compile-time constant of the specialization being traced.
  int64_t constant(const std::string &name, SourceLoc loc = SourceLoc::current()) const;
  /// Same, with a default when the specialization does not set it.
  int64_t constant(const std::string &name, int64_t fallback) const;
  const std::string &kernelName() const;

  /// Opaque tracing state (defined in dsl/lib/Trace.h).
  struct State;

private:
  friend class Kernel;
  explicit KernelBuilder(State &state) : state_(state) {}
  State &state_;
};

class Kernel {
public:
  using Body = std::function<void(KernelBuilder &)>;
  Kernel(std::string name, Body body);

  const std::string &name() const { return impl_->name; }
  /// Identity shared by copies of this Kernel (used as a fast cache key).
  uint64_t id() const { return impl_->id; }

  /// Traces the body with `constants` into a new module holding one kernel
  /// function. Throws loom::Error for DSL misuse.
  mlir::OwningOpRef<mlir::ModuleOp> build(mlir::MLIRContext &ctx,
                                          const Constants &constants = {}) const;

private:
  struct Impl {
    std::string name;
    Body body;
    uint64_t id;
  };
  std::shared_ptr<const Impl> impl_;
};

} // namespace loom::dsl

#endif
