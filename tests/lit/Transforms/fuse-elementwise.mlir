// RUN: loom-opt %s --split-input-file --pass-pipeline="builtin.module(func.func(loom-fuse-elementwise))" | FileCheck %s

// A producer read through a permutation of the consumer's loops is fused
// (each element is still computed once).
#id = affine_map<(i, j) -> (i, j)>
// CHECK-LABEL: func.func @fuses_elementwise_chain
// CHECK: linalg.generic
// CHECK: math.exp
// CHECK: arith.mulf
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @fuses_elementwise_chain(%x: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %e = tensor.empty() : tensor<8x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = math.exp %in : f32
    linalg.yield %v : f32
  } -> tensor<8x8xf32>
  %b = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = arith.mulf %in, %in : f32
    linalg.yield %v : f32
  } -> tensor<8x8xf32>
  return %b : tensor<8x8xf32>
}

// -----

// A producer a dot reads with a broadcast (A[i, k] for every j) stays a
// separate generic: fusing it would rerun it N times per element.
#id = affine_map<(i, j) -> (i, j)>
#a = affine_map<(i, k, j) -> (i, k)>
#b = affine_map<(i, k, j) -> (k, j)>
#c = affine_map<(i, k, j) -> (i, j)>
// CHECK-LABEL: func.func @keeps_dot_operand
// CHECK: %[[A:.*]] = linalg.generic
// CHECK: math.exp
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[A]], %{{.*}} : tensor<8x8xf32>, tensor<8x8xf32>)
// CHECK-NOT: math.exp
// CHECK: return
func.func @keeps_dot_operand(%x: tensor<8x8xf32>, %y: tensor<8x8xf32>, %acc: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %e = tensor.empty() : tensor<8x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = math.exp %in : f32
    linalg.yield %v : f32
  } -> tensor<8x8xf32>
  %d = linalg.generic {indexing_maps = [#a, #b, #c],
                       iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%a, %y : tensor<8x8xf32>, tensor<8x8xf32>) outs(%acc : tensor<8x8xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<8x8xf32>
  return %d : tensor<8x8xf32>
}

// -----

// Cheap index arithmetic (a column mask from linalg.index) used by two
// tiles is copied per user and recomputed inside each, even where the user
// reads it through a broadcast (the 1-D mask over 2-D tiles): no mask tile
// is materialized.
#col = affine_map<(i, j) -> (j)>
#id = affine_map<(i, j) -> (i, j)>
#vec = affine_map<(j) -> (j)>
#scalar = affine_map<(j) -> ()>
// CHECK-LABEL: func.func @recomputes_cheap_masks
// CHECK-NOT: linalg.index 0
// CHECK: linalg.generic
// CHECK: linalg.index 1
// CHECK: arith.cmpi slt
// CHECK: arith.select
// CHECK: linalg.generic
// CHECK: linalg.index 1
// CHECK: arith.cmpi slt
// CHECK: arith.select
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @recomputes_cheap_masks(%n: i32, %x: tensor<8x8xf32>, %y: tensor<8x8xf32>) -> (tensor<8x8xf32>, tensor<8x8xf32>) {
  %e1 = tensor.empty() : tensor<8xi1>
  %mask = linalg.generic {indexing_maps = [#scalar, #vec], iterator_types = ["parallel"]}
      ins(%n : i32) outs(%e1 : tensor<8xi1>) {
  ^bb0(%limit: i32, %o: i1):
    %j = linalg.index 0 : index
    %j32 = arith.index_cast %j : index to i32
    %lt = arith.cmpi slt, %j32, %limit : i32
    linalg.yield %lt : i1
  } -> tensor<8xi1>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x8xf32>
  %a = linalg.generic {indexing_maps = [#col, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%mask, %x : tensor<8xi1>, tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%m: i1, %v: f32, %o: f32):
    %s = arith.select %m, %v, %zero : f32
    linalg.yield %s : f32
  } -> tensor<8x8xf32>
  %b = linalg.generic {indexing_maps = [#col, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%mask, %y : tensor<8xi1>, tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%m: i1, %v: f32, %o: f32):
    %s = arith.select %m, %v, %zero : f32
    linalg.yield %s : f32
  } -> tensor<8x8xf32>
  return %a, %b : tensor<8x8xf32>, tensor<8x8xf32>
}

// -----

// Cheap or not, nothing is fused into a dot: its body must stay the
// multiply-add loom-vectorize-dot recognizes.
#id = affine_map<(i, j) -> (i, j)>
#a = affine_map<(i, k, j) -> (i, k)>
#b = affine_map<(i, k, j) -> (k, j)>
#c = affine_map<(i, k, j) -> (i, j)>
// CHECK-LABEL: func.func @no_index_math_into_dot
// CHECK: %[[A:.*]] = linalg.generic
// CHECK: linalg.index
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[A]], %{{.*}} : tensor<8x8xi32>, tensor<8x8xi32>)
// CHECK-NOT: linalg.index
// CHECK: return
func.func @no_index_math_into_dot(%y: tensor<8x8xi32>, %acc: tensor<8x8xi32>) -> tensor<8x8xi32> {
  %e = tensor.empty() : tensor<8x8xi32>
  %a = linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]}
      outs(%e : tensor<8x8xi32>) {
  ^bb0(%out: i32):
    %i = linalg.index 0 : index
    %v = arith.index_cast %i : index to i32
    linalg.yield %v : i32
  } -> tensor<8x8xi32>
  %d = linalg.generic {indexing_maps = [#a, #b, #c],
                       iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%a, %y : tensor<8x8xi32>, tensor<8x8xi32>) outs(%acc : tensor<8x8xi32>) {
  ^bb0(%p: i32, %q: i32, %o: i32):
    %m = arith.muli %p, %q : i32
    %s = arith.addi %o, %m : i32
    linalg.yield %s : i32
  } -> tensor<8x8xi32>
  return %d : tensor<8x8xi32>
}

// -----

// A reshape of a dot's result is not propagated into the dot (that would
// make it a 4-D generic loom-vectorize-dot no longer recognizes).
#a = affine_map<(i, k, j) -> (i, k)>
#b = affine_map<(i, k, j) -> (k, j)>
#c = affine_map<(i, k, j) -> (i, j)>
// CHECK-LABEL: func.func @reshape_stays_after_dot
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "reduction", "parallel"]
// CHECK: tensor.expand_shape
func.func @reshape_stays_after_dot(%x: tensor<8x8xf32>, %y: tensor<8x8xf32>, %acc: tensor<8x8xf32>) -> tensor<8x2x4xf32> {
  %d = linalg.generic {indexing_maps = [#a, #b, #c],
                       iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %y : tensor<8x8xf32>, tensor<8x8xf32>) outs(%acc : tensor<8x8xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  } -> tensor<8x8xf32>
  %e = tensor.expand_shape %d [[0], [1, 2]] output_shape [8, 2, 4] : tensor<8x8xf32> into tensor<8x2x4xf32>
  return %e : tensor<8x2x4xf32>
}

// -----

// Unit dims of generics without reductions are dropped first: the [64, 1]
// row offsets behind an expand_dims reach the [64, 64] load with no
// collapse_shape between them and fuse into it (the load then indexes
// with its own loops).
#col = affine_map<(i, j) -> (i, j)>
#rows = affine_map<(i, j) -> (i)>
#id2 = affine_map<(i, j) -> (i, j)>
// CHECK-LABEL: func.func @fuses_through_unit_dims
// CHECK-NOT: tensor.collapse_shape
// CHECK: linalg.generic
// CHECK: linalg.index 0
// CHECK: memref.load
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @fuses_through_unit_dims(%base: i64, %p: memref<?xf32>) -> tensor<64x64xf32> {
  %e1 = tensor.empty() : tensor<64x1xi64>
  %r = linalg.generic {indexing_maps = [#col], iterator_types = ["parallel", "parallel"]}
      outs(%e1 : tensor<64x1xi64>) {
  ^bb0(%out: i64):
    %i = linalg.index 0 : index
    %i64 = arith.index_cast %i : index to i64
    %v = arith.addi %i64, %base : i64
    linalg.yield %v : i64
  } -> tensor<64x1xi64>
  %c = tensor.collapse_shape %r [[0, 1]] : tensor<64x1xi64> into tensor<64xi64>
  %e = tensor.empty() : tensor<64x64xf32>
  %t = linalg.generic {indexing_maps = [#rows, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%c : tensor<64xi64>) outs(%e : tensor<64x64xf32>) {
  ^bb0(%in: i64, %out: f32):
    %at = arith.index_cast %in : i64 to index
    %v = memref.load %p[%at] : memref<?xf32>
    linalg.yield %v : f32
  } -> tensor<64x64xf32>
  return %t : tensor<64x64xf32>
}

// -----

// A contraction keeps its unit dims (N = 1 here): it stays the (i, k, j)
// dot generic loom-vectorize-dot matches.
#a = affine_map<(i, k, j) -> (i, k)>
#b = affine_map<(i, k, j) -> (k, j)>
#c = affine_map<(i, k, j) -> (i, j)>
// CHECK-LABEL: func.func @dot_keeps_unit_dims
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}], iterator_types = ["parallel", "reduction", "parallel"]} ins(%{{.*}}, %{{.*}} : tensor<8x16xf32>, tensor<16x1xf32>) outs(%{{.*}} : tensor<8x1xf32>)
func.func @dot_keeps_unit_dims(%x: tensor<8x16xf32>, %y: tensor<16x1xf32>, %acc: tensor<8x1xf32>) -> tensor<8x1xf32> {
  %d = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %y : tensor<8x16xf32>, tensor<16x1xf32>) outs(%acc : tensor<8x1xf32>) {
  ^bb0(%in: f32, %in2: f32, %out: f32):
    %m = arith.mulf %in, %in2 : f32
    %s = arith.addf %out, %m : f32
    linalg.yield %s : f32
  } -> tensor<8x1xf32>
  return %d : tensor<8x1xf32>
}

// -----

// A rounding to bf16 and the widening a dot operand gets fuse into one
// generic that keeps both: P's bf16 rounding is not folded away.
#id = affine_map<(i, j) -> (i, j)>
// CHECK-LABEL: func.func @keeps_bf16_rounding
// CHECK: linalg.generic
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @keeps_bf16_rounding(%x: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %eb = tensor.empty() : tensor<8x8xbf16>
  %t = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<8x8xf32>) outs(%eb : tensor<8x8xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %v = arith.truncf %in : f32 to bf16
    linalg.yield %v : bf16
  } -> tensor<8x8xbf16>
  %e = tensor.empty() : tensor<8x8xf32>
  %w = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%t : tensor<8x8xbf16>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %v = arith.extf %in : bf16 to f32
    linalg.yield %v : f32
  } -> tensor<8x8xf32>
  return %w : tensor<8x8xf32>
}
