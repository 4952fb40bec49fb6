//===- ApproximateMath.cpp - vectorizable f32 exp2 and tanh on the CPU ----===//
//
// exp2 is rewritten by hand rather than through MLIR's exp approximation:
// that one clamps its argument to [-87.8, 88.8], so exp(-inf) comes out as
// ~1e-38 instead of 0, and a fully masked softmax row would then average V
// instead of producing 0. tanh uses MLIR's approximation (its clamp only
// rounds +-inf to +-1, which is exact in f32).
//
//===----------------------------------------------------------------------===//
#include "MulAdd.h"

#include "loom/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMAPPROXIMATEMATH
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;

namespace {
/// exp2(x) = 2^n * e^(f ln 2) with n = round(x), |f| <= 1/2. The Taylor
/// polynomial of degree 7 in y = f ln 2 (|y| <= 0.347) has a truncation
/// error below 0.35^8 / 8! = 5e-9 relative, under one f32 ulp; evaluated
/// by Horner's rule with multiply-adds (fused where the target has FMA). 2^n is built in the exponent bits as
/// 2^(n-1) * 2 so that n = 128 (x in [127.5, 128)) still fits. Results:
/// x < -125 -> 0 (an absolute error below 2.4e-38; ex2.approx.ftz on the
/// GPU flushes subnormals too), x >= 128 -> +inf, NaN -> NaN.
struct Exp2Approximation : OpRewritePattern<math::Exp2Op> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::Exp2Op op, PatternRewriter &rewriter) const override {
    Type f32 = op.getType();
    if (!f32.isF32() && !(isa<VectorType>(f32) && getElementTypeOrSelf(f32).isF32()))
      return rewriter.notifyMatchFailure(op, "only f32 (scalar or vector) is approximated");
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    // The same arithmetic on a scalar or lane-wise on a vector of f32.
    auto shaped = [&](Type element) -> Type {
      if (auto vector = dyn_cast<VectorType>(f32))
        return vector.clone(element);
      return element;
    };
    Type i32 = shaped(b.getI32Type());
    auto splat = [&](Type type, TypedAttr element) -> Value {
      if (auto vector = dyn_cast<VectorType>(type))
        return arith::ConstantOp::create(b, DenseElementsAttr::get(vector, element));
      return arith::ConstantOp::create(b, element);
    };
    auto constant = [&](double v) { return splat(f32, b.getF32FloatAttr(v)); };
    auto compare = [&](arith::CmpFPredicate p, Value x, Value y) -> Value {
      return arith::CmpFOp::create(b, p, x, y);
    };
    auto select = [&](Value c, Value x, Value y) -> Value { return arith::SelectOp::create(b, c, x, y); };

    Value x = op.getOperand();
    // Clamped so that n - 1 + 127 stays a normal biased exponent; the ordered
    // compares keep a NaN as it is (it is restored at the end).
    Value lo = constant(-125.0), hi = constant(128.0);
    Value clamped = select(compare(arith::CmpFPredicate::OLT, x, lo), lo, x);
    clamped = select(compare(arith::CmpFPredicate::OGT, clamped, hi), hi, clamped);
    Value n = math::RoundEvenOp::create(b, clamped);
    Value y = arith::MulFOp::create(b, arith::SubFOp::create(b, clamped, n), constant(M_LN2));
    Value p = constant(1.0 / 5040.0);
    for (double c : {1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0})
      p = mlir::loom::createMulAdd(b, b.getLoc(), p, y, constant(c));
    Value biased = arith::AddIOp::create(b, arith::FPToSIOp::create(b, i32, n),
                                         splat(i32, b.getI32IntegerAttr(126)));
    Value scale = arith::BitcastOp::create(
        b, f32, arith::ShLIOp::create(b, biased, splat(i32, b.getI32IntegerAttr(23))));
    Value result = arith::MulFOp::create(b, arith::MulFOp::create(b, p, scale), constant(2.0));
    result = select(compare(arith::CmpFPredicate::OLT, x, lo), constant(0.0), result);
    result = select(compare(arith::CmpFPredicate::OGE, x, constant(128.0)), constant(INFINITY), result);
    result = select(compare(arith::CmpFPredicate::UNO, x, x), x, result);
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// math.fma (MLIR's tanh polynomial is written with it) as a multiply and
/// an add LLVM may contract (MulAdd.h): fused where the CPU target has FMA, a
/// multiply and an add, not a call to libm's software fmaf, where it has not.
struct FmaAsContractedMulAdd : OpRewritePattern<math::FmaOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::FmaOp op, PatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, mlir::loom::createMulAdd(rewriter, op.getLoc(), op.getA(), op.getB(),
                                                    op.getC()));
    return success();
  }
};

struct LoomApproximateMath
    : mlir::loom::impl::LoomApproximateMathBase<LoomApproximateMath> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<Exp2Approximation, FmaAsContractedMulAdd>(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) { return name == "math.tanh"; });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
