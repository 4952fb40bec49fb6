//===- TransTest.cpp - dsl::trans on every backend --------------------------===//
//
// A tile transposed in registers, stored, and fed to a dot as its A operand
// (the use that needs it: dK += dS^T Q in a fused attention backward), on
// the CPU and on the emulated device (the CUDA C++ NVRTC compiles), in f32
// and bf16, against float64.
//
//===----------------------------------------------------------------------===//
#include "loom/Support/Error.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/Kernel.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

using namespace loom;
using namespace loom::runtime;
namespace ref = loom::ops::ref;

namespace {
// x: [R, C] (dtype), y: [R, N] (dtype); t = trans(x) as f32 [C, R],
// c = trans(x) @ y as f32 [C, N] and u = trans(c) [N, C] (on the emulated
// device c is an mma accumulator: a transpose out of mma fragments). Tiles
// are whole (no masks).
dsl::Kernel transKernel(DType dtype) {
  return dsl::Kernel(fmt::format("trans_dot_{}", dtype == DType::F32 ? "f32" : "bf16"),
                     [dtype](dsl::KernelBuilder &kb) {
    dsl::Value x = kb.pointer("x", dtype), y = kb.pointer("y", dtype);
    dsl::Value t = kb.pointer("t", DType::F32), c = kb.pointer("c", DType::F32);
    dsl::Value u = kb.pointer("u", DType::F32);
    int64_t R = kb.constant("R"), C = kb.constant("C"), N = kb.constant("N");
    dsl::Value r = dsl::arange(0, R), cc = dsl::arange(0, C), n = dsl::arange(0, N);
    dsl::Value xTile = dsl::load(x, dsl::expand_dims(r, 1) * C + dsl::expand_dims(cc, 0));
    dsl::Value yTile = dsl::load(y, dsl::expand_dims(r, 1) * N + dsl::expand_dims(n, 0));
    dsl::Value xT = dsl::trans(xTile); // [C, R]
    dsl::store(t, dsl::expand_dims(cc, 1) * R + dsl::expand_dims(r, 0), xT.to(DType::F32));
    dsl::Value product = dsl::dot(xT, yTile); // [C, N]
    dsl::store(c, dsl::expand_dims(cc, 1) * N + dsl::expand_dims(n, 0), product);
    dsl::store(u, dsl::expand_dims(n, 1) * C + dsl::expand_dims(cc, 0), dsl::trans(product));
  });
}

struct TransCase {
  Backend backend;
  DType dtype;
};

class Trans : public ::testing::TestWithParam<TransCase> {};

TEST_P(Trans, StoredAndAsADotOperandMatchFloat64) {
  const auto [backend, dtype] = GetParam();
  // [16, 32] is a 4-warp mma tile (one atom row, 4 x 8 columns per warp).
  const int64_t R = 32, C = 16, N = 32;
  std::vector<float> x = ref::randomVector(R * C, -1, 1), y = ref::randomVector(R * N, -1, 1);
  std::vector<uint16_t> xBits, yBits;
  if (dtype == DType::BF16) {
    x = ref::roundToBf16(x), y = ref::roundToBf16(y);
    xBits = ref::toBf16Bits(x), yBits = ref::toBf16Bits(y);
  }
  auto arg = [&](std::vector<float> &f, std::vector<uint16_t> &bits) {
    return dtype == DType::F32 ? Arg::buffer(f.data(), dtype, f.size())
                               : Arg::buffer(bits.data(), dtype, bits.size());
  };
  Specialization spec;
  spec.constants = {{"R", R}, {"C", C}, {"N", N}};
  spec.backend = backend;
  std::vector<float> t(C * R, ref::poison()), c(C * N, ref::poison()), u(N * C, ref::poison());
  compile(transKernel(dtype), spec)
      ->launch(Grid(1),
               {arg(x, xBits), arg(y, yBits), Arg::buffer(t), Arg::buffer(c), Arg::buffer(u)});
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < R; ++j)
      ASSERT_EQ(t[i * R + j], x[j * C + i]) << "trans(x)[" << i << ", " << j << "]";
  std::vector<double> xT(C * R);
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < R; ++j)
      xT[i * R + j] = x[j * C + i];
  auto dy = ref::toDouble(y);
  auto e = ref::compareScaled(c, ref::matmul(xT, dy, C, N, R),
                              ref::matmul(ref::absolute(xT), ref::absolute(dy), C, N, R));
  EXPECT_TRUE(ref::withinRelative(e, 1e-5)) << ref::format(e);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < C; ++j)
      ASSERT_EQ(u[i * C + j], c[j * N + i]) << "trans(c)[" << i << ", " << j << "]";
}

INSTANTIATE_TEST_SUITE_P(Backends, Trans,
                         ::testing::Values(TransCase{Backend::Cpu, DType::F32},
                                           TransCase{Backend::Cpu, DType::BF16},
                                           TransCase{Backend::Emu, DType::F32},
                                           TransCase{Backend::Emu, DType::BF16}),
                         [](const auto &info) {
                           return std::string(info.param.backend == Backend::Cpu ? "cpu"
                                                                                 : "emu") +
                                  (info.param.dtype == DType::F32 ? "_f32" : "_bf16");
                         });

TEST(Trans, OfANon2DTileIsAnErrorNamingTheShape) {
  dsl::Kernel kernel("trans_1d", [](dsl::KernelBuilder &kb) {
    (void)kb.pointer("x", DType::F32);
    (void)dsl::trans(dsl::arange(0, 16));
  });
  try {
    compile(kernel, {.backend = Backend::Cpu});
    FAIL() << "a 1-D trans compiled";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("trans: expects a 2-D tile"), std::string::npos)
        << e.what();
  }
}
} // namespace
