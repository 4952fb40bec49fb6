//===- LoomTypes.td - loom dialect types -------------------*- tablegen -*-===//
#ifndef LOOM_TYPES_TD
#define LOOM_TYPES_TD

include "loom/Dialect/Loom/IR/LoomDialect.td"
include "mlir/IR/BuiltinTypeInterfaces.td"

def Loom_PtrType : TypeDef<Loom_Dialect, "Ptr"> {
  let mnemonic = "ptr";
  let summary = "pointer to elements of one type in global memory";
  let description = [{
    A kernel argument pointing at a buffer of `elementType` elements in global
    memory. Tiles are read and written through it with element offsets
    (`loom.load`, `loom.store`); the CPU backend lowers it to a
    `memref<?xT>` whose size the runtime fills from the buffer, and the CUDA
    backend to a raw device pointer.

    Example:

    ```mlir
    func.func @k(%x: !loom.ptr<f16>) attributes {loom.kernel}
    ```
  }];
  let parameters = (ins "::mlir::Type":$elementType);
  let assemblyFormat = "`<` $elementType `>`";
  let genVerifyDecl = 1;
}

def Loom_ElementType : AnyTypeOf<[F32, F16, BF16, I32, I64, I1]>;

#endif // LOOM_TYPES_TD
