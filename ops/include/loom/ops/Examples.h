//===- Examples.h - the built-in example kernels ----------------*- C++ -*-===//
//
// Small kernels written in the DSL, used by the demo, `loom compile`, the
// tests and the benchmarks. Each is a factory so the caller picks dtypes;
// block sizes are compile-time constants of the specialization.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_EXAMPLES_H
#define LOOM_OPS_EXAMPLES_H

#include "loom/dsl/Kernel.h"

#include <string>
#include <vector>

namespace loom::ops {

/// out[i] = x[i] + y[i] for i < n; one BLOCK-wide chunk per program (axis 0).
/// Arguments: x, y, out (dtype), n (i32). Constants: BLOCK.
dsl::Kernel vectorAddKernel(DType dtype = DType::F32);

/// Row softmax of an n_rows x n_cols matrix, one row per program (axis 0),
/// streaming over the row in BLOCK-wide chunks with an online max/sum, so
/// any n_cols works with any BLOCK. Arguments: x, y (dtype), n_cols,
/// row_stride (i32). Constants: BLOCK.
dsl::Kernel softmaxKernel(DType dtype = DType::F32);

/// c (f32, M x N) = a (M x K) @ b (K x N), row-major with leading dimensions
/// lda, ldb, ldc; one BLOCK_M x BLOCK_N tile per program (axes 0, 1), f32
/// accumulation over BLOCK_K steps. Arguments: a, b (dtype), c (f32), M, N,
/// K, lda, ldb, ldc (i32). Constants: BLOCK_M, BLOCK_N, BLOCK_K.
dsl::Kernel matmulKernel(DType dtype = DType::BF16);

struct ExampleInfo {
  std::string name;
  std::string description;
  dsl::Constants defaultConstants;
};
const std::vector<ExampleInfo> &exampleKernels();
/// The example called `name` for `dtype`; throws loom::Error naming the
/// known examples when there is none.
dsl::Kernel exampleKernel(const std::string &name, DType dtype);

} // namespace loom::ops

#endif
