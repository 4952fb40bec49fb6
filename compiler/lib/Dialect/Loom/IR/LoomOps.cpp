//===- LoomOps.cpp - loom op verifiers and folders ------------------------===//
//
// Verifier messages are part of the interface: tests/lit/Dialect/Loom/
// invalid.mlir checks each one verbatim.
//
//===----------------------------------------------------------------------===//
#include "loom/Dialect/Loom/IR/Loom.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
std::string shapeString(ArrayRef<int64_t> shape) {
  if (shape.empty())
    return "scalar";
  std::string s;
  for (auto [i, d] : llvm::enumerate(shape))
    s += (i ? "x" : "") + std::to_string(d);
  return s;
}
std::string shapeOf(Value v) {
  return shapeString(cast<ShapedType>(v.getType()).getShape());
}
} // namespace

LogicalResult ArangeOp::verify() {
  int64_t start = getStart(), end = getEnd();
  auto type = getResult().getType();
  if (end <= start)
    return emitOpError() << "requires end > start, got start " << start
                         << " and end " << end;
  if (type.getRank() != 1 || type.getDimSize(0) != end - start)
    return emitOpError() << "result must be a 1-D tile of " << end - start
                         << " elements, got " << shapeOf(getResult());
  return success();
}

LogicalResult ExpandDimsOp::verify() {
  auto src = getSrc().getType();
  int64_t axis = getAxis();
  if (axis < 0 || axis > src.getRank())
    return emitOpError() << "axis " << axis << " out of range for a tile of rank "
                         << src.getRank();
  SmallVector<int64_t> expected(src.getShape());
  expected.insert(expected.begin() + axis, 1);
  if (getResult().getType().getShape() != ArrayRef<int64_t>(expected))
    return emitOpError() << "expected result shape " << shapeString(expected)
                         << ", got " << shapeOf(getResult());
  return success();
}

LogicalResult BroadcastOp::verify() {
  auto src = getSrc().getType();
  auto dst = getResult().getType();
  if (src.getRank() != dst.getRank())
    return emitOpError() << "source rank " << src.getRank()
                         << " differs from result rank " << dst.getRank();
  for (int64_t i = 0; i < src.getRank(); ++i)
    if (src.getDimSize(i) != 1 && src.getDimSize(i) != dst.getDimSize(i))
      return emitOpError() << "cannot broadcast " << shapeOf(getSrc()) << " to "
                           << shapeOf(getResult()) << " (dimension " << i << ")";
  return success();
}

OpFoldResult BroadcastOp::fold(FoldAdaptor) {
  if (getSrc().getType() == getResult().getType())
    return getSrc();
  return {};
}

LogicalResult LoadOp::verify() {
  auto offsets = getOffsets().getType();
  auto result = getResult().getType();
  Type elem = getPtr().getType().getElementType();
  if (result.getElementType() != elem)
    return emitOpError() << "result element type " << result.getElementType()
                         << " differs from pointer element type " << elem;
  if (result.getShape() != offsets.getShape())
    return emitOpError() << "result shape " << shapeOf(getResult())
                         << " differs from offsets shape " << shapeOf(getOffsets());
  if (getMask() && getMask().getType().getShape() != offsets.getShape())
    return emitOpError() << "mask shape " << shapeOf(getMask())
                         << " differs from offsets shape " << shapeOf(getOffsets());
  if (getOther() && getOther().getType() != result)
    return emitOpError() << "'other' type " << getOther().getType()
                         << " differs from result type " << result;
  return success();
}

LogicalResult StoreOp::verify() {
  auto offsets = getOffsets().getType();
  auto value = getValue().getType();
  Type elem = getPtr().getType().getElementType();
  if (value.getElementType() != elem)
    return emitOpError() << "value element type " << value.getElementType()
                         << " differs from pointer element type " << elem;
  if (value.getShape() != offsets.getShape())
    return emitOpError() << "value shape " << shapeOf(getValue())
                         << " differs from offsets shape " << shapeOf(getOffsets());
  if (getMask() && getMask().getType().getShape() != offsets.getShape())
    return emitOpError() << "mask shape " << shapeOf(getMask())
                         << " differs from offsets shape " << shapeOf(getOffsets());
  return success();
}

LogicalResult DotOp::verify() {
  auto a = getA().getType(), b = getB().getType(), acc = getAcc().getType();
  if (a.getRank() != 2 || b.getRank() != 2 || acc.getRank() != 2)
    return emitOpError() << "operands must be 2-D tiles, got " << shapeOf(getA())
                         << ", " << shapeOf(getB()) << " and " << shapeOf(getAcc());
  if (a.getDimSize(1) != b.getDimSize(0))
    return emitOpError() << "inner dimensions differ: " << shapeOf(getA())
                         << " times " << shapeOf(getB());
  if (acc.getDimSize(0) != a.getDimSize(0) || acc.getDimSize(1) != b.getDimSize(1))
    return emitOpError() << "accumulator shape " << shapeOf(getAcc())
                         << " differs from product shape " << a.getDimSize(0)
                         << "x" << b.getDimSize(1);
  return success();
}

LogicalResult ReduceOp::verify() {
  auto src = getSrc().getType();
  int64_t axis = getAxis();
  if (axis < 0 || axis >= src.getRank())
    return emitOpError() << "axis " << axis << " out of range for a tile of rank "
                         << src.getRank();
  SmallVector<int64_t> expected(src.getShape());
  expected.erase(expected.begin() + axis);
  if (getResult().getType().getShape() != ArrayRef<int64_t>(expected))
    return emitOpError() << "expected result shape " << shapeString(expected)
                         << ", got " << shapeOf(getResult());
  return success();
}

#define GET_OP_CLASSES
#include "loom/Dialect/Loom/IR/LoomOps.cpp.inc"
