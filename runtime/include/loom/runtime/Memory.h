//===- Memory.h - buffers in the memory a backend's kernels address -*- C++ -*-===//
//
// Kernels on the cpu and emu backends take host pointers; on the cuda
// backend they take device pointers (CUdeviceptr). Memory allocates in the
// right place for a backend so that code written once (attention scratch,
// the ring's transfer buffers and accumulators) runs on any of them:
//   - cpu, emu: host memory, 64-byte aligned;
//   - cuda: cuMemAlloc in the calling thread's current context (the device
//     0 primary context when none is current), through the dlopen'ed driver,
//     so it throws DeviceUnavailable ("no CUDA driver ...") without one.
// The contents start undefined. copyAsync moves bytes within a backend's
// memory in a stream's order, the way its kernels see them.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_MEMORY_H
#define LOOM_RUNTIME_MEMORY_H

#include "loom/runtime/Kernel.h"

#include <cstddef>
#include <memory>

namespace loom::runtime {

class Stream;

class Memory {
public:
  Memory() = default;
  /// `bytes` (0 allowed: data() is then still a valid, unique pointer) on
  /// `backend` (Auto resolved as resolveBackend() does).
  Memory(Backend backend, size_t bytes);
  ~Memory();
  Memory(Memory &&other) noexcept;
  Memory &operator=(Memory &&other) noexcept;
  Memory(const Memory &) = delete;
  Memory &operator=(const Memory &) = delete;

  /// The address kernels of this backend take (a CUdeviceptr as a pointer
  /// on cuda: never dereference it on the host there).
  void *data() const { return data_; }
  template <typename T> T *as() const { return static_cast<T *>(data_); }
  size_t bytes() const { return bytes_; }
  Backend backend() const { return backend_; }

private:
  void release();
  Backend backend_ = Backend::Cpu;
  void *data_ = nullptr;
  size_t bytes_ = 0;
};

/// Copies `bytes` from `src` to `dst` (both in the memory of the stream's
/// backend; they must not overlap) after the work submitted so far: a
/// memcpy on a CPU stream's thread, cuMemcpyAsync on a CUDA stream. Both
/// buffers must stay alive until the stream has reached the copy.
void copyAsync(Stream &stream, void *dst, const void *src, size_t bytes);

} // namespace loom::runtime

#endif
