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
