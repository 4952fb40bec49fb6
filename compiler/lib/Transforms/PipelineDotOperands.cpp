//===- PipelineDotOperands.cpp - multi-stage cp.async pipelines -----------===//
//
// Copies the deferred dot operands of a loop into shared-memory slots ahead
// of the iterations that multiply them (see Passes.td). The pass works per
// scf.for, innermost first; a loop that already holds pipeline ops (an
// inner loop was pipelined) writes memory and is left alone.
//
//===----------------------------------------------------------------------===//
#include "loom/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMPIPELINEDOTOPERANDS
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {

/// Whether `dot` runs on the tensor-core path, whose staged layout the
/// pipeline slots hold (the device library's dot_uses_mma).
bool usesTensorCores(DotOp dot) {
  auto a = dot.getA().getType(), b = dot.getB().getType();
  Type elem = a.getElementType();
  return (elem.isF16() || elem.isBF16()) && a.getDimSize(0) % 16 == 0 &&
         b.getDimSize(1) % 8 == 0 && a.getDimSize(1) % 16 == 0;
}

/// Whether anything in `loop`'s body may write memory (or has effects the
/// pass cannot see): copying a later iteration's operands early would then
/// read memory before the write that the program orders before the read.
bool mayWriteMemory(scf::ForOp loop) {
  WalkResult r = loop.getBody()->walk([](Operation *op) {
    if (op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return WalkResult::advance();
    auto effects = dyn_cast<MemoryEffectOpInterface>(op);
    if (!effects)
      return WalkResult::interrupt();
    return effects.hasEffect<MemoryEffects::Write>() ? WalkResult::interrupt()
                                                     : WalkResult::advance();
  });
  return r.wasInterrupted();
}

int64_t tileBytes(RankedTensorType t) {
  return t.getNumElements() * t.getElementTypeBitWidth() / 8;
}

/// A deferred load to pipeline: `slice` holds the ops of the loop body that
/// compute its operands from the induction variable, in body order.
struct Pipelined {
  BlockLoadOp load;
  SmallVector<Operation *> slice;
};

/// A deferred load from outside the loop, read by `dot` in the loop body.
struct Hoisted {
  BlockLoadOp load;
  DotOp dot;
};

/// The ops of `loop`'s body that `load`'s operands depend on, if they are
/// all free of memory effects and reach only the induction variable and
/// values defined outside the loop (not the iteration arguments, which the
/// iteration ahead does not know yet). They need not be speculatable (an
/// integer division): the clone runs only for an iteration that the loop
/// does run, whose body evaluates the same ops unconditionally.
std::optional<SmallVector<Operation *>> operandSlice(scf::ForOp loop, BlockLoadOp load) {
  Block *body = loop.getBody();
  llvm::SmallPtrSet<Operation *, 16> inSlice;
  SmallVector<Value> work(load->getOperands());
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (v == loop.getInductionVar())
      continue;
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (arg.getOwner() == body)
        return std::nullopt; // an iteration argument
      continue;
    }
    Operation *def = v.getDefiningOp();
    if (!loop->isAncestor(def))
      continue; // defined outside the loop
    if (def->getBlock() != body || def->getNumRegions() != 0 || !isMemoryEffectFree(def))
      return std::nullopt;
    if (inSlice.insert(def).second)
      llvm::append_range(work, def->getOperands());
  }
  SmallVector<Operation *> slice;
  for (Operation &op : *body)
    if (inSlice.contains(&op))
      slice.push_back(&op);
  return slice;
}

struct LoopPipeline {
  scf::ForOp loop;
  SmallVector<Pipelined> pipelined; // in body order
  SmallVector<Hoisted> hoisted;

  bool empty() const { return pipelined.empty() && hoisted.empty(); }

  int64_t bytes(unsigned stages) {
    int64_t n = 0;
    for (Pipelined &p : pipelined)
      n += stages * tileBytes(p.load.getType());
    for (Hoisted &h : hoisted)
      n += tileBytes(h.load.getType());
    return n;
  }
};

LoopPipeline analyze(scf::ForOp loop) {
  LoopPipeline lp{loop, {}, {}};
  // The slot arithmetic is signed i32/i64, as the CUDA lowering prints it.
  Type ivType = loop.getInductionVar().getType();
  if (!(ivType.isInteger(32) || ivType.isInteger(64)) || loop.getUnsignedCmp() ||
      mayWriteMemory(loop))
    return lp;
  for (Operation &op : *loop.getBody()) {
    auto dot = dyn_cast<DotOp>(op);
    if (!dot || !usesTensorCores(dot))
      continue;
    for (Value operand : {dot.getA(), dot.getB()}) {
      auto load = operand.getDefiningOp<BlockLoadOp>();
      if (!load || !load.getDeferred())
        continue;
      if (!loop->isAncestor(load)) {
        lp.hoisted.push_back({load, dot});
      } else if (auto slice = operandSlice(loop, load)) {
        lp.pipelined.push_back({load, std::move(*slice)});
      }
    }
  }
  // Issue order is body order: the waits count the groups after each load's.
  llvm::sort(lp.pipelined, [](const Pipelined &x, const Pipelined &y) {
    return x.load->isBeforeInBlock(y.load);
  });
  return lp;
}

class Rewriter {
public:
  Rewriter(LoopPipeline &lp, unsigned stages, int64_t &nextOffset)
      : lp(lp), loop(lp.loop), stages(stages), nextOffset(nextOffset), b(loop) {}

  void run() {
    Location loc = loop.getLoc();
    const int64_t ahead = stages - 1; // iterations a copy runs ahead
    const int64_t groups = lp.pipelined.size();
    SmallVector<int64_t> pipelinedOffsets, hoistedOffsets;
    for (Pipelined &p : lp.pipelined)
      pipelinedOffsets.push_back(allocate(stages * tileBytes(p.load.getType())));
    for (Hoisted &h : lp.hoisted)
      hoistedOffsets.push_back(allocate(tileBytes(h.load.getType())));

    // Prologue: the hoisted tiles, then the first `ahead` iterations.
    b.setInsertionPoint(loop);
    Value lb64 = wide(loop.getLowerBound()), ub64 = wide(loop.getUpperBound()),
          step64 = wide(loop.getStep());
    for (auto [h, offset] : llvm::zip(lp.hoisted, hoistedOffsets))
      copy(h.load, h.load->getOperands(), constI32(0), offset, 1);
    if (!lp.hoisted.empty())
      AsyncCommitOp::create(b, loc);
    for (int64_t s = 0; s < ahead; ++s) {
      Value iv64 = ivAt(lb64, step64, s);
      for (auto [p, offset] : llvm::zip(lp.pipelined, pipelinedOffsets)) {
        copyIfInRange(p, iv64, ub64, constI32(s), offset);
        AsyncCommitOp::create(b, loc);
      }
    }

    // Top of the body: the copies of iteration i + ahead.
    Value slot;
    if (groups) {
      b.setInsertionPointToStart(loop.getBody());
      Value iv64 = wide(loop.getInductionVar());
      Value count = arith::DivSIOp::create(b, loc, arith::SubIOp::create(b, loc, iv64, lb64),
                                           step64);
      slot = slotOf(count, 0);
      Value slotAhead = slotOf(count, ahead);
      for (auto [p, offset] : llvm::zip(lp.pipelined, pipelinedOffsets)) {
        if (ahead == 0)
          copy(p.load, cloneOperands(p, loop.getInductionVar()), slotAhead, offset, stages);
        else
          copyIfInRange(p, ivAt(iv64, step64, ahead), ub64, slotAhead, offset);
        AsyncCommitOp::create(b, loc);
      }
    }

    // Each load becomes its slot, once the groups up to its own have landed.
    for (auto [j, pair] : llvm::enumerate(llvm::zip(lp.pipelined, pipelinedOffsets))) {
      auto &[p, offset] = pair;
      b.setInsertionPoint(p.load);
      AsyncWaitOp::create(b, p.load.getLoc(), ahead * groups + (groups - 1 - int64_t(j)));
      replaceBySlot(p.load, p.load.getResult(), slot, offset, stages);
      p.load->erase();
      eraseDeadSlice(p.slice);
    }
    for (auto [h, offset] : llvm::zip(lp.hoisted, hoistedOffsets)) {
      // The hoisted group is older than every group the loop commits.
      b.setInsertionPoint(h.dot);
      AsyncWaitOp::create(b, h.dot.getLoc(), groups ? (ahead + 1) * groups : 0);
      replaceBySlot(h.load, h.load.getResult(), constI32(0), offset, 1);
      h.load->erase();
    }
    // A loop that ran no iteration never waited for the hoisted copies.
    if (!lp.hoisted.empty()) {
      b.setInsertionPointAfter(loop);
      AsyncWaitOp::create(b, loc, 0);
    }
  }

private:
  int64_t allocate(int64_t bytes) {
    int64_t offset = nextOffset;
    nextOffset += (bytes + 15) / 16 * 16;
    return offset;
  }

  Value constI32(int64_t v) {
    return arith::ConstantIntOp::create(b, loop.getLoc(), b.getI32Type(), v);
  }

  /// `v` (the induction variable's type) as i64: the guard and the slot
  /// arithmetic of an i32 loop must not wrap where the loop itself does
  /// not (an upper bound near INT32_MAX, or more than 2^31 iterations).
  Value wide(Value v) {
    if (v.getType().isInteger(64))
      return v;
    return arith::ExtSIOp::create(b, loop.getLoc(), b.getI64Type(), v);
  }

  Value constI64(int64_t v) {
    return arith::ConstantIntOp::create(b, loop.getLoc(), b.getI64Type(), v);
  }

  /// from + k * step, in i64.
  Value ivAt(Value from, Value step, int64_t k) {
    if (k == 0)
      return from;
    Location loc = loop.getLoc();
    return arith::AddIOp::create(b, loc, from,
                                 arith::MulIOp::create(b, loc, constI64(k), step));
  }

  /// (count + k) % stages as i32, count >= 0 (i64).
  Value slotOf(Value count, int64_t k) {
    if (stages == 1)
      return constI32(0);
    Location loc = loop.getLoc();
    Value shifted = k ? arith::AddIOp::create(b, loc, count, constI64(k)) : count;
    Value slot = arith::RemSIOp::create(b, loc, shifted, constI64(stages));
    return arith::TruncIOp::create(b, loc, b.getI32Type(), slot);
  }

  /// The load's operands at induction variable `iv`: its slice cloned.
  SmallVector<Value> cloneOperands(Pipelined &p, Value iv) {
    IRMapping map;
    map.map(loop.getInductionVar(), iv);
    for (Operation *op : p.slice)
      b.clone(*op, map);
    return llvm::map_to_vector(p.load->getOperands(),
                               [&](Value v) { return map.lookupOrDefault(v); });
  }

  /// The copies of the iteration at `iv64` (i64), skipped past the loop's
  /// end `ub64` (the program never reads that iteration's tiles: they may
  /// be out of bounds). Inside the guard `iv64` < ub64 fits the induction
  /// variable's type.
  void copyIfInRange(Pipelined &p, Value iv64, Value ub64, Value slot, int64_t offset) {
    Location loc = loop.getLoc();
    Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, iv64, ub64);
    auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(guard.thenBlock());
    Type ivType = loop.getInductionVar().getType();
    Value iv = ivType == iv64.getType() ? iv64 : arith::TruncIOp::create(b, loc, ivType, iv64);
    copy(p.load, cloneOperands(p, iv), slot, offset, stages);
  }

  void copy(BlockLoadOp load, ValueRange operands, Value slot, int64_t offset, int64_t slots) {
    BlockLoadOp::Adaptor a(operands, load->getAttrDictionary(),
                           load->getPropertiesStorage(), load->getRegions());
    AsyncCopyOp::create(b, load.getLoc(), a.getPtr(), a.getBase(), a.getStrides(),
                        a.getBounds(), a.getOther(), slot, TypeAttr::get(load.getType()),
                        b.getI64IntegerAttr(offset), b.getI64IntegerAttr(slots),
                        load.getColumnMajorAttr());
  }

  void replaceBySlot(BlockLoadOp load, Value tile, Value slot, int64_t offset, int64_t slots) {
    auto read =
        SharedSlotOp::create(b, load.getLoc(), load.getType(), slot, b.getI64IntegerAttr(offset),
                             b.getI64IntegerAttr(slots), load.getColumnMajorAttr());
    tile.replaceAllUsesWith(read.getResult());
  }

  /// The slice's ops that computed only the load's operands.
  static void eraseDeadSlice(ArrayRef<Operation *> slice) {
    for (Operation *op : llvm::reverse(slice))
      if (op->use_empty())
        op->erase();
  }

  LoopPipeline &lp;
  scf::ForOp loop;
  unsigned stages;
  int64_t &nextOffset;
  OpBuilder b;
};

struct LoomPipelineDotOperandsPass
    : public loom::impl::LoomPipelineDotOperandsBase<LoomPipelineDotOperandsPass> {
  using LoomPipelineDotOperandsBase::LoomPipelineDotOperandsBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (numStages == 0) {
      func.emitError() << "num-stages must be at least 1, got 0";
      return signalPassFailure();
    }
    // Buffers a previous run laid out stay where they are.
    int64_t used = 0;
    if (auto bytes = func->getAttrOfType<IntegerAttr>(kPipelineBytesAttrName))
      used = bytes.getInt();
    SmallVector<scf::ForOp> loops;
    func.walk([&](scf::ForOp loop) { loops.push_back(loop); }); // innermost first
    for (scf::ForOp loop : loops) {
      LoopPipeline lp = analyze(loop);
      if (lp.empty())
        continue;
      // The most stages that fit, down to one.
      unsigned stages = numStages;
      while (stages > 1 && used + lp.bytes(stages) > maxSharedBytes)
        --stages;
      if (used + lp.bytes(stages) > maxSharedBytes)
        continue;
      Rewriter(lp, stages, used).run();
    }
    if (used)
      func->setAttr(kPipelineBytesAttrName, OpBuilder(func).getI64IntegerAttr(used));
  }
};

} // namespace
