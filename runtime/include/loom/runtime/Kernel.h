//===- Kernel.h - compiling and launching kernels from host C++ -*- C++ -*-===//
//
//   auto k = loom::runtime::compile(softmaxKernel(), {.constants = {{"BLOCK", 128}}});
//   k->launch({rows}, {Arg::buffer(x), Arg::buffer(y), Arg::i32(n), Arg::i32(n)});
//
// compile() traces the DSL kernel with the specialization's constants, binds
// the requested scalar arguments, lowers and JIT-compiles it, and caches the
// result in memory (see KernelCache). launch() checks every argument against
// the kernel's signature and runs one program instance per grid point on a
// CPU thread pool.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_KERNEL_H
#define LOOM_RUNTIME_KERNEL_H

#include "loom/Compiler/CpuPipeline.h"
#include "loom/dsl/Kernel.h"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace loom::runtime {

/// Where a kernel runs. Auto reads $LOOM_DEVICE (cpu, emu, cuda, auto) and
/// otherwise picks cuda when a CUDA driver and device are present, else cpu.
/// Emu runs the generated CUDA C++ on the CPU, thread by thread, with the
/// emulated device (see device/): slow, but it executes the GPU code path.
/// For cuda, buffer arguments are device pointers (CUdeviceptr).
enum class Backend { Auto, Cpu, Emu, Cuda };

const char *backendName(Backend b);
/// Parses cpu|emu|cuda|auto; throws InvalidArgument naming the value.
Backend parseBackend(const std::string &name);
/// Auto resolved as described above; others unchanged.
Backend resolveBackend(Backend b);

using ScalarValue = std::variant<int64_t, double>;

/// How one kernel is specialized: trace-time constants (tile shapes, loop
/// structure) and scalar arguments bound to fixed values and folded.
struct Specialization {
  dsl::Constants constants{};
  std::map<std::string, ScalarValue> bindings{};
  Backend backend = Backend::Auto;
  unsigned optLevel = 2;
  /// CUDA and emu backends: threads per block and GPU architecture. An
  /// empty arch is resolved when compiling: the current CUDA device's (the
  /// calling thread's context, device 0's otherwise) on the cuda backend,
  /// so a kernel is built for the GPU it runs on; sm_80 on emu.
  unsigned numThreads = 128;
  std::string arch{};
  /// CUDA and emu backends: shared-memory slots per pipelined dot operand
  /// (Triton's num_stages; copies run numStages - 1 loop iterations ahead,
  /// 0 turns pipelining off). At most 8.
  unsigned numStages = 2;
  /// CPU backend: the instruction-set level kernels are generated for, one of
  /// host, x86-64-v2 (SSE4.2), x86-64-v3 (AVX2, FMA, F16C), x86-64-v4
  /// (AVX-512). Empty means $LOOM_CPU_TARGET, else host. A level above what
  /// the host runs is refused (loom::Error, Unsupported).
  std::string cpuTarget{};
  /// CPU backend: threads each launch runs its programs on (ThreadPool.h);
  /// 0 means defaultCpuThreads() ($LOOM_NUM_THREADS, else every core), read
  /// at each launch. Above kMaxCpuThreads is refused at compile time.
  unsigned cpuThreads = 0;

  /// Stable text of every field, part of the cache key.
  std::string key() const;
};

/// One launch argument: a buffer (pointer, dtype, element count) or scalar.
class Arg {
public:
  static Arg buffer(const void *data, DType dtype, size_t numElements);
  template <typename T> static Arg buffer(std::span<T> data);
  template <typename T> static Arg buffer(std::vector<T> &data) {
    return buffer(std::span<T>(data));
  }
  static Arg i32(int32_t v) { return Arg(Kind::Scalar, DType::I32, int64_t(v)); }
  static Arg i64(int64_t v) { return Arg(Kind::Scalar, DType::I64, v); }
  static Arg f32(float v) { return Arg(Kind::Scalar, DType::F32, double(v)); }

  enum class Kind { Buffer, Scalar };
  Kind kind() const { return kind_; }
  DType dtype() const { return dtype_; }
  const void *data() const { return data_; }
  size_t numElements() const { return numElements_; }
  ScalarValue scalar() const { return scalar_; }
  std::string describe() const;

private:
  Arg(Kind kind, DType dtype, ScalarValue v) : kind_(kind), dtype_(dtype), scalar_(v) {}
  Kind kind_;
  DType dtype_;
  const void *data_ = nullptr;
  size_t numElements_ = 0;
  ScalarValue scalar_ = int64_t(0);
};

struct ArgInfo {
  std::string name;
  bool isPointer;
  DType dtype;
};

struct Grid {
  Grid(uint32_t x = 1, uint32_t y = 1, uint32_t z = 1) : dims{x, y, z} {}
  std::array<uint32_t, 3> dims;
  uint64_t size() const { return uint64_t(dims[0]) * dims[1] * dims[2]; }
};

class Stream;

class CompiledKernel : public std::enable_shared_from_this<CompiledKernel> {
public:
  virtual ~CompiledKernel() = default;
  const std::string &name() const { return name_; }
  const std::vector<ArgInfo> &signature() const { return signature_; }
  /// Bound scalar arguments (checked against the values passed at launch).
  const std::map<std::string, ScalarValue> &bindings() const { return bindings_; }
  /// Milliseconds of each compile stage (dsl, specialize, linalg, ..., jit).
  const std::vector<compiler::StageTiming> &timings() const { return timings_; }
  const std::string &cacheKey() const { return cacheKey_; }
  Backend backend() const { return backend_; }
  void setCacheKey(std::string key) { cacheKey_ = std::move(key); }

  /// Runs the kernel over `grid`; returns when every program has finished.
  /// Throws loom::Error(InvalidArgument) for a bad grid or argument.
  void launch(const Grid &grid, std::span<const Arg> args) const;
  void launch(const Grid &grid, std::initializer_list<Arg> args) const {
    launch(grid, std::span<const Arg>(args.begin(), args.size()));
  }
  /// Checks the arguments now and runs the kernel in `stream`'s order: on a
  /// CPU stream (cpu and emu kernels) the launch runs on the stream's thread
  /// and the buffers must stay alive until it has (synchronize or wait on an
  /// event); on a CUDA stream (cuda kernels) it is enqueued asynchronously on
  /// the CUstream. A kernel whose backend does not match the stream's is an
  /// InvalidArgument error naming both. The kernel must be owned by a
  /// shared_ptr (as compile() returns it).
  void launch(Stream &stream, const Grid &grid, std::span<const Arg> args) const;

protected:
  /// Backend part of launch, after the checks.
  virtual void run(const Grid &grid, std::span<const Arg> args) const = 0;
  /// Enqueues the launch on a CUstream (cuda kernels only).
  virtual void runOnStream(const Grid &grid, std::span<const Arg> args, void *stream) const;
  /// The checks of launch(), throwing InvalidArgument.
  void checkLaunch(const Grid &grid, std::span<const Arg> args) const;

  std::string name_;
  std::vector<ArgInfo> signature_;
  std::map<std::string, ScalarValue> bindings_;
  std::vector<compiler::StageTiming> timings_;
  std::string cacheKey_;
  Backend backend_ = Backend::Cpu;
};

/// In-memory cache of compiled kernels. A lookup first uses the kernel's
/// identity and the specialization (no tracing: microseconds); on a miss the
/// kernel is traced and its IR text hashed, so identical IR from another
/// Kernel object is shared instead of recompiled.
///
/// Single-flight: concurrent requests for the same identity or IR key (the
/// ranks of an in-process ring missing together) wait for the one request
/// that traces or compiles it and share its result, or its error: a failed
/// compile is rethrown to every request waiting on it and then forgotten, so
/// a later request compiles again. A wait longer than compileWaitTimeout()
/// ($LOOM_COMPILE_WAIT_TIMEOUT) throws loom::Error(CommTimeout) naming the
/// kernel and key. Across processes, the emu and cuda backends build through
/// the disk cache, which makes a miss single-flight on the node (see
/// cuda::DiskCache::getOrBuild); the cpu backend has no disk cache, so each
/// process JIT-compiles its own kernels once.
class KernelCache {
public:
  static KernelCache &global();
  std::shared_ptr<const CompiledKernel> getOrCompile(const dsl::Kernel &kernel,
                                                     const Specialization &spec);
  struct Stats {
    /// Requests served from a finished entry: by identity, by IR key.
    uint64_t hits = 0, irHits = 0;
    /// Compiles started (a miss on both), and those that failed.
    uint64_t misses = 0, failures = 0;
    /// Requests that found their identity or IR key in flight and waited
    /// for another thread's trace or compile instead of doing it again.
    uint64_t waits = 0;
    /// Compiles started per IR key (cacheKey()): 1 each unless a failed
    /// compile was retried or the cache was cleared in between.
    std::map<std::string, uint64_t> compilesByKey{};
  };
  Stats stats() const;
  /// Milliseconds the calling thread has spent in getOrCompile (lookups,
  /// traces, compiles and waits for another thread's compile), over the
  /// thread's life: the difference across a call is that call's compile
  /// and cache time (`loom attention --repeat`).
  static double threadMs();
  void clear();
  /// Called on the compiling thread, with the IR key, just before each
  /// compile (empty: none). Tests use it to hold a compile until all the
  /// requests meant to wait on it are waiting.
  void setCompileHook(std::function<void(const std::string &key)> hook);

private:
  struct Impl;
  KernelCache();
  std::shared_ptr<Impl> impl_;
};

/// KernelCache::global().getOrCompile(kernel, spec).
std::shared_ptr<const CompiledKernel> compile(const dsl::Kernel &kernel,
                                              const Specialization &spec = {});

/// Compiles without any cache, reporting the IR after each stage to
/// `afterStage` (used by `loom compile --emit`).
std::shared_ptr<const CompiledKernel>
compileUncached(const dsl::Kernel &kernel, const Specialization &spec,
                const compiler::StageCallback &afterStage = {});

template <typename T> Arg Arg::buffer(std::span<T> data) {
  using U = std::remove_const_t<T>;
  DType dtype;
  if constexpr (std::is_same_v<U, float>) dtype = DType::F32;
  else if constexpr (std::is_same_v<U, int32_t>) dtype = DType::I32;
  else if constexpr (std::is_same_v<U, int64_t>) dtype = DType::I64;
  else static_assert(sizeof(U) == 0, "use Arg::buffer(ptr, dtype, n) for this type");
  return buffer(data.data(), dtype, data.size());
}

} // namespace loom::runtime

#endif
