//===- GridToArgs.cpp - program ids become kernel arguments ---------------===//
//
// The CPU runtime calls the kernel once per program instance and passes the
// grid position as trailing i32 arguments (see kNumGridArgs).
//
//===----------------------------------------------------------------------===//
#include "loom/Conversion/Passes.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
template <typename OpTy, unsigned FirstArg>
struct GridQueryToArg : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto func = op->template getParentOfType<func::FuncOp>();
    if (!func || func.getNumArguments() < kNumGridArgs)
      return rewriter.notifyMatchFailure(op, "kernel has no grid arguments");
    unsigned base = func.getNumArguments() - kNumGridArgs;
    rewriter.replaceOp(op, func.getArgument(base + FirstArg + op.getAxis()));
    return success();
  }
};
} // namespace

void mlir::loom::populateLoomGridToArgsPatterns(RewritePatternSet &patterns) {
  patterns.add<GridQueryToArg<ProgramIdOp, 0>, GridQueryToArg<NumProgramsOp, 3>>(
      patterns.getContext());
}
