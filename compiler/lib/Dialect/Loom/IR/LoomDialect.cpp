//===- LoomDialect.cpp - loom dialect registration ------------------------===//
#include "loom/Dialect/Loom/IR/Loom.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::loom;

#include "loom/Dialect/Loom/IR/LoomDialect.cpp.inc"
#include "loom/Dialect/Loom/IR/LoomEnums.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "loom/Dialect/Loom/IR/LoomTypes.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "loom/Dialect/Loom/IR/LoomAttrs.cpp.inc"

LogicalResult PtrType::verify(function_ref<InFlightDiagnostic()> emitError,
                              Type elementType) {
  if (!elementType.isF32() && !elementType.isF16() && !elementType.isBF16() &&
      !elementType.isInteger(32) && !elementType.isInteger(64) &&
      !elementType.isInteger(1))
    return emitError() << "pointer element type must be f32, f16, bf16, i32, "
                          "i64 or i1, got "
                       << elementType;
  return success();
}

namespace {
std::string shapeText(ArrayRef<int64_t> shape) {
  std::string s;
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (i)
      s += 'x';
    s += std::to_string(d);
  }
  return s.empty() ? "scalar" : s;
}
} // namespace

LogicalResult MmaEncodingAttr::verifyEncoding(ArrayRef<int64_t> shape, Type,
                                              function_ref<InFlightDiagnostic()> emitError) const {
  if (getWarpsM() == 0 || getWarpsN() == 0)
    return emitError() << "#loom.mma needs at least one warp along each dimension";
  int64_t rows = 16 * getWarpsM(), cols = 8 * getWarpsN();
  if (shape.size() != 2 || shape[0] % rows != 0 || shape[1] % cols != 0)
    return emitError() << "#loom.mma<warpsM = " << getWarpsM() << ", warpsN = " << getWarpsN()
                       << "> needs a 2-D tile whose dimensions are multiples of " << rows << "x"
                       << cols << ", got " << shapeText(shape);
  return success();
}

LogicalResult
MmaRowsEncodingAttr::verifyEncoding(ArrayRef<int64_t> shape, Type,
                                    function_ref<InFlightDiagnostic()> emitError) const {
  if (getWarpsM() == 0 || getWarpsN() == 0)
    return emitError() << "#loom.mma_rows needs at least one warp along each dimension";
  int64_t rows = 16 * getWarpsM();
  bool vector = shape.size() == 1 || (shape.size() == 2 && shape[1] == 1);
  if (!vector || shape[0] % rows != 0)
    return emitError() << "#loom.mma_rows<warpsM = " << getWarpsM() << ", warpsN = "
                       << getWarpsN() << "> needs an [M] or [M, 1] tile with M a multiple of "
                       << rows << ", got " << shapeText(shape);
  return success();
}

LogicalResult
MmaColsEncodingAttr::verifyEncoding(ArrayRef<int64_t> shape, Type,
                                    function_ref<InFlightDiagnostic()> emitError) const {
  if (getWarpsM() == 0 || getWarpsN() == 0)
    return emitError() << "#loom.mma_cols needs at least one warp along each dimension";
  int64_t cols = 8 * getWarpsN();
  bool vector = shape.size() == 1 || (shape.size() == 2 && shape[0] == 1);
  if (!vector || shape.back() % cols != 0)
    return emitError() << "#loom.mma_cols<warpsM = " << getWarpsM() << ", warpsN = "
                       << getWarpsN() << "> needs an [N] or [1, N] tile with N a multiple of "
                       << cols << ", got " << shapeText(shape);
  return success();
}

void LoomDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "loom/Dialect/Loom/IR/LoomAttrs.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "loom/Dialect/Loom/IR/LoomTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "loom/Dialect/Loom/IR/LoomOps.cpp.inc"
      >();
}
