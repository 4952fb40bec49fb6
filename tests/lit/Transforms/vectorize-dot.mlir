// RUN: loom-opt %s --split-input-file --loom-vectorize-dot="rows=4 lanes=16" | FileCheck %s

// CHECK: #[[UNROLL:.*]] = #llvm.loop_unroll<disable = true>
// CHECK: #{{.*}} = #llvm.loop_annotation<unroll = #[[UNROLL]]>

// A bufferized dot (the generic DotToGeneric builds) becomes a register-
// blocked micro-kernel: rows of 4 in a loop, columns of 16 lanes in a loop,
// 4 vector accumulators carried across the loop over k, one B row load and
// 4 broadcast FMAs per k.
#a = affine_map<(i, k, j) -> (i, k)>
#b = affine_map<(i, k, j) -> (k, j)>
#c = affine_map<(i, k, j) -> (i, j)>
// CHECK-LABEL: func.func @dot_f32
// CHECK-NOT: linalg.generic
// CHECK: %[[C4:.*]] = arith.constant 4 : index
// CHECK: %[[C8:.*]] = arith.constant 8 : index
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %[[C8]] step %[[C4]]
// CHECK:   %[[C16:.*]] = arith.constant 16 : index
// CHECK:   %[[C32:.*]] = arith.constant 32 : index
// CHECK:   scf.for %[[J:.*]] = %{{.*}} to %[[C32]] step %[[C16]]
// CHECK-COUNT-4: vector.load %arg2[%{{.*}}, %[[J]]] : memref<8x32xf32>, vector<16xf32>
// CHECK:     scf.for %[[K:.*]] = {{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK:       %[[B:.*]] = vector.load %arg1[%[[K]], %[[J]]] : memref<24x32xf32>, vector<16xf32>
// CHECK:       memref.load %arg0[%[[I]], %[[K]]] : memref<8x24xf32>
// CHECK:       vector.broadcast %{{.*}} : f32 to vector<16xf32>
// A multiply and an add LLVM may contract: one FMA where the CPU target has
// it, no software fmaf call where it has not.
// CHECK:       %[[P:.*]] = arith.mulf %{{.*}}, %[[B]] fastmath<contract> : vector<16xf32>
// CHECK:       arith.addf %[[P]], %{{.*}} fastmath<contract> : vector<16xf32>
// CHECK-COUNT-3: arith.addf {{.*}} fastmath<contract>
// CHECK:       scf.yield
// Every emitted loop tells LLVM not to unroll it: k, then j, then i.
// CHECK:     } {loop_annotation = #[[NOUNROLL:[a-z_0-9]+]]}
// CHECK-COUNT-4: vector.store %{{.*}}, %arg2[%{{.*}}, %[[J]]] : memref<8x32xf32>, vector<16xf32>
// CHECK:   } {loop_annotation = #[[NOUNROLL]]}
// CHECK: } {loop_annotation = #[[NOUNROLL]]}
func.func @dot_f32(%a: memref<8x24xf32>, %b: memref<24x32xf32>, %c: memref<8x32xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%a, %b : memref<8x24xf32>, memref<24x32xf32>) outs(%c : memref<8x32xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// Remainders: 7 rows = one loop block of 4, then blocks of 2 and 1 at
// constant offsets 4 and 6; 13 columns = 8 + 4 + 1 lanes at constant
// offsets (no 16-lane loop). bf16 operands are extended to f32 in registers.
#a = affine_map<(i, k, j) -> (i, k)>
#b = affine_map<(i, k, j) -> (k, j)>
#c = affine_map<(i, k, j) -> (i, j)>
// CHECK-LABEL: func.func @dot_bf16_remainders
// CHECK-NOT: linalg.generic
// CHECK: %[[C4:.*]] = arith.constant 4 : index
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %[[C4]]
// CHECK:   vector.load %arg1{{.*}} : memref<3x13xbf16>, vector<8xbf16>
// CHECK:   arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK:   arith.addf {{.*}} fastmath<contract> : vector<8xf32>
// CHECK:   vector.load %arg1{{.*}} : memref<3x13xbf16>, vector<4xbf16>
// CHECK:   vector.load %arg1{{.*}} : memref<3x13xbf16>, vector<1xbf16>
// CHECK: } {loop_annotation
// The 2-row block at row 4: two C rows per column block.
// CHECK: %[[R4:.*]] = arith.constant 4 : index
// CHECK: vector.load %arg2[%[[R4]], %{{.*}}] : memref<7x13xf32>, vector<8xf32>
// CHECK: vector.load %arg2[%{{.*}}, %{{.*}}] : memref<7x13xf32>, vector<8xf32>
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>)
// The 1-row block at row 6.
// CHECK: %[[R6:.*]] = arith.constant 6 : index
// CHECK: vector.load %arg2[%[[R6]], %{{.*}}] : memref<7x13xf32>, vector<8xf32>
// CHECK: scf.for {{.*}} -> (vector<8xf32>) {
// CHECK: return
func.func @dot_bf16_remainders(%a: memref<7x3xbf16>, %b: memref<3x13xbf16>, %c: memref<7x13xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%a, %b : memref<7x3xbf16>, memref<3x13xbf16>) outs(%c : memref<7x13xf32>) {
  ^bb0(%x: bf16, %y: bf16, %acc: f32):
    %xf = arith.extf %x : bf16 to f32
    %yf = arith.extf %y : bf16 to f32
    %p = arith.mulf %xf, %yf : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// Left alone: C's rows are strided (no contiguous vector store), and a body
// that is not a multiply-add.
#a = affine_map<(i, k, j) -> (i, k)>
#b = affine_map<(i, k, j) -> (k, j)>
#c = affine_map<(i, k, j) -> (i, j)>
// CHECK-LABEL: func.func @not_dots
// CHECK-NOT: vector.
// CHECK: linalg.generic
// CHECK: linalg.generic
func.func @not_dots(%a: memref<4x4xf32>, %b: memref<4x4xf32>,
                    %c: memref<4x4xf32, strided<[1, 4]>>, %d: memref<4x4xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%a, %b : memref<4x4xf32>, memref<4x4xf32>) outs(%c : memref<4x4xf32, strided<[1, 4]>>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%a, %b : memref<4x4xf32>, memref<4x4xf32>) outs(%d : memref<4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.maximumf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}
