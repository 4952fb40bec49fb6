// RUN: loom-opt %s -split-input-file --convert-loom-to-emitc="num-threads=128" | FileCheck %s

// Pipeline ops become pipeline.h calls; a buffer is named by its slot type,
// byte offset and slot count (template arguments). The scratch starts after
// the pipeline buffers (shared_scratch<4096>: 2 slots of 2048 bytes), and
// the shared bytes are both together: 4096 + the dot's 2048 (its A operand,
// staged; B is read in place from the slot and the accumulator stays in mma
// fragments).

// CHECK: module attributes {loom.num_threads = 128 : i32, loom.shared_bytes = 6144 : i64}
// CHECK: call_opaque "loom::tile::shared_scratch"() {template_args = [4096]}
// CHECK: call_opaque "loom::tile::async_copy"(%[[S:[^,]*]], %{{.*}}) {template_args = [#emitc.opaque<"loom::tile::SharedBlock<loom::tile::bf16_t, loom::tile::Shape<32, 32>, false>">, 0, 2]}
// CHECK: call_opaque "loom::tile::async_commit"()
// CHECK: call_opaque "loom::tile::async_wait"() {template_args = [1]}
// CHECK: %[[V:.*]] = call_opaque "loom::tile::shared_slot"(%[[S]]) {template_args = [#emitc.opaque<"loom::tile::SharedBlock<loom::tile::bf16_t, loom::tile::Shape<32, 32>, false>">, 0, 2]} : (i32) -> !emitc.opaque<"loom::tile::SharedBlock<loom::tile::bf16_t, loom::tile::Shape<32, 32>, false>">
// CHECK: call_opaque "loom::tile::dot"(%{{.*}}, %[[V]], %{{.*}}, %{{.*}})
// CHECK-NOT: unrealized_conversion_cast
func.func @k(%p: !loom.ptr<bf16>, %base: i64, %ld: i64, %n: i32, %s: i32, %z: bf16, %x: tensor<32x32xbf16>, %c: !loom.ptr<f32>) attributes {loom.kernel, loom.pipeline_bytes = 4096 : i64, loom.arg_names = ["p", "base", "ld", "n", "s", "z", "x", "c"]} {
  %c1 = arith.constant 1 : i64
  %c32 = arith.constant 32 : i32
  loom.async_copy %p[%base] strides[%ld, %c1] bounds[%n, %c32] other %z, slot %s {offset = 0 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<32x32xbf16>
  loom.async_commit
  loom.async_wait 1
  %y = loom.shared_slot %s {offset = 0 : i64, slots = 2 : i64} : tensor<32x32xbf16>
  %zf = arith.constant 0.0 : f32
  %acc = loom.splat %zf : tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>>
  %d = loom.dot %x, %y, %acc : tensor<32x32xbf16>, tensor<32x32xbf16> -> tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>>
  return
}

// -----

// Without (or with a stale) loom.pipeline_bytes the scratch still starts
// after the last buffer the pipeline ops name: 2048 + 2 x 1024.

// CHECK: module attributes {loom.num_threads = 128 : i32, loom.shared_bytes = 6144 : i64}
// CHECK: call_opaque "loom::tile::shared_scratch"() {template_args = [4096]}
func.func @stale(%p: !loom.ptr<bf16>, %base: i64, %ld: i64, %n: i32, %s: i32, %z: bf16, %x: tensor<32x32xbf16>) attributes {loom.kernel, loom.pipeline_bytes = 16 : i64, loom.arg_names = ["p", "base", "ld", "n", "s", "z", "x"]} {
  %c1 = arith.constant 1 : i64
  %c32 = arith.constant 32 : i32
  loom.async_copy %p[%base] strides[%ld, %c1] bounds[%n, %c32] other %z, slot %s {offset = 2048 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<32x16xbf16>
  loom.async_commit
  loom.async_wait 0
  %y = loom.shared_slot %s {offset = 2048 : i64, slots = 2 : i64} : tensor<32x16xbf16>
  %zf = arith.constant 0.0 : f32
  %acc = loom.splat %zf : tensor<32x16xf32, #loom.mma<warpsM = 2, warpsN = 2>>
  %d = loom.dot %x, %y, %acc : tensor<32x32xbf16>, tensor<32x16xbf16> -> tensor<32x16xf32, #loom.mma<warpsM = 2, warpsN = 2>>
  return
}
