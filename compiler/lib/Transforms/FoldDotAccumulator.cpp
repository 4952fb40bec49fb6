//===- FoldDotAccumulator.cpp - x + dot(a, b, 0) -> dot(a, b, x) -----------===//
//
// See Passes.td. The fold keeps one accumulator live across a dot instead
// of two, which is what lets a flash attention's output tile stay in
// registers on the GPU.
//
//===----------------------------------------------------------------------===//
#include "loom/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMFOLDDOTACCUMULATOR
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {

/// Whether `v` is a splat of +0.0 or -0.0.
bool isZeroSplat(Value v) {
  auto splat = v.getDefiningOp<SplatOp>();
  if (!splat)
    return false;
  FloatAttr value;
  return matchPattern(splat->getOperand(0), m_Constant(&value)) && value.getValue().isZero();
}

/// The single-use dot with a zero accumulator that `v` is, if any.
DotOp foldableDot(Value v) {
  auto dot = v.getDefiningOp<DotOp>();
  if (!dot || !dot->hasOneUse() || !isZeroSplat(dot.getAcc()))
    return {};
  return dot;
}

struct FoldAddIntoDot : OpRewritePattern<arith::AddFOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(arith::AddFOp add, PatternRewriter &rewriter) const override {
    Value lhs = add.getLhs(), rhs = add.getRhs();
    DotOp dot = foldableDot(rhs);
    Value other = lhs;
    if (!dot) {
      dot = foldableDot(lhs);
      other = rhs;
    }
    if (!dot || other.getType() != dot.getType())
      return failure();
    // The accumulator must exist where the dot runs: move the dot to the
    // add (its operands dominate the dot, and so the add).
    rewriter.setInsertionPoint(add);
    auto fused = DotOp::create(rewriter, dot.getLoc(), dot.getType(), dot.getA(), dot.getB(),
                               other);
    rewriter.replaceOp(add, fused.getResult());
    rewriter.eraseOp(dot);
    return success();
  }
};

struct LoomFoldDotAccumulatorPass
    : public loom::impl::LoomFoldDotAccumulatorBase<LoomFoldDotAccumulatorPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FoldAddIntoDot>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
