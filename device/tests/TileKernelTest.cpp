// The tile-layer test kernel (kernels/tile_kernel.cuh), compiled as host C++
// on the emulator and checked against float64; and the same kernel built into
// a separate shared object, dlopen'ed at run time, whose device code must
// resolve threadIdx/blockIdx and the executor from the one libLoomDeviceEmu.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "TileTestUtil.h"
#include "kernels/tile_kernel.cuh"

namespace {
using namespace loom::tile;
using namespace loom::tile::test;
using loom_tile_test::kK;
using loom_tile_test::kM;
using loom_tile_test::kN;

using KernelFn = void (*)(const half_t*, const half_t*, const bf16_t*, const bf16_t*,
                          const float*, float*, float*, int32_t);

struct Problem {
  int m, blocks;
  std::vector<half_t> a16, b16;
  std::vector<bf16_t> abf, bbf;
  std::vector<float> bias;
  std::vector<float> out, rowmax;

  Problem(int m, unsigned seed) : m(m), blocks((m + kM - 1) / kM) {
    std::mt19937 rng(seed);
    a16 = random_values<half_t>(rng, m * kK, -2, 2);
    abf = random_values<bf16_t>(rng, m * kK, -2, 2);
    b16 = random_values<half_t>(rng, kK * kN, -2, 2);
    bbf = random_values<bf16_t>(rng, kK * kN, -2, 2);
    bias = random_values<float>(rng, kN, -1, 1);
    out.assign(m * kN, NAN);
    rowmax.assign(m, NAN);
  }

  void run(KernelFn kernel) {
    loom::device::emu::LaunchConfig c;
    c.kernel_name = "loom_tile_kernel";
    c.grid = loom::device::emu::dim3(blocks);
    c.block = loom::device::emu::dim3(kThreads);
    c.shared_bytes = round16(loom_tile_test::kScratchBytes);
    loom::device::emu::launch(c, kernel, a16.data(), b16.data(), abf.data(), bbf.data(),
                              bias.data(), out.data(), rowmax.data(), m);
  }

  void check() const {
    for (int r = 0; r < m; ++r) {
      double C[kN], mag = 0, mx = -INFINITY;
      for (int n = 0; n < kN; ++n) {
        double s = 0;
        for (int k = 0; k < kK; ++k) {
          const double p = f16v(a16[r * kK + k]) * f16v(b16[k * kN + n]),
                       q = bf16v(abf[r * kK + k]) * bf16v(bbf[k * kN + n]);
          s += p + q;
          mag = std::max(mag, 0.0) + std::fabs(p) + std::fabs(q);
        }
        C[n] = s;
        mx = std::max(mx, s);
      }
      const double tol = 1e-5 * mag + 1e-6;
      ASSERT_NEAR(rowmax[r], mx, tol) << "row " << r;
      for (int n = 0; n < kN; ++n)
        ASSERT_NEAR(out[r * kN + n], C[n] - mx + bias[n], 3 * tol) << "(" << r << ", " << n << ")";
    }
  }
};

TEST(TileKernel, EmulatedMatchesFloat64WithMaskedTail) {
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Problem p(70, seed); // 3 blocks, the last one has 6 valid rows
  p.run(&loom_tile_kernel);
  p.check();
}

TEST(TileKernel, DlopenedKernelSharesTheExecutor) {
  void* so = dlopen(LOOM_TILE_KERNEL_MODULE, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(so, nullptr) << dlerror();
  auto kernel = reinterpret_cast<KernelFn>(dlsym(so, "loom_tile_kernel"));
  ASSERT_NE(kernel, nullptr) << dlerror();
  ASSERT_NE(kernel, &loom_tile_kernel); // really the module's copy
  const unsigned seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Problem direct(45, seed), loaded(45, seed);
  direct.run(&loom_tile_kernel);
  loaded.run(kernel);
  loaded.check();
  for (std::size_t i = 0; i < direct.out.size(); ++i)
    ASSERT_EQ(loaded.out[i], direct.out[i]) << i;
  dlclose(so);
}

} // namespace
