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
} // namespace

void mlir::loom::populateLoomMemoryToEmitCPatterns(const TypeConverter &converter,
                                                   RewritePatternSet &patterns) {
  patterns.add<LoadToCall, StoreToCall>(converter, patterns.getContext());
}
