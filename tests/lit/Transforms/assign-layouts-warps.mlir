// RUN: loom-opt %s --loom-assign-layouts="num-threads=256" | FileCheck %s
// RUN: not loom-opt %s --loom-assign-layouts="num-threads=48" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: error: num-threads must be a positive multiple of 32 up to 1024, got 48

// Eight warps: a 64x64 tile puts 4 along M (one 16-row atom row each) and
// 2 along N; a 16x16 tile cannot give every warp a 16x8 atom and stays
// blocked, so its row reduction does too.

// CHECK-LABEL: func.func @warps
// CHECK: loom.dot {{.*}} -> tensor<64x64xf32, #loom.mma<warpsM = 4, warpsN = 2>>
// CHECK: loom.reduce sum {{.*}} -> tensor<64xf32, #loom.mma_rows<warpsM = 4, warpsN = 2>>
// CHECK: loom.dot {{.*}} -> tensor<16x16xf32>
// CHECK: loom.reduce sum {{.*}} : tensor<16x16xf32> -> tensor<16xf32>
func.func @warps(%a: !loom.ptr<f16>, %f: !loom.ptr<f32>) attributes {loom.kernel, loom.arg_names = ["a", "f"]} {
  %r = loom.arange 0 to 64 : tensor<64xi32>
  %r2 = loom.expand_dims %r, 1 : tensor<64xi32> -> tensor<64x1xi32>
  %offs = loom.broadcast %r2 : tensor<64x1xi32> -> tensor<64x64xi32>
  %x = loom.load %a[%offs] : !loom.ptr<f16>, tensor<64x64xi32> -> tensor<64x64xf16>
  %z = arith.constant 0.0 : f32
  %zero = loom.splat %z : tensor<64x64xf32>
  %d = loom.dot %x, %x, %zero : tensor<64x64xf16>, tensor<64x64xf16> -> tensor<64x64xf32>
  %s = loom.reduce sum %d, 1 : tensor<64x64xf32> -> tensor<64xf32>
  loom.store %s, %f[%r] : tensor<64xf32>, !loom.ptr<f32>, tensor<64xi32>
  %q = loom.arange 0 to 16 : tensor<16xi32>
  %q2 = loom.expand_dims %q, 1 : tensor<16xi32> -> tensor<16x1xi32>
  %o16 = loom.broadcast %q2 : tensor<16x1xi32> -> tensor<16x16xi32>
  %y = loom.load %a[%o16] : !loom.ptr<f16>, tensor<16x16xi32> -> tensor<16x16xf16>
  %zero16 = loom.splat %z : tensor<16x16xf32>
  %e = loom.dot %y, %y, %zero16 : tensor<16x16xf16>, tensor<16x16xf16> -> tensor<16x16xf32>
  %t = loom.reduce sum %e, 1 : tensor<16x16xf32> -> tensor<16xf32>
  loom.store %t, %f[%q] : tensor<16xf32>, !loom.ptr<f32>, tensor<16xi32>
  return
}
