//===- ShapeToEmitC.cpp - tile construction and shape ops -----------------===//
#include "EmitCUtils.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
struct ArangeToCall : OpConversionPattern<ArangeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ArangeOp op, OpAdaptor, ConversionPatternRewriter &rewriter) const override {
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::arange", {},
                    {typeArg(getContext(), op.getType()),
                     rewriter.getI32IntegerAttr(op.getStartAttr().getInt())});
    return success();
  }
};

/// Ops whose C++ form is `callee<ResultTile>(operands..., [smem])`.
template <typename OpTy>
struct ResultTypedCall : OpConversionPattern<OpTy> {
  ResultTypedCall(const TypeConverter &converter, MLIRContext *ctx, StringRef callee,
                  bool needsScratch)
      : OpConversionPattern<OpTy>(converter, ctx), callee(callee), needsScratch(needsScratch) {}
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    SmallVector<Value> operands(adaptor.getOperands());
    if (needsScratch) {
      Value smem = sharedScratch(op);
      if (!smem)
        return rewriter.notifyMatchFailure(op, "kernel has no shared scratch");
      operands.push_back(smem);
    }
    replaceWithCall(rewriter, *this->getTypeConverter(), op, callee, operands,
                    {typeArg(this->getContext(), op.getType())});
    return success();
  }
  std::string callee;
  bool needsScratch;
};
} // namespace

void mlir::loom::populateLoomShapeToEmitCPatterns(const TypeConverter &converter,
                                                  RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<ArangeToCall>(converter, ctx);
  patterns.add<ResultTypedCall<SplatOp>>(converter, ctx, "loom::tile::splat", false);
  // expand_dims keeps the row-major order, so each thread keeps its elements.
  patterns.add<ResultTypedCall<ExpandDimsOp>>(converter, ctx, "loom::tile::reshape", false);
  patterns.add<ResultTypedCall<BroadcastOp>>(converter, ctx, "loom::tile::broadcast", true);
  patterns.add<ResultTypedCall<ConvertLayoutOp>>(converter, ctx, "loom::tile::convert_layout",
                                                 true);
  patterns.add<ResultTypedCall<TransOp>>(converter, ctx, "loom::tile::transpose", true);
}
