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

#endif
