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

def LoomFoldDotAccumulator
    : Pass<"loom-fold-dot-accumulator", "::mlir::func::FuncOp"> {
  let summary = "fold `x + dot(a, b, 0)` into `dot(a, b, x)`";
  let description = [{
    A kernel written as `acc * alpha + dot(p, v)` (the online softmax of
    flash attention, the accumulations of its backward, any running sum of
    products) builds a dot into a fresh zero accumulator and adds it to the
    running one afterwards. Two accumulators are then live across the dot:
    on the GPU, at 128 x 128 f32 per CTA, that is 128 extra registers per
    thread and a full pass of adds; on the CPU an extra tile and loop.

    This pass rewrites `arith.addf %x, %d` (either operand order) where `%d`
    is a `loom.dot` with no other use whose accumulator is a `loom.splat` of
    a floating-point zero into `loom.dot %a, %b, %x`, so the products
    accumulate into `%x` in place. In real arithmetic the two are equal; in
    f32 the sum is rounded in another order (as in Triton's
    `tl.dot(a, b, acc)`), which the tolerance rules cover. Dots with other
    uses or a non-zero accumulator are left alone.

    Example:
    ```mlir
    %z = loom.splat %zero : tensor<64x64xf32>
    %d = loom.dot %p, %v, %z : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
    %r = arith.addf %scaled, %d : tensor<64x64xf32>
    // becomes
    %r = loom.dot %p, %v, %scaled : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
    ```
  }];
}

def LoomFuseElementwise : Pass<"loom-fuse-elementwise", "::mlir::func::FuncOp"> {
  let summary = "fuse elementwise linalg producers into consumers that do "
                "not recompute them";
  let description = [{
    Upstream `linalg-fuse-elementwise-ops` fuses a single-use elementwise
    producer into any consumer, including one that reads it through a
    broadcasting map. For a contraction that is a recomputation: a masked
    load of A[i, k] fused into C[i, j] += A[i, k] * B[k, j] reruns the
    address arithmetic, the mask and the load for every j, which on the CPU
    made the attention kernels' dots 64x more expensive than their FLOPs.

    This pass applies the same fusion and reshape-propagation patterns, but
    only where the consumer reads the producer's result through a
    permutation of its loops, so every producer element is still computed
    exactly once. Broadcast operands (a 1-D row mask used by a 2-D tile, a
    tile used by a dot) are materialized instead.

    First it drops the unit dims of generics without reductions (upstream's
    fold-unit-extent-dims patterns), so that index arithmetic behind an
    `expand_dims` meets its load with no reshape between them and fuses: a
    transposed tile load then indexes with the loops themselves (the
    vectorizer's transposed plan), not with offsets read from a
    materialized tile (a gather). Contractions keep their unit dims, so a
    dot with M, N or K of 1 is still the (i, k, j) generic
    loom-vectorize-dot matches.

    Example:
    ```mlir
    // before: %a = linalg.generic {maps [(i, k)], parallel x2} (masked load)
    //         %c = linalg.generic {maps [(i,k,j)->(i,k), (k,j), (i,j)]} ins(%a, %b)
    // after:  unchanged (the dot reads %a with a broadcast over j); an
    //         elementwise consumer reading %a with (i, k) -> (i, k) absorbs it.
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def LoomApproximateMath : Pass<"loom-approximate-math", "::mlir::func::FuncOp"> {
  let summary = "replace f32 exp2 and tanh by inline polynomial approximations";
  let description = [{
    On the CPU, `math.exp2` otherwise lowers to a call of libm's scalar
    `exp2f`, which the loop vectorizer cannot widen: in a flash attention
    forward the softmax's exponentials then cost as much as both matrix
    products. This pass rewrites f32 `exp2(x)` as 2^round(x) (built in the
    exponent bits) times a degree-7 polynomial of the remainder (under one
    ulp of truncation error), with -inf and x < -126 giving 0, x >= 128
    giving +inf and NaN staying NaN, and f32 `tanh` by MLIR's polynomial
    approximation. Both are arith ops only, so they vectorize like any other
    arithmetic. The GPU lowering keeps `ex2.approx` and is unaffected. Every
    `math.fma` (the polynomials are written with multiply-adds) becomes an
    `arith.mulf` and an `arith.addf` marked `contract`: LLVM fuses them where
    the CPU target has FMA and keeps them apart where it has not
    (x86-64-v2), instead of calling libm's software `fmaf` per lane.

    Example:
    ```mlir
    %y = math.exp2 %x : f32
    // becomes math.roundeven, 7 contractible arith.mulf/arith.addf pairs,
    // arith.bitcast and selects; no math.exp2 or math.fma remains and no
    // call to exp2f or fmaf is emitted.
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def LoomSelectHalfFloatsAsBits : Pass<"loom-select-half-floats-as-bits",
                                      "::mlir::func::FuncOp"> {
  let summary = "carry 16-bit floats through selects and branches as integers";
  let description = [{
    Selecting or forwarding a value never computes with it, but LLVM's x86
    backend legalizes a `select` or a `phi` of bf16 values (vectors too) on
    targets without AVX512-BF16 (x86-64-v2/v3) by widening every lane to f32
    and narrowing it back with a call of `__truncsfbf2`, per lane: a masked
    tile load (a branch around a vector load, then a select) cost 16 library
    calls per 8 lanes, in the main loop of every bf16 kernel. This pass
    rewrites every `arith.select` and every block argument whose type is a
    16-bit float (bf16, f16) or a vector of one into the same operation on
    the equally wide integers, with `arith.bitcast` on either side, which
    LLVM folds into the loads, stores and conversions around them. It is
    bit-exact and runs after `convert-scf-to-cf` and `arith-expand`, so it
    sees the branches of lowered `scf.if`s and the NaN select of expanded
    bf16 truncations.

    Example:
    ```mlir
    %r = arith.select %c, %a, %b : vector<8xbf16>
    // becomes
    %ai = arith.bitcast %a : vector<8xbf16> to vector<8xi16>
    %bi = arith.bitcast %b : vector<8xbf16> to vector<8xi16>
    %ri = arith.select %c, %ai, %bi : vector<8xi16>
    %r = arith.bitcast %ri : vector<8xi16> to vector<8xbf16>
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def LoomVectorizeDot : Pass<"loom-vectorize-dot", "::mlir::func::FuncOp"> {
  let summary = "register-blocked vector code for bufferized loom.dot contractions";
  let description = [{
    `loom.dot` reaches the CPU pipeline as a `linalg.generic` computing
    C[i, j] += A[i, k] * B[k, j] on statically shaped memrefs. Lowered to
    plain loops, every multiply-add loads and stores C, so even with the
    loop vectorizer the dot runs at a fraction of the FMA units' rate. This
    pass replaces each such generic by a register-blocked micro-kernel, as a
    BLAS does: for each block of `rows` rows of C and `lanes` columns, the
    rows x lanes accumulators are loaded into vectors once, the loop over k
    broadcasts one A element per row and fuses it into each accumulator with
    a vector multiply-add against one row of B (an `arith.mulf` and
    `arith.addf` marked `contract`: one FMA where the CPU target has it, no
    software `fmaf` call where it has not), and the accumulators are stored
    once.
    Column remainders use halved vector widths down to 1, row remainders
    halved row blocks (6 rows over 64 leave one 4-row block). f16/bf16 operands are extended to f32 in registers (convert-loom-to-linalg widens a loom.dot's f16/bf16 tiles once beforehand, so Loom's own dots arrive in f32).

    Generics whose B or C rows are not contiguous (innermost stride != 1),
    or whose body is not the dot's multiply-add, are left alone.

    Example: `loom-opt --loom-vectorize-dot="rows=4 lanes=16"` turns a
    64x64x64 f32 dot into an scf.for nest over (i step 4, j step 16) holding
    four vector<16xf32> accumulators across an inner loop over k. The
    loops carry `loop_annotation = #llvm.loop_annotation<unroll = <disable =
    true>>`: LLVM would otherwise fully unroll the constant-trip k loop into
    blocks so large that its instruction scheduler takes seconds.
  }];
  let options = [
    Option<"rows", "rows", "int64_t", /*default=*/"4",
           "rows of C held in registers at once">,
    Option<"lanes", "lanes", "int64_t", /*default=*/"16",
           "f32 lanes per accumulator vector (a power of two)">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

def LoomVectorizeElementwise
    : Pass<"loom-vectorize-elementwise", "::mlir::func::FuncOp"> {
  let summary = "vector loops for bufferized elementwise and row-reduction generics";
  let description = [{
    After fusion and bufferization, a kernel's elementwise work (masks,
    scaling, exp2, rescaling, casts, broadcasts, masked loads) and its row
    reductions are `linalg.generic`s over statically shaped tiles. Lowered
    to scalar loops they cost as much as the dots. This pass rewrites each
    such generic into loops over the outer dims and a vector loop over the
    innermost one, `width` lanes at a time: the widest power of two up to
    `lanes` that divides that loop (none left over; below 4 lanes the
    generic is left alone).

    An operand is either read along the vectorized loop contiguously (that
    loop indexes its innermost, unit-stride dimension: `vector.load` /
    `vector.store`) or does not depend on it (a scalar load, broadcast where
    it meets a vector). Body ops are cloned with vector types; `linalg.index`
    of the vectorized dim becomes `iv + [0, 1, ...]`; a `memref.load` from an
    outer 1-D buffer at a varying index becomes a `vector.gather` with an
    all-true mask (masked loads already redirect masked-off lanes to index
    0). A row reduction (innermost loop a reduction) keeps a vector
    accumulator seeded by the first chunk, folds later chunks with the
    combiner lane-wise, and ends in one `vector.reduction`; float add and
    multiply are split this way only when the combiner allows `reassoc`.

    Left alone: transposed or strided access along the innermost loop, ops
    outside arith/math (and linalg.index, memref.load), other reductions.

    Example: `loom-opt --loom-vectorize-elementwise="lanes=16"` turns a
    64x64 f32 `subf` + `exp2` generic into an scf.for over rows around an
    scf.for over columns step 16 of `vector.load`, `arith.subf`,
    `math.exp2` and `vector.store` on `vector<16xf32>`.
  }];
  let options = [
    Option<"lanes", "lanes", "int64_t", /*default=*/"16",
           "most lanes per vector (a power of two)">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
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
       after their definition. A row index or mask (`[M, 1]`, from an
       `arange`) broadcast into an mma tile is recomputed in
       `#loom.mma_rows`, a column index or mask (`[1, N]`) in
       `#loom.mma_cols`, so masking an mma tile by positions needs no
       shared memory and no barrier. Loads, stores and everything else keep the
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

def LoomStructureMemory : Pass<"loom-structure-memory", "::mlir::func::FuncOp"> {
  let summary = "rewrite loads and stores of strided, row/column-bounded blocks "
                "into loom.block_load / loom.block_store";
  let description = [{
    A DSL load takes a tile of offsets and a tile of predicates. On the GPU
    each thread holds its elements of both (two registers per 64-bit offset,
    one predicate per element), and where they are loop-invariant they stay
    live across the loop: in the attention kernels they outweighed the data.

    This pass proves, with a small affine analysis over the tile graph
    (splats, arange, expand_dims, broadcast, convert_layout, integer add,
    sub, mul by a scalar tile, sign extension), that an offset tile is
    `base + sum_d i_d * stride_d` with scalar base and strides, and that the
    mask is a conjunction of `i_d + c < n` (any `slt` of such a unit-stride
    index tile against a scalar tile, through broadcasts and `andi`), and
    then replaces the access by `loom.block_load` / `loom.block_store`, whose
    scalars are built just before it. `other` must be a splat. Anything it
    does not recognize keeps the generic form; the offset and mask tiles
    that no longer have users are erased. Index arithmetic is taken not to
    wrap (as the addresses it computes would be out of bounds if it did).

    A block load whose only user is a `loom.dot` operand, with no op that
    may write memory between them (for a load outside a loop: none in the
    whole loop), is marked `deferred`: the CUDA backend copies it from
    global memory straight into the dot's shared-memory staging, each time
    the dot runs, so no register tile holds it.

    Example:
    ```mlir
    // %offs = splat(%b) + expand_dims(arange(0,16) + splat(%r0), 1) * splat(%ld)
    //         + expand_dims(extsi(arange(0,64)), 0)           : tensor<16x64xi64>
    // %m = broadcast(expand_dims(arange(0,16) + splat(%r0) < splat(%n), 1))
    %t = loom.load %p[%offs] mask %m : tensor<16x64xi1> other %z : tensor<16x64xf32>
        : !loom.ptr<f32>, tensor<16x64xi64> -> tensor<16x64xf32>
    // becomes
    %t = loom.block_load %p[%base] strides[%ld, %c1] bounds[%nr, %c64] other %zero
        : !loom.ptr<f32> -> tensor<16x64xf32>
    // with %base = %b + ext(%r0) * %ld and %nr = %n - %r0.
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def LoomPipelineDotOperands
    : Pass<"loom-pipeline-dot-operands", "::mlir::func::FuncOp"> {
  let summary = "copy a loop's dot operands into shared memory stages ahead "
                "(multi-stage cp.async pipelining)";
  let description = [{
    A deferred `loom.block_load` (see `loom-structure-memory`) is read from
    global memory by its dot's staging, each time the dot runs, and the dot
    waits for the copy: the tensor cores idle while a tile crosses from L2.
    This pass hides that latency for the tensor-core dots (f16/bf16, shapes
    multiple of m16n8k16) of an `scf.for` whose body writes no memory:

    - A deferred load in the body whose operands depend only on the
      induction variable and on values from outside the loop (a slice of
      ops free of memory effects) is *pipelined*: it gets a buffer of
      `num-stages` slots in shared memory. Before the loop, the copies of the first
      `num-stages - 1` iterations are issued (`loom.async_copy`), one group
      (`loom.async_commit`) per load and iteration; at the top of iteration
      i, those of iteration i + num-stages - 1 (the slice is cloned with the
      induction variable advanced; copies past the end are skipped, their
      empty groups still committed). Where the load was, a `loom.async_wait`
      leaves pending only the groups committed after its own, and a
      `loom.shared_slot` gives the dot slot `i % num-stages` to read in
      place.
    - A deferred load outside the loop read by a dot in it (flash
      attention's Q) is *hoisted*: copied once, before the loop, into a
      one-slot buffer, instead of from L2 in every iteration.

    Slots are reused safely because every dot ends with a barrier. Buffers
    of all loops are laid out one after another; their total is the
    function attribute `loom.pipeline_bytes`, and the EmitC lowering puts
    the ops' scratch after them. A loop whose buffers do not fit in
    `max-shared-bytes` (with fewer stages first, down to one) is left as is.
    `num-stages` = 1 copies each iteration's tiles in that iteration
    (straight into the dot's layout, no prefetch).

    Example (num-stages = 2, one pipelined K tile):
    ```mlir
    scf.for %i = %lb to %ub step %c1 iter_args(...) {
      %k = loom.block_load %kp[%b(%i)] ... deferred : ... -> tensor<32x64xbf16>
      %s = loom.dot %q, %k, %acc : ...
    }
    // becomes
    scf.if (%lb < %ub) { loom.async_copy %kp[%b(%lb)] ..., slot %c0 {offset = 0, slots = 2} }
    loom.async_commit
    scf.for %i = %lb to %ub step %c1 iter_args(...) {
      // slot = (i - lb) % 2, next = (i - lb + 1) % 2
      scf.if (%i + 1 < %ub) { loom.async_copy %kp[%b(%i + 1)] ..., slot %next {...} }
      loom.async_commit
      loom.async_wait 1
      %k = loom.shared_slot %slot {offset = 0, slots = 2} : tensor<32x64xbf16>
      %s = loom.dot %q, %k, %acc : ...
    }
    ```
  }];
  let options = [
    Option<"numStages", "num-stages", "unsigned", /*default=*/"2",
           "shared-memory slots per pipelined operand (copies run num-stages - 1 "
           "iterations ahead)">,
    Option<"maxSharedBytes", "max-shared-bytes", "int64_t", /*default=*/"65536",
           "shared memory all pipeline buffers of a function may take">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::scf::SCFDialect"];
}

#endif
