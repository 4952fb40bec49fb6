//===- SelectHalfFloatsAsBits.cpp - 16-bit floats selected as integers ----===//
//
// See the pass description in Passes.td: selects and block arguments of
// bf16/f16 (or vectors of them) are rewritten onto iN with bitcasts, so that
// LLVM never legalizes them by widening to f32 and calling __truncsfbf2.
//
//===----------------------------------------------------------------------===//
#include "loom/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMSELECTHALFFLOATSASBITS
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;

namespace {
/// The integer type of `type`'s width when it is a 16-bit float or a vector
/// of one; null otherwise.
Type bitsType(Type type) {
  Type element = getElementTypeOrSelf(type);
  if (!isa<BFloat16Type, Float16Type>(element))
    return {};
  Type bits = IntegerType::get(type.getContext(), 16);
  if (auto vector = dyn_cast<VectorType>(type))
    return vector.clone(bits);
  return bits;
}

Value bitcast(OpBuilder &b, Location loc, Value v, Type to) {
  return arith::BitcastOp::create(b, loc, to, v);
}

void selectBits(arith::SelectOp select) {
  Type bits = bitsType(select.getType());
  if (!bits)
    return;
  OpBuilder b(select);
  Location loc = select.getLoc();
  Value chosen = arith::SelectOp::create(b, loc, select.getCondition(),
                                         bitcast(b, loc, select.getTrueValue(), bits),
                                         bitcast(b, loc, select.getFalseValue(), bits));
  select.replaceAllUsesWith(bitcast(b, loc, chosen, select.getType()));
  select.erase();
}

/// Every predecessor passes the bits; the block casts them back once.
LogicalResult forwardBits(Block &block) {
  for (BlockArgument arg : block.getArguments()) {
    Type type = arg.getType(), bits = bitsType(type);
    if (!bits)
      continue;
    for (auto it = block.pred_begin(); it != block.pred_end(); ++it) {
      auto branch = dyn_cast<BranchOpInterface>((*it)->getTerminator());
      if (!branch)
        return (*it)->getTerminator()->emitOpError(
            "branches to a block with a 16-bit float argument but is not a BranchOpInterface");
      SuccessorOperands operands = branch.getSuccessorOperands(it.getSuccessorIndex());
      unsigned produced = operands.getProducedOperandCount();
      if (arg.getArgNumber() < produced)
        return branch->emitOpError("produces the 16-bit float block argument it branches with");
      OpOperand &forwarded = operands.getMutableForwardedOperands()[arg.getArgNumber() - produced];
      OpBuilder b(branch);
      forwarded.set(bitcast(b, branch.getLoc(), forwarded.get(), bits));
    }
    arg.setType(bits);
    OpBuilder b = OpBuilder::atBlockBegin(&block);
    Value value = bitcast(b, arg.getLoc(), arg, type);
    arg.replaceAllUsesExcept(value, value.getDefiningOp());
  }
  return success();
}

struct SelectHalfFloatsAsBits
    : mlir::loom::impl::LoomSelectHalfFloatsAsBitsBase<SelectHalfFloatsAsBits> {
  void runOnOperation() override {
    SmallVector<arith::SelectOp> selects;
    getOperation().walk([&](arith::SelectOp op) { selects.push_back(op); });
    for (arith::SelectOp op : selects)
      selectBits(op);
    WalkResult result = getOperation().walk([&](Block *block) {
      if (block->isEntryBlock())
        return WalkResult::advance();
      return failed(forwardBits(*block)) ? WalkResult::interrupt() : WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
