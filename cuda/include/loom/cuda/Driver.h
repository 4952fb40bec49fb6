//===- Driver.h - CUDA driver API loaded at run time ------------*- C++ -*-===//
//
// Loom never links libcuda: it is opened with dlopen("libcuda.so.1") on first
// use, so the same binaries run (CPU and emu paths, NVRTC compiles) on
// machines without a GPU driver. A missing driver is a user-reachable
// condition and surfaces as loom::Error(DeviceUnavailable).
//
// Only cuda.h's *types* are used here; the function pointers are typed with
// decltype of cuda.h's declarations, which after cuda.h's own #defines name
// the versioned ABI (cuMemAlloc -> cuMemAlloc_v2) that we also dlsym.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_CUDA_DRIVER_H
#define LOOM_CUDA_DRIVER_H

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

namespace loom::cuda {

/// Function pointers into libcuda.so.1. Names drop the `cu` prefix.
struct DriverApi {
  decltype(&::cuInit) init;
  decltype(&::cuDriverGetVersion) driverGetVersion;
  decltype(&::cuGetErrorString) getErrorString;
  decltype(&::cuGetErrorName) getErrorName;
  decltype(&::cuDeviceGet) deviceGet;
  decltype(&::cuDeviceGetCount) deviceGetCount;
  decltype(&::cuDeviceGetAttribute) deviceGetAttribute;
  decltype(&::cuDeviceGetName) deviceGetName;
  decltype(&::cuDevicePrimaryCtxRetain) devicePrimaryCtxRetain;
  decltype(&::cuDevicePrimaryCtxRelease) devicePrimaryCtxRelease;
  decltype(&::cuCtxSetCurrent) ctxSetCurrent;
  decltype(&::cuCtxSynchronize) ctxSynchronize;
  decltype(&::cuCtxGetCurrent) ctxGetCurrent;
  decltype(&::cuCtxGetDevice) ctxGetDevice;
  decltype(&::cuCtxPushCurrent) ctxPushCurrent;
  decltype(&::cuCtxPopCurrent) ctxPopCurrent;
  decltype(&::cuModuleLoadData) moduleLoadData;
  decltype(&::cuModuleGetFunction) moduleGetFunction;
  decltype(&::cuModuleUnload) moduleUnload;
  decltype(&::cuFuncSetAttribute) funcSetAttribute;
  decltype(&::cuFuncGetAttribute) funcGetAttribute;
  decltype(&::cuLaunchKernel) launchKernel;
  decltype(&::cuMemAlloc) memAlloc;
  decltype(&::cuMemFree) memFree;
  decltype(&::cuMemcpyHtoD) memcpyHtoD;
  decltype(&::cuMemcpyDtoH) memcpyDtoH;
  decltype(&::cuMemcpyHtoDAsync) memcpyHtoDAsync;
  decltype(&::cuMemcpyDtoHAsync) memcpyDtoHAsync;
  decltype(&::cuMemsetD8) memsetD8;
  /// Any direction (unified addressing), asynchronous on a stream.
  decltype(&::cuMemcpyAsync) memcpyAsync;
  decltype(&::cuStreamCreate) streamCreate;
  decltype(&::cuStreamDestroy) streamDestroy;
  decltype(&::cuStreamSynchronize) streamSynchronize;
  decltype(&::cuStreamQuery) streamQuery;
  decltype(&::cuStreamGetCtx) streamGetCtx;
  decltype(&::cuStreamWaitEvent) streamWaitEvent;
  decltype(&::cuEventCreate) eventCreate;
  decltype(&::cuEventRecord) eventRecord;
  decltype(&::cuEventSynchronize) eventSynchronize;
  decltype(&::cuEventQuery) eventQuery;
  decltype(&::cuEventElapsedTime) eventElapsedTime;
  decltype(&::cuEventDestroy) eventDestroy;
};

/// The loaded driver, loading it on first call (thread-safe). Throws
/// loom::Error(DeviceUnavailable) when libcuda.so.1 cannot be opened or lacks
/// a required entry point.
const DriverApi &driver();

/// True when driver() would succeed; otherwise fills *why with the reason.
bool driverAvailable(std::string *why = nullptr);

/// Throws loom::Error naming `call` and the driver's error string unless
/// result is CUDA_SUCCESS.
void check(CUresult result, const char *call);

/// Driver version as "13.0" (from cuDriverGetVersion).
std::string driverVersionString();

/// Number of CUDA devices; 0 when no driver is installed (never throws for
/// a missing driver, so callers can probe).
int deviceCount();

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/// A device's primary context, made current on the calling thread. Primary
/// contexts are what the CUDA runtime uses, so Loom shares one context (and
/// its memory) with cuBLAS, PyTorch and friends in the same process.
class Context {
public:
  explicit Context(int ordinal = 0);
  ~Context();
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;

  /// Binds this context to the calling thread (needed once per thread).
  void makeCurrent() const;
  void synchronize() const;

  CUdevice device() const { return device_; }
  CUcontext handle() const { return context_; }
  std::string name() const;
  int attribute(CUdevice_attribute attr) const;
  std::pair<int, int> computeCapability() const;
  /// NVRTC target for this device: "sm_86"; "sm_90a" on 9.0 so that the
  /// arch-specific instructions (wgmma, setmaxnreg) are available. An sm_90a
  /// cubin only runs on 9.0 devices, which is exactly the device at hand.
  std::string arch() const;

private:
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
};

/// The calling thread's current context; when it has none, makes device
/// 0's primary context current (retained for the life of the process, so
/// modules and allocations made in it stay valid) and returns it.
CUcontext currentOrDefaultContext();

/// The NVRTC target (as Context::arch()) of the device of
/// currentOrDefaultContext(): what a kernel launched from this thread runs on.
std::string currentDeviceArch();

/// A loaded cubin (or PTX) image.
class Module {
public:
  /// `image` must be a complete cubin/fatbin, or NUL-terminated PTX.
  explicit Module(std::span<const uint8_t> image);
  ~Module();
  Module(Module &&other) noexcept : module_(std::exchange(other.module_, nullptr)) {}
  Module &operator=(Module &&other) noexcept;
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;

  /// Throws loom::Error(InvalidArgument) naming the kernel if absent.
  CUfunction function(const std::string &name) const;
  CUmodule handle() const { return module_; }

private:
  CUmodule module_ = nullptr;
};

class Stream {
public:
  /// Non-blocking: Loom streams never implicitly sync with the legacy
  /// default stream.
  Stream();
  ~Stream();
  Stream(Stream &&other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;
  Stream &operator=(Stream &&) = delete;

  void synchronize() const;
  void waitEvent(CUevent event) const;
  CUstream handle() const { return stream_; }

private:
  CUstream stream_ = nullptr;
};

class Event {
public:
  explicit Event(unsigned flags = CU_EVENT_DEFAULT);
  ~Event();
  Event(Event &&other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
  Event(const Event &) = delete;
  Event &operator=(const Event &) = delete;
  Event &operator=(Event &&) = delete;

  void record(CUstream stream) const;
  void synchronize() const;
  /// Milliseconds between two recorded events (start recorded first).
  static float elapsedMs(const Event &start, const Event &end);
  CUevent handle() const { return event_; }

private:
  CUevent event_ = nullptr;
};

/// Device memory with its size, so copies can be bounds-checked.
class DeviceBuffer {
public:
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer &&other) noexcept
      : ptr_(std::exchange(other.ptr_, 0)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(DeviceBuffer &&) = delete;

  /// Copies throw loom::Error(InvalidArgument) when `bytes` exceeds size().
  /// With a stream they are asynchronous (host memory must stay alive).
  void copyFromHost(const void *src, size_t bytes, CUstream stream = nullptr);
  void copyToHost(void *dst, size_t bytes, CUstream stream = nullptr) const;
  void fill(uint8_t value);

  CUdeviceptr ptr() const { return ptr_; }
  size_t size() const { return bytes_; }

private:
  CUdeviceptr ptr_ = 0;
  size_t bytes_ = 0;
};

/// Launches `function`. Raises the dynamic shared-memory limit when
/// sharedBytes > 48 KiB (the driver rejects such launches otherwise), checks
/// the launch result, and then queries the stream so that a sticky error left
/// by an earlier faulting kernel is reported here instead of being lost.
/// Set LOOM_CUDA_SYNC_LAUNCH=1 to synchronize after every launch, which pins
/// an asynchronous fault on the kernel that caused it.
void launch(CUfunction function, Dim3 grid, Dim3 block, unsigned sharedBytes,
            CUstream stream, void **args);

} // namespace loom::cuda

#endif
