//===- compile_bench.cpp - CPU compile stages and cache hits --------------===//
//
// For each example kernel: milliseconds of each compile stage (DSL build,
// passes, LLVM JIT), median over several uncached compiles, and the cost of
// an in-memory cache hit, cold (first lookup after the compile) and warm
// (median of many). The first compile in the process, which also pays for
// one-time MLIR/LLVM initialization, is reported on its own.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/Examples.h"
#include "loom/runtime/Kernel.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <vector>

using namespace loom;
using Clock = std::chrono::steady_clock;

namespace {
double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
} // namespace

int main(int argc, char **argv) {
  int repeats = argc > 1 ? std::atoi(argv[1]) : 5;
  std::printf("loom compile bench (CPU backend, %d uncached compiles per kernel)\n", repeats);
  {
    auto t = Clock::now();
    runtime::compileUncached(ops::vectorAddKernel(), {.constants = {{"BLOCK", 8}}});
    std::printf("first compile in process (includes MLIR/LLVM init): %.1f ms\n\n", msSince(t));
  }
  std::printf("%-16s", "kernel");
  const char *stages[] = {"dsl", "specialize", "linalg", "bufferize", "loops", "llvm", "jit"};
  for (const char *s : stages)
    std::printf(" %10s", s);
  std::printf(" %10s %12s %12s\n", "total ms", "hit cold us", "hit warm us");
  for (const auto &info : ops::exampleKernels()) {
    DType dtype = info.name == "matmul" ? DType::BF16 : DType::F32;
    dsl::Kernel kernel = ops::exampleKernel(info.name, dtype);
    runtime::Specialization spec{.constants = info.defaultConstants};
    std::map<std::string, std::vector<double>> perStage;
    std::vector<double> totals;
    for (int r = 0; r < repeats; ++r) {
      auto t = Clock::now();
      auto k = runtime::compileUncached(kernel, spec);
      totals.push_back(msSince(t));
      for (const auto &st : k->timings())
        perStage[st.name].push_back(st.milliseconds);
    }
    runtime::compile(kernel, spec); // populate the cache
    dsl::Kernel fresh = ops::exampleKernel(info.name, dtype);
    auto t = Clock::now();
    runtime::compile(fresh, spec); // new identity: traced once, found by IR hash
    double coldHitUs = msSince(t) * 1e3;
    std::vector<double> warm;
    for (int i = 0; i < 2000; ++i) {
      auto w = Clock::now();
      runtime::compile(kernel, spec);
      warm.push_back(msSince(w) * 1e3);
    }
    std::printf("%-16s", kernel.name().c_str());
    for (const char *s : stages)
      std::printf(" %10.2f", median(perStage[s]));
    std::printf(" %10.2f %12.1f %12.2f\n", median(totals), coldHitUs, median(warm));
  }
  return 0;
}
