//===- Passes.td - loom conversion passes ------------------*- tablegen -*-===//
#ifndef LOOM_CONVERSION_PASSES_TD
#define LOOM_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertLoomToLinalg : Pass<"convert-loom-to-linalg", "::mlir::ModuleOp"> {
  let summary = "lower loom tile ops to linalg/tensor/memref for the CPU";
  let description = [{
    CPU backend lowering. `!loom.ptr<T>` kernel arguments become
    `memref<?xT>`; the grid queries become six trailing `i32` arguments
    (program ids, then program counts, for axes 0..2); tile construction and
    shape ops become `linalg.fill`, `linalg.generic`, `tensor.expand_shape`
    and `linalg.broadcast`; masked loads become gathers guarded by `scf.if`,
    stores become loops of guarded `memref.store`; `loom.dot` becomes
    `linalg.matmul` accumulating in f32 and `loom.reduce` becomes
    `linalg.reduce`. Elementwise `arith`/`math` ops on tiles are left for
    `convert-elementwise-to-linalg`.

    Example: `loom-opt --convert-loom-to-linalg kernel.mlir`.
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect"
  ];
}

#endif
