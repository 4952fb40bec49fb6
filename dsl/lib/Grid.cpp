//===- Grid.cpp - a logical grid larger than one launch's -----------------===//
#include "loom/dsl/Grid.h"

#include "loom/Support/Error.h"

#include <fmt/format.h>

namespace loom::dsl {
namespace {
void checkAxis(int axis, const char *what) {
  if (axis < 0 || axis > 2)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("LogicalGrid::{}: axis {} out of range; the grid has axes 0, 1 and 2",
                            what, axis));
}
} // namespace

LogicalGrid::LogicalGrid(KernelBuilder &kb, SourceLoc loc) {
  for (int d = 0; d < 3; ++d)
    base_[size_t(d)] = kb.scalar(kGridBaseArgs[d], DType::I32, loc);
  for (int d = 0; d < 3; ++d)
    size_[size_t(d)] = kb.scalar(kGridSizeArgs[d], DType::I32, loc);
}

Value LogicalGrid::programId(int axis, SourceLoc loc) const {
  checkAxis(axis, "programId");
  return At(program_id(axis, loc), loc) + At(base_[size_t(axis)], loc);
}

Value LogicalGrid::numPrograms(int axis, SourceLoc) const {
  checkAxis(axis, "numPrograms");
  return size_[size_t(axis)];
}

} // namespace loom::dsl
