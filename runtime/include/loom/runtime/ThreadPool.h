//===- ThreadPool.h - the CPU backend's worker threads ----------*- C++ -*-===//
//
// The CPU backend runs a launch's programs on a process-wide pool. How many
// threads a launch uses: Specialization::cpuThreads when set, otherwise
// $LOOM_NUM_THREADS, otherwise every core (hardware_concurrency()).
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_THREADPOOL_H
#define LOOM_RUNTIME_THREADPOOL_H

#include <cstdint>
#include <functional>
#include <string>

namespace loom::runtime {

/// The most threads one launch may ask for.
constexpr unsigned kMaxCpuThreads = 1024;

/// Parses a thread count ("4"); throws loom::Error(InvalidArgument) naming
/// `what` and the text unless it is an integer in [1, kMaxCpuThreads].
unsigned parseCpuThreads(const std::string &text, const std::string &what);

/// $LOOM_NUM_THREADS (checked by parseCpuThreads) when set and non-empty,
/// else hardware_concurrency() (at least 1). Read on every call.
unsigned defaultCpuThreads();

/// Runs fn(worker, begin, end) over [0, n) split into contiguous chunks on
/// `threads` threads of the pool (0: defaultCpuThreads()); the caller's
/// thread is worker 0 and takes part, and the pool grows when asked for
/// more threads than it has. Returns when all chunks are done; rethrows the
/// first exception a chunk threw. `worker` is in [0, threads). Calls from
/// different threads run one at a time.
void parallelFor(uint64_t n, const std::function<void(unsigned, uint64_t, uint64_t)> &fn,
                 unsigned threads = 0);

} // namespace loom::runtime

#endif
