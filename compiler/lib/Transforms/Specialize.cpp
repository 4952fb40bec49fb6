//===- Specialize.cpp - bind scalar kernel arguments ----------------------===//
#include "loom/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <cmath>

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMSPECIALIZE
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;
using namespace mlir::loom;

namespace {

/// Parses `value` as a constant of scalar type `type`; null when it is not
/// a valid value of that type (out of range integers, floats that would
/// overflow to infinity, i1 other than 0/1/true/false).
TypedAttr parseScalar(StringRef value, Type type) {
  if (auto intType = dyn_cast<IntegerType>(type)) {
    unsigned width = intType.getWidth();
    if (width == 1) {
      if (value == "1" || value == "true")
        return IntegerAttr::get(type, 1);
      if (value == "0" || value == "false")
        return IntegerAttr::get(type, 0);
      return {};
    }
    int64_t v;
    if (value.getAsInteger(0, v))
      return {};
    if (width < 64 && (v < -(int64_t(1) << (width - 1)) || v >= (int64_t(1) << (width - 1))))
      return {};
    return IntegerAttr::get(type, v);
  }
  if (auto floatType = dyn_cast<FloatType>(type)) {
    double v;
    if (value.getAsDouble(v) || !std::isfinite(v))
      return {};
    APFloat f(v);
    bool losesInfo = false;
    APFloat::opStatus status =
        f.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven, &losesInfo);
    if ((status & APFloat::opOverflow) || f.isInfinity())
      return {};
    return FloatAttr::get(type, f);
  }
  return {};
}

struct LoomSpecializePass
    : public loom::impl::LoomSpecializeBase<LoomSpecializePass> {
  using LoomSpecializeBase::LoomSpecializeBase;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (!func->hasAttr(kKernelAttrName))
        continue;
      if (failed(specialize(func)))
        return signalPassFailure();
    }
  }

  LogicalResult specialize(func::FuncOp func) {
    auto names = func->getAttrOfType<ArrayAttr>(kArgNamesAttrName);
    if (!names)
      return func.emitError() << "kernel '" << func.getSymName()
                              << "' has no '" << kArgNamesAttrName << "' attribute";
    SmallVector<NamedAttribute> bound;
    if (auto prior = func->getAttrOfType<DictionaryAttr>(kSpecializedAttrName))
      bound.append(prior.begin(), prior.end());
    OpBuilder builder(func.getBody());
    for (const std::string &binding : bindings) {
      auto [name, value] = StringRef(binding).split('=');
      if (name.empty() || value.empty())
        return func.emitError() << "binding '" << binding
                                << "' is not of the form name=value";
      auto it = llvm::find_if(names, [&](Attribute a) {
        return cast<StringAttr>(a).getValue() == name;
      });
      if (it == names.end())
        return func.emitError() << "kernel '" << func.getSymName()
                                << "' has no argument named '" << name << "'";
      if (llvm::any_of(bound, [&](NamedAttribute a) { return a.getName() == name; }))
        return func.emitError() << "argument '" << name << "' is bound twice";
      BlockArgument arg = func.getArgument(it - names.begin());
      if (!arg.getType().isIntOrFloat())
        return func.emitError() << "cannot bind argument '" << name << "' of type "
                                << arg.getType() << ": only scalars can be bound";
      TypedAttr attr = parseScalar(value, arg.getType());
      if (!attr)
        return func.emitError() << "value '" << value << "' for argument '" << name
                                << "' is not a valid " << arg.getType();
      Value constant = arith::ConstantOp::create(builder, arg.getLoc(), attr);
      arg.replaceAllUsesWith(constant);
      bound.push_back(builder.getNamedAttr(name, attr));
    }
    if (!bound.empty())
      func->setAttr(kSpecializedAttrName, builder.getDictionaryAttr(bound));
    return success();
  }
};
} // namespace
