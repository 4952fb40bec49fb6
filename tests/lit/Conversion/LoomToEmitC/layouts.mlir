// RUN: loom-opt %s --loom-assign-layouts="num-threads=128" --convert-loom-to-emitc="num-threads=128" | FileCheck %s

// Layouts become the Tile's third template argument (blocked is the
// default and stays unspelled); convert_layout is a library call with the
// shared scratch, sized for the tile it moves (4096 bytes, as the dot
// into #loom.mma fragments stages only its two 2048-byte operands).

// CHECK: module attributes {loom.num_threads = 128 : i32, loom.shared_bytes = 4096 : i64}
// CHECK: for %{{.*}} = 
// CHECK: call_opaque "loom::tile::dot"({{.*}}) {template_args = [#emitc.opaque<"loom::tile::Tile<float, loom::tile::Shape<32, 32>, loom::tile::Mma<2, 2>>">]}
// CHECK: call_opaque "loom::tile::reduce_max"({{.*}}) {template_args = [#emitc.opaque<"loom::tile::Tile<float, loom::tile::Shape<32>, loom::tile::MmaRows<2, 2>>">, 1 : i32]}
// CHECK: call_opaque "loom::tile::convert_layout"({{.*}}) {template_args = [#emitc.opaque<"loom::tile::Tile<float, loom::tile::Shape<32, 32>>">]}
// CHECK: call_opaque "loom::tile::store"
func.func @k(%a: !loom.ptr<bf16>, %c: !loom.ptr<f32>, %n: i32) attributes {loom.kernel, loom.arg_names = ["a", "c", "n"]} {
  %r = loom.arange 0 to 32 : tensor<32xi32>
  %r2 = loom.expand_dims %r, 1 : tensor<32xi32> -> tensor<32x1xi32>
  %offs = loom.broadcast %r2 : tensor<32x1xi32> -> tensor<32x32xi32>
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<32x32xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %acc = scf.for %i = %c0 to %n step %c1 iter_args(%carried = %zero) -> (tensor<32x32xf32>) : i32 {
    %x = loom.load %a[%offs] : !loom.ptr<bf16>, tensor<32x32xi32> -> tensor<32x32xbf16>
    %d = loom.dot %x, %x, %carried : tensor<32x32xbf16>, tensor<32x32xbf16> -> tensor<32x32xf32>
    scf.yield %d : tensor<32x32xf32>
  }
  %m = loom.reduce max %acc, 1 : tensor<32x32xf32> -> tensor<32xf32>
  %m2 = loom.expand_dims %m, 1 : tensor<32xf32> -> tensor<32x1xf32>
  %mb = loom.broadcast %m2 : tensor<32x1xf32> -> tensor<32x32xf32>
  %s = arith.subf %acc, %mb : tensor<32x32xf32>
  loom.store %s, %c[%offs] : tensor<32x32xf32>, !loom.ptr<f32>, tensor<32x32xi32>
  return
}
