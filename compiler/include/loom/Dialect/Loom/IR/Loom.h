//===- Loom.h - the loom dialect, types and ops -----------------*- C++ -*-===//
#ifndef LOOM_DIALECT_LOOM_IR_LOOM_H
#define LOOM_DIALECT_LOOM_IR_LOOM_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/TensorEncoding.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "loom/Dialect/Loom/IR/LoomDialect.h.inc"
#include "loom/Dialect/Loom/IR/LoomEnums.h.inc"

#define GET_TYPEDEF_CLASSES
#include "loom/Dialect/Loom/IR/LoomTypes.h.inc"

#define GET_ATTRDEF_CLASSES
#include "loom/Dialect/Loom/IR/LoomAttrs.h.inc"

#define GET_OP_CLASSES
#include "loom/Dialect/Loom/IR/LoomOps.h.inc"

namespace mlir::loom {
/// Attribute names on kernel functions.
inline constexpr llvm::StringLiteral kKernelAttrName = "loom.kernel";
inline constexpr llvm::StringLiteral kArgNamesAttrName = "loom.arg_names";
/// Set by loom-specialize: dictionary of argument name -> bound value.
inline constexpr llvm::StringLiteral kSpecializedAttrName = "loom.specialized";
} // namespace mlir::loom

#endif
