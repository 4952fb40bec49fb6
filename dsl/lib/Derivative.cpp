//===- Derivative.cpp - forward-mode differentiation of DSL expressions ---===//
//
// Used to differentiate attention score modifiers: f is traced once, then
// each op it built gets a tangent op, so the derivative is plain IR that the
// backward kernel inlines (no tape, no second pass over memory).
//
//===----------------------------------------------------------------------===//
#include "Trace.h"

#include "loom/Dialect/Loom/IR/Loom.h"

#include "llvm/ADT/DenseMap.h"

#include <fmt/format.h>

namespace loom::dsl {
using namespace detail;

Value derivative(const std::function<Value(Value)> &f, Value x, Value *fx, SourceLoc loc) {
  return derivative(f, x, fx, {}, nullptr, loc);
}

Value derivative(const std::function<Value(Value)> &f, Value x, Value *fx,
                 const std::vector<Value> &pointers, std::vector<LoadDerivative> *loads,
                 SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("derivative", loc);
  if (x.isNull() || x.isLiteral() || x.isPointer() || !isFloat(x.dtype()))
    fail(loc, "derivative", fmt::format("expects a float tile or scalar, got {}", describe(x)));
  for (const Value &p : pointers)
    if (!p.isPointer() || !isFloat(p.dtype()))
      fail(loc, "derivative",
           fmt::format("differentiates loads from float pointers, got {}", describe(p)));
  if (loads)
    loads->clear();
  mlir::Block *block = s.builder.getInsertionBlock();
  mlir::Operation *before = block->empty() ? nullptr : &block->back();
  Value y = f(x);
  if (fx)
    *fx = y;
  if (y.isLiteral() || y.isNull())
    return zeros(x.isTile() ? x.shape() : Shape{1}, x.dtype(), loc);
  mlir::OpBuilder &b = s.builder;
  mlir::Location l = toMlirLoc(s.ctx, loc);
  // tangent[v] = dv/dx; absent means the value does not depend on x.
  llvm::DenseMap<mlir::Value, mlir::Value> tangent;
  auto one = [&](mlir::Type type) -> mlir::Value {
    mlir::Type elem = mlir::getElementTypeOrSelf(type);
    mlir::Value c = mlir::arith::ConstantOp::create(b, l, b.getFloatAttr(elem, 1.0));
    if (auto t = mlir::dyn_cast<mlir::RankedTensorType>(type))
      return mlir::loom::SplatOp::create(b, l, t, c);
    return c;
  };
  auto get = [&](mlir::Value v) -> mlir::Value {
    auto it = tangent.find(v);
    return it == tangent.end() ? mlir::Value() : it->second;
  };
  auto zeroLike = [&](mlir::Value v) -> mlir::Value {
    mlir::Type elem = mlir::getElementTypeOrSelf(v.getType());
    mlir::Value c = mlir::arith::ConstantOp::create(b, l, b.getFloatAttr(elem, 0.0));
    if (auto t = mlir::dyn_cast<mlir::RankedTensorType>(v.getType()))
      return mlir::loom::SplatOp::create(b, l, t, c);
    return c;
  };
  auto orZero = [&](mlir::Value t, mlir::Value like) { return t ? t : zeroLike(like); };

  // The ops f built, in order (snapshot taken before tracing f).
  llvm::SmallVector<mlir::Operation *> ops;
  for (mlir::Operation &op : before ? llvm::make_range(std::next(before->getIterator()), block->end())
                                    : llvm::make_range(block->begin(), block->end()))
    ops.push_back(&op);
  b.setInsertionPointToEnd(block);
  using namespace mlir;
  auto constLike = [&](mlir::Value v, double c) -> mlir::Value {
    mlir::Type elem = getElementTypeOrSelf(v.getType());
    mlir::Value k = arith::ConstantOp::create(b, l, b.getFloatAttr(elem, c));
    if (auto t = dyn_cast<RankedTensorType>(v.getType()))
      return mlir::loom::SplatOp::create(b, l, t, k);
    return k;
  };
  auto mul = [&](mlir::Value p, mlir::Value q) -> mlir::Value { return arith::MulFOp::create(b, l, p, q); };
  // d y / d seed by one forward-mode pass over f's ops (seed: x or a value
  // f loaded), as IR appended after them.
  auto differentiate = [&](mlir::Value seed) -> mlir::Value {
    tangent.clear();
    tangent[seed] = one(seed.getType());
    for (Operation *op : ops) {
      if (op->getNumResults() != 1)
        continue;
      bool depends = llvm::any_of(op->getOperands(), [&](mlir::Value v) { return bool(get(v)); });
      if (!depends)
        continue;
      mlir::Value r = op->getResult(0);
      if (!isa<FloatType>(getElementTypeOrSelf(r.getType())))
        continue; // comparisons: no tangent (their i1 result only selects)
      auto ta = [&](unsigned i) { return orZero(get(op->getOperand(i)), op->getOperand(i)); };
      mlir::Value t;
      if (isa<arith::AddFOp>(op))
        t = arith::AddFOp::create(b, l, ta(0), ta(1));
      else if (isa<arith::SubFOp>(op))
        t = arith::SubFOp::create(b, l, ta(0), ta(1));
      else if (isa<arith::MulFOp>(op))
        t = arith::AddFOp::create(b, l, mul(ta(0), op->getOperand(1)), mul(op->getOperand(0), ta(1)));
      else if (isa<arith::DivFOp>(op)) {
        mlir::Value num = arith::SubFOp::create(b, l, mul(ta(0), op->getOperand(1)),
                                                mul(op->getOperand(0), ta(1)));
        t = arith::DivFOp::create(b, l, num, mul(op->getOperand(1), op->getOperand(1)));
      } else if (isa<arith::NegFOp>(op))
        t = arith::NegFOp::create(b, l, ta(0));
      else if (isa<arith::MaximumFOp, arith::MinimumFOp>(op)) {
        auto pred = isa<arith::MaximumFOp>(op) ? arith::CmpFPredicate::OGE : arith::CmpFPredicate::OLE;
        mlir::Value first = arith::CmpFOp::create(b, l, pred, op->getOperand(0), op->getOperand(1));
        t = arith::SelectOp::create(b, l, first, ta(0), ta(1));
      } else if (auto sel = dyn_cast<arith::SelectOp>(op))
        t = arith::SelectOp::create(b, l, sel.getCondition(), ta(1), ta(2));
      else if (isa<arith::ExtFOp>(op))
        t = arith::ExtFOp::create(b, l, r.getType(), ta(0));
      else if (isa<arith::TruncFOp>(op))
        t = arith::TruncFOp::create(b, l, r.getType(), ta(0));
      else if (isa<math::ExpOp>(op))
        t = mul(r, ta(0));
      else if (isa<math::Exp2Op>(op))
        t = mul(mul(r, constLike(r, 0.69314718055994530942)), ta(0));
      else if (isa<math::LogOp>(op))
        t = arith::DivFOp::create(b, l, ta(0), op->getOperand(0));
      else if (isa<math::Log2Op>(op))
        t = arith::DivFOp::create(b, l, ta(0),
                                  mul(op->getOperand(0), constLike(r, 0.69314718055994530942)));
      else if (isa<math::TanhOp>(op))
        t = mul(arith::SubFOp::create(b, l, constLike(r, 1.0), mul(r, r)), ta(0));
      else if (isa<math::SqrtOp>(op))
        t = arith::DivFOp::create(b, l, ta(0), mul(constLike(r, 2.0), r));
      else if (isa<math::AbsFOp>(op)) {
        mlir::Value nonneg = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGE, op->getOperand(0),
                                                   constLike(op->getOperand(0), 0.0));
        t = arith::SelectOp::create(b, l, nonneg, ta(0), arith::NegFOp::create(b, l, ta(0)));
      } else if (isa<mlir::loom::BroadcastOp>(op))
        t = mlir::loom::BroadcastOp::create(b, l, r.getType(), ta(0));
      else if (auto e = dyn_cast<mlir::loom::ExpandDimsOp>(op))
        t = mlir::loom::ExpandDimsOp::create(b, l, r.getType(), ta(0), e.getAxisAttr());
      else if (isa<mlir::loom::TransOp>(op))
        t = mlir::loom::TransOp::create(b, l, r.getType(), ta(0));
      else if (isa<mlir::loom::SplatOp>(op))
        t = mlir::loom::SplatOp::create(b, l, cast<RankedTensorType>(r.getType()), ta(0));
      else
        fail(loc, "derivative",
             fmt::format("cannot differentiate '{}', which depends on the input",
                         op->getName().getStringRef().str()));
      tangent[r] = t;
    }
    return get(y.mlir()) ? get(y.mlir()) : zeroLike(y.mlir());
  };
  mlir::Value dx = differentiate(x.mlir());
  if (loads) {
    Shape shape = y.isTile() ? y.shape() : Shape{1};
    for (Operation *op : ops) {
      auto load = dyn_cast<mlir::loom::LoadOp>(op);
      if (!load || llvm::none_of(pointers, [&](const Value &p) { return p.mlir() == load.getPtr(); }))
        continue;
      LoadDerivative d;
      d.pointer = Value(load.getPtr());
      d.tangent = broadcast_to(Value(differentiate(load.getResult())), shape, loc);
      d.offsets = broadcast_to(Value(load.getOffsets()), shape, loc);
      if (load.getMask())
        d.mask = broadcast_to(Value(load.getMask()), shape, loc);
      loads->push_back(d);
    }
  }
  return Value(dx);
}

} // namespace loom::dsl
