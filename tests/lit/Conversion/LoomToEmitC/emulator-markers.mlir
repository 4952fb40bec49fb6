// RUN: loom-opt %s --convert-loom-to-emitc="num-threads=128" | FileCheck %s

// Markers for the emulated device (nothing on the GPU, see tile/core.h):
// LOOM_SITE(id) before each tile-library op, numbered per kernel in program
// order, so that the emulator tells the barriers and mmas of two dots apart;
// LOOM_LOOP_ITER(id) at the top of each loop body and LOOM_LOOP_END(id)
// after the loop, for the per-iteration counters.

// CHECK: verbatim "LOOM_SITE(1);"
// CHECK: call_opaque "loom::tile::splat"
// CHECK: for %{{.*}} =
// CHECK: verbatim "LOOM_LOOP_ITER(1);"
// CHECK: verbatim "LOOM_SITE(2);"
// CHECK-NEXT: call_opaque "loom::tile::dot"
// CHECK: verbatim "LOOM_SITE(3);"
// CHECK-NEXT: call_opaque "loom::tile::dot"
// CHECK: verbatim "LOOM_LOOP_END(1);"
// CHECK-NOT: LOOM_LOOP_ITER
func.func @k(%x: tensor<32x32xbf16>, %n: i32) attributes {loom.kernel, loom.arg_names = ["x", "n"]} {
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<32x32xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %acc = scf.for %i = %c0 to %n step %c1 iter_args(%carried = %zero) -> (tensor<32x32xf32>) : i32 {
    %d = loom.dot %x, %x, %carried : tensor<32x32xbf16>, tensor<32x32xbf16> -> tensor<32x32xf32>
    %e = loom.dot %x, %x, %d : tensor<32x32xbf16>, tensor<32x32xbf16> -> tensor<32x32xf32>
    scf.yield %e : tensor<32x32xf32>
  }
  return
}
