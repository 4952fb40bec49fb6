// RUN: loom-opt %s -split-input-file --loom-specialize="bind=n_cols=1000,stride=-7,numel=0x10000000000,scale=0.125,eps=1.5" | FileCheck %s

// loom-specialize replaces every use of a bound scalar argument by an
// arith.constant, keeps the argument in the signature and records the bound
// values in `loom.specialized`.

// CHECK-LABEL: func.func @bind_scalars
// CHECK-SAME: (%[[X:[^:]*]]: !loom.ptr<f32>, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i64, %{{[^:]+}}: f32, %{{[^:]+}}: f16, %[[FREE:[^:]*]]: i32)
// CHECK-SAME: loom.specialized = {eps = 1.500000e+00 : f16, n_cols = 1000 : i32, numel = 1099511627776 : i64, scale = 1.250000e-01 : f32, stride = -7 : i32}
// CHECK-DAG: %[[N:.*]] = arith.constant 1000 : i32
// CHECK-DAG: %[[S:.*]] = arith.constant -7 : i32
// CHECK-DAG: %[[NUMEL:.*]] = arith.constant 1099511627776 : i64
// CHECK-DAG: %[[SCALE:.*]] = arith.constant 1.250000e-01 : f32
// CHECK-DAG: %[[EPS:.*]] = arith.constant 1.500000e+00 : f16
// CHECK: %[[ROW:.*]] = arith.muli %[[FREE]], %[[S]] : i32
// CHECK: arith.addi %[[ROW]], %[[N]] : i32
// CHECK: return %{{.*}}, %[[NUMEL]], %[[SCALE]], %[[EPS]] : i32, i64, f32, f16
func.func @bind_scalars(%x: !loom.ptr<f32>, %n: i32, %stride: i32, %numel: i64,
                        %scale: f32, %eps: f16, %row: i32) -> (i32, i64, f32, f16)
    attributes {loom.kernel,
                loom.arg_names = ["x", "n_cols", "stride", "numel", "scale", "eps", "row"]} {
  %base = arith.muli %row, %stride : i32
  %end = arith.addi %base, %n : i32
  return %end, %numel, %scale, %eps : i32, i64, f32, f16
}

// -----

// Values already recorded in `loom.specialized` are kept alongside the new ones.

// CHECK-LABEL: func.func @merge_prior
// CHECK-SAME: loom.specialized = {block = 64 : i32, eps = 1.500000e+00 : f16, n_cols = 1000 : i32, numel = 1099511627776 : i64, scale = 1.250000e-01 : f32, stride = -7 : i32}
func.func @merge_prior(%n: i32, %stride: i32, %numel: i64, %scale: f32, %eps: f16)
    attributes {loom.kernel, loom.specialized = {block = 64 : i32},
                loom.arg_names = ["n_cols", "stride", "numel", "scale", "eps"]} {
  return
}

// -----

// Functions without `loom.kernel` are left alone.

// CHECK-LABEL: func.func @not_a_kernel
// CHECK-SAME: (%[[N:[^:]*]]: i32) -> i32 {
// CHECK-NOT: loom.specialized
// CHECK-NOT: arith.constant
// CHECK: return %[[N]] : i32
func.func @not_a_kernel(%n: i32) -> i32 {
  return %n : i32
}
