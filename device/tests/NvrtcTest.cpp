// The device library compiles under NVRTC with only in-memory sources (the
// headers are embedded at build time), to CUBIN for sm_80 and sm_90a, and the
// PTX contains the intended instructions.
#include <gtest/gtest.h>
#include <nvrtc.h>

#include <iostream>
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

Compiled compile(const std::string& source, const std::string& arch, bool cuda_include,
                  const std::vector<std::string>& extra = {}) {
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
  opts.insert(opts.end(), extra.begin(), extra.end());
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

std::string test_kernel_source(const std::string& file = "kernels/primitives_kernel.cuh") {
  for (const auto& [name, text] : loom::device::test::embedded_kernels())
    if (name == file) return text;
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

// The tile layer's test kernel (two tensor-core dots, reduce, broadcast,
// masked load/store) compiles with only the embedded headers, without spills,
// and its PTX has the mma and ldmatrix of the tensor-core path.
TEST_P(NvrtcArch, TileKernelCompilesWithoutSpills) {
  const Compiled c = compile(test_kernel_source("kernels/tile_kernel.cuh"), GetParam(), false,
                             {"-Xptxas", "-v"});
  ASSERT_EQ(c.status, NVRTC_SUCCESS) << c.log;
  EXPECT_GT(c.cubin_bytes, 0u);
  for (const char* needle : {
           "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
           "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
           "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
           "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16", "bar.sync 0"})
    EXPECT_NE(c.ptx.find(needle), std::string::npos) << "missing " << needle;
  // ptxas -v: "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads".
  EXPECT_NE(c.log.find("0 bytes spill stores, 0 bytes spill loads"), std::string::npos) << c.log;
  EXPECT_EQ(c.ptx.find("ld.local"), std::string::npos);
  const auto used = c.log.find("Used ");
  ASSERT_NE(used, std::string::npos) << c.log;
  std::cout << "[ ptxas    ] loom_tile_kernel " << GetParam() << ": "
            << c.log.substr(used, c.log.find('\n', used) - used) << "\n";
}

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
  for (const char* header :
       {"loom/device/primitives.h", "loom/device/tile.h", "loom/device/tile/core.h",
        "loom/device/tile/elementwise.h", "loom/device/tile/memory.h",
        "loom/device/tile/construct.h", "loom/device/tile/reduce.h", "loom/device/tile/dot.h",
        "loom/device/tile/pipeline.h"}) {
    bool found = false;
    for (const auto& [name, text] : loom::device::embedded_headers())
      if (name == header) found = !text.empty();
    EXPECT_TRUE(found) << header;
  }
}

// Every op of the tile layer instantiated for its types compiles under NVRTC
// with no host headers (math functions come from NVRTC's built-ins).
TEST(Nvrtc, TileOpsCompileForEveryType) {
  const Compiled c = compile(R"(
#define LOOM_NUM_THREADS 64
#include "loom/device/tile.h"
namespace lt = loom::tile;
template <class T, class S>
__device__ void arith(T* p, unsigned char* smem) {
  using TT = lt::Tile<T, S>;
  auto off = lt::reshape<lt::Tile<lt::int32_t, S>>(lt::arange<lt::Tile<lt::int32_t, lt::Shape<S::size>>, 0>());
  TT a = lt::load(p, off), b = lt::load(p + S::size, off);
  TT r = lt::add(lt::sub(a, b), lt::mul(lt::div(a, b), lt::maximum(a, lt::minimum(a, b))));
  r = lt::select(lt::cmp_lt(a, b), r, lt::neg(lt::abs(r)));
  r = lt::select(lt::bit_or(lt::cmp_ge(a, b), lt::cmp_ne(a, b)), r, a);
  r = lt::select(lt::bit_and(lt::cmp_le(a, b), lt::cmp_eq(a, b)), r, b);
  r = lt::select(lt::bit_xor(lt::cmp_gt(a, b), lt::cmp_eq(a, b)), r, a);
  auto s = lt::reduce_sum<lt::Tile<T, lt::Shape<>>, 0>(lt::reduce_max<lt::Tile<T, lt::Shape<S::dim(1)>>, 0>(r, smem), smem);
  auto m = lt::reduce_min<lt::Tile<T, lt::Shape<S::dim(0)>>, 1>(r, smem);
  T x = lt::extract(s, smem);
  r = lt::add(r, lt::broadcast<TT>(lt::reshape<lt::Tile<T, lt::Shape<S::dim(0), 1>>>(m), smem));
  r = lt::add(r, lt::splat<TT>(x));
  lt::store(p, off, r, lt::cmp_ne(a, b));
}
template <class T, class S>
__device__ void math(T* p) {
  auto off = lt::reshape<lt::Tile<lt::int32_t, S>>(lt::arange<lt::Tile<lt::int32_t, lt::Shape<S::size>>, 0>());
  auto a = lt::load(p, off);
  auto r = lt::add(lt::exp2(a), lt::log2(a));
  r = lt::add(r, lt::mul(lt::exp(a), lt::log(a)));
  r = lt::add(r, lt::div(lt::tanh(a), lt::sqrt(a)));
  lt::store(p, off, r);
}
extern "C" __global__ void __launch_bounds__(64) k(float* f, lt::half_t* h, lt::bf16_t* b,
    lt::int32_t* i, lt::int64_t* l, bool* z) {
  unsigned char* smem = lt::shared_scratch();
  using S = lt::Shape<7, 13>;
  arith<float, S>(f, smem);
  arith<lt::half_t, S>(h, smem);
  arith<lt::bf16_t, S>(b, smem);
  arith<lt::int32_t, S>(i, smem);
  arith<lt::int64_t, S>(l, smem);
  math<float, S>(f);
  math<lt::half_t, S>(h);
  math<lt::bf16_t, S>(b);
  auto off = lt::arange<lt::Tile<lt::int32_t, lt::Shape<91>>, 0>();
  auto fi = lt::load(f, off, lt::cmp_lt(off, lt::splat<decltype(off)>(50)));
  lt::store(i, off, lt::rem(lt::cast<lt::int32_t>(fi), lt::load(i, off)));
  lt::store(l, off, lt::cast<lt::int64_t>(lt::cast<lt::bf16_t>(lt::cast<lt::half_t>(fi))));
  lt::store(b, off, lt::cast<lt::bf16_t>(lt::load(l, off)));
  lt::store(z, off, lt::cast<bool>(lt::load(l, off)));
  lt::store(f, off, lt::cast<float>(lt::load(z, off)));
  using TA = lt::Tile<lt::half_t, lt::Shape<24, 20>>;
  using TR = lt::Tile<float, lt::Shape<24, 24>>;
  auto o2 = lt::reshape<lt::Tile<lt::int32_t, lt::Shape<24, 20>>>(lt::arange<lt::Tile<lt::int32_t, lt::Shape<480>>, 0>());
  auto o3 = lt::reshape<lt::Tile<lt::int32_t, lt::Shape<20, 24>>>(lt::arange<lt::Tile<lt::int32_t, lt::Shape<480>>, 0>());
  auto o4 = lt::reshape<lt::Tile<lt::int32_t, lt::Shape<24, 24>>>(lt::arange<lt::Tile<lt::int32_t, lt::Shape<576>>, 0>());
  TR d = lt::dot<TR>(lt::load(h, o2), lt::load(h, o3), lt::splat<TR>(0), smem);
  d = lt::dot<TR>(lt::load(f, o2), lt::load(f, o3), d, smem);
  lt::store(f, o4, d);
  (void)sizeof(TA);
  f[0] += (float)(lt::program_id<1>() + lt::num_programs<2>());
}
)",
                             "sm_80", false);
  EXPECT_EQ(c.status, NVRTC_SUCCESS) << c.log;
}

// Column-major dot operands (transposed views, as K^T, and pipeline slots
// in that layout) compile to cp.async staging and the ldmatrix forms that
// read them: .trans for A, plain for B (the opposite of row-major).
TEST(Nvrtc, ColumnMajorDotOperandsUseCpAsyncAndLdmatrix) {
  const Compiled c = compile(R"(
#define LOOM_NUM_THREADS 128
#include "loom/device/tile.h"
namespace lt = loom::tile;
using A = lt::GlobalBlock<lt::bf16_t, lt::Shape<64, 64>, true>;
using B = lt::GlobalBlock<lt::bf16_t, lt::Shape<64, 32>, true>;
using SlotB = lt::SharedBlock<lt::bf16_t, lt::Shape<64, 32>, true>;
using TM = lt::Tile<float, lt::Shape<64, 32>, lt::Mma<4, 1>>;
extern "C" __global__ void __launch_bounds__(128) k(const lt::bf16_t* p, float* out, long ld, int n) {
  constexpr int kSlotBytes = 64 * 32 * 2;
  unsigned char* smem = lt::shared_scratch<kSlotBytes>();
  const lt::bf16_t zero{};
  lt::async_copy<SlotB, 0, 1>(0, p, zero, 0, 1L, ld, 64, n);
  lt::async_commit();
  lt::async_wait<0>();
  const A a = lt::block_view<A>(p, zero, 0, 1L, ld, 64, n);
  TM acc = lt::dot<TM>(a, lt::block_view<B>(p, zero, 64, 1L, ld, 64, n), lt::splat<TM>(0.0f), smem);
  acc = lt::dot<TM>(a, lt::shared_slot<SlotB, 0, 1>(0), acc, smem);
  auto off = lt::arange<lt::Tile<lt::int32_t, lt::Shape<64 * 32>>, 0>();
  lt::store(out, off, lt::reshape<lt::Tile<float, lt::Shape<64 * 32>>>(
                          lt::convert_layout<lt::Tile<float, lt::Shape<64, 32>>>(acc, smem)));
}
)",
                             "sm_80", false);
  ASSERT_EQ(c.status, NVRTC_SUCCESS) << c.log;
  EXPECT_NE(c.ptx.find("cp.async.cg.shared.global"), std::string::npos);
  EXPECT_NE(c.ptx.find("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"), std::string::npos);
  EXPECT_NE(c.ptx.find("ldmatrix.sync.aligned.m8n8.x4.shared.b16"), std::string::npos);
}

} // namespace
