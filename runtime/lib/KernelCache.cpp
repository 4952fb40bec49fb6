//===- KernelCache.cpp - in-memory cache of compiled kernels --------------===//
#include "CpuKernel.h"
#include "DeviceKernel.h"
#include "Packing.h"

#include "loom/Support/Error.h"
#include "loom/cuda/Driver.h"
#include "loom/cuda/FileLock.h"
#include "loom/Version.h"

#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <fmt/format.h>
#include <future>
#include <mutex>
#include <unordered_map>

namespace loom::runtime {

using Compiled = std::shared_ptr<const CompiledKernel>;

namespace {
/// One trace or compile, in flight or done: every request for its key
/// shares its result or its error.
struct Flight {
  std::promise<Compiled> promise;
  std::shared_future<Compiled> result = promise.get_future().share();
};
using Flights = std::unordered_map<std::string, std::shared_ptr<Flight>>;
} // namespace

struct KernelCache::Impl {
  mutable std::mutex mutex;
  Flights byIdentity, byIr;
  Stats stats;
  std::function<void(const std::string &)> compileHook;

  /// The flight for `key` in `flights` and whether this request owns it (it
  /// was absent: the caller must finish it). A finished flight counts in
  /// `hits`, one in progress in stats.waits.
  std::pair<std::shared_ptr<Flight>, bool> join(Flights &flights, const std::string &key,
                                                uint64_t Stats::*hits) {
    std::lock_guard<std::mutex> lock(mutex);
    auto [it, inserted] = flights.try_emplace(key);
    if (inserted) {
      it->second = std::make_shared<Flight>();
      return {it->second, true};
    }
    bool done = it->second->result.wait_for(std::chrono::seconds(0)) ==
                std::future_status::ready;
    ++(done ? stats.*hits : stats.waits);
    return {it->second, false};
  }

  /// Fails `flight` with the exception in flight and forgets it (unless the
  /// cache was cleared and it is gone already), so the next request retries.
  void fail(Flights &flights, const std::string &key, const std::shared_ptr<Flight> &flight) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (auto it = flights.find(key); it != flights.end() && it->second == flight)
        flights.erase(it);
    }
    flight->promise.set_exception(std::current_exception());
  }

  /// Runs `work` as the owner of `flight`: its result or error goes to every
  /// request waiting on it.
  template <typename Work>
  Compiled own(Flights &flights, const std::string &key, const std::shared_ptr<Flight> &flight,
               Work &&work) {
    try {
      Compiled compiled = work();
      flight->promise.set_value(compiled);
      return compiled;
    } catch (...) {
      fail(flights, key, flight);
      throw;
    }
  }
};

namespace {
/// The result of another request's flight, waited for with a deadline (a
/// compile stuck in another thread must not hang this one silently).
Compiled await(const Flight &flight, const std::string &kernelName, const std::string &key) {
  std::chrono::milliseconds timeout = cuda::compileWaitTimeout();
  if (flight.result.wait_for(timeout) != std::future_status::ready)
    throw Error(ErrorCode::CommTimeout,
                fmt::format("waited {:g} s for another thread to compile kernel '{}' ({}); set "
                            "LOOM_COMPILE_WAIT_TIMEOUT (seconds) to wait longer",
                            double(timeout.count()) / 1000, kernelName, key));
  return flight.result.get(); // rethrows the compile's error
}
} // namespace

KernelCache::KernelCache() : impl_(std::make_shared<Impl>()) {}

KernelCache &KernelCache::global() {
  // Never destroyed: JIT-compiled code must not be torn down by static
  // destructors after LLVM's own global state is gone.
  static KernelCache *cache = new KernelCache();
  return *cache;
}

namespace {
/// `spec` with its architecture filled in (see Specialization::arch): part
/// of the cache key, so kernels built for different GPUs never mix.
Specialization withResolvedArch(const Specialization &spec) {
  if (!spec.arch.empty())
    return spec;
  Specialization resolved = spec;
  resolved.arch = resolveBackend(spec.backend) == Backend::Cuda
                      ? cuda::currentDeviceArch()
                      : std::string("sm_80");
  return resolved;
}
} // namespace

namespace {
struct Traced {
  mlir::OwningOpRef<mlir::ModuleOp> module;
  double ms;
};

Traced trace(const dsl::Kernel &kernel, const Specialization &spec) {
  auto start = std::chrono::steady_clock::now();
  auto module = kernel.build(threadContext(), spec.constants);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count();
  return {std::move(module), ms};
}

/// Hash of everything that determines the compiled code.
std::string irKey(mlir::ModuleOp module, const Specialization &spec) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os);
  os << "\n" << spec.key() << "\nloom=" LOOM_VERSION_STRING " mlir=" LOOM_MLIR_VERSION_STRING;
  return hashHex(text);
}

} // namespace

namespace {
thread_local double threadCacheMs = 0;

/// Adds the scope's wall time to threadCacheMs, however it is left.
struct CacheTimer {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  ~CacheTimer() {
    threadCacheMs += std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - start)
                         .count();
  }
};
} // namespace

double KernelCache::threadMs() { return threadCacheMs; }

Compiled KernelCache::getOrCompile(const dsl::Kernel &kernel, const Specialization &requested) {
  CacheTimer timer;
  const Specialization spec = withResolvedArch(requested);
  std::string identity = fmt::format("{}|{}", kernel.id(), spec.key());
  Impl &impl = *impl_;
  auto [byIdentity, tracer] = impl.join(impl.byIdentity, identity, &Stats::hits);
  if (!tracer)
    return await(*byIdentity, kernel.name(), "identity " + identity);
  return impl.own(impl.byIdentity, identity, byIdentity, [&] {
    Traced traced = trace(kernel, spec);
    std::string key = irKey(*traced.module, spec);
    auto [byIr, compiler] = impl.join(impl.byIr, key, &Stats::irHits);
    if (!compiler)
      return await(*byIr, kernel.name(), "cache key " + key);
    return impl.own(impl.byIr, key, byIr, [&]() -> Compiled {
      std::function<void(const std::string &)> hook;
      {
        std::lock_guard<std::mutex> lock(impl.mutex);
        ++impl.stats.misses;
        ++impl.stats.compilesByKey[key];
        hook = impl.compileHook;
      }
      try {
        if (hook)
          hook(key);
        auto compiled = makeCompiledKernel(kernel, spec, *traced.module, traced.ms, {});
        compiled->setCacheKey(key);
        return compiled;
      } catch (...) {
        std::lock_guard<std::mutex> lock(impl.mutex);
        ++impl.stats.failures;
        throw;
      }
    });
  });
}

KernelCache::Stats KernelCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

void KernelCache::clear() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  // Flights in progress still finish for the requests waiting on them.
  impl_->byIdentity.clear();
  impl_->byIr.clear();
  impl_->stats = {};
}

void KernelCache::setCompileHook(std::function<void(const std::string &key)> hook) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->compileHook = std::move(hook);
}

std::shared_ptr<const CompiledKernel> compile(const dsl::Kernel &kernel,
                                              const Specialization &spec) {
  return KernelCache::global().getOrCompile(kernel, spec);
}

std::shared_ptr<const CompiledKernel> compileUncached(const dsl::Kernel &kernel,
                                                      const Specialization &requested,
                                                      const compiler::StageCallback &afterStage) {
  const Specialization spec = withResolvedArch(requested);
  Traced traced = trace(kernel, spec);
  if (afterStage)
    afterStage("dsl", *traced.module);
  std::string key = irKey(*traced.module, spec);
  auto compiled = makeCompiledKernel(kernel, spec, *traced.module, traced.ms, afterStage);
  compiled->setCacheKey(key);
  return compiled;
}

} // namespace loom::runtime
