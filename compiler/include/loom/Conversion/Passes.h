//===- Passes.h - loom conversion passes ------------------------*- C++ -*-===//
#ifndef LOOM_CONVERSION_PASSES_H
#define LOOM_CONVERSION_PASSES_H

#include "loom/Dialect/Loom/IR/Loom.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/EmitC/IR/EmitC.h"
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

/// CUDA backend (lib/Conversion/LoomToEmitC/*.cpp): one function per op
/// family. Ops that need the shared-memory scratch find it as the first
/// op of their kernel (see kSharedScratchCallee).
void populateLoomGridToEmitCPatterns(const TypeConverter &converter,
                                     RewritePatternSet &patterns);
void populateLoomShapeToEmitCPatterns(const TypeConverter &converter,
                                      RewritePatternSet &patterns);
void populateLoomMemoryToEmitCPatterns(const TypeConverter &converter,
                                       RewritePatternSet &patterns);
void populateLoomComputeToEmitCPatterns(const TypeConverter &converter,
                                        RewritePatternSet &patterns);
void populateElementwiseToEmitCPatterns(const TypeConverter &converter,
                                        RewritePatternSet &patterns);
void populateLoomPipelineToEmitCPatterns(const TypeConverter &converter,
                                         RewritePatternSet &patterns);
inline constexpr llvm::StringLiteral kSharedScratchCallee = "loom::tile::shared_scratch";
/// Module attributes set by convert-loom-to-emitc.
inline constexpr llvm::StringLiteral kSharedBytesAttrName = "loom.shared_bytes";
inline constexpr llvm::StringLiteral kNumThreadsAttrName = "loom.num_threads";
} // namespace mlir::loom

#endif
