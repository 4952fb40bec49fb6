// RUN: loom-opt %s --convert-loom-to-linalg | FileCheck %s

// Pointers become memref<?xT>; loads become linalg.generic gathers that read
// through memref.load (branch-free when masked: a masked-off lane reads
// element 0 and selects its fallback); stores become loop nests of (guarded)
// memref.store.

// CHECK: #[[ID:.*]] = affine_map<(d0) -> (d0)>

// CHECK-LABEL: func.func @load
// CHECK-SAME: (%[[X:[^:]*]]: memref<?xf32>, %[[O:[^:]*]]: tensor<128xi32>, %[[M:[^:]*]]: tensor<128xi1>, %[[D:[^:]*]]: tensor<128xf32>,
// CHECK-NOT: !loom.ptr
// Unmasked: a plain gather.
// CHECK: %[[E0:.*]] = tensor.empty() : tensor<128xf32>
// CHECK: linalg.generic {indexing_maps = [#[[ID]], #[[ID]]], iterator_types = ["parallel"]}
// CHECK-SAME: ins(%[[O]] : tensor<128xi32>) outs(%[[E0]] : tensor<128xf32>)
// CHECK: ^bb0(%[[OFF:[^:]*]]: i32, %{{[^:]+}}: f32):
// CHECK: %[[I:.*]] = arith.index_cast %[[OFF]] : i32 to index
// CHECK: %[[V:.*]] = memref.load %[[X]][%[[I]]] : memref<?xf32>
// CHECK: linalg.yield %[[V]] : f32
// Masked without `other`: masked-off lanes read element 0, never their
// offset, and yield 0; no branch.
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[O]], %[[M]] : tensor<128xi32>, tensor<128xi1>)
// CHECK: ^bb0(%[[OFF:[^:]*]]: i32, %[[MB:[^:]*]]: i1, %{{[^:]+}}: f32):
// CHECK-NOT: scf.if
// CHECK: %[[I:.*]] = arith.index_cast %[[OFF]] : i32 to index
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK: %[[SAFE:.*]] = arith.select %[[MB]], %[[I]], %[[C0]] : index
// CHECK: %[[L:.*]] = memref.load %[[X]][%[[SAFE]]] : memref<?xf32>
// CHECK: %[[R:.*]] = arith.select %[[MB]], %[[L]], %[[ZERO]] : f32
// CHECK: linalg.yield %[[R]] : f32
// Masked with `other`: masked-off lanes yield the `other` element.
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[O]], %[[M]], %[[D]] : tensor<128xi32>, tensor<128xi1>, tensor<128xf32>)
// CHECK: ^bb0(%{{[^:]+}}: i32, %[[MB:[^:]*]]: i1, %[[OTHER:[^:]*]]: f32, %{{[^:]+}}: f32):
// CHECK-NOT: scf.if
// CHECK: %[[SAFE:.*]] = arith.select %[[MB]]
// CHECK: %[[L:.*]] = memref.load %[[X]][%[[SAFE]]]
// CHECK: arith.select %[[MB]], %[[L]], %[[OTHER]] : f32
// CHECK-NOT: loom.load
// CHECK: return
func.func @load(%x: !loom.ptr<f32>, %o: tensor<128xi32>, %m: tensor<128xi1>, %d: tensor<128xf32>)
    -> (tensor<128xf32>, tensor<128xf32>, tensor<128xf32>)
    attributes {loom.kernel, loom.arg_names = ["x", "o", "m", "d"]} {
  %v0 = loom.load %x[%o] : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  %v1 = loom.load %x[%o] mask %m : tensor<128xi1> : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  %v2 = loom.load %x[%o] mask %m : tensor<128xi1> other %d : tensor<128xf32>
      : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  return %v0, %v1, %v2 : tensor<128xf32>, tensor<128xf32>, tensor<128xf32>
}

// CHECK-LABEL: func.func @store
// CHECK-SAME: (%[[Y:[^:]*]]: memref<?xf16>, %[[V:[^:]*]]: tensor<4x8xf16>, %[[O:[^:]*]]: tensor<4x8xi64>, %[[M:[^:]*]]: tensor<4x8xi1>,
// Unmasked: a 4x8 loop nest storing every element.
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[C4:.*]] = arith.constant 4 : index
// CHECK-DAG: %[[C8:.*]] = arith.constant 8 : index
// CHECK: scf.for %[[I:.*]] = %[[C0]] to %[[C4]] step %[[C1]] {
// CHECK:   scf.for %[[J:.*]] = %[[C0]] to %[[C8]] step %[[C1]] {
// CHECK:     %[[OFF:.*]] = tensor.extract %[[O]][%[[I]], %[[J]]] : tensor<4x8xi64>
// CHECK:     %[[VAL:.*]] = tensor.extract %[[V]][%[[I]], %[[J]]] : tensor<4x8xf16>
// CHECK:     %[[IDX:.*]] = arith.index_cast %[[OFF]] : i64 to index
// CHECK-NOT: scf.if
// CHECK:     memref.store %[[VAL]], %[[Y]][%[[IDX]]] : memref<?xf16>
// Masked: the same nest with the store under scf.if.
// CHECK: scf.for %[[I:.*]] =
// CHECK:   scf.for %[[J:.*]] =
// CHECK:     %[[VAL:.*]] = tensor.extract %[[V]][%[[I]], %[[J]]] : tensor<4x8xf16>
// CHECK:     %[[IDX:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:     %[[MB:.*]] = tensor.extract %[[M]][%[[I]], %[[J]]] : tensor<4x8xi1>
// CHECK:     scf.if %[[MB]] {
// CHECK:       memref.store %[[VAL]], %[[Y]][%[[IDX]]] : memref<?xf16>
// CHECK-NOT: loom.store
// CHECK: return
func.func @store(%y: !loom.ptr<f16>, %v: tensor<4x8xf16>, %o: tensor<4x8xi64>, %m: tensor<4x8xi1>)
    attributes {loom.kernel, loom.arg_names = ["y", "v", "o", "m"]} {
  loom.store %v, %y[%o] : tensor<4x8xf16>, !loom.ptr<f16>, tensor<4x8xi64>
  loom.store %v, %y[%o] mask %m : tensor<4x8xi1> : tensor<4x8xf16>, !loom.ptr<f16>, tensor<4x8xi64>
  return
}

// Pointer arguments of every element type become rank-1 dynamic memrefs.
// CHECK-LABEL: func.func @ptr_args
// CHECK-SAME: (%{{[^:]+}}: memref<?xf32>, %{{[^:]+}}: memref<?xf16>, %{{[^:]+}}: memref<?xbf16>, %{{[^:]+}}: memref<?xi32>, %{{[^:]+}}: memref<?xi64>, %{{[^:]+}}: memref<?xi1>, %{{[^:]+}}: i32,
func.func @ptr_args(%a: !loom.ptr<f32>, %b: !loom.ptr<f16>, %c: !loom.ptr<bf16>,
                    %d: !loom.ptr<i32>, %e: !loom.ptr<i64>, %f: !loom.ptr<i1>, %n: i32)
    attributes {loom.kernel, loom.arg_names = ["a", "b", "c", "d", "e", "f", "n"]} {
  return
}
