//===- Passes.h - loom conversion passes ------------------------*- C++ -*-===//
#ifndef LOOM_CONVERSION_PASSES_H
#define LOOM_CONVERSION_PASSES_H

#include "loom/Dialect/Loom/IR/Loom.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::loom {
#define GEN_PASS_DECL
#include "loom/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "loom/Conversion/Passes.h.inc"

/// Number of trailing i32 arguments the CPU lowering appends to a kernel:
/// program ids of axes 0..2, then program counts of axes 0..2.
inline constexpr unsigned kNumGridArgs = 6;

/// One function per op family (lib/Conversion/LoomToLinalg/*.cpp).
void populateLoomMemoryToLinalgPatterns(const TypeConverter &converter,
                                        RewritePatternSet &patterns);
void populateLoomShapeToLinalgPatterns(RewritePatternSet &patterns);
void populateLoomComputeToLinalgPatterns(RewritePatternSet &patterns);
void populateLoomGridToArgsPatterns(RewritePatternSet &patterns);
} // namespace mlir::loom

#endif
