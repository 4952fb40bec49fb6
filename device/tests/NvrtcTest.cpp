// The device library compiles under NVRTC with only in-memory sources (the
// headers are embedded at build time), to CUBIN for sm_80 and sm_90a, and the
// PTX contains the intended instructions.
#include <gtest/gtest.h>
#include <nvrtc.h>

#include <string>
#include <utility>
#include <vector>

#include "loom/device/EmbeddedHeaders.h"

namespace loom::device::test {
const std::vector<std::pair<std::string, std::string>>& embedded_kernels();
}

namespace {

struct Compiled {
  nvrtcResult status;
  std::string log, ptx;
  std::size_t cubin_bytes = 0;
};

Compiled compile(const std::string& source, const std::string& arch, bool cuda_include) {
  std::vector<const char*> names, texts;
  for (const auto& [name, text] : loom::device::embedded_headers()) {
    names.push_back(name.c_str());
    texts.push_back(text.c_str());
  }
  nvrtcProgram prog;
  EXPECT_EQ(nvrtcCreateProgram(&prog, source.c_str(), "test.cu", (int)names.size(),
                               texts.data(), names.data()),
            NVRTC_SUCCESS);
  std::vector<std::string> opts = {"-arch=" + arch, "-std=c++17"};
  if (cuda_include) opts.push_back(std::string("-I") + LOOM_CUDA_INCLUDE_DIR);
  std::vector<const char*> copts;
  for (const auto& o : opts) copts.push_back(o.c_str());
  Compiled c;
  c.status = nvrtcCompileProgram(prog, (int)copts.size(), copts.data());
  std::size_t n = 0;
  nvrtcGetProgramLogSize(prog, &n);
  c.log.resize(n);
  nvrtcGetProgramLog(prog, c.log.data());
  if (c.status == NVRTC_SUCCESS) {
    nvrtcGetPTXSize(prog, &n);
    c.ptx.resize(n);
    nvrtcGetPTX(prog, c.ptx.data());
    nvrtcGetCUBINSize(prog, &c.cubin_bytes);
  }
  nvrtcDestroyProgram(&prog);
  return c;
}

std::string test_kernel_source() {
  for (const auto& [name, text] : loom::device::test::embedded_kernels())
    if (name == "kernels/primitives_kernel.cuh") return text;
  ADD_FAILURE() << "test kernel not embedded";
  return "";
}

class NvrtcArch : public ::testing::TestWithParam<const char*> {};

TEST_P(NvrtcArch, TestKernelCompilesToCubinWithExpectedPtx) {
  const Compiled c = compile(test_kernel_source(), GetParam(), true);
  ASSERT_EQ(c.status, NVRTC_SUCCESS) << c.log;
  EXPECT_GT(c.cubin_bytes, 0u);
  for (const char* needle : {
           "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
           "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
           "ldmatrix.sync.aligned.m8n8.x1.shared.b16",
           "ldmatrix.sync.aligned.m8n8.x2.shared.b16",
           "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
           "ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16",
           "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16",
           "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
           "cp.async.cg.shared.global", "cp.async.commit_group", "cp.async.wait_group 0",
           "shfl.sync.up.b32", "shfl.sync.down.b32", "shfl.sync.bfly.b32", "shfl.sync.idx.b32",
           "ex2.approx.f32", "cvt.rn.f16x2.f32", "cvt.rn.bf16x2.f32", "cvt.rn.f16.f32",
           "cvt.rn.bf16.f32", "cvt.f32.f16", "bar.sync 0", "%laneid"})
    EXPECT_NE(c.ptx.find(needle), std::string::npos) << "missing " << needle;
}

INSTANTIATE_TEST_SUITE_P(Device, NvrtcArch, ::testing::Values("sm_80", "sm_90a"));

// primitives.h on its own needs nothing but itself: no host headers and no
// CUDA include directory.
TEST(Nvrtc, PrimitivesNeedNoHostHeaders) {
  const Compiled c = compile(
      "#include \"loom/device/primitives.h\"\n"
      "extern \"C\" __global__ void k(float* o) {\n"
      "  o[threadIdx.x] = loom::device::ex2_approx(o[threadIdx.x]);\n"
      "}\n",
      "sm_80", false);
  EXPECT_EQ(c.status, NVRTC_SUCCESS) << c.log;
}

TEST(Nvrtc, EmbeddedHeadersAreTheDeviceLibrary) {
  bool found = false;
  for (const auto& [name, text] : loom::device::embedded_headers())
    if (name == "loom/device/primitives.h") found = !text.empty();
  EXPECT_TRUE(found);
}

} // namespace
