//===- Passes.td - loom transformation passes --------------*- tablegen -*-===//
#ifndef LOOM_TRANSFORMS_PASSES_TD
#define LOOM_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def LoomSpecialize : Pass<"loom-specialize", "::mlir::ModuleOp"> {
  let summary = "bind scalar kernel arguments to compile-time values";
  let description = [{
    Replaces every use of the named scalar arguments of each `loom.kernel`
    function by a constant, so that canonicalization folds the arithmetic
    that depends on them (row strides, head dims, trip counts). The argument
    stays in the signature so launches are unchanged; the bound values are
    recorded in the `loom.specialized` dictionary, which the runtime checks
    against the values passed at launch.

    Example: `loom-opt --loom-specialize="bind=n_cols=1000,scale=0.125"`.
  }];
  let options = [
    ListOption<"bindings", "bind", "std::string",
               "name=value pairs binding scalar kernel arguments">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def LoomAssignLayouts : Pass<"loom-assign-layouts", "::mlir::ModuleOp"> {
  let summary = "choose register layouts for the CUDA backend's tiles";
  let description = [{
    Attaches register layouts (tensor encodings, see LoomAttrs.td) to the
    tiles of every `loom.kernel` for the CUDA lowering, as Triton's layout
    assignment does:

    1. Anchors: a `loom.dot` with f16/bf16 operands whose shape is a
       multiple of m16n8k16 (and whose M x N tile can be split over the
       block's warps) gets a `#loom.mma` result, so the MMAs accumulate in
       registers instead of going through a shared-memory C tile. Warps go
       along M first, so a row stays within a warp.
    2. Forward propagation: elementwise `arith`/`math` ops take the layout
       of their operands; a row reduction of an mma tile gives
       `#loom.mma_rows`, `expand_dims` of that to `[M, 1]` keeps it, and
       broadcasting it back to `[M, N]` gives `#loom.mma`; an `scf.for`
       iteration argument takes the layout of the value yielded for it, so
       an accumulator carried through a loop (matmul's C, attention's O,
       its running max and sum) stays in registers across iterations.
    3. Operands that need another layout than their producer's are
       rematerialized in it when they are cheap to recompute (splats,
       broadcasts, `arange`, elementwise ops of those: index and mask
       tiles) and otherwise get an explicit `loom.convert_layout` right
       after their definition. Loads, stores and everything else keep the
       blocked layout (blocked stores are coalesced).

    Tiles no anchor reaches keep the blocked layout, so a kernel without
    eligible dots is unchanged.

    Example: `loom-opt --loom-assign-layouts="num-threads=128" k.mlir`.
  }];
  let options = [
    Option<"numThreads", "num-threads", "unsigned", "128",
           "threads per block (a multiple of 32), as for convert-loom-to-emitc">
  ];
}

#endif
