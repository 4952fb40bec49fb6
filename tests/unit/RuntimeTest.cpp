//===- RuntimeTest.cpp - compile, cache and launch checks -----------------===//
#include "ExpectError.h"

#include "loom/ops/Examples.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/Kernel.h"
#include "loom/runtime/Stream.h"

#include <chrono>

#include <gtest/gtest.h>

using namespace loom;
using namespace loom::runtime;

namespace {
const Specialization kSpec{.constants = {{"BLOCK", 64}}};

struct Buffers {
  std::vector<float> x = ops::ref::randomVector(100, -1, 1), y = x,
                     out = std::vector<float>(100, ops::ref::poison());
};
} // namespace

TEST(Launch, ArgumentCount) {
  auto k = compile(ops::vectorAddKernel(), kSpec);
  Buffers b;
  expectLoomError([&] { k->launch(Grid(2), {Arg::buffer(b.x), Arg::buffer(b.y)}); },
                  "kernel 'vector_add_f32' expects 4 arguments (x, y, out, n), got 2");
}

TEST(Launch, BufferDtype) {
  auto k = compile(ops::vectorAddKernel(), kSpec);
  Buffers b;
  std::vector<int32_t> wrong(100);
  expectLoomError(
      [&] { k->launch(Grid(2), {Arg::buffer(wrong), Arg::buffer(b.y), Arg::buffer(b.out), Arg::i32(100)}); },
      "argument 0 ('x') of kernel 'vector_add_f32' expects a buffer of f32, got a buffer of 100 i32 elements");
}

TEST(Launch, ScalarWhereBufferExpected) {
  auto k = compile(ops::vectorAddKernel(), kSpec);
  Buffers b;
  expectLoomError(
      [&] { k->launch(Grid(2), {Arg::buffer(b.x), Arg::i32(3), Arg::buffer(b.out), Arg::i32(100)}); },
      "argument 1 ('y') of kernel 'vector_add_f32' expects a buffer of f32, got an i32 scalar (3)");
}

TEST(Launch, ScalarDtype) {
  auto k = compile(ops::vectorAddKernel(), kSpec);
  Buffers b;
  expectLoomError(
      [&] { k->launch(Grid(2), {Arg::buffer(b.x), Arg::buffer(b.y), Arg::buffer(b.out), Arg::i64(100)}); },
      "argument 3 ('n') of kernel 'vector_add_f32' expects an i32 scalar, got an i64 scalar (100)");
}

TEST(Launch, NullPointer) {
  auto k = compile(ops::vectorAddKernel(), kSpec);
  Buffers b;
  expectLoomError(
      [&] {
        k->launch(Grid(2), {Arg::buffer(nullptr, DType::F32, 0), Arg::buffer(b.y), Arg::buffer(b.out),
                            Arg::i32(100)});
      },
      "argument 0 ('x') of kernel 'vector_add_f32' is a null pointer");
}

TEST(Launch, EmptyGrid) {
  auto k = compile(ops::vectorAddKernel(), kSpec);
  Buffers b;
  expectLoomError(
      [&] { k->launch(Grid(2, 0), {Arg::buffer(b.x), Arg::buffer(b.y), Arg::buffer(b.out), Arg::i32(100)}); },
      "kernel 'vector_add_f32': grid dimension 1 is 0; every grid dimension must be at least 1");
}

TEST(Launch, OnAStreamInStreamOrder) {
  // Two launches on one CPU stream: the second reads what the first wrote,
  // so it must run after it; arguments are checked at the call.
  auto k = compile(ops::vectorAddKernel(), kSpec);
  auto stream = createStream(Backend::Cpu, "compute");
  Buffers b;
  std::vector<float> twice(100, ops::ref::poison());
  std::vector<Arg> first = {Arg::buffer(b.x), Arg::buffer(b.y), Arg::buffer(b.out), Arg::i32(100)};
  std::vector<Arg> second = {Arg::buffer(b.out), Arg::buffer(b.x), Arg::buffer(twice),
                             Arg::i32(100)};
  k->launch(*stream, Grid(2), first);
  k->launch(*stream, Grid(2), second);
  expectLoomError([&] { k->launch(*stream, Grid(2), std::span<const Arg>(first).first(2)); },
                  "kernel 'vector_add_f32' expects 4 arguments (x, y, out, n), got 2");
  stream->synchronize(std::chrono::seconds(30));
  for (size_t i = 0; i < 100; ++i)
    EXPECT_FLOAT_EQ(twice[i], 3 * b.x[i]) << i;
}

TEST(Launch, StreamOfAnotherBackendIsRejected) {
  auto k = compile(ops::vectorAddKernel(), kSpec);
  std::string why;
  try {
    auto gpu = createStream(Backend::Cuda, "gpu");
    Buffers b;
    expectLoomError([&] { k->launch(*gpu, Grid(2), std::vector<Arg>{Arg::buffer(b.x),
                                        Arg::buffer(b.y), Arg::buffer(b.out), Arg::i32(100)}); },
                    "kernel 'vector_add_f32' (cpu backend) cannot launch on CUDA stream 'gpu'");
  } catch (const Error &e) {
    GTEST_SKIP() << "no CUDA stream to mismatch: " << e.what();
  }
}

TEST(Specialize, BoundArgumentIsFoldedAndChecked) {
  Specialization spec = kSpec;
  spec.bindings["n"] = int64_t(100);
  auto k = compile(ops::vectorAddKernel(), spec);
  Buffers b;
  k->launch(Grid(2), {Arg::buffer(b.x), Arg::buffer(b.y), Arg::buffer(b.out), Arg::i32(100)});
  for (size_t i = 0; i < 100; ++i)
    ASSERT_EQ(b.out[i], b.x[i] + b.y[i]);
  expectLoomError(
      [&] { k->launch(Grid(2), {Arg::buffer(b.x), Arg::buffer(b.y), Arg::buffer(b.out), Arg::i32(99)}); },
      "argument 3 ('n') of kernel 'vector_add_f32' was specialized to 100 but 99 was passed");
}

TEST(Specialize, UnknownArgument) {
  Specialization spec = kSpec;
  spec.bindings["m"] = int64_t(1);
  expectLoomError([&] { compile(ops::vectorAddKernel(), spec); },
                  "specialization binds 'm', but kernel 'vector_add_f32' has no such argument");
}

TEST(Specialize, PointerArgument) {
  Specialization spec = kSpec;
  spec.bindings["x"] = int64_t(1);
  expectLoomError([&] { compile(ops::vectorAddKernel(), spec); },
                  "specialization binds 'x' of kernel 'vector_add_f32', a pointer; only scalar "
                  "arguments can be bound");
}

TEST(Specialize, FloatForInteger) {
  Specialization spec = kSpec;
  spec.bindings["n"] = 2.5;
  expectLoomError([&] { compile(ops::vectorAddKernel(), spec); },
                  "specialization binds i32 'n' of kernel 'vector_add_f32' to a float value 2.5");
}

TEST(Cache, HitByIdentityThenByIr) {
  KernelCache cache = KernelCache::global(); // shares state with the global cache
  cache.clear();
  auto kernel = ops::softmaxKernel();
  auto first = compile(kernel, kSpec);
  auto second = compile(kernel, kSpec);
  EXPECT_EQ(first.get(), second.get());
  auto stats = KernelCache::global().stats();
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.hits, 1u);
  // Another Kernel object producing identical IR shares the compiled code.
  auto third = compile(ops::softmaxKernel(), kSpec);
  EXPECT_EQ(first.get(), third.get());
  EXPECT_EQ(KernelCache::global().stats().irHits, 1u);
  // A different specialization is a different kernel.
  auto fourth = compile(kernel, {.constants = {{"BLOCK", 32}}});
  EXPECT_NE(first.get(), fourth.get());
  EXPECT_NE(first->cacheKey(), fourth->cacheKey());
  EXPECT_EQ(KernelCache::global().stats().misses, 2u);
}

TEST(Compile, ReportsStageTimings) {
  auto k = compileUncached(ops::matmulKernel(DType::F16),
                           {.constants = {{"BLOCK_M", 16}, {"BLOCK_N", 16}, {"BLOCK_K", 16}}});
  std::vector<std::string> names;
  for (const auto &t : k->timings()) {
    names.push_back(t.name);
    EXPECT_GE(t.milliseconds, 0.0);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"dsl", "specialize", "linalg", "bufferize", "loops",
                                             "llvm", "jit"}));
}

TEST(Compile, UnknownExample) {
  expectLoomError([] { ops::exampleKernel("conv", DType::F32); },
                  "unknown kernel 'conv' (known: vector_add, softmax, matmul)");
}
