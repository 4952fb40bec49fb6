//===- ShapeToLinalg.cpp - tile construction and shape ops ----------------===//
#include "loom/Conversion/Passes.h"

#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
Value emptyLike(OpBuilder &b, Location loc, RankedTensorType type) {
  return tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType());
}

struct SplatToFill : OpConversionPattern<SplatOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(SplatOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value init = emptyLike(rewriter, op.getLoc(), op.getType());
    rewriter.replaceOpWithNewOp<linalg::FillOp>(op, adaptor.getSrc(), init);
    return success();
  }
};

struct ArangeToGeneric : OpConversionPattern<ArangeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ArangeOp op, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    Value init = emptyLike(rewriter, loc, type);
    int32_t start = op.getStart();
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{type}, ValueRange{}, ValueRange{init},
        ArrayRef<AffineMap>{rewriter.getMultiDimIdentityMap(1)},
        ArrayRef<utils::IteratorType>{utils::IteratorType::parallel},
        [&](OpBuilder &b, Location l, ValueRange) {
          Value idx = linalg::IndexOp::create(b, l, 0);
          Value i = arith::IndexCastOp::create(b, l, b.getI32Type(), idx);
          Value s = arith::ConstantIntOp::create(b, l, start, 32);
          linalg::YieldOp::create(b, l, ValueRange{arith::AddIOp::create(b, l, i, s)});
        });
    rewriter.replaceOp(op, generic.getResults());
    return success();
  }
};

struct ExpandDimsToExpandShape : OpConversionPattern<ExpandDimsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ExpandDimsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto srcType = cast<RankedTensorType>(adaptor.getSrc().getType());
    int64_t axis = op.getAxis(), rank = srcType.getRank();
    SmallVector<ReassociationIndices> reassoc;
    if (rank > 0) {
      // Group the new unit dim with its neighbour source dimension.
      for (int64_t i = 0; i < rank; ++i)
        reassoc.push_back({i + (i >= axis ? 1 : 0)});
      if (axis < rank)
        reassoc[axis].insert(reassoc[axis].begin(), axis);
      else
        reassoc[rank - 1].push_back(axis);
    }
    rewriter.replaceOpWithNewOp<tensor::ExpandShapeOp>(op, op.getType(),
                                                       adaptor.getSrc(), reassoc);
    return success();
  }
};

struct TransToLinalg : OpConversionPattern<TransOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(TransOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value init = emptyLike(rewriter, op.getLoc(), op.getType());
    auto transpose = linalg::TransposeOp::create(rewriter, op.getLoc(), adaptor.getSrc(), init,
                                                 ArrayRef<int64_t>{1, 0});
    rewriter.replaceOp(op, transpose.getResults());
    return success();
  }
};

/// Drops the unit dims that broadcast, then linalg.broadcast re-adds them at
/// full size.
struct BroadcastToLinalg : OpConversionPattern<BroadcastOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(BroadcastOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto srcType = cast<RankedTensorType>(adaptor.getSrc().getType());
    RankedTensorType dstType = op.getType();
    SmallVector<int64_t> broadcastDims, keptShape, keptDims;
    for (int64_t i = 0; i < srcType.getRank(); ++i) {
      if (srcType.getDimSize(i) == 1 && dstType.getDimSize(i) != 1)
        broadcastDims.push_back(i);
      else {
        keptShape.push_back(srcType.getDimSize(i));
        keptDims.push_back(i);
      }
    }
    if (broadcastDims.empty()) {
      rewriter.replaceOp(op, adaptor.getSrc());
      return success();
    }
    // Reassociation: each kept dim absorbs the broadcast unit dims before it;
    // trailing unit dims join the last kept dim.
    SmallVector<ReassociationIndices> reassoc;
    ReassociationIndices pending;
    for (int64_t i = 0; i < srcType.getRank(); ++i) {
      pending.push_back(i);
      if (!llvm::is_contained(broadcastDims, i)) {
        reassoc.push_back(pending);
        pending.clear();
      }
    }
    if (!pending.empty() && !reassoc.empty())
      reassoc.back().append(pending.begin(), pending.end());
    auto collapsedType = RankedTensorType::get(keptShape, srcType.getElementType());
    Value collapsed = tensor::CollapseShapeOp::create(rewriter, loc, collapsedType,
                                                      adaptor.getSrc(), reassoc);
    Value init = emptyLike(rewriter, loc, dstType);
    auto bcast = linalg::BroadcastOp::create(rewriter, loc, collapsed, init,
                                             broadcastDims);
    rewriter.replaceOp(op, bcast.getResults());
    return success();
  }
};
} // namespace

void mlir::loom::populateLoomShapeToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<SplatToFill, ArangeToGeneric, ExpandDimsToExpandShape,
               BroadcastToLinalg, TransToLinalg>(patterns.getContext());
}
