//===- EmuLaunch.h - one instrumented launch on the emulated device -*- C++ -*-===//
//
//   auto k = loom::runtime::compile(kernel, {.backend = Backend::Emu, ...});
//   loom::device::emu::Counters c = loom::runtime::emuCounters(*k, grid, args);
//   std::cout << c.to_string();
//
// The emulator's checks and counters for one launch of a kernel compiled for
// the emu backend (see device/README.md): the same checks of the arguments
// as launch(), then one run with these options. The environment's LOOM_EMU_*
// switches still apply on top.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_EMULAUNCH_H
#define LOOM_RUNTIME_EMULAUNCH_H

#include "loom/device/emu/Counters.h"
#include "loom/runtime/Kernel.h"

#include <map>
#include <string>

namespace loom::runtime {

struct EmuLaunchOptions {
  /// Filled with the launch's counters when non-null.
  device::emu::Counters *counters = nullptr;
  bool detectRaces = false;       // shared memory, cp.async pending writes
  bool detectGlobalRaces = false; // across blocks and within a block
  bool cpAsyncLandAtIssue = false; // else copies land at their wait_group
};

/// Runs an emu-backend kernel once with `options`. Throws InvalidArgument
/// for a kernel of another backend or a bad launch, Internal (naming the
/// block and thread) for a failed check.
void launchEmulated(const CompiledKernel &kernel, const Grid &grid, std::span<const Arg> args,
                    const EmuLaunchOptions &options);

/// The counters of one launch of an emu-backend kernel.
device::emu::Counters emuCounters(const CompiledKernel &kernel, const Grid &grid,
                                  std::span<const Arg> args);

/// While one is alive, every emu-backend launch in the process (on any
/// stream's thread) that is not already collecting its own counters adds
/// them to this collector under its kernel's name: the counters of a whole
/// op (e.g. attentionForward, several launches) without touching its code.
/// One at a time: a second throws InvalidArgument.
class EmuCounterCollector {
public:
  EmuCounterCollector();
  ~EmuCounterCollector();
  EmuCounterCollector(const EmuCounterCollector &) = delete;
  EmuCounterCollector &operator=(const EmuCounterCollector &) = delete;
  /// Counters so far, by kernel name (launches of one kernel summed).
  std::map<std::string, device::emu::Counters> byKernel() const;
};

} // namespace loom::runtime

#endif
