//===- Ops.h - operations of the tile DSL -----------------------*- C++ -*-===//
#ifndef LOOM_DSL_OPS_H
#define LOOM_DSL_OPS_H

#include "loom/dsl/Value.h"

#include <functional>

namespace loom::dsl {

// --- Grid ------------------------------------------------------------------
/// Id of this program instance along grid axis 0, 1 or 2 (i32 scalar).
Value program_id(int axis, SourceLoc loc = SourceLoc::current());
/// Grid size along axis 0, 1 or 2 (i32 scalar).
Value num_programs(int axis, SourceLoc loc = SourceLoc::current());

// --- Tile construction and shape -------------------------------------------
/// 1-D i32 tile [start, end).
Value arange(int64_t start, int64_t end, SourceLoc loc = SourceLoc::current());
/// Tile of `shape` filled with `value` converted to `dtype`.
Value full(const Shape &shape, Value value, DType dtype,
           SourceLoc loc = SourceLoc::current());
Value zeros(const Shape &shape, DType dtype, SourceLoc loc = SourceLoc::current());
/// Inserts a size-1 dimension at `axis` (x[:, None] is expand_dims(x, 1)).
Value expand_dims(Value x, int axis, SourceLoc loc = SourceLoc::current());
/// Broadcasts `x` to `shape` with NumPy rules.
Value broadcast_to(Value x, const Shape &shape, SourceLoc loc = SourceLoc::current());
/// The transpose of a 2-D tile (Triton's tl.trans): element (i, j) is x's (j, i).
Value trans(Value x, SourceLoc loc = SourceLoc::current());

// --- Memory ----------------------------------------------------------------
/// Gathers ptr[offsets]; where `mask` is false nothing is read and the
/// element is `other` (0 when omitted). Mask and other broadcast to the
/// offsets' shape.
Value load(Value ptr, Value offsets, Value mask = {}, Value other = {},
           SourceLoc loc = SourceLoc::current());
/// Scatters value to ptr[offsets] where `mask` is true (everywhere if omitted).
void store(Value ptr, Value offsets, Value value, Value mask = {},
           SourceLoc loc = SourceLoc::current());

// --- Compute ---------------------------------------------------------------
/// a (MxK) @ b (KxN) + acc (MxN, f32; zeros when omitted), accumulated in f32.
Value dot(Value a, Value b, Value acc = {}, SourceLoc loc = SourceLoc::current());
/// Reductions along `axis`, which is removed from the shape.
Value max(Value x, int axis, SourceLoc loc = SourceLoc::current());
Value min(Value x, int axis, SourceLoc loc = SourceLoc::current());
Value sum(Value x, int axis, SourceLoc loc = SourceLoc::current());
/// Elementwise, with broadcasting. Float max/min propagate NaN.
Value maximum(At a, At b);
Value minimum(At a, At b);
Value where(Value cond, Value a, Value b, SourceLoc loc = SourceLoc::current());
Value exp2(Value x, SourceLoc loc = SourceLoc::current());
Value log2(Value x, SourceLoc loc = SourceLoc::current());
Value exp(Value x, SourceLoc loc = SourceLoc::current());
Value log(Value x, SourceLoc loc = SourceLoc::current());
Value tanh(Value x, SourceLoc loc = SourceLoc::current());
Value sqrt(Value x, SourceLoc loc = SourceLoc::current());
Value abs(Value x, SourceLoc loc = SourceLoc::current());

// --- Control flow ----------------------------------------------------------
using LoopBody =
    std::function<std::vector<Value>(Value index, const std::vector<Value> &carried)>;
/// Counted loop `for (i = lo; i < hi; i += step)` carrying `init` values
/// through iterations: `body` returns the next carried values (same count,
/// dtypes and shapes). Returns the values after the last iteration.
std::vector<Value> for_range(Value lo, Value hi, Value step, std::vector<Value> init,
                             const LoopBody &body,
                             SourceLoc loc = SourceLoc::current());

// --- Differentiation ---------------------------------------------------------
/// Builds f(x) and, by forward-mode differentiation of the ops f built,
/// df/dx elementwise (x a float tile or scalar; f elementwise in x). Stores
/// f(x) in *fx. Supports +, -, *, /, negation, maximum, minimum, where,
/// casts, exp, exp2, log, log2, tanh, sqrt, abs, broadcasting; other ops
/// that depend on x are an error naming the op.
Value derivative(const std::function<Value(Value)> &f, Value x, Value *fx,
                 SourceLoc loc = SourceLoc::current());

/// One load that f performed from a differentiated pointer: where it read
/// (offsets, and its mask when it had one: elements it did not read get no
/// gradient) and d f / d (the value read), all broadcast to f(x)'s shape.
/// The chain rule then gives the pointee's gradient: scatter-add
/// upstream * tangent at offsets.
struct LoadDerivative {
  Value pointer, offsets, mask, tangent;
};
/// As above, and also differentiates f with respect to every value it loads
/// from one of `pointers` (float pointer arguments): one LoadDerivative per
/// such load, in the order f performs them, in *loads.
Value derivative(const std::function<Value(Value)> &f, Value x, Value *fx,
                 const std::vector<Value> &pointers, std::vector<LoadDerivative> *loads,
                 SourceLoc loc = SourceLoc::current());

} // namespace loom::dsl

#endif
