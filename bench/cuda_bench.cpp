//===- cuda_bench.cpp - CUDA backend compile times and emulator speed -----===//
//
// 1. For the example kernels: generated CUDA C++ -> CUBIN per architecture
//    (cold, no disk cache), a warm disk-cache load, and `nvcc -cubin` on the
//    same self-contained source in the same run, as the baseline ratio.
// 2. The emulated device's throughput on the generated matmul (tensor-core
//    MMA instructions per second) and softmax (elements per second), to size
//    emulated tests. Compiled, emulated, not run on hardware.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/Examples.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/CudaBuild.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

using namespace loom;
using Clock = std::chrono::steady_clock;

namespace {
double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

runtime::Specialization specFor(const std::string &name) {
  runtime::Specialization spec;
  for (const auto &e : ops::exampleKernels())
    if (e.name == name)
      spec.constants = e.defaultConstants;
  return spec;
}

double nvccMs(const std::string &source, const std::string &arch) {
  std::string dir = "/tmp/loom-bench-" + std::to_string(getpid());
  std::system(("mkdir -p " + dir).c_str());
  std::ofstream(dir + "/k.cu") << source;
  std::string cmd = "/usr/local/cuda/bin/nvcc -cubin -arch=" + arch + " -o " + dir +
                    "/k.cubin " + dir + "/k.cu > " + dir + "/nvcc.log 2>&1";
  auto t = Clock::now();
  int rc = std::system(cmd.c_str());
  double ms = msSince(t);
  std::system(("rm -rf " + dir).c_str());
  return rc == 0 ? ms : -1;
}
} // namespace

int main() {
  setenv("LOOM_CACHE_DIR", ("/tmp/loom-bench-cache-" + std::to_string(getpid())).c_str(), 1);
  std::printf("CUDA backend compile (ms): generated CUDA C++ -> CUBIN, no GPU involved\n");
  std::printf("%-14s %-7s %9s %9s %11s %9s %12s\n", "kernel", "arch", "IR->cubin", "of which",
              "disk-cache", "nvcc", "nvcc/loom");
  std::printf("%-14s %-7s %9s %9s %11s %9s %12s\n", "", "", "(cold)", "nvrtc", "load", "-cubin",
              "");
  for (auto [name, dtype] : {std::pair{"matmul", DType::BF16}, std::pair{"softmax", DType::F32}}) {
    auto kernel = ops::exampleKernel(name, dtype);
    for (const char *arch : {"sm_80", "sm_86", "sm_89", "sm_90a"}) {
      runtime::CudaBuildOptions options;
      options.arch = arch;
      options.useDiskCache = false;
      runtime::buildCuda(kernel, specFor(name), options); // warm NVRTC's own start-up
      auto t = Clock::now();
      auto build = runtime::buildCuda(kernel, specFor(name), options);
      double cold = msSince(t);
      options.useDiskCache = true;
      runtime::buildCuda(kernel, specFor(name), options); // fill the disk cache
      t = Clock::now();
      auto cached = runtime::buildCuda(kernel, specFor(name), options);
      double warm = msSince(t);
      double nvcc = nvccMs(runtime::selfContainedSource(build.source.code), arch);
      std::printf("%-14s %-7s %9.1f %9.1f %11.2f %9.1f %11.1fx\n", kernel.name().c_str(), arch,
                  cold, build.binary.compileMs, warm, nvcc, nvcc > 0 ? nvcc / cold : 0.0);
      (void)cached;
    }
  }

  std::printf("\nEmulated device throughput (generated code on the CPU, 2 cores)\n");
  {
    const int64_t m = 64, n = 64, k = 64;
    auto a = ops::ref::toBf16Bits(ops::ref::randomVector(m * k, -1, 1));
    auto b = ops::ref::toBf16Bits(ops::ref::randomVector(k * n, -1, 1));
    std::vector<float> c(m * n);
    runtime::Specialization spec{.constants = {{"BLOCK_M", 32}, {"BLOCK_N", 32}, {"BLOCK_K", 32}},
                                 .backend = runtime::Backend::Emu};
    auto kern = runtime::compile(ops::matmulKernel(DType::BF16), spec);
    auto t = Clock::now();
    kern->launch(runtime::Grid(2, 2),
                 {runtime::Arg::buffer(a.data(), DType::BF16, a.size()),
                  runtime::Arg::buffer(b.data(), DType::BF16, b.size()), runtime::Arg::buffer(c),
                  runtime::Arg::i32(m), runtime::Arg::i32(n), runtime::Arg::i32(k),
                  runtime::Arg::i32(k), runtime::Arg::i32(n), runtime::Arg::i32(n)});
    double s = msSince(t) / 1e3;
    double mmas = double(m / 16) * (n / 8) * (k / 16); // warp-wide m16n8k16 instructions
    std::printf("  matmul bf16 %lldx%lldx%lld: %.3f s, %.0f warp MMA/s (%.0f emulated FLOP/s)\n",
                (long long)m, (long long)n, (long long)k, s, mmas / s, 2.0 * m * n * k / s);
  }
  {
    const int64_t rows = 16, cols = 1024;
    auto x = ops::ref::randomVector(rows * cols, -4, 4);
    std::vector<float> y(rows * cols);
    runtime::Specialization spec{
        .constants = {{"BLOCK", 128}}, .backend = runtime::Backend::Emu};
    auto kern = runtime::compile(ops::softmaxKernel(DType::F32), spec);
    auto t = Clock::now();
    kern->launch(runtime::Grid(rows), {runtime::Arg::buffer(x), runtime::Arg::buffer(y),
                                       runtime::Arg::i32(cols), runtime::Arg::i32(cols)});
    double s = msSince(t) / 1e3;
    std::printf("  softmax %lldx%lld: %.3f s, %.0f elements/s\n", (long long)rows,
                (long long)cols, s, rows * cols / s);
  }
  return 0;
}
