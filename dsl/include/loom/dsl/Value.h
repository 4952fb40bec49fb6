//===- Value.h - values of the tile DSL -------------------------*- C++ -*-===//
#ifndef LOOM_DSL_VALUE_H
#define LOOM_DSL_VALUE_H

#include "loom/dsl/DType.h"

#include "mlir/IR/Value.h"

#include <cstdint>
#include <optional>
#include <source_location>
#include <vector>

namespace loom::dsl {

using SourceLoc = std::source_location;
using Shape = std::vector<int64_t>;

/// A value inside a kernel body: a tile (statically shaped), a scalar
/// (program id, scalar argument, loop index), a pointer argument, or a
/// literal that takes the dtype of what it is combined with (`x * 0.5` is f16
/// when x is f16), like Triton's weakly typed constants.
class Value {
public:
  Value() = default;
  Value(int v) : literal_(static_cast<double>(v)), literalIsInt_(true) {}
  Value(int64_t v) : literal_(static_cast<double>(v)), literalIsInt_(true) {}
  Value(double v) : literal_(v) {}
  Value(float v) : literal_(static_cast<double>(v)) {}
  explicit Value(mlir::Value v) : value_(v) {}

  bool isNull() const { return !value_ && !literal_; }
  bool isLiteral() const { return literal_.has_value(); }
  bool isLiteralInt() const { return literal_ && literalIsInt_; }
  double literal() const { return *literal_; }
  bool isTile() const;
  bool isScalar() const;
  bool isPointer() const;
  /// Element dtype (pointee dtype for pointers). Literals have none.
  DType dtype() const;
  /// Tile shape; empty for scalars and pointers.
  Shape shape() const;
  mlir::Value mlir() const { return value_; }

  /// Converts to `to` (float<->float rounds to nearest even, float->int
  /// truncates toward zero, i1->int gives 0/1).
  Value to(DType to, SourceLoc loc = SourceLoc::current()) const;

private:
  mlir::Value value_;
  std::optional<double> literal_;
  bool literalIsInt_ = false;
};

/// An operand that records where the expression using it was written, so
/// operator diagnostics can name the user's file:line.
struct At {
  At(Value v, SourceLoc loc = SourceLoc::current()) : value(v), loc(loc) {}
  At(int v, SourceLoc loc = SourceLoc::current()) : value(v), loc(loc) {}
  At(int64_t v, SourceLoc loc = SourceLoc::current()) : value(v), loc(loc) {}
  At(double v, SourceLoc loc = SourceLoc::current()) : value(v), loc(loc) {}
  At(float v, SourceLoc loc = SourceLoc::current()) : value(v), loc(loc) {}
  Value value;
  SourceLoc loc;
};

Value operator+(At a, At b);
Value operator-(At a, At b);
Value operator*(At a, At b);
/// Float division, or signed integer division rounding toward zero.
Value operator/(At a, At b);
/// Signed integer remainder.
Value operator%(At a, At b);
Value operator<(At a, At b);
Value operator<=(At a, At b);
Value operator>(At a, At b);
Value operator>=(At a, At b);
Value operator==(At a, At b);
Value operator!=(At a, At b);
/// Bitwise and/or (logical on i1 masks).
Value operator&(At a, At b);
Value operator|(At a, At b);
Value operator-(At a);

} // namespace loom::dsl

#endif
