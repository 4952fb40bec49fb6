//===- Ops.cpp - DSL operations -------------------------------------------===//
#include "Trace.h"

#include "loom/Dialect/Loom/IR/Loom.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <fmt/format.h>

namespace loom::dsl {
using namespace detail;
namespace detail {
mlir::Type withShape(mlir::MLIRContext &ctx, const Shape &shape, DType dtype);
Value broadcastValue(KernelBuilder::State &s, Value v, const Shape &shape,
                     std::string_view op, SourceLoc loc);
} // namespace detail

namespace {
Value gridQuery(bool ids, int axis, SourceLoc loc) {
  const char *op = ids ? "program_id" : "num_programs";
  KernelBuilder::State &s = currentTrace(op, loc);
  if (axis < 0 || axis > 2)
    fail(loc, op, fmt::format("axis {} out of range; the grid has axes 0, 1 and 2", axis));
  mlir::Location l = toMlirLoc(s.ctx, loc);
  auto axisAttr = s.builder.getI32IntegerAttr(axis);
  if (ids)
    return Value(mlir::loom::ProgramIdOp::create(s.builder, l, s.builder.getI32Type(), axisAttr));
  return Value(mlir::loom::NumProgramsOp::create(s.builder, l, s.builder.getI32Type(), axisAttr));
}

Value requireTile(const Value &x, std::string_view op, SourceLoc loc) {
  if (x.isNull() || x.isLiteral() || !x.isTile())
    fail(loc, op, fmt::format("expects a tile, got {}", describe(x)));
  return x;
}

void checkShape(const Shape &shape, std::string_view op, SourceLoc loc) {
  if (shape.empty())
    fail(loc, op, "shape must have at least one dimension");
  for (int64_t d : shape)
    if (d <= 0)
      fail(loc, op, fmt::format("shape {} has a non-positive dimension", shapeStr(shape)));
}

Value reduce(mlir::loom::ReduceKind kind, const char *op, Value x, int axis, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace(op, loc);
  requireTile(x, op, loc);
  Shape shape = x.shape();
  if (axis < 0 || axis >= static_cast<int>(shape.size()))
    fail(loc, op, fmt::format("axis {} out of range for {}", axis, describe(x)));
  if (x.dtype() == DType::I1)
    fail(loc, op, "cannot reduce an i1 mask (cast with .to() first)");
  shape.erase(shape.begin() + axis);
  auto type = mlir::RankedTensorType::get(shape, toMlirType(s.ctx, x.dtype()));
  mlir::Location l = toMlirLoc(s.ctx, loc);
  mlir::Value r = mlir::loom::ReduceOp::create(s.builder, l, type, kind, x.mlir(), axis);
  // Reducing a 1-D tile gives a scalar, as in Triton, so it combines freely
  // with other scalars (program ids, loop-carried values).
  if (shape.empty())
    r = mlir::tensor::ExtractOp::create(s.builder, l, r, mlir::ValueRange{});
  return Value(r);
}

template <typename OpTy>
Value unaryFloat(const char *op, Value x, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace(op, loc);
  if (x.isLiteral())
    x = materialize(s, x, DType::F32, op, loc);
  if (x.isPointer() || !isFloat(x.dtype()))
    fail(loc, op, fmt::format("expects a float operand, got {}", describe(x)));
  return Value(OpTy::create(s.builder, toMlirLoc(s.ctx, loc), x.mlir()));
}
/// Checks the pointer and offsets of a load or store; returns the access shape.
Shape checkAccess(const Value &ptr, const Value &offsets, const char *op, SourceLoc loc) {
  if (!ptr.isPointer())
    fail(loc, op, fmt::format("first operand must be a pointer argument, got {}", describe(ptr)));
  if (!offsets.isTile() || (offsets.dtype() != DType::I32 && offsets.dtype() != DType::I64))
    fail(loc, op, fmt::format("offsets must be an i32 or i64 tile, got {}", describe(offsets)));
  return offsets.shape();
}

/// The mask of a load or store broadcast to `shape`; null when absent.
mlir::Value accessMask(KernelBuilder::State &s, const Value &mask, const Shape &shape,
                       const char *op, SourceLoc loc) {
  if (mask.isNull())
    return {};
  if (mask.isLiteral() || mask.isPointer() || mask.dtype() != DType::I1)
    fail(loc, op, fmt::format("mask must be an i1 tile or scalar, got {}", describe(mask)));
  return broadcastValue(s, mask, shape, op, loc).mlir();
}
} // namespace

Value program_id(int axis, SourceLoc loc) { return gridQuery(true, axis, loc); }
Value num_programs(int axis, SourceLoc loc) { return gridQuery(false, axis, loc); }

Value arange(int64_t start, int64_t end, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("arange", loc);
  if (end <= start)
    fail(loc, "arange", fmt::format("end ({}) must be greater than start ({})", end, start));
  if (start < INT32_MIN || end > INT32_MAX)
    fail(loc, "arange", fmt::format("range [{}, {}) does not fit in i32", start, end));
  auto type = mlir::RankedTensorType::get({end - start}, s.builder.getI32Type());
  return Value(mlir::loom::ArangeOp::create(s.builder, toMlirLoc(s.ctx, loc), type,
                                            static_cast<int32_t>(start),
                                            static_cast<int32_t>(end)));
}

Value full(const Shape &shape, Value value, DType dtype, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("full", loc);
  checkShape(shape, "full", loc);
  if (!value.isLiteral() && !value.isScalar())
    fail(loc, "full", fmt::format("fill value must be a scalar, got {}", describe(value)));
  Value scalar = value.isLiteral() ? materialize(s, value, dtype, "full", loc)
                                   : value.to(dtype, loc);
  return broadcastValue(s, scalar, shape, "full", loc);
}

Value zeros(const Shape &shape, DType dtype, SourceLoc loc) {
  return full(shape, 0, dtype, loc);
}

Value expand_dims(Value x, int axis, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("expand_dims", loc);
  if (x.isLiteral() || x.isPointer() || x.isNull())
    fail(loc, "expand_dims", fmt::format("expects a tile or scalar, got {}", describe(x)));
  Shape shape = x.shape();
  if (x.isScalar()) { // a scalar becomes a 1-element tile
    if (axis != 0)
      fail(loc, "expand_dims", fmt::format("axis {} out of range for a scalar", axis));
    return broadcastValue(s, x, {1}, "expand_dims", loc);
  }
  if (axis < 0 || axis > static_cast<int>(shape.size()))
    fail(loc, "expand_dims", fmt::format("axis {} out of range for {}", axis, describe(x)));
  shape.insert(shape.begin() + axis, 1);
  auto type = mlir::RankedTensorType::get(shape, toMlirType(s.ctx, x.dtype()));
  return Value(mlir::loom::ExpandDimsOp::create(s.builder, toMlirLoc(s.ctx, loc), type,
                                                x.mlir(), s.builder.getI32IntegerAttr(axis)));
}

Value trans(Value x, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("trans", loc);
  if (!x.isTile() || x.shape().size() != 2)
    fail(loc, "trans", fmt::format("expects a 2-D tile, got {}", describe(x)));
  Shape shape = {x.shape()[1], x.shape()[0]};
  auto type = mlir::RankedTensorType::get(shape, toMlirType(s.ctx, x.dtype()));
  return Value(mlir::loom::TransOp::create(s.builder, toMlirLoc(s.ctx, loc), type, x.mlir()));
}

Value broadcast_to(Value x, const Shape &shape, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("broadcast_to", loc);
  checkShape(shape, "broadcast_to", loc);
  if (x.isLiteral())
    x = materialize(s, x, x.isLiteralInt() ? DType::I32 : DType::F32, "broadcast_to", loc);
  if (x.isPointer())
    fail(loc, "broadcast_to", fmt::format("cannot broadcast {}", describe(x)));
  if (x.shape().size() > shape.size())
    fail(loc, "broadcast_to", fmt::format("cannot broadcast {} to {}", describe(x), shapeStr(shape)));
  return broadcastValue(s, x, shape, "broadcast_to", loc);
}

Value load(Value ptr, Value offsets, Value mask, Value other, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("load", loc);
  Shape shape = checkAccess(ptr, offsets, "load", loc);
  mlir::Value maskV = accessMask(s, mask, shape, "load", loc), otherV;
  if (!other.isNull()) {
    if (mask.isNull())
      fail(loc, "load", "'other' given without a mask");
    if (!other.isLiteral() && other.shape().size() > shape.size())
      fail(loc, "load", fmt::format("cannot broadcast 'other' ({}) to offsets shape {}",
                                    describe(other), shapeStr(shape)));
    otherV = broadcastValue(s, materialize(s, other, ptr.dtype(), "load", loc), shape,
                            "load", loc).mlir();
  }
  auto type = mlir::RankedTensorType::get(shape, toMlirType(s.ctx, ptr.dtype()));
  return Value(mlir::loom::LoadOp::create(s.builder, toMlirLoc(s.ctx, loc), type,
                                          ptr.mlir(), offsets.mlir(), maskV, otherV));
}

void store(Value ptr, Value offsets, Value value, Value mask, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("store", loc);
  Shape shape = checkAccess(ptr, offsets, "store", loc);
  if (!value.isLiteral() && !value.isNull() && !value.isPointer() &&
      value.dtype() != ptr.dtype())
    fail(loc, "store", fmt::format("value is a {} but the pointer is to {} (cast with .to())",
                                   describe(value), dtypeName(ptr.dtype())));
  if (!value.isLiteral() && value.shape().size() > shape.size())
    fail(loc, "store", fmt::format("cannot broadcast value ({}) to offsets shape {}",
                                   describe(value), shapeStr(shape)));
  Value v = broadcastValue(s, materialize(s, value, ptr.dtype(), "store", loc), shape,
                           "store", loc);
  mlir::Value maskV = accessMask(s, mask, shape, "store", loc);
  mlir::loom::StoreOp::create(s.builder, toMlirLoc(s.ctx, loc), v.mlir(), ptr.mlir(),
                              offsets.mlir(), maskV);
}

Value dot(Value a, Value b, Value acc, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("dot", loc);
  requireTile(a, "dot", loc);
  requireTile(b, "dot", loc);
  Shape as = a.shape(), bs = b.shape();
  if (as.size() != 2 || bs.size() != 2)
    fail(loc, "dot", fmt::format("operands must be 2-D tiles, got {} and {}", describe(a), describe(b)));
  if (a.dtype() != b.dtype() || !isFloat(a.dtype()))
    fail(loc, "dot", fmt::format("operands must be f16, bf16 or f32 of one dtype, got {} and {}",
                                 describe(a), describe(b)));
  if (as[1] != bs[0])
    fail(loc, "dot", fmt::format("inner dimensions differ: lhs {}, rhs {}", shapeStr(as), shapeStr(bs)));
  Shape out{as[0], bs[1]};
  if (acc.isNull())
    acc = zeros(out, DType::F32, loc);
  else if (!acc.isTile() || acc.dtype() != DType::F32 || acc.shape() != out)
    fail(loc, "dot", fmt::format("accumulator must be an f32 tile of shape {}, got {}",
                                 shapeStr(out), describe(acc)));
  return Value(mlir::loom::DotOp::create(s.builder, toMlirLoc(s.ctx, loc), acc.mlir().getType(),
                                         a.mlir(), b.mlir(), acc.mlir()));
}

Value max(Value x, int axis, SourceLoc loc) { return reduce(mlir::loom::ReduceKind::Max, "max", x, axis, loc); }
Value min(Value x, int axis, SourceLoc loc) { return reduce(mlir::loom::ReduceKind::Min, "min", x, axis, loc); }
Value sum(Value x, int axis, SourceLoc loc) { return reduce(mlir::loom::ReduceKind::Sum, "sum", x, axis, loc); }

Value where(Value cond, Value a, Value b, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("where", loc);
  if (cond.isNull() || cond.isLiteral() || cond.isPointer() || cond.dtype() != DType::I1)
    fail(loc, "where", fmt::format("condition must be an i1 tile or scalar, got {}", describe(cond)));
  auto ab = unify(s, {a, b}, "where", loc);
  // Broadcast the condition and the branches to one shape.
  Shape shape = ab[0].shape();
  Shape cshape = cond.shape();
  Shape out(std::max(shape.size(), cshape.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t x = i < out.size() - shape.size() ? 1 : shape[i - (out.size() - shape.size())];
    int64_t y = i < out.size() - cshape.size() ? 1 : cshape[i - (out.size() - cshape.size())];
    if (x != y && x != 1 && y != 1)
      fail(loc, "where", fmt::format("cannot broadcast shapes {} and {}", shapeStr(cshape), shapeStr(shape)));
    out[i] = x == 1 ? y : x;
  }
  Value c = broadcastValue(s, cond, out, "where", loc);
  Value x = broadcastValue(s, ab[0], out, "where", loc);
  Value y = broadcastValue(s, ab[1], out, "where", loc);
  return Value(mlir::arith::SelectOp::create(s.builder, toMlirLoc(s.ctx, loc), c.mlir(),
                                             x.mlir(), y.mlir()));
}

Value exp2(Value x, SourceLoc loc) { return unaryFloat<mlir::math::Exp2Op>("exp2", x, loc); }
Value log2(Value x, SourceLoc loc) { return unaryFloat<mlir::math::Log2Op>("log2", x, loc); }
Value exp(Value x, SourceLoc loc) { return unaryFloat<mlir::math::ExpOp>("exp", x, loc); }
Value log(Value x, SourceLoc loc) { return unaryFloat<mlir::math::LogOp>("log", x, loc); }
Value tanh(Value x, SourceLoc loc) { return unaryFloat<mlir::math::TanhOp>("tanh", x, loc); }
Value sqrt(Value x, SourceLoc loc) { return unaryFloat<mlir::math::SqrtOp>("sqrt", x, loc); }

Value abs(Value x, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("abs", loc);
  if (x.isLiteral() || x.isPointer() || x.isNull() || x.dtype() == DType::I1)
    fail(loc, "abs", fmt::format("expects a numeric tile or scalar, got {}", describe(x)));
  if (isFloat(x.dtype()))
    return Value(mlir::math::AbsFOp::create(s.builder, toMlirLoc(s.ctx, loc), x.mlir()));
  return Value(mlir::math::AbsIOp::create(s.builder, toMlirLoc(s.ctx, loc), x.mlir()));
}

std::vector<Value> for_range(Value lo, Value hi, Value step, std::vector<Value> init,
                             const LoopBody &body, SourceLoc loc) {
  KernelBuilder::State &s = currentTrace("for_range", loc);
  auto bound = [&](Value v, const char *what) {
    if (v.isLiteral() ? !v.isLiteralInt() : (!v.isScalar() || v.dtype() != DType::I32))
      fail(loc, "for_range", fmt::format("{} must be an i32 scalar or integer literal, got {}",
                                         what, describe(v)));
    return materialize(s, v, DType::I32, "for_range", loc).mlir();
  };
  if (step.isLiteralInt() && step.literal() <= 0)
    fail(loc, "for_range", fmt::format("step must be positive, got {}", step.literal()));
  mlir::Value lb = bound(lo, "lower bound"), ub = bound(hi, "upper bound"),
              st = bound(step, "step");
  llvm::SmallVector<mlir::Value> inits;
  for (size_t i = 0; i < init.size(); ++i) {
    Value v = init[i];
    if (v.isLiteral())
      v = materialize(s, v, v.isLiteralInt() ? DType::I32 : DType::F32, "for_range", loc);
    if (v.isNull() || v.isPointer())
      fail(loc, "for_range", fmt::format("carried value {} is {}", i, describe(v)));
    inits.push_back(v.mlir());
  }
  mlir::Location l = toMlirLoc(s.ctx, loc);
  auto forOp = mlir::scf::ForOp::create(s.builder, l, lb, ub, st, inits);
  mlir::OpBuilder::InsertionGuard guard(s.builder);
  mlir::Block *bodyBlock = forOp.getBody();
  if (!bodyBlock->empty() && bodyBlock->mightHaveTerminator())
    bodyBlock->getTerminator()->erase();
  s.builder.setInsertionPointToEnd(bodyBlock);
  std::vector<Value> carried;
  for (mlir::Value arg : forOp.getRegionIterArgs())
    carried.push_back(Value(arg));
  std::vector<Value> next = body(Value(forOp.getInductionVar()), carried);
  if (next.size() != carried.size())
    fail(loc, "for_range", fmt::format("body returned {} values but the loop carries {}",
                                       next.size(), carried.size()));
  llvm::SmallVector<mlir::Value> yields;
  for (size_t i = 0; i < next.size(); ++i) {
    Value v = next[i];
    if (v.isLiteral())
      v = materialize(s, v, carried[i].dtype(), "for_range", loc);
    if (v.isNull() || v.mlir().getType() != carried[i].mlir().getType())
      fail(loc, "for_range", fmt::format("carried value {} changes from {} to {}", i,
                                         describe(carried[i]), describe(v)));
    yields.push_back(v.mlir());
  }
  mlir::scf::YieldOp::create(s.builder, l, yields);
  std::vector<Value> results;
  for (mlir::Value r : forOp.getResults())
    results.push_back(Value(r));
  return results;
}

} // namespace loom::dsl
