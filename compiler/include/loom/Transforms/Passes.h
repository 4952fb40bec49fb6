//===- Passes.h - loom transformation passes --------------------*- C++ -*-===//
#ifndef LOOM_TRANSFORMS_PASSES_H
#define LOOM_TRANSFORMS_PASSES_H

#include "loom/Dialect/Loom/IR/Loom.h"
#include "mlir/Pass/Pass.h"

namespace mlir::loom {
#define GEN_PASS_DECL
#include "loom/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "loom/Transforms/Passes.h.inc"

/// Function attribute set by loom-pipeline-dot-operands: bytes of shared
/// memory its buffers take, at the start of the block's shared memory.
inline constexpr llvm::StringLiteral kPipelineBytesAttrName = "loom.pipeline_bytes";
} // namespace mlir::loom

#endif
