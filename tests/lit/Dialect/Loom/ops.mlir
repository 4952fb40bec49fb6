// RUN: loom-opt %s | loom-opt | FileCheck %s
// RUN: loom-opt %s --mlir-print-op-generic | loom-opt | FileCheck %s
// RUN: loom-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// Every loom op and the !loom.ptr type round-trip through the custom
// assembly format and through the generic form.

// CHECK-LABEL: func.func @grid
// CHECK-SAME: attributes {loom.arg_names = [], loom.kernel}
// CHECK: %{{.*}} = loom.program_id 0 : i32
// CHECK: %{{.*}} = loom.program_id 2 : i32
// CHECK: %{{.*}} = loom.num_programs 1 : i32
// GENERIC-LABEL: sym_name = "grid"
// GENERIC: "loom.program_id"() <{axis = 0 : i32}> : () -> i32
// GENERIC: "loom.program_id"() <{axis = 2 : i32}> : () -> i32
// GENERIC: "loom.num_programs"() <{axis = 1 : i32}> : () -> i32
func.func @grid() -> (i32, i32, i32) attributes {loom.kernel, loom.arg_names = []} {
  %0 = loom.program_id 0 : i32
  %1 = loom.program_id 2 : i32
  %2 = loom.num_programs 1 : i32
  return %0, %1, %2 : i32, i32, i32
}

// CHECK-LABEL: func.func @ptr_types
// CHECK-SAME: %{{[^:]+}}: !loom.ptr<f32>, %{{[^:]+}}: !loom.ptr<f16>, %{{[^:]+}}: !loom.ptr<bf16>
// CHECK-SAME: %{{[^:]+}}: !loom.ptr<i32>, %{{[^:]+}}: !loom.ptr<i64>, %{{[^:]+}}: !loom.ptr<i1>
// GENERIC-LABEL: function_type = (!loom.ptr<f32>, !loom.ptr<f16>, !loom.ptr<bf16>, !loom.ptr<i32>, !loom.ptr<i64>, !loom.ptr<i1>) -> (), sym_name = "ptr_types"
func.func @ptr_types(%a: !loom.ptr<f32>, %b: !loom.ptr<f16>, %c: !loom.ptr<bf16>,
                     %d: !loom.ptr<i32>, %e: !loom.ptr<i64>, %f: !loom.ptr<i1>) {
  return
}

// CHECK-LABEL: func.func @shapes
// CHECK: %[[R:.*]] = loom.arange 0 to 64 : tensor<64xi32>
// CHECK: loom.arange 16 to 48 : tensor<32xi32>
// CHECK: %[[S:.*]] = loom.splat %{{.*}} : tensor<64x32xf32>
// CHECK: loom.splat %{{.*}} : tensor<8xi1>
// CHECK: %[[C:.*]] = loom.expand_dims %[[R]], 1 : tensor<64xi32> -> tensor<64x1xi32>
// CHECK: loom.expand_dims %[[R]], 0 : tensor<64xi32> -> tensor<1x64xi32>
// CHECK: loom.expand_dims %{{.*}}, 0 : tensor<f32> -> tensor<1xf32>
// CHECK: loom.broadcast %[[C]] : tensor<64x1xi32> -> tensor<64x32xi32>
// CHECK: loom.broadcast %{{.*}} : tensor<1x64xi32> -> tensor<16x64xi32>
// CHECK: loom.trans %[[CB:.*]] : tensor<64x32xi32> -> tensor<32x64xi32>
// GENERIC-LABEL: sym_name = "shapes"
// GENERIC: "loom.arange"() <{end = 64 : i32, start = 0 : i32}> : () -> tensor<64xi32>
// GENERIC: "loom.splat"(%{{.*}}) : (f32) -> tensor<64x32xf32>
// GENERIC: "loom.expand_dims"(%{{.*}}) <{axis = 1 : i32}> : (tensor<64xi32>) -> tensor<64x1xi32>
// GENERIC: "loom.broadcast"(%{{.*}}) : (tensor<64x1xi32>) -> tensor<64x32xi32>
// GENERIC: "loom.trans"(%{{.*}}) : (tensor<64x32xi32>) -> tensor<32x64xi32>
func.func @shapes(%x: f32, %b: i1, %z: tensor<f32>)
    -> (tensor<32xi32>, tensor<64x32xf32>, tensor<8xi1>, tensor<1xf32>,
        tensor<64x32xi32>, tensor<16x64xi32>, tensor<32x64xi32>) {
  %r = loom.arange 0 to 64 : tensor<64xi32>
  %r2 = loom.arange 16 to 48 : tensor<32xi32>
  %s = loom.splat %x : tensor<64x32xf32>
  %m = loom.splat %b : tensor<8xi1>
  %c = loom.expand_dims %r, 1 : tensor<64xi32> -> tensor<64x1xi32>
  %row = loom.expand_dims %r, 0 : tensor<64xi32> -> tensor<1x64xi32>
  %z1 = loom.expand_dims %z, 0 : tensor<f32> -> tensor<1xf32>
  %cb = loom.broadcast %c : tensor<64x1xi32> -> tensor<64x32xi32>
  %rb = loom.broadcast %row : tensor<1x64xi32> -> tensor<16x64xi32>
  %t = loom.trans %cb : tensor<64x32xi32> -> tensor<32x64xi32>
  return %r2, %s, %m, %z1, %cb, %rb, %t
      : tensor<32xi32>, tensor<64x32xf32>, tensor<8xi1>, tensor<1xf32>,
        tensor<64x32xi32>, tensor<16x64xi32>, tensor<32x64xi32>
}

// CHECK-LABEL: func.func @memory
// CHECK-SAME: (%[[X:[^:]*]]: !loom.ptr<f32>, %[[Y:[^:]*]]: !loom.ptr<f16>, %[[O:[^:]*]]: tensor<128xi32>, %[[O64:[^:]*]]: tensor<4x8xi64>, %[[M:[^:]*]]: tensor<128xi1>, %[[D:[^:]*]]: tensor<128xf32>)
// CHECK: %[[V0:.*]] = loom.load %[[X]][%[[O]]] : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
// CHECK: loom.load %[[X]][%[[O]]] mask %[[M]] : tensor<128xi1> : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
// CHECK: loom.load %[[X]][%[[O]]] mask %[[M]] : tensor<128xi1> other %[[D]] : tensor<128xf32> : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
// CHECK: loom.load %[[Y]][%[[O64]]] : !loom.ptr<f16>, tensor<4x8xi64> -> tensor<4x8xf16>
// CHECK: loom.store %[[V0]], %[[X]][%[[O]]] : tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>
// CHECK: loom.store %[[V0]], %[[X]][%[[O]]] mask %[[M]] : tensor<128xi1> : tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>
// CHECK: loom.store %{{.*}}, %[[Y]][%[[O64]]] : tensor<4x8xf16>, !loom.ptr<f16>, tensor<4x8xi64>
// GENERIC-LABEL: sym_name = "memory"
// GENERIC: "loom.load"(%{{.*}}, %{{.*}}) <{operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (!loom.ptr<f32>, tensor<128xi32>) -> tensor<128xf32>
// GENERIC: "loom.load"(%{{.*}}, %{{.*}}, %{{.*}}) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}>
// GENERIC: "loom.load"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{operandSegmentSizes = array<i32: 1, 1, 1, 1>}> : (!loom.ptr<f32>, tensor<128xi32>, tensor<128xi1>, tensor<128xf32>) -> tensor<128xf32>
// GENERIC: "loom.store"(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>) -> ()
// GENERIC: "loom.store"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>, tensor<128xi1>) -> ()
func.func @memory(%x: !loom.ptr<f32>, %y: !loom.ptr<f16>, %offs: tensor<128xi32>,
                  %offs64: tensor<4x8xi64>, %m: tensor<128xi1>, %d: tensor<128xf32>) {
  %v0 = loom.load %x[%offs] : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  %v1 = loom.load %x[%offs] mask %m : tensor<128xi1> : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  %v2 = loom.load %x[%offs] mask %m : tensor<128xi1> other %d : tensor<128xf32>
      : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  %h = loom.load %y[%offs64] : !loom.ptr<f16>, tensor<4x8xi64> -> tensor<4x8xf16>
  loom.store %v0, %x[%offs] : tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>
  loom.store %v0, %x[%offs] mask %m : tensor<128xi1> : tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>
  loom.store %h, %y[%offs64] : tensor<4x8xf16>, !loom.ptr<f16>, tensor<4x8xi64>
  return
}

// CHECK-LABEL: func.func @dots
// CHECK: loom.dot %{{.*}}, %{{.*}}, %{{.*}} : tensor<64x32xf16>, tensor<32x16xf16> -> tensor<64x16xf32>
// CHECK: loom.dot %{{.*}}, %{{.*}}, %{{.*}} : tensor<64x32xbf16>, tensor<32x16xbf16> -> tensor<64x16xf32>
// CHECK: loom.dot %{{.*}}, %{{.*}}, %{{.*}} : tensor<64x32xf32>, tensor<32x16xf32> -> tensor<64x16xf32>
// GENERIC-LABEL: sym_name = "dots"
// GENERIC: "loom.dot"(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<64x32xf16>, tensor<32x16xf16>, tensor<64x16xf32>) -> tensor<64x16xf32>
func.func @dots(%ah: tensor<64x32xf16>, %bh: tensor<32x16xf16>,
                %ab: tensor<64x32xbf16>, %bb: tensor<32x16xbf16>,
                %af: tensor<64x32xf32>, %bf: tensor<32x16xf32>,
                %acc: tensor<64x16xf32>) -> tensor<64x16xf32> {
  %0 = loom.dot %ah, %bh, %acc : tensor<64x32xf16>, tensor<32x16xf16> -> tensor<64x16xf32>
  %1 = loom.dot %ab, %bb, %0 : tensor<64x32xbf16>, tensor<32x16xbf16> -> tensor<64x16xf32>
  %2 = loom.dot %af, %bf, %1 : tensor<64x32xf32>, tensor<32x16xf32> -> tensor<64x16xf32>
  return %2 : tensor<64x16xf32>
}

// CHECK-LABEL: func.func @reductions
// CHECK: loom.reduce sum %{{.*}}, 1 : tensor<64x128xf32> -> tensor<64xf32>
// CHECK: loom.reduce max %{{.*}}, 0 : tensor<64x128xf32> -> tensor<128xf32>
// CHECK: loom.reduce min %{{.*}}, 0 : tensor<16xi32> -> tensor<i32>
// GENERIC-LABEL: sym_name = "reductions"
// GENERIC: "loom.reduce"(%{{.*}}) <{axis = 1 : i32, kind = 0 : i32}> : (tensor<64x128xf32>) -> tensor<64xf32>
// GENERIC: "loom.reduce"(%{{.*}}) <{axis = 0 : i32, kind = 1 : i32}> : (tensor<64x128xf32>) -> tensor<128xf32>
// GENERIC: "loom.reduce"(%{{.*}}) <{axis = 0 : i32, kind = 2 : i32}> : (tensor<16xi32>) -> tensor<i32>
func.func @reductions(%s: tensor<64x128xf32>, %i: tensor<16xi32>)
    -> (tensor<64xf32>, tensor<128xf32>, tensor<i32>) {
  %0 = loom.reduce sum %s, 1 : tensor<64x128xf32> -> tensor<64xf32>
  %1 = loom.reduce max %s, 0 : tensor<64x128xf32> -> tensor<128xf32>
  %2 = loom.reduce min %i, 0 : tensor<16xi32> -> tensor<i32>
  return %0, %1, %2 : tensor<64xf32>, tensor<128xf32>, tensor<i32>
}

// CHECK-LABEL: func.func @blocks
// CHECK: %[[X:.*]] = loom.block_load %{{.*}}[%{{.*}}] strides[%{{.*}}, %{{.*}}] bounds[%{{.*}}, %{{.*}}] other %{{.*}} : !loom.ptr<bf16> -> tensor<16x64xbf16>
// CHECK: loom.block_store %[[X]], %{{.*}}[%{{.*}}] strides[%{{.*}}, %{{.*}}] bounds[%{{.*}}, %{{.*}}] : tensor<16x64xbf16>, !loom.ptr<bf16>
// CHECK: %[[Y:.*]] = loom.block_load %{{.*}}[%{{.*}}] strides[%{{.*}}, %{{.*}}] bounds[%{{.*}}, %{{.*}}] other %{{.*}} deferred column_major : !loom.ptr<bf16> -> tensor<64x16xbf16>
// CHECK: loom.dot %[[X]], %[[Y]], %{{.*}}
// GENERIC-LABEL: sym_name = "blocks"
// GENERIC: "loom.block_load"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{operandSegmentSizes = array<i32: 1, 1, 2, 2, 1>}> : (!loom.ptr<bf16>, i64, i64, i64, i32, i32, bf16) -> tensor<16x64xbf16>
// GENERIC: "loom.block_load"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{column_major, deferred, operandSegmentSizes = array<i32: 1, 1, 2, 2, 1>}> : (!loom.ptr<bf16>, i64, i64, i64, i32, i32, bf16) -> tensor<64x16xbf16>
func.func @blocks(%p: !loom.ptr<bf16>, %base: i64, %ld: i64, %n: i32, %z: bf16) {
  %c1 = arith.constant 1 : i64
  %c64 = arith.constant 64 : i32
  %x = loom.block_load %p[%base] strides[%ld, %c1] bounds[%n, %c64] other %z : !loom.ptr<bf16> -> tensor<16x64xbf16>
  loom.block_store %x, %p[%base] strides[%ld, %c1] bounds[%n, %c64] : tensor<16x64xbf16>, !loom.ptr<bf16>
  %c16 = arith.constant 16 : i32
  %y = loom.block_load %p[%base] strides[%c1, %ld] bounds[%c64, %c16] other %z deferred column_major : !loom.ptr<bf16> -> tensor<64x16xbf16>
  %zf = arith.constant 0.0 : f32
  %acc = loom.splat %zf : tensor<16x16xf32>
  %d = loom.dot %x, %y, %acc : tensor<16x64xbf16>, tensor<64x16xbf16> -> tensor<16x16xf32>
  return
}

// CHECK-LABEL: func.func @pipeline
// CHECK: loom.async_copy %{{.*}}[%{{.*}}] strides[%{{.*}}, %{{.*}}] bounds[%{{.*}}, %{{.*}}] other %{{.*}}, slot %[[S:.*]] {offset = 0 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<64x16xbf16>
// CHECK: loom.async_commit
// CHECK: loom.async_wait 1
// CHECK: %[[T:.*]] = loom.shared_slot %[[S]] {offset = 0 : i64, slots = 2 : i64} : tensor<64x16xbf16>
// CHECK: loom.dot %{{.*}}, %[[T]], %{{.*}}
// GENERIC-LABEL: sym_name = "pipeline"
// GENERIC: "loom.async_copy"(%{{.*}}) <{offset = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 2, 2, 1, 1>, slots = 2 : i64, tile = tensor<64x16xbf16>}> : (!loom.ptr<bf16>, i64, i64, i64, i32, i32, bf16, i32) -> ()
// GENERIC: "loom.async_commit"() : () -> ()
// GENERIC: "loom.async_wait"() <{pending = 1 : i64}> : () -> ()
// GENERIC: "loom.shared_slot"(%{{.*}}) <{offset = 0 : i64, slots = 2 : i64}> : (i32) -> tensor<64x16xbf16>
func.func @pipeline(%p: !loom.ptr<bf16>, %base: i64, %ld: i64, %n: i32, %z: bf16, %s: i32, %x: tensor<16x64xbf16>) {
  %c1 = arith.constant 1 : i64
  %c16 = arith.constant 16 : i32
  loom.async_copy %p[%base] strides[%ld, %c1] bounds[%n, %c16] other %z, slot %s {offset = 0 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<64x16xbf16>
  loom.async_commit
  loom.async_wait 1
  %y = loom.shared_slot %s {offset = 0 : i64, slots = 2 : i64} : tensor<64x16xbf16>
  %zf = arith.constant 0.0 : f32
  %acc = loom.splat %zf : tensor<16x16xf32>
  %d = loom.dot %x, %y, %acc : tensor<16x64xbf16>, tensor<64x16xbf16> -> tensor<16x16xf32>
  return
}
