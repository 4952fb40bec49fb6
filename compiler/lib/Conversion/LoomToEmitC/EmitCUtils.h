//===- EmitCUtils.h - helpers shared by the EmitC lowerings -----*- C++ -*-===//
#ifndef LOOM_LIB_CONVERSION_LOOMTOEMITC_EMITCUTILS_H
#define LOOM_LIB_CONVERSION_LOOMTOEMITC_EMITCUTILS_H

#include "loom/Conversion/Passes.h"

namespace mlir::loom {

/// C++ spelling of a scalar or tile type as the device library names it.
std::string cppTypeName(Type type);

/// Replaces `op` by a call to `callee` (a loom::tile function) with
/// `templateArgs` (types are printed as C++ type names, integers as is).
Value replaceWithCall(ConversionPatternRewriter &rewriter, const TypeConverter &converter,
                      Operation *op, StringRef callee, ValueRange operands,
                      ArrayRef<Attribute> templateArgs = {});

/// (p, value or other, base, strides..., bounds...): the arguments of the
/// device library's block functions (block_load, block_view, block_store,
/// async_copy after its slot); it unpacks the scalars by the tile's rank.
template <class BlockAdaptor>
SmallVector<Value> blockOperands(Value second, BlockAdaptor adaptor) {
  SmallVector<Value> operands{adaptor.getPtr(), second, adaptor.getBase()};
  llvm::append_range(operands, adaptor.getStrides());
  llvm::append_range(operands, adaptor.getBounds());
  return operands;
}

/// C++ type of the view a deferred loom.block_load of this tile type
/// becomes: loom::tile::GlobalBlock<T, Shape<...>, columnMajor> (the
/// load's column_major: the view's columns are contiguous and the dot
/// stages it transposed).
std::string globalBlockTypeName(RankedTensorType type, bool columnMajor);

/// C++ type of a pipeline slot (loom.shared_slot) holding a dot operand of
/// this tile type as the dot's staging lays it out (transposed when
/// columnMajor): loom::tile::SharedBlock<T, Shape<...>, columnMajor>.
std::string sharedBlockTypeName(RankedTensorType type, bool columnMajor);

/// A dot operand as the dot reads it: the view that a deferred block load
/// or a pipeline slot lowers to (GlobalBlock, SharedBlock; seen through
/// the cast to its tile type), or `v` itself.
Value viewOrSelf(Value v);

/// The kernel's shared-memory scratch pointer (first op of the kernel).
Value sharedScratch(Operation *op);

/// A template argument naming the C++ type of `type`.
Attribute typeArg(MLIRContext *ctx, Type type);

} // namespace mlir::loom

#endif
