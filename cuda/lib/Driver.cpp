//===- Driver.cpp - dlopen'ed CUDA driver and RAII wrappers ---------------===//

#include "loom/cuda/Driver.h"

#include "loom/Support/Error.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace loom::cuda {
namespace {

/// Result of the one-time load: either a complete table or the reason.
struct LoadedDriver {
  DriverApi api{};
  std::string error; // empty on success
};

template <typename Fn>
bool resolve(void *lib, Fn &slot, const char *name, std::string &error) {
  slot = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!slot && error.empty())
    error = std::string("no CUDA driver: libcuda.so.1 lacks '") + name +
            "' (driver too old?)";
  return slot != nullptr;
}

LoadedDriver loadDriver() {
  LoadedDriver out;
  // RTLD_LOCAL: keep the driver's symbols out of the global namespace.
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    out.error = std::string("no CUDA driver: dlopen(libcuda.so.1) failed: ") +
                (why ? why : "unknown reason");
    return out;
  }
  DriverApi &d = out.api;
  std::string &e = out.error;
  // Versioned names are the ABI that cuda.h's macros select; resolving them
  // explicitly keeps the pointer types (from cuda.h) and symbols in sync.
  resolve(lib, d.init, "cuInit", e);
  resolve(lib, d.driverGetVersion, "cuDriverGetVersion", e);
  resolve(lib, d.getErrorString, "cuGetErrorString", e);
  resolve(lib, d.getErrorName, "cuGetErrorName", e);
  resolve(lib, d.deviceGet, "cuDeviceGet", e);
  resolve(lib, d.deviceGetCount, "cuDeviceGetCount", e);
  resolve(lib, d.deviceGetAttribute, "cuDeviceGetAttribute", e);
  resolve(lib, d.deviceGetName, "cuDeviceGetName", e);
  resolve(lib, d.devicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", e);
  resolve(lib, d.devicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", e);
  resolve(lib, d.ctxSetCurrent, "cuCtxSetCurrent", e);
  resolve(lib, d.ctxSynchronize, "cuCtxSynchronize", e);
  resolve(lib, d.ctxGetCurrent, "cuCtxGetCurrent", e);
  resolve(lib, d.ctxGetDevice, "cuCtxGetDevice", e);
  resolve(lib, d.ctxPushCurrent, "cuCtxPushCurrent_v2", e);
  resolve(lib, d.ctxPopCurrent, "cuCtxPopCurrent_v2", e);
  resolve(lib, d.moduleLoadData, "cuModuleLoadData", e);
  resolve(lib, d.moduleGetFunction, "cuModuleGetFunction", e);
  resolve(lib, d.moduleUnload, "cuModuleUnload", e);
  resolve(lib, d.funcSetAttribute, "cuFuncSetAttribute", e);
  resolve(lib, d.funcGetAttribute, "cuFuncGetAttribute", e);
  resolve(lib, d.launchKernel, "cuLaunchKernel", e);
  resolve(lib, d.memAlloc, "cuMemAlloc_v2", e);
  resolve(lib, d.memFree, "cuMemFree_v2", e);
  resolve(lib, d.memcpyHtoD, "cuMemcpyHtoD_v2", e);
  resolve(lib, d.memcpyDtoH, "cuMemcpyDtoH_v2", e);
  resolve(lib, d.memcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", e);
  resolve(lib, d.memcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", e);
  resolve(lib, d.memsetD8, "cuMemsetD8_v2", e);
  resolve(lib, d.memcpyAsync, "cuMemcpyAsync", e);
  resolve(lib, d.streamCreate, "cuStreamCreate", e);
  resolve(lib, d.streamDestroy, "cuStreamDestroy_v2", e);
  resolve(lib, d.streamSynchronize, "cuStreamSynchronize", e);
  resolve(lib, d.streamQuery, "cuStreamQuery", e);
  resolve(lib, d.streamGetCtx, "cuStreamGetCtx", e);
  resolve(lib, d.streamWaitEvent, "cuStreamWaitEvent", e);
  resolve(lib, d.eventCreate, "cuEventCreate", e);
  resolve(lib, d.eventRecord, "cuEventRecord", e);
  resolve(lib, d.eventSynchronize, "cuEventSynchronize", e);
  resolve(lib, d.eventQuery, "cuEventQuery", e);
  resolve(lib, d.eventDestroy, "cuEventDestroy_v2", e);
  // cuEventElapsedTime_v2 (12.8+) has the same signature as the original;
  // prefer it, but accept older drivers.
  std::string ignored;
  if (!resolve(lib, d.eventElapsedTime, "cuEventElapsedTime_v2", ignored))
    resolve(lib, d.eventElapsedTime, "cuEventElapsedTime", e);
  if (!e.empty())
    return out;
  if (CUresult r = d.init(0); r != CUDA_SUCCESS) {
    const char *name = nullptr;
    d.getErrorName(r, &name);
    e = std::string("no usable CUDA driver: cuInit failed: ") +
        (name ? name : "unknown error");
  }
  // The library stays open for the life of the process on purpose: kernels
  // and contexts may outlive any owner we could give it.
  return out;
}

const LoadedDriver &loaded() {
  static const LoadedDriver instance = loadDriver();
  return instance;
}

ErrorCode codeFor(CUresult r) {
  switch (r) {
  case CUDA_ERROR_NO_DEVICE:
  case CUDA_ERROR_INVALID_DEVICE:
  case CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER:
  case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
  case CUDA_ERROR_DEVICE_UNAVAILABLE:
  case CUDA_ERROR_DEVICE_NOT_LICENSED:
  case CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE:
  case CUDA_ERROR_OUT_OF_MEMORY:
    return ErrorCode::DeviceUnavailable;
  case CUDA_ERROR_NO_BINARY_FOR_GPU:
  case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
  case CUDA_ERROR_NOT_SUPPORTED:
    return ErrorCode::Unsupported;
  case CUDA_ERROR_INVALID_VALUE:
  case CUDA_ERROR_NOT_FOUND:
  case CUDA_ERROR_INVALID_IMAGE:
    return ErrorCode::InvalidArgument;
  default:
    return ErrorCode::Internal;
  }
}

} // namespace

const DriverApi &driver() {
  const LoadedDriver &d = loaded();
  if (!d.error.empty())
    throw Error(ErrorCode::DeviceUnavailable, d.error);
  return d.api;
}

bool driverAvailable(std::string *why) {
  const LoadedDriver &d = loaded();
  if (why)
    *why = d.error;
  return d.error.empty();
}

void check(CUresult result, const char *call) {
  if (result == CUDA_SUCCESS)
    return;
  const char *name = nullptr, *text = nullptr;
  const DriverApi &d = driver();
  if (d.getErrorName(result, &name) != CUDA_SUCCESS)
    name = nullptr;
  if (d.getErrorString(result, &text) != CUDA_SUCCESS)
    text = nullptr;
  std::string msg = std::string(call) + " failed: " +
                    (name ? name : "CUresult " + std::to_string(result));
  if (text)
    msg += std::string(" (") + text + ")";
  throw Error(codeFor(result), msg);
}

std::string driverVersionString() {
  int v = 0;
  check(driver().driverGetVersion(&v), "cuDriverGetVersion");
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

int deviceCount() {
  if (!driverAvailable())
    return 0;
  int n = 0;
  check(driver().deviceGetCount(&n), "cuDeviceGetCount");
  return n;
}

//===- Context ------------------------------------------------------------===//

Context::Context(int ordinal) {
  const DriverApi &d = driver();
  int count = 0;
  check(d.deviceGetCount(&count), "cuDeviceGetCount");
  if (ordinal < 0 || ordinal >= count)
    throw Error(ErrorCode::DeviceUnavailable,
                "CUDA device " + std::to_string(ordinal) + " does not exist (" +
                    std::to_string(count) + " device(s) present)");
  check(d.deviceGet(&device_, ordinal), "cuDeviceGet");
  check(d.devicePrimaryCtxRetain(&context_, device_), "cuDevicePrimaryCtxRetain");
  makeCurrent();
}

Context::~Context() {
  if (context_)
    driver().devicePrimaryCtxRelease(device_); // no throw from a destructor
}

CUcontext currentOrDefaultContext() {
  CUcontext current = nullptr;
  check(driver().ctxGetCurrent(&current), "cuCtxGetCurrent");
  if (current)
    return current;
  // Never released: modules and allocations made in it may live as long as
  // the process (the kernel cache, static buffers).
  static Context device0(0);
  device0.makeCurrent();
  return device0.handle();
}

void Context::makeCurrent() const { check(driver().ctxSetCurrent(context_), "cuCtxSetCurrent"); }

void Context::synchronize() const { check(driver().ctxSynchronize(), "cuCtxSynchronize"); }

std::string Context::name() const {
  char buf[256] = {};
  check(driver().deviceGetName(buf, sizeof(buf) - 1, device_), "cuDeviceGetName");
  return buf;
}

int Context::attribute(CUdevice_attribute attr) const {
  int v = 0;
  check(driver().deviceGetAttribute(&v, attr, device_), "cuDeviceGetAttribute");
  return v;
}

std::pair<int, int> Context::computeCapability() const {
  return {attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
          attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)};
}

namespace {
std::string archOfDevice(CUdevice device) {
  int major = 0, minor = 0;
  check(driver().deviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
        "cuDeviceGetAttribute");
  check(driver().deviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
        "cuDeviceGetAttribute");
  std::string arch = "sm_" + std::to_string(major * 10 + minor);
  if (major == 9 && minor == 0)
    arch += "a";
  return arch;
}
} // namespace

std::string Context::arch() const { return archOfDevice(device_); }

std::string currentDeviceArch() {
  currentOrDefaultContext();
  CUdevice device = 0;
  check(driver().ctxGetDevice(&device), "cuCtxGetDevice");
  return archOfDevice(device);
}

//===- Module -------------------------------------------------------------===//

Module::Module(std::span<const uint8_t> image) {
  if (image.empty())
    throw Error(ErrorCode::InvalidArgument, "cannot load an empty CUDA module image");
  check(driver().moduleLoadData(&module_, image.data()), "cuModuleLoadData");
}

Module::~Module() {
  if (module_)
    driver().moduleUnload(module_);
}

Module &Module::operator=(Module &&other) noexcept {
  if (this != &other) {
    if (module_)
      driver().moduleUnload(module_);
    module_ = std::exchange(other.module_, nullptr);
  }
  return *this;
}

CUfunction Module::function(const std::string &name) const {
  CUfunction fn = nullptr;
  CUresult r = driver().moduleGetFunction(&fn, module_, name.c_str());
  if (r == CUDA_ERROR_NOT_FOUND)
    throw Error(ErrorCode::InvalidArgument, "kernel '" + name + "' not found in CUDA module");
  check(r, "cuModuleGetFunction");
  return fn;
}

//===- Stream / Event -----------------------------------------------------===//

Stream::Stream() { check(driver().streamCreate(&stream_, CU_STREAM_NON_BLOCKING), "cuStreamCreate"); }

Stream::~Stream() {
  if (stream_)
    driver().streamDestroy(stream_);
}

void Stream::synchronize() const { check(driver().streamSynchronize(stream_), "cuStreamSynchronize"); }

void Stream::waitEvent(CUevent event) const {
  check(driver().streamWaitEvent(stream_, event, 0), "cuStreamWaitEvent");
}

Event::Event(unsigned flags) { check(driver().eventCreate(&event_, flags), "cuEventCreate"); }

Event::~Event() {
  if (event_)
    driver().eventDestroy(event_);
}

void Event::record(CUstream stream) const { check(driver().eventRecord(event_, stream), "cuEventRecord"); }

void Event::synchronize() const { check(driver().eventSynchronize(event_), "cuEventSynchronize"); }

float Event::elapsedMs(const Event &start, const Event &end) {
  float ms = 0;
  check(driver().eventElapsedTime(&ms, start.event_, end.event_), "cuEventElapsedTime");
  return ms;
}

//===- DeviceBuffer -------------------------------------------------------===//

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  // cuMemAlloc rejects 0 bytes; an empty buffer is still a valid value.
  if (bytes)
    check(driver().memAlloc(&ptr_, bytes), "cuMemAlloc");
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_)
    driver().memFree(ptr_);
}

static void checkCopy(size_t bytes, size_t size, const char *what) {
  if (bytes > size)
    throw Error(ErrorCode::InvalidArgument, std::string(what) + " of " + std::to_string(bytes) +
                                                " bytes exceeds device buffer of " +
                                                std::to_string(size) + " bytes");
}

void DeviceBuffer::copyFromHost(const void *src, size_t bytes, CUstream stream) {
  checkCopy(bytes, bytes_, "host-to-device copy");
  if (!bytes)
    return;
  if (stream)
    check(driver().memcpyHtoDAsync(ptr_, src, bytes, stream), "cuMemcpyHtoDAsync");
  else
    check(driver().memcpyHtoD(ptr_, src, bytes), "cuMemcpyHtoD");
}

void DeviceBuffer::copyToHost(void *dst, size_t bytes, CUstream stream) const {
  checkCopy(bytes, bytes_, "device-to-host copy");
  if (!bytes)
    return;
  if (stream)
    check(driver().memcpyDtoHAsync(dst, ptr_, bytes, stream), "cuMemcpyDtoHAsync");
  else
    check(driver().memcpyDtoH(dst, ptr_, bytes), "cuMemcpyDtoH");
}

void DeviceBuffer::fill(uint8_t value) {
  if (bytes_)
    check(driver().memsetD8(ptr_, value, bytes_), "cuMemsetD8");
}

//===- launch -------------------------------------------------------------===//

void launch(CUfunction function, Dim3 grid, Dim3 block, unsigned sharedBytes,
            CUstream stream, void **args) {
  const DriverApi &d = driver();
  constexpr unsigned kDefaultSharedLimit = 48 * 1024;
  if (sharedBytes > kDefaultSharedLimit)
    check(d.funcSetAttribute(function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                             static_cast<int>(sharedBytes)),
          "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
  check(d.launchKernel(function, grid.x, grid.y, grid.z, block.x, block.y, block.z,
                       sharedBytes, stream, args, nullptr),
        "cuLaunchKernel");
  static const bool syncEveryLaunch = [] {
    const char *v = std::getenv("LOOM_CUDA_SYNC_LAUNCH");
    return v && *v && std::string(v) != "0";
  }();
  if (syncEveryLaunch) {
    check(d.streamSynchronize(stream), "kernel execution (cuStreamSynchronize after launch)");
    return;
  }
  // NOT_READY just means the kernel is still running; anything else other
  // than success is a sticky error from this or an earlier launch.
  CUresult r = d.streamQuery(stream);
  if (r != CUDA_ERROR_NOT_READY)
    check(r, "cuStreamQuery after cuLaunchKernel");
}

} // namespace loom::cuda
