//===- FuseElementwise.cpp - elementwise fusion without recomputation -----===//
//
// Upstream's elementwise fusion, restricted to operands the consumer reads
// through a permutation of its loops (see Passes.td for why).
//
//===----------------------------------------------------------------------===//
#include "loom/Transforms/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMFUSEELEMENTWISE
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;

namespace {
bool isCheapToRecompute(linalg::GenericOp op);

/// Fuses when the producer has no other user (as upstream's default does)
/// and either the consumer visits each of the operand's elements once (its
/// indexing map for the operand is a permutation of all its loops), or the
/// producer is cheap (see isCheapToRecompute) and the consumer is
/// elementwise or a row reduction, never a contraction: recomputing a
/// column mask per element costs less than reading it back from a tile.
/// Reshapes move past producers without reductions (a dot stays a dot for
/// loom-vectorize-dot).
bool fusesWithoutRecomputation(OpOperand *fusedOperand) {
  Operation *producer = fusedOperand->get().getDefiningOp();
  if (!producer || !producer->hasOneUse())
    return false;
  if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(fusedOperand->getOwner())) {
    auto linalgProducer = dyn_cast<linalg::LinalgOp>(producer);
    return linalgProducer && linalgProducer.getNumReductionLoops() == 0;
  }
  auto consumer = dyn_cast<linalg::LinalgOp>(fusedOperand->getOwner());
  if (!consumer)
    return false;
  if (consumer.getMatchingIndexingMap(fusedOperand).isPermutation())
    return true;
  auto generic = dyn_cast<linalg::GenericOp>(producer);
  return generic && isCheapToRecompute(generic) && !linalg::isaContractionOpInterface(consumer) &&
         consumer.getNumReductionLoops() <= 1 &&
         (consumer.getNumReductionLoops() == 0 ||
          linalg::isReductionIterator(consumer.getIteratorTypesArray().back()));
}

/// A generic whose recomputation costs less than storing and reloading its
/// result: data movement of any element type (a broadcast, a copy, a fill)
/// and short integer index arithmetic (arange, offsets, bounds masks); no
/// loads, no float math.
bool isCheapToRecompute(linalg::GenericOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumResults() != 1)
    return false;
  Block &body = op.getRegion().front();
  constexpr size_t kMaxOps = 4;
  if (body.getOperations().size() > kMaxOps + 1)
    return false;
  return llvm::all_of(body.without_terminator(), [](Operation &inner) {
    return isa<linalg::IndexOp, arith::ConstantOp, arith::AddIOp, arith::SubIOp, arith::MulIOp,
               arith::IndexCastOp, arith::ExtSIOp, arith::ExtUIOp, arith::TruncIOp,
               arith::CmpIOp, arith::AndIOp, arith::OrIOp>(inner);
  });
}

/// Gives each further user of a cheap generic its own copy, so that each
/// copy has one user and fuses into it: a row mask or an offset vector read
/// by several tiles is then recomputed inside each of them (from arange, in
/// registers) instead of being materialized as a tile and read back.
void cloneCheapProducersPerUse(func::FuncOp func) {
  SmallVector<linalg::GenericOp> cheap;
  func.walk([&](linalg::GenericOp op) {
    if (isCheapToRecompute(op))
      cheap.push_back(op);
  });
  // Users before producers: cloning a user adds uses to its producers,
  // which are then cloned in turn.
  OpBuilder b(func.getContext());
  for (linalg::GenericOp op : llvm::reverse(cheap)) {
    // Only generic users get copies (they fuse them); other users (returns,
    // slices, dots through reshapes) keep sharing the original.
    SmallVector<OpOperand *> uses;
    bool otherUsers = false;
    for (OpOperand &use : op->getResult(0).getUses()) {
      if (isa<linalg::GenericOp>(use.getOwner()))
        uses.push_back(&use);
      else
        otherUsers = true;
    }
    for (OpOperand *use : llvm::drop_begin(uses, otherUsers ? 0 : 1)) {
      b.setInsertionPoint(op);
      use->set(b.clone(*op)->getResult(0));
    }
  }
}

/// Drops the unit dims of every generic without reductions (upstream's
/// patterns), so that the index arithmetic behind an expand_dims, a
/// [64, 1] tile collapsed back to [64], reaches its consumer with no
/// reshape between them and fuses. Generics with reductions keep their
/// shape: a dot with M, N or K of 1 stays the (i, k, j) contraction
/// loom-vectorize-dot matches.
LogicalResult foldUnitDimsOfParallelGenerics(func::FuncOp func) {
  linalg::ControlDropUnitDims options;
  options.controlFn = [](Operation *op) -> SmallVector<unsigned> {
    auto generic = dyn_cast<linalg::GenericOp>(op);
    if (!generic || generic.getNumReductionLoops() != 0)
      return {};
    return llvm::to_vector(llvm::seq<unsigned>(0, generic.getNumLoops()));
  };
  RewritePatternSet patterns(func.getContext());
  linalg::populateFoldUnitExtentDimsPatterns(patterns, options);
  return applyPatternsGreedily(func, std::move(patterns));
}

struct LoomFuseElementwise
    : mlir::loom::impl::LoomFuseElementwiseBase<LoomFuseElementwise> {
  void runOnOperation() override {
    MLIRContext *context = &getContext();
    if (failed(foldUnitDimsOfParallelGenerics(getOperation())))
      return signalPassFailure();
    cloneCheapProducersPerUse(getOperation());
    RewritePatternSet patterns(context);
    linalg::populateElementwiseOpsFusionPatterns(patterns, fusesWithoutRecomputation);
    linalg::populateFoldReshapeOpsByExpansionPatterns(patterns, fusesWithoutRecomputation);
    affine::AffineApplyOp::getCanonicalizationPatterns(patterns, context);
    linalg::GenericOp::getCanonicalizationPatterns(patterns, context);
    tensor::ExpandShapeOp::getCanonicalizationPatterns(patterns, context);
    tensor::CollapseShapeOp::getCanonicalizationPatterns(patterns, context);
    context->getLoadedDialect<linalg::LinalgDialect>()->getCanonicalizationPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
