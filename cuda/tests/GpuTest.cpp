//===- GpuTest.cpp - module load + launch (skips without a GPU) -----------===//

#include "TestKernels.h"

#include "loom/cuda/Driver.h"
#include "loom/cuda/Nvrtc.h"
#include "loom/Support/Error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace loom::cuda;

namespace {

/// Skips the current test, printing why, unless a device is usable.
#define LOOM_REQUIRE_GPU()                                                                         \
  do {                                                                                             \
    std::string why;                                                                               \
    if (!driverAvailable(&why))                                                                    \
      GTEST_SKIP() << "no GPU test: " << why;                                                     \
    if (deviceCount() == 0)                                                                        \
      GTEST_SKIP() << "no GPU test: the CUDA driver reports no devices";                           \
  } while (0)

/// float -> bf16 bits, round to nearest even (inputs here are finite).
uint16_t toBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}
float fromBf16(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

} // namespace

TEST(CudaGpu, LaunchSimpleKernel) {
  LOOM_REQUIRE_GPU();
  Context ctx;
  const char *src = R"(extern "C" __global__ void axpy(float a, const float *x, float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
  })";
  CompiledCuda compiled = compileCuda(src, {}, {.arch = ctx.arch()});
  Module module(compiled.cubin);
  CUfunction fn = module.function("axpy");
  EXPECT_THROW(module.function("missing"), loom::Error);

  int n = 1000;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i)
    x[i] = float(i), y[i] = 1.0f;
  DeviceBuffer dx(n * sizeof(float)), dy(n * sizeof(float));
  Stream stream;
  dx.copyFromHost(x.data(), dx.size(), stream.handle());
  dy.copyFromHost(y.data(), dy.size(), stream.handle());
  float a = 2.0f;
  CUdeviceptr px = dx.ptr(), py = dy.ptr();
  void *args[] = {&a, &px, &py, &n};
  Event start, end;
  start.record(stream.handle());
  launch(fn, {unsigned((n + 255) / 256)}, {256}, 0, stream.handle(), args);
  end.record(stream.handle());
  dy.copyToHost(y.data(), dy.size(), stream.handle());
  stream.synchronize();
  EXPECT_GE(Event::elapsedMs(start, end), 0.0f);
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(y[i], 2.0f * i + 1.0f) << i;
  EXPECT_THROW(dy.copyToHost(y.data(), dy.size() + 4), loom::Error);
}

TEST(CudaGpu, TensorCoreMatmulMatchesHost) {
  LOOM_REQUIRE_GPU();
  Context ctx;
  auto [major, minor] = ctx.computeCapability();
  if (major < 8)
    GTEST_SKIP() << "device " << ctx.name() << " has no bf16 tensor cores";
  CompiledCuda compiled = compileCuda(test::kMatmulSource,
                                      {{test::kMmaHeaderName, test::kMmaHeader}},
                                      {.arch = ctx.arch()});
  Module module(compiled.cubin);
  CUfunction fn = module.function(test::kMatmulKernelName);

  int M = 128, N = 192, K = 96;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> small(-4, 4); // exact in bf16 and f32
  std::vector<uint16_t> a(M * K), bt(N * K);
  for (auto &v : a)
    v = toBf16(float(small(rng)) * 0.5f);
  for (auto &v : bt)
    v = toBf16(float(small(rng)) * 0.25f);
  DeviceBuffer da(a.size() * 2), db(bt.size() * 2), dc(size_t(M) * N * 4);
  da.copyFromHost(a.data(), da.size());
  db.copyFromHost(bt.data(), db.size());
  dc.fill(0xff); // poison: NaN where the kernel fails to write
  CUdeviceptr pa = da.ptr(), pb = db.ptr(), pc = dc.ptr();
  void *args[] = {&pa, &pb, &pc, &M, &N, &K};
  launch(fn, {unsigned(N / 64), unsigned(M / 64)}, {128}, 0, nullptr, args);
  std::vector<float> c(size_t(M) * N);
  dc.copyToHost(c.data(), dc.size());
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double ref = 0;
      for (int k = 0; k < K; ++k)
        ref += double(fromBf16(a[i * K + k])) * fromBf16(bt[j * K + k]);
      ASSERT_EQ(c[size_t(i) * N + j], ref) << "C[" << i << "][" << j << "]";
    }
}
