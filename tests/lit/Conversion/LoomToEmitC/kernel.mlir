// RUN: loom-opt %s --convert-loom-to-emitc="num-threads=64" | FileCheck %s

// A kernel becomes an extern "C" __global__ emitc.func, launch bounds set to
// the block size, whose first op fetches
// the shared scratch; every loom and elementwise op becomes a call into the
// device tile library; the module records the scratch size and block size.

// CHECK: module attributes {loom.num_threads = 64 : i32, loom.shared_bytes = 2048 : i64}
// CHECK: emitc.verbatim "#define LOOM_NUM_THREADS 64"
// CHECK: emitc.include "loom/device/tile.h"
// CHECK: emitc.func @k(%[[X:.*]]: !emitc.ptr<!emitc.opaque<"loom::tile::half_t">>, %[[C:.*]]: !emitc.ptr<f32>, %[[N:.*]]: i32)
// CHECK-SAME: specifiers = ["extern \22C\22 __global__ __launch_bounds__(64, 1)"]
// CHECK: %[[SMEM:.*]] = call_opaque "loom::tile::shared_scratch"()
// CHECK: call_opaque "loom::tile::program_id"() {template_args = [1 : i32]}
// CHECK: call_opaque "loom::tile::arange"() {template_args = [#emitc.opaque<"loom::tile::Tile<int32_t, loom::tile::Shape<16>>">, 0 : i32]}
// CHECK: call_opaque "loom::tile::reshape"
// CHECK: call_opaque "loom::tile::broadcast"({{.*}}, %[[SMEM]])
// CHECK: call_opaque "loom::tile::load"(%[[X]],
// CHECK: call_opaque "loom::tile::dot"({{.*}}, %[[SMEM]]) {template_args = [#emitc.opaque<"loom::tile::Tile<float, loom::tile::Shape<16, 16>>">]}
// CHECK: call_opaque "loom::tile::reduce_max"({{.*}}, %[[SMEM]]) {template_args = [#emitc.opaque<"loom::tile::Tile<float, loom::tile::Shape<16>>">, 1 : i32]}
// CHECK: literal "loom::device::u32_as_f32(0xff800000u)" : f32
// CHECK: call_opaque "loom::tile::cmp_lt"
// CHECK: call_opaque "loom::tile::cast"({{.*}}) {template_args = [#emitc.opaque<"float">]}
// CHECK: call_opaque "loom::tile::store"(%[[C]],
// CHECK: emitc.verbatim "#ifdef LOOM_DEVICE_EMULATION{{.*}}extern \22C\22 void k_packed(void **args)
func.func @k(%x: !loom.ptr<f16>, %c: !loom.ptr<f32>, %n: i32) attributes {loom.kernel, loom.arg_names = ["x", "c", "n"]} {
  %pid = loom.program_id 1 : i32
  %r = loom.arange 0 to 16 : tensor<16xi32>
  %r2 = loom.expand_dims %r, 1 : tensor<16xi32> -> tensor<16x1xi32>
  %rb = loom.broadcast %r2 : tensor<16x1xi32> -> tensor<16x16xi32>
  %a = loom.load %x[%rb] : !loom.ptr<f16>, tensor<16x16xi32> -> tensor<16x16xf16>
  %z = arith.constant 0.0 : f32
  %acc = loom.splat %z : tensor<16x16xf32>
  %d = loom.dot %a, %a, %acc : tensor<16x16xf16>, tensor<16x16xf16> -> tensor<16x16xf32>
  %m = loom.reduce max %d, 1 : tensor<16x16xf32> -> tensor<16xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %nt = loom.splat %ninf : tensor<16xf32>
  %lt = arith.cmpf olt, %nt, %m : tensor<16xf32>
  %f = arith.uitofp %lt : tensor<16xi1> to tensor<16xf32>
  %s = arith.addf %m, %f : tensor<16xf32>
  loom.store %s, %c[%r] : tensor<16xf32>, !loom.ptr<f32>, tensor<16xi32>
  return
}
