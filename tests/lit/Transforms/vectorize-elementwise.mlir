// RUN: loom-opt %s --split-input-file --loom-vectorize-elementwise="lanes=16" | FileCheck %s

// An elementwise generic over a 4x64 tile: a loop over rows, a vector loop
// over columns 16 lanes at a time; the row-uniform operand is loaded once
// per row as a scalar and broadcast, the others are contiguous vectors.
#id = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
// CHECK-LABEL: func.func @elementwise_rows
// CHECK-NOT: linalg.generic
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:   scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %[[C16:.*]] {
// CHECK:     %[[X:.*]] = vector.load %arg0[%[[I]], %[[J]]] : memref<4x64xf32>, vector<16xf32>
// CHECK:     %[[M:.*]] = memref.load %arg1[%[[I]]] : memref<4xf32>
// CHECK:     %[[MV:.*]] = vector.broadcast %[[M]] : f32 to vector<16xf32>
// CHECK:     %[[D:.*]] = arith.subf %[[X]], %[[MV]] : vector<16xf32>
// CHECK:     %[[E:.*]] = math.exp2 %[[D]] : vector<16xf32>
// CHECK:     vector.store %[[E]], %arg2[%[[I]], %[[J]]] : memref<4x64xf32>, vector<16xf32>
func.func @elementwise_rows(%x: memref<4x64xf32>, %m: memref<4xf32>, %out: memref<4x64xf32>) {
  linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %m : memref<4x64xf32>, memref<4xf32>) outs(%out : memref<4x64xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.subf %a, %b : f32
    %e = math.exp2 %d : f32
    linalg.yield %e : f32
  }
  return
}

// -----

// The width is the widest power of two up to `lanes` dividing the inner
// loop (24 -> 8). linalg.index of the vectorized dim becomes iv + [0..7];
// a scalar input stays scalar.
#id = affine_map<(i) -> (i)>
#scalar = affine_map<(i) -> ()>
// CHECK-LABEL: func.func @index_and_scalar
// CHECK: %[[C8:.*]] = arith.constant 8 : index
// CHECK: scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %[[C8]] {
// CHECK:   %[[LANES:.*]] = arith.constant dense<[0, 1, 2, 3, 4, 5, 6, 7]> : vector<8xindex>
// CHECK:   %[[B:.*]] = vector.broadcast %[[J]] : index to vector<8xindex>
// CHECK:   %[[IDX:.*]] = arith.addi %[[B]], %[[LANES]] : vector<8xindex>
// CHECK:   %[[I32:.*]] = arith.index_cast %[[IDX]] : vector<8xindex> to vector<8xi32>
// CHECK:   %[[N:.*]] = vector.broadcast %arg0 : i32 to vector<8xi32>
// CHECK:   arith.cmpi slt, %[[I32]], %[[N]] : vector<8xi32>
// CHECK: vector.store %{{.*}}, %arg1[%[[J]]] : memref<24xi32>, vector<8xi32>
func.func @index_and_scalar(%n: i32, %out: memref<24xi32>) {
  linalg.generic {indexing_maps = [#scalar, #id], iterator_types = ["parallel"]}
      ins(%n : i32) outs(%out : memref<24xi32>) {
  ^bb0(%limit: i32, %o: i32):
    %i = linalg.index 0 : index
    %c = arith.index_cast %i : index to i32
    %lt = arith.cmpi slt, %c, %limit : i32
    %r = arith.select %lt, %c, %limit : i32
    linalg.yield %r : i32
  }
  return
}

// -----

// A masked load (the index of a masked-off lane redirected to 0) from an
// outer buffer at a varying index becomes an all-true-mask gather.
#id = affine_map<(i) -> (i)>
// CHECK-LABEL: func.func @masked_gather
// CHECK: scf.for
// CHECK:   %[[OFF:.*]] = vector.load %arg1[%{{.*}}] : memref<32xindex>, vector<16xindex>
// CHECK:   %[[SAFE:.*]] = arith.select %{{.*}}, %[[OFF]], %{{.*}} : vector<16xi1>, vector<16xindex>
// CHECK:   vector.gather %arg0[%{{.*}}] [%[[SAFE]]], %{{.*}}, %{{.*}} : memref<?xf32>, vector<16xindex>, vector<16xi1>, vector<16xf32> into vector<16xf32>
func.func @masked_gather(%src: memref<?xf32>, %off: memref<32xindex>, %mask: memref<32xi1>, %out: memref<32xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      ins(%off, %mask : memref<32xindex>, memref<32xi1>) outs(%out : memref<32xf32>) {
  ^bb0(%o: index, %m: i1, %r: f32):
    %safe = arith.select %m, %o, %c0 : index
    %v = memref.load %src[%safe] : memref<?xf32>
    %s = arith.select %m, %v, %zero : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// i1 buffers hold a byte per element, so i1 chunks are loaded (and stored)
// element by element, not as packed vector<16xi1> loads.
#id = affine_map<(i) -> (i)>
// CHECK-LABEL: func.func @bool_buffers
// CHECK-NOT: vector.load %arg0
// CHECK-COUNT-16: memref.load %arg0
// CHECK: vector.from_elements
// CHECK: arith.xori
// CHECK-COUNT-16: memref.store
func.func @bool_buffers(%in: memref<16xi1>, %out: memref<16xi1>) {
  %true = arith.constant true
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%in : memref<16xi1>) outs(%out : memref<16xi1>) {
  ^bb0(%a: i1, %o: i1):
    %n = arith.xori %a, %true : i1
    linalg.yield %n : i1
  }
  return
}

// -----

// A row max: a vector accumulator seeded by the first chunk, lane-wise
// maximumf over the rest, one vector.reduction, then the combiner with the
// output's old value.
#id = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
// CHECK-LABEL: func.func @row_max
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:   %[[FIRST:.*]] = vector.load %arg0[%[[I]], %{{.*}}] : memref<2x64xf32>, vector<16xf32>
// CHECK:   %[[ACC:.*]] = scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[A:.*]] = %[[FIRST]]) -> (vector<16xf32>) {
// CHECK:     %[[X:.*]] = vector.load %arg0[%[[I]], %[[J]]] : memref<2x64xf32>, vector<16xf32>
// CHECK:     %[[M:.*]] = arith.maximumf %[[A]], %[[X]] : vector<16xf32>
// CHECK:     scf.yield %[[M]] : vector<16xf32>
// CHECK:   %[[R:.*]] = vector.reduction <maximumf>, %[[ACC]] : vector<16xf32> into f32
// CHECK:   %[[OLD:.*]] = memref.load %arg1[%[[I]]] : memref<2xf32>
// CHECK:   %[[NEW:.*]] = arith.maximumf %[[OLD]], %[[R]] : f32
// CHECK:   memref.store %[[NEW]], %arg1[%[[I]]] : memref<2xf32>
func.func @row_max(%x: memref<2x64xf32>, %out: memref<2xf32>) {
  linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<2x64xf32>) outs(%out : memref<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %m = arith.maximumf %a, %acc : f32
    linalg.yield %m : f32
  }
  return
}

// -----

// A float sum is split over lanes only when its add allows reassociation.
#id = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
// CHECK-LABEL: func.func @row_sums
// CHECK: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<16xf32> into f32
// CHECK: linalg.generic
// CHECK: arith.addf %{{.*}}, %{{.*}} : f32
func.func @row_sums(%x: memref<2x64xf32>, %out: memref<2xf32>) {
  linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<2x64xf32>) outs(%out : memref<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %s = arith.addf %a, %acc fastmath<reassoc> : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<2x64xf32>) outs(%out : memref<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %s = arith.addf %a, %acc : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// Left alone: an inner loop of 2 (fewer than 4 lanes), and a dot's
// reduction (not the innermost loop). (A transposed read is vectorized
// along dim 0 and transposed in registers: vectorize-elementwise-transposed.mlir.)
#id = affine_map<(i, j) -> (i, j)>
#a = affine_map<(i, k, j) -> (i, k)>
#b = affine_map<(i, k, j) -> (k, j)>
#c = affine_map<(i, k, j) -> (i, j)>
// CHECK-LABEL: func.func @left_alone
// CHECK-COUNT-2: linalg.generic
// CHECK-NOT: vector.
func.func @left_alone(%x: memref<16x16xf32>, %y: memref<16x2xf32>, %out: memref<16x16xf32>, %out2: memref<16x2xf32>) {
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%y : memref<16x2xf32>) outs(%out2 : memref<16x2xf32>) {
  ^bb0(%a: f32, %o: f32):
    %n = arith.negf %a : f32
    linalg.yield %n : f32
  }
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %x : memref<16x16xf32>, memref<16x16xf32>) outs(%out : memref<16x16xf32>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// Offsets known to be consecutive across lanes (base + linalg.index, through
// casts and adds) make a masked load one contiguous masked vector load: the
// lane mask goes to vector.maskedload, so masked-off lanes are not touched.
// A row-uniform mask branches around a plain vector.load (masked 16-bit
// loads have no AVX2 instruction); a lane stride of 2 stays a gather.
#id = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
// CHECK-LABEL: func.func @contiguous_masked_loads
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:   scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:     %[[J64:.*]] = arith.index_cast %[[J]] : index to i64
// CHECK:     %[[OFF:.*]] = arith.addi %{{.*}}, %[[J64]] : i64
// CHECK:     %[[AT:.*]] = arith.index_cast %[[OFF]] : i64 to index
// CHECK:     %[[M:.*]] = arith.cmpi slt
// CHECK:     vector.maskedload %arg0[%[[AT]]], %[[M]], %{{.*}} : memref<?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
// CHECK:     scf.if %{{.*}} -> (vector<16xf32>) {
// CHECK:       vector.load %arg0[%[[AT]]] : memref<?xf32>, vector<16xf32>
// CHECK:     } else {
// CHECK:       memref.load %arg0[%{{.*}}] : memref<?xf32>
// CHECK:       vector.broadcast
// CHECK:     vector.gather %arg0
func.func @contiguous_masked_loads(%src: memref<?xf32>, %rowOff: memref<2xi64>, %rowOk: memref<2xi1>,
                                   %n: i64, %out: memref<2x32xf32>, %out2: memref<2x32xf32>,
                                   %out3: memref<2x32xf32>) {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : i64
  %zero = arith.constant 0.0 : f32
  linalg.generic {indexing_maps = [#row, #row, #id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%rowOff, %rowOk : memref<2xi64>, memref<2xi1>) outs(%out, %out2, %out3 : memref<2x32xf32>, memref<2x32xf32>, memref<2x32xf32>) {
  ^bb0(%base: i64, %ok: i1, %o1: f32, %o2: f32, %o3: f32):
    %j = linalg.index 1 : index
    %j64 = arith.index_cast %j : index to i64
    %off = arith.addi %base, %j64 : i64
    %at = arith.index_cast %off : i64 to index
    %colOk = arith.cmpi slt, %j64, %n : i64
    %safe = arith.select %colOk, %at, %c0 : index
    %v = memref.load %src[%safe] : memref<?xf32>
    %r1 = arith.select %colOk, %v, %zero : f32
    %safeRow = arith.select %ok, %at, %c0 : index
    %w = memref.load %src[%safeRow] : memref<?xf32>
    %r2 = arith.select %ok, %w, %zero : f32
    %j2 = arith.muli %j64, %c2 : i64
    %strided = arith.addi %base, %j2 : i64
    %at2 = arith.index_cast %strided : i64 to index
    %x = memref.load %src[%at2] : memref<?xf32>
    linalg.yield %r1, %r2, %x : f32, f32, f32
  }
  return
}

// -----

// Exact scalar semantics for loads the pattern does not fully cover:
// - a redirected load used without re-selecting: masked-off lanes hold
//   src[0] (what the scalar code loads), not 0;
// - an i1 buffer read at varying indices: lane by lane (a byte per i1);
// - offsets through a zero extension (not affine across the sign change):
//   a gather.
#id = affine_map<(j) -> (j)>
// CHECK-LABEL: func.func @exact_loads
// CHECK: %[[FIRST:.*]] = memref.load %arg0[%[[C0:.*]]] : memref<?xf32>
// CHECK: %[[PASS:.*]] = vector.broadcast %[[FIRST]] : f32 to vector<16xf32>
// CHECK: vector.maskedload %arg0[%{{.*}}], %{{.*}}, %[[PASS]]
// CHECK-COUNT-16: memref.load %arg1[%{{.*}}] : memref<?xi1>
// CHECK: vector.from_elements
// CHECK: arith.extui %{{.*}} : vector<16xi32> to vector<16xi64>
// CHECK: vector.gather %arg0
func.func @exact_loads(%src: memref<?xf32>, %flags: memref<?xi1>, %n: index,
                       %o1: memref<16xf32>, %o2: memref<16xi1>, %o3: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c3 = arith.constant 3 : i32
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      outs(%o1, %o2, %o3 : memref<16xf32>, memref<16xi1>, memref<16xf32>) {
  ^bb0(%a: f32, %b: i1, %c: f32):
    %j = linalg.index 0 : index
    %ok = arith.cmpi slt, %j, %n : index
    %safe = arith.select %ok, %j, %c0 : index
    %v = memref.load %src[%safe] : memref<?xf32>
    %f = memref.load %flags[%j] : memref<?xi1>
    %j32 = arith.index_cast %j : index to i32
    %d = arith.subi %j32, %c3 : i32
    %u = arith.extui %d : i32 to i64
    %at = arith.index_cast %u : i64 to index
    %w = memref.load %src[%at] : memref<?xf32>
    linalg.yield %v, %f, %w : f32, i1, f32
  }
  return
}

// -----

// A varying read of a strided 1-D buffer is left alone (vector loads and
// gathers address base + index).
#id = affine_map<(j) -> (j)>
// CHECK-LABEL: func.func @strided_buffer
// CHECK: linalg.generic
// CHECK-NOT: vector.
func.func @strided_buffer(%src: memref<?xf32, strided<[2]>>, %out: memref<16xf32>) {
  linalg.generic {indexing_maps = [#id], iterator_types = ["parallel"]}
      outs(%out : memref<16xf32>) {
  ^bb0(%o: f32):
    %j = linalg.index 0 : index
    %v = memref.load %src[%j] : memref<?xf32, strided<[2]>>
    linalg.yield %v : f32
  }
  return
}
