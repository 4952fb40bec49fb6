// RUN: loom-opt %s -split-input-file --loom-assign-layouts="num-threads=128" | FileCheck %s

// Matmul: the tensor-core dot anchors #loom.mma (4 warps on a 32x32 tile:
// 2 along M, 2 along N); the accumulator carried by the loop takes it, its
// zero init is a splat recomputed in it, and the store gets a blocked copy.

// CHECK-LABEL: func.func @matmul
// CHECK: %[[ZERO:.*]] = loom.splat %{{.*}} : tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>>
// CHECK: %[[ACC:.*]] = scf.for {{.*}} iter_args(%[[C:.*]] = %[[ZERO]]) -> (tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>>)
// CHECK: %[[A:.*]] = loom.load {{.*}} -> tensor<32x32xbf16>
// CHECK: %[[D:.*]] = loom.dot %[[A]], %{{.*}}, %[[C]] : tensor<32x32xbf16>, tensor<32x32xbf16> -> tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>>
// CHECK: scf.yield %[[D]] : tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>>
// CHECK: %[[B:.*]] = loom.convert_layout %[[ACC]] : tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>> -> tensor<32x32xf32>
// CHECK: loom.store %[[B]], {{.*}} : tensor<32x32xf32>
func.func @matmul(%a: !loom.ptr<bf16>, %c: !loom.ptr<f32>, %n: i32) attributes {loom.kernel, loom.arg_names = ["a", "c", "n"]} {
  %r = loom.arange 0 to 32 : tensor<32xi32>
  %r2 = loom.expand_dims %r, 1 : tensor<32xi32> -> tensor<32x1xi32>
  %offs = loom.broadcast %r2 : tensor<32x1xi32> -> tensor<32x32xi32>
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<32x32xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %acc = scf.for %i = %c0 to %n step %c1 iter_args(%carried = %zero) -> (tensor<32x32xf32>) : i32 {
    %x = loom.load %a[%offs] : !loom.ptr<bf16>, tensor<32x32xi32> -> tensor<32x32xbf16>
    %d = loom.dot %x, %x, %carried : tensor<32x32xbf16>, tensor<32x32xbf16> -> tensor<32x32xf32>
    scf.yield %d : tensor<32x32xf32>
  }
  loom.store %acc, %c[%offs] : tensor<32x32xf32>, !loom.ptr<f32>, tensor<32x32xi32>
  return
}

// -----

// Online softmax (attention's inner loop): S = Q K^T in mma, its row max in
// mma_rows carried by the loop, broadcast back per thread; the mask built
// from index vectors is recomputed in the mma layout (its [M, 1] rows in
// mma_rows, its [1, N] columns in mma_cols), O (carried) stays in mma, and the final division happens there
// before one conversion for the store.

// CHECK-LABEL: func.func @attention
// CHECK: %[[COLS:.*]] = loom.arange 0 to 64 : tensor<64xi32, #loom.mma_cols<warpsM = 4, warpsN = 1>>
// CHECK: %[[COLS2:.*]] = loom.expand_dims %[[COLS]], 0 : tensor<64xi32, #loom.mma_cols<warpsM = 4, warpsN = 1>> -> tensor<1x64xi32, #loom.mma_cols<warpsM = 4, warpsN = 1>>
// CHECK: scf.for {{.*}} -> (tensor<64xf32, #loom.mma_rows<warpsM = 4, warpsN = 1>>, tensor<64x32xf32, #loom.mma<warpsM = 4, warpsN = 1>>)
// CHECK: %[[S:.*]] = loom.dot {{.*}} -> tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: %[[ROWS:.*]] = loom.arange 0 to 64 : tensor<64xi32, #loom.mma_rows<warpsM = 4, warpsN = 1>>
// CHECK: loom.expand_dims %[[ROWS]], 1 : tensor<64xi32, #loom.mma_rows<warpsM = 4, warpsN = 1>> -> tensor<64x1xi32, #loom.mma_rows<warpsM = 4, warpsN = 1>>
// CHECK: loom.broadcast {{.*}} : tensor<64x1xi32, #loom.mma_rows<warpsM = 4, warpsN = 1>> -> tensor<64x64xi32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: loom.broadcast %[[COLS2]] : tensor<1x64xi32, #loom.mma_cols<warpsM = 4, warpsN = 1>> -> tensor<64x64xi32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: arith.cmpi sle, {{.*}} : tensor<64x64xi32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: arith.select {{.*}} : tensor<64x64xi1, #loom.mma<warpsM = 4, warpsN = 1>>, tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: loom.reduce max {{.*}} : tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>> -> tensor<64xf32, #loom.mma_rows<warpsM = 4, warpsN = 1>>
// CHECK: loom.broadcast {{.*}} : tensor<64x1xf32, #loom.mma_rows<warpsM = 4, warpsN = 1>> -> tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: math.exp2 {{.*}} : tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: arith.truncf {{.*}} : tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 1>> to tensor<64x64xbf16, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: loom.dot {{.*}} : tensor<64x64xbf16, #loom.mma<warpsM = 4, warpsN = 1>>, tensor<64x32xbf16> -> tensor<64x32xf32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: scf.yield
// CHECK: %[[M:.*]] = loom.convert_layout {{.*}} : tensor<64xf32, #loom.mma_rows<warpsM = 4, warpsN = 1>> -> tensor<64xf32>
// CHECK: arith.divf {{.*}} : tensor<64x32xf32, #loom.mma<warpsM = 4, warpsN = 1>>
// CHECK: %[[O:.*]] = loom.convert_layout {{.*}} : tensor<64x32xf32, #loom.mma<warpsM = 4, warpsN = 1>> -> tensor<64x32xf32>
// CHECK: loom.store %[[O]]
// CHECK: loom.store %[[M]]
func.func @attention(%q: !loom.ptr<bf16>, %o: !loom.ptr<f32>, %n: i32) attributes {loom.kernel, loom.arg_names = ["q", "o", "n"]} {
  %r = loom.arange 0 to 64 : tensor<64xi32>
  %r2 = loom.expand_dims %r, 1 : tensor<64xi32> -> tensor<64x1xi32>
  %offs = loom.broadcast %r2 : tensor<64x1xi32> -> tensor<64x32xi32>
  %r32 = loom.arange 0 to 32 : tensor<32xi32>
  %r32e = loom.expand_dims %r32, 1 : tensor<32xi32> -> tensor<32x1xi32>
  %offsT = loom.broadcast %r32e : tensor<32x1xi32> -> tensor<32x64xi32>
  %c3 = loom.expand_dims %r, 0 : tensor<64xi32> -> tensor<1x64xi32>
  %qt = loom.load %q[%offs] : !loom.ptr<bf16>, tensor<64x32xi32> -> tensor<64x32xbf16>
  %kt = loom.load %q[%offs] : !loom.ptr<bf16>, tensor<64x32xi32> -> tensor<64x32xbf16>
  %ninf = arith.constant 0xFF800000 : f32
  %z = arith.constant 0.0 : f32
  %m0 = loom.splat %ninf : tensor<64xf32>
  %o0 = loom.splat %z : tensor<64x32xf32>
  %zs = loom.splat %z : tensor<64x64xf32>
  %ninfs = loom.splat %ninf : tensor<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %res:2 = scf.for %j = %c0 to %n step %c1 iter_args(%m = %m0, %acc = %o0) -> (tensor<64xf32>, tensor<64x32xf32>) : i32 {
    %kT = loom.load %q[%offsT] : !loom.ptr<bf16>, tensor<32x64xi32> -> tensor<32x64xbf16>
    %qk = loom.dot %qt, %kT, %zs : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
    %rr = loom.arange 0 to 64 : tensor<64xi32>
    %rr2 = loom.expand_dims %rr, 1 : tensor<64xi32> -> tensor<64x1xi32>
    %rb = loom.broadcast %rr2 : tensor<64x1xi32> -> tensor<64x64xi32>
    %cb = loom.broadcast %c3 : tensor<1x64xi32> -> tensor<64x64xi32>
    %vis = arith.cmpi sle, %cb, %rb : tensor<64x64xi32>
    %s = arith.select %vis, %qk, %ninfs : tensor<64x64xi1>, tensor<64x64xf32>
    %rowmax = loom.reduce max %s, 1 : tensor<64x64xf32> -> tensor<64xf32>
    %mnew = arith.maximumf %m, %rowmax : tensor<64xf32>
    %mn2 = loom.expand_dims %mnew, 1 : tensor<64xf32> -> tensor<64x1xf32>
    %mb = loom.broadcast %mn2 : tensor<64x1xf32> -> tensor<64x64xf32>
    %sub = arith.subf %s, %mb : tensor<64x64xf32>
    %p = math.exp2 %sub : tensor<64x64xf32>
    %pb = arith.truncf %p : tensor<64x64xf32> to tensor<64x64xbf16>
    %pv = loom.dot %pb, %kt, %acc : tensor<64x64xbf16>, tensor<64x32xbf16> -> tensor<64x32xf32>
    scf.yield %mnew, %pv : tensor<64xf32>, tensor<64x32xf32>
  }
  %m2 = loom.expand_dims %res#0, 1 : tensor<64xf32> -> tensor<64x1xf32>
  %mb2 = loom.broadcast %m2 : tensor<64x1xf32> -> tensor<64x32xf32>
  %out = arith.divf %res#1, %mb2 : tensor<64x32xf32>
  loom.store %out, %o[%offs] : tensor<64x32xf32>, !loom.ptr<f32>, tensor<64x32xi32>
  loom.store %res#0, %o[%r] : tensor<64xf32>, !loom.ptr<f32>, tensor<64xi32>
  return
}

// -----

// Without a tensor-core dot nothing changes: f32 operands, and a K that is
// not a multiple of 16, keep the blocked layout.

// CHECK-LABEL: func.func @no_anchor
// CHECK-NOT: #loom
// CHECK-NOT: loom.convert_layout
func.func @no_anchor(%a: !loom.ptr<f32>, %b: !loom.ptr<bf16>, %n: i32) attributes {loom.kernel, loom.arg_names = ["a", "b", "n"]} {
  %r = loom.arange 0 to 32 : tensor<32xi32>
  %r2 = loom.expand_dims %r, 1 : tensor<32xi32> -> tensor<32x1xi32>
  %offs = loom.broadcast %r2 : tensor<32x1xi32> -> tensor<32x32xi32>
  %offs8 = loom.broadcast %r2 : tensor<32x1xi32> -> tensor<32x8xi32>
  %offs8t = loom.arange 0 to 8 : tensor<8xi32>
  %o8 = loom.expand_dims %offs8t, 1 : tensor<8xi32> -> tensor<8x1xi32>
  %o8b = loom.broadcast %o8 : tensor<8x1xi32> -> tensor<8x32xi32>
  %x = loom.load %a[%offs] : !loom.ptr<f32>, tensor<32x32xi32> -> tensor<32x32xf32>
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<32x32xf32>
  %d = loom.dot %x, %x, %zero : tensor<32x32xf32>, tensor<32x32xf32> -> tensor<32x32xf32>
  %y = loom.load %b[%offs8] : !loom.ptr<bf16>, tensor<32x8xi32> -> tensor<32x8xbf16>
  %w = loom.load %b[%o8b] : !loom.ptr<bf16>, tensor<8x32xi32> -> tensor<8x32xbf16>
  %e = loom.dot %y, %w, %d : tensor<32x8xbf16>, tensor<8x32xbf16> -> tensor<32x32xf32>
  loom.store %e, %a[%offs] : tensor<32x32xf32>, !loom.ptr<f32>, tensor<32x32xi32>
  return
}

// -----

// A tile loaded inside the loop and added to the mma accumulator is
// converted (not recomputable); a column reduction of the mma tile goes
// through shared memory into a blocked result.

// CHECK-LABEL: func.func @converted_operand
// CHECK: %[[X:.*]] = loom.load {{.*}} -> tensor<32x32xf32>
// CHECK-NEXT: %[[XC:.*]] = loom.convert_layout %[[X]] : tensor<32x32xf32> -> tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>>
// CHECK: arith.addf %{{.*}}, %[[XC]] : tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>>
// CHECK: loom.reduce sum {{.*}}, 0 : tensor<32x32xf32, #loom.mma<warpsM = 2, warpsN = 2>> -> tensor<32xf32>
func.func @converted_operand(%a: !loom.ptr<bf16>, %f: !loom.ptr<f32>) attributes {loom.kernel, loom.arg_names = ["a", "f"]} {
  %r = loom.arange 0 to 32 : tensor<32xi32>
  %r2 = loom.expand_dims %r, 1 : tensor<32xi32> -> tensor<32x1xi32>
  %offs = loom.broadcast %r2 : tensor<32x1xi32> -> tensor<32x32xi32>
  %y = loom.load %a[%offs] : !loom.ptr<bf16>, tensor<32x32xi32> -> tensor<32x32xbf16>
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<32x32xf32>
  %d = loom.dot %y, %y, %zero : tensor<32x32xbf16>, tensor<32x32xbf16> -> tensor<32x32xf32>
  %x = loom.load %f[%offs] : !loom.ptr<f32>, tensor<32x32xi32> -> tensor<32x32xf32>
  %s = arith.addf %d, %x : tensor<32x32xf32>
  %col = loom.reduce sum %s, 0 : tensor<32x32xf32> -> tensor<32xf32>
  loom.store %col, %f[%r] : tensor<32xf32>, !loom.ptr<f32>, tensor<32xi32>
  return
}
