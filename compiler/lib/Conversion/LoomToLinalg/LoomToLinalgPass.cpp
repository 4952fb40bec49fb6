//===- LoomToLinalgPass.cpp - convert-loom-to-linalg driver ---------------===//
#include "loom/Conversion/Passes.h"

#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::loom {
#define GEN_PASS_DEF_CONVERTLOOMTOLINALG
#include "loom/Conversion/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {
/// Appends the grid arguments (kNumGridArgs x i32) to every kernel.
LogicalResult appendGridArguments(func::FuncOp func) {
  Builder b(func.getContext());
  unsigned n = func.getNumArguments();
  SmallVector<unsigned> indices(kNumGridArgs, n);
  SmallVector<Type> types(kNumGridArgs, b.getI32Type());
  SmallVector<DictionaryAttr> attrs(kNumGridArgs, b.getDictionaryAttr({}));
  SmallVector<Location> locs(kNumGridArgs, func.getLoc());
  if (failed(func.insertArguments(indices, types, attrs, locs)))
    return failure();
  if (auto names = func->getAttrOfType<ArrayAttr>(kArgNamesAttrName)) {
    SmallVector<Attribute> all(names.begin(), names.end());
    for (StringRef g : {"pid0", "pid1", "pid2", "nprog0", "nprog1", "nprog2"})
      all.push_back(b.getStringAttr(g));
    func->setAttr(kArgNamesAttrName, b.getArrayAttr(all));
  }
  return success();
}

struct ConvertLoomToLinalgPass
    : public loom::impl::ConvertLoomToLinalgBase<ConvertLoomToLinalgPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    // Grid queries only have a meaning inside a kernel, whose grid arguments
    // this pass appends.
    WalkResult outside = module.walk([](Operation *op) {
      if (!isa<ProgramIdOp, NumProgramsOp>(op))
        return WalkResult::advance();
      auto func = op->getParentOfType<func::FuncOp>();
      if (func && func->hasAttr(kKernelAttrName))
        return WalkResult::advance();
      op->emitOpError() << "is only valid inside a function with the '"
                        << kKernelAttrName << "' attribute";
      return WalkResult::interrupt();
    });
    if (outside.wasInterrupted())
      return signalPassFailure();
    for (auto func : module.getOps<func::FuncOp>())
      if (func->hasAttr(kKernelAttrName) && failed(appendGridArguments(func)))
        return signalPassFailure();

    TypeConverter converter;
    converter.addConversion([](Type t) { return t; });
    converter.addConversion([](PtrType t) -> Type {
      return MemRefType::get({ShapedType::kDynamic}, t.getElementType());
    });

    RewritePatternSet patterns(ctx);
    populateFunctionOpInterfaceTypeConversionPattern<func::FuncOp>(patterns,
                                                                   converter);
    populateLoomMemoryToLinalgPatterns(converter, patterns);
    populateLoomShapeToLinalgPatterns(patterns);
    populateLoomComputeToLinalgPatterns(patterns);
    populateLoomGridToArgsPatterns(patterns);

    ConversionTarget target(*ctx);
    target.addIllegalDialect<LoomDialect>();
    target.addLegalDialect<linalg::LinalgDialect, tensor::TensorDialect,
                           memref::MemRefDialect, scf::SCFDialect,
                           arith::ArithDialect, math::MathDialect,
                           bufferization::BufferizationDialect>();
    target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp op) {
      return converter.isSignatureLegal(op.getFunctionType());
    });
    target.addLegalOp<func::ReturnOp, ModuleOp>();
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
