//===- MemoryToLinalg.cpp - masked loads and stores -----------------------===//
//
// Pointers arrive here already converted to memref<?xT>. A load becomes a
// linalg.generic gather. A masked-off lane reads element 0 instead of its
// offset and then selects `other`: its offset is never dereferenced and the
// body has no branch. A branch per element (unpredictable at tile edges and
// in masks) made the attention tiles' loads cost more than their dots; the
// selects measured faster even as scalar code, and leave the loop open to
// vectorization. The CPU runtime guarantees element 0 is readable (an empty
// buffer gets a zeroed stand-in, CpuKernel.cpp). A store becomes a loop nest
// of guarded memref.store (stores have no tensor result).
//
//===----------------------------------------------------------------------===//
#include "loom/Conversion/Passes.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
Value toIndex(OpBuilder &b, Location loc, Value offset) {
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), offset);
}

struct LoadToGather : OpConversionPattern<LoadOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LoadOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    Type elemType = type.getElementType();
    Value memref = adaptor.getPtr();
    SmallVector<Value> inputs{adaptor.getOffsets()};
    if (adaptor.getMask())
      inputs.push_back(adaptor.getMask());
    if (adaptor.getOther())
      inputs.push_back(adaptor.getOther());
    Value init = tensor::EmptyOp::create(rewriter, loc, type.getShape(), elemType);
    AffineMap id = rewriter.getMultiDimIdentityMap(type.getRank());
    SmallVector<AffineMap> maps(inputs.size() + 1, id);
    SmallVector<utils::IteratorType> iters(type.getRank(),
                                           utils::IteratorType::parallel);
    bool hasMask = bool(adaptor.getMask()), hasOther = bool(adaptor.getOther());
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{type}, inputs, ValueRange{init}, maps, iters,
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value index = toIndex(b, l, args[0]);
          if (!hasMask) {
            Value v = memref::LoadOp::create(b, l, memref, index);
            linalg::YieldOp::create(b, l, v);
            return;
          }
          Value fallback = hasOther ? args[2]
                                    : arith::ConstantOp::create(
                                          b, l, b.getZeroAttr(elemType))
                                          .getResult();
          Value zero = arith::ConstantIndexOp::create(b, l, 0);
          Value safeIndex = arith::SelectOp::create(b, l, args[1], index, zero);
          Value loaded = memref::LoadOp::create(b, l, memref, safeIndex);
          linalg::YieldOp::create(
              b, l, ValueRange{arith::SelectOp::create(b, l, args[1], loaded, fallback)});
        });
    rewriter.replaceOp(op, generic.getResults());
    return success();
  }
};

struct StoreToLoops : OpConversionPattern<StoreOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(StoreOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<RankedTensorType>(adaptor.getValue().getType());
    Value memref = adaptor.getPtr();
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
    SmallVector<Value> lbs(type.getRank(), zero), steps(type.getRank(), one), ubs;
    for (int64_t d : type.getShape())
      ubs.push_back(arith::ConstantIndexOp::create(rewriter, loc, d));
    Value value = adaptor.getValue(), offsets = adaptor.getOffsets(),
          mask = adaptor.getMask();
    scf::buildLoopNest(
        rewriter, loc, lbs, ubs, steps,
        [&](OpBuilder &b, Location l, ValueRange ivs) {
          Value off = tensor::ExtractOp::create(b, l, offsets, ivs);
          Value v = tensor::ExtractOp::create(b, l, value, ivs);
          Value index = toIndex(b, l, off);
          if (!mask) {
            memref::StoreOp::create(b, l, v, memref, index);
            return;
          }
          Value m = tensor::ExtractOp::create(b, l, mask, ivs);
          scf::IfOp::create(b, l, m, [&](OpBuilder &tb, Location tl) {
            memref::StoreOp::create(tb, tl, v, memref, index);
            scf::YieldOp::create(tb, tl);
          });
        });
    rewriter.eraseOp(op);
    return success();
  }
};
} // namespace

void mlir::loom::populateLoomMemoryToLinalgPatterns(const TypeConverter &converter,
                                                    RewritePatternSet &patterns) {
  patterns.add<LoadToGather, StoreToLoops>(converter, patterns.getContext());
}
