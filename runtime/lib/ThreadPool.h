//===- ThreadPool.h - fixed pool running program instances ------*- C++ -*-===//
#ifndef LOOM_RUNTIME_LIB_THREADPOOL_H
#define LOOM_RUNTIME_LIB_THREADPOOL_H

#include <cstdint>
#include <functional>

namespace loom::runtime {

/// Runs fn(worker, begin, end) over [0, n) split into contiguous chunks on a
/// process-wide pool of hardware_concurrency() threads; the caller's thread
/// takes part. Returns when all chunks are done; rethrows the first
/// exception a chunk threw. `worker` is in [0, numWorkers()).
void parallelFor(uint64_t n, const std::function<void(unsigned, uint64_t, uint64_t)> &fn);
unsigned numWorkers();

} // namespace loom::runtime

#endif
