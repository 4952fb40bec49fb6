//===- ComputeToLinalg.cpp - dot and reductions ---------------------------===//
#include "loom/Conversion/Passes.h"

#include <limits>

using namespace mlir;
using namespace mlir::loom;

namespace {
/// `tile` as f32: itself, or a tensor `arith.extf` (what the DSL's `.to(f32)`
/// builds; convert-elementwise-to-linalg makes it a generic) placed right
/// after the tile is defined, so a tile made before a loop is widened once,
/// not per iteration, and shared by every dot that reads the tile.
Value widenToF32(OpBuilder &b, Location loc, Value tile) {
  auto type = cast<RankedTensorType>(tile.getType());
  if (type.getElementType().isF32())
    return tile;
  auto f32Type = type.clone(b.getF32Type());
  for (Operation *user : tile.getUsers())
    if (auto ext = dyn_cast<arith::ExtFOp>(user); ext && ext.getType() == f32Type)
      return ext;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointAfterValue(tile);
  return arith::ExtFOp::create(b, loc, f32Type, tile);
}

/// C[i, j] += A[i, k] * B[k, j] as a linalg.generic iterating (i, k, j):
/// loops lower in that order, so the innermost loop walks rows of B and C
/// contiguously and LLVM vectorizes it (linalg.matmul's (i, j, k) order puts
/// a strided walk of B innermost). f16/bf16 operands are widened to f32
/// tiles first (see widenToF32), so products and sums are single precision.
struct DotToGeneric : OpConversionPattern<DotOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(DotOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    MLIRContext *ctx = getContext();
    AffineExpr i, k, j;
    bindDims(ctx, i, k, j);
    auto map = [&](ArrayRef<AffineExpr> results) { return AffineMap::get(3, 0, results, ctx); };
    SmallVector<AffineMap> maps = {map({i, k}), map({k, j}), map({i, j})};
    SmallVector<utils::IteratorType> iterators = {utils::IteratorType::parallel,
                                                  utils::IteratorType::reduction,
                                                  utils::IteratorType::parallel};
    // f16/bf16 operands are widened to f32 once per tile, by an op of their
    // own (fused into the op that produces the tile, e.g. its load),
    // not per multiply: the micro-kernel reuses each A element N / lanes
    // times and each B row M / rows times, and a conversion per use costs
    // more than the FMA it feeds (a shift and a broadcast per A element
    // without AVX512-BF16, a zero-extend and a shift per B vector).
    Value a = widenToF32(rewriter, op.getLoc(), adaptor.getA());
    Value b = widenToF32(rewriter, op.getLoc(), adaptor.getB());
    auto generic = linalg::GenericOp::create(
        rewriter, op.getLoc(), TypeRange{op.getType()}, ValueRange{a, b},
        ValueRange{adaptor.getAcc()}, maps, iterators,
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value product = arith::MulFOp::create(b, l, args[0], args[1]);
          linalg::YieldOp::create(b, l, ValueRange{arith::AddFOp::create(b, l, args[2], product)});
        });
    rewriter.replaceOp(op, generic.getResults());
    return success();
  }
};

TypedAttr neutralElement(OpBuilder &b, ReduceKind kind, Type type) {
  if (auto ft = dyn_cast<FloatType>(type)) {
    const llvm::fltSemantics &sem = ft.getFloatSemantics();
    switch (kind) {
    case ReduceKind::Sum: return b.getFloatAttr(type, 0.0);
    case ReduceKind::Max:
      return FloatAttr::get(type, APFloat::getInf(sem, /*Negative=*/true));
    case ReduceKind::Min:
      return FloatAttr::get(type, APFloat::getInf(sem, /*Negative=*/false));
    }
  }
  unsigned width = type.getIntOrFloatBitWidth();
  switch (kind) {
  case ReduceKind::Sum: return b.getIntegerAttr(type, 0);
  case ReduceKind::Max:
    return b.getIntegerAttr(type, APInt::getSignedMinValue(width));
  case ReduceKind::Min:
    return b.getIntegerAttr(type, APInt::getSignedMaxValue(width));
  }
  llvm_unreachable("unknown reduce kind");
}

Value combine(OpBuilder &b, Location loc, ReduceKind kind, Value x, Value y) {
  bool isFloat = isa<FloatType>(x.getType());
  switch (kind) {
  case ReduceKind::Sum: // reassoc: loom.reduce leaves the order of a sum unspecified
    return isFloat ? arith::AddFOp::create(b, loc, x, y, arith::FastMathFlags::reassoc).getResult()
                   : arith::AddIOp::create(b, loc, x, y).getResult();
  case ReduceKind::Max: // maximumf propagates NaN: a NaN must never vanish.
    return isFloat ? arith::MaximumFOp::create(b, loc, x, y).getResult()
                   : arith::MaxSIOp::create(b, loc, x, y).getResult();
  case ReduceKind::Min:
    return isFloat ? arith::MinimumFOp::create(b, loc, x, y).getResult()
                   : arith::MinSIOp::create(b, loc, x, y).getResult();
  }
  llvm_unreachable("unknown reduce kind");
}

struct ReduceToLinalg : OpConversionPattern<ReduceOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ReduceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    Type elem = type.getElementType();
    ReduceKind kind = op.getKind();
    Value init = tensor::EmptyOp::create(rewriter, loc, type.getShape(), elem);
    Value neutral = arith::ConstantOp::create(rewriter, loc,
                                              neutralElement(rewriter, kind, elem));
    Value filled = linalg::FillOp::create(rewriter, loc, neutral, init).getResult(0);
    auto reduce = linalg::ReduceOp::create(
        rewriter, loc, ValueRange{adaptor.getSrc()}, ValueRange{filled},
        SmallVector<int64_t>{static_cast<int64_t>(op.getAxis())},
        [&](OpBuilder &b, Location l, ValueRange args) {
          linalg::YieldOp::create(b, l, combine(b, l, kind, args[0], args[1]));
        });
    rewriter.replaceOp(op, reduce.getResults());
    return success();
  }
};
} // namespace

void mlir::loom::populateLoomComputeToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<DotToGeneric, ReduceToLinalg>(patterns.getContext());
}
