// RUN: loom-opt %s --pass-pipeline="builtin.module(func.func(loom-approximate-math))" | FileCheck %s

// f32 exp2 becomes 2^round(x) (exponent bits) times a degree-7 polynomial,
// with explicit underflow (0), overflow (+inf) and NaN results.
// CHECK-LABEL: func.func @exp2_f32
// CHECK-NOT: math.exp2
// CHECK-DAG: %[[LO:.*]] = arith.constant -1.250000e+02 : f32
// CHECK-DAG: %[[HI:.*]] = arith.constant 1.280000e+02 : f32
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[INF:.*]] = arith.constant 0x7F800000 : f32
// CHECK: math.roundeven
// CHECK-NOT: math.fma
// CHECK-COUNT-7: arith.addf {{.*}} fastmath<contract> : f32
// CHECK: arith.shli
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// CHECK: %[[UNDER:.*]] = arith.cmpf olt, %arg0, %[[LO]] : f32
// CHECK: arith.select %[[UNDER]], %[[ZERO]], %{{.*}} : f32
// CHECK: %[[OVER:.*]] = arith.cmpf oge, %arg0, %[[HI]] : f32
// CHECK: arith.select %[[OVER]], %[[INF]], %{{.*}} : f32
// CHECK: %[[NAN:.*]] = arith.cmpf uno, %arg0, %arg0 : f32
// CHECK: %[[R:.*]] = arith.select %[[NAN]], %arg0, %{{.*}} : f32
// CHECK: return %[[R]]
func.func @exp2_f32(%x: f32) -> f32 {
  %y = math.exp2 %x : f32
  return %y : f32
}

// f32 tanh uses MLIR's polynomial approximation; f64 is left to libm.
// CHECK-LABEL: func.func @tanh_and_f64
// CHECK-NOT: math.tanh %{{.*}} : f32
// CHECK-NOT: math.fma
// CHECK: math.exp2 %{{.*}} : f64
// CHECK: math.tanh %{{.*}} : f64
func.func @tanh_and_f64(%x: f32, %z: f64) -> (f32, f64, f64) {
  %t = math.tanh %x : f32
  %e = math.exp2 %z : f64
  %u = math.tanh %z : f64
  return %t, %e, %u : f32, f64, f64
}

// Vectors of f32 (from loom-vectorize-elementwise) get the same arithmetic
// lane-wise, with splat constants.
// CHECK-LABEL: func.func @exp2_vector
// CHECK-NOT: math.exp2
// CHECK-DAG: arith.constant dense<-1.250000e+02> : vector<16xf32>
// CHECK-DAG: arith.constant dense<126> : vector<16xi32>
// CHECK-DAG: arith.constant dense<23> : vector<16xi32>
// CHECK: math.roundeven %{{.*}} : vector<16xf32>
// CHECK-COUNT-7: arith.addf {{.*}} fastmath<contract> : vector<16xf32>
// CHECK: arith.fptosi %{{.*}} : vector<16xf32> to vector<16xi32>
// CHECK: arith.bitcast %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: arith.cmpf uno, %arg0, %arg0 : vector<16xf32>
func.func @exp2_vector(%x: vector<16xf32>) -> vector<16xf32> {
  %y = math.exp2 %x : vector<16xf32>
  return %y : vector<16xf32>
}

// Tensors are not rewritten (the pass runs after bufferization; a tensor
// exp2 is left to the standard lowering).
// CHECK-LABEL: func.func @exp2_tensor
// CHECK: math.exp2 %{{.*}} : tensor<4xf32>
func.func @exp2_tensor(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = math.exp2 %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
