//===- LogicalGrid.cpp - launching grids larger than one launch -----------===//
#include "loom/runtime/LogicalGrid.h"
#include "loom/runtime/Stream.h"

#include "loom/Support/Error.h"
#include "loom/dsl/Grid.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <optional>

namespace loom::runtime {

std::vector<GridPiece> splitGrid(const LogicalGridSize &size, uint64_t maxPrograms,
                                 const char *what) {
  for (int d = 0; d < 3; ++d)
    if (size[size_t(d)] < 1 || size[size_t(d)] > INT32_MAX)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: logical grid ({}, {}, {}) has {} programs along axis {}; each "
                              "axis needs 1 to 2^31 - 1",
                              what, size[0], size[1], size[2], size[size_t(d)], d));
  uint64_t budget = std::clamp<uint64_t>(maxPrograms, 1, kMaxGridPrograms);
  // A piece is as long as allowed along x, then as many rows (y), then
  // planes (z) as the budget leaves: whole rows whenever they fit, so the
  // pieces run in the logical grid's order.
  std::array<int64_t, 3> step{};
  uint64_t left = budget;
  for (size_t d = 0; d < 3; ++d) {
    step[d] = int64_t(std::max<uint64_t>(
        1, std::min<uint64_t>({uint64_t(size[d]), uint64_t(kMaxGrid[d]), left})));
    left = std::max<uint64_t>(1, left / uint64_t(step[d]));
  }
  std::vector<GridPiece> pieces;
  for (int64_t z = 0; z < size[2]; z += step[2])
    for (int64_t y = 0; y < size[1]; y += step[1])
      for (int64_t x = 0; x < size[0]; x += step[0])
        pieces.push_back({Grid(uint32_t(std::min(step[0], size[0] - x)),
                               uint32_t(std::min(step[1], size[1] - y)),
                               uint32_t(std::min(step[2], size[2] - z))),
                          {x, y, z}});
  return pieces;
}

namespace {
/// Where each LogicalGrid scalar sits in the kernel's signature (none: the
/// kernel declares no LogicalGrid).
std::optional<std::array<size_t, 6>> gridSlots(const CompiledKernel &kernel) {
  std::array<size_t, 6> slots{};
  size_t found = 0;
  const std::vector<ArgInfo> &sig = kernel.signature();
  for (size_t i = 0; i < sig.size(); ++i)
    for (size_t j = 0; j < 6; ++j)
      if (sig[i].name == (j < 3 ? dsl::kGridBaseArgs[j] : dsl::kGridSizeArgs[j - 3]))
        slots[j] = i, ++found;
  if (found == 0)
    return std::nullopt;
  if (found != 6)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("kernel '{}' declares some of the LogicalGrid's scalars but not all "
                            "six",
                            kernel.name()));
  return slots;
}

template <typename LaunchFn>
void launchPieces(const CompiledKernel &kernel, const LogicalGridSize &size,
                  std::span<const Arg> args, const LogicalLaunchOptions &options,
                  LaunchFn &&launch, const std::function<void(std::function<void()>)> &after) {
  auto slots = gridSlots(kernel);
  if (!slots) {
    for (int d = 0; d < 3; ++d)
      if (size[size_t(d)] < 1 || size[size_t(d)] > int64_t(kMaxGrid[size_t(d)]))
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("kernel '{}': grid ({}, {}, {}) exceeds one launch's limits "
                                "(x <= 2^31 - 1, y and z <= 65535) and the kernel declares no "
                                "dsl::LogicalGrid to split it",
                                kernel.name(), size[0], size[1], size[2]));
    Grid grid{uint32_t(size[0]), uint32_t(size[1]), uint32_t(size[2])};
    launch(grid, args);
    if (options.afterEach)
      after([f = options.afterEach, n = grid.size()] { f(n, n); });
    return;
  }
  if (args.size() + 6 != kernel.signature().size())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("kernel '{}' expects {} arguments besides its LogicalGrid's six, "
                            "got {}",
                            kernel.name(), kernel.signature().size() - 6, args.size()));
  std::vector<GridPiece> pieces = splitGrid(size, options.maxPrograms, kernel.name().c_str());
  uint64_t total = uint64_t(size[0]) * uint64_t(size[1]) * uint64_t(size[2]), done = 0;
  std::vector<Arg> full(kernel.signature().size(), Arg::i32(0));
  for (const GridPiece &p : pieces) {
    std::vector<bool> isGrid(full.size(), false);
    for (size_t d = 0; d < 3; ++d) {
      full[(*slots)[d]] = Arg::i32(int32_t(p.base[d]));
      full[(*slots)[d + 3]] = Arg::i32(int32_t(size[d]));
      isGrid[(*slots)[d]] = isGrid[(*slots)[d + 3]] = true;
    }
    for (size_t i = 0, next = 0; i < full.size(); ++i)
      if (!isGrid[i])
        full[i] = args[next++];
    launch(p.grid, std::span<const Arg>(full));
    done += p.grid.size();
    if (options.afterEach)
      after([f = options.afterEach, done, total] { f(done, total); });
  }
}
} // namespace

void launchLogical(const CompiledKernel &kernel, const LogicalGridSize &size,
                   std::span<const Arg> args, const LogicalLaunchOptions &options) {
  launchPieces(
      kernel, size, args, options,
      [&](const Grid &grid, std::span<const Arg> a) { kernel.launch(grid, a); },
      [](std::function<void()> f) { f(); });
}

void launchLogical(const CompiledKernel &kernel, Stream &stream, const LogicalGridSize &size,
                   std::span<const Arg> args, const LogicalLaunchOptions &options) {
  launchPieces(
      kernel, size, args, options,
      [&](const Grid &grid, std::span<const Arg> a) { kernel.launch(stream, grid, a); },
      [&](std::function<void()> f) {
        stream.submit([f = std::move(f)](const StreamContext &) { f(); });
      });
}

} // namespace loom::runtime
