//===- GridToEmitC.cpp - program ids become blockIdx/gridDim reads --------===//
#include "EmitCUtils.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
template <typename OpTy>
struct GridQueryToCall : OpConversionPattern<OpTy> {
  GridQueryToCall(const TypeConverter &converter, MLIRContext *ctx, StringRef callee)
      : OpConversionPattern<OpTy>(converter, ctx), callee(callee) {}
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    replaceWithCall(rewriter, *this->getTypeConverter(), op, callee, {},
                    {rewriter.getI32IntegerAttr(op.getAxis())});
    return success();
  }
  std::string callee;
};
} // namespace

void mlir::loom::populateLoomGridToEmitCPatterns(const TypeConverter &converter,
                                                 RewritePatternSet &patterns) {
  patterns.add<GridQueryToCall<ProgramIdOp>>(converter, patterns.getContext(),
                                             "loom::tile::program_id");
  patterns.add<GridQueryToCall<NumProgramsOp>>(converter, patterns.getContext(),
                                               "loom::tile::num_programs");
}
