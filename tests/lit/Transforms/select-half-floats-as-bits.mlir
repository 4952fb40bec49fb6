// RUN: loom-opt %s --pass-pipeline="builtin.module(func.func(loom-select-half-floats-as-bits))" --split-input-file | FileCheck %s

// A select of a bf16 vector picks integer lanes, between bitcasts.
// CHECK-LABEL: func.func @select_bf16_vector
// CHECK-SAME: (%[[C:.*]]: vector<8xi1>, %[[A:.*]]: vector<8xbf16>, %[[B:.*]]: vector<8xbf16>)
// CHECK-DAG: %[[AI:.*]] = arith.bitcast %[[A]] : vector<8xbf16> to vector<8xi16>
// CHECK-DAG: %[[BI:.*]] = arith.bitcast %[[B]] : vector<8xbf16> to vector<8xi16>
// CHECK: %[[RI:.*]] = arith.select %[[C]], %[[AI]], %[[BI]] : vector<8xi1>, vector<8xi16>
// CHECK: %[[R:.*]] = arith.bitcast %[[RI]] : vector<8xi16> to vector<8xbf16>
// CHECK: return %[[R]]
func.func @select_bf16_vector(%c: vector<8xi1>, %a: vector<8xbf16>, %b: vector<8xbf16>) -> vector<8xbf16> {
  %r = arith.select %c, %a, %b : vector<8xi1>, vector<8xbf16>
  return %r : vector<8xbf16>
}

// -----

// Scalar f16 too; f32 is left alone.
// CHECK-LABEL: func.func @select_f16_scalar_and_f32
// CHECK: arith.select %{{.*}}, %{{.*}}, %{{.*}} : i16
// CHECK: arith.select %{{.*}}, %{{.*}}, %{{.*}} : f32
// CHECK-NOT: arith.select {{.*}} : f16
func.func @select_f16_scalar_and_f32(%c: i1, %a: f16, %b: f16, %x: f32, %y: f32) -> (f16, f32) {
  %r = arith.select %c, %a, %b : f16
  %s = arith.select %c, %x, %y : f32
  return %r, %s : f16, f32
}

// -----

// A lowered scf.if (a branch around a masked load): both predecessors pass
// the bits, the join block's argument is i16 and is cast back once.
// CHECK-LABEL: func.func @branch_bf16_vector
// CHECK: cf.cond_br %{{.*}}, ^[[THEN:.*]], ^[[ELSE:.*]]
// CHECK: ^[[THEN]]:
// CHECK: %[[L:.*]] = vector.load
// CHECK: %[[LI:.*]] = arith.bitcast %[[L]] : vector<8xbf16> to vector<8xi16>
// CHECK: cf.br ^[[JOIN:.*]](%[[LI]] : vector<8xi16>)
// CHECK: ^[[ELSE]]:
// CHECK: %[[ZI:.*]] = arith.bitcast %{{.*}} : vector<8xbf16> to vector<8xi16>
// CHECK: cf.br ^[[JOIN]](%[[ZI]] : vector<8xi16>)
// CHECK: ^[[JOIN]](%[[ARG:.*]]: vector<8xi16>):
// CHECK: %[[V:.*]] = arith.bitcast %[[ARG]] : vector<8xi16> to vector<8xbf16>
// CHECK: arith.extf %[[V]]
func.func @branch_bf16_vector(%c: i1, %m: memref<?xbf16>, %i: index) -> vector<8xf32> {
  cf.cond_br %c, ^then, ^else
^then:
  %l = vector.load %m[%i] : memref<?xbf16>, vector<8xbf16>
  cf.br ^join(%l : vector<8xbf16>)
^else:
  %z = arith.constant dense<0.0> : vector<8xbf16>
  cf.br ^join(%z : vector<8xbf16>)
^join(%v: vector<8xbf16>):
  %w = arith.extf %v : vector<8xbf16> to vector<8xf32>
  return %w : vector<8xf32>
}
