//===- Value.cpp - DSL values, broadcasting and elementwise operators -----===//
#include "Trace.h"

#include "loom/Dialect/Loom/IR/Loom.h"

#include <fmt/format.h>

namespace loom::dsl {
using namespace detail;

bool Value::isTile() const { return value_ && mlir::isa<mlir::RankedTensorType>(value_.getType()); }
bool Value::isPointer() const { return value_ && mlir::isa<mlir::loom::PtrType>(value_.getType()); }
bool Value::isScalar() const { return value_ && value_.getType().isIntOrFloat(); }

DType Value::dtype() const {
  if (!value_)
    throw Error(ErrorCode::Internal, "dtype() of a literal or empty value");
  mlir::Type t = value_.getType();
  if (auto p = mlir::dyn_cast<mlir::loom::PtrType>(t))
    t = p.getElementType();
  else if (auto s = mlir::dyn_cast<mlir::ShapedType>(t))
    t = s.getElementType();
  return *fromMlirType(t);
}

Shape Value::shape() const {
  if (auto s = value_ ? mlir::dyn_cast<mlir::RankedTensorType>(value_.getType()) : nullptr)
    return Shape(s.getShape().begin(), s.getShape().end());
  return {};
}

namespace detail {
mlir::Type withShape(mlir::MLIRContext &ctx, const Shape &shape, DType dtype) {
  mlir::Type elem = toMlirType(ctx, dtype);
  if (shape.empty())
    return elem;
  return mlir::RankedTensorType::get(shape, elem);
}

Value materialize(KernelBuilder::State &s, const Value &v, DType dtype,
                  std::string_view op, SourceLoc loc) {
  if (v.isNull())
    fail(loc, op, "operand has no value");
  if (!v.isLiteral()) {
    if (v.isPointer())
      fail(loc, op, fmt::format("{} cannot be used in arithmetic", describe(v)));
    if (v.dtype() != dtype)
      fail(loc, op, fmt::format("dtype mismatch: {} where {} is expected (cast with .to())",
                                describe(v), dtypeName(dtype)));
    return v;
  }
  mlir::Location l = toMlirLoc(s.ctx, loc);
  mlir::Type type = toMlirType(s.ctx, dtype);
  if (isFloat(dtype))
    return Value(mlir::arith::ConstantOp::create(
        s.builder, l, s.builder.getFloatAttr(type, v.literal())));
  if (!v.isLiteralInt())
    fail(loc, op, fmt::format("float literal {} combined with an integer {} value",
                              v.literal(), dtypeName(dtype)));
  return Value(mlir::arith::ConstantOp::create(
      s.builder, l, s.builder.getIntegerAttr(type, static_cast<int64_t>(v.literal()))));
}

/// Expands and broadcasts `v` (a scalar or tile) to `shape`.
Value broadcastValue(KernelBuilder::State &s, Value v, const Shape &shape,
                     std::string_view op, SourceLoc loc) {
  mlir::Location l = toMlirLoc(s.ctx, loc);
  if (shape.empty() || v.shape() == shape)
    return v;
  if (v.isScalar())
    return Value(mlir::loom::SplatOp::create(
        s.builder, l, mlir::RankedTensorType::get(shape, v.mlir().getType()), v.mlir()));
  Shape cur = v.shape();
  mlir::Type elem = toMlirType(s.ctx, v.dtype());
  while (cur.size() < shape.size()) {
    cur.insert(cur.begin(), 1);
    v = Value(mlir::loom::ExpandDimsOp::create(
        s.builder, l, mlir::RankedTensorType::get(cur, elem), v.mlir(),
        s.builder.getI32IntegerAttr(0)));
  }
  for (size_t i = 0; i < shape.size(); ++i)
    if (cur[i] != shape[i] && cur[i] != 1)
      fail(loc, op, fmt::format("cannot broadcast {} to {}", describe(v), shapeStr(shape)));
  if (cur == shape)
    return v;
  return Value(mlir::loom::BroadcastOp::create(
      s.builder, l, mlir::RankedTensorType::get(shape, elem), v.mlir()));
}

std::vector<Value> unify(KernelBuilder::State &s, std::vector<Value> values,
                         std::string_view op, SourceLoc loc) {
  // Common dtype: the first non-literal's; all-literal picks f32 if any is a
  // float literal, else i32.
  std::optional<DType> dtype;
  for (const Value &v : values) {
    if (v.isNull())
      fail(loc, op, "operand has no value");
    if (v.isPointer())
      fail(loc, op, fmt::format("{} cannot be used in arithmetic", describe(v)));
    if (v.isLiteral())
      continue;
    if (!dtype)
      dtype = v.dtype();
    else if (*dtype != v.dtype()) {
      std::string parts;
      for (const Value &w : values)
        parts += (parts.empty() ? "" : " and ") + describe(w);
      fail(loc, op, fmt::format("dtype mismatch: {} (cast with .to())", parts));
    }
  }
  if (!dtype) {
    bool anyFloat = false;
    for (const Value &v : values)
      anyFloat |= !v.isLiteralInt();
    dtype = anyFloat ? DType::F32 : DType::I32;
  }
  // Common shape by NumPy rules.
  Shape shape;
  for (const Value &v : values) {
    Shape vs = v.isLiteral() ? Shape{} : v.shape();
    Shape out(std::max(shape.size(), vs.size()), 1);
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t a = i < out.size() - shape.size() ? 1 : shape[i - (out.size() - shape.size())];
      int64_t b = i < out.size() - vs.size() ? 1 : vs[i - (out.size() - vs.size())];
      if (a != b && a != 1 && b != 1) {
        std::string parts;
        for (const Value &w : values)
          parts += (parts.empty() ? "" : " and ") + shapeStr(w.isLiteral() ? Shape{} : w.shape());
        fail(loc, op, fmt::format("cannot broadcast shapes {}", parts));
      }
      out[i] = a == 1 ? b : a;
    }
    shape = out;
  }
  for (Value &v : values)
    v = broadcastValue(s, materialize(s, v, *dtype, op, loc), shape, op, loc);
  return values;
}
} // namespace detail

Value Value::to(DType to, SourceLoc loc) const {
  KernelBuilder::State &s = currentTrace("to", loc);
  if (isLiteral())
    return materialize(s, *this, to, "to", loc);
  if (isPointer())
    fail(loc, "to", fmt::format("cannot convert {}", describe(*this)));
  DType from = dtype();
  if (from == to)
    return *this;
  mlir::Location l = toMlirLoc(s.ctx, loc);
  mlir::Type type = withShape(s.ctx, shape(), to);
  mlir::OpBuilder &b = s.builder;
  mlir::Value v = value_;
  if (isFloat(from) && isFloat(to)) {
    if (dtypeSize(from) < dtypeSize(to))
      return Value(mlir::arith::ExtFOp::create(b, l, type, v));
    if (dtypeSize(from) > dtypeSize(to))
      return Value(mlir::arith::TruncFOp::create(b, l, type, v));
    // f16 <-> bf16 goes through f32 (exact for the widening step).
    return Value(*this).to(DType::F32, loc).to(to, loc);
  }
  if (isFloat(from))
    return Value(mlir::arith::FPToSIOp::create(b, l, type, v));
  if (isFloat(to))
    return from == DType::I1 ? Value(mlir::arith::UIToFPOp::create(b, l, type, v))
                             : Value(mlir::arith::SIToFPOp::create(b, l, type, v));
  if (from == DType::I1)
    return Value(mlir::arith::ExtUIOp::create(b, l, type, v));
  if (to == DType::I1)
    return *this != 0;
  if (dtypeSize(from) < dtypeSize(to))
    return Value(mlir::arith::ExtSIOp::create(b, l, type, v));
  return Value(mlir::arith::TruncIOp::create(b, l, type, v));
}

namespace {
enum class BinKind { Add, Sub, Mul, Div, Rem, And, Or, Max, Min };

Value binary(BinKind kind, std::string_view op, At a, Value b) {
  KernelBuilder::State &s = currentTrace(op.data(), a.loc);
  auto vs = unify(s, {a.value, b}, op, a.loc);
  mlir::Location l = toMlirLoc(s.ctx, a.loc);
  mlir::OpBuilder &bld = s.builder;
  mlir::Value x = vs[0].mlir(), y = vs[1].mlir();
  DType t = vs[0].dtype();
  bool f = isFloat(t);
  using namespace mlir::arith;
  if (t == DType::I1 && kind != BinKind::And && kind != BinKind::Or)
    fail(a.loc, op, "not defined on i1 masks (use & and |, or cast with .to())");
  switch (kind) {
  case BinKind::Add: return f ? Value(AddFOp::create(bld, l, x, y)) : Value(AddIOp::create(bld, l, x, y));
  case BinKind::Sub: return f ? Value(SubFOp::create(bld, l, x, y)) : Value(SubIOp::create(bld, l, x, y));
  case BinKind::Mul: return f ? Value(MulFOp::create(bld, l, x, y)) : Value(MulIOp::create(bld, l, x, y));
  case BinKind::Div: return f ? Value(DivFOp::create(bld, l, x, y)) : Value(DivSIOp::create(bld, l, x, y));
  case BinKind::Rem:
    if (f)
      fail(a.loc, op, fmt::format("needs integer operands, got {}", dtypeName(t)));
    return Value(RemSIOp::create(bld, l, x, y));
  case BinKind::And:
  case BinKind::Or:
    if (f)
      fail(a.loc, op, fmt::format("needs integer or i1 operands, got {}", dtypeName(t)));
    return kind == BinKind::And ? Value(AndIOp::create(bld, l, x, y))
                                : Value(OrIOp::create(bld, l, x, y));
  case BinKind::Max: return f ? Value(MaximumFOp::create(bld, l, x, y)) : Value(MaxSIOp::create(bld, l, x, y));
  case BinKind::Min: return f ? Value(MinimumFOp::create(bld, l, x, y)) : Value(MinSIOp::create(bld, l, x, y));
  }
  return {};
}

Value compare(mlir::arith::CmpFPredicate fp, mlir::arith::CmpIPredicate ip,
              std::string_view op, At a, Value b) {
  KernelBuilder::State &s = currentTrace(op.data(), a.loc);
  auto vs = unify(s, {a.value, b}, op, a.loc);
  mlir::Location l = toMlirLoc(s.ctx, a.loc);
  if (isFloat(vs[0].dtype()))
    return Value(mlir::arith::CmpFOp::create(s.builder, l, fp, vs[0].mlir(), vs[1].mlir()));
  return Value(mlir::arith::CmpIOp::create(s.builder, l, ip, vs[0].mlir(), vs[1].mlir()));
}
} // namespace

using FP = mlir::arith::CmpFPredicate;
using IP = mlir::arith::CmpIPredicate;
Value operator+(At a, At b) { return binary(BinKind::Add, "add", a, b.value); }
Value operator-(At a, At b) { return binary(BinKind::Sub, "sub", a, b.value); }
Value operator*(At a, At b) { return binary(BinKind::Mul, "mul", a, b.value); }
Value operator/(At a, At b) { return binary(BinKind::Div, "div", a, b.value); }
Value operator%(At a, At b) { return binary(BinKind::Rem, "rem", a, b.value); }
Value operator&(At a, At b) { return binary(BinKind::And, "and", a, b.value); }
Value operator|(At a, At b) { return binary(BinKind::Or, "or", a, b.value); }
Value maximum(At a, At b) { return binary(BinKind::Max, "maximum", a, b.value); }
Value minimum(At a, At b) { return binary(BinKind::Min, "minimum", a, b.value); }
// Ordered predicates: any comparison with NaN is false, except !=.
Value operator<(At a, At b) { return compare(FP::OLT, IP::slt, "lt", a, b.value); }
Value operator<=(At a, At b) { return compare(FP::OLE, IP::sle, "le", a, b.value); }
Value operator>(At a, At b) { return compare(FP::OGT, IP::sgt, "gt", a, b.value); }
Value operator>=(At a, At b) { return compare(FP::OGE, IP::sge, "ge", a, b.value); }
Value operator==(At a, At b) { return compare(FP::OEQ, IP::eq, "eq", a, b.value); }
Value operator!=(At a, At b) { return compare(FP::UNE, IP::ne, "ne", a, b.value); }
Value operator-(At a) {
  KernelBuilder::State &s = currentTrace("neg", a.loc);
  if (a.value.isLiteral())
    return a.value.isLiteralInt() ? Value(static_cast<int64_t>(-a.value.literal()))
                                  : Value(-a.value.literal());
  if (isFloat(a.value.dtype()))
    return Value(mlir::arith::NegFOp::create(s.builder, toMlirLoc(s.ctx, a.loc),
                                             a.value.mlir()));
  return binary(BinKind::Sub, "neg", At(0, a.loc), a.value);
}

} // namespace loom::dsl
