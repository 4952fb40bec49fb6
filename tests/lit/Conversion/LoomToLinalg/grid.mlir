// RUN: loom-opt %s --convert-loom-to-linalg | FileCheck %s

// Every loom.kernel gets six trailing i32 arguments (program ids for axes
// 0..2, then program counts for axes 0..2), named in loom.arg_names; the grid
// queries become those arguments.

// CHECK-LABEL: func.func @grid
// CHECK-SAME: (%{{[^:]+}}: memref<?xf32>, %{{[^:]+}}: i32, %[[PID0:[^:]*]]: i32, %[[PID1:[^:]*]]: i32, %[[PID2:[^:]*]]: i32, %[[NP0:[^:]*]]: i32, %[[NP1:[^:]*]]: i32, %[[NP2:[^:]*]]: i32)
// CHECK-SAME: loom.arg_names = ["x", "n", "pid0", "pid1", "pid2", "nprog0", "nprog1", "nprog2"]
// CHECK-NOT: loom.program_id
// CHECK-NOT: loom.num_programs
// CHECK: return %[[PID0]], %[[PID1]], %[[PID2]], %[[NP0]], %[[NP1]], %[[NP2]] : i32, i32, i32, i32, i32, i32
func.func @grid(%x: !loom.ptr<f32>, %n: i32) -> (i32, i32, i32, i32, i32, i32)
    attributes {loom.kernel, loom.arg_names = ["x", "n"]} {
  %0 = loom.program_id 0 : i32
  %1 = loom.program_id 1 : i32
  %2 = loom.program_id 2 : i32
  %3 = loom.num_programs 0 : i32
  %4 = loom.num_programs 1 : i32
  %5 = loom.num_programs 2 : i32
  return %0, %1, %2, %3, %4, %5 : i32, i32, i32, i32, i32, i32
}

// Grid arguments are appended even when the kernel never queries the grid.
// CHECK-LABEL: func.func @no_queries
// CHECK-SAME: (%{{[^:]+}}: f32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32)
// CHECK-SAME: loom.arg_names = ["s", "pid0", "pid1", "pid2", "nprog0", "nprog1", "nprog2"]
func.func @no_queries(%s: f32) attributes {loom.kernel, loom.arg_names = ["s"]} {
  return
}

// A program id feeds arithmetic as a plain i32 argument.
// CHECK-LABEL: func.func @row_offset
// CHECK-SAME: (%{{[^:]+}}: memref<?xf32>, %[[STRIDE:[^:]*]]: i32, %[[PID0:[^:]*]]: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32)
// CHECK: arith.muli %[[PID0]], %[[STRIDE]] : i32
func.func @row_offset(%x: !loom.ptr<f32>, %stride: i32) -> i32
    attributes {loom.kernel, loom.arg_names = ["x", "stride"]} {
  %row = loom.program_id 0 : i32
  %base = arith.muli %row, %stride : i32
  return %base : i32
}

// Functions that are not kernels keep their signature.
// CHECK-LABEL: func.func @not_a_kernel
// CHECK-SAME: (%{{[^:]+}}: i32) -> i32 {
func.func @not_a_kernel(%a: i32) -> i32 {
  return %a : i32
}
