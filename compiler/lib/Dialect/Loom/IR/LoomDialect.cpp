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

void LoomDialect::initialize() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "loom/Dialect/Loom/IR/LoomTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "loom/Dialect/Loom/IR/LoomOps.cpp.inc"
      >();
}
