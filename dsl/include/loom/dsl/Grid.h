//===- Grid.h - a logical grid larger than one launch's ---------*- C++ -*-===//
//
// GPUs cap a launch's grid at 2^31 - 1 programs along x and 65535 along y
// and z, and Loom checks the same limits on every backend (so cpu, emu and
// cuda accept the same launches). A kernel whose natural grid may be larger
// (batch x heads along y) declares a LogicalGrid and reads its program ids
// and sizes through it; the host launches it with runtime::launchLogical,
// which splits the logical grid into legal launches and passes each one's
// first program (grid_base_*) and the logical size (grid_size_*) as i32
// scalar arguments:
//
//   LogicalGrid grid(kb);
//   Value block = grid.programId(0), bh = grid.programId(1);
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_DSL_GRID_H
#define LOOM_DSL_GRID_H

#include "loom/dsl/Kernel.h"

#include <array>

namespace loom::dsl {

/// Names of the scalar arguments a LogicalGrid declares, per axis.
inline constexpr const char *kGridBaseArgs[3] = {"grid_base_x", "grid_base_y", "grid_base_z"};
inline constexpr const char *kGridSizeArgs[3] = {"grid_size_x", "grid_size_y", "grid_size_z"};

class LogicalGrid {
public:
  /// Declares the six i32 scalars (bases, then sizes, x to z).
  explicit LogicalGrid(KernelBuilder &kb, SourceLoc loc = SourceLoc::current());
  /// This program's id along `axis` of the logical grid.
  Value programId(int axis, SourceLoc loc = SourceLoc::current()) const;
  /// The logical grid's size along `axis`.
  Value numPrograms(int axis, SourceLoc loc = SourceLoc::current()) const;

private:
  std::array<Value, 3> base_, size_;
};

} // namespace loom::dsl

#endif
