// RUN: loom-opt %s -split-input-file -verify-diagnostics

// Layout encodings are checked against the tile's shape, and ops check the
// layouts the CUDA device library can lower.

// expected-error @+1 {{#loom.mma<warpsM = 4, warpsN = 1> needs a 2-D tile whose dimensions are multiples of 64x8, got 32x32}}
func.func @mma_shape(%x: tensor<32x32xf32, #loom.mma<warpsM = 4, warpsN = 1>>) {
  return
}

// -----

// expected-error @+1 {{#loom.mma_rows<warpsM = 2, warpsN = 2> needs an [M] or [M, 1] tile with M a multiple of 32, got 32x2}}
func.func @mma_rows_shape(%x: tensor<32x2xf32, #loom.mma_rows<warpsM = 2, warpsN = 2>>) {
  return
}

// -----

// expected-error @+1 {{#loom.mma_cols<warpsM = 2, warpsN = 2> needs an [N] or [1, N] tile with N a multiple of 16, got 2x32}}
func.func @mma_cols_shape(%x: tensor<2x32xi32, #loom.mma_cols<warpsM = 2, warpsN = 2>>) {
  return
}

// -----

// expected-error @+1 {{#loom.mma_cols<warpsM = 4, warpsN = 1> needs an [N] or [1, N] tile with N a multiple of 8, got 12}}
func.func @mma_cols_width(%x: tensor<12xi32, #loom.mma_cols<warpsM = 4, warpsN = 1>>) {
  return
}

// -----

// expected-error @+1 {{#loom.mma needs at least one warp along each dimension}}
func.func @mma_no_warps(%x: tensor<32x32xf32, #loom.mma<warpsM = 0, warpsN = 4>>) {
  return
}

// -----

func.func @store_mma(%p: !loom.ptr<f32>, %v: tensor<64x8xf32, #loom.mma<warpsM = 4, warpsN = 1>>, %o: tensor<64x8xi32>) {
  // expected-error @+1 {{'loom.store' op tiles must be blocked (no layout encoding), got 'tensor<64x8xf32, #loom.mma<warpsM = 4, warpsN = 1>>'}}
  loom.store %v, %p[%o] : tensor<64x8xf32, #loom.mma<warpsM = 4, warpsN = 1>>, !loom.ptr<f32>, tensor<64x8xi32>
  return
}

// -----

func.func @dot_f32_mma(%a: tensor<64x16xf32>, %b: tensor<16x8xf32>, %acc: tensor<64x8xf32, #loom.mma<warpsM = 4, warpsN = 1>>) {
  // expected-error @+1 {{'loom.dot' op a #loom.mma accumulator needs f16 or bf16 operands and K a multiple of 16, got 'tensor<64x16xf32>'}}
  %d = loom.dot %a, %b, %acc : tensor<64x16xf32>, tensor<16x8xf32> -> tensor<64x8xf32, #loom.mma<warpsM = 4, warpsN = 1>>
  return
}

// -----

func.func @reduce_rows_blocked(%s: tensor<64x8xf32>) {
  // expected-error @+1 {{'loom.reduce' op result layout must be blocked, or the #loom.mma_rows of a #loom.mma source reduced along axis 1}}
  %r = loom.reduce max %s, 1 : tensor<64x8xf32> -> tensor<64xf32, #loom.mma_rows<warpsM = 4, warpsN = 1>>
  return
}

// -----

func.func @expand_changes_layout(%r: tensor<64xf32>) {
  // expected-error @+1 {{'loom.expand_dims' op keeps the layout: blocked to blocked, #loom.mma_rows [M] to the same [M, 1] at axis 1, or #loom.mma_cols [N] to the same [1, N] at axis 0}}
  %e = loom.expand_dims %r, 1 : tensor<64xf32> -> tensor<64x1xf32, #loom.mma_rows<warpsM = 4, warpsN = 1>>
  return
}

// -----

func.func @convert_shape(%x: tensor<64x8xf32>) {
  // expected-error @+1 {{'loom.convert_layout' op requires the same shape for all operands and results}}
  %c = loom.convert_layout %x : tensor<64x8xf32> -> tensor<64x16xf32, #loom.mma<warpsM = 4, warpsN = 1>>
  return
}
