//===- AssignLayouts.cpp - register layouts for the CUDA backend ----------===//
//
// Three steps (see Passes.td): anchor tensor-core dots in #loom.mma, push
// layouts forward through the dataflow (types are rewritten in place; a
// value only ever goes from blocked to another layout, so the worklist
// terminates), then give every operand the layout its user needs, by
// recomputing cheap values in it or by a loom.convert_layout.
//
//===----------------------------------------------------------------------===//
#include "loom/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMASSIGNLAYOUTS
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {
/// A tile's layout: its encoding, null for blocked.
Attribute layoutOf(Value v) {
  if (auto t = dyn_cast<RankedTensorType>(v.getType()))
    return t.getEncoding();
  return {};
}

RankedTensorType withLayout(Type type, Attribute layout) {
  auto t = cast<RankedTensorType>(type);
  return RankedTensorType::get(t.getShape(), t.getElementType(), layout);
}

/// Whether `layout` may encode a tile of this shape (null, blocked, always).
bool fits(Attribute layout, ArrayRef<int64_t> shape) {
  if (!layout)
    return true;
  auto never = [] { return InFlightDiagnostic(); };
  if (auto mma = dyn_cast<MmaEncodingAttr>(layout))
    return succeeded(mma.verifyEncoding(shape, Type(), never));
  if (auto rows = dyn_cast<MmaRowsEncodingAttr>(layout))
    return succeeded(rows.verifyEncoding(shape, Type(), never));
  if (auto cols = dyn_cast<MmaColsEncodingAttr>(layout))
    return succeeded(cols.verifyEncoding(shape, Type(), never));
  return false;
}

bool isElementwise(Operation *op) {
  return op->hasTrait<OpTrait::Elementwise>() && op->getNumResults() == 1 &&
         isa<RankedTensorType>(op->getResult(0).getType());
}

/// The warp grid of an M x N mma tile: as many warps along M as divide it,
/// so that row reductions stay within a warp where they can.
std::optional<std::pair<unsigned, unsigned>> warpGrid(int64_t m, int64_t n, unsigned warps) {
  if (m % 16 != 0 || n % 8 != 0)
    return std::nullopt;
  for (unsigned wm = warps; wm >= 1; --wm)
    if (warps % wm == 0 && (m / 16) % wm == 0 && (n / 8) % (warps / wm) == 0)
      return std::make_pair(wm, warps / wm);
  return std::nullopt;
}

/// The mma layout of a dot's result, if it runs on tensor cores.
Attribute mmaLayoutFor(DotOp dot, unsigned warps) {
  auto a = cast<RankedTensorType>(dot.getA().getType());
  auto r = cast<RankedTensorType>(dot.getType());
  Type elem = a.getElementType();
  if (!(elem.isF16() || elem.isBF16()) || a.getDimSize(1) % 16 != 0)
    return {};
  auto grid = warpGrid(r.getDimSize(0), r.getDimSize(1), warps);
  if (!grid)
    return {};
  return MmaEncodingAttr::get(dot.getContext(), grid->first, grid->second);
}

class LayoutAssigner {
public:
  LayoutAssigner(func::FuncOp func, unsigned warps) : func(func), warps(warps) {}

  void run() {
    func.walk([&](DotOp dot) {
      if (Attribute mma = mmaLayoutFor(dot, warps))
        setLayout(dot.getResult(), mma);
    });
    while (!worklist.empty()) {
      Value v = worklist.pop_back_val();
      for (OpOperand &use : llvm::make_early_inc_range(v.getUses()))
        propagate(use);
    }
    SmallVector<Operation *> ops;
    func.walk([&](Operation *op) { ops.push_back(op); });
    for (Operation *op : ops)
      for (OpOperand &operand : op->getOpOperands())
        if (isa<RankedTensorType>(operand.get().getType())) {
          Attribute want = requiredLayout(operand);
          if (layoutOf(operand.get()) != want)
            operand.set(materialize(operand.get(), want));
        }
    eraseDeadOps();
  }

private:
  void setLayout(Value v, Attribute layout) {
    v.setType(withLayout(v.getType(), layout));
    worklist.push_back(v);
  }

  /// Step 2: the layout `use`'s owner takes from its operand's new layout.
  void propagate(OpOperand &use) {
    Operation *op = use.getOwner();
    Attribute layout = layoutOf(use.get());
    auto promote = [&](Value result, Attribute to) {
      if (to && !layoutOf(result) && fits(to, cast<RankedTensorType>(result.getType()).getShape()))
        setLayout(result, to);
    };
    if (isElementwise(op))
      return promote(op->getResult(0), layout);
    if (auto reduce = dyn_cast<ReduceOp>(op)) {
      if (auto mma = dyn_cast_or_null<MmaEncodingAttr>(layout); mma && reduce.getAxis() == 1)
        promote(reduce.getResult(), rowsOf(mma));
      return;
    }
    if (auto expand = dyn_cast<ExpandDimsOp>(op)) {
      // [M] -> [M, 1]: the rows stay where they are.
      if (isa_and_nonnull<MmaRowsEncodingAttr>(layout) && expand.getAxis() == 1)
        promote(expand.getResult(), layout);
      return;
    }
    if (auto broadcast = dyn_cast<BroadcastOp>(op)) {
      if (auto rows = dyn_cast_or_null<MmaRowsEncodingAttr>(layout))
        promote(broadcast.getResult(), mmaOf(rows));
      return;
    }
    if (auto yield = dyn_cast<scf::YieldOp>(op)) {
      // The carried value takes the layout of what each iteration yields.
      if (auto loop = dyn_cast<scf::ForOp>(yield->getParentOp())) {
        unsigned i = use.getOperandNumber();
        if (layout && !layoutOf(loop.getRegionIterArgs()[i])) {
          setLayout(loop.getRegionIterArgs()[i], layout);
          setLayout(loop.getResult(i), layout);
        }
      }
    }
  }

  /// Step 3: the layout `operand` must have for its owner. Ops that move
  /// elements between threads anyway (dot's A and B, reduce, broadcast,
  /// convert_layout) take any layout.
  Attribute requiredLayout(OpOperand &operand) {
    Operation *op = operand.getOwner();
    if (isElementwise(op))
      return layoutOf(op->getResult(0));
    if (auto dot = dyn_cast<DotOp>(op))
      return &operand == &dot.getAccMutable() ? layoutOf(dot.getResult()) : layoutOf(operand.get());
    if (isa<ReduceOp, BroadcastOp, ConvertLayoutOp, TransOp>(op))
      return layoutOf(operand.get());
    if (auto expand = dyn_cast<ExpandDimsOp>(op))
      return layoutOf(expand.getResult());
    if (auto loop = dyn_cast<scf::ForOp>(op))
      if (BlockArgument arg = loop.getTiedLoopRegionIterArg(&operand))
        return layoutOf(arg);
    if (auto yield = dyn_cast<scf::YieldOp>(op))
      if (auto loop = dyn_cast<scf::ForOp>(yield->getParentOp()))
        return layoutOf(loop.getResult(operand.getOperandNumber()));
    return {};
  }

  MmaRowsEncodingAttr rowsOf(MmaEncodingAttr mma) {
    return MmaRowsEncodingAttr::get(mma.getContext(), mma.getWarpsM(), mma.getWarpsN());
  }
  MmaColsEncodingAttr colsOf(MmaEncodingAttr mma) {
    return MmaColsEncodingAttr::get(mma.getContext(), mma.getWarpsM(), mma.getWarpsN());
  }
  MmaEncodingAttr mmaOf(MmaRowsEncodingAttr rows) {
    return MmaEncodingAttr::get(rows.getContext(), rows.getWarpsM(), rows.getWarpsN());
  }

  /// Whether `v` can be recomputed in `layout` from values that need no
  /// conversion: splats, arange, broadcasts (which go through shared memory
  /// whatever their result layout), expand_dims and elementwise ops of those.
  /// An arange (a row or column index) and what is computed from it can be
  /// recomputed in the rows or the columns of an mma tile.
  bool canRecompute(Value v, Attribute layout, int depth = 0) {
    Operation *def = v.getDefiningOp();
    if (!def || depth > 8 || !fits(layout, cast<RankedTensorType>(v.getType()).getShape()))
      return false;
    if (isa<SplatOp, BroadcastOp>(def))
      return true;
    if (isa<ArangeOp>(def))
      return !layout || isa<MmaRowsEncodingAttr, MmaColsEncodingAttr>(layout);
    if (auto expand = dyn_cast<ExpandDimsOp>(def)) {
      bool keeps = (isa_and_nonnull<MmaRowsEncodingAttr>(layout) && expand.getAxis() == 1) ||
                   (isa_and_nonnull<MmaColsEncodingAttr>(layout) && expand.getAxis() == 0);
      return keeps && canRecompute(expand.getSrc(), layout, depth + 1);
    }
    if (isElementwise(def))
      return llvm::all_of(def->getOperands(), [&](Value x) {
        return !isa<RankedTensorType>(x.getType()) || canRecompute(x, layout, depth + 1);
      });
    return false;
  }

  /// `v` in `layout`: recomputed where canRecompute says so, else converted
  /// once right after its definition (so a loop-invariant value is
  /// converted outside the loop).
  Value materialize(Value v, Attribute layout) {
    auto key = std::make_pair(v, layout);
    if (auto it = cache.find(key); it != cache.end())
      return it->second;
    OpBuilder b(func.getContext());
    if (Operation *def = v.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(cast<BlockArgument>(v).getOwner());
    Value result;
    if (layoutOf(v) == layout) {
      result = v;
    } else if (canRecompute(v, layout)) {
      Operation *def = v.getDefiningOp();
      SmallVector<Value> operands;
      for (Value x : def->getOperands())
        operands.push_back(isa<RankedTensorType>(x.getType())
                               ? materialize(x, operandLayout(def, x, layout))
                               : x);
      Operation *copy = b.clone(*def);
      copy->setOperands(operands);
      copy->getResult(0).setType(withLayout(v.getType(), layout));
      result = copy->getResult(0);
    } else {
      result = ConvertLayoutOp::create(b, v.getLoc(), withLayout(v.getType(), layout), v);
    }
    cache[key] = result;
    return result;
  }

  /// The layout operand `x` of a recomputed `def` is materialized in when
  /// `def`'s result goes to `layout`.
  Attribute operandLayout(Operation *def, Value x, Attribute layout) {
    if (auto broadcast = dyn_cast<BroadcastOp>(def)) {
      // An [M, 1] column recomputed in the rows of an mma result, or a
      // [1, N] row in its columns, broadcasts without shared memory;
      // anything else keeps its own layout.
      auto mma = dyn_cast_or_null<MmaEncodingAttr>(layout);
      auto src = cast<RankedTensorType>(x.getType());
      if (mma && src.getDimSize(1) == 1 && canRecompute(x, rowsOf(mma)))
        return rowsOf(mma);
      if (mma && src.getDimSize(0) == 1 && canRecompute(x, colsOf(mma)))
        return colsOf(mma);
      return layoutOf(x);
    }
    return layout;
  }

  /// The originals of recomputed values, when nothing uses them any more.
  void eraseDeadOps() {
    bool changed = true;
    while (changed) {
      changed = false;
      SmallVector<Operation *> dead;
      func.walk([&](Operation *op) {
        if (op->getNumResults() > 0 && op->use_empty() && isPure(op) &&
            op->getNumRegions() == 0)
          dead.push_back(op);
      });
      for (Operation *op : dead)
        op->erase();
      changed = !dead.empty();
    }
  }

  func::FuncOp func;
  unsigned warps;
  SmallVector<Value> worklist;
  DenseMap<std::pair<Value, Attribute>, Value> cache;
};

struct LoomAssignLayoutsPass
    : public loom::impl::LoomAssignLayoutsBase<LoomAssignLayoutsPass> {
  using LoomAssignLayoutsBase::LoomAssignLayoutsBase;

  void runOnOperation() override {
    if (numThreads == 0 || numThreads % 32 != 0 || numThreads > 1024) {
      getOperation().emitError() << "num-threads must be a positive multiple of 32 up to 1024, got "
                                 << static_cast<unsigned>(numThreads);
      return signalPassFailure();
    }
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (func->hasAttr(kKernelAttrName))
        LayoutAssigner(func, numThreads / 32).run();
  }
};
} // namespace
