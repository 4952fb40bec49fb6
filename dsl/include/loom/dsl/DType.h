//===- DType.h - element types of DSL values --------------------*- C++ -*-===//
#ifndef LOOM_DSL_DTYPE_H
#define LOOM_DSL_DTYPE_H

#include <cstddef>
#include <optional>
#include <string_view>

namespace mlir {
class MLIRContext;
class Type;
} // namespace mlir

namespace loom {

enum class DType { F32, F16, BF16, I32, I64, I1 };

std::string_view dtypeName(DType t);
/// Parses "f32", "f16", "bf16", "i32", "i64", "i1".
std::optional<DType> parseDType(std::string_view name);
size_t dtypeSize(DType t);
bool isFloat(DType t);
mlir::Type toMlirType(mlir::MLIRContext &ctx, DType t);
/// The DType of an MLIR scalar type, if it is one Loom supports.
std::optional<DType> fromMlirType(mlir::Type t);

} // namespace loom

#endif
