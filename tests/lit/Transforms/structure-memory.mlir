// RUN: loom-opt %s -split-input-file --loom-structure-memory | FileCheck %s

// Rows r0 .. r0+15 of a row-major matrix (row stride %ld, 64 columns), rows
// past %n masked, stored back the same way: one block load and one block
// store; the offset and mask tiles are gone.

// CHECK-LABEL: func.func @rows
// CHECK-SAME: (%[[P:.*]]: !loom.ptr<f32>, %[[B:.*]]: i64, %[[LD:.*]]: i64, %[[R0:.*]]: i32, %[[N:.*]]: i32)
// CHECK-NOT: loom.arange
// CHECK: %[[R0W:.*]] = arith.extsi %[[R0]] : i32 to i64
// CHECK: %[[ROWOFF:.*]] = arith.muli {{.*}} : i64
// CHECK: %[[BASE:.*]] = arith.addi {{.*}} : i64
// CHECK: %[[ONE:.*]] = arith.constant 1 : i64
// CHECK: %[[BOUND:.*]] = arith.addi {{.*}} : i32
// CHECK: %[[COLS:.*]] = arith.constant 64 : i32
// CHECK: %[[X:.*]] = loom.block_load %[[P]][%[[BASE]]] strides[%[[LD]], %[[ONE]]] bounds[%[[BOUND]], %[[COLS]]] other %{{.*}} : !loom.ptr<f32> -> tensor<16x64xf32>
// CHECK: loom.block_store %[[X]], %[[P]][{{.*}}] strides[%[[LD]], {{.*}}] bounds[{{.*}}, {{.*}}] : tensor<16x64xf32>, !loom.ptr<f32>
// CHECK-NOT: loom.load
// CHECK-NOT: loom.store
// CHECK-NOT: loom.broadcast
func.func @rows(%p: !loom.ptr<f32>, %b: i64, %ld: i64, %r0: i32, %n: i32) {
  %ar = loom.arange 0 to 16 : tensor<16xi32>
  %r0s = loom.splat %r0 : tensor<16xi32>
  %rows = arith.addi %r0s, %ar : tensor<16xi32>
  %ns = loom.splat %n : tensor<16xi32>
  %rowMask = arith.cmpi slt, %rows, %ns : tensor<16xi32>
  %rows64 = arith.extsi %rows : tensor<16xi32> to tensor<16xi64>
  %rows2 = loom.expand_dims %rows64, 1 : tensor<16xi64> -> tensor<16x1xi64>
  %lds = loom.splat %ld : tensor<16x1xi64>
  %rowOffs = arith.muli %rows2, %lds : tensor<16x1xi64>
  %bs = loom.splat %b : tensor<16x1xi64>
  %rowBase = arith.addi %bs, %rowOffs : tensor<16x1xi64>
  %ac = loom.arange 0 to 64 : tensor<64xi32>
  %cols64 = arith.extsi %ac : tensor<64xi32> to tensor<64xi64>
  %cols2 = loom.expand_dims %cols64, 0 : tensor<64xi64> -> tensor<1x64xi64>
  %rb = loom.broadcast %rowBase : tensor<16x1xi64> -> tensor<16x64xi64>
  %cb = loom.broadcast %cols2 : tensor<1x64xi64> -> tensor<16x64xi64>
  %offs = arith.addi %rb, %cb : tensor<16x64xi64>
  %m2 = loom.expand_dims %rowMask, 1 : tensor<16xi1> -> tensor<16x1xi1>
  %mask = loom.broadcast %m2 : tensor<16x1xi1> -> tensor<16x64xi1>
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<16x64xf32>
  %x = loom.load %p[%offs] mask %mask : tensor<16x64xi1> other %zero : tensor<16x64xf32> : !loom.ptr<f32>, tensor<16x64xi64> -> tensor<16x64xf32>
  loom.store %x, %p[%offs] mask %mask : tensor<16x64xi1> : tensor<16x64xf32>, !loom.ptr<f32>, tensor<16x64xi64>
  return
}

// -----

// Transposed: the contiguous index runs along rows (stride 1) and the
// bounded index along columns; two masks joined by andi give a bound per
// dimension (sle becomes a bound one higher).

// CHECK-LABEL: func.func @transposed_and_bounds
// CHECK-SAME: (%[[P:.*]]: !loom.ptr<bf16>, %[[LD:.*]]: i64, %[[N:.*]]: i32, %[[D:.*]]: i32)
// CHECK: %[[BASE:.*]] = arith.constant 0 : i64
// CHECK: %[[ONE:.*]] = arith.constant 1 : i64
// CHECK: %[[BOUND0:.*]] = arith.addi %[[D]], %{{.*}} : i32
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : bf16
// CHECK: loom.block_load %[[P]][%[[BASE]]] strides[%[[ONE]], %[[LD]]] bounds[%[[BOUND0]], %[[N]]] other %[[ZERO]] : !loom.ptr<bf16> -> tensor<32x16xbf16>
func.func @transposed_and_bounds(%p: !loom.ptr<bf16>, %ld: i64, %n: i32, %d: i32) -> tensor<32x16xbf16> {
  %ac = loom.arange 0 to 16 : tensor<16xi32>
  %ns = loom.splat %n : tensor<16xi32>
  %colMask = arith.cmpi slt, %ac, %ns : tensor<16xi32>
  %ar = loom.arange 0 to 32 : tensor<32xi32>
  %ds = loom.splat %d : tensor<32xi32>
  %rowMask = arith.cmpi sge, %ds, %ar : tensor<32xi32>
  %cols64 = arith.extsi %ac : tensor<16xi32> to tensor<16xi64>
  %c2 = loom.expand_dims %cols64, 0 : tensor<16xi64> -> tensor<1x16xi64>
  %lds = loom.splat %ld : tensor<1x16xi64>
  %colOffs = arith.muli %c2, %lds : tensor<1x16xi64>
  %rows64 = arith.extsi %ar : tensor<32xi32> to tensor<32xi64>
  %r2 = loom.expand_dims %rows64, 1 : tensor<32xi64> -> tensor<32x1xi64>
  %cb = loom.broadcast %colOffs : tensor<1x16xi64> -> tensor<32x16xi64>
  %rb = loom.broadcast %r2 : tensor<32x1xi64> -> tensor<32x16xi64>
  %offs = arith.addi %cb, %rb : tensor<32x16xi64>
  %cm = loom.expand_dims %colMask, 0 : tensor<16xi1> -> tensor<1x16xi1>
  %cmb = loom.broadcast %cm : tensor<1x16xi1> -> tensor<32x16xi1>
  %rm = loom.expand_dims %rowMask, 1 : tensor<32xi1> -> tensor<32x1xi1>
  %rmb = loom.broadcast %rm : tensor<32x1xi1> -> tensor<32x16xi1>
  %mask = arith.andi %cmb, %rmb : tensor<32x16xi1>
  %x = loom.load %p[%offs] mask %mask : tensor<32x16xi1> : !loom.ptr<bf16>, tensor<32x16xi64> -> tensor<32x16xbf16>
  return %x : tensor<32x16xbf16>
}

// -----

// A deferred dot operand whose columns are contiguous (strides [1, %ld]: K^T
// read from a row-major K) is marked column_major, as operand b and as
// operand a; the same view with another user is not deferred and so not
// column_major, and one with unit strides in both dimensions stays
// row-major (its rows are contiguous too).

// CHECK-LABEL: func.func @column_major
// CHECK-SAME: (%[[P:.*]]: !loom.ptr<bf16>, %[[LD:.*]]: i64)
// CHECK: %[[ONE:.*]] = arith.constant 1 : i64
// CHECK: %[[KT:.*]] = loom.block_load %[[P]][%{{.*}}] strides[%[[ONE]], %[[LD]]] bounds[%{{.*}}, %{{.*}}] other %{{[^ ]*}} deferred column_major : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: %[[ONE2:.*]] = arith.constant 1 : i64
// CHECK: %[[KT2:.*]] = loom.block_load %[[P]][%{{.*}}] strides[%[[ONE2]], %[[LD]]] bounds[%{{.*}}, %{{.*}}] other %{{[^ ]*}} : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: %[[DIAG:.*]] = loom.block_load %[[P]][%{{.*}}] strides[%{{[^,]*}}, %{{c1_i64[^]]*}}] bounds[%{{.*}}, %{{.*}}] other %{{[^ ]*}} deferred : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: %[[ONE4:.*]] = arith.constant 1 : i64
// CHECK: %[[QT:.*]] = loom.block_load %[[P]][%{{.*}}] strides[%[[ONE4]], %[[LD]]] bounds[%{{.*}}, %{{.*}}] other %{{[^ ]*}} deferred column_major : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: loom.dot %[[KT2]], %[[KT]]
// CHECK: loom.dot %[[DIAG]], %[[KT2]]
// CHECK: loom.dot %[[QT]], %[[KT2]]
func.func @column_major(%p: !loom.ptr<bf16>, %ld: i64) -> (tensor<16x16xf32>, tensor<16x16xbf16>) {
  %a = loom.arange 0 to 16 : tensor<16xi32>
  %a64 = arith.extsi %a : tensor<16xi32> to tensor<16xi64>
  %r = loom.expand_dims %a64, 1 : tensor<16xi64> -> tensor<16x1xi64>
  %c = loom.expand_dims %a64, 0 : tensor<16xi64> -> tensor<1x16xi64>
  %lds = loom.splat %ld : tensor<1x16xi64>
  %cld = arith.muli %c, %lds : tensor<1x16xi64>
  %rb = loom.broadcast %r : tensor<16x1xi64> -> tensor<16x16xi64>
  %cb = loom.broadcast %c : tensor<1x16xi64> -> tensor<16x16xi64>
  %cldb = loom.broadcast %cld : tensor<1x16xi64> -> tensor<16x16xi64>
  %transposed = arith.addi %rb, %cldb : tensor<16x16xi64>
  %diagonal = arith.addi %rb, %cb : tensor<16x16xi64>
  %kt = loom.load %p[%transposed] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
  %kt2 = loom.load %p[%transposed] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
  %diag = loom.load %p[%diagonal] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
  %qt = loom.load %p[%transposed] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<16x16xf32>
  %d = loom.dot %kt2, %kt, %zero : tensor<16x16xbf16>, tensor<16x16xbf16> -> tensor<16x16xf32>
  %e = loom.dot %diag, %kt2, %d : tensor<16x16xbf16>, tensor<16x16xbf16> -> tensor<16x16xf32>
  %f = loom.dot %qt, %kt2, %e : tensor<16x16xbf16>, tensor<16x16xbf16> -> tensor<16x16xf32>
  return %f, %kt2 : tensor<16x16xf32>, tensor<16x16xbf16>
}

// -----

// Not recognized, left as they were: i32 offsets (which wrap at 32 bits),
// a gather through loaded indices, a mask that is not a bound of one
// coordinate, and an `other` that is not a splat.

// CHECK-LABEL: func.func @unrecognized
// CHECK-NOT: loom.block_load
// CHECK-COUNT-5: loom.load
// CHECK-NOT: loom.block_load
func.func @unrecognized(%p: !loom.ptr<f32>, %ip: !loom.ptr<i64>, %n: i32, %o: tensor<64xf32>) -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>) {
  %a = loom.arange 0 to 64 : tensor<64xi32>
  %x32 = loom.load %p[%a] : !loom.ptr<f32>, tensor<64xi32> -> tensor<64xf32>
  %a64 = arith.extsi %a : tensor<64xi32> to tensor<64xi64>
  %idx = loom.load %ip[%a] : !loom.ptr<i64>, tensor<64xi32> -> tensor<64xi64>
  %gather = loom.load %p[%idx] : !loom.ptr<f32>, tensor<64xi64> -> tensor<64xf32>
  %sq = arith.muli %a, %a : tensor<64xi32>
  %ns = loom.splat %n : tensor<64xi32>
  %m = arith.cmpi slt, %sq, %ns : tensor<64xi32>
  %masked = loom.load %p[%a64] mask %m : tensor<64xi1> : !loom.ptr<f32>, tensor<64xi64> -> tensor<64xf32>
  %m2 = arith.cmpi slt, %a, %ns : tensor<64xi32>
  %other = loom.load %p[%a64] mask %m2 : tensor<64xi1> other %o : tensor<64xf32> : !loom.ptr<f32>, tensor<64xi64> -> tensor<64xf32>
  return %x32, %gather, %masked, %other : tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>
}

// -----

// Loads whose only user is a dot operand are deferred into the dot, also
// from outside a loop when the loop writes nothing; a load with another
// user, or with a store between it and the dot, is not.

// CHECK-LABEL: func.func @deferred
// CHECK: %[[STORED:.*]] = loom.block_load {{.*}} other %{{[^ ]*}} : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: loom.block_store
// CHECK: %[[A:.*]] = loom.block_load {{.*}} deferred : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: %[[SHARED:.*]] = loom.block_load {{.*}} other %{{[^ ]*}} : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: scf.for
// CHECK: %[[B:.*]] = loom.block_load {{.*}} deferred : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: loom.dot %[[A]], %[[B]]
// CHECK: loom.dot %[[SHARED]], %[[SHARED]]
// CHECK: %[[B2:.*]] = loom.block_load {{.*}} deferred : !loom.ptr<bf16> -> tensor<16x16xbf16>
// CHECK: loom.dot %[[STORED]], %[[B2]], %{{.*}}
func.func @deferred(%p: !loom.ptr<bf16>, %n: i32) -> tensor<16x16xf32> {
  %a = loom.arange 0 to 16 : tensor<16xi32>
  %a64 = arith.extsi %a : tensor<16xi32> to tensor<16xi64>
  %r = loom.expand_dims %a64, 1 : tensor<16xi64> -> tensor<16x1xi64>
  %c = loom.expand_dims %a64, 0 : tensor<16xi64> -> tensor<1x16xi64>
  %rb = loom.broadcast %r : tensor<16x1xi64> -> tensor<16x16xi64>
  %cb = loom.broadcast %c : tensor<1x16xi64> -> tensor<16x16xi64>
  %offs = arith.addi %rb, %cb : tensor<16x16xi64>
  %stored = loom.load %p[%offs] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
  %z16 = arith.constant 0.0 : bf16
  %zeros = loom.splat %z16 : tensor<16x16xbf16>
  loom.store %zeros, %p[%offs] : tensor<16x16xbf16>, !loom.ptr<bf16>, tensor<16x16xi64>
  %x = loom.load %p[%offs] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
  %shared = loom.load %p[%offs] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<16x16xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %acc = scf.for %i = %c0 to %n step %c1 iter_args(%carried = %zero) -> (tensor<16x16xf32>) : i32 {
    %y = loom.load %p[%offs] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
    %d = loom.dot %x, %y, %carried : tensor<16x16xbf16>, tensor<16x16xbf16> -> tensor<16x16xf32>
    %e = loom.dot %shared, %shared, %d : tensor<16x16xbf16>, tensor<16x16xbf16> -> tensor<16x16xf32>
    %y2 = loom.load %p[%offs] : !loom.ptr<bf16>, tensor<16x16xi64> -> tensor<16x16xbf16>
    %f = loom.dot %stored, %y2, %e : tensor<16x16xbf16>, tensor<16x16xbf16> -> tensor<16x16xf32>
    scf.yield %f : tensor<16x16xf32>
  }
  return %acc : tensor<16x16xf32>
}
