//===- CpuTarget.cpp - the instruction-set level of CPU kernels -----------===//
#include "loom/Compiler/CpuTarget.h"

#include "loom/Support/Error.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/TargetParser/X86TargetParser.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

namespace loom::compiler {
namespace {
constexpr const char *kHost = "host";

bool hostIsX86() {
  llvm::Triple triple(llvm::sys::getProcessTriple());
  return triple.isX86();
}

unsigned vectorBitsOf(const llvm::StringMap<bool> &features) {
  if (features.lookup("avx512f"))
    return 512;
  if (features.lookup("avx"))
    return 256;
  return 128; // SSE or NEON
}

std::string joinNames(const std::vector<std::string> &names) {
  std::string out;
  for (const std::string &n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

CpuTarget detectHostTarget() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  // Sorted so that the cache key does not depend on hash order.
  std::vector<std::string> entries;
  for (const auto &entry : features)
    entries.push_back((entry.second ? "+" : "-") + entry.first().str());
  std::sort(entries.begin(), entries.end(),
            [](const std::string &a, const std::string &b) { return a.substr(1) < b.substr(1); });
  CpuTarget t;
  t.name = kHost;
  t.cpu = llvm::sys::getHostCPUName().str();
  for (const std::string &e : entries)
    t.features += (t.features.empty() ? "" : ",") + e;
  t.vectorBits = vectorBitsOf(features);
  return t;
}

/// The host does not change while the process runs; kernel cache keys ask
/// for it on every lookup.
const CpuTarget &hostTarget() {
  static const CpuTarget host = detectHostTarget();
  return host;
}

CpuTarget x86LevelTarget(const std::string &level) {
  if (!hostIsX86())
    throw Error(ErrorCode::Unsupported,
                "CPU target '" + level + "' is an x86-64 level, but this host is " +
                    llvm::sys::getProcessTriple() + " (use host)");
  llvm::SmallVector<llvm::StringRef, 64> implied;
  llvm::X86::getFeaturesForCPU(level, implied, /*NeedPlus=*/false);
  // A level above the host would fault with SIGILL on the first kernel: refuse
  // it here, naming what is missing. Features the host detection does not
  // report (64bit, x87, ...) are architectural and not checked.
  // The level's list names its own features (avx2, not the avx it implies):
  // close it over implication, in a sorted map for a stable feature string.
  llvm::StringMap<bool> levelFeatures;
  for (llvm::StringRef f : implied) {
    levelFeatures[f] = true;
    llvm::X86::updateImpliedFeatures(f, true, levelFeatures);
  }
  std::map<std::string, bool> enabled;
  for (const auto &entry : levelFeatures)
    if (entry.second)
      enabled[entry.first().str()] = true;
  llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
  std::vector<std::string> missing;
  CpuTarget t;
  t.name = level;
  t.cpu = level;
  for (const auto &[f, on] : enabled) {
    t.features += (t.features.empty() ? "+" : ",+") + f;
    auto it = host.find(f);
    if (it != host.end() && !it->second)
      missing.push_back(f);
  }
  if (!missing.empty())
    throw Error(ErrorCode::Unsupported,
                "CPU target '" + level + "' needs " + joinNames(missing) + ", which this host (" +
                    llvm::sys::getHostCPUName().str() +
                    ") lacks; choose a lower level or host");
  t.vectorBits = vectorBitsOf(levelFeatures);
  return t;
}
} // namespace

std::string CpuTarget::dotMicroKernelOptions() const {
  return std::string(vectorBits >= 512 ? "rows=6" : "rows=4") +
         " lanes=" + std::to_string(2 * f32Lanes());
}

const std::vector<std::string> &cpuTargetNames() {
  static const std::vector<std::string> names = {kHost, "x86-64-v2", "x86-64-v3", "x86-64-v4"};
  return names;
}

CpuTarget resolveCpuTarget(const std::string &requested) {
  std::string name = requested;
  std::string origin = "CPU target";
  if (name.empty()) {
    const char *env = std::getenv("LOOM_CPU_TARGET");
    name = env && *env ? env : kHost;
    if (env && *env)
      origin = "LOOM_CPU_TARGET";
  }
  const auto &names = cpuTargetNames();
  if (std::find(names.begin(), names.end(), name) == names.end())
    throw Error(ErrorCode::InvalidArgument,
                origin + " '" + name + "' is unknown (expected " + joinNames(names) + ")");
  if (name == kHost)
    return hostTarget();
  // Kernel cache keys resolve the target on every lookup: each level is
  // checked against the host once (a refusal is not cached, so it is
  // reported every time).
  static std::mutex mutex;
  static std::map<std::string, CpuTarget> resolved;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = resolved.find(name); it != resolved.end())
    return it->second;
  return resolved.emplace(name, x86LevelTarget(name)).first->second;
}

HostCpu hostCpu() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  HostCpu h;
  h.name = llvm::sys::getHostCPUName().str();
  const std::pair<const char *, const char *> shown[] = {
      {"AVX2", "avx2"},         {"AVX-512F", "avx512f"}, {"AVX512-BF16", "avx512bf16"},
      {"AMX", "amx-tile"},      {"F16C", "f16c"},        {"FMA", "fma"}};
  for (const auto &[label, llvmName] : shown)
    h.features.emplace_back(label, features.lookup(llvmName));
  return h;
}

} // namespace loom::compiler
