//===- LoomAttrs.td - loom register layout encodings -------*- tablegen -*-===//
//
// Layouts of tiles in the CUDA backend, attached to tile types as the tensor
// encoding (as Triton's TritonGPU encodings are). A tile without an encoding
// is blocked: element i of a tile lives in thread i % threads, slot
// i / threads (device/include/loom/device/tile/layout.h, `Blocked`), which
// is how every tile is laid out unless `loom-assign-layouts` says otherwise.
// Only the CUDA lowering reads the encodings; the CPU pipeline never sees
// them.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_ATTRS_TD
#define LOOM_ATTRS_TD

include "loom/Dialect/Loom/IR/LoomDialect.td"
include "mlir/IR/TensorEncoding.td"

class Loom_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Loom_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Loom_MmaEncodingAttr : Loom_Attr<"MmaEncoding", "mma",
    [DeclareAttrInterfaceMethods<VerifiableTensorEncoding>]> {
  let summary = "2-D tile held as mma.m16n8k16 accumulator (C/D) fragments";
  let description = [{
    The tile is cut into 16x8 atoms; the block's warps form a `warpsM` x
    `warpsN` grid (their product is the warp count) and warp (wm, wn) holds
    the contiguous block of M/16/warpsM x N/8/warpsN atoms at (wm, wn). In
    each atom, lane l (g = l / 4, t = l % 4) holds elements (g, 2t),
    (g, 2t+1), (g+8, 2t) and (g+8, 2t+1), the C/D fragment of
    `mma.sync.m16n8k16` (PTX ISA, "Matrix Fragments for mma.m16n8k16").
    A `loom.dot` with this result accumulates directly into the fragments,
    and a row reduction needs only shuffles within each quad of lanes (plus
    shared memory across the `warpsN` warps of a row when warpsN > 1). The
    shape must be a multiple of [16 * warpsM, 8 * warpsN]. The device
    library type is `loom::tile::Mma<warpsM, warpsN>`.

    Example:

    ```mlir
    %acc = loom.dot %a, %b, %c : tensor<64x32xbf16>, tensor<32x64xbf16>
        -> tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>>
    ```
  }];
  let parameters = (ins "unsigned":$warpsM, "unsigned":$warpsN);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Loom_MmaRowsEncodingAttr : Loom_Attr<"MmaRowsEncoding", "mma_rows",
    [DeclareAttrInterfaceMethods<VerifiableTensorEncoding>]> {
  let summary = "per-row values laid out like the rows of #loom.mma";
  let description = [{
    A vector of M values, as an `[M]` or `[M, 1]` tile, distributed like the
    rows of a `#loom.mma` tile with the same warp grid (Triton's slice of the
    mma layout along dimension 1): each thread holds the values of the rows
    its C fragments touch, so the 4 lanes of a quad and the `warpsN` warps of
    a row hold copies. A row reduction (`loom.reduce ..., 1`) of an mma tile
    gives it, and broadcasting it back to the mma tile is thread-local: the
    running max and sum of an online softmax live here. M must be a multiple
    of 16 * warpsM. The device library type is
    `loom::tile::MmaRows<warpsM, warpsN>`.

    Example:

    ```mlir
    %m = loom.reduce max %s, 1 : tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>>
        -> tensor<64xf32, #loom.mma_rows<warpsM = 4, warpsN = 1>>
    ```
  }];
  let parameters = (ins "unsigned":$warpsM, "unsigned":$warpsN);
  let assemblyFormat = "`<` struct(params) `>`";
}

def Loom_MmaColsEncodingAttr : Loom_Attr<"MmaColsEncoding", "mma_cols",
    [DeclareAttrInterfaceMethods<VerifiableTensorEncoding>]> {
  let summary = "per-column values laid out like the columns of #loom.mma";
  let description = [{
    A vector of N values, as an `[N]` or `[1, N]` tile, distributed like the
    columns of a `#loom.mma` tile with the same warp grid (Triton's slice of
    the mma layout along dimension 0): each thread holds the values of the
    columns its C fragments touch, two per atom column (2t and 2t + 1), so
    the 8 lanes that share t and the `warpsM` warps of a column hold copies.
    Broadcasting it to the mma tile is thread-local, and a column index
    (`arange`) or a column mask computed in it costs a few integer ops per
    thread instead of a trip through shared memory: the key-position masks
    of attention live here. N must be a multiple of 8 * warpsN. The device
    library type is `loom::tile::MmaCols<warpsM, warpsN>`.

    Example:

    ```mlir
    %cols = loom.arange 0, 64 : tensor<64xi32, #loom.mma_cols<warpsM = 4, warpsN = 1>>
    ```
  }];
  let parameters = (ins "unsigned":$warpsM, "unsigned":$warpsN);
  let assemblyFormat = "`<` struct(params) `>`";
}

#endif // LOOM_ATTRS_TD
