//===- EmitCUtils.cpp - helpers shared by the EmitC lowerings -------------===//
#include "EmitCUtils.h"

#include "llvm/Support/raw_ostream.h"

namespace mlir::loom {

/// The template arguments every tile-like type starts with:
/// `T, loom::tile::Shape<d0, ...>`.
static std::string elementAndShape(RankedTensorType type) {
  std::string s = cppTypeName(type.getElementType()) + ", loom::tile::Shape<";
  for (auto [i, d] : llvm::enumerate(type.getShape()))
    s += (i ? ", " : "") + std::to_string(d);
  return s + ">";
}

std::string cppTypeName(Type type) {
  if (auto opaque = dyn_cast<emitc::OpaqueType>(type))
    return opaque.getValue().str();
  if (auto ptr = dyn_cast<emitc::PointerType>(type))
    return cppTypeName(ptr.getPointee()) + "*";
  if (auto ptr = dyn_cast<PtrType>(type))
    return cppTypeName(ptr.getElementType()) + "*";
  if (type.isF32())
    return "float";
  if (type.isF16())
    return "loom::tile::half_t";
  if (type.isBF16())
    return "loom::tile::bf16_t";
  if (type.isInteger(1))
    return "bool";
  if (type.isInteger(32))
    return "int32_t";
  if (type.isInteger(64))
    return "int64_t";
  if (auto tile = dyn_cast<RankedTensorType>(type)) {
    std::string s = "loom::tile::Tile<" + elementAndShape(tile);
    // The layout is a third template argument; blocked is the default.
    auto warps = [](auto enc) {
      return "<" + std::to_string(enc.getWarpsM()) + ", " + std::to_string(enc.getWarpsN()) + ">";
    };
    if (auto mma = dyn_cast_or_null<MmaEncodingAttr>(tile.getEncoding()))
      s += ", loom::tile::Mma" + warps(mma);
    else if (auto rows = dyn_cast_or_null<MmaRowsEncodingAttr>(tile.getEncoding()))
      s += ", loom::tile::MmaRows" + warps(rows);
    else if (auto cols = dyn_cast_or_null<MmaColsEncodingAttr>(tile.getEncoding()))
      s += ", loom::tile::MmaCols" + warps(cols);
    return s + ">";
  }
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "/* unsupported type " << type << " */";
  return s;
}

std::string globalBlockTypeName(RankedTensorType type, bool columnMajor) {
  return "loom::tile::GlobalBlock<" + elementAndShape(type) + ", " +
         (columnMajor ? "true" : "false") + ">";
}

std::string sharedBlockTypeName(RankedTensorType type, bool columnMajor) {
  return "loom::tile::SharedBlock<" + elementAndShape(type) + ", " +
         (columnMajor ? "true" : "false") + ">";
}

Value viewOrSelf(Value v) {
  auto cast = v.getDefiningOp<UnrealizedConversionCastOp>();
  if (!cast || cast.getInputs().size() != 1)
    return v;
  auto view = dyn_cast<emitc::OpaqueType>(cast.getInputs()[0].getType());
  if (view && (view.getValue().starts_with("loom::tile::GlobalBlock<") ||
               view.getValue().starts_with("loom::tile::SharedBlock<")))
    return cast.getInputs()[0];
  return v;
}

Attribute typeArg(MLIRContext *ctx, Type type) {
  return emitc::OpaqueAttr::get(ctx, cppTypeName(type));
}

Value replaceWithCall(ConversionPatternRewriter &rewriter, const TypeConverter &converter,
                      Operation *op, StringRef callee, ValueRange operands,
                      ArrayRef<Attribute> templateArgs) {
  SmallVector<Type> resultTypes;
  if (op->getNumResults() == 1)
    resultTypes.push_back(converter.convertType(op->getResult(0).getType()));
  ArrayAttr tmpl = templateArgs.empty() ? ArrayAttr() : rewriter.getArrayAttr(templateArgs);
  auto call = emitc::CallOpaqueOp::create(rewriter, op->getLoc(), resultTypes, callee,
                                          operands, ArrayAttr(), tmpl);
  if (op->getNumResults() == 1) {
    rewriter.replaceOp(op, call.getResults());
    return call.getResult(0);
  }
  rewriter.eraseOp(op);
  return {};
}

Value sharedScratch(Operation *op) {
  Operation *func = op->getParentWithTrait<OpTrait::IsIsolatedFromAbove>();
  for (Operation &first : func->getRegion(0).front())
    if (auto call = dyn_cast<emitc::CallOpaqueOp>(first))
      if (call.getCallee() == kSharedScratchCallee)
        return call.getResult(0);
  return {};
}

} // namespace mlir::loom
