//===- nvrtc_bench.cpp - NVRTC cold compile vs disk cache vs nvcc ---------===//
//
// What a cache miss costs (in-process NVRTC compile of a matmul-sized
// tensor-core kernel), what a hit costs (disk cache read), and how NVRTC
// compares with running nvcc -cubin on the same source.
//
// Usage: loom-bench-nvrtc [repeats=3] [arch...]
//
//===----------------------------------------------------------------------===//

#include "TestKernels.h"

#include "loom/cuda/DiskCache.h"
#include "loom/cuda/Nvrtc.h"
#include "loom/Support/Error.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace loom::cuda;
namespace fs = std::filesystem;

namespace {

double nowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

template <typename Fn> double bestOf(int repeats, Fn fn) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    double t0 = nowMs();
    fn();
    best = std::min(best, nowMs() - t0);
  }
  return best;
}

} // namespace

int main(int argc, char **argv) {
  int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  std::vector<std::string> archs;
  for (int i = 2; i < argc; ++i)
    archs.push_back(argv[i]);
  if (archs.empty())
    archs = {"sm_80", "sm_86", "sm_89", "sm_90a"};

  fs::path work = fs::temp_directory_path() / ("loom-bench-nvrtc-" + std::to_string(::getpid()));
  fs::create_directories(work);
  fs::path cu = work / "matmul.cu";
  std::ofstream(cu) << test::matmulStandaloneSource();
  DiskCache cache((work / "cache").string(), "cubin");
  const std::vector<SourceHeader> headers = {{test::kMmaHeaderName, test::kMmaHeader}};
  const std::string nvcc = LOOM_NVCC;

  std::printf("%s, best of %d; nvcc: %s\n", nvrtcVersionString().c_str(), repeats,
              nvcc.empty() ? "(not found)" : nvcc.c_str());
  std::printf("%-8s %6s %14s %12s %12s %10s %8s %11s\n", "arch", "regs", "nvrtc_1st_ms",
              "nvrtc_ms", "cache_hit_ms", "nvcc_ms", "cubin_kB", "nvrtc/nvcc");
  try {
    for (const std::string &arch : archs) {
      CompiledCuda out;
      // The first compile in the process also pays NVRTC's one-time set-up.
      double first = bestOf(1, [&] {
        out = compileCuda(test::kMatmulSource, headers, {.arch = arch});
      });
      double cold = bestOf(repeats, [&] {
        out = compileCuda(test::kMatmulSource, headers, {.arch = arch});
      });
      const std::string key = "bench|" + arch + "|" + nvrtcVersionString();
      cache.put(key, out.cubin);
      double hit = bestOf(repeats * 10, [&] {
        if (!cache.get(key))
          std::abort();
      });
      double nvccMs = -1;
      if (!nvcc.empty()) {
        std::string cmd = "'" + nvcc + "' -cubin -std=c++17 -arch=" + arch + " -o '" +
                          (work / (arch + ".cubin")).string() + "' '" + cu.string() + "'";
        nvccMs = bestOf(repeats, [&] {
          if (std::system(cmd.c_str()) != 0) {
            std::fprintf(stderr, "nvcc failed: %s\n", cmd.c_str());
            std::exit(1);
          }
        });
      }
      const KernelResources *k = out.kernel(test::kMatmulKernelName);
      std::printf("%-8s %6d %14.1f %12.1f %12.3f %10.1f %8.1f %11.2f\n", arch.c_str(),
                  k ? k->registers : -1, first, cold, hit, nvccMs, out.cubin.size() / 1024.0,
                  nvccMs > 0 ? cold / nvccMs : 0.0);
    }
  } catch (const loom::Error &e) {
    std::fprintf(stderr, "loom: error: %s\n", e.what());
    fs::remove_all(work);
    return 1;
  }
  fs::remove_all(work);
  return 0;
}
