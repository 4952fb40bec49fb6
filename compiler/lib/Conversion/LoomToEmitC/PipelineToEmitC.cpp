//===- PipelineToEmitC.cpp - shared-memory pipelines of dot operands ------===//
//
// loom.async_copy / async_commit / async_wait / shared_slot become calls of
// the device library's pipeline.h. A slot's buffer is named by its byte
// offset and slot count, both template arguments: the slot address is a
// constant offset from the dynamic shared memory.
//
//===----------------------------------------------------------------------===//
#include "EmitCUtils.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
/// <SharedBlock<T, Shape<...>, columnMajor>, offset, slots>: the buffer's
/// template arguments.
template <class PipelineOp>
SmallVector<Attribute> bufferArgs(PipelineOp op, RankedTensorType tile) {
  return {emitc::OpaqueAttr::get(op.getContext(), sharedBlockTypeName(tile, op.getColumnMajor())),
          op.getOffsetAttr(), op.getSlotsAttr()};
}

/// `async_copy<Buffer...>(slot, p, other, base, strides..., bounds...)`.
struct AsyncCopyToCall : OpConversionPattern<AsyncCopyOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(AsyncCopyOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    SmallVector<Value> operands{adaptor.getSlot()};
    llvm::append_range(operands, blockOperands(adaptor.getOther(), adaptor));
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::async_copy", operands,
                    bufferArgs(op, cast<RankedTensorType>(op.getTile())));
    return success();
  }
};

struct AsyncCommitToCall : OpConversionPattern<AsyncCommitOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(AsyncCommitOp op, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::async_commit", {});
    return success();
  }
};

/// `async_wait<pending>()`.
struct AsyncWaitToCall : OpConversionPattern<AsyncWaitOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(AsyncWaitOp op, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::async_wait", {},
                    {op.getPendingAttr()});
    return success();
  }
};

/// `shared_slot<Buffer...>(slot)`: a SharedBlock view; the dot's lowering
/// looks through the cast to the tile type that the conversion puts
/// between them (see viewOrSelf).
struct SharedSlotToCall : OpConversionPattern<SharedSlotOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(SharedSlotOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto view = emitc::OpaqueType::get(
        getContext(), sharedBlockTypeName(op.getType(), op.getColumnMajor()));
    auto call = emitc::CallOpaqueOp::create(
        rewriter, op.getLoc(), TypeRange{view}, "loom::tile::shared_slot",
        ValueRange{adaptor.getSlot()}, ArrayAttr(),
        rewriter.getArrayAttr(bufferArgs(op, op.getType())));
    rewriter.replaceOp(op, call.getResults());
    return success();
  }
};
} // namespace

void mlir::loom::populateLoomPipelineToEmitCPatterns(const TypeConverter &converter,
                                                     RewritePatternSet &patterns) {
  patterns.add<AsyncCopyToCall, AsyncCommitToCall, AsyncWaitToCall, SharedSlotToCall>(
      converter, patterns.getContext());
}
