//===- LogicalGrid.h - launching grids larger than one launch ---*- C++ -*-===//
//
// Every backend checks the GPU's grid limits (kMaxGrid: x <= 2^31 - 1, y
// and z <= 65535, and at most 2^31 programs per launch for the CPU's thread
// pool), so a launch that runs on cpu also runs on emu and cuda. A kernel
// whose grid may exceed them declares a dsl::LogicalGrid; launchLogical
// splits its grid into legal launches, in order (x fastest, then y, then
// z), and passes each launch its first program and the logical size.
//
//   launchLogical(*kernel, {blocks, batch * heads, 1}, args); // args: without the grid's
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_LOGICALGRID_H
#define LOOM_RUNTIME_LOGICALGRID_H

#include "loom/runtime/Kernel.h"

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace loom::runtime {

/// The most programs one launch may have along x, y and z.
inline constexpr std::array<uint32_t, 3> kMaxGrid = {2147483647u, 65535u, 65535u};
/// The most programs of one launch in all (the CPU's thread pool indexes
/// them in 31 bits).
inline constexpr uint64_t kMaxGridPrograms = uint64_t(1) << 31;

/// Sizes of a logical grid, each in [1, 2^31 - 1].
using LogicalGridSize = std::array<int64_t, 3>;

/// One launch of a logical grid: its grid and the logical id of its first
/// program along each axis.
struct GridPiece {
  Grid grid;
  std::array<int64_t, 3> base;
};

/// How launchLogical launches: at most `maxPrograms` programs a launch
/// (fewer than the limits allow, so that progress can be reported between
/// launches), and `afterEach(done, total)` after each launch's programs have
/// run (in order; on `stream`'s thread for a CPU stream), with the programs
/// done so far and in all.
struct LogicalLaunchOptions {
  uint64_t maxPrograms = kMaxGridPrograms;
  std::function<void(uint64_t done, uint64_t total)> afterEach{};
};

/// The launches covering `size`, each within kMaxGrid and `maxPrograms`.
/// Throws InvalidArgument naming `what` for a size outside [1, 2^31 - 1].
std::vector<GridPiece> splitGrid(const LogicalGridSize &size, uint64_t maxPrograms,
                                 const char *what);

/// Runs `kernel` over the logical grid `size`, one launch per piece.
/// `args` are the kernel's arguments without the LogicalGrid's scalars
/// (dsl::kGridBaseArgs, kGridSizeArgs), which are filled in per launch. A
/// kernel that declares no LogicalGrid is launched once and must fit the
/// limits (InvalidArgument naming the kernel otherwise).
void launchLogical(const CompiledKernel &kernel, const LogicalGridSize &size,
                   std::span<const Arg> args, const LogicalLaunchOptions &options = {});
/// The same on `stream` (see CompiledKernel::launch(Stream &, ...)).
void launchLogical(const CompiledKernel &kernel, Stream &stream, const LogicalGridSize &size,
                   std::span<const Arg> args, const LogicalLaunchOptions &options = {});

} // namespace loom::runtime

#endif
