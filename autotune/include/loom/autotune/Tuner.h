//===- Tuner.h - prune, order, time, verify, pick, remember -----*- C++ -*-===//
//
//   Tunable t = ...;                       // declared next to the kernel
//   TuningCache cache;                     // $LOOM_CACHE_DIR/autotune
//   TuneResult r = tune(t, currentDeviceKey(backend), cache, {});
//
// For every config of t.space (enumeration order = config index):
//   1. invalid   the space's constraint rejects it (reason recorded);
//   2. pruned    with options.arch set and t.resources given: compiled with
//                NVRTC, dropped on ptxas' report (see Pruning.h);
//   3. ordered   survivors sorted by t.cost (lower first, ties by index);
//                with options.maxTimed, the rest are "skipped";
//   4. timed     warm-up runs, then `repetitions` runs rotating over
//                t.inputSets input sets (so no config is timed on inputs
//                another config left in the caches); the median is kept;
//   5. verified  t.verify compares each input set's output with the untuned
//                reference: a config that throws ("failed") or differs
//                ("wrong output") is never chosen.
// The winner is the lowest median (ties: lowest index) and is stored in the
// cache under t.kernel + "@" + t.shapeBucket. A cache hit (unless
// options.force) returns it at once: nothing is compiled, run or timed.
//
// tuneCluster() splits the work: rank r handles the configs with index
// i % P == r, the trials are exchanged with Communicator::allgather, and
// every rank picks the same winner from the same merged list. If rank 0
// already has a cached result, every rank adopts it (a file copied to one
// node suffices); every rank writes the result to its own cache (nodes
// usually have local disks; on a shared directory the locked merge makes
// the duplicate writes harmless).
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_AUTOTUNE_TUNER_H
#define LOOM_AUTOTUNE_TUNER_H

#include "loom/autotune/ConfigSpace.h"
#include "loom/autotune/Pruning.h"
#include "loom/autotune/TuningCache.h"
#include "loom/runtime/Communicator.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace loom::autotune {

/// A kernel to tune for one shape bucket. Callbacks may throw: an exception
/// marks the config as failed with its message.
struct Tunable {
  std::string kernel;      ///< Identity: op, pass, dtype, head dim, variant...
  std::string shapeBucket; ///< e.g. "seqlen<=8192"
  ConfigSpace space;
  /// The heuristic default (used when nothing could be timed).
  Config fallback;
  /// Compiles `config` for `arch` and returns ptxas' report (optional).
  std::function<cuda::KernelResources(const Config &, const std::string &arch)> resources;
  /// Threads per block of `config` (for occupancy), when `resources` is set.
  std::function<unsigned(const Config &)> threads;
  /// Estimated relative cost; lower is expected faster. Optional.
  std::function<double(const Config &)> cost;
  /// Runs the kernel once on input set `set` and returns its milliseconds
  /// (device events on a GPU, wall clock on the CPU).
  std::function<double(const Config &, int set)> run;
  /// After run(config, set): nullopt when the output of `set` matches the
  /// untuned reference, else what is wrong.
  std::function<std::optional<std::string>(const Config &, int set)> verify;
  int inputSets = 3;

  std::string cacheKey() const { return kernel + "@" + shapeBucket; }
};

struct Trial;

struct TuneOptions {
  int warmup = 1;
  int repetitions = 7;
  /// Arch to prune for ("sm_80"...); empty: no resource pruning.
  std::string arch;
  double minOccupancy = kDefaultMinOccupancy;
  /// Time at most this many survivors (per rank), best cost first; 0: all.
  size_t maxTimed = 0;
  /// Re-tune even when the cache has an entry.
  bool force = false;
  bool readCache = true;
  bool writeCache = true;
  /// Called on the tuning thread as soon as a config's status is final
  /// (progress reporting); optional.
  std::function<void(const Trial &)> onTrial;
};

enum class TrialStatus { Invalid, Pruned, Skipped, Failed, WrongOutput, Timed };
const char *trialStatusName(TrialStatus s);

struct Trial {
  size_t index = 0;
  Config config;
  TrialStatus status = TrialStatus::Skipped;
  std::string reason;        ///< Why invalid/pruned/skipped/failed/wrong.
  double medianMs = -1;      ///< Timed only.
  double cost = 0;
  int rank = 0;              ///< Rank that handled it.
  std::optional<cuda::KernelResources> resources;
};

struct TuneResult {
  Config best;
  double bestMs = -1;
  bool fromCache = false;
  bool usedFallback = false; ///< Nothing succeeded: best is the fallback.
  std::vector<Trial> trials; ///< Empty on a cache hit; all ranks' in cluster mode.
  std::string cachePath;
  /// The winner was written to cachePath (false when the cache could not
  /// be written: a warning said why).
  bool stored = false;
  double seconds = 0;        ///< Wall time of tune() itself.
  size_t runs = 0;           ///< Kernel runs this rank made (0 on a hit).
  size_t count(TrialStatus s) const;
};

TuneResult tune(const Tunable &t, const DeviceKey &device, TuningCache &cache,
                const TuneOptions &options = {});

/// Cluster mode (see the file comment). Every rank must call it with the
/// same tunable and options; a rank whose DeviceKey differs from rank 0's
/// throws InvalidArgument naming both (results are per kind of node).
TuneResult tuneCluster(runtime::Communicator &comm, const Tunable &t, const DeviceKey &device,
                       TuningCache &cache, const TuneOptions &options = {});

/// Median of `xs` (mean of the middle two for an even count).
double median(std::vector<double> xs);

/// Milliseconds of `work` between two CUDA events recorded on the legacy
/// default stream (work must launch there or synchronize). Throws
/// DeviceUnavailable without a driver.
double cudaEventMs(const std::function<void()> &work);

} // namespace loom::autotune

#endif
