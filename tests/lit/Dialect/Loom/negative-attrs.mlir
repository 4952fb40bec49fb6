// RUN: loom-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// I32Attr operands are read as signed values: negative starts are valid and
// negative axes are reported as such.

// CHECK-LABEL: func.func @arange_negative_start
// CHECK: loom.arange -4 to 4 : tensor<8xi32>
func.func @arange_negative_start() -> tensor<8xi32> {
  %0 = loom.arange -4 to 4 : tensor<8xi32>
  return %0 : tensor<8xi32>
}

// -----

func.func @expand_dims_axis_negative(%r: tensor<64xf32>) {
  // expected-error @+1 {{'loom.expand_dims' op axis -1 out of range for a tile of rank 1}}
  %0 = loom.expand_dims %r, -1 : tensor<64xf32> -> tensor<64x1xf32>
  return
}

// -----

func.func @reduce_axis_negative(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'loom.reduce' op axis -1 out of range for a tile of rank 2}}
  %0 = loom.reduce sum %s, -1 : tensor<4x8xf32> -> tensor<4xf32>
  return
}
