//===- NvrtcTest.cpp - NVRTC compiles, arch checks, ptxas report ----------===//

#include "TestKernels.h"

#include "loom/cuda/Nvrtc.h"
#include "loom/Support/Error.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace loom;
using namespace loom::cuda;

namespace {

std::vector<SourceHeader> mmaHeaders() { return {{test::kMmaHeaderName, test::kMmaHeader}}; }

/// Runs `fn`, expecting loom::Error with `code`; returns its message.
template <typename Fn> std::string expectError(ErrorCode code, Fn fn) {
  try {
    fn();
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no loom::Error thrown";
  return {};
}

class NvrtcArch : public ::testing::TestWithParam<const char *> {};

} // namespace

TEST_P(NvrtcArch, TensorCoreMatmulCompilesWithoutSpills) {
  std::string arch = GetParam();
  ASSERT_EQ(requireTensorCoreArch(arch), std::stoi(arch.substr(3, 2)));
  CompiledCuda out = compileCuda(test::kMatmulSource, mmaHeaders(), {.arch = arch});
  EXPECT_NE(out.ptx.find("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), std::string::npos);
  EXPECT_NE(out.ptx.find("ldmatrix.sync.aligned.m8n8.x4.shared.b16"), std::string::npos);
  EXPECT_NE(out.ptx.find(".target " + arch), std::string::npos);
  ASSERT_GT(out.cubin.size(), 4u);
  EXPECT_EQ(out.cubin[0], 0x7f); // ELF
  EXPECT_EQ(out.cubin[1], 'E');

  const KernelResources *k = out.kernel(test::kMatmulKernelName);
  ASSERT_NE(k, nullptr) << "no ptxas report for the kernel in log:\n" << out.log;
  EXPECT_GT(k->registers, 0) << out.log;
  EXPECT_LE(k->registers, 255);
  EXPECT_EQ(k->spillStoreBytes, 0) << out.log;
  EXPECT_EQ(k->spillLoadBytes, 0) << out.log;
  EXPECT_EQ(k->sharedBytes, 2 * 64 * 40 * 2) << out.log; // As + Bs, bf16
  EXPECT_GT(out.compileMs, 0);
}

INSTANTIATE_TEST_SUITE_P(Archs, NvrtcArch, ::testing::Values("sm_80", "sm_86", "sm_89", "sm_90a"),
                         [](const auto &info) { return std::string(info.param); });

TEST(Nvrtc, VersionString) {
  std::string v = nvrtcVersionString();
  EXPECT_EQ(v.rfind("NVRTC ", 0), 0u) << v;
  EXPECT_NE(v.find('.'), std::string::npos) << v;
}

TEST(Nvrtc, RejectsArchsWithClearErrors) {
  std::string msg = expectError(ErrorCode::Unsupported, [] { requireTensorCoreArch("sm_50"); });
  EXPECT_NE(msg.find("'sm_50'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sm_80"), std::string::npos) << msg;

  msg = expectError(ErrorCode::Unsupported, [] { requireTensorCoreArch("sm_75"); });
  EXPECT_NE(msg.find("unsupported CUDA architecture 'sm_75'"), std::string::npos) << msg;

  // Even when NVRTC is asked directly, sm_50 is refused before compiling.
  msg = expectError(ErrorCode::Unsupported,
                    [] { compileCuda(test::kMatmulSource, mmaHeaders(), {.arch = "sm_50"}); });
  EXPECT_NE(msg.find("'sm_50'"), std::string::npos) << msg;

  msg = expectError(ErrorCode::Unsupported, [] { validateArch("sm_999"); });
  EXPECT_NE(msg.find("unsupported CUDA architecture 'sm_999'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("supports sm_"), std::string::npos) << msg;

  msg = expectError(ErrorCode::Unsupported, [] { requireTensorCoreArch("foo"); });
  EXPECT_NE(msg.find("unsupported CUDA architecture 'foo'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sm_XY"), std::string::npos) << msg;

  expectError(ErrorCode::Unsupported, [] { validateArch("sm_80a"); });
  expectError(ErrorCode::Unsupported, [] { validateArch("compute_80"); });
  EXPECT_EQ(validateArch("sm_90a"), 90);
}

TEST(Nvrtc, SyntaxErrorReportsLogAndSavedSource) {
  const std::string source = "extern \"C\" __global__ void broken(float *x) { x[0] = 1.0f }\n";
  std::string msg = expectError(ErrorCode::CompileFailed, [&] {
    compileCuda(source, {{"extra.cuh", "// header\n"}}, {.arch = "sm_80", .programName = "broken.cu"});
  });
  EXPECT_NE(msg.find("broken.cu"), std::string::npos) << msg;
  EXPECT_NE(msg.find("error"), std::string::npos) << msg; // NVRTC's log
  const std::string marker = "source saved to ";
  size_t at = msg.find(marker);
  ASSERT_NE(at, std::string::npos) << msg;
  std::string path = msg.substr(at + marker.size(), msg.find('\n', at) - at - marker.size());
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(path).parent_path() / "extra.cuh"));
}

TEST(Nvrtc, ParsesPtxasReport) {
  const std::string log = R"(ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_80'
ptxas info    : Function properties for _Z3fooPf
    16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers, 16384 bytes smem, 380 bytes cmem[0]
ptxas info    : Function properties for helper
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'bar' for 'sm_80'
ptxas info    : Function properties for bar
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, 356 bytes cmem[0]
)";
  std::vector<KernelResources> ks = parsePtxasReport(log);
  ASSERT_EQ(ks.size(), 2u);
  EXPECT_EQ(ks[0].name, "_Z3fooPf");
  EXPECT_EQ(ks[0].registers, 168);
  EXPECT_EQ(ks[0].stackFrameBytes, 16);
  EXPECT_EQ(ks[0].spillStoreBytes, 8);
  EXPECT_EQ(ks[0].spillLoadBytes, 12);
  EXPECT_EQ(ks[0].sharedBytes, 16384);
  EXPECT_EQ(ks[0].constantBytes, 380);
  EXPECT_EQ(ks[1].name, "bar");
  EXPECT_EQ(ks[1].registers, 32);
  EXPECT_EQ(ks[1].sharedBytes, 0);
  EXPECT_EQ(ks[1].spillStoreBytes, 0);
}
