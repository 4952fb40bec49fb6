//===- VectorizeDot.cpp - register-blocked CPU micro-kernel for loom.dot --===//
//
// See LoomVectorizeDot in Passes.td. The generic's shape is static (tiles
// are), so the whole block decomposition is decided here: full blocks in
// scf.for loops, remainders unrolled at constant offsets.
//
//===----------------------------------------------------------------------===//
#include "MulAdd.h"

#include "loom/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMVECTORIZEDOT
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;

namespace {
/// A statically shaped rank-2 memref whose rows are contiguous.
bool hasContiguousRows(Value v) {
  auto type = dyn_cast<MemRefType>(v.getType());
  if (!type || type.getRank() != 2 || !type.hasStaticShape())
    return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(type.getStridesAndOffset(strides, offset)) && strides[1] == 1;
}

/// Whether `op` is DotToGeneric's contraction on buffers:
/// maps (i, k), (k, j) -> (i, j), iterators (parallel, reduction, parallel),
/// body acc + ext?(a) * ext?(b) in f32.
bool isBufferizedDot(linalg::GenericOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1)
    return false;
  MLIRContext *ctx = op.getContext();
  AffineExpr i, k, j;
  bindDims(ctx, i, k, j);
  auto map = [&](ArrayRef<AffineExpr> r) { return AffineMap::get(3, 0, r, ctx); };
  SmallVector<AffineMap> expected = {map({i, k}), map({k, j}), map({i, j})};
  if (op.getIndexingMapsArray() != ArrayRef<AffineMap>(expected))
    return false;
  auto iterators = op.getIteratorTypesArray();
  if (iterators[0] != utils::IteratorType::parallel ||
      iterators[1] != utils::IteratorType::reduction ||
      iterators[2] != utils::IteratorType::parallel)
    return false;
  Value a = op.getDpsInputs()[0], b = op.getDpsInputs()[1], c = op.getDpsInits()[0];
  auto aType = dyn_cast<MemRefType>(a.getType());
  if (!aType || !aType.hasStaticShape() || !hasContiguousRows(b) || !hasContiguousRows(c))
    return false;
  if (!cast<MemRefType>(c.getType()).getElementType().isF32())
    return false;
  // The body: ext?(a) * ext?(b) + acc, nothing else.
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getValues()[0].getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value product = add.getLhs() == body.getArgument(2) ? add.getRhs() : add.getLhs();
  if (add.getLhs() != body.getArgument(2) && add.getRhs() != body.getArgument(2))
    return false;
  auto mul = product.getDefiningOp<arith::MulFOp>();
  if (!mul)
    return false;
  auto strip = [](Value v) {
    if (auto ext = v.getDefiningOp<arith::ExtFOp>())
      return ext.getIn();
    return v;
  };
  return strip(mul.getLhs()) == body.getArgument(0) && strip(mul.getRhs()) == body.getArgument(1);
}

class DotEmitter {
public:
  DotEmitter(ImplicitLocOpBuilder &b, Value a, Value bMat, Value c)
      : b(b), a(a), bMat(bMat), c(c), f32(b.getF32Type()) {}

  /// C[i0 + r, j0 : j0 + width] += sum_k A[i0 + r, k] * B[k, j0 : ...] for
  /// r < rows, with rows accumulators of `width` lanes live across k.
  void emitBlock(Value i0, int64_t rows, Value j0, int64_t width, int64_t K) {
    VectorType accType = VectorType::get({width}, f32);
    SmallVector<Value> rowIndex, acc;
    for (int64_t r = 0; r < rows; ++r) {
      rowIndex.push_back(r == 0 ? i0 : arith::AddIOp::create(b, i0, constant(r)).getResult());
      acc.push_back(vector::LoadOp::create(b, accType, c, ValueRange{rowIndex[r], j0}));
    }
    auto loop = this->loop(0, K, 1, acc);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      Value k = loop.getInductionVar();
      auto bType = cast<MemRefType>(bMat.getType()).getElementType();
      Value bRow = vector::LoadOp::create(b, VectorType::get({width}, bType), bMat, ValueRange{k, j0});
      bRow = widen(bRow, accType);
      SmallVector<Value> next;
      for (int64_t r = 0; r < rows; ++r) {
        Value aElem = widen(memref::LoadOp::create(b, a, ValueRange{rowIndex[r], k}), f32);
        Value aSplat = vector::BroadcastOp::create(b, accType, aElem);
        next.push_back(mlir::loom::createMulAdd(b, b.getLoc(), aSplat, bRow, loop.getRegionIterArgs()[r]));
      }
      scf::YieldOp::create(b, next);
    }
    for (int64_t r = 0; r < rows; ++r)
      vector::StoreOp::create(b, loop.getResult(r), c, ValueRange{rowIndex[r], j0});
  }

  /// Rows [i0, i0 + rows) against every column of C.
  void emitRows(Value i0, int64_t rows, int64_t N, int64_t K, int64_t lanes) {
    forEachBlock(N, lanes, [&](Value j0, int64_t width) { emitBlock(i0, rows, j0, width, K); });
  }

  void emit(int64_t M, int64_t N, int64_t K, int64_t rows, int64_t lanes) {
    forEachBlock(M, rows, [&](Value i0, int64_t r) { emitRows(i0, r, N, K, lanes); });
  }

private:
  Value constant(int64_t v) { return arith::ConstantIndexOp::create(b, v); }

  /// Covers [0, extent) with blocks: full blocks of `size` in a loop, then
  /// what remains in halving power-of-two blocks at constant offsets (13
  /// columns on 16 lanes: 8 + 4 + 1; 64 rows on 6-row blocks leave one
  /// 4-row block, which keeps the FMA units busier than four single rows).
  void forEachBlock(int64_t extent, int64_t size,
                    llvm::function_ref<void(Value start, int64_t size)> body) {
    int64_t full = extent / size * size;
    if (full > 0) {
      auto loop = this->loop(0, full, size);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      body(loop.getInductionVar(), size);
    }
    int64_t at = full;
    for (int64_t part = llvm::PowerOf2Ceil(size) / 2; part >= 1; part /= 2)
      if (extent - at >= part) {
        body(constant(at), part);
        at += part;
      }
  }

  /// An scf.for that LLVM must not unroll: the trip counts are constants,
  /// and fully unrolling k (times rows x lanes FMAs) made basic blocks of
  /// thousands of instructions that took LLVM's scheduler seconds (matmul
  /// JIT 92 ms -> 2.9 s) for no speed-up; the body is already unrolled over
  /// rows. `loop_annotation` reaches the latch branch through scf-to-cf and
  /// cf-to-llvm and becomes !llvm.loop metadata.
  scf::ForOp loop(int64_t lb, int64_t ub, int64_t step, ValueRange iterArgs = {}) {
    auto forOp = scf::ForOp::create(b, constant(lb), constant(ub), constant(step), iterArgs);
    MLIRContext *ctx = b.getContext();
    auto noUnroll = LLVM::LoopUnrollAttr::get(ctx, /*disable=*/b.getBoolAttr(true), {}, {}, {},
                                              {}, {}, {});
    auto annotation = LLVM::LoopAnnotationAttr::get(ctx, {}, {}, {}, noUnroll, {}, {}, {}, {},
                                                    {}, {}, {}, {}, {}, {}, {});
    forOp->setAttr("loop_annotation", annotation);
    return forOp;
  }
  Value widen(Value v, Type to) {
    return getElementTypeOrSelf(v.getType()) == f32 ? v : arith::ExtFOp::create(b, to, v).getResult();
  }

  ImplicitLocOpBuilder &b;
  Value a, bMat, c;
  Type f32;
};

struct LoomVectorizeDot : mlir::loom::impl::LoomVectorizeDotBase<LoomVectorizeDot> {
  using LoomVectorizeDotBase::LoomVectorizeDotBase;
  void runOnOperation() override {
    if (rows < 1 || lanes < 1 || !llvm::isPowerOf2_64(lanes)) {
      getOperation().emitError() << "loom-vectorize-dot: rows (" << static_cast<int64_t>(rows)
                                 << ") must be >= 1 and lanes (" << static_cast<int64_t>(lanes)
                                 << ") a power of two";
      return signalPassFailure();
    }
    SmallVector<linalg::GenericOp> dots;
    getOperation().walk([&](linalg::GenericOp op) {
      if (isBufferizedDot(op))
        dots.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::GenericOp op : dots) {
      rewriter.setInsertionPoint(op);
      ImplicitLocOpBuilder b(op.getLoc(), rewriter);
      Value a = op.getDpsInputs()[0], bMat = op.getDpsInputs()[1], c = op.getDpsInits()[0];
      ArrayRef<int64_t> aShape = cast<MemRefType>(a.getType()).getShape();
      int64_t N = cast<MemRefType>(c.getType()).getShape()[1];
      DotEmitter(b, a, bMat, c).emit(aShape[0], N, aShape[1], rows, lanes);
      rewriter.eraseOp(op);
    }
  }
};
} // namespace
