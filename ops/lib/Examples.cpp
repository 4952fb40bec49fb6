//===- Examples.cpp - the built-in example kernels ------------------------===//
#include "loom/ops/Examples.h"

#include "loom/Support/Error.h"

#include <cmath>
#include <fmt/format.h>

namespace loom::ops {
using namespace loom::dsl;

namespace {
std::string suffixed(const char *name, DType t) {
  return fmt::format("{}_{}", name, dtypeName(t));
}
} // namespace

Kernel vectorAddKernel(DType dtype) {
  return Kernel(suffixed("vector_add", dtype), [dtype](KernelBuilder &k) {
    Value x = k.pointer("x", dtype), y = k.pointer("y", dtype), out = k.pointer("out", dtype);
    Value n = k.scalar("n", DType::I32);
    int64_t block = k.constant("BLOCK");
    Value offs = program_id(0) * block + arange(0, block);
    Value mask = offs < n;
    store(out, offs, load(x, offs, mask) + load(y, offs, mask), mask);
  });
}

Kernel softmaxKernel(DType dtype) {
  return Kernel(suffixed("softmax", dtype), [dtype](KernelBuilder &k) {
    Value x = k.pointer("x", dtype), y = k.pointer("y", dtype);
    Value nCols = k.scalar("n_cols", DType::I32), stride = k.scalar("row_stride", DType::I32);
    int64_t block = k.constant("BLOCK");
    constexpr double kLog2e = 1.4426950408889634;
    Value rowStart = program_id(0) * stride;
    Value cols = arange(0, block);
    Value numChunks = (nCols + (block - 1)) / block;
    // Pass 1: running max m and sum l of exp2((x - m) * log2 e), in f32.
    auto ml = for_range(0, numChunks, 1, {-INFINITY, 0.0},
                        [&](Value chunk, const std::vector<Value> &c) -> std::vector<Value> {
      Value col = chunk * block + cols;
      Value v = load(x, rowStart + col, col < nCols, -INFINITY).to(DType::F32);
      Value m = maximum(c[0], max(v, 0));
      // where() keeps an all -inf prefix from producing exp2(-inf - -inf) = NaN.
      Value scale = where(m == -INFINITY, 0.0, exp2((c[0] - m) * kLog2e));
      return {m, c[1] * scale + sum(exp2((v - m) * kLog2e), 0)};
    });
    Value m = ml[0], inv = 1.0 / ml[1];
    // Pass 2: write the normalized values.
    for_range(0, numChunks, 1, {}, [&](Value chunk, const std::vector<Value> &) {
      Value col = chunk * block + cols;
      Value v = load(x, rowStart + col, col < nCols, -INFINITY).to(DType::F32);
      store(y, rowStart + col, (exp2((v - m) * kLog2e) * inv).to(dtype), col < nCols);
      return std::vector<Value>{};
    });
  });
}

Kernel matmulKernel(DType dtype) {
  return Kernel(suffixed("matmul", dtype), [dtype](KernelBuilder &k) {
    Value a = k.pointer("a", dtype), b = k.pointer("b", dtype), c = k.pointer("c", DType::F32);
    Value M = k.scalar("M", DType::I32), N = k.scalar("N", DType::I32), K = k.scalar("K", DType::I32);
    Value lda = k.scalar("lda", DType::I32), ldb = k.scalar("ldb", DType::I32),
          ldc = k.scalar("ldc", DType::I32);
    int64_t bm = k.constant("BLOCK_M"), bn = k.constant("BLOCK_N"), bk = k.constant("BLOCK_K");
    Value rows = program_id(0) * bm + arange(0, bm);
    Value cols = program_id(1) * bn + arange(0, bn);
    Value kk = arange(0, bk);
    Value numSteps = (K + (bk - 1)) / bk;
    // Offsets in i64: row * ld passes 2^31 elements for large matrices (and
    // i64 offset tiles become block loads on the GPU, loom-structure-memory).
    auto i64 = [](Value v) { return v.to(DType::I64); };
    Value rows64 = i64(rows), cols64 = i64(cols);
    auto acc = for_range(0, numSteps, 1, {zeros({bm, bn}, DType::F32)},
                         [&](Value step, const std::vector<Value> &carried) -> std::vector<Value> {
      Value ks = step * bk + kk;
      Value aTile = load(a, expand_dims(rows64, 1) * i64(lda) + expand_dims(i64(ks), 0),
                         expand_dims(rows < M, 1) & expand_dims(ks < K, 0), 0.0);
      Value bTile = load(b, expand_dims(i64(ks), 1) * i64(ldb) + expand_dims(cols64, 0),
                         expand_dims(ks < K, 1) & expand_dims(cols < N, 0), 0.0);
      return {dot(aTile, bTile, carried[0])};
    });
    store(c, expand_dims(rows64, 1) * i64(ldc) + expand_dims(cols64, 0), acc[0],
          expand_dims(rows < M, 1) & expand_dims(cols < N, 0));
  });
}

const std::vector<ExampleInfo> &exampleKernels() {
  static const std::vector<ExampleInfo> examples = {
      {"vector_add", "out = x + y, masked tail", {{"BLOCK", 256}}},
      {"softmax", "row softmax, online max/sum over BLOCK chunks", {{"BLOCK", 128}}},
      {"matmul", "tiled C = A @ B with f32 accumulation",
       {{"BLOCK_M", 32}, {"BLOCK_N", 32}, {"BLOCK_K", 32}}},
  };
  return examples;
}

Kernel exampleKernel(const std::string &name, DType dtype) {
  if (name == "vector_add")
    return vectorAddKernel(dtype);
  if (name == "softmax")
    return softmaxKernel(dtype);
  if (name == "matmul") {
    if (!isFloat(dtype))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("matmul needs a float dtype (f32, f16, bf16), got {}",
                              dtypeName(dtype)));
    return matmulKernel(dtype);
  }
  std::string known;
  for (const ExampleInfo &e : exampleKernels())
    known += (known.empty() ? "" : ", ") + e.name;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown kernel '{}' (known: {})", name, known));
}

} // namespace loom::ops
