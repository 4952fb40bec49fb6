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

def ConvertLoomToEmitC : Pass<"convert-loom-to-emitc", "::mlir::ModuleOp"> {
  let summary = "lower loom kernels to EmitC calling the device tile library";
  let description = [{
    CUDA backend lowering. Each `loom.kernel` becomes an
    `extern "C" __global__` `emitc.func`; tiles become
    `loom::tile::Tile<T, loom::tile::Shape<...>>` values distributed over the
    block's threads (see device/include/loom/device/tile.h), with the layout
    as a third template argument when the tile type has an encoding
    (`loom::tile::Mma<a, b>` for `#loom.mma<warpsM = a, warpsN = b>`,
    `loom::tile::MmaRows<a, b>` for `#loom.mma_rows`), every loom op
    and every elementwise `arith`/`math` op (scalar or tile) becomes a call
    into that library, `scf.for` becomes `emitc.for`. Ops that move data
    between threads (broadcast, reduce, dot, extract, convert_layout) share
    one dynamic shared-memory scratch buffer; the pass records its size in bytes as the
    module attribute `loom.shared_bytes` and the block size as
    `loom.num_threads`. `mlir::emitc::translateToCpp` then prints CUDA C++.

    Example: `loom-opt --convert-loom-to-emitc="num-threads=128" k.mlir`.
  }];
  let options = [
    Option<"numThreads", "num-threads", "unsigned", "128",
           "threads per block (a multiple of 32)">
  ];
  let dependentDialects = ["::mlir::emitc::EmitCDialect"];
}

#endif
