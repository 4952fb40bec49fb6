//===- VectorizeElementwise.cpp - vector loops for tile-wide linalg ops ---===//
//
// See LoomVectorizeElementwise in Passes.td. The generics come from loom's
// elementwise ops, broadcasts, masked loads and row reductions after fusion
// and bufferization; their shapes are static (tiles are), so the vector
// width is fixed here: the widest power of two up to `lanes` that divides the
// innermost loop, which leaves no remainder.
//
//===----------------------------------------------------------------------===//
#include "loom/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/Dialect/Vector/Transforms/VectorRewritePatterns.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"

#include "llvm/ADT/TypeSwitch.h"

#include <optional>

namespace mlir::loom {
#define GEN_PASS_DEF_LOOMVECTORIZEELEMENTWISE
#include "loom/Transforms/Passes.h.inc"
} // namespace mlir::loom

using namespace mlir;

namespace {
bool isScalar(Type t) { return t.isIntOrIndexOrFloat(); }

/// A 1-D buffer whose elements are adjacent: what vector.gather and
/// vector.(masked)load address as base + index.
bool isUnitStride1D(MemRefType type) {
  SmallVector<int64_t> strides;
  int64_t offset;
  return type.getRank() == 1 && succeeded(type.getStridesAndOffset(strides, offset)) &&
         strides[0] == 1;
}

/// The reduction a combiner op performs across vector lanes, when the
/// reassociation that splitting a row into lanes implies is allowed: always
/// for integers and min/max, only with `reassoc` for float add and multiply.
std::optional<vector::CombiningKind> combiningKind(Operation *op) {
  using Kind = vector::CombiningKind;
  auto reassociable = [&] {
    auto fmf = dyn_cast<arith::ArithFastMathInterface>(op);
    return fmf && bitEnumContainsAll(fmf.getFastMathFlagsAttr().getValue(),
                                     arith::FastMathFlags::reassoc);
  };
  return llvm::TypeSwitch<Operation *, std::optional<Kind>>(op)
      .Case([&](arith::AddFOp) { return reassociable() ? std::optional(Kind::ADD) : std::nullopt; })
      .Case([&](arith::MulFOp) { return reassociable() ? std::optional(Kind::MUL) : std::nullopt; })
      .Case([](arith::MaximumFOp) { return Kind::MAXIMUMF; })
      .Case([](arith::MinimumFOp) { return Kind::MINIMUMF; })
      .Case([](arith::MaxNumFOp) { return Kind::MAXNUMF; })
      .Case([](arith::MinNumFOp) { return Kind::MINNUMF; })
      .Case([](arith::AddIOp) { return Kind::ADD; })
      .Case([](arith::MulIOp) { return Kind::MUL; })
      .Case([](arith::MaxSIOp) { return Kind::MAXSI; })
      .Case([](arith::MinSIOp) { return Kind::MINSI; })
      .Case([](arith::MaxUIOp) { return Kind::MAXUI; })
      .Case([](arith::MinUIOp) { return Kind::MINUI; })
      .Case([](arith::AndIOp) { return Kind::AND; })
      .Case([](arith::OrIOp) { return Kind::OR; })
      .Case([](arith::XOrIOp) { return Kind::XOR; })
      .Default([](Operation *) { return std::nullopt; });
}

/// One generic's vectorization plan: which loop is vectorized and how wide,
/// which operands and body values vary along it, and (for a row reduction)
/// the combiner op.
class ElementwiseVectorizer {
public:
  ElementwiseVectorizer(linalg::GenericOp op, int64_t maxLanes) : op(op), maxLanes(maxLanes) {}

  /// Whether the generic is one this pass handles; fills in the plan.
  /// With `transposed`, a 2-D parallel generic is planned along dim 0
  /// instead: W x W blocks, each computed as W column vectors, transposed
  /// in registers and stored as W contiguous rows of the output. That turns
  /// a load whose index steps by one along dim 0 (a transposed tile load:
  /// K^T from row-major K) from a gather into contiguous vector loads.
  bool analyze(bool transposed = false) {
    this->transposed = transposed;
    varyingArgs.clear();
    if (!op.hasPureBufferSemantics() || op.getNumLoops() == 0)
      return false;
    auto iterators = op.getIteratorTypesArray();
    inner = op.getNumLoops() - 1;
    if (transposed) {
      if (op.getNumLoops() != 2 || iterators[0] != utils::IteratorType::parallel ||
          iterators[1] != utils::IteratorType::parallel)
        return false;
      inner = 0;
    }
    for (unsigned d = 0; d < inner; ++d)
      if (iterators[d] != utils::IteratorType::parallel)
        return false;
    reduction = iterators[inner] == utils::IteratorType::reduction;
    if (reduction && op.getNumDpsInits() != 1)
      return false;
    ranges = op.getStaticLoopRanges();
    if (llvm::any_of(ranges, ShapedType::isDynamic))
      return false;
    width = 1;
    while (width * 2 <= maxLanes && ranges[inner] % (width * 2) == 0 &&
           (!transposed || ranges[1] % (width * 2) == 0))
      width *= 2;
    if (width < 4)
      return false;

    for (OpOperand &operand : op->getOpOperands())
      if (!analyzeOperand(operand))
        return false;
    return analyzeBody();
  }

  void rewrite(RewriterBase &rewriter) {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    b.setInsertionPoint(op);
    ivs.assign(op.getNumLoops(), Value());
    transposed ? emitTransposed(b) : emitOuterLoops(b, 0);
    rewriter.eraseOp(op);
  }

  /// The gathers one chunk of the current plan would emit: the body is
  /// emitted into a scratch block (outer indices are placeholders) and
  /// counted there, then dropped.
  int64_t countGathers(RewriterBase &rewriter) {
    Block *scratch = new Block();
    int64_t gathers = 0;
    {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(scratch);
      ImplicitLocOpBuilder b(op.getLoc(), rewriter);
      Value zero = constant(b, 0);
      ivs.assign(op.getNumLoops(), zero);
      emitChunk(b, zero, reduction ? combiner : nullptr);
      scratch->walk([&](vector::GatherOp) { ++gathers; });
    }
    // Uses first, then definitions: erase in reverse order.
    while (!scratch->empty())
      scratch->back().erase();
    delete scratch;
    ivs.clear();
    return gathers;
  }

private:
  /// An operand either varies along the vectorized loop, then contiguously
  /// (that loop indexes its innermost, unit-stride dimension), or not at all.
  bool analyzeOperand(OpOperand &operand) {
    if (isScalar(operand.get().getType()) && op.isDpsInput(&operand))
      return true; // a scalar input (map to ()): uniform
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    AffineMap map = op.getMatchingIndexingMap(&operand);
    if (!type || !map.isProjectedPermutation() || !isScalar(type.getElementType()))
      return false;
    bool varies = map.isFunctionOfDim(inner);
    bool isInit = op.isDpsInit(&operand);
    if (transposed && isInit) {
      // Written as whole rows after the in-register transpose; never read.
      SmallVector<int64_t> strides;
      int64_t offset;
      return map.isIdentity() && !type.getElementType().isInteger(1) &&
             op.getMatchingBlockArgument(&operand).use_empty() &&
             succeeded(type.getStridesAndOffset(strides, offset)) && strides.back() == 1;
    }
    if (isInit && varies == reduction)
      return false; // a parallel write must vary; a reduction's must not
    if (!varies)
      return true;
    SmallVector<int64_t> strides;
    int64_t offset;
    if (map.getResult(map.getNumResults() - 1) != getAffineDimExpr(inner, op.getContext()) ||
        failed(type.getStridesAndOffset(strides, offset)) || strides.back() != 1)
      return false;
    varyingArgs.insert(op.getMatchingBlockArgument(&operand));
    return true;
  }

  /// The body must be scalar arith/math ops, linalg.index and loads from
  /// outer buffers (gathers where the index varies); a reduction's output
  /// argument may only feed its combiner, whose result is yielded.
  bool analyzeBody() {
    Block &body = op.getRegion().front();
    DenseSet<Value> varying(varyingArgs.begin(), varyingArgs.end());
    for (Operation &bodyOp : body.without_terminator()) {
      if (bodyOp.getNumRegions() != 0 || !llvm::all_of(bodyOp.getResultTypes(), isScalar))
        return false;
      bool varies = llvm::any_of(bodyOp.getOperands(), [&](Value v) { return varying.contains(v); });
      if (auto index = dyn_cast<linalg::IndexOp>(bodyOp)) {
        varies = index.getDim() == inner;
      } else if (auto load = dyn_cast<memref::LoadOp>(bodyOp)) {
        if (load.getMemRef().getParentBlock() == &body)
          return false;
        if (varies && !isUnitStride1D(load.getMemRefType()))
          return false;
      } else if (!isa<arith::ArithDialect, math::MathDialect>(bodyOp.getDialect())) {
        return false;
      }
      if (varies)
        for (Value r : bodyOp.getResults())
          varying.insert(r);
    }
    if (!reduction)
      return true;
    Value out = body.getArgument(body.getNumArguments() - 1);
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    combiner = yield.getValues()[0].getDefiningOp();
    if (!combiner || combiner->getBlock() != &body || combiner->getNumOperands() != 2 ||
        !out.hasOneUse() || out.getUses().begin()->getOwner() != combiner ||
        combiner->getOperand(0) == combiner->getOperand(1) || !combiningKind(combiner))
      return false;
    return true;
  }

  /// Loops over the dims before the vectorized one, then the vector loop.
  void emitOuterLoops(ImplicitLocOpBuilder &b, unsigned dim) {
    if (dim == inner) {
      reduction ? emitReduction(b) : emitParallel(b);
      return;
    }
    auto loop = scf::ForOp::create(b, constant(b, 0), constant(b, ranges[dim]), constant(b, 1));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    ivs[dim] = loop.getInductionVar();
    emitOuterLoops(b, dim + 1);
  }

  /// Dim 0 in steps of `width`, dim 1 in steps of `width`; per block,
  /// `width` column chunks (dim 1 fixed, lanes along dim 0) are assembled
  /// into a width x width vector, transposed, and stored row by row.
  void emitTransposed(ImplicitLocOpBuilder &b) {
    auto rowLoop = scf::ForOp::create(b, constant(b, 0), constant(b, ranges[0]), constant(b, width));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(rowLoop.getBody());
    auto colLoop = scf::ForOp::create(b, constant(b, 0), constant(b, ranges[1]), constant(b, width));
    b.setInsertionPointToStart(colLoop.getBody());
    Value i0 = rowLoop.getInductionVar(), j0 = colLoop.getInductionVar();
    auto yield = cast<linalg::YieldOp>(op.getRegion().front().getTerminator());
    SmallVector<Value> blocks;
    for (Value value : yield.getValues()) {
      Type element = getElementTypeOrSelf(value.getType());
      blocks.push_back(arith::ConstantOp::create(
          b, VectorType::get({width, width}, element),
          b.getZeroAttr(VectorType::get({width, width}, element))));
    }
    for (int64_t jj = 0; jj < width; ++jj) {
      ivs[1] = jj == 0 ? j0 : arith::AddIOp::create(b, j0, constant(b, jj)).getResult();
      IRMapping mapping = emitChunk(b, i0, /*stopAt=*/nullptr);
      for (auto [k, value] : llvm::enumerate(yield.getValues()))
        blocks[k] = vector::InsertOp::create(b, asVector(b, mapping.lookupOrDefault(value)),
                                             blocks[k], ArrayRef<int64_t>{jj});
    }
    for (auto [k, init] : llvm::enumerate(op.getDpsInitsMutable())) {
      Value rows = vector::TransposeOp::create(b, blocks[k], ArrayRef<int64_t>{1, 0});
      for (int64_t ii = 0; ii < width; ++ii) {
        Value row = ii == 0 ? i0 : arith::AddIOp::create(b, i0, constant(b, ii)).getResult();
        vector::StoreOp::create(b, vector::ExtractOp::create(b, rows, ArrayRef<int64_t>{ii}),
                                init.get(), ValueRange{row, j0});
      }
    }
  }

  void emitParallel(ImplicitLocOpBuilder &b) {
    auto loop = scf::ForOp::create(b, constant(b, 0), constant(b, ranges[inner]),
                                   constant(b, width));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    IRMapping mapping = emitChunk(b, loop.getInductionVar(), /*stopAt=*/nullptr);
    auto yield = cast<linalg::YieldOp>(op.getRegion().front().getTerminator());
    for (auto [value, init] : llvm::zip(yield.getValues(), op.getDpsInitsMutable()))
      storeChunk(b, asVector(b, mapping.lookupOrDefault(value)), init.get(),
                 indices(b, init, loop.getInductionVar()));
  }

  /// `width` contiguous elements from `at`. i1 is loaded element by element:
  /// a memref of i1 holds one byte per element, while a vector<Nxi1> load
  /// would read N packed bits.
  Value loadChunk(ImplicitLocOpBuilder &b, Value memref, SmallVector<Value> at) {
    Type element = getElementTypeOrSelf(memref.getType());
    if (!element.isInteger(1))
      return vector::LoadOp::create(b, vectorOf(element), memref, at);
    SmallVector<Value> lanes;
    Value start = at.back();
    for (int64_t lane = 0; lane < width; ++lane) {
      at.back() = lane == 0 ? start : arith::AddIOp::create(b, start, constant(b, lane)).getResult();
      lanes.push_back(memref::LoadOp::create(b, memref, at));
    }
    return vector::FromElementsOp::create(b, vectorOf(element), lanes);
  }
  void storeChunk(ImplicitLocOpBuilder &b, Value chunk, Value memref, SmallVector<Value> at) {
    if (!getElementTypeOrSelf(memref.getType()).isInteger(1)) {
      vector::StoreOp::create(b, chunk, memref, at);
      return;
    }
    Value start = at.back();
    for (int64_t lane = 0; lane < width; ++lane) {
      at.back() = lane == 0 ? start : arith::AddIOp::create(b, start, constant(b, lane)).getResult();
      memref::StoreOp::create(b, vector::ExtractOp::create(b, chunk, lane), memref, at);
    }
  }

  /// The first chunk seeds a vector accumulator (no identity value needed),
  /// later chunks combine into it lane-wise, then one vector.reduction and
  /// the combiner fold it into the output element.
  void emitReduction(ImplicitLocOpBuilder &b) {
    Value out = op.getRegion().front().getArguments().back();
    Value contributionOf = combiner->getOperand(0) == out ? combiner->getOperand(1)
                                                          : combiner->getOperand(0);
    auto contribution = [&](Value iv) {
      IRMapping mapping = emitChunk(b, iv, combiner);
      return asVector(b, mapping.lookupOrDefault(contributionOf));
    };
    Value acc = contribution(constant(b, 0));
    auto loop = scf::ForOp::create(b, constant(b, width), constant(b, ranges[inner]),
                                   constant(b, width), ValueRange{acc});
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      Value next = contribution(loop.getInductionVar());
      scf::YieldOp::create(b, cloneWith(b, combiner, {loop.getRegionIterArgs()[0], next})->getResults());
    }
    auto fmf = dyn_cast<arith::ArithFastMathInterface>(combiner);
    Value reduced = vector::ReductionOp::create(
        b, *combiningKind(combiner), loop.getResult(0),
        fmf ? fmf.getFastMathFlagsAttr().getValue() : arith::FastMathFlags::none);
    OpOperand &init = op.getDpsInitsMutable()[0];
    SmallVector<Value> at = indices(b, init, Value());
    Value old = memref::LoadOp::create(b, init.get(), at);
    memref::StoreOp::create(b, cloneWith(b, combiner, {old, reduced})->getResult(0), init.get(), at);
  }

  /// The body for lanes [iv, iv + width) of the vectorized loop, up to (not
  /// including) `stopAt`; returns the mapping of body values to their
  /// vector (or, where uniform, scalar) values.
  IRMapping emitChunk(ImplicitLocOpBuilder &b, Value iv, Operation *stopAt) {
    IRMapping mapping;
    Block &body = op.getRegion().front();
    for (OpOperand &operand : op->getOpOperands()) {
      Value arg = op.getMatchingBlockArgument(&operand);
      if (arg.use_empty() || (reduction && op.isDpsInit(&operand)))
        continue;
      if (isScalar(operand.get().getType())) {
        mapping.map(arg, operand.get());
        continue;
      }
      SmallVector<Value> at = indices(b, operand, iv);
      mapping.map(arg, varyingArgs.contains(arg) ? loadChunk(b, operand.get(), at)
                                                 : memref::LoadOp::create(b, operand.get(), at));
    }
    LaneAffine affine;
    for (Operation &bodyOp : body.without_terminator()) {
      if (&bodyOp == stopAt)
        break;
      SmallVector<Value> operands;
      for (Value v : bodyOp.getOperands())
        operands.push_back(mapping.lookupOrDefault(v));
      bool varies = llvm::any_of(operands, [](Value v) { return isa<VectorType>(v.getType()); });
      if (auto index = dyn_cast<linalg::IndexOp>(bodyOp)) {
        bool lanes = index.getDim() == inner;
        mapping.map(index.getResult(), lanes ? laneIndices(b, iv) : ivs[index.getDim()]);
        if (lanes)
          affine.lanes[mapping.lookup(index.getResult())] = {iv, 1};
      } else if (auto load = dyn_cast<memref::LoadOp>(bodyOp); load && varies) {
        mapping.map(load.getResult(), loadLanes(b, load, operands[1], affine));
      } else {
        Operation *clone = cloneWith(b, &bodyOp, operands);
        mapping.map(bodyOp.getResults(), clone->getResults());
        if (varies)
          affine.track(b, &bodyOp, operands, clone->getResult(0));
      }
    }
    return mapping;
  }

  /// What is known of index vectors in a chunk: which are base + lane *
  /// stride (scalar base, constant stride), and which are a masked load's
  /// redirection select(mask, index, 0).
  struct LaneAffine {
    struct Form {
      Value base;
      int64_t stride;
    };
    DenseMap<Value, Form> lanes;
    DenseMap<Value, std::pair<Value, Value>> redirected; // -> (mask, index)

    std::optional<Form> of(Value v) {
      if (!isa<VectorType>(v.getType()))
        return Form{v, 0};
      auto it = lanes.find(v);
      return it == lanes.end() ? std::nullopt : std::optional(it->second);
    }

    /// Records `result` (the vector clone of `source` on `operands`) when
    /// it keeps the affine form: casts, add, sub, multiply by a constant.
    void track(ImplicitLocOpBuilder &b, Operation *source, ArrayRef<Value> operands, Value result) {
      auto scalarClone = [&](SmallVector<Value> scalarOperands) {
        Operation *clone = b.clone(*source);
        clone->setOperands(scalarOperands);
        return clone->getResult(0);
      };
      if (auto select = dyn_cast<arith::SelectOp>(source)) {
        if (isConstantIntValue(operands[2], 0))
          redirected[result] = {operands[0], operands[1]};
        return;
      }
      // Sign extension keeps base + lane * stride (zero extension does not
      // once the lanes cross from negative to non-negative).
      if (isa<arith::IndexCastOp, arith::ExtSIOp>(source)) {
        if (auto x = of(operands[0]))
          lanes[result] = {scalarClone({x->base}), x->stride};
        return;
      }
      if (!isa<arith::AddIOp, arith::SubIOp, arith::MulIOp>(source))
        return;
      auto x = of(operands[0]), y = of(operands[1]);
      if (!x || !y)
        return;
      if (isa<arith::AddIOp>(source))
        lanes[result] = {scalarClone({x->base, y->base}), x->stride + y->stride};
      else if (isa<arith::SubIOp>(source))
        lanes[result] = {scalarClone({x->base, y->base}), x->stride - y->stride};
      else if (auto c = getConstantIntValue(y->stride == 0 ? y->base : x->base);
               c && (x->stride == 0 || y->stride == 0))
        lanes[result] = {scalarClone({x->base, y->base}), *c * (x->stride + y->stride)};
    }
  };

  /// memref[index[0..width)] for a varying 1-D index. Consecutive indices
  /// (lane stride 1) are one contiguous load, masked where the index is a
  /// masked load's redirection select(mask, index, 0), so masked-off lanes
  /// are not touched; they get memref[0], as the scalar code (which loads
  /// there) would. Anything else is a gather, whose lanes are all in bounds
  /// (masked-off lanes were redirected to index 0), so its mask is all true.
  /// i1 is loaded lane by lane (a buffer of i1 holds a byte per element).
  Value loadLanes(ImplicitLocOpBuilder &b, memref::LoadOp load, Value index, LaneAffine &affine) {
    VectorType type = vectorOf(load.getType());
    if (load.getType().isInteger(1)) {
      SmallVector<Value> lanes;
      for (int64_t lane = 0; lane < width; ++lane)
        lanes.push_back(memref::LoadOp::create(b, load.getMemRef(),
                                               ValueRange{vector::ExtractOp::create(b, index, lane)}));
      return vector::FromElementsOp::create(b, type, lanes);
    }
    Value mask, unmasked = index;
    if (auto it = affine.redirected.find(index); it != affine.redirected.end())
      std::tie(mask, unmasked) = it->second;
    if (auto form = affine.of(unmasked); form && form->stride == 1) {
      if (!mask)
        return vector::LoadOp::create(b, type, load.getMemRef(), ValueRange{form->base});
      if (!isa<VectorType>(mask.getType())) {
        // A row mask, uniform across the lanes: a branch around a plain
        // load. Masked vector loads of 16-bit elements have no AVX2
        // instruction (LLVM splits them into a branch per lane), and
        // vmaskmovps is slow on some x86 cores.
        auto ifOp = scf::IfOp::create(b, TypeRange{type}, mask, /*withElseRegion=*/true);
        {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(&ifOp.getThenRegion().front());
          scf::YieldOp::create(
              b, ValueRange{vector::LoadOp::create(b, type, load.getMemRef(),
                                                   ValueRange{form->base})});
          b.setInsertionPointToStart(&ifOp.getElseRegion().front());
          Value first = memref::LoadOp::create(b, load.getMemRef(), ValueRange{constant(b, 0)});
          scf::YieldOp::create(b, ValueRange{vector::BroadcastOp::create(b, type, first)});
        }
        return ifOp.getResult(0);
      }
      Value first = memref::LoadOp::create(b, load.getMemRef(), ValueRange{constant(b, 0)});
      return vector::MaskedLoadOp::create(b, type, load.getMemRef(), ValueRange{form->base}, mask,
                                          vector::BroadcastOp::create(b, type, first));
    }
    Value allLanes = arith::ConstantOp::create(
        b, DenseElementsAttr::get(VectorType::get({width}, b.getI1Type()), true));
    Value passThrough = arith::ConstantOp::create(b, type, b.getZeroAttr(type));
    return vector::GatherOp::create(b, type, load.getMemRef(), ValueRange{constant(b, 0)}, index,
                                    allLanes, passThrough);
  }

  /// `source` cloned with new operands; where any operand is a vector, the
  /// others are broadcast and the scalar result types widened to vectors.
  Operation *cloneWith(ImplicitLocOpBuilder &b, Operation *source, SmallVector<Value> operands) {
    bool vectorResult = llvm::any_of(operands, [](Value v) { return isa<VectorType>(v.getType()); });
    if (vectorResult)
      for (Value &v : operands)
        v = asVector(b, v);
    Operation *clone = b.clone(*source);
    clone->setOperands(operands);
    if (vectorResult)
      for (OpResult r : clone->getResults())
        r.setType(vectorOf(r.getType()));
    return clone;
  }

  /// The operand's indices for this chunk: loop ivs through its map, the
  /// chunk start for the vectorized dim (absent for a reduction's output).
  SmallVector<Value> indices(ImplicitLocOpBuilder &b, OpOperand &operand, Value iv) {
    SmallVector<Value> at;
    for (AffineExpr e : op.getMatchingIndexingMap(&operand).getResults()) {
      unsigned dim = cast<AffineDimExpr>(e).getPosition();
      at.push_back(dim == inner ? iv : ivs[dim]);
    }
    return at;
  }

  /// [iv, iv + 1, ..., iv + width - 1] as a vector of index.
  Value laneIndices(ImplicitLocOpBuilder &b, Value iv) {
    VectorType type = vectorOf(b.getIndexType());
    // A constant rather than vector.step, which convert-to-llvm does not lower.
    SmallVector<APInt> lanes;
    for (int64_t i = 0; i < width; ++i)
      lanes.push_back(APInt(IndexType::kInternalStorageBitWidth, i));
    Value step = arith::ConstantOp::create(b, DenseElementsAttr::get(type, lanes));
    return arith::AddIOp::create(b, vector::BroadcastOp::create(b, type, iv), step);
  }

  Value asVector(ImplicitLocOpBuilder &b, Value v) {
    if (isa<VectorType>(v.getType()))
      return v;
    return vector::BroadcastOp::create(b, vectorOf(v.getType()), v);
  }
  VectorType vectorOf(Type element) const { return VectorType::get({width}, element); }
  Value constant(ImplicitLocOpBuilder &b, int64_t v) { return arith::ConstantIndexOp::create(b, v); }

  linalg::GenericOp op;
  int64_t maxLanes;
  unsigned inner = 0;
  bool reduction = false, transposed = false;
  int64_t width = 1;
  SmallVector<int64_t> ranges;
  DenseSet<Value> varyingArgs;
  Operation *combiner = nullptr;
  SmallVector<Value> ivs;
};

struct LoomVectorizeElementwise
    : mlir::loom::impl::LoomVectorizeElementwiseBase<LoomVectorizeElementwise> {
  using LoomVectorizeElementwiseBase::LoomVectorizeElementwiseBase;
  void runOnOperation() override {
    if (lanes < 1 || !llvm::isPowerOf2_64(lanes)) {
      getOperation().emitError() << "loom-vectorize-elementwise: lanes ("
                                 << static_cast<int64_t>(lanes) << ") must be a power of two";
      return signalPassFailure();
    }
    SmallVector<linalg::GenericOp> generics;
    getOperation().walk([&](linalg::GenericOp op) { generics.push_back(op); });
    IRRewriter rewriter(&getContext());
    bool anyTransposed = false;
    for (linalg::GenericOp op : generics) {
      ElementwiseVectorizer rowwise(op, lanes), columnwise(op, lanes);
      bool byRows = rowwise.analyze();
      // The transposed plan where it needs fewer gathers per chunk (each
      // chunk covers the same number of elements in both plans).
      if (columnwise.analyze(/*transposed=*/true) &&
          (!byRows || columnwise.countGathers(rewriter) < rowwise.countGathers(rewriter))) {
        columnwise.rewrite(rewriter);
        anyTransposed = true;
        continue;
      }
      if (byRows)
        rowwise.rewrite(rewriter);
    }
    // convert-to-llvm does not lower vector.transpose (nor the shape casts
    // and strided slices it decomposes into): here it becomes shuffles of
    // the flattened block, which LLVM turns into the target's permutes.
    if (anyTransposed) {
      RewritePatternSet patterns(&getContext());
      vector::populateVectorTransposeLoweringPatterns(patterns,
                                                      vector::VectorTransposeLowering::Shuffle1D);
      vector::populateVectorShapeCastLoweringPatterns(patterns);
      vector::populateVectorInsertExtractStridedSliceTransforms(patterns);
      if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
        return signalPassFailure();
    }
  }
};
} // namespace
