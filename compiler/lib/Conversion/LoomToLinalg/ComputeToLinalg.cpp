//===- ComputeToLinalg.cpp - dot and reductions ---------------------------===//
#include "loom/Conversion/Passes.h"

#include <limits>

using namespace mlir;
using namespace mlir::loom;

namespace {
struct DotToMatmul : OpConversionPattern<DotOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(DotOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    // linalg.matmul extends f16/bf16 operands to the f32 accumulator type
    // before multiplying, so the products and sums are single precision.
    auto matmul = linalg::MatmulOp::create(
        rewriter, op.getLoc(), ValueRange{adaptor.getA(), adaptor.getB()},
        ValueRange{adaptor.getAcc()});
    rewriter.replaceOp(op, matmul->getResults());
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
  case ReduceKind::Sum:
    return isFloat ? arith::AddFOp::create(b, loc, x, y).getResult()
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
  patterns.add<DotToMatmul, ReduceToLinalg>(patterns.getContext());
}
