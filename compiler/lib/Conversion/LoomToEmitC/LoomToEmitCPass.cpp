//===- LoomToEmitCPass.cpp - convert-loom-to-emitc driver -----------------===//
#include "EmitCUtils.h"

#include "loom/Transforms/Passes.h"

#include "mlir/Conversion/FuncToEmitC/FuncToEmitC.h"
#include "mlir/Conversion/SCFToEmitC/SCFToEmitC.h"
#include "mlir/Dialect/EmitC/IR/EmitC.h"

namespace mlir::loom {
#define GEN_PASS_DEF_CONVERTLOOMTOEMITC
#include "loom/Conversion/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {
int64_t tileBytes(Type type) {
  auto tile = cast<RankedTensorType>(type);
  Type elem = tile.getElementType();
  int64_t bytes = elem.isInteger(1) ? 1 : elem.getIntOrFloatBitWidth() / 8;
  return tile.getNumElements() * bytes;
}

int64_t roundUp16(int64_t n) { return (n + 15) / 16 * 16; }

/// Bytes of shared scratch `op` needs (the device library's contract, see
/// device/include/loom/device/tile.h).
int64_t scratchBytes(Operation *op) {
  if (auto b = dyn_cast<BroadcastOp>(op)) {
    // #loom.mma_rows [M, 1] or #loom.mma_cols [1, N] to the #loom.mma of
    // the same warp grid repeats values each thread holds.
    auto src = b.getSrc().getType();
    auto mma = dyn_cast_or_null<MmaEncodingAttr>(b.getType().getEncoding());
    auto sameGrid = [&](auto enc) {
      return enc && mma && enc.getWarpsM() == mma.getWarpsM() &&
             enc.getWarpsN() == mma.getWarpsN();
    };
    if ((sameGrid(dyn_cast_or_null<MmaRowsEncodingAttr>(src.getEncoding())) &&
         src.getDimSize(1) == 1) ||
        (sameGrid(dyn_cast_or_null<MmaColsEncodingAttr>(src.getEncoding())) &&
         src.getDimSize(0) == 1))
      return 0;
    return tileBytes(src);
  }
  if (auto c = dyn_cast<ConvertLayoutOp>(op))
    return tileBytes(c.getSrc().getType());
  if (auto t = dyn_cast<TransOp>(op))
    return tileBytes(t.getSrc().getType());
  if (auto r = dyn_cast<ReduceOp>(op))
    return tileBytes(r.getSrc().getType());
  if (isa<tensor::ExtractOp>(op))
    return 16;
  if (auto d = dyn_cast<DotOp>(op)) {
    // Operands in pipeline slots are read in place; with a #loom.mma
    // accumulator (dot_mma_acc) the other operand is staged at offset 0
    // and the accumulator never leaves the registers, nor does an A in the
    // #loom.mma<warpsM = W, warpsN = 1> of an accumulator of that layout.
    auto staged = [](Value v) { return v.getDefiningOp<SharedSlotOp>() ? 0 : tileBytes(v.getType()); };
    if (auto acc = dyn_cast_or_null<MmaEncodingAttr>(d.getAcc().getType().getEncoding())) {
      auto a = dyn_cast_or_null<MmaEncodingAttr>(d.getA().getType().getEncoding());
      bool registerA = a && a == acc && acc.getWarpsN() == 1;
      return (registerA ? 0 : staged(d.getA())) + staged(d.getB());
    }
    return tileBytes(d.getA().getType()) + tileBytes(d.getB().getType()) +
           tileBytes(d.getAcc().getType());
  }
  return 0;
}

/// The byte just past the pipeline buffer a pipeline op names, or 0.
int64_t pipelineBufferEnd(Operation *op) {
  auto end = [](int64_t offset, int64_t slots, Type tile) {
    return offset + roundUp16(slots * tileBytes(tile));
  };
  if (auto copy = dyn_cast<AsyncCopyOp>(op))
    return end(copy.getOffsetAttr().getInt(), copy.getSlotsAttr().getInt(), copy.getTile());
  if (auto slot = dyn_cast<SharedSlotOp>(op))
    return end(slot.getOffsetAttr().getInt(), slot.getSlotsAttr().getInt(), slot.getType());
  return 0;
}

/// `extern "C" void <name>_packed(void **args)` calling the kernel: the
/// emulator's launch entry point (compiled only for LOOM_DEVICE_EMULATION).
std::string packedLauncher(func::FuncOp func) {
  std::string s = "#ifdef LOOM_DEVICE_EMULATION\nextern \"C\" void " + func.getSymName().str() +
                  "_packed(void **args) {\n  " + func.getSymName().str() + "(";
  for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
    std::string t = cppTypeName(type);
    s += (i ? ", " : "") + ("*static_cast<" + t + " *>(args[" + std::to_string(i) + "])");
  }
  return s + ");\n}\n#endif";
}

/// Markers for the emulated device (device/include/loom/device/tile/core.h;
/// nothing on the GPU): LOOM_SITE(id) before each tile-library call, a
/// per-kernel id, so that the emulator tells the barriers and mmas of two
/// ops apart although both run one library line; LOOM_LOOP_ITER(id) at the
/// top of each loop body and LOOM_LOOP_END(id) after the loop, for its
/// per-iteration counters.
void insertEmulatorMarkers(func::FuncOp func) {
  OpBuilder b(func.getContext());
  unsigned site = 0, loop = 0;
  func.walk<WalkOrder::PreOrder>([&](Operation *op) {
    if (auto forOp = dyn_cast<scf::ForOp>(op)) {
      std::string id = std::to_string(++loop);
      b.setInsertionPointToStart(forOp.getBody());
      emitc::VerbatimOp::create(b, op->getLoc(), "LOOM_LOOP_ITER(" + id + ");");
      b.setInsertionPointAfter(op);
      emitc::VerbatimOp::create(b, op->getLoc(), "LOOM_LOOP_END(" + id + ");");
      return;
    }
    if (!isa<LoomDialect>(op->getDialect()) && !isa<tensor::ExtractOp>(op))
      return;
    b.setInsertionPoint(op);
    emitc::VerbatimOp::create(b, op->getLoc(), "LOOM_SITE(" + std::to_string(++site) + ");");
  });
}

struct ConvertLoomToEmitCPass
    : public loom::impl::ConvertLoomToEmitCBase<ConvertLoomToEmitCPass> {
  using ConvertLoomToEmitCBase::ConvertLoomToEmitCBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    if (numThreads == 0 || numThreads % 32 != 0 || numThreads > 1024) {
      module.emitError() << "num-threads must be a positive multiple of 32 up to 1024, got "
                         << static_cast<unsigned>(numThreads);
      return signalPassFailure();
    }
    OpBuilder b(ctx);
    int64_t scratch = 0;
    SmallVector<func::FuncOp> kernels;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (!func->hasAttr(kKernelAttrName))
        continue;
      kernels.push_back(func);
      int64_t funcScratch = 0;
      func.walk([&](Operation *op) { funcScratch = std::max(funcScratch, roundUp16(scratchBytes(op))); });
      // Pipeline buffers (loom-pipeline-dot-operands) come first; the
      // scratch starts after them: after the attribute's bytes and after
      // every buffer the ops name, whichever ends later (a missing or stale
      // attribute must not put the scratch over a slot).
      int64_t pipeline = 0;
      if (auto bytes = func->getAttrOfType<IntegerAttr>(kPipelineBytesAttrName))
        pipeline = roundUp16(bytes.getInt());
      func.walk([&](Operation *op) { pipeline = std::max(pipeline, pipelineBufferEnd(op)); });
      scratch = std::max(scratch, pipeline + funcScratch);
      b.setInsertionPointToStart(&func.getBody().front());
      auto bytePtr = emitc::PointerType::get(emitc::OpaqueType::get(ctx, "unsigned char"));
      ArrayAttr offset = pipeline ? b.getArrayAttr({b.getI64IntegerAttr(pipeline)}) : ArrayAttr();
      emitc::CallOpaqueOp::create(b, func.getLoc(), TypeRange{bytePtr}, kSharedScratchCallee,
                                  ValueRange{}, ArrayAttr(), offset);
    }
    for (func::FuncOp func : kernels)
      insertEmulatorMarkers(func);
    if (kernels.empty()) {
      module.emitError() << "no function with the '" << kKernelAttrName << "' attribute";
      return signalPassFailure();
    }
    // Preamble: block size, then the device tile library.
    b.setInsertionPointToStart(module.getBody());
    emitc::VerbatimOp::create(b, module.getLoc(),
                              "#define LOOM_NUM_THREADS " + std::to_string(numThreads));
    emitc::IncludeOp::create(b, module.getLoc(), "loom/device/tile.h", /*is_standard=*/false);
    // EmitC spells i32/i64 as int32_t/int64_t; NVRTC has no <cstdint>, so
    // take the device library's definitions there (nvcc and the emulated
    // device have the host's, which the library also uses).
    emitc::VerbatimOp::create(b, module.getLoc(),
                              "#ifdef __CUDACC_RTC__\nusing loom::tile::int32_t;\n"
                              "using loom::tile::int64_t;\n#endif");
    b.setInsertionPointToEnd(module.getBody());
    for (func::FuncOp func : kernels)
      emitc::VerbatimOp::create(b, module.getLoc(), packedLauncher(func));

    TypeConverter converter;
    converter.addConversion([](Type t) { return t; });
    converter.addConversion([ctx](FloatType t) -> Type {
      if (t.isF16() || t.isBF16())
        return emitc::OpaqueType::get(ctx, cppTypeName(t));
      return t;
    });
    converter.addConversion([ctx](RankedTensorType t) -> Type {
      return emitc::OpaqueType::get(ctx, cppTypeName(t));
    });
    converter.addConversion([&converter](PtrType t) -> Type {
      return emitc::PointerType::get(converter.convertType(t.getElementType()));
    });
    auto materialize = [](OpBuilder &builder, Type type, ValueRange inputs,
                          Location loc) -> Value {
      return UnrealizedConversionCastOp::create(builder, loc, type, inputs).getResult(0);
    };
    converter.addSourceMaterialization(materialize);
    converter.addTargetMaterialization(materialize);

    RewritePatternSet patterns(ctx);
    populateFuncToEmitCPatterns(converter, patterns);
    populateSCFToEmitCConversionPatterns(patterns, converter);
    populateLoomGridToEmitCPatterns(converter, patterns);
    populateLoomShapeToEmitCPatterns(converter, patterns);
    populateLoomMemoryToEmitCPatterns(converter, patterns);
    populateLoomComputeToEmitCPatterns(converter, patterns);
    populateElementwiseToEmitCPatterns(converter, patterns);
    populateLoomPipelineToEmitCPatterns(converter, patterns);

    ConversionTarget target(*ctx);
    target.addLegalDialect<emitc::EmitCDialect>();
    target.addLegalOp<ModuleOp>();
    target.addIllegalDialect<LoomDialect, arith::ArithDialect, math::MathDialect,
                             scf::SCFDialect, func::FuncDialect, tensor::TensorDialect>();
    if (failed(applyFullConversion(module, target, std::move(patterns))))
      return signalPassFailure();

    // __launch_bounds__ makes ptxas fit the registers to the block size (it
    // spills rather than produce a kernel that cannot launch). The minimum
    // of one block per SM lets it use all 255 registers: without it, a
    // kernel that must spill anyway can be squeezed to 32-168 registers for
    // occupancy, spilling many times more (attention bwd dQ d64 64x64: 24 KB
    // instead of 4.9 KB); occupancy is the autotuner's call.
    std::string specifier = "extern \"C\" __global__ __launch_bounds__(" +
                            std::to_string(static_cast<unsigned>(numThreads)) + ", 1)";
    for (auto func : module.getOps<emitc::FuncOp>())
      func.setSpecifiersAttr(b.getStrArrayAttr({specifier}));
    module->setAttr(kSharedBytesAttrName, b.getI64IntegerAttr(scratch));
    module->setAttr(kNumThreadsAttrName, b.getI32IntegerAttr(numThreads));
  }
};
} // namespace
