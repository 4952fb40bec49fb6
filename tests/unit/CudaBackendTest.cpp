//===- CudaBackendTest.cpp - generated CUDA through NVRTC, without a GPU --===//
#include "ExpectError.h"

#include "loom/cuda/DiskCache.h"
#include "loom/cuda/Driver.h"
#include "loom/ops/Examples.h"
#include "loom/runtime/CudaBuild.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

using namespace loom;
using namespace loom::runtime;

namespace {
struct Case {
  std::string kernel;
  DType dtype;
};

Specialization specFor(const std::string &kernel) {
  Specialization spec;
  for (const auto &e : ops::exampleKernels())
    if (e.name == kernel)
      spec.constants = e.defaultConstants;
  return spec;
}
} // namespace

class CudaCompile : public ::testing::TestWithParam<std::tuple<Case, std::string>> {};

TEST_P(CudaCompile, EveryExampleCompilesWithoutSpills) {
  auto [c, arch] = GetParam();
  CudaBuildOptions options;
  options.arch = arch;
  options.useDiskCache = false;
  CudaBuild build = buildCuda(ops::exampleKernel(c.kernel, c.dtype), specFor(c.kernel), options);
  const cuda::KernelResources &r = build.resources();
  EXPECT_GT(r.registers, 0);
  EXPECT_EQ(r.spillStoreBytes, 0) << build.binary.log;
  EXPECT_EQ(r.spillLoadBytes, 0) << build.binary.log;
  EXPECT_FALSE(build.binary.cubin.empty());
  std::printf("[ report   ] %s %s: %d registers, %d/%d spill bytes, %lld bytes dynamic smem\n",
              build.source.kernelName.c_str(), arch.c_str(), r.registers, r.spillStoreBytes,
              r.spillLoadBytes, static_cast<long long>(build.source.sharedBytes));
}

INSTANTIATE_TEST_SUITE_P(
    AllArchs, CudaCompile,
    ::testing::Combine(::testing::Values(Case{"vector_add", DType::F32},
                                         Case{"softmax", DType::F32},
                                         Case{"softmax", DType::BF16},
                                         Case{"matmul", DType::F32}, Case{"matmul", DType::F16},
                                         Case{"matmul", DType::BF16}),
                       ::testing::Values("sm_80", "sm_86", "sm_89", "sm_90a")),
    [](const auto &info) {
      return std::get<0>(info.param).kernel + "_" +
             std::string(dtypeName(std::get<0>(info.param).dtype)) + "_" +
             std::get<1>(info.param);
    });

TEST(CudaCompile, HalfMatmulUsesTensorCores) {
  for (DType dtype : {DType::F16, DType::BF16}) {
    CudaBuildOptions options;
    options.useDiskCache = false;
    CudaBuild build = buildCuda(ops::matmulKernel(dtype), specFor("matmul"), options);
    EXPECT_NE(build.binary.ptx.find("mma.sync.aligned.m16n8k16"), std::string::npos);
    EXPECT_NE(build.binary.ptx.find("ldmatrix"), std::string::npos);
  }
}

TEST(CudaCompile, SecondBuildComesFromTheDiskCache) {
  CudaBuildOptions options;
  auto kernel = ops::softmaxKernel(DType::F32);
  Specialization spec = specFor("softmax");
  spec.bindings["n_cols"] = int64_t(777); // a key no other test uses
  CudaBuild first = buildCuda(kernel, spec, options);
  CudaBuild second = buildCuda(kernel, spec, options);
  EXPECT_TRUE(second.fromDiskCache);
  EXPECT_EQ(first.binary.cubin, second.binary.cubin);
  EXPECT_EQ(first.cacheKey, second.cacheKey);
  options.arch = "sm_90a";
  CudaBuild other = buildCuda(kernel, spec, options);
  EXPECT_NE(other.cacheKey, first.cacheKey);
}

TEST(CudaCompile, AnIndexedBuildSkipsCodeGeneration) {
  // A kernel compiled before is found by its traced IR (an index entry
  // beside the CUBIN's): no pass and no NVRTC runs, and the build is the
  // same. Other pipeline stages are another kernel; a corrupt index entry,
  // or a CUBIN entry gone from under it, is a miss that rebuilds.
  char tmpl[] = "/tmp/loom-index-test-XXXXXX";
  std::string root = mkdtemp(tmpl);
  setenv("LOOM_CACHE_DIR", root.c_str(), 1);
  struct Cleanup {
    std::string root;
    ~Cleanup() {
      unsetenv("LOOM_CACHE_DIR");
      std::system(("rm -rf '" + root + "'").c_str());
    }
  } cleanup{root};
  auto ran = [](const CudaBuild &b, const std::string &stage) {
    for (const auto &t : b.timings)
      if (t.name == stage)
        return true;
    return false;
  };
  CudaBuildOptions options;
  auto kernel = ops::matmulKernel(DType::BF16);
  Specialization spec = specFor("matmul");
  CudaBuild first = buildCuda(kernel, spec, options);
  ASSERT_TRUE(ran(first, "nvrtc"));
  CudaBuild second = buildCuda(kernel, spec, options);
  EXPECT_TRUE(second.fromDiskCache);
  EXPECT_FALSE(ran(second, "specialize"));
  EXPECT_FALSE(ran(second, "nvrtc"));
  EXPECT_EQ(second.source.code, first.source.code);
  EXPECT_EQ(second.source.kernelName, first.source.kernelName);
  EXPECT_EQ(second.source.sharedBytes, first.source.sharedBytes);
  EXPECT_EQ(second.source.numThreads, first.source.numThreads);
  EXPECT_EQ(second.binary.cubin, first.binary.cubin);
  EXPECT_EQ(second.cacheKey, first.cacheKey);
  ASSERT_EQ(second.signature.size(), first.signature.size());
  for (size_t i = 0; i < first.signature.size(); ++i)
    EXPECT_EQ(second.signature[i].name, first.signature[i].name);
  EXPECT_EQ(second.resources().registers, first.resources().registers);

  Specialization threeStages = spec;
  threeStages.numStages = 3;
  CudaBuild other = buildCuda(kernel, threeStages, options);
  EXPECT_TRUE(ran(other, "nvrtc"));
  EXPECT_NE(other.source.code, first.source.code);

  // Overwrite every index entry with a well-formed cache entry of garbage:
  // the payload does not parse, so the build regenerates (the CUBIN entry
  // still hits).
  cuda::DiskCache index(root, "cubin-index");
  auto entries = index.list();
  ASSERT_EQ(entries.size(), 2u); // two and three stages
  for (const auto &e : entries)
    index.put(e.key, "garbage");
  CudaBuild rebuilt = buildCuda(kernel, spec, options);
  EXPECT_TRUE(ran(rebuilt, "specialize"));
  EXPECT_EQ(rebuilt.binary.cubin, first.binary.cubin);
  // With the CUBIN entries gone, the index entry written above no longer
  // leads anywhere: NVRTC runs again.
  std::filesystem::remove_all(root + "/cubin");
  CudaBuild recompiled = buildCuda(kernel, spec, options);
  EXPECT_TRUE(ran(recompiled, "nvrtc"));
  EXPECT_EQ(recompiled.source.code, first.source.code);
}

TEST(CudaCompile, TensorCoreAccumulatorsGetTheMmaLayout) {
  // loom-assign-layouts: the matmul's loop-carried accumulator is an mma
  // fragment tile (32x32 on 4 warps: 2 x 2), converted once for the store;
  // LOOM_ASSIGN_LAYOUTS=0 keeps every tile blocked.
  auto spec = specFor("matmul");
  spec.constants["BLOCK_M"] = spec.constants["BLOCK_N"] = 32;
  auto source = generateCudaSource(ops::matmulKernel(DType::BF16), spec, 128, nullptr);
  EXPECT_NE(source.code.find("loom::tile::Tile<float, loom::tile::Shape<32, 32>, "
                             "loom::tile::Mma<2, 2>>"),
            std::string::npos);
  EXPECT_NE(source.code.find("loom::tile::convert_layout"), std::string::npos);
  setenv("LOOM_ASSIGN_LAYOUTS", "0", 1);
  auto blocked = generateCudaSource(ops::matmulKernel(DType::BF16), spec, 128, nullptr);
  unsetenv("LOOM_ASSIGN_LAYOUTS");
  EXPECT_EQ(blocked.code.find("loom::tile::Mma"), std::string::npos);
  // f32 operands have no tensor-core path: nothing changes.
  auto f32 = generateCudaSource(ops::matmulKernel(DType::F32), spec, 128, nullptr);
  EXPECT_EQ(f32.code.find("loom::tile::Mma"), std::string::npos);
}

TEST(CudaCompile, GeneratedSourceIsDeterministic) {
  // The disk cache is keyed by the generated source: rebuilding a kernel in
  // the same process (IR at other addresses) must print the same text,
  // block accesses (loom-structure-memory) and pipelines
  // (loom-pipeline-dot-operands) included.
  for (int rep = 0; rep < 2; ++rep) {
    auto first = generateCudaSource(ops::matmulKernel(DType::BF16), specFor("matmul"), 128, nullptr);
    std::vector<std::string> noise(64, std::string(rep * 97 + 13, 'x')); // shift allocations
    auto second = generateCudaSource(ops::matmulKernel(DType::BF16), specFor("matmul"), 128, nullptr);
    ASSERT_NE(first.code.find("loom::tile::async_copy"), std::string::npos);
    EXPECT_EQ(first.code, second.code);
  }
}

TEST(CudaCompile, SelfContainedSourceHasNoLoomIncludes) {
  auto source = generateCudaSource(ops::matmulKernel(DType::BF16), specFor("matmul"), 128, nullptr);
  std::string tu = selfContainedSource(source.code);
  // Only the emulation branch (never compiled by NVRTC/nvcc) still includes
  // host headers; the device path is inlined.
  EXPECT_EQ(tu.find("#include \"loom/device/tile"), std::string::npos);
  EXPECT_EQ(tu.find("#include \"loom/device/primitives.h\""), std::string::npos);
  EXPECT_NE(tu.find("extern \"C\" __global__ __launch_bounds__(128, 1) void matmul_bf16("),
            std::string::npos);
  // NVRTC compiles it with no in-memory headers at all.
  cuda::CompileOptions options;
  cuda::CompiledCuda compiled = cuda::compileCuda(tu, {}, options);
  EXPECT_FALSE(compiled.cubin.empty());
}

TEST(CudaCompile, OldArchitectureIsRejected) {
  CudaBuildOptions options;
  options.arch = "sm_75";
  try {
    buildCuda(ops::softmaxKernel(), specFor("softmax"), options);
    ADD_FAILURE() << "sm_75 accepted";
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported);
    EXPECT_NE(std::string(e.what()).find("sm_75"), std::string::npos) << e.what();
  }
}

TEST(CudaBackend, NoDriverIsAClearError) {
  if (cuda::driverAvailable())
    GTEST_SKIP() << "a CUDA driver is present; this test checks the no-driver error";
  Specialization spec = specFor("softmax");
  spec.backend = Backend::Cuda;
  try {
    compile(ops::softmaxKernel(), spec);
    ADD_FAILURE() << "compiled for cuda without a driver";
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), ErrorCode::DeviceUnavailable);
    EXPECT_NE(std::string(e.what()).find("no CUDA driver"), std::string::npos) << e.what();
  }
}

TEST(CudaBackend, AnEmptyArchIsTheDevicesOne) {
  // Unset, the architecture is resolved before the cache lookup: sm_80 on
  // emu (one compiled kernel for "" and "sm_80", another for "sm_86"), the
  // current device's on cuda, so a kernel is built for the GPU it runs on.
  KernelCache::global().clear();
  Specialization spec = specFor("vector_add");
  spec.backend = Backend::Emu;
  auto unset = compile(ops::vectorAddKernel(), spec);
  spec.arch = "sm_80";
  EXPECT_EQ(compile(ops::vectorAddKernel(), spec).get(), unset.get());
  spec.arch = "sm_86";
  EXPECT_NE(compile(ops::vectorAddKernel(), spec).get(), unset.get());

  std::string why;
  if (!cuda::driverAvailable(&why) || cuda::deviceCount() == 0) {
    std::printf("[ skipped  ] the cuda half needs a CUDA device: %s\n",
                why.empty() ? "no device" : why.c_str());
    return;
  }
  cuda::Context context(0);
  context.makeCurrent();
  EXPECT_EQ(cuda::currentDeviceArch(), context.arch());
  spec.backend = Backend::Cuda;
  spec.arch.clear();
  auto resolved = compile(ops::vectorAddKernel(), spec);
  spec.arch = context.arch();
  EXPECT_EQ(compile(ops::vectorAddKernel(), spec).get(), resolved.get());
}

TEST(CudaBackend, GeneratedKernelsRunOnTheGpu) {
  std::string why;
  if (!cuda::driverAvailable(&why))
    GTEST_SKIP() << "no CUDA driver, so nothing runs on a GPU here: " << why;
  if (cuda::deviceCount() == 0)
    GTEST_SKIP() << "a CUDA driver but no CUDA device";
  cuda::Context context(0);
  context.makeCurrent();
  const int64_t n = 1000;
  std::vector<float> x(n), y(n), out(n, NAN);
  for (int64_t i = 0; i < n; ++i)
    x[i] = float(i) * 0.5f, y[i] = float(n - i);
  cuda::DeviceBuffer dx(n * 4), dy(n * 4), dout(n * 4);
  dx.copyFromHost(x.data(), n * 4);
  dy.copyFromHost(y.data(), n * 4);
  dout.fill(0xff);
  Specialization spec = specFor("vector_add");
  spec.backend = Backend::Cuda;
  spec.arch = context.arch();
  auto k = compile(ops::vectorAddKernel(), spec);
  auto devicePtr = [](const cuda::DeviceBuffer &b) {
    return reinterpret_cast<const void *>(static_cast<uintptr_t>(b.ptr()));
  };
  k->launch(Grid(uint32_t((n + 255) / 256)),
            {Arg::buffer(devicePtr(dx), DType::F32, n), Arg::buffer(devicePtr(dy), DType::F32, n),
             Arg::buffer(devicePtr(dout), DType::F32, n), Arg::i32(n)});
  dout.copyToHost(out.data(), n * 4);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(out[i], x[i] + y[i]) << "element " << i;
}
