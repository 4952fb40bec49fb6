// RUN: loom-opt %s --convert-loom-to-linalg | FileCheck %s

// loom.dot -> linalg.generic iterating (i, k, j) (innermost loop contiguous
// in B and C) over f32 operands: f16/bf16 tiles are first widened by a
// tensor arith.extf of their own (once per tile, not once per multiply;
// convert-elementwise-to-linalg makes it a generic), then multiplied and
// added into the f32 acc; loom.reduce ->
// linalg.fill of the neutral element + linalg.reduce.

// CHECK-DAG: #[[A:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[B:.*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[C:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>

// CHECK-LABEL: func.func @dot
// CHECK-SAME: (%[[AH:[^:]*]]: tensor<64x32xf16>, %[[BH:[^:]*]]: tensor<32x16xf16>, %[[AB:[^:]*]]: tensor<64x32xbf16>, %[[BB:[^:]*]]: tensor<32x16xbf16>, %[[AF:[^:]*]]: tensor<64x32xf32>, %[[BF:[^:]*]]: tensor<32x16xf32>, %[[ACC:[^:]*]]: tensor<64x16xf32>
// The widenings sit right after their tiles are defined (here, for the
// arguments, at the start of the body), one per tile.
// CHECK-DAG: %[[WAH:.*]] = arith.extf %[[AH]] : tensor<64x32xf16> to tensor<64x32xf32>
// CHECK-DAG: %[[WBH:.*]] = arith.extf %[[BH]] : tensor<32x16xf16> to tensor<32x16xf32>
// CHECK-DAG: %[[WAB:.*]] = arith.extf %[[AB]] : tensor<64x32xbf16> to tensor<64x32xf32>
// CHECK-DAG: %[[WBB:.*]] = arith.extf %[[BB]] : tensor<32x16xbf16> to tensor<32x16xf32>
// CHECK: %[[D0:.*]] = linalg.generic {indexing_maps = [#[[A]], #[[B]], #[[C]]], iterator_types = ["parallel", "reduction", "parallel"]} ins(%[[WAH]], %[[WBH]] : tensor<64x32xf32>, tensor<32x16xf32>) outs(%[[ACC]] : tensor<64x16xf32>)
// CHECK-NOT: arith.extf
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: %[[D1:.*]] = linalg.generic {{.*}} ins(%[[WAB]], %[[WBB]] : tensor<64x32xf32>, tensor<32x16xf32>) outs(%[[D0]] : tensor<64x16xf32>)
// CHECK-NOT: arith.extf
// CHECK: %[[D2:.*]] = linalg.generic {{.*}} ins(%[[AF]], %[[BF]] : tensor<64x32xf32>, tensor<32x16xf32>) outs(%[[D1]] : tensor<64x16xf32>)
// CHECK-NOT: loom.dot
// CHECK: return %[[D2]]
func.func @dot(%ah: tensor<64x32xf16>, %bh: tensor<32x16xf16>,
               %ab: tensor<64x32xbf16>, %bb: tensor<32x16xbf16>,
               %af: tensor<64x32xf32>, %bf: tensor<32x16xf32>,
               %acc: tensor<64x16xf32>) -> tensor<64x16xf32>
    attributes {loom.kernel, loom.arg_names = ["ah", "bh", "ab", "bb", "af", "bf", "acc"]} {
  %0 = loom.dot %ah, %bh, %acc : tensor<64x32xf16>, tensor<32x16xf16> -> tensor<64x16xf32>
  %1 = loom.dot %ab, %bb, %0 : tensor<64x32xbf16>, tensor<32x16xbf16> -> tensor<64x16xf32>
  %2 = loom.dot %af, %bf, %1 : tensor<64x32xf32>, tensor<32x16xf32> -> tensor<64x16xf32>
  return %2 : tensor<64x16xf32>
}

// A tile two dots read is widened once, and both dots read the widened tile.
// CHECK-LABEL: func.func @dot_shared_operand
// CHECK-SAME: (%[[X:[^:]*]]: tensor<64x32xbf16>,
// CHECK: %[[W:.*]] = arith.extf %[[X]] : tensor<64x32xbf16> to tensor<64x32xf32>
// CHECK-NOT: arith.extf %[[X]]
// CHECK: ins(%[[W]], %{{.*}} : tensor<64x32xf32>, tensor<32x16xf32>)
// CHECK-NOT: arith.extf %[[X]]
// CHECK: ins(%[[W]], %{{.*}} : tensor<64x32xf32>, tensor<32x16xf32>)
func.func @dot_shared_operand(%x: tensor<64x32xbf16>, %y: tensor<32x16xbf16>,
                              %z: tensor<32x16xbf16>, %acc: tensor<64x16xf32>) -> tensor<64x16xf32>
    attributes {loom.kernel, loom.arg_names = ["x", "y", "z", "acc"]} {
  %0 = loom.dot %x, %y, %acc : tensor<64x32xbf16>, tensor<32x16xbf16> -> tensor<64x16xf32>
  %1 = loom.dot %x, %z, %0 : tensor<64x32xbf16>, tensor<32x16xbf16> -> tensor<64x16xf32>
  return %1 : tensor<64x16xf32>
}

// Floating point: max/min start from -inf/+inf and use the NaN-propagating
// maximumf/minimumf; sum starts from 0.
// CHECK-LABEL: func.func @reduce_float
// CHECK-SAME: (%[[S:[^:]*]]: tensor<64x128xf32>, %[[H:[^:]*]]: tensor<8x4xf16>
// CHECK: %[[E0:.*]] = tensor.empty() : tensor<64xf32>
// CHECK: %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: %[[F0:.*]] = linalg.fill ins(%[[NINF]] : f32) outs(%[[E0]] : tensor<64xf32>) -> tensor<64xf32>
// CHECK: %[[MAX:.*]] = linalg.reduce ins(%[[S]] : tensor<64x128xf32>) outs(%[[F0]] : tensor<64xf32>) dimensions = [1]
// CHECK:   (%[[IN:[^:]*]]: f32, %[[INIT:[^:]*]]: f32) {
// CHECK:     %[[R:.*]] = arith.maximumf %[[IN]], %[[INIT]] : f32
// CHECK:     linalg.yield %[[R]] : f32
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[F1:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.*}} : tensor<128xf32>)
// CHECK: %[[SUM:.*]] = linalg.reduce ins(%[[S]] : tensor<64x128xf32>) outs(%[[F1]] : tensor<128xf32>) dimensions = [0]
// CHECK:     arith.addf
// CHECK: %[[INF:.*]] = arith.constant 0x7F800000 : f32
// CHECK: %[[F2:.*]] = linalg.fill ins(%[[INF]] : f32) outs(%{{.*}} : tensor<64xf32>)
// CHECK: %[[MIN:.*]] = linalg.reduce ins(%[[S]] : tensor<64x128xf32>) outs(%[[F2]] : tensor<64xf32>) dimensions = [1]
// CHECK:     arith.minimumf
// CHECK: %[[HNINF:.*]] = arith.constant 0xFC00 : f16
// CHECK: %[[F3:.*]] = linalg.fill ins(%[[HNINF]] : f16) outs(%{{.*}} : tensor<8xf16>)
// CHECK: %[[HMAX:.*]] = linalg.reduce ins(%[[H]] : tensor<8x4xf16>) outs(%[[F3]] : tensor<8xf16>) dimensions = [1]
// CHECK:     arith.maximumf %{{.*}}, %{{.*}} : f16
// CHECK-NOT: loom.reduce
// CHECK: return %[[MAX]], %[[SUM]], %[[MIN]], %[[HMAX]]
func.func @reduce_float(%s: tensor<64x128xf32>, %h: tensor<8x4xf16>)
    -> (tensor<64xf32>, tensor<128xf32>, tensor<64xf32>, tensor<8xf16>)
    attributes {loom.kernel, loom.arg_names = ["s", "h"]} {
  %0 = loom.reduce max %s, 1 : tensor<64x128xf32> -> tensor<64xf32>
  %1 = loom.reduce sum %s, 0 : tensor<64x128xf32> -> tensor<128xf32>
  %2 = loom.reduce min %s, 1 : tensor<64x128xf32> -> tensor<64xf32>
  %3 = loom.reduce max %h, 1 : tensor<8x4xf16> -> tensor<8xf16>
  return %0, %1, %2, %3 : tensor<64xf32>, tensor<128xf32>, tensor<64xf32>, tensor<8xf16>
}

// Integers: signed combiners; a 1-D tile reduces to a 0-D tensor.
// CHECK-LABEL: func.func @reduce_int
// CHECK-SAME: (%[[I:[^:]*]]: tensor<16xi32>
// CHECK: %[[Z:.*]] = arith.constant 0 : i32
// CHECK: %[[FZ:.*]] = linalg.fill ins(%[[Z]] : i32) outs(%{{.*}} : tensor<i32>) -> tensor<i32>
// CHECK: linalg.reduce ins(%[[I]] : tensor<16xi32>) outs(%[[FZ]] : tensor<i32>) dimensions = [0]
// CHECK:     arith.addi
// CHECK: %[[LO:.*]] = arith.constant -2147483648 : i32
// CHECK: %[[FLO:.*]] = linalg.fill ins(%[[LO]] : i32)
// CHECK: linalg.reduce ins(%[[I]] : tensor<16xi32>) outs(%[[FLO]] : tensor<i32>) dimensions = [0]
// CHECK:     arith.maxsi
// CHECK: %[[HI:.*]] = arith.constant 2147483647 : i32
// CHECK: %[[FHI:.*]] = linalg.fill ins(%[[HI]] : i32)
// CHECK: linalg.reduce ins(%[[I]] : tensor<16xi32>) outs(%[[FHI]] : tensor<i32>) dimensions = [0]
// CHECK:     arith.minsi
func.func @reduce_int(%i: tensor<16xi32>) -> (tensor<i32>, tensor<i32>, tensor<i32>)
    attributes {loom.kernel, loom.arg_names = ["i"]} {
  %0 = loom.reduce sum %i, 0 : tensor<16xi32> -> tensor<i32>
  %1 = loom.reduce max %i, 0 : tensor<16xi32> -> tensor<i32>
  %2 = loom.reduce min %i, 0 : tensor<16xi32> -> tensor<i32>
  return %0, %1, %2 : tensor<i32>, tensor<i32>, tensor<i32>
}
