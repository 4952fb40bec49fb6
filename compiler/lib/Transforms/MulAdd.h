//===- MulAdd.h - a multiply-add the target may fuse ------------*- C++ -*-===//
#ifndef LOOM_TRANSFORMS_MULADD_H
#define LOOM_TRANSFORMS_MULADD_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace mlir::loom {
/// x * y + z as a multiply and an add marked `contract`, not an fma: LLVM
/// fuses them into one instruction where the CPU target has FMA (x86-64-v3
/// and up, AArch64) and keeps a multiply and an add where it has not
/// (x86-64-v2), where an fma would become a call to libm's software fmaf
/// per lane. Scalars and vectors alike.
inline Value createMulAdd(OpBuilder &b, Location loc, Value x, Value y, Value z) {
  auto contract = arith::FastMathFlagsAttr::get(b.getContext(), arith::FastMathFlags::contract);
  Value product = arith::MulFOp::create(b, loc, x, y, contract);
  return arith::AddFOp::create(b, loc, product, z, contract);
}
} // namespace mlir::loom

#endif
