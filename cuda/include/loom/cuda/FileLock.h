//===- FileLock.h - an exclusive flock with a deadline ----------*- C++ -*-===//
//
// Single-flight across processes: whoever holds the lock on a cache entry's
// lock file builds the entry, the others wait for it and then read it.
// flock locks belong to the open file description, so two threads of one
// process exclude each other as two processes do, and a holder that exits or
// crashes releases the lock with its descriptor: only a live, stuck holder
// makes a waiter run into its deadline.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_CUDA_FILELOCK_H
#define LOOM_CUDA_FILELOCK_H

#include <chrono>
#include <optional>
#include <string>

namespace loom::cuda {

class FileLock {
public:
  /// The lock on `path` (created, with its directory, if missing), or
  /// nullopt when another holder keeps it past `timeout`. I/O failures
  /// throw loom::Error(Internal) naming the path.
  static std::optional<FileLock> acquire(const std::string &path,
                                         std::chrono::milliseconds timeout);

  FileLock(FileLock &&other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock &operator=(FileLock &&) = delete;
  FileLock(const FileLock &) = delete;
  ~FileLock();

private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

/// How long a compile waits for another thread's or process's compile of the
/// same kernel: $LOOM_COMPILE_WAIT_TIMEOUT seconds, else 600 (a large kernel
/// under NVRTC or the emu host compiler on a loaded node takes minutes).
/// Throws loom::Error(InvalidArgument) naming a value that is not a positive
/// integer.
std::chrono::milliseconds compileWaitTimeout();

} // namespace loom::cuda

#endif
