//===- DeviceKernel.cpp - the emu and cuda backends -----------------------===//
//
// Both run the CUDA C++ that convert-loom-to-emitc generates: cuda compiles it
// with NVRTC and launches it through the driver API; emu compiles the very
// same source with the host C++ compiler against the emulated primitive layer
// (-DLOOM_DEVICE_EMULATION) and runs each block's threads as fibers.
//
//===----------------------------------------------------------------------===//
#include "DeviceKernel.h"

#include "CpuKernel.h"
#include "Packing.h"

#include "loom/Support/Error.h"
#include "loom/Version.h"
#include "loom/cuda/DiskCache.h"
#include "loom/cuda/FileLock.h"
#include "loom/cuda/Nvrtc.h"
#include "loom/cuda/Driver.h"
#include "loom/device/emu/Executor.h"
#include "loom/runtime/EmuLaunch.h"


#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <mutex>
#include <unistd.h>

namespace loom::runtime {
namespace {
// The active EmuCounterCollector's counters (EmuLaunch.h); launches on
// stream threads add to it, so it is process-wide behind a mutex.
std::mutex collectorMutex;
std::map<std::string, device::emu::Counters> *collector = nullptr;

bool emuCollectorActive() {
  std::lock_guard<std::mutex> lock(collectorMutex);
  return collector != nullptr;
}

void emuCollectorAdd(const std::string &kernel, const device::emu::Counters &c) {
  std::lock_guard<std::mutex> lock(collectorMutex);
  if (collector)
    (*collector)[kernel] += c;
}
} // namespace
} // namespace loom::runtime

namespace loom::runtime {
std::vector<std::string> bindingStrings(const Specialization &spec,
                                        const std::vector<ArgInfo> &sig,
                                        const std::string &kernelName,
                                        std::map<std::string, ScalarValue> &normalized);

Backend resolveBackend(Backend b) {
  if (b != Backend::Auto)
    return b;
  if (const char *env = std::getenv("LOOM_DEVICE"); env && *env) {
    Backend fromEnv = parseBackend(env);
    if (fromEnv != Backend::Auto)
      return fromEnv;
  }
  static const bool haveGpu = [] {
    try {
      return cuda::driverAvailable() && cuda::deviceCount() > 0;
    } catch (const Error &) {
      return false;
    }
  }();
  return haveGpu ? Backend::Cuda : Backend::Cpu;
}

std::vector<std::string> launchSignature(mlir::ModuleOp module, const dsl::Kernel &kernel,
                                         const Specialization &spec, std::vector<ArgInfo> &sig,
                                         std::map<std::string, ScalarValue> &bindings) {
  auto func = *module.getOps<mlir::func::FuncOp>().begin();
  sig = signatureOf(func);
  bindings = spec.bindings;
  return bindingStrings(spec, sig, kernel.name(), bindings);
}

compiler::CudaSource cudaSourceFromModule(mlir::ModuleOp module, const dsl::Kernel &kernel,
                                          const Specialization &spec, std::vector<ArgInfo> &sig,
                                          std::map<std::string, ScalarValue> &bindings,
                                          const compiler::StageCallback &afterStage,
                                          std::vector<compiler::StageTiming> *timings) {
  auto binds = launchSignature(module, kernel, spec, sig, bindings);
  // The emulator runs what a GPU of spec.arch (default sm_80) would: the
  // same pipeline depth under the same shared-memory limit.
  const int64_t maxShared = cuda::maxSharedBytesPerBlock(spec.arch.empty() ? "sm_80" : spec.arch);
  return compiler::generateCuda(module, binds, {spec.numThreads, spec.numStages, maxShared},
                                afterStage, timings);
}

namespace {
double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

/// One 8-byte slot per argument: a pointer or a scalar's bits. Both the
/// driver (kernelParams) and the emulator's packed entry take pointers to them.
struct PackedArgs {
  std::vector<uint64_t> slots;
  std::vector<void *> pointers;
  explicit PackedArgs(std::span<const Arg> args) : slots(args.size(), 0), pointers(args.size()) {
    for (size_t i = 0; i < args.size(); ++i) {
      const Arg &a = args[i];
      slots[i] = a.kind() == Arg::Kind::Buffer ? reinterpret_cast<uint64_t>(a.data())
                                               : scalarBits(a);
      pointers[i] = &slots[i];
    }
  }
};

// --- emu ---------------------------------------------------------------------

std::string emuCompiler() {
  const char *env = std::getenv("LOOM_EMU_CXX");
  return env && *env ? env : "c++";
}

bool hasTileHeader(const std::string &dir) {
  return std::ifstream(dir + "/loom/device/tile.h").good();
}

/// Where the host compiler finds the device library: $LOOM_DEVICE_INCLUDE_DIR,
/// else the source tree this binary was built from, else the include/ of an
/// installed Loom next to this executable's bin/.
std::string emuIncludeDir() {
  if (const char *env = std::getenv("LOOM_DEVICE_INCLUDE_DIR"); env && *env)
    return env;
  if (hasTileHeader(LOOM_DEVICE_INCLUDE_DIR))
    return LOOM_DEVICE_INCLUDE_DIR;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string path(exe, n);
    std::string prefix = path.substr(0, path.rfind('/'));
    prefix = prefix.substr(0, prefix.rfind('/'));
    if (hasTileHeader(prefix + "/include"))
      return prefix + "/include";
  }
  throw Error(ErrorCode::DeviceUnavailable,
              "emulated device: cannot find the device library headers "
              "(loom/device/tile.h); set LOOM_DEVICE_INCLUDE_DIR");
}

std::string commandOutput(const std::string &command) {
  std::string out;
  if (FILE *p = popen(command.c_str(), "r")) {
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof buf, p))
      out.append(buf, n);
    pclose(p);
  }
  return out;
}

const std::string &emuCompilerIdentity() {
  static const std::string id = commandOutput(emuCompiler() + " --version 2>&1");
  return id;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class EmuCompiledKernel : public CompiledKernel {
public:
  EmuCompiledKernel(const dsl::Kernel &kernel, const Specialization &spec, mlir::ModuleOp module,
                    double traceMs, const compiler::StageCallback &afterStage) {
    name_ = kernel.name();
    backend_ = Backend::Emu;
    timings_.push_back({"dsl", traceMs});
    source_ = cudaSourceFromModule(module, kernel, spec, signature_, bindings_, afterStage,
                                   &timings_);
    auto start = std::chrono::steady_clock::now();
    const std::string flags = "-std=c++20 -O1 -fPIC -shared -DLOOM_DEVICE_EMULATION";
    std::string key = hashHex(source_.code + "\n" + flags + "\n" + emuCompilerIdentity() +
                              "\nloom=" LOOM_VERSION_STRING "\n" + readDeviceHeadersStamp());
    // Single-flight across the processes of a node, as for CUBINs.
    cuda::DiskCache cache(cuda::DiskCache::defaultDirectory(), "emu");
    auto fetched = cache.getOrBuild(
        key, [&] { return compileObject(flags); }, cuda::compileWaitTimeout());
    timings_.push_back({fetched.built ? "host-cxx" : "disk-cache", msSince(start)});
    load(fetched.payload);
  }
  ~EmuCompiledKernel() override {
    if (handle_)
      dlclose(handle_);
  }
  const compiler::CudaSource &source() const { return source_; }

  /// launch() with the emulator's options (EmuLaunch.h).
  void launchWith(const Grid &grid, std::span<const Arg> args,
                  const EmuLaunchOptions &options) const {
    checkLaunch(grid, args);
    runWith(grid, args, options);
  }

protected:
  void run(const Grid &grid, std::span<const Arg> args) const override {
    runWith(grid, args, {});
  }

private:
  void runWith(const Grid &grid, std::span<const Arg> args,
               const EmuLaunchOptions &options) const {
    PackedArgs packed(args);
    device::emu::LaunchConfig config;
    config.counters = options.counters;
    config.detect_races = options.detectRaces;
    config.detect_global_races = options.detectGlobalRaces;
    if (options.cpAsyncLandAtIssue)
      config.cp_async_land = device::emu::LaunchConfig::CpAsyncLand::AtIssue;
    config.kernel_name = name_;
    config.grid = device::emu::dim3(grid.dims[0], grid.dims[1], grid.dims[2]);
    config.block = device::emu::dim3(source_.numThreads);
    config.shared_bytes = static_cast<size_t>(source_.sharedBytes);
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i].kind() == Arg::Kind::Buffer)
        config.global_buffers.push_back({args[i].data(),
                                         args[i].numElements() * dtypeSize(args[i].dtype()),
                                         signature_[i].name});
    void **argv = packed.pointers.data();
    auto entry = entry_;
    device::emu::Counters collected;
    const bool collect = !config.counters && emuCollectorActive();
    if (collect)
      config.counters = &collected;
    try {
      device::emu::launch(config, [&] { entry(argv); });
    } catch (const device::EmuError &e) {
      throw Error(ErrorCode::Internal, fmt::format("emulated device: {}", e.what()));
    }
    if (collect)
      emuCollectorAdd(name_, collected);
  }

  /// Device headers are read from disk by the host compiler: their content
  /// is part of the key, and so are the emulation-only headers (not
  /// embedded for NVRTC), whose inline code calls into LoomDeviceEmu.
  static const std::string &readDeviceHeadersStamp() {
    static const std::string stamp = [] {
      std::string all;
      for (const auto &h : deviceHeaders())
        all += h.name + h.contents;
      const std::string dir = emuIncludeDir();
      for (const char *h : {"loom/device/arch/emu.h", "loom/device/emu/Executor.h",
                            "loom/device/emu/Counters.h"})
        all += std::string(h) + readFile(dir + "/" + h);
      return hashHex(all + dir);
    }();
    return stamp;
  }

  std::vector<uint8_t> compileObject(const std::string &flags) {
    char dir[] = "/tmp/loom-emu-XXXXXX";
    if (!mkdtemp(dir))
      throw Error(ErrorCode::Internal, "cannot create a temporary directory for the emu build");
    std::string base = std::string(dir) + "/" + name_;
    {
      std::ofstream src(base + ".cpp");
      src << source_.code;
    }
    std::string command = fmt::format("{} {} -I'{}' -o '{}.so' '{}.cpp' > '{}.log' 2>&1",
                                      emuCompiler(), flags, emuIncludeDir(), base, base, base);
    int rc = std::system(command.c_str());
    if (rc != 0)
      throw Error(ErrorCode::CompileFailed,
                  fmt::format("host compile of kernel '{}' for the emulated device failed "
                              "(source kept at {}.cpp):\n{}",
                              name_, base, readFile(base + ".log")));
    std::string obj = readFile(base + ".so");
    std::remove((base + ".so").c_str());
    std::remove((base + ".cpp").c_str());
    std::remove((base + ".log").c_str());
    rmdir(dir);
    return std::vector<uint8_t>(obj.begin(), obj.end());
  }

  void load(const std::vector<uint8_t> &object) {
    char path[] = "/tmp/loom-emu-XXXXXX.so";
    int fd = mkstemps(path, 3);
    if (fd < 0)
      throw Error(ErrorCode::Internal, "cannot create a temporary file for the emu kernel");
    bool ok = write(fd, object.data(), object.size()) == static_cast<ssize_t>(object.size());
    close(fd);
    handle_ = ok ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    std::string why = ok ? (handle_ ? "" : dlerror()) : "short write";
    std::remove(path); // the mapping stays valid
    if (!handle_)
      throw Error(ErrorCode::Internal,
                  fmt::format("cannot load emulated kernel '{}': {}", name_, why));
    std::string symbol = source_.kernelName + "_packed";
    entry_ = reinterpret_cast<void (*)(void **)>(dlsym(handle_, symbol.c_str()));
    if (!entry_)
      throw Error(ErrorCode::Internal,
                  fmt::format("emulated kernel object has no '{}'", symbol));
  }

  compiler::CudaSource source_;
  void *handle_ = nullptr;
  void (*entry_)(void **) = nullptr;
};

// --- cuda --------------------------------------------------------------------

class CudaCompiledKernel : public CompiledKernel {
public:
  CudaCompiledKernel(const dsl::Kernel &kernel, const Specialization &spec, mlir::ModuleOp module,
                     double traceMs, const compiler::StageCallback &afterStage) {
    name_ = kernel.name();
    backend_ = Backend::Cuda;
    timings_.push_back({"dsl", traceMs});
    CudaBuildOptions options;
    options.arch = spec.arch;
    options.numThreads = spec.numThreads;
    buildCudaFromModule(build_, module, kernel, spec, options, bindings_, afterStage);
    signature_ = build_.signature;
    timings_.insert(timings_.end(), build_.timings.begin(), build_.timings.end());
  }

protected:
  void run(const Grid &grid, std::span<const Arg> args) const override {
    // The legacy default stream of the calling thread's context (device 0's
    // primary context made current if it has none, as Memory does).
    ContextScope scope(cuda::currentOrDefaultContext());
    launchIn(scope.context(), grid, args, nullptr);
    cuda::check(cuda::driver().ctxSynchronize(), "cuCtxSynchronize");
  }

  /// Asynchronous on `stream` (the legacy default stream when null). The
  /// module comes from the stream's context, made current for the launch
  /// only when it is not already, so launching on another device's stream
  /// (one thread driving several GPUs, as the NCCL ring does) works and
  /// leaves the thread's current context as it was.
  void runOnStream(const Grid &grid, std::span<const Arg> args, void *stream) const override {
    CUcontext context = nullptr;
    if (stream)
      cuda::check(cuda::driver().streamGetCtx(static_cast<CUstream>(stream), &context),
                  "cuStreamGetCtx");
    else
      context = cuda::currentOrDefaultContext();
    ContextScope scope(context);
    launchIn(context, grid, args, stream);
  }

private:
  /// Makes `context` current until the end of the scope when it is not
  /// already (cuCtxPushCurrent/cuCtxPopCurrent), so a launch does not change
  /// the calling thread's current context behind its back.
  class ContextScope {
  public:
    explicit ContextScope(CUcontext context) : context_(context) {
      CUcontext current = nullptr;
      cuda::check(cuda::driver().ctxGetCurrent(&current), "cuCtxGetCurrent");
      if (current != context_) {
        cuda::check(cuda::driver().ctxPushCurrent(context_), "cuCtxPushCurrent");
        pushed_ = true;
      }
    }
    ~ContextScope() {
      CUcontext popped = nullptr;
      if (pushed_)
        cuda::driver().ctxPopCurrent(&popped); // no throw from a destructor
    }
    ContextScope(const ContextScope &) = delete;
    ContextScope &operator=(const ContextScope &) = delete;
    CUcontext context() const { return context_; }

  private:
    CUcontext context_;
    bool pushed_ = false;
  };

  void launchIn(CUcontext context, const Grid &grid, std::span<const Arg> args,
                void *stream) const {
    CUfunction function = functionFor(context);
    PackedArgs packed(args); // cuLaunchKernel copies the argument values
    cuda::launch(function, {grid.dims[0], grid.dims[1], grid.dims[2]},
                 {build_.source.numThreads, 1, 1},
                 static_cast<unsigned>(build_.source.sharedBytes),
                 static_cast<CUstream>(stream), packed.pointers.data());
  }

  /// The module is loaded once per context (modules belong to one), which
  /// must be current. The cache is keyed by the CUcontext handle, so it
  /// relies on that context staying alive as long as this kernel: true for
  /// primary contexts held retained (cuda::Context, the process-wide
  /// default); a context destroyed and recreated could reuse the handle.
  CUfunction functionFor(CUcontext context) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = loaded_.find(context);
    if (it == loaded_.end()) {
      auto module = std::make_unique<cuda::Module>(build_.binary.cubin);
      CUfunction fn = module->function(build_.source.kernelName);
      it = loaded_.emplace(context, Loaded{std::move(module), fn}).first;
    }
    return it->second.function;
  }

  struct Loaded {
    std::unique_ptr<cuda::Module> module;
    CUfunction function = nullptr;
  };
  CudaBuild build_;
  mutable std::mutex mutex_;
  mutable std::map<CUcontext, Loaded> loaded_;
};
} // namespace

std::shared_ptr<CompiledKernel> makeCompiledKernel(const dsl::Kernel &kernel,
                                                   const Specialization &spec,
                                                   mlir::ModuleOp module, double traceMs,
                                                   const compiler::StageCallback &afterStage) {
  switch (resolveBackend(spec.backend)) {
  case Backend::Emu:
    return std::make_shared<EmuCompiledKernel>(kernel, spec, module, traceMs, afterStage);
  case Backend::Cuda:
    // Fail before compiling when there is no driver: the error a user needs.
    if (std::string why; !cuda::driverAvailable(&why))
      throw Error(ErrorCode::DeviceUnavailable,
                  fmt::format("backend 'cuda' for kernel '{}': {}", kernel.name(), why));
    return std::make_shared<CudaCompiledKernel>(kernel, spec, module, traceMs, afterStage);
  default:
    return std::make_shared<CpuCompiledKernel>(kernel, spec, module, traceMs, afterStage);
  }
}

} // namespace loom::runtime

namespace loom::runtime {
void launchEmulated(const CompiledKernel &kernel, const Grid &grid, std::span<const Arg> args,
                    const EmuLaunchOptions &options) {
  const auto *emu = dynamic_cast<const EmuCompiledKernel *>(&kernel);
  if (!emu)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("kernel '{}' is compiled for the {} backend; the emulator's checks "
                            "and counters need the emu backend",
                            kernel.name(), backendName(kernel.backend())));
  emu->launchWith(grid, args, options);
}

device::emu::Counters emuCounters(const CompiledKernel &kernel, const Grid &grid,
                                  std::span<const Arg> args) {
  device::emu::Counters counters;
  launchEmulated(kernel, grid, args, {.counters = &counters});
  return counters;
}
EmuCounterCollector::EmuCounterCollector() {
  std::lock_guard<std::mutex> lock(collectorMutex);
  if (collector)
    throw Error(ErrorCode::InvalidArgument,
                "EmuCounterCollector: another collector is already active");
  collector = new std::map<std::string, device::emu::Counters>();
}

EmuCounterCollector::~EmuCounterCollector() {
  std::lock_guard<std::mutex> lock(collectorMutex);
  delete collector;
  collector = nullptr;
}

std::map<std::string, device::emu::Counters> EmuCounterCollector::byKernel() const {
  std::lock_guard<std::mutex> lock(collectorMutex);
  return collector ? *collector : std::map<std::string, device::emu::Counters>{};
}
} // namespace loom::runtime
