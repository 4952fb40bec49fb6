//===- LoomOps.td - loom dialect operations ----------------*- tablegen -*-===//
#ifndef LOOM_OPS_TD
#define LOOM_OPS_TD

include "loom/Dialect/Loom/IR/LoomTypes.td"
include "loom/Dialect/Loom/IR/LoomAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

// Tiles have static shapes: tile sizes are compile-time constants.
def Loom_Tile : StaticShapeTensorOf<[Loom_ElementType]>;
def Loom_NumericTile : StaticShapeTensorOf<[F32, F16, BF16, I32, I64]>;
def Loom_IndexTile : StaticShapeTensorOf<[I32, I64]>;
def Loom_MaskTile : StaticShapeTensorOf<[I1]>;

//===----------------------------------------------------------------------===//
// Program ids
//===----------------------------------------------------------------------===//

class Loom_GridQueryOp<string mnemonic>
    : Loom_Op<mnemonic, [Pure]> {
  let arguments = (ins ConfinedAttr<I32Attr, [IntMinValue<0>, IntMaxValue<2>]>:$axis);
  let results = (outs I32:$result);
  let assemblyFormat = "$axis attr-dict `:` type($result)";
}

def Loom_ProgramIdOp : Loom_GridQueryOp<"program_id"> {
  let summary = "index of the running program instance along a grid axis";
  let description = [{
    Returns the id (0-based) of the program instance executing the kernel
    along grid axis 0, 1 or 2.

    Example:

    ```mlir
    %row = loom.program_id 0 : i32
    ```
  }];
}

def Loom_NumProgramsOp : Loom_GridQueryOp<"num_programs"> {
  let summary = "number of program instances along a grid axis";
  let description = [{
    Returns the grid size along axis 0, 1 or 2.

    Example:

    ```mlir
    %n = loom.num_programs 1 : i32
    ```
  }];
}

//===----------------------------------------------------------------------===//
// Tile construction and shape manipulation
//===----------------------------------------------------------------------===//

def Loom_ArangeOp : Loom_Op<"arange", [Pure]> {
  let summary = "1-D tile of consecutive integers";
  let description = [{
    Produces the tile `[start, start + 1, ..., end - 1]`. The result length
    must equal `end - start` and be positive.

    Example:

    ```mlir
    %cols = loom.arange 0 to 128 : tensor<128xi32>
    ```
  }];
  let arguments = (ins I32Attr:$start, I32Attr:$end);
  let results = (outs StaticShapeTensorOf<[I32]>:$result);
  let assemblyFormat = "$start `to` $end attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Loom_SplatOp : Loom_Op<"splat", [Pure,
    TypesMatchWith<"result element type matches the scalar",
                   "result", "src",
                   "::llvm::cast<::mlir::ShapedType>($_self).getElementType()">]> {
  let summary = "tile with every element equal to a scalar";
  let description = [{
    Example:

    ```mlir
    %t = loom.splat %x : tensor<64x32xf32>
    ```
  }];
  let arguments = (ins Loom_ElementType:$src);
  let results = (outs Loom_Tile:$result);
  let assemblyFormat = "$src attr-dict `:` type($result)";
  let hasFolder = 0;
}

def Loom_ExpandDimsOp : Loom_Op<"expand_dims", [Pure,
    AllElementTypesMatch<["src", "result"]>]> {
  let summary = "insert a size-1 dimension into a tile";
  let description = [{
    Inserts a dimension of size 1 at position `axis` of the source shape
    (0 <= axis <= rank), like `x[:, None]` in Triton or NumPy.

    Example:

    ```mlir
    %c = loom.expand_dims %r, 1 : tensor<64xf32> -> tensor<64x1xf32>
    ```
  }];
  let arguments = (ins Loom_Tile:$src, I32Attr:$axis);
  let results = (outs Loom_Tile:$result);
  let assemblyFormat = "$src `,` $axis attr-dict `:` type($src) `->` type($result)";
  let hasVerifier = 1;
}

def Loom_TransOp : Loom_Op<"trans", [Pure,
    AllElementTypesMatch<["src", "result"]>]> {
  let summary = "swap the two dimensions of a 2-D tile";
  let description = [{
    The transpose of a rank-2 tile, like `tl.trans` in Triton: the result's
    element (i, j) is the source's (j, i). It lets a kernel feed a tile it
    computed in one orientation to a dot that needs the other, e.g. dS^T of
    an attention backward that holds dS. The CPU backend lowers it to
    `linalg.transpose`; the CUDA backend moves the tile through shared
    memory (`loom::tile::transpose`), so the result may have any layout.

    Example:

    ```mlir
    %t = loom.trans %x : tensor<64x32xf32> -> tensor<32x64xf32>
    ```
  }];
  let arguments = (ins Loom_Tile:$src);
  let results = (outs Loom_Tile:$result);
  let assemblyFormat = "$src attr-dict `:` type($src) `->` type($result)";
  let hasVerifier = 1;
}

def Loom_BroadcastOp : Loom_Op<"broadcast", [Pure,
    AllElementTypesMatch<["src", "result"]>]> {
  let summary = "repeat size-1 dimensions of a tile";
  let description = [{
    Result and source have the same rank; every source dimension either
    equals the result's or is 1 (and is then repeated).

    Example:

    ```mlir
    %b = loom.broadcast %c : tensor<64x1xf32> -> tensor<64x128xf32>
    ```
  }];
  let arguments = (ins Loom_Tile:$src);
  let results = (outs Loom_Tile:$result);
  let assemblyFormat = "$src attr-dict `:` type($src) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Loom_ConvertLayoutOp : Loom_Op<"convert_layout", [Pure,
    SameOperandsAndResultShape, SameOperandsAndResultElementType]> {
  let summary = "move a tile's elements to another register layout";
  let description = [{
    The same tile, with its elements held by the threads its result's layout
    (tensor encoding: none for blocked, `#loom.mma`, `#loom.mma_rows`) says.
    The CUDA backend moves the elements through shared memory; the op is
    inserted by `loom-assign-layouts` where a consumer needs another layout
    than its producer's (e.g. a store, which stays blocked for coalescing).
    Converting to the source's own layout folds away.

    Example:

    ```mlir
    %b = loom.convert_layout %acc : tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>>
        -> tensor<64x64xf32>
    ```
  }];
  let arguments = (ins Loom_Tile:$src);
  let results = (outs Loom_Tile:$result);
  let assemblyFormat = "$src attr-dict `:` type($src) `->` type($result)";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Global memory
//===----------------------------------------------------------------------===//

def Loom_LoadOp : Loom_Op<"load", [AttrSizedOperandSegments,
    MemoryEffects<[MemRead]>]> {
  let summary = "masked gather of a tile from global memory";
  let description = [{
    Reads `result[i] = ptr[offsets[i]]` for every element `i` where `mask[i]`
    is true; elements whose mask is false are not read and take `other[i]`
    (zero when `other` is absent). Offsets count elements, not bytes. The
    mask and `other` tiles have the shape of `offsets`; the result has that
    shape and the pointer's element type.

    Example:

    ```mlir
    %v = loom.load %x[%offs] mask %m : tensor<128xi1> other %ninf : tensor<128xf32>
        : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
    ```
  }];
  let arguments = (ins Loom_PtrType:$ptr, Loom_IndexTile:$offsets,
                       Optional<Loom_MaskTile>:$mask, Optional<Loom_Tile>:$other);
  let results = (outs Loom_Tile:$result);
  let assemblyFormat = [{
    $ptr `[` $offsets `]` (`mask` $mask^ `:` type($mask))?
    (`other` $other^ `:` type($other))? attr-dict
    `:` qualified(type($ptr)) `,` type($offsets) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Loom_StoreOp : Loom_Op<"store", [MemoryEffects<[MemWrite]>]> {
  let summary = "masked scatter of a tile to global memory";
  let description = [{
    Writes `ptr[offsets[i]] = value[i]` for every element `i` where `mask[i]`
    is true (every element when the mask is absent). Offsets count elements.
    Value and mask have the shape of `offsets`; the value's element type is
    the pointer's.

    Example:

    ```mlir
    loom.store %v, %y[%offs] mask %m : tensor<128xi1>
        : tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>
    ```
  }];
  let arguments = (ins Loom_Tile:$value, Loom_PtrType:$ptr,
                       Loom_IndexTile:$offsets, Optional<Loom_MaskTile>:$mask);
  let assemblyFormat = [{
    $value `,` $ptr `[` $offsets `]` (`mask` $mask^ `:` type($mask))? attr-dict
    `:` type($value) `,` qualified(type($ptr)) `,` type($offsets)
  }];
  let hasVerifier = 1;
}

def Loom_BlockLoadOp : Loom_Op<"block_load", [AttrSizedOperandSegments,
    MemoryEffects<[MemRead]>,
    TypesMatchWith<"'other' is a scalar of the result's element type",
                   "result", "other",
                   "::llvm::cast<::mlir::ShapedType>($_self).getElementType()">]> {
  let summary = "load of a strided block of global memory, bounded per dimension";
  let description = [{
    A `loom.load` whose offsets and mask have a known structure, written
    with scalars instead of tiles: element `(i_0, ..., i_{r-1})` of the
    result is `ptr[base + sum_d i_d * strides[d]]` where `i_d < bounds[d]`
    for every dimension d, and `other` elsewhere (not read). There is one
    i64 stride and one i32 bound per dimension of the result.

    `loom-structure-memory` rewrites loads whose offsets are `base +
    sum_d i_d * stride_d` and whose masks bound each index by a scalar (the
    usual `rows < n` of a blocked kernel) into this op, so that the CUDA
    backend computes each thread's addresses and predicates from its element
    coordinates instead of keeping a tile of 64-bit offsets and a tile of
    predicates live in registers. It exists only on the CUDA path.

    `deferred`: the load is performed by its only user, a `loom.dot` that
    takes it as operand a or b, when that dot stages its operands in shared
    memory (global memory is copied there directly, and read again each
    time the dot runs: no register tile holds it in between). The pass sets
    it only where no op between the load and the dot may write memory.

    `column_major` (only with `deferred`, on a rank-2 load whose
    `strides[0]` is the constant 1): each column of the block is contiguous
    in memory, as in a transposed operand (K^T in attention, a view of K
    with strides `[1, %ld]`). The dot's staging then copies it column by
    column (16-byte chunks along the rows) and keeps it transposed in shared
    memory, where its fragments are read with the matching ldmatrix form;
    without it such a block is copied element by element. The pass sets it
    on deferred loads with a constant unit `strides[0]` and a `strides[1]`
    that is not the constant 1.

    Example (rows `r0 .. r0+15` of a row-major matrix with row stride `%ld`,
    columns `0 .. 255`, rows past `%n` read as zero):

    ```mlir
    %t = loom.block_load %p[%base] strides[%ld, %c1] bounds[%n, %c256] other %zero
        : !loom.ptr<bf16> -> tensor<16x256xbf16>
    %k = loom.block_load %p[%base] strides[%ld, %c1] bounds[%n, %c256] other %zero deferred
        : !loom.ptr<bf16> -> tensor<16x256xbf16>
    // rows 0 .. 63 and columns c0 .. c0+15 of K^T, K row-major with row stride %ld
    %kt = loom.block_load %p[%base] strides[%c1, %ld] bounds[%c64, %n] other %zero deferred
        column_major : !loom.ptr<bf16> -> tensor<64x16xbf16>
    ```
  }];
  let arguments = (ins Loom_PtrType:$ptr, I64:$base, Variadic<I64>:$strides,
                       Variadic<I32>:$bounds, Loom_ElementType:$other, UnitAttr:$deferred,
                       UnitAttr:$column_major);
  let results = (outs Loom_Tile:$result);
  let assemblyFormat = [{
    $ptr `[` $base `]` `strides` `[` $strides `]` `bounds` `[` $bounds `]` `other` $other
    (`deferred` $deferred^)? (`column_major` $column_major^)? attr-dict `:`
    qualified(type($ptr)) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Loom_BlockStoreOp : Loom_Op<"block_store", [AttrSizedOperandSegments,
    MemoryEffects<[MemWrite]>]> {
  let summary = "store to a strided block of global memory, bounded per dimension";
  let description = [{
    The store counterpart of `loom.block_load`: writes element
    `(i_0, ..., i_{r-1})` of `value` to `ptr[base + sum_d i_d * strides[d]]`
    where `i_d < bounds[d]` for every dimension d.

    Example:

    ```mlir
    loom.block_store %v, %p[%base] strides[%ld, %c1] bounds[%n, %c256]
        : tensor<16x256xbf16>, !loom.ptr<bf16>
    ```
  }];
  let arguments = (ins Loom_Tile:$value, Loom_PtrType:$ptr, I64:$base, Variadic<I64>:$strides,
                       Variadic<I32>:$bounds);
  let assemblyFormat = [{
    $value `,` $ptr `[` $base `]` `strides` `[` $strides `]` `bounds` `[` $bounds `]`
    attr-dict `:` type($value) `,` qualified(type($ptr))
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Shared-memory pipelines of dot operands (CUDA backend)
//===----------------------------------------------------------------------===//

def Loom_AsyncCopyOp : Loom_Op<"async_copy", [AttrSizedOperandSegments,
    MemoryEffects<[MemRead, MemWrite]>,
    TypesMatchWith<"'other' is a scalar of the pointer's element type",
                   "ptr", "other",
                   "::llvm::cast<::mlir::loom::PtrType>($_self).getElementType()">]> {
  let summary = "start copying a strided block of global memory into a shared-memory slot";
  let description = [{
    Issues, without waiting, the copies of the block that a
    `loom.block_load` with the same operands would read (element
    `(i, j)` is `ptr[base + i * strides[0] + j * strides[1]]` where
    `i < bounds[0]` and `j < bounds[1]`, zero elsewhere) into slot `slot`
    of a shared-memory buffer of `slots` slots of the `tile` type, `offset`
    bytes into the block's pipeline buffers. On sm_80+ each 16-byte chunk
    is one `cp.async`. The copies belong to the group that the next
    `loom.async_commit` closes, and are in shared memory once a
    `loom.async_wait` has retired that group; a `loom.shared_slot` then
    reads the slot as a dot operand.

    `loom-pipeline-dot-operands` creates these ops; they exist only on the
    CUDA path. The tile is 2-D, of f16 or bf16, stored as the dot's
    tensor-core path reads it: row-major, or, with `column_major` (the
    block load's, for a block whose columns are contiguous), transposed;
    stored rows are whole 16-byte chunks. `other` must be zero and the
    contiguous stride 1 for the cp.async path (the device falls back to
    plain copies otherwise).

    Example (slot `%s` of a 2-slot buffer at byte 0):

    ```mlir
    loom.async_copy %k[%base] strides[%ld, %c1] bounds[%n, %c64] other %zero, slot %s
        {offset = 0 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<32x64xbf16>
    ```
  }];
  let arguments = (ins Loom_PtrType:$ptr, I64:$base, Variadic<I64>:$strides,
                       Variadic<I32>:$bounds, Loom_ElementType:$other, I32:$slot,
                       TypeAttrOf<Loom_Tile>:$tile, I64Attr:$offset, I64Attr:$slots,
                       UnitAttr:$column_major);
  let assemblyFormat = [{
    $ptr `[` $base `]` `strides` `[` $strides `]` `bounds` `[` $bounds `]` `other` $other
    `,` `slot` $slot (`column_major` $column_major^)? attr-dict `:` qualified(type($ptr))
    `->` $tile
  }];
  let hasVerifier = 1;
}

def Loom_AsyncCommitOp : Loom_Op<"async_commit", [MemoryEffects<[MemWrite]>]> {
  let summary = "close the group of the asynchronous copies issued so far";
  let description = [{
    Every `loom.async_copy` the thread issued since the last commit joins
    one group (`cp.async.commit_group`); an empty group is allowed, so a
    pipeline can commit once per stage even where it skipped the copies.

    Example:

    ```mlir
    loom.async_commit
    ```
  }];
  let assemblyFormat = "attr-dict";
}

def Loom_AsyncWaitOp : Loom_Op<"async_wait", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "wait until at most `pending` groups of asynchronous copies are in flight";
  let description = [{
    `cp.async.wait_group pending`: every committed group but the `pending`
    most recent has landed in shared memory. The block sees them after its
    next barrier: the one every `loom.dot` starts with, after staging its
    other operand.

    Example (all but the 3 most recent groups have landed):

    ```mlir
    loom.async_wait 3
    ```
  }];
  let arguments = (ins I64Attr:$pending);
  let assemblyFormat = "$pending attr-dict";
  let hasVerifier = 1;
}

def Loom_SharedSlotOp : Loom_Op<"shared_slot", [MemoryEffects<[MemRead]>]> {
  let summary = "a slot of a shared-memory pipeline buffer, as a dot operand";
  let description = [{
    The tile that `loom.async_copy` ops put into slot `slot` of the buffer
    of `slots` slots at byte `offset` of the pipeline buffers, stored
    transposed if `column_major` (as the copies were). Like a
    deferred `loom.block_load` it is not read into registers: its only
    user is a `loom.dot` that takes it as operand a or b and reads the slot
    in place, so the copies of the slot must have been waited for (by a
    `loom.async_wait`) before that dot.

    Example:

    ```mlir
    %k = loom.shared_slot %s {offset = 0 : i64, slots = 2 : i64} : tensor<32x64xbf16>
    %qk = loom.dot %q, %k, %acc : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
    ```
  }];
  let arguments = (ins I32:$slot, I64Attr:$offset, I64Attr:$slots, UnitAttr:$column_major);
  let results = (outs Loom_Tile:$result);
  let assemblyFormat = "$slot (`column_major` $column_major^)? attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Compute
//===----------------------------------------------------------------------===//

def Loom_DotOp : Loom_Op<"dot", [Pure,
    AllTypesMatch<["acc", "result"]>, AllElementTypesMatch<["a", "b"]>]> {
  let summary = "tile matrix multiply-accumulate with fp32 accumulation";
  let description = [{
    Computes `result = a @ b + acc` for `a: MxK`, `b: KxN`, `acc: MxN`.
    Operands are f16, bf16 or f32 and of one type; the accumulator and result
    are f32, so products are summed in single precision whatever the operand
    type (the CUDA backend maps f16/bf16 to tensor-core MMAs).

    Example:

    ```mlir
    %c = loom.dot %a, %b, %acc : tensor<64x32xbf16>, tensor<32x16xbf16> -> tensor<64x16xf32>
    ```
  }];
  let arguments = (ins StaticShapeTensorOf<[F32, F16, BF16]>:$a,
                       StaticShapeTensorOf<[F32, F16, BF16]>:$b,
                       StaticShapeTensorOf<[F32]>:$acc);
  let results = (outs StaticShapeTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $a `,` $b `,` $acc attr-dict `:` type($a) `,` type($b) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Loom_ReduceKind : I32EnumAttr<"ReduceKind", "reduction combiner", [
    I32EnumAttrCase<"Sum", 0, "sum">,
    I32EnumAttrCase<"Max", 1, "max">,
    I32EnumAttrCase<"Min", 2, "min">]> {
  let cppNamespace = "::mlir::loom";
}

def Loom_ReduceOp : Loom_Op<"reduce", [Pure,
    AllElementTypesMatch<["src", "result"]>]> {
  let summary = "reduce a tile along one axis";
  let description = [{
    Combines the elements of `src` along `axis` with `sum`, `max` or `min`
    and removes that axis (reducing a 1-D tile gives a 0-D tile). Floating
    point `max`/`min` propagate NaN. i1 masks are not reducible (cast first).
    The order in which a float `sum` adds is unspecified (as in Triton's
    `tl.sum`): the GPU combines lanes with butterfly shuffles and the CPU
    backend adds in vector lanes, so sums may differ in the last bits
    between backends; each backend is deterministic.

    Example:

    ```mlir
    %m = loom.reduce max %s, 1 : tensor<64x128xf32> -> tensor<64xf32>
    ```
  }];
  let arguments = (ins Loom_ReduceKind:$kind, Loom_NumericTile:$src, I32Attr:$axis);
  let results = (outs Loom_NumericTile:$result);
  let assemblyFormat = [{
    $kind $src `,` $axis attr-dict `:` type($src) `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // LOOM_OPS_TD
