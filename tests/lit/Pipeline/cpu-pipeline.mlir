// RUN: loom-opt %s --loom-cpu-pipeline | FileCheck %s
// RUN: loom-opt %s --loom-cpu-pipeline | FileCheck %s --check-prefix=NOT

// The softmax kernel lowered by the whole CPU pipeline (loom -> linalg ->
// bufferized loops -> LLVM dialect) is left with nothing but llvm dialect ops.

// Each !loom.ptr<f32> becomes an expanded memref<?xf32> descriptor
// (allocated ptr, aligned ptr, offset, size, stride), followed by the two i32
// scalars and the six i32 grid arguments.
// CHECK-LABEL: llvm.func @softmax
// CHECK-SAME: (%{{[^:]+}}: !llvm.ptr, %{{[^:]+}}: !llvm.ptr, %{{[^:]+}}: i64, %{{[^:]+}}: i64, %{{[^:]+}}: i64,
// CHECK-SAME: %{{[^:]+}}: !llvm.ptr, %{{[^:]+}}: !llvm.ptr, %{{[^:]+}}: i64, %{{[^:]+}}: i64, %{{[^:]+}}: i64,
// CHECK-SAME: %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32, %{{[^:]+}}: i32)
// CHECK-SAME: loom.arg_names = ["x", "y", "n_cols", "row_stride", "pid0", "pid1", "pid2", "nprog0", "nprog1", "nprog2"]
// CHECK-SAME: loom.kernel
// The masked row load, vectorized (loom-vectorize-elementwise; the width is
// the host's): its offsets are consecutive, so one masked vector load that
// leaves masked-off lanes untouched, then `other` selected into them.
// CHECK: %[[ROW:.*]] = llvm.intr.masked.load %{{.*}} : (!llvm.ptr, vector<[[N:[0-9]+]]xi1>, vector<[[N]]xf32>) -> vector<[[N]]xf32>
// CHECK: llvm.select %{{.*}}, %[[ROW]], %{{.*}} : vector<[[N]]xi1>, vector<[[N]]xf32>
// NaN-propagating max: lane-wise (arith.maximumf expanded), then across lanes.
// CHECK: llvm.fcmp "ugt" %{{.*}}, %{{.*}} : vector<[[N]]xf32>
// CHECK: llvm.intr.vector.reduce.fmaximum
// exp2 inlined as a polynomial (loom-approximate-math): no libm call, and
// multiply-adds the code generator fuses only where the target has FMA (no
// llvm.intr.fma, which becomes a software fmaf call on x86-64-v2).
// CHECK-NOT: llvm.intr.exp2
// CHECK: llvm.intr.roundeven
// CHECK-NOT: llvm.intr.fma
// CHECK-COUNT-7: llvm.fadd {{.*}} {fastmathFlags = #llvm.fastmath<contract>}
// CHECK-NOT: llvm.intr.exp2
// CHECK: llvm.fdiv %{{.*}}, %{{.*}} : vector<[[N]]xf32>
// Masked store of the result.
// CHECK: llvm.store %{{.*}}, %{{.*}} : f32, !llvm.ptr
// CHECK: llvm.return

// Nothing but llvm ops anywhere in the output (the loom.* attributes stay).
// NOT-NOT: {{^ *(%[^=]+= )?"?(loom|linalg|memref|tensor|bufferization|scf|cf|arith|math|func|affine)\.}}
// NOT-NOT: unrealized_conversion_cast
// NOT-NOT: !loom.ptr
// NOT-NOT: tensor<
// NOT-NOT: memref<

func.func @softmax(%x: !loom.ptr<f32>, %y: !loom.ptr<f32>, %n: i32, %stride: i32)
    attributes {loom.kernel, loom.arg_names = ["x", "y", "n_cols", "row_stride"]} {
  %row = loom.program_id 0 : i32
  %cols = loom.arange 0 to 128 : tensor<128xi32>
  %base = arith.muli %row, %stride : i32
  %bt = loom.splat %base : tensor<128xi32>
  %offs = arith.addi %bt, %cols : tensor<128xi32>
  %nt = loom.splat %n : tensor<128xi32>
  %m = arith.cmpi slt, %cols, %nt : tensor<128xi32>
  %ninf = arith.constant 0xFF800000 : f32
  %o = loom.splat %ninf : tensor<128xf32>
  %v = loom.load %x[%offs] mask %m : tensor<128xi1> other %o : tensor<128xf32>
      : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  %mx = loom.reduce max %v, 0 : tensor<128xf32> -> tensor<f32>
  %mx1 = loom.expand_dims %mx, 0 : tensor<f32> -> tensor<1xf32>
  %mxb = loom.broadcast %mx1 : tensor<1xf32> -> tensor<128xf32>
  %d = arith.subf %v, %mxb : tensor<128xf32>
  %e = math.exp2 %d : tensor<128xf32>
  %s = loom.reduce sum %e, 0 : tensor<128xf32> -> tensor<f32>
  %s1 = loom.expand_dims %s, 0 : tensor<f32> -> tensor<1xf32>
  %sb = loom.broadcast %s1 : tensor<1xf32> -> tensor<128xf32>
  %r = arith.divf %e, %sb : tensor<128xf32>
  loom.store %r, %y[%offs] mask %m : tensor<128xi1>
      : tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>
  return
}
