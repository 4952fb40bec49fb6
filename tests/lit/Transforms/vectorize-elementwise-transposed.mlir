// RUN: loom-opt %s --split-input-file --loom-vectorize-elementwise="lanes=8" | FileCheck %s

// A tile read transposed (input map (d, n) -> (n, d): a trans() of a tile)
// has no contiguous row to vectorize, so it is planned along dim 0: 8 x 8
// blocks of 8 column vectors, each a contiguous load of a row of the input,
// transposed in registers (one vector.shuffle of the flattened block) and
// stored as 8 contiguous rows of the output.
#t = affine_map<(d, n) -> (n, d)>
#id = affine_map<(d, n) -> (d, n)>
// CHECK-LABEL: func.func @transposed_tile
// CHECK-NOT: memref.load
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %c8 {
// CHECK:   scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:     vector.load %arg0[%[[J]], %[[I]]] : memref<16x32xf32>, vector<8xf32>
// CHECK:     arith.mulf %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK-COUNT-7: vector.load %arg0
// CHECK:     vector.shuffle %{{.*}}, %{{.*}} [0, 8, 16, 24, 32, 40, 48, 56, 1, 9, {{.*}}] : vector<64xf32>, vector<64xf32>
// CHECK:     vector.store %{{.*}}, %arg1[%[[I]], %[[J]]] : memref<32x16xf32>, vector<8xf32>
// CHECK-COUNT-7: vector.store
func.func @transposed_tile(%x: memref<16x32xf32>, %out: memref<32x16xf32>) {
  %two = arith.constant 2.0 : f32
  linalg.generic {indexing_maps = [#t, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<16x32xf32>) outs(%out : memref<32x16xf32>) {
  ^bb0(%v: f32, %o: f32):
    %r = arith.mulf %v, %two : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// Offsets read from buffers are not known to be consecutive along either
// dim (the attention kernels' K^T load today: its row and column offsets
// are materialized tiles), so both plans gather and the plan stays by rows.
#row = affine_map<(d, n) -> (d)>
#col = affine_map<(d, n) -> (n)>
#id = affine_map<(d, n) -> (d, n)>
// CHECK-LABEL: func.func @offsets_from_buffers
// CHECK-NOT: vector.shuffle
// CHECK: vector.gather
// CHECK-NOT: vector.shuffle
func.func @offsets_from_buffers(%src: memref<?xf32>, %rowOff: memref<16xi64>, %colOff: memref<16xi64>,
                                %out: memref<16x16xf32>) {
  linalg.generic {indexing_maps = [#row, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%rowOff, %colOff : memref<16xi64>, memref<16xi64>) outs(%out : memref<16x16xf32>) {
  ^bb0(%r: i64, %c: i64, %o: f32):
    %off = arith.addi %r, %c : i64
    %at = arith.index_cast %off : i64 to index
    %v = memref.load %src[%at] : memref<?xf32>
    linalg.yield %v : f32
  }
  return
}

// -----

// Where rows are already contiguous (offset steps by one along dim 1), the
// plan stays by rows: no transpose.
#row = affine_map<(d, n) -> (d)>
#id = affine_map<(d, n) -> (d, n)>
// CHECK-LABEL: func.func @row_load
// CHECK-NOT: vector.shuffle
// CHECK: vector.load %arg0
// CHECK-NOT: vector.shuffle
func.func @row_load(%src: memref<?xf32>, %rowOff: memref<16xi64>, %out: memref<16x16xf32>) {
  linalg.generic {indexing_maps = [#row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%rowOff : memref<16xi64>) outs(%out : memref<16x16xf32>) {
  ^bb0(%r: i64, %o: f32):
    %n = linalg.index 1 : index
    %n64 = arith.index_cast %n : index to i64
    %off = arith.addi %r, %n64 : i64
    %at = arith.index_cast %off : i64 to index
    %v = memref.load %src[%at] : memref<?xf32>
    linalg.yield %v : f32
  }
  return
}
