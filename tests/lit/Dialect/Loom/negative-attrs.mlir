// RUN: loom-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// KNOWN BUG: the verifiers read the I32Attr operands `start`, `end` and `axis`
// through the ODS getters, which return uint32_t, so negative values wrap to
// 2^32 - n. `loom.arange -4 to 4` (a valid 8-element tile) is rejected with
// "requires end > start, got start 4294967292 and end 4", and a negative axis
// is reported as "axis 4294967295". Remove the XFAIL once the verifiers use
// the signed value (getStartAttr().getInt() / getAxisAttr().getInt()).
// XFAIL: *

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
