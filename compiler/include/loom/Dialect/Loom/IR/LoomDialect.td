//===- LoomDialect.td - the loom tile dialect --------------*- tablegen -*-===//
#ifndef LOOM_DIALECT_TD
#define LOOM_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Loom_Dialect : Dialect {
  let name = "loom";
  let cppNamespace = "::mlir::loom";
  let summary = "Tile-level kernel dialect of the Loom JIT compiler";
  let description = [{
    The `loom` dialect expresses Triton-like tile programs: one instance of a
    kernel runs per program id, computes on statically shaped tiles (builtin
    ranked tensors) and reads and writes global memory through typed pointers
    with explicit offsets and masks. Elementwise arithmetic on tiles uses the
    `arith` and `math` dialects directly; counted loops use `scf.for`.

    A kernel is a `func.func` carrying the `loom.kernel` unit attribute and a
    `loom.arg_names` array naming its arguments (used by specialization and by
    the runtime's argument checks).
  }];
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::func::FuncDialect"];
}

class Loom_Op<string mnemonic, list<Trait> traits = []>
    : Op<Loom_Dialect, mnemonic, traits>;

#endif // LOOM_DIALECT_TD
