//===- LoomOps.cpp - loom op verifiers and folders ------------------------===//
//
// Verifier messages are part of the interface: tests/lit/Dialect/Loom/
// invalid.mlir checks each one verbatim.
//
//===----------------------------------------------------------------------===//
#include "loom/Dialect/Loom/IR/Loom.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"

#include <limits>

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

/// Shared by loom.load and loom.store: the data tile has the offsets' shape
/// and the pointer's element type; so does the mask, if any.
LogicalResult verifyAccess(Operation *op, Value data, StringRef dataName,
                           Value offsets, Value mask, Type ptrElem) {
  auto dataType = cast<ShapedType>(data.getType());
  auto offsetType = cast<ShapedType>(offsets.getType());
  if (dataType.getElementType() != ptrElem)
    return op->emitOpError() << dataName << " element type " << dataType.getElementType()
                             << " differs from pointer element type " << ptrElem;
  if (dataType.getShape() != offsetType.getShape())
    return op->emitOpError() << dataName << " shape " << shapeOf(data)
                             << " differs from offsets shape " << shapeOf(offsets);
  if (mask && cast<ShapedType>(mask.getType()).getShape() != offsetType.getShape())
    return op->emitOpError() << "mask shape " << shapeOf(mask)
                             << " differs from offsets shape " << shapeOf(offsets);
  return success();
}
/// Loads and stores touch global memory from the blocked layout only (its
/// accesses are coalesced); loom-assign-layouts converts before them.
LogicalResult verifyBlocked(Operation *op, ValueRange tiles) {
  for (Value v : tiles)
    if (v && cast<RankedTensorType>(v.getType()).getEncoding())
      return op->emitOpError() << "tiles must be blocked (no layout encoding), got "
                               << v.getType();
  return success();
}
} // namespace

LogicalResult ArangeOp::verify() {
  // Attribute getters are unsigned; read the signed value.
  int64_t start = getStartAttr().getInt(), end = getEndAttr().getInt();
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
  int64_t axis = getAxisAttr().getInt();
  if (axis < 0 || axis > src.getRank())
    return emitOpError() << "axis " << axis << " out of range for a tile of rank "
                         << src.getRank();
  SmallVector<int64_t> expected(src.getShape());
  expected.insert(expected.begin() + axis, 1);
  if (getResult().getType().getShape() != ArrayRef<int64_t>(expected))
    return emitOpError() << "expected result shape " << shapeString(expected)
                         << ", got " << shapeOf(getResult());
  // The tile keeps its elements in place: blocked stays blocked, the rows
  // of an [M] #loom.mma_rows tile are those of its [M, 1] expansion, and the
  // columns of an [N] #loom.mma_cols tile those of its [1, N] expansion.
  Attribute from = src.getEncoding(), to = getResult().getType().getEncoding();
  bool rows = isa_and_nonnull<MmaRowsEncodingAttr>(from) && axis == 1;
  bool cols = isa_and_nonnull<MmaColsEncodingAttr>(from) && axis == 0;
  if (from != to || (from && !rows && !cols))
    return emitOpError() << "keeps the layout: blocked to blocked, #loom.mma_rows [M] to "
                            "the same [M, 1] at axis 1, or #loom.mma_cols [N] to the same "
                            "[1, N] at axis 0";
  return success();
}

LogicalResult TransOp::verify() {
  auto src = getSrc().getType();
  if (src.getRank() != 2)
    return emitOpError() << "expects a 2-D tile, got " << shapeOf(getSrc());
  SmallVector<int64_t> expected = {src.getDimSize(1), src.getDimSize(0)};
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
  if (failed(verifyAccess(*this, getResult(), "result", getOffsets(), getMask(),
                          getPtr().getType().getElementType())))
    return failure();
  if (getOther() && getOther().getType() != getResult().getType())
    return emitOpError() << "'other' type " << getOther().getType()
                         << " differs from result type " << getResult().getType();
  return verifyBlocked(*this, {getResult(), getOffsets(), getMask(), getOther()});
}

LogicalResult StoreOp::verify() {
  if (failed(verifyAccess(*this, getValue(), "value", getOffsets(), getMask(),
                          getPtr().getType().getElementType())))
    return failure();
  return verifyBlocked(*this, {getValue(), getOffsets(), getMask()});
}

/// Whether `v`'s only use is as operand a or b of a loom.dot: a tile that
/// only the dot's operand staging reads (deferred loads, pipeline slots).
static bool isOnlyADotOperand(Value v) {
  return v.hasOneUse() && isa<DotOp>(*v.user_begin()) &&
         v.getUses().begin()->getOperandNumber() < 2;
}

/// Shared by loom.block_load and loom.block_store: one stride and one bound
/// per dimension of the (blocked) data tile of the pointer's element type.
static LogicalResult verifyBlockAccess(Operation *op, Value data, StringRef dataName,
                                       size_t numStrides, size_t numBounds, Type ptrElem) {
  auto dataType = cast<RankedTensorType>(data.getType());
  if (dataType.getElementType() != ptrElem)
    return op->emitOpError() << dataName << " element type " << dataType.getElementType()
                             << " differs from pointer element type " << ptrElem;
  if (numStrides != size_t(dataType.getRank()) || numBounds != size_t(dataType.getRank()))
    return op->emitOpError() << "needs one stride and one bound per dimension of the "
                             << dataName << " (rank " << dataType.getRank() << "), got "
                             << numStrides << " strides and " << numBounds << " bounds";
  return verifyBlocked(op, {data});
}

LogicalResult BlockLoadOp::verify() {
  if (failed(verifyBlockAccess(*this, getResult(), "result", getStrides().size(),
                               getBounds().size(), getPtr().getType().getElementType())))
    return failure();
  // column_major tells the dot's staging how to copy the block: it means
  // something only to that staging, and only for a matrix whose columns the
  // IR itself shows to be contiguous.
  if (getColumnMajor()) {
    if (!getDeferred())
      return emitOpError() << "is column_major but not deferred: only a dot's staging reads "
                              "a block column by column";
    if (getResult().getType().getRank() != 2)
      return emitOpError() << "is column_major: its result must have rank 2, got rank "
                           << getResult().getType().getRank();
    if (!isConstantIntValue(getStrides()[0], 1))
      return emitOpError() << "is column_major: strides[0] must be the constant 1";
  }
  // A deferred load is read by the dot's operand staging: nothing else can.
  if (getDeferred() && !isOnlyADotOperand(getResult()))
    return emitOpError() << "is deferred: it must have exactly one user, a loom.dot that "
                            "takes it as operand a or b";
  return success();
}

LogicalResult BlockStoreOp::verify() {
  return verifyBlockAccess(*this, getValue(), "value", getStrides().size(), getBounds().size(),
                           getPtr().getType().getElementType());
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
  // Accumulating in mma fragments means running on tensor cores.
  Type elem = a.getElementType();
  if (isa_and_nonnull<MmaEncodingAttr>(acc.getEncoding()) &&
      (!(elem.isF16() || elem.isBF16()) || a.getDimSize(1) % 16 != 0))
    return emitOpError() << "a #loom.mma accumulator needs f16 or bf16 operands and K a "
                            "multiple of 16, got "
                         << getA().getType();
  if (acc.getEncoding() && !isa<MmaEncodingAttr>(acc.getEncoding()))
    return emitOpError() << "accumulator layout must be blocked or #loom.mma";
  return success();
}

LogicalResult ReduceOp::verify() {
  auto src = getSrc().getType();
  int64_t axis = getAxisAttr().getInt();
  if (axis < 0 || axis >= src.getRank())
    return emitOpError() << "axis " << axis << " out of range for a tile of rank "
                         << src.getRank();
  SmallVector<int64_t> expected(src.getShape());
  expected.erase(expected.begin() + axis);
  if (getResult().getType().getShape() != ArrayRef<int64_t>(expected))
    return emitOpError() << "expected result shape " << shapeString(expected)
                         << ", got " << shapeOf(getResult());
  // Any source layout reduces through shared memory into a blocked tile;
  // only the rows of an mma tile have a layout of their own.
  Attribute to = getResult().getType().getEncoding();
  auto mma = dyn_cast_or_null<MmaEncodingAttr>(src.getEncoding());
  auto rows = dyn_cast_or_null<MmaRowsEncodingAttr>(to);
  if (to && !(rows && mma && axis == 1 && rows.getWarpsM() == mma.getWarpsM() &&
              rows.getWarpsN() == mma.getWarpsN()))
    return emitOpError() << "result layout must be blocked, or the #loom.mma_rows of a "
                            "#loom.mma source reduced along axis 1";
  return success();
}

#define GET_OP_CLASSES
#include "loom/Dialect/Loom/IR/LoomOps.cpp.inc"

OpFoldResult ConvertLayoutOp::fold(FoldAdaptor) {
  if (getSrc().getType() == getType())
    return getSrc();
  // convert(convert(x)) moves x once.
  if (auto inner = getSrc().getDefiningOp<ConvertLayoutOp>()) {
    if (inner.getSrc().getType() == getType())
      return inner.getSrc();
    getSrcMutable().assign(inner.getSrc());
    return getResult();
  }
  return {};
}

/// Shared by the pipeline ops: a buffer of `slots` slots of `tile` at byte
/// `offset`, in the layout the dot's tensor-core path reads (rows of whole
/// 16-byte chunks of f16/bf16).
static LogicalResult verifyPipelineBuffer(Operation *op, RankedTensorType tile, int64_t offset,
                                          int64_t slots, bool columnMajor, Value slot) {
  Type elem = tile.getElementType();
  if (tile.getRank() != 2 || !(elem.isF16() || elem.isBF16()))
    return op->emitOpError() << "pipeline slots hold 2-D f16 or bf16 tiles, got " << tile;
  // Stored rows (the contiguous dimension) are whole 16-byte chunks.
  if (tile.getDimSize(columnMajor ? 0 : 1) % 8 != 0)
    return op->emitOpError() << "pipeline slots store rows of whole 16-byte chunks: the "
                             << (columnMajor ? "rows" : "columns") << " of " << tile
                             << " must be a multiple of 8";
  if (tile.getEncoding())
    return op->emitOpError() << "pipeline slots hold blocked tiles (no layout encoding), got "
                             << tile;
  if (offset < 0 || offset % 16 != 0)
    return op->emitOpError() << "buffer offset must be a non-negative multiple of 16 bytes, got "
                             << offset;
  if (slots < 1)
    return op->emitOpError() << "a pipeline buffer needs at least one slot, got " << slots;
  APInt constant;
  if (matchPattern(slot, m_ConstantInt(&constant)) &&
      (constant.isNegative() || constant.getSExtValue() >= slots))
    return op->emitOpError() << "slot " << constant.getSExtValue() << " is outside the buffer's "
                             << slots << " slots";
  return success();
}

LogicalResult AsyncCopyOp::verify() {
  auto tile = cast<RankedTensorType>(getTile());
  if (failed(verifyPipelineBuffer(*this, tile, getOffsetAttr().getInt(),
                                  getSlotsAttr().getInt(), getColumnMajor(), getSlot())))
    return failure();
  if (tile.getElementType() != getPtr().getType().getElementType())
    return emitOpError() << "tile element type " << tile.getElementType()
                         << " differs from pointer element type "
                         << getPtr().getType().getElementType();
  if (getStrides().size() != 2 || getBounds().size() != 2)
    return emitOpError() << "needs one stride and one bound per dimension of the tile (rank 2), "
                            "got "
                         << getStrides().size() << " strides and " << getBounds().size()
                         << " bounds";
  return success();
}

LogicalResult AsyncWaitOp::verify() {
  // cp.async.wait_group takes a 32-bit immediate.
  int64_t pending = getPendingAttr().getInt();
  if (pending < 0 || pending > std::numeric_limits<int32_t>::max())
    return emitOpError() << "pending group count must be in [0, 2^31), got " << pending;
  return success();
}

LogicalResult SharedSlotOp::verify() {
  if (failed(verifyPipelineBuffer(*this, getResult().getType(), getOffsetAttr().getInt(),
                                  getSlotsAttr().getInt(), getColumnMajor(), getSlot())))
    return failure();
  // Read in place by the dot: nothing else can read it.
  if (!isOnlyADotOperand(getResult()))
    return emitOpError() << "must have exactly one user, a loom.dot that takes it as operand a "
                            "or b";
  // ... on the tensor-core path, the only one whose staged layout slots hold.
  auto dot = cast<DotOp>(*getResult().user_begin());
  auto a = dot.getA().getType(), b = dot.getB().getType();
  if (a.getDimSize(0) % 16 != 0 || a.getDimSize(1) % 16 != 0 || b.getDimSize(1) % 8 != 0)
    return emitOpError() << "is read by a dot of " << a << " and " << b
                         << ", which is not a tensor-core (m16n8k16) shape";
  return success();
}
