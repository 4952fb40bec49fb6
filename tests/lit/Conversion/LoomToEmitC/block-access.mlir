// RUN: loom-opt %s -split-input-file --convert-loom-to-emitc="num-threads=64" | FileCheck %s

// Block loads and stores become calls with their scalars in a fixed order:
// pointer, other (loads) or value (stores), base, strides, bounds.

// CHECK: emitc.func @blocks(%[[P:.*]]: !emitc.ptr<!emitc.opaque<"loom::tile::bf16_t">>, %[[Q:.*]]: !emitc.ptr<!emitc.opaque<"loom::tile::bf16_t">>, %[[B:.*]]: i64, %[[LD:.*]]: i64, %[[N:.*]]: i32, %[[Z:.*]]: !emitc.opaque<"loom::tile::bf16_t">)
// CHECK: %[[X:.*]] = call_opaque "loom::tile::block_load"(%[[P]], %[[Z]], %[[B]], %[[LD]], %[[ONE:.*]], %[[N]], %[[C64:.*]]) {template_args = [#emitc.opaque<"loom::tile::Tile<loom::tile::bf16_t, loom::tile::Shape<16, 64>>">]}
// CHECK: call_opaque "loom::tile::block_store"(%[[Q]], %[[X]], %[[B]], %[[LD]], %[[ONE]], %[[N]], %[[C64]])
func.func @blocks(%p: !loom.ptr<bf16>, %q: !loom.ptr<bf16>, %base: i64, %ld: i64, %n: i32, %z: bf16) attributes {loom.kernel, loom.arg_names = ["p", "q", "base", "ld", "n", "z"]} {
  %c1 = arith.constant 1 : i64
  %c64 = arith.constant 64 : i32
  %x = loom.block_load %p[%base] strides[%ld, %c1] bounds[%n, %c64] other %z : !loom.ptr<bf16> -> tensor<16x64xbf16>
  loom.block_store %x, %q[%base] strides[%ld, %c1] bounds[%n, %c64] : tensor<16x64xbf16>, !loom.ptr<bf16>
  return
}

// -----

// A deferred block load becomes a GlobalBlock view that the dot takes in
// place of the tile; a column_major one, a column-major view.

// CHECK-LABEL: emitc.func @deferred
// CHECK: %[[V:.*]] = call_opaque "loom::tile::block_view"(%{{.*}}) {template_args = [#emitc.opaque<"loom::tile::GlobalBlock<loom::tile::bf16_t, loom::tile::Shape<16, 16>, false>">]} : ({{.*}}) -> !emitc.opaque<"loom::tile::GlobalBlock<loom::tile::bf16_t, loom::tile::Shape<16, 16>, false>">
// CHECK: call_opaque "loom::tile::dot"(%[[V]], %[[V2:.*]], %{{.*}}, %{{.*}})
// CHECK: %[[VT:.*]] = call_opaque "loom::tile::block_view"(%{{.*}}) {template_args = [#emitc.opaque<"loom::tile::GlobalBlock<loom::tile::bf16_t, loom::tile::Shape<16, 16>, true>">]} : ({{.*}}) -> !emitc.opaque<"loom::tile::GlobalBlock<loom::tile::bf16_t, loom::tile::Shape<16, 16>, true>">
// CHECK: call_opaque "loom::tile::dot"(%[[V2]], %[[VT]], %{{.*}}, %{{.*}})
// CHECK-NOT: unrealized_conversion_cast
func.func @deferred(%p: !loom.ptr<bf16>, %base: i64, %ld: i64, %n: i32, %z: bf16, %c: !loom.ptr<f32>) attributes {loom.kernel, loom.arg_names = ["p", "base", "ld", "n", "z", "c"]} {
  %c1 = arith.constant 1 : i64
  %c16 = arith.constant 16 : i32
  %x = loom.block_load %p[%base] strides[%c1, %c1] bounds[%n, %c16] other %z deferred : !loom.ptr<bf16> -> tensor<16x16xbf16>
  %y = loom.block_load %p[%base] strides[%c1, %c1] bounds[%n, %c16] other %z : !loom.ptr<bf16> -> tensor<16x16xbf16>
  %zf = arith.constant 0.0 : f32
  %acc = loom.splat %zf : tensor<16x16xf32>
  %d = loom.dot %x, %y, %acc : tensor<16x16xbf16>, tensor<16x16xbf16> -> tensor<16x16xf32>
  %t = loom.block_load %p[%base] strides[%c1, %ld] bounds[%c16, %n] other %z deferred column_major : !loom.ptr<bf16> -> tensor<16x16xbf16>
  %e = loom.dot %y, %t, %d : tensor<16x16xbf16>, tensor<16x16xbf16> -> tensor<16x16xf32>
  loom.block_store %e, %c[%base] strides[%c1, %c1] bounds[%n, %c16] : tensor<16x16xf32>, !loom.ptr<f32>
  return
}
