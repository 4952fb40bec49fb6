//===- MemoryToEmitC.cpp - masked loads and stores ------------------------===//
#include "EmitCUtils.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
struct LoadToCall : OpConversionPattern<LoadOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LoadOp op, OpAdaptor adaptor, ConversionPatternRewriter &rewriter) const override {
    // `load(p, offsets[, mask[, other]])`: overloads by arity.
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::load", adaptor.getOperands());
    return success();
  }
};

struct StoreToCall : OpConversionPattern<StoreOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(StoreOp op, OpAdaptor adaptor, ConversionPatternRewriter &rewriter) const override {
    SmallVector<Value> operands{adaptor.getPtr(), adaptor.getOffsets(), adaptor.getValue()};
    if (adaptor.getMask())
      operands.push_back(adaptor.getMask());
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::store", operands);
    return success();
  }
};
/// `block_load<ResultTile>(p, other, base, strides..., bounds...)`.
struct BlockLoadToCall : OpConversionPattern<BlockLoadOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(BlockLoadOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    SmallVector<Value> operands = blockOperands(adaptor.getOther(), adaptor);
    if (!op.getDeferred()) {
      replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::block_load", operands,
                      {typeArg(getContext(), op.getType())});
      return success();
    }
    // A view (GlobalBlock) that the dot's staging reads; the dot's lowering
    // looks through the cast to the tile type that the conversion puts
    // between them.
    auto view = emitc::OpaqueType::get(
        getContext(), globalBlockTypeName(op.getType(), op.getColumnMajor()));
    auto call = emitc::CallOpaqueOp::create(
        rewriter, op.getLoc(), TypeRange{view}, "loom::tile::block_view", operands, ArrayAttr(),
        rewriter.getArrayAttr({emitc::OpaqueAttr::get(getContext(), view.getValue())}));
    rewriter.replaceOp(op, call.getResults());
    return success();
  }
};

/// `block_store(p, value, base, strides..., bounds...)`.
struct BlockStoreToCall : OpConversionPattern<BlockStoreOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(BlockStoreOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::block_store",
                    blockOperands(adaptor.getValue(), adaptor));
    return success();
  }
};
} // namespace

void mlir::loom::populateLoomMemoryToEmitCPatterns(const TypeConverter &converter,
                                                   RewritePatternSet &patterns) {
  patterns.add<LoadToCall, StoreToCall, BlockLoadToCall, BlockStoreToCall>(converter, patterns.getContext());
}
