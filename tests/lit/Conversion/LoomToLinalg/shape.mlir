// RUN: loom-opt %s --convert-loom-to-linalg | FileCheck %s

// Tile construction and shape ops: splat -> linalg.fill, arange ->
// linalg.generic over linalg.index, expand_dims -> tensor.expand_shape,
// broadcast -> tensor.collapse_shape (dropping the broadcast unit dims) +
// linalg.broadcast, trans -> linalg.transpose.

// CHECK: #[[ID:.*]] = affine_map<(d0) -> (d0)>

// CHECK-LABEL: func.func @splat
// CHECK-SAME: (%[[X:[^:]*]]: f32, %[[B:[^:]*]]: i1,
// CHECK: %[[E:.*]] = tensor.empty() : tensor<64x32xf32>
// CHECK: %[[F:.*]] = linalg.fill ins(%[[X]] : f32) outs(%[[E]] : tensor<64x32xf32>) -> tensor<64x32xf32>
// CHECK: %[[EB:.*]] = tensor.empty() : tensor<8xi1>
// CHECK: %[[FB:.*]] = linalg.fill ins(%[[B]] : i1) outs(%[[EB]] : tensor<8xi1>) -> tensor<8xi1>
// CHECK: return %[[F]], %[[FB]]
func.func @splat(%x: f32, %b: i1) -> (tensor<64x32xf32>, tensor<8xi1>)
    attributes {loom.kernel, loom.arg_names = ["x", "b"]} {
  %0 = loom.splat %x : tensor<64x32xf32>
  %1 = loom.splat %b : tensor<8xi1>
  return %0, %1 : tensor<64x32xf32>, tensor<8xi1>
}

// arange start..end: element i is index i + start.
// CHECK-LABEL: func.func @arange
// CHECK: %[[E:.*]] = tensor.empty() : tensor<32xi32>
// CHECK: %[[G:.*]] = linalg.generic {indexing_maps = [#[[ID]]], iterator_types = ["parallel"]} outs(%[[E]] : tensor<32xi32>) {
// CHECK: ^bb0(%{{[^:]+}}: i32):
// CHECK:   %[[I:.*]] = linalg.index 0 : index
// CHECK:   %[[I32:.*]] = arith.index_cast %[[I]] : index to i32
// CHECK:   %[[START:.*]] = arith.constant 16 : i32
// CHECK:   %[[V:.*]] = arith.addi %[[I32]], %[[START]] : i32
// CHECK:   linalg.yield %[[V]] : i32
// CHECK: } -> tensor<32xi32>
// CHECK: return %[[G]]
func.func @arange() -> tensor<32xi32> attributes {loom.kernel, loom.arg_names = []} {
  %0 = loom.arange 16 to 48 : tensor<32xi32>
  return %0 : tensor<32xi32>
}

// The new unit dim is grouped with its neighbour source dim; a 0-D source
// expands with an empty reassociation.
// CHECK-LABEL: func.func @expand_dims
// CHECK-SAME: (%[[R:[^:]*]]: tensor<64xf32>, %[[Z:[^:]*]]: tensor<f32>,
// CHECK: %[[A:.*]] = tensor.expand_shape %[[R]] {{\[\[}}0, 1]] output_shape [64, 1] : tensor<64xf32> into tensor<64x1xf32>
// CHECK: %[[B:.*]] = tensor.expand_shape %[[R]] {{\[\[}}0, 1]] output_shape [1, 64] : tensor<64xf32> into tensor<1x64xf32>
// CHECK: %[[C:.*]] = tensor.expand_shape %[[Z]] [] output_shape [1] : tensor<f32> into tensor<1xf32>
// CHECK: %[[D:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2]] output_shape [4, 1, 8] : tensor<4x8xi32> into tensor<4x1x8xi32>
// CHECK: return %[[A]], %[[B]], %[[C]], %[[D]]
func.func @expand_dims(%r: tensor<64xf32>, %z: tensor<f32>, %m: tensor<4x8xi32>)
    -> (tensor<64x1xf32>, tensor<1x64xf32>, tensor<1xf32>, tensor<4x1x8xi32>)
    attributes {loom.kernel, loom.arg_names = ["r", "z", "m"]} {
  %0 = loom.expand_dims %r, 1 : tensor<64xf32> -> tensor<64x1xf32>
  %1 = loom.expand_dims %r, 0 : tensor<64xf32> -> tensor<1x64xf32>
  %2 = loom.expand_dims %z, 0 : tensor<f32> -> tensor<1xf32>
  %3 = loom.expand_dims %m, 1 : tensor<4x8xi32> -> tensor<4x1x8xi32>
  return %0, %1, %2, %3 : tensor<64x1xf32>, tensor<1x64xf32>, tensor<1xf32>, tensor<4x1x8xi32>
}

// CHECK-LABEL: func.func @broadcast
// CHECK-SAME: (%[[COL:[^:]*]]: tensor<64x1xf32>, %[[ROW:[^:]*]]: tensor<1x64xf32>, %[[Q:[^:]*]]: tensor<1x8x1xi32>, %[[ONE:[^:]*]]: tensor<1xf32>, %[[SAME:[^:]*]]: tensor<4x1xf32>,
// Column vector across 128 columns.
// CHECK: %[[C0:.*]] = tensor.collapse_shape %[[COL]] {{\[\[}}0, 1]] : tensor<64x1xf32> into tensor<64xf32>
// CHECK: %[[E0:.*]] = tensor.empty() : tensor<64x128xf32>
// CHECK: %[[B0:.*]] = linalg.broadcast ins(%[[C0]] : tensor<64xf32>) outs(%[[E0]] : tensor<64x128xf32>) dimensions = [1]
// Row vector down 16 rows.
// CHECK: %[[C1:.*]] = tensor.collapse_shape %[[ROW]] {{\[\[}}0, 1]] : tensor<1x64xf32> into tensor<64xf32>
// CHECK: %[[B1:.*]] = linalg.broadcast ins(%[[C1]] : tensor<64xf32>) outs(%{{.*}} : tensor<16x64xf32>) dimensions = [0]
// Two broadcast dims around a kept one.
// CHECK: %[[C2:.*]] = tensor.collapse_shape %[[Q]] {{\[\[}}0, 1, 2]] : tensor<1x8x1xi32> into tensor<8xi32>
// CHECK: %[[B2:.*]] = linalg.broadcast ins(%[[C2]] : tensor<8xi32>) outs(%{{.*}} : tensor<2x8x4xi32>) dimensions = [0, 2]
// A unit dim that stays 1 is kept.
// CHECK: %[[C3:.*]] = tensor.collapse_shape %[[Q]] {{\[\[}}0], [1, 2]] : tensor<1x8x1xi32> into tensor<1x8xi32>
// CHECK: %[[B3:.*]] = linalg.broadcast ins(%[[C3]] : tensor<1x8xi32>) outs(%{{.*}} : tensor<1x8x4xi32>) dimensions = [2]
// A 1-element tile to 128 elements goes through a 0-D tensor.
// CHECK: %[[C4:.*]] = tensor.collapse_shape %[[ONE]] [] : tensor<1xf32> into tensor<f32>
// CHECK: %[[B4:.*]] = linalg.broadcast ins(%[[C4]] : tensor<f32>) outs(%{{.*}} : tensor<128xf32>) dimensions = [0]
// A broadcast to the same type folds away.
// CHECK-NOT: linalg.broadcast
// CHECK: return %[[B0]], %[[B1]], %[[B2]], %[[B3]], %[[B4]], %[[SAME]] :
func.func @broadcast(%col: tensor<64x1xf32>, %row: tensor<1x64xf32>, %q: tensor<1x8x1xi32>,
                     %one: tensor<1xf32>, %same: tensor<4x1xf32>)
    -> (tensor<64x128xf32>, tensor<16x64xf32>, tensor<2x8x4xi32>, tensor<1x8x4xi32>,
        tensor<128xf32>, tensor<4x1xf32>)
    attributes {loom.kernel, loom.arg_names = ["col", "row", "q", "one", "same"]} {
  %0 = loom.broadcast %col : tensor<64x1xf32> -> tensor<64x128xf32>
  %1 = loom.broadcast %row : tensor<1x64xf32> -> tensor<16x64xf32>
  %2 = loom.broadcast %q : tensor<1x8x1xi32> -> tensor<2x8x4xi32>
  %3 = loom.broadcast %q : tensor<1x8x1xi32> -> tensor<1x8x4xi32>
  %4 = loom.broadcast %one : tensor<1xf32> -> tensor<128xf32>
  %5 = loom.broadcast %same : tensor<4x1xf32> -> tensor<4x1xf32>
  return %0, %1, %2, %3, %4, %5 : tensor<64x128xf32>, tensor<16x64xf32>, tensor<2x8x4xi32>,
      tensor<1x8x4xi32>, tensor<128xf32>, tensor<4x1xf32>
}

// CHECK-LABEL: func.func @trans
// CHECK-SAME: (%[[X:[^:]*]]: tensor<64x32xbf16>,
// CHECK: %[[E:.*]] = tensor.empty() : tensor<32x64xbf16>
// CHECK: %[[T:.*]] = linalg.transpose ins(%[[X]] : tensor<64x32xbf16>) outs(%[[E]] : tensor<32x64xbf16>) permutation = [1, 0]
// CHECK: return %[[T]]
func.func @trans(%x: tensor<64x32xbf16>) -> tensor<32x64xbf16>
    attributes {loom.kernel, loom.arg_names = ["x"]} {
  %0 = loom.trans %x : tensor<64x32xbf16> -> tensor<32x64xbf16>
  return %0 : tensor<32x64xbf16>
}
