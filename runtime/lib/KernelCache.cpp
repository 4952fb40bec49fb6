//===- KernelCache.cpp - in-memory cache of compiled kernels --------------===//
#include "CpuKernel.h"
#include "DeviceKernel.h"
#include "Packing.h"

#include "loom/Support/Error.h"
#include "loom/cuda/Driver.h"
#include "loom/Version.h"

#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <fmt/format.h>
#include <mutex>
#include <unordered_map>

namespace loom::runtime {

struct KernelCache::Impl {
  mutable std::mutex mutex;
  std::unordered_map<std::string, std::shared_ptr<const CompiledKernel>> byIdentity, byIr;
  Stats stats;
};

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

std::shared_ptr<const CompiledKernel> KernelCache::getOrCompile(const dsl::Kernel &kernel,
                                                                const Specialization &requested) {
  const Specialization spec = withResolvedArch(requested);
  std::string identity = fmt::format("{}|{}", kernel.id(), spec.key());
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto it = impl_->byIdentity.find(identity);
    if (it != impl_->byIdentity.end()) {
      ++impl_->stats.hits;
      return it->second;
    }
  }
  Traced traced = trace(kernel, spec);
  std::string key = irKey(*traced.module, spec);
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto it = impl_->byIr.find(key);
    if (it != impl_->byIr.end()) {
      ++impl_->stats.irHits;
      impl_->byIdentity[identity] = it->second;
      return it->second;
    }
  }
  auto compiled = makeCompiledKernel(kernel, spec, *traced.module, traced.ms, {});
  compiled->setCacheKey(key);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->stats.misses;
  auto [it, inserted] = impl_->byIr.emplace(key, compiled);
  impl_->byIdentity[identity] = it->second;
  return it->second;
}

KernelCache::Stats KernelCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

void KernelCache::clear() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->byIdentity.clear();
  impl_->byIr.clear();
  impl_->stats = {};
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
