// RUN: loom-opt %s --loom-assign-layouts="num-threads=128" --convert-loom-to-emitc="num-threads=128" | FileCheck %s

// trans is a library call through the shared scratch, sized for the tile
// it moves (32x16 f32: 2048 bytes). Its result may take any layout, so the
// store's blocked one needs no convert_layout after it.

// CHECK: module attributes {loom.num_threads = 128 : i32, loom.shared_bytes = 2048 : i64}
// CHECK: call_opaque "loom::tile::transpose"({{.*}}) {template_args = [#emitc.opaque<"loom::tile::Tile<float, loom::tile::Shape<16, 32>>">]}
// CHECK-NOT: convert_layout
// CHECK: call_opaque "loom::tile::store"
func.func @k(%a: !loom.ptr<f32>, %c: !loom.ptr<f32>) attributes {loom.kernel, loom.arg_names = ["a", "c"]} {
  %r = loom.arange 0 to 32 : tensor<32xi32>
  %r2 = loom.expand_dims %r, 1 : tensor<32xi32> -> tensor<32x1xi32>
  %offs = loom.broadcast %r2 : tensor<32x1xi32> -> tensor<32x16xi32>
  %x = loom.load %a[%offs] : !loom.ptr<f32>, tensor<32x16xi32> -> tensor<32x16xf32>
  %t = loom.trans %x : tensor<32x16xf32> -> tensor<16x32xf32>
  %r16 = loom.arange 0 to 16 : tensor<16xi32>
  %r16e = loom.expand_dims %r16, 1 : tensor<16xi32> -> tensor<16x1xi32>
  %o = loom.broadcast %r16e : tensor<16x1xi32> -> tensor<16x32xi32>
  loom.store %t, %c[%o] : tensor<16x32xf32>, !loom.ptr<f32>, tensor<16x32xi32>
  return
}
