//===- StructureMemory.cpp - strided block loads and stores ---------------===//
//
// Rewrites loom.load / loom.store whose offset tile is affine in the element
// coordinates (base + sum_d i_d * stride_d, scalar base and strides) and
// whose mask bounds coordinates by scalars into loom.block_load /
// loom.block_store (see Passes.td). The analysis is symbolic: it describes
// a tile as polynomials over scalar SSA values and builds IR only once the
// whole access is recognized, so an access it gives up on is left as is.
//
//===----------------------------------------------------------------------===//
#include "loom/Transforms/Passes.h"


#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Iterators.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llvm/ADT/ScopeExit.h"

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMSTRUCTUREMEMORY
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {
/// The position of each value of the function being rewritten, in IR order
/// (set by the pass for its run). Factors are sorted by it, not by address:
/// the generated source, and so the compile caches' keys, must not depend
/// on where the IR happens to be allocated.
thread_local const DenseMap<Value, unsigned> *valueOrder = nullptr;

unsigned positionOf(Value v) {
  auto it = valueOrder->find(v);
  assert(it != valueOrder->end() && "factor created after the pass numbered the function");
  return it->second;
}

/// coeff * product of scalar SSA values (i32 or i64), factors sorted.
struct Term {
  int64_t coeff = 1;
  SmallVector<Value, 2> factors;
};

/// A sum of terms over scalars; empty is zero. Kept normalized: like terms
/// merged, zero terms dropped, so that "is the constant 1" is a shape test.
struct Poly {
  SmallVector<Term, 2> terms;

  static Poly constant(int64_t c) {
    Poly p;
    if (c != 0)
      p.terms.push_back({c, {}});
    return p;
  }
  static Poly scalar(Value v) {
    Poly p;
    p.terms.push_back({1, {v}});
    return p;
  }
  bool isZero() const { return terms.empty(); }
  bool isOne() const {
    return terms.size() == 1 && terms[0].coeff == 1 && terms[0].factors.empty();
  }

  void normalize() {
    for (Term &t : terms)
      llvm::sort(t.factors, [](Value a, Value b) { return positionOf(a) < positionOf(b); });
    SmallVector<Term, 2> merged;
    for (Term &t : terms) {
      auto same = llvm::find_if(merged, [&](const Term &m) { return m.factors == t.factors; });
      if (same != merged.end())
        same->coeff += t.coeff;
      else
        merged.push_back(t);
    }
    llvm::erase_if(merged, [](const Term &t) { return t.coeff == 0; });
    terms = std::move(merged);
  }

  friend Poly operator+(Poly a, const Poly &b) {
    a.terms.append(b.terms.begin(), b.terms.end());
    a.normalize();
    return a;
  }
  friend Poly operator*(const Poly &a, const Poly &b) {
    Poly p;
    for (const Term &x : a.terms)
      for (const Term &y : b.terms) {
        Term t{x.coeff * y.coeff, x.factors};
        t.factors.append(y.factors.begin(), y.factors.end());
        p.terms.push_back(std::move(t));
      }
    p.normalize();
    return p;
  }
  Poly negated() const { return *this * constant(-1); }
};

/// An integer tile whose element at (i_0, ..., i_{r-1}) is
/// base + sum_d i_d * strides[d].
struct AffineTile {
  Poly base;
  SmallVector<Poly> strides;

  bool isScalar() const {
    return llvm::all_of(strides, [](const Poly &s) { return s.isZero(); });
  }
};

/// Per dimension, scalars b with "element i is kept only if i_d < b".
using Bounds = SmallVector<SmallVector<Poly, 1>>;

int64_t rankOf(Value v) { return cast<RankedTensorType>(v.getType()).getRank(); }

/// The scalar a splat tile repeats: a loom.splat's operand, or a splat
/// constant (returned as its attribute).
std::optional<OpFoldResult> splatValue(Value tile) {
  if (auto splat = tile.getDefiningOp<SplatOp>())
    return OpFoldResult(splat.getSrc());
  SplatElementsAttr attr;
  if (matchPattern(tile, m_Constant(&attr)))
    return OpFoldResult(attr.getSplatValue<Attribute>());
  return std::nullopt;
}

std::optional<AffineTile> analyzeIndex(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || !type.getElementType().isSignlessInteger())
    return std::nullopt;
  Operation *def = v.getDefiningOp();
  if (!def)
    return std::nullopt;
  AffineTile zero{Poly{}, SmallVector<Poly>(type.getRank())};
  if (auto s = splatValue(v)) {
    if (auto value = dyn_cast<Value>(*s)) {
      zero.base = Poly::scalar(value);
      return zero;
    }
    if (auto attr = dyn_cast<IntegerAttr>(cast<Attribute>(*s))) {
      zero.base = Poly::constant(attr.getValue().getSExtValue());
      return zero;
    }
    return std::nullopt;
  }
  if (auto arange = dyn_cast<ArangeOp>(def)) {
    zero.base = Poly::constant(arange.getStartAttr().getInt());
    zero.strides[0] = Poly::constant(1);
    return zero;
  }
  if (auto expand = dyn_cast<ExpandDimsOp>(def)) {
    auto src = analyzeIndex(expand.getSrc());
    if (!src)
      return std::nullopt;
    src->strides.insert(src->strides.begin() + expand.getAxisAttr().getInt(), Poly{});
    return src;
  }
  if (auto broadcast = dyn_cast<BroadcastOp>(def)) {
    auto src = analyzeIndex(broadcast.getSrc());
    if (!src)
      return std::nullopt;
    // A repeated dimension's source coordinate is always 0.
    for (auto [d, size] : llvm::enumerate(broadcast.getSrc().getType().getShape()))
      if (size == 1)
        src->strides[d] = Poly{};
    return src;
  }
  if (auto convert = dyn_cast<ConvertLayoutOp>(def))
    return analyzeIndex(convert.getSrc());
  // Sign extension of an i32 index tile: its arithmetic is taken not to wrap.
  if (auto ext = dyn_cast<arith::ExtSIOp>(def))
    return analyzeIndex(ext.getIn());
  if (isa<arith::AddIOp, arith::SubIOp, arith::MulIOp>(def)) {
    auto lhs = analyzeIndex(def->getOperand(0)), rhs = analyzeIndex(def->getOperand(1));
    if (!lhs || !rhs)
      return std::nullopt;
    if (isa<arith::SubIOp>(def)) {
      rhs->base = rhs->base.negated();
      for (Poly &s : rhs->strides)
        s = s.negated();
    }
    if (!isa<arith::MulIOp>(def)) {
      lhs->base = lhs->base + rhs->base;
      for (auto [l, r] : llvm::zip(lhs->strides, rhs->strides))
        l = l + r;
      return lhs;
    }
    // A product stays affine when one side is the same for every element.
    if (!lhs->isScalar())
      std::swap(lhs, rhs);
    if (!lhs->isScalar())
      return std::nullopt;
    rhs->base = rhs->base * lhs->base;
    for (Poly &s : rhs->strides)
      s = s * lhs->base;
    return rhs;
  }
  return std::nullopt;
}

/// `lhs < rhs` for i32 index tiles (per element) as a bound on one
/// coordinate: lhs - rhs must be c + i_d (unit stride along one dimension).
std::optional<Bounds> boundFromLess(Value lhs, Value rhs, bool orEqual) {
  if (!cast<RankedTensorType>(lhs.getType()).getElementType().isInteger(32))
    return std::nullopt;
  auto l = analyzeIndex(lhs), r = analyzeIndex(rhs);
  if (!l || !r)
    return std::nullopt;
  Bounds bounds(rankOf(lhs));
  std::optional<int64_t> dim;
  for (auto [d, pair] : llvm::enumerate(llvm::zip(l->strides, r->strides))) {
    Poly diff = std::get<0>(pair) + std::get<1>(pair).negated();
    if (diff.isZero())
      continue;
    if (!diff.isOne() || dim)
      return std::nullopt;
    dim = d;
  }
  if (!dim)
    return std::nullopt; // the same for every element: not a bound on a coordinate
  // c + i_d < r.base  <=>  i_d < r.base - c  (+1 for <=)
  bounds[*dim].push_back(r->base + l->base.negated() + Poly::constant(orEqual ? 1 : 0));
  return bounds;
}

std::optional<Bounds> analyzeMask(Value mask) {
  int64_t rank = rankOf(mask);
  if (auto s = splatValue(mask)) {
    auto attr = dyn_cast<Attribute>(*s);
    if (auto flag = dyn_cast_or_null<BoolAttr>(attr); flag && flag.getValue())
      return Bounds(rank);
    if (auto flag = dyn_cast_or_null<IntegerAttr>(attr); flag && flag.getValue().isAllOnes())
      return Bounds(rank);
    return std::nullopt;
  }
  Operation *def = mask.getDefiningOp();
  if (!def)
    return std::nullopt;
  if (auto expand = dyn_cast<ExpandDimsOp>(def)) {
    auto src = analyzeMask(expand.getSrc());
    if (src)
      src->insert(src->begin() + expand.getAxisAttr().getInt(), SmallVector<Poly, 1>());
    return src;
  }
  if (auto broadcast = dyn_cast<BroadcastOp>(def)) {
    auto src = analyzeMask(broadcast.getSrc());
    if (!src)
      return std::nullopt;
    // A bound on a repeated dimension would apply to coordinate 0 only.
    for (auto [d, size] : llvm::enumerate(broadcast.getSrc().getType().getShape()))
      if (size == 1 && broadcast.getType().getDimSize(d) != 1 && !(*src)[d].empty())
        return std::nullopt;
    return src;
  }
  if (auto convert = dyn_cast<ConvertLayoutOp>(def))
    return analyzeMask(convert.getSrc());
  if (auto both = dyn_cast<arith::AndIOp>(def)) {
    auto lhs = analyzeMask(both.getLhs()), rhs = analyzeMask(both.getRhs());
    if (!lhs || !rhs)
      return std::nullopt;
    for (auto [l, r] : llvm::zip(*lhs, *rhs))
      l.append(r.begin(), r.end());
    return lhs;
  }
  if (auto cmp = dyn_cast<arith::CmpIOp>(def)) {
    switch (cmp.getPredicate()) {
    case arith::CmpIPredicate::slt: return boundFromLess(cmp.getLhs(), cmp.getRhs(), false);
    case arith::CmpIPredicate::sle: return boundFromLess(cmp.getLhs(), cmp.getRhs(), true);
    case arith::CmpIPredicate::sgt: return boundFromLess(cmp.getRhs(), cmp.getLhs(), false);
    case arith::CmpIPredicate::sge: return boundFromLess(cmp.getRhs(), cmp.getLhs(), true);
    default: return std::nullopt;
    }
  }
  return std::nullopt;
}

/// Builds polynomials as scalar arith ops of one integer type.
class PolyBuilder {
public:
  PolyBuilder(OpBuilder &b, Location loc, IntegerType type) : b(b), loc(loc), type(type) {}

  /// Whether every factor can be used as `type` (i32 factors widen to i64;
  /// i64 factors are never narrowed).
  bool fits(const Poly &p) const {
    for (const Term &t : p.terms)
      for (Value f : t.factors)
        if (cast<IntegerType>(f.getType()).getWidth() > type.getWidth())
          return false;
    return true;
  }

  Value build(const Poly &p) {
    Value sum;
    for (const Term &t : p.terms) {
      Value term;
      for (Value f : t.factors) {
        if (f.getType() != type)
          f = arith::ExtSIOp::create(b, loc, type, f);
        term = term ? arith::MulIOp::create(b, loc, term, f).getResult() : f;
      }
      if (!term)
        term = constant(t.coeff);
      else if (t.coeff != 1)
        term = arith::MulIOp::create(b, loc, term, constant(t.coeff));
      sum = sum ? arith::AddIOp::create(b, loc, sum, term).getResult() : term;
    }
    return sum ? sum : constant(0);
  }

  Value constant(int64_t c) {
    return arith::ConstantOp::create(b, loc, IntegerAttr::get(type, c));
  }

  /// The smallest of the bounds, or the dimension's size when there are none
  /// (every coordinate passes).
  Value bound(ArrayRef<Poly> bounds, int64_t size) {
    Value result;
    for (const Poly &p : bounds) {
      Value v = build(p);
      result = result ? arith::MinSIOp::create(b, loc, result, v).getResult() : v;
    }
    return result ? result : constant(size);
  }

private:
  OpBuilder &b;
  Location loc;
  IntegerType type;
};

/// What a recognized access becomes: base, strides and bounds per dimension.
struct BlockAccess {
  AffineTile offsets;
  Bounds bounds;
};

std::optional<BlockAccess> analyzeAccess(Value offsets, Value mask) {
  if (rankOf(offsets) == 0)
    return std::nullopt; // a single element: nothing to gain
  auto affine = analyzeIndex(offsets);
  if (!affine)
    return std::nullopt;
  // An i32 offset tile wraps at 32 bits; the block ops compute in i64, so
  // require the i64 form, whose arithmetic is taken not to overflow.
  if (!cast<RankedTensorType>(offsets.getType()).getElementType().isInteger(64))
    return std::nullopt;
  BlockAccess access{*affine, Bounds(rankOf(offsets))};
  if (mask) {
    auto bounds = analyzeMask(mask);
    if (!bounds)
      return std::nullopt;
    access.bounds = *bounds;
  }
  return access;
}

/// The scalars of `access`, built before `op`; null if some polynomial
/// cannot be built in its type.
std::optional<std::tuple<Value, SmallVector<Value>, SmallVector<Value>>>
buildAccess(OpBuilder &b, Operation *op, const BlockAccess &access, ArrayRef<int64_t> shape) {
  PolyBuilder i64(b, op->getLoc(), b.getI64Type()), i32(b, op->getLoc(), b.getI32Type());
  if (!i64.fits(access.offsets.base) || !llvm::all_of(access.offsets.strides, [&](const Poly &p) {
        return i64.fits(p);
      }))
    return std::nullopt;
  for (const auto &dim : access.bounds)
    if (!llvm::all_of(dim, [&](const Poly &p) { return i32.fits(p); }))
      return std::nullopt;
  b.setInsertionPoint(op);
  Value base = i64.build(access.offsets.base);
  SmallVector<Value> strides, bounds;
  for (const Poly &s : access.offsets.strides)
    strides.push_back(i64.build(s));
  for (auto [dim, size] : llvm::zip(access.bounds, shape))
    bounds.push_back(i32.bound(dim, size));
  return std::make_tuple(base, strides, bounds);
}

/// `other` as a scalar: its splat value, or zero without one.
Value otherScalar(OpBuilder &b, LoadOp load) {
  Type elem = load.getType().getElementType();
  if (!load.getOther())
    return arith::ConstantOp::create(b, load.getLoc(), b.getZeroAttr(elem));
  auto s = splatValue(load.getOther());
  if (!s)
    return {};
  if (auto v = dyn_cast<Value>(*s))
    return v;
  return arith::ConstantOp::create(b, load.getLoc(), cast<TypedAttr>(cast<Attribute>(*s)));
}

/// Whether `op` (with what it nests) may write memory. Ops that declare no
/// effects and do not nest ops with theirs may write anything.
bool mayWrite(Operation *op) {
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  if (effects && effects.hasEffect<MemoryEffects::Write>())
    return true;
  if (op->hasTrait<OpTrait::HasRecursiveMemoryEffects>()) {
    for (Region &region : op->getRegions())
      for (Operation &nested : region.getOps())
        if (mayWrite(&nested))
          return true;
    return false;
  }
  return !effects;
}

/// Whether reading `load` at `user` instead sees the same memory: no op that
/// runs between them may write. If `user` is nested (in a loop), all of the
/// ancestor op in the load's block counts, as earlier iterations run before.
bool noWriteBetween(Operation *load, Operation *user) {
  Operation *ancestor = load->getBlock()->findAncestorOpInBlock(*user);
  if (!ancestor || !load->isBeforeInBlock(ancestor))
    return false;
  for (Operation *op = load->getNextNode(); op != ancestor; op = op->getNextNode())
    if (mayWrite(op))
      return false;
  return ancestor == user || !mayWrite(ancestor);
}

/// A block load read only by a dot's operand staging is deferred to it (see
/// the op's description), where no write can come between. A deferred
/// matrix whose columns are contiguous (a transposed operand, such as K^T)
/// is marked column_major, so that the staging copies whole columns; one
/// with unit strides in both dimensions stays row-major (rows contiguous).
void deferIntoDot(BlockLoadOp load) {
  Value result = load.getResult();
  if (!result.hasOneUse())
    return;
  OpOperand &use = *result.getUses().begin();
  if (!isa<DotOp>(use.getOwner()) || use.getOperandNumber() >= 2 ||
      !noWriteBetween(load, use.getOwner()))
    return;
  load.setDeferred(true);
  OperandRange strides = load.getStrides();
  if (strides.size() == 2 && isConstantIntValue(strides[0], 1) &&
      !isConstantIntValue(strides[1], 1))
    load.setColumnMajor(true);
}

struct StructureMemoryPass : mlir::loom::impl::LoomStructureMemoryBase<StructureMemoryPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    DenseMap<Value, unsigned> order;
    func.walk<WalkOrder::PreOrder>([&](Operation *op) {
      for (Region &region : op->getRegions())
        for (Block &block : region)
          for (BlockArgument arg : block.getArguments())
            order.try_emplace(arg, order.size());
      for (Value result : op->getResults())
        order.try_emplace(result, order.size());
    });
    valueOrder = &order;
    llvm::scope_exit reset([] { valueOrder = nullptr; });
    OpBuilder b(func.getContext());
    SmallVector<Operation *> accesses;
    func.walk([&](Operation *op) {
      if (isa<LoadOp, StoreOp>(op))
        accesses.push_back(op);
    });
    bool changed = false;
    for (Operation *op : accesses) {
      if (auto load = dyn_cast<LoadOp>(op)) {
        if (load.getOther() && !splatValue(load.getOther()))
          continue;
        auto access = analyzeAccess(load.getOffsets(), load.getMask());
        if (!access)
          continue;
        auto scalars = buildAccess(b, load, *access, load.getType().getShape());
        if (!scalars)
          continue;
        auto [base, strides, bounds] = *scalars;
        Value other = otherScalar(b, load);
        auto block = BlockLoadOp::create(b, load.getLoc(), load.getType(), load.getPtr(), base,
                                         strides, bounds, other);
        load.replaceAllUsesWith(block.getResult());
        load.erase();
        deferIntoDot(block);
        changed = true;
      } else {
        auto store = cast<StoreOp>(op);
        auto access = analyzeAccess(store.getOffsets(), store.getMask());
        if (!access)
          continue;
        auto scalars = buildAccess(b, store, *access, store.getValue().getType().getShape());
        if (!scalars)
          continue;
        auto [base, strides, bounds] = *scalars;
        BlockStoreOp::create(b, store.getLoc(), store.getValue(), store.getPtr(), base, strides,
                             bounds);
        store.erase();
        changed = true;
      }
    }
    if (!changed)
      return;
    // The offset and mask tiles the accesses no longer read (operands
    // before users, so one backward sweep per nesting level suffices).
    bool erased = true;
    while (erased) {
      erased = false;
      func.walk<WalkOrder::PostOrder, mlir::ReverseIterator>([&](Operation *op) {
        if (op != func && isOpTriviallyDead(op)) {
          op->erase();
          erased = true;
        }
      });
    }
  }
};
} // namespace
