// A row softmax written in the Loom DSL, JIT-compiled for the CPU and run
// from plain C++. Build: see README.md ("Using Loom from your own program").
#include "loom/dsl/Kernel.h"
#include "loom/runtime/Kernel.h"

#include <cmath>
#include <cstdio>
#include <exception>
#include <random>
#include <vector>

using namespace loom;
using namespace loom::dsl;

namespace {
int run() {
  // One row per program; the row fits in one BLOCK-wide tile.
  Kernel softmax("my_softmax", [](KernelBuilder &k) {
    Value x = k.pointer("x", DType::F32), y = k.pointer("y", DType::F32);
    Value n = k.scalar("n", DType::I32);
    int64_t block = k.constant("BLOCK");
    Value cols = arange(0, block);
    Value offs = program_id(0) * n + cols;
    Value v = load(x, offs, cols < n, -INFINITY);
    Value e = exp(v - max(v, 0));
    store(y, offs, e / sum(e, 0), cols < n);
  });

  const int rows = 64, n = 200;
  std::vector<float> x(rows * n), y(rows * n, NAN);
  std::mt19937 gen(std::random_device{}());
  std::uniform_real_distribution<float> dist(-3, 3);
  for (float &v : x)
    v = dist(gen);

  auto kernel = runtime::compile(softmax, {.constants = {{"BLOCK", 256}}});
  kernel->launch(runtime::Grid(rows), {runtime::Arg::buffer(x), runtime::Arg::buffer(y),
                                       runtime::Arg::i32(n)});

  double worst = 0;
  for (int r = 0; r < rows; ++r) {
    double m = -INFINITY, s = 0;
    for (int c = 0; c < n; ++c)
      m = std::max(m, double(x[r * n + c]));
    for (int c = 0; c < n; ++c)
      s += std::exp(double(x[r * n + c]) - m);
    for (int c = 0; c < n; ++c) {
      double want = std::exp(double(x[r * n + c]) - m) / s;
      double err = std::fabs(y[r * n + c] - want) / want;
      worst = std::isnan(err) ? INFINITY : std::max(worst, err);
    }
  }
  std::printf("softmax %dx%d: max relative error vs float64 %.2e: %s\n", rows, n, worst,
              worst < 1e-5 ? "OK" : "FAILED");
  return worst < 1e-5 ? 0 : 1;
}
} // namespace

// A loom::Error (a bad --backend, no CUDA driver, a compile failure) ends
// the program with its one-line message, never an uncaught exception.
int main() {
  try {
    return run();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "softmax: error: %s\n", e.what());
    return 1;
  }
}
