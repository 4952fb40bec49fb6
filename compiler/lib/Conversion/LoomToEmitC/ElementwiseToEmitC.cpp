//===- ElementwiseToEmitC.cpp - arith/math on scalars and tiles -----------===//
//
// Every elementwise op becomes a call to one overloaded loom::tile function
// that accepts scalars and tiles alike, so scalar and tile code share one
// lowering (and one definition of rounding and NaN behaviour: the library's).
//
//===----------------------------------------------------------------------===//
#include "EmitCUtils.h"

#include "llvm/Support/Format.h"

using namespace mlir;
using namespace mlir::loom;

namespace {
/// `callee(operands...)` for an op with a fixed callee.
struct NamedCall : ConversionPattern {
  NamedCall(const TypeConverter &converter, MLIRContext *ctx, StringRef opName,
            StringRef callee)
      : ConversionPattern(converter, opName, /*benefit=*/1, ctx), callee(callee) {}
  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    replaceWithCall(rewriter, *getTypeConverter(), op, callee, operands);
    return success();
  }
  std::string callee;
};

/// Conversions: `cast<DstElement>(x)`.
struct CastCall : ConversionPattern {
  CastCall(const TypeConverter &converter, MLIRContext *ctx, StringRef opName)
      : ConversionPattern(converter, opName, /*benefit=*/1, ctx) {}
  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    Type dst = getElementTypeOrSelf(op->getResult(0).getType());
    replaceWithCall(rewriter, *getTypeConverter(), op, "loom::tile::cast", operands,
                    {typeArg(getContext(), dst)});
    return success();
  }
};

std::optional<StringRef> cmpCallee(arith::CmpFPredicate p) {
  switch (p) {
  case arith::CmpFPredicate::OLT: return StringRef("loom::tile::cmp_lt");
  case arith::CmpFPredicate::OLE: return StringRef("loom::tile::cmp_le");
  case arith::CmpFPredicate::OGT: return StringRef("loom::tile::cmp_gt");
  case arith::CmpFPredicate::OGE: return StringRef("loom::tile::cmp_ge");
  case arith::CmpFPredicate::OEQ: return StringRef("loom::tile::cmp_eq");
  case arith::CmpFPredicate::UNE: return StringRef("loom::tile::cmp_ne");
  default: return std::nullopt;
  }
}

std::optional<StringRef> cmpCallee(arith::CmpIPredicate p) {
  switch (p) {
  case arith::CmpIPredicate::slt: return StringRef("loom::tile::cmp_lt");
  case arith::CmpIPredicate::sle: return StringRef("loom::tile::cmp_le");
  case arith::CmpIPredicate::sgt: return StringRef("loom::tile::cmp_gt");
  case arith::CmpIPredicate::sge: return StringRef("loom::tile::cmp_ge");
  case arith::CmpIPredicate::eq: return StringRef("loom::tile::cmp_eq");
  case arith::CmpIPredicate::ne: return StringRef("loom::tile::cmp_ne");
  default: return std::nullopt;
  }
}

template <typename CmpOp>
struct CmpCall : OpConversionPattern<CmpOp> {
  using OpConversionPattern<CmpOp>::OpConversionPattern;
  LogicalResult
  matchAndRewrite(CmpOp op, typename CmpOp::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto callee = cmpCallee(op.getPredicate());
    if (!callee)
      return op.emitOpError() << "predicate '" << stringifyEnum(op.getPredicate())
                              << "' has no CUDA lowering (the DSL emits signed and "
                                 "ordered predicates only)";
    replaceWithCall(rewriter, *this->getTypeConverter(), op, *callee,
                    {adaptor.getLhs(), adaptor.getRhs()});
    return success();
  }
};

/// Scalar constants. Floats are written by their bit pattern so that every
/// value, including -inf and NaN, round-trips exactly without <math.h>.
struct ConstantToEmitC : OpConversionPattern<arith::ConstantOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(arith::ConstantOp op, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Type type = op.getType();
    Type converted = getTypeConverter()->convertType(type);
    if (auto intAttr = dyn_cast<IntegerAttr>(op.getValue())) {
      rewriter.replaceOpWithNewOp<emitc::ConstantOp>(op, converted, intAttr);
      return success();
    }
    auto floatAttr = dyn_cast<FloatAttr>(op.getValue());
    if (!floatAttr)
      return op.emitOpError() << "only scalar constants have a CUDA lowering";
    APFloat value = floatAttr.getValue();
    bool losesInfo = false;
    value.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &losesInfo);
    uint32_t bits = static_cast<uint32_t>(value.bitcastToAPInt().getZExtValue());
    std::string text;
    llvm::raw_string_ostream os(text);
    os << "loom::device::u32_as_f32(" << llvm::format_hex(bits, 10) << "u)";
    if (!type.isF32())
      text = "loom::tile::from_float<" + cppTypeName(type) + ">(" + text + ")";
    rewriter.replaceOpWithNewOp<emitc::LiteralOp>(op, converted, text);
    return success();
  }
};
} // namespace

void mlir::loom::populateElementwiseToEmitCPatterns(const TypeConverter &converter,
                                                    RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  static const std::pair<StringRef, StringRef> kNamed[] = {
      {"arith.addf", "loom::tile::add"},        {"arith.addi", "loom::tile::add"},
      {"arith.subf", "loom::tile::sub"},        {"arith.subi", "loom::tile::sub"},
      {"arith.mulf", "loom::tile::mul"},        {"arith.muli", "loom::tile::mul"},
      {"arith.divf", "loom::tile::div"},        {"arith.divsi", "loom::tile::div"},
      {"arith.remsi", "loom::tile::rem"},       {"arith.negf", "loom::tile::neg"},
      {"arith.maximumf", "loom::tile::maximum"}, {"arith.maxsi", "loom::tile::maximum"},
      {"arith.minimumf", "loom::tile::minimum"}, {"arith.minsi", "loom::tile::minimum"},
      {"arith.andi", "loom::tile::bit_and"},    {"arith.ori", "loom::tile::bit_or"},
      {"arith.xori", "loom::tile::bit_xor"},    {"arith.select", "loom::tile::select"},
      {"math.exp2", "loom::tile::exp2"},        {"math.log2", "loom::tile::log2"},
      {"math.exp", "loom::tile::exp"},          {"math.log", "loom::tile::log"},
      {"math.tanh", "loom::tile::tanh"},        {"math.sqrt", "loom::tile::sqrt"},
      {"math.absf", "loom::tile::abs"},         {"math.absi", "loom::tile::abs"},
  };
  for (auto [opName, callee] : kNamed)
    patterns.add<NamedCall>(converter, ctx, opName, callee);
  for (StringRef opName : {"arith.extf", "arith.truncf", "arith.sitofp", "arith.uitofp",
                           "arith.fptosi", "arith.extsi", "arith.extui", "arith.trunci"})
    patterns.add<CastCall>(converter, ctx, opName);
  patterns.add<CmpCall<arith::CmpFOp>, CmpCall<arith::CmpIOp>, ConstantToEmitC>(converter, ctx);
}
