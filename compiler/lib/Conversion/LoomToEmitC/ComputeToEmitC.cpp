//===- ComputeToEmitC.cpp - dot, reductions, extraction of scalars --------===//
#include "EmitCUtils.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
struct DotToCall : OpConversionPattern<DotOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(DotOp op, OpAdaptor adaptor, ConversionPatternRewriter &rewriter) const override {
    // The library picks tensor-core MMAs for f16/bf16 tiles whose shape is a
    // multiple of m16n8k16 and an FMA loop otherwise.
    Value smem = sharedScratch(op);
    if (!smem)
      return rewriter.notifyMatchFailure(op, "kernel has no shared scratch");
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::dot",
                    {viewOrSelf(adaptor.getA()), viewOrSelf(adaptor.getB()),
                     adaptor.getAcc(), smem},
                    {typeArg(getContext(), op.getType())});
    return success();
  }
};

struct ReduceToCall : OpConversionPattern<ReduceOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ReduceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value smem = sharedScratch(op);
    if (!smem)
      return rewriter.notifyMatchFailure(op, "kernel has no shared scratch");
    std::string callee = "loom::tile::reduce_" + stringifyReduceKind(op.getKind()).str();
    replaceWithCall(rewriter, *getTypeConverter(), op, callee, {adaptor.getSrc(), smem},
                    {typeArg(getContext(), op.getType()),
                     rewriter.getI32IntegerAttr(op.getAxisAttr().getInt())});
    return success();
  }
};

/// tensor.extract of a 0-D tile (a reduced 1-D tile): the value in every thread.
struct ExtractToCall : OpConversionPattern<tensor::ExtractOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(tensor::ExtractOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (!op.getIndices().empty())
      return rewriter.notifyMatchFailure(op, "only 0-D tiles are extracted");
    Value smem = sharedScratch(op);
    if (!smem)
      return rewriter.notifyMatchFailure(op, "kernel has no shared scratch");
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::extract",
                    {adaptor.getTensor(), smem});
    return success();
  }
};
} // namespace

void mlir::loom::populateLoomComputeToEmitCPatterns(const TypeConverter &converter,
                                                    RewritePatternSet &patterns) {
  patterns.add<DotToCall, ReduceToCall, ExtractToCall>(converter, patterns.getContext());
}
