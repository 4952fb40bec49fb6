//===- Demo.cpp - loom demo: the main job on the CPU ----------------------===//
//
// The main job is ring attention over in-process ranks (RingDemo.cpp).
// With --kernels: the DSL softmax and matmul compiled for a backend, run on
// fresh random inputs with poisoned outputs, and checked against float64.
//
//===----------------------------------------------------------------------===//
#include "Cli.h"
#include "Commands.h"
#include "RingDemo.h"

#include "loom/ops/Examples.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/Kernel.h"

#include <chrono>
#include <cstdio>

namespace loom::cli {
namespace {
double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

void printTimings(const runtime::CompiledKernel &k, double wallMs) {
  std::printf("  compile %-16s", k.name().c_str());
  for (const auto &t : k.timings())
    std::printf(" %s %.1f", t.name.c_str(), t.milliseconds);
  std::printf("  (total %.1f ms)\n", wallMs);
}

bool report(const char *what, const ops::ref::ErrorStats &e, double tol) {
  bool ok = ops::ref::withinRelative(e, tol);
  std::printf("  %-34s %s (tolerance rel %.0e): %s\n", what, ops::ref::format(e).c_str(), tol,
              ok ? "PASS" : "FAIL");
  return ok;
}

bool softmaxDemo(runtime::Backend backend) {
  const int64_t rows = 97, cols = 1000;
  auto x = ops::ref::randomVector(rows * cols, -4.f, 4.f);
  std::vector<float> y(rows * cols, ops::ref::poison());
  auto kernel = ops::softmaxKernel(DType::F32);
  auto t = std::chrono::steady_clock::now();
  runtime::Specialization spec{.constants = {{"BLOCK", 128}}, .backend = backend};
  auto k = runtime::compile(kernel, spec);
  printTimings(*k, msSince(t));
  t = std::chrono::steady_clock::now();
  runtime::compile(kernel, spec);
  std::printf("  in-memory cache hit: %.1f us\n", msSince(t) * 1e3);
  t = std::chrono::steady_clock::now();
  k->launch({uint32_t(rows)}, {runtime::Arg::buffer(x), runtime::Arg::buffer(y),
                               runtime::Arg::i32(cols), runtime::Arg::i32(cols)});
  std::printf("  softmax %lldx%lld ran in %.2f ms\n", (long long)rows, (long long)cols,
              msSince(t));
  return report("softmax f32 vs float64:",
                ops::ref::compare(y, ops::ref::softmaxRows(ops::ref::toDouble(x), rows, cols)),
                1e-5);
}

bool matmulDemo(runtime::Backend backend) {
  const int64_t m = 97, n = 113, k = 130;
  auto a = ops::ref::randomVector(m * k, -1.f, 1.f), b = ops::ref::randomVector(k * n, -1.f, 1.f);
  auto aBits = ops::ref::toBf16Bits(a), bBits = ops::ref::toBf16Bits(b);
  std::vector<float> c(m * n, ops::ref::poison());
  auto t = std::chrono::steady_clock::now();
  runtime::Specialization spec{.constants = {{"BLOCK_M", 32}, {"BLOCK_N", 32}, {"BLOCK_K", 32}},
                               .backend = backend};
  auto kern = runtime::compile(ops::matmulKernel(DType::BF16), spec);
  printTimings(*kern, msSince(t));
  kern->launch({uint32_t((m + 31) / 32), uint32_t((n + 31) / 32)},
               {runtime::Arg::buffer(aBits.data(), DType::BF16, aBits.size()),
                runtime::Arg::buffer(bBits.data(), DType::BF16, bBits.size()),
                runtime::Arg::buffer(c), runtime::Arg::i32(m), runtime::Arg::i32(n),
                runtime::Arg::i32(k), runtime::Arg::i32(k), runtime::Arg::i32(n),
                runtime::Arg::i32(n)});
  // The kernel sees bf16-rounded inputs and accumulates in f32; compare with
  // float64 on the same rounded inputs, so the error is f32 accumulation only.
  auto want = ops::ref::matmul(ops::ref::toDouble(ops::ref::roundToBf16(a)),
                               ops::ref::toDouble(ops::ref::roundToBf16(b)), m, n, k);
  return report("matmul bf16 (f32 acc) vs float64:", ops::ref::compare(c, want, 1e-2), 1e-4);
}
} // namespace

int runDemo(int argc, char **argv) {
  Options opts("demo", {"backend"}, {"kernels"});
  opts.parse(argc, argv, 2);
  if (!opts.flag("kernels")) {
    if (opts.get("backend"))
      throw Error(ErrorCode::InvalidArgument,
                  "loom demo: --backend applies to the kernel demo: add --kernels (the ring "
                  "attention demo picks GPUs over NCCL when 2+ are present, else CPU ranks)");
    bool ok = ringDemo();
    std::printf("%s\n", ok ? "demo: all checks passed" : "demo: CHECKS FAILED");
    return ok ? 0 : 1;
  }
  runtime::Backend backend =
      runtime::resolveBackend(runtime::parseBackend(opts.get("backend").value_or("auto")));
  if (backend == runtime::Backend::Cuda)
    throw Error(ErrorCode::Unsupported,
                "loom demo runs on host memory: use --backend cpu or emu (the cuda backend "
                "takes device pointers)");
  std::printf("Loom demo: DSL kernels on the %s backend%s\n", runtime::backendName(backend),
              backend == runtime::Backend::Emu
                  ? " (generated CUDA C++ run on the emulated device; not run on a GPU)"
                  : " (JIT-compiled for this CPU; no GPU used)");
  bool ok = softmaxDemo(backend);
  ok &= matmulDemo(backend);
  std::printf("%s\n", ok ? "demo: all checks passed" : "demo: CHECKS FAILED");
  return ok ? 0 : 1;
}

} // namespace loom::cli
