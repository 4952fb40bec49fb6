//===- Memory.cpp - host or device buffers per backend --------------------===//
#include "loom/runtime/Memory.h"
#include "loom/runtime/Stream.h"

#include "loom/Support/Error.h"
#include "loom/cuda/Driver.h"

#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <utility>

namespace loom::runtime {


Memory::Memory(Backend backend, size_t bytes)
    : backend_(resolveBackend(backend)), bytes_(bytes) {
  // 256-byte alignment, as cuMemAlloc gives: the emulator's sector and
  // wavefront counters then see the addresses a GPU allocation would.
  constexpr size_t kAlignment = 256;
  size_t padded = std::max<size_t>((bytes + kAlignment - 1) / kAlignment * kAlignment, kAlignment);
  if (backend_ == Backend::Cuda) {
    std::string why;
    if (!cuda::driverAvailable(&why))
      throw Error(ErrorCode::DeviceUnavailable,
                  fmt::format("cannot allocate {} bytes of CUDA device memory: {}", bytes, why));
    // Allocations need a current context: a thread with none gets device
    // 0's primary context, as kernels launched from it do.
    cuda::currentOrDefaultContext();
    CUdeviceptr ptr = 0;
    cuda::check(cuda::driver().memAlloc(&ptr, padded), "cuMemAlloc");
    data_ = reinterpret_cast<void *>(static_cast<uintptr_t>(ptr));
    return;
  }
  data_ = std::aligned_alloc(kAlignment, padded);
  if (!data_)
    throw Error(ErrorCode::DeviceUnavailable,
                fmt::format("cannot allocate {} bytes of host memory", bytes));
}

void Memory::release() {
  if (!data_)
    return;
  if (backend_ == Backend::Cuda)
    cuda::driver().memFree(static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(data_)));
  else
    std::free(data_);
  data_ = nullptr;
}

Memory::~Memory() { release(); }

Memory::Memory(Memory &&other) noexcept
    : backend_(other.backend_), data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

Memory &Memory::operator=(Memory &&other) noexcept {
  if (this != &other) {
    release();
    backend_ = other.backend_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void copyAsync(Stream &stream, void *dst, const void *src, size_t bytes) {
  if (!bytes)
    return;
  if (!dst || !src)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("copyAsync of {} bytes on stream '{}': null {} pointer", bytes,
                            stream.name(), dst ? "source" : "destination"));
  if (stream.backend() == Backend::Cuda) {
    stream.submit([=](const StreamContext &context) {
      cuda::check(cuda::driver().memcpyAsync(
                      static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(dst)),
                      static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(src)), bytes,
                      static_cast<CUstream>(context.nativeStream)),
                  "cuMemcpyAsync");
    });
    return;
  }
  stream.submit([=](const StreamContext &) { std::memcpy(dst, src, bytes); });
}

} // namespace loom::runtime
