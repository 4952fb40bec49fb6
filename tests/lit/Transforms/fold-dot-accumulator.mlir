// RUN: loom-opt %s -split-input-file --loom-fold-dot-accumulator | FileCheck %s

// `acc * alpha + dot(p, v, 0)` (the online softmax's update) accumulates
// into the scaled accumulator in place: one dot, no add, no zero splat use.

// CHECK-LABEL: func.func @online_softmax_update
// CHECK-SAME: (%[[P:[^:]*]]: tensor<64x32xbf16>, %[[V:[^:]*]]: tensor<32x64xbf16>, %[[ACC:[^:]*]]: tensor<64x64xf32>, %[[ALPHA:[^:]*]]: tensor<64x64xf32>)
// CHECK: %[[SCALED:.*]] = arith.mulf %[[ACC]], %[[ALPHA]] : tensor<64x64xf32>
// CHECK-NEXT: %[[R:.*]] = loom.dot %[[P]], %[[V]], %[[SCALED]] : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
// CHECK-NEXT: return %[[R]]
func.func @online_softmax_update(%p: tensor<64x32xbf16>, %v: tensor<32x64xbf16>,
                                 %acc: tensor<64x64xf32>, %alpha: tensor<64x64xf32>)
    -> tensor<64x64xf32> {
  %zero = arith.constant 0.0 : f32
  %z = loom.splat %zero : tensor<64x64xf32>
  %scaled = arith.mulf %acc, %alpha : tensor<64x64xf32>
  %d = loom.dot %p, %v, %z : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
  %r = arith.addf %scaled, %d : tensor<64x64xf32>
  return %r : tensor<64x64xf32>
}

// -----

// Either operand order; a -0.0 splat is a zero too.

// CHECK-LABEL: func.func @dot_first
// CHECK-SAME: (%[[A:[^:]*]]: tensor<16x16xf16>, %[[B:[^:]*]]: tensor<16x8xf16>, %[[X:[^:]*]]: tensor<16x8xf32>)
// CHECK-NEXT: %[[R:.*]] = loom.dot %[[A]], %[[B]], %[[X]]
// CHECK-NEXT: return %[[R]]
func.func @dot_first(%a: tensor<16x16xf16>, %b: tensor<16x8xf16>, %x: tensor<16x8xf32>)
    -> tensor<16x8xf32> {
  %zero = arith.constant -0.0 : f32
  %z = loom.splat %zero : tensor<16x8xf32>
  %d = loom.dot %a, %b, %z : tensor<16x16xf16>, tensor<16x8xf16> -> tensor<16x8xf32>
  %r = arith.addf %d, %x : tensor<16x8xf32>
  return %r : tensor<16x8xf32>
}

// -----

// Left alone: the dot has another use (folding would compute it twice), its
// accumulator is not zero, or it is not a splat.

// CHECK-LABEL: func.func @not_foldable
// CHECK: %[[D0:.*]] = loom.dot
// CHECK-NEXT: arith.addf %{{.*}}, %[[D0]]
// CHECK-NEXT: %[[D1:.*]] = loom.dot
// CHECK-NEXT: arith.addf %{{.*}}, %[[D1]]
// CHECK-NEXT: %[[D2:.*]] = loom.dot
// CHECK-NEXT: arith.addf %{{.*}}, %[[D2]]
func.func @not_foldable(%a: tensor<16x16xf16>, %b: tensor<16x8xf16>, %x: tensor<16x8xf32>)
    -> (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %z = loom.splat %zero : tensor<16x8xf32>
  %o = loom.splat %one : tensor<16x8xf32>
  %shared = loom.dot %a, %b, %z : tensor<16x16xf16>, tensor<16x8xf16> -> tensor<16x8xf32>
  %r0 = arith.addf %x, %shared : tensor<16x8xf32>
  %nonzero = loom.dot %a, %b, %o : tensor<16x16xf16>, tensor<16x8xf16> -> tensor<16x8xf32>
  %r1 = arith.addf %x, %nonzero : tensor<16x8xf32>
  %dense = loom.dot %a, %b, %x : tensor<16x16xf16>, tensor<16x8xf16> -> tensor<16x8xf32>
  %r2 = arith.addf %x, %dense : tensor<16x8xf32>
  return %r0, %shared, %r1, %r2 : tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>
}
