// RUN: loom-opt %s -split-input-file -verify-diagnostics

// One case per verifier error of the loom dialect, each message checked
// verbatim (see compiler/lib/Dialect/Loom/IR/LoomOps.cpp).

//===----------------------------------------------------------------------===//
// program_id / num_programs
//===----------------------------------------------------------------------===//

func.func @program_id_axis_3() {
  // expected-error @+1 {{'loom.program_id' op attribute 'axis' failed to satisfy constraint: 32-bit signless integer attribute whose minimum value is 0 whose maximum value is 2}}
  %0 = loom.program_id 3 : i32
  return
}

// -----

func.func @num_programs_negative_axis() {
  // expected-error @+1 {{'loom.num_programs' op attribute 'axis' failed to satisfy constraint: 32-bit signless integer attribute whose minimum value is 0 whose maximum value is 2}}
  %0 = loom.num_programs -1 : i32
  return
}

// -----

//===----------------------------------------------------------------------===//
// !loom.ptr
//===----------------------------------------------------------------------===//

// expected-error @+1 {{pointer element type must be f32, f16, bf16, i32, i64 or i1, got 'f64'}}
func.func @ptr_f64(%p: !loom.ptr<f64>) {
  return
}

// -----

// expected-error @+1 {{pointer element type must be f32, f16, bf16, i32, i64 or i1, got 'tensor<4xf32>'}}
func.func @ptr_to_tensor(%p: !loom.ptr<tensor<4xf32>>) {
  return
}

// -----

//===----------------------------------------------------------------------===//
// arange
//===----------------------------------------------------------------------===//

func.func @arange_empty() {
  // expected-error @+1 {{'loom.arange' op requires end > start, got start 4 and end 4}}
  %0 = loom.arange 4 to 4 : tensor<1xi32>
  return
}

// -----

func.func @arange_reversed() {
  // expected-error @+1 {{'loom.arange' op requires end > start, got start 8 and end 0}}
  %0 = loom.arange 8 to 0 : tensor<8xi32>
  return
}

// -----

func.func @arange_wrong_length() {
  // expected-error @+1 {{'loom.arange' op result must be a 1-D tile of 64 elements, got 32}}
  %0 = loom.arange 0 to 64 : tensor<32xi32>
  return
}

// -----

func.func @arange_not_1d() {
  // expected-error @+1 {{'loom.arange' op result must be a 1-D tile of 64 elements, got 8x8}}
  %0 = loom.arange 0 to 64 : tensor<8x8xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// trans
//===----------------------------------------------------------------------===//

func.func @trans_of_1d(%r: tensor<64xf32>) {
  // expected-error @+1 {{'loom.trans' op expects a 2-D tile, got 64}}
  %0 = loom.trans %r : tensor<64xf32> -> tensor<64xf32>
  return
}

// -----

func.func @trans_not_swapped(%x: tensor<64x32xf32>) {
  // expected-error @+1 {{'loom.trans' op expected result shape 32x64, got 64x32}}
  %0 = loom.trans %x : tensor<64x32xf32> -> tensor<64x32xf32>
  return
}

// -----

func.func @trans_element_type(%x: tensor<64x32xf32>) {
  // expected-error @+1 {{'loom.trans' op failed to verify that all of {src, result} have same element type}}
  %0 = loom.trans %x : tensor<64x32xf32> -> tensor<32x64xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// expand_dims
//===----------------------------------------------------------------------===//

func.func @expand_dims_axis_too_large(%r: tensor<64xf32>) {
  // expected-error @+1 {{'loom.expand_dims' op axis 2 out of range for a tile of rank 1}}
  %0 = loom.expand_dims %r, 2 : tensor<64xf32> -> tensor<64x1xf32>
  return
}

// -----

func.func @expand_dims_wrong_shape(%r: tensor<64xf32>) {
  // expected-error @+1 {{'loom.expand_dims' op expected result shape 1x64, got 64x1}}
  %0 = loom.expand_dims %r, 0 : tensor<64xf32> -> tensor<64x1xf32>
  return
}

// -----

func.func @expand_dims_scalar_result(%s: tensor<f32>) {
  // expected-error @+1 {{'loom.expand_dims' op expected result shape 1, got scalar}}
  %0 = loom.expand_dims %s, 0 : tensor<f32> -> tensor<f32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// broadcast
//===----------------------------------------------------------------------===//

func.func @broadcast_rank_mismatch(%c: tensor<64xf32>) {
  // expected-error @+1 {{'loom.broadcast' op source rank 1 differs from result rank 2}}
  %0 = loom.broadcast %c : tensor<64xf32> -> tensor<64x128xf32>
  return
}

// -----

func.func @broadcast_incompatible_dim(%c: tensor<64x2xf32>) {
  // expected-error @+1 {{'loom.broadcast' op cannot broadcast 64x2 to 64x128 (dimension 1)}}
  %0 = loom.broadcast %c : tensor<64x2xf32> -> tensor<64x128xf32>
  return
}

// -----

func.func @broadcast_shrink(%c: tensor<64x1xf32>) {
  // expected-error @+1 {{'loom.broadcast' op cannot broadcast 64x1 to 32x8 (dimension 0)}}
  %0 = loom.broadcast %c : tensor<64x1xf32> -> tensor<32x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// load
//===----------------------------------------------------------------------===//

func.func @load_element_type(%x: !loom.ptr<f32>, %o: tensor<128xi32>) {
  // expected-error @+1 {{'loom.load' op result element type 'f16' differs from pointer element type 'f32'}}
  %0 = loom.load %x[%o] : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf16>
  return
}

// -----

func.func @load_shape(%x: !loom.ptr<f32>, %o: tensor<128xi32>) {
  // expected-error @+1 {{'loom.load' op result shape 64x2 differs from offsets shape 128}}
  %0 = loom.load %x[%o] : !loom.ptr<f32>, tensor<128xi32> -> tensor<64x2xf32>
  return
}

// -----

func.func @load_mask_shape(%x: !loom.ptr<f32>, %o: tensor<128xi32>, %m: tensor<64xi1>) {
  // expected-error @+1 {{'loom.load' op mask shape 64 differs from offsets shape 128}}
  %0 = loom.load %x[%o] mask %m : tensor<64xi1> : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  return
}

// -----

func.func @load_other_element_type(%x: !loom.ptr<f32>, %o: tensor<128xi32>,
                                   %m: tensor<128xi1>, %d: tensor<128xf16>) {
  // expected-error @+1 {{'loom.load' op 'other' type 'tensor<128xf16>' differs from result type 'tensor<128xf32>'}}
  %0 = loom.load %x[%o] mask %m : tensor<128xi1> other %d : tensor<128xf16> : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  return
}

// -----

func.func @load_other_shape(%x: !loom.ptr<f32>, %o: tensor<128xi32>,
                            %m: tensor<128xi1>, %d: tensor<1xf32>) {
  // expected-error @+1 {{'loom.load' op 'other' type 'tensor<1xf32>' differs from result type 'tensor<128xf32>'}}
  %0 = loom.load %x[%o] mask %m : tensor<128xi1> other %d : tensor<1xf32> : !loom.ptr<f32>, tensor<128xi32> -> tensor<128xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// store
//===----------------------------------------------------------------------===//

func.func @store_element_type(%v: tensor<128xi32>, %y: !loom.ptr<f32>, %o: tensor<128xi32>) {
  // expected-error @+1 {{'loom.store' op value element type 'i32' differs from pointer element type 'f32'}}
  loom.store %v, %y[%o] : tensor<128xi32>, !loom.ptr<f32>, tensor<128xi32>
  return
}

// -----

func.func @store_value_shape(%v: tensor<4x32xf32>, %y: !loom.ptr<f32>, %o: tensor<128xi32>) {
  // expected-error @+1 {{'loom.store' op value shape 4x32 differs from offsets shape 128}}
  loom.store %v, %y[%o] : tensor<4x32xf32>, !loom.ptr<f32>, tensor<128xi32>
  return
}

// -----

func.func @store_mask_shape(%v: tensor<128xf32>, %y: !loom.ptr<f32>, %o: tensor<128xi32>,
                            %m: tensor<1xi1>) {
  // expected-error @+1 {{'loom.store' op mask shape 1 differs from offsets shape 128}}
  loom.store %v, %y[%o] mask %m : tensor<1xi1> : tensor<128xf32>, !loom.ptr<f32>, tensor<128xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// dot
//===----------------------------------------------------------------------===//

func.func @dot_not_2d(%a: tensor<64xf32>, %b: tensor<64x16xf32>, %acc: tensor<64x16xf32>) {
  // expected-error @+1 {{'loom.dot' op operands must be 2-D tiles, got 64, 64x16 and 64x16}}
  %0 = loom.dot %a, %b, %acc : tensor<64xf32>, tensor<64x16xf32> -> tensor<64x16xf32>
  return
}

// -----

func.func @dot_3d_acc(%a: tensor<4x8xf16>, %b: tensor<8x4xf16>, %acc: tensor<1x4x4xf32>) {
  // expected-error @+1 {{'loom.dot' op operands must be 2-D tiles, got 4x8, 8x4 and 1x4x4}}
  %0 = loom.dot %a, %b, %acc : tensor<4x8xf16>, tensor<8x4xf16> -> tensor<1x4x4xf32>
  return
}

// -----

func.func @dot_inner_dim(%a: tensor<64x32xbf16>, %b: tensor<16x16xbf16>, %acc: tensor<64x16xf32>) {
  // expected-error @+1 {{'loom.dot' op inner dimensions differ: 64x32 times 16x16}}
  %0 = loom.dot %a, %b, %acc : tensor<64x32xbf16>, tensor<16x16xbf16> -> tensor<64x16xf32>
  return
}

// -----

func.func @dot_acc_shape(%a: tensor<64x32xf16>, %b: tensor<32x16xf16>, %acc: tensor<64x8xf32>) {
  // expected-error @+1 {{'loom.dot' op accumulator shape 64x8 differs from product shape 64x16}}
  %0 = loom.dot %a, %b, %acc : tensor<64x32xf16>, tensor<32x16xf16> -> tensor<64x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// reduce
//===----------------------------------------------------------------------===//

func.func @reduce_axis_out_of_range(%s: tensor<64x128xf32>) {
  // expected-error @+1 {{'loom.reduce' op axis 2 out of range for a tile of rank 2}}
  %0 = loom.reduce sum %s, 2 : tensor<64x128xf32> -> tensor<64xf32>
  return
}

// -----

func.func @reduce_scalar_tile(%s: tensor<f32>) {
  // expected-error @+1 {{'loom.reduce' op axis 0 out of range for a tile of rank 0}}
  %0 = loom.reduce max %s, 0 : tensor<f32> -> tensor<f32>
  return
}

// -----

func.func @reduce_wrong_result_shape(%s: tensor<64x128xf32>) {
  // expected-error @+1 {{'loom.reduce' op expected result shape 64, got 128}}
  %0 = loom.reduce max %s, 1 : tensor<64x128xf32> -> tensor<128xf32>
  return
}

// -----

func.func @reduce_keeps_axis(%s: tensor<16xi32>) {
  // expected-error @+1 {{'loom.reduce' op expected result shape scalar, got 1}}
  %0 = loom.reduce min %s, 0 : tensor<16xi32> -> tensor<1xi32>
  return
}

// -----

// Tiles have static shapes.
func.func @dynamic_tile() {
  // expected-error @+1 {{'loom.arange' op result #0 must be statically shaped tensor of 32-bit signless integer values, but got 'tensor<?xi32>'}}
  %0 = loom.arange 0 to 4 : tensor<?xi32>
  return
}

// -----

// i1 masks are not reducible: signed combiners would treat true as -1.
func.func @reduce_mask(%m: tensor<8xi1>) {
  // expected-error @+1 {{'loom.reduce' op operand #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type or 32-bit signless integer or 64-bit signless integer values, but got 'tensor<8xi1>'}}
  %0 = loom.reduce max %m, 0 : tensor<8xi1> -> tensor<i1>
  return
}

// -----

func.func @block_load_rank(%p: !loom.ptr<f32>, %b: i64, %n: i32, %z: f32) {
  // expected-error @+1 {{'loom.block_load' op needs one stride and one bound per dimension of the result (rank 2), got 1 strides and 2 bounds}}
  %x = loom.block_load %p[%b] strides [%b] bounds [%n, %n] other %z : !loom.ptr<f32> -> tensor<16x16xf32>
  return
}

// -----

func.func @block_load_element(%p: !loom.ptr<f32>, %b: i64, %n: i32, %z: bf16) {
  // expected-error @+1 {{'loom.block_load' op result element type 'bf16' differs from pointer element type 'f32'}}
  %x = loom.block_load %p[%b] strides [%b] bounds [%n] other %z : !loom.ptr<f32> -> tensor<16xbf16>
  return
}

// -----

func.func @block_store_rank(%p: !loom.ptr<f32>, %v: tensor<16xf32>, %b: i64, %n: i32) {
  // expected-error @+1 {{'loom.block_store' op needs one stride and one bound per dimension of the value (rank 1), got 2 strides and 1 bounds}}
  loom.block_store %v, %p[%b] strides [%b, %b] bounds [%n] : tensor<16xf32>, !loom.ptr<f32>
  return
}

// -----

func.func @block_store_layout(%p: !loom.ptr<f32>, %v: tensor<64x8xf32, #loom.mma<warpsM = 4, warpsN = 1>>, %b: i64, %n: i32) {
  // expected-error @+1 {{'loom.block_store' op tiles must be blocked (no layout encoding), got 'tensor<64x8xf32, #loom.mma<warpsM = 4, warpsN = 1>>'}}
  loom.block_store %v, %p[%b] strides [%b, %b] bounds [%n, %n] : tensor<64x8xf32, #loom.mma<warpsM = 4, warpsN = 1>>, !loom.ptr<f32>
  return
}

// -----

func.func @block_load_deferred_user(%p: !loom.ptr<f32>, %b: i64, %n: i32, %z: f32) -> tensor<16xf32> {
  // expected-error @+1 {{'loom.block_load' op is deferred: it must have exactly one user, a loom.dot that takes it as operand a or b}}
  %x = loom.block_load %p[%b] strides[%b] bounds[%n] other %z deferred : !loom.ptr<f32> -> tensor<16xf32>
  return %x : tensor<16xf32>
}

// -----

func.func @block_load_column_major_not_deferred(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %z: bf16) -> tensor<16x16xbf16> {
  %c1 = arith.constant 1 : i64
  // expected-error @+1 {{'loom.block_load' op is column_major but not deferred: only a dot's staging reads a block column by column}}
  %x = loom.block_load %p[%b] strides[%c1, %b] bounds[%n, %n] other %z column_major : !loom.ptr<bf16> -> tensor<16x16xbf16>
  return %x : tensor<16x16xbf16>
}

// -----

func.func @block_load_column_major_rank(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %z: bf16) -> tensor<2x16x16xbf16> {
  %c1 = arith.constant 1 : i64
  // expected-error @+1 {{'loom.block_load' op is column_major: its result must have rank 2, got rank 3}}
  %x = loom.block_load %p[%b] strides[%c1, %b, %b] bounds[%n, %n, %n] other %z deferred column_major : !loom.ptr<bf16> -> tensor<2x16x16xbf16>
  return %x : tensor<2x16x16xbf16>
}

// -----

func.func @block_load_column_major_stride(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %z: bf16) -> tensor<16x16xbf16> {
  // expected-error @+1 {{'loom.block_load' op is column_major: strides[0] must be the constant 1}}
  %x = loom.block_load %p[%b] strides[%b, %b] bounds[%n, %n] other %z deferred column_major : !loom.ptr<bf16> -> tensor<16x16xbf16>
  return %x : tensor<16x16xbf16>
}

// -----

//===----------------------------------------------------------------------===//
// Shared-memory pipelines
//===----------------------------------------------------------------------===//

func.func @async_copy_f32(%p: !loom.ptr<f32>, %b: i64, %n: i32, %s: i32, %z: f32) {
  // expected-error @+1 {{'loom.async_copy' op pipeline slots hold 2-D f16 or bf16 tiles, got 'tensor<16x16xf32>'}}
  loom.async_copy %p[%b] strides[%b, %b] bounds[%n, %n] other %z, slot %s {offset = 0 : i64, slots = 2 : i64} : !loom.ptr<f32> -> tensor<16x16xf32>
  return
}

// -----

func.func @async_copy_columns(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %s: i32, %z: bf16) {
  // expected-error @+1 {{'loom.async_copy' op pipeline slots store rows of whole 16-byte chunks: the columns of 'tensor<16x12xbf16>' must be a multiple of 8}}
  loom.async_copy %p[%b] strides[%b, %b] bounds[%n, %n] other %z, slot %s {offset = 0 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<16x12xbf16>
  return
}

// -----

func.func @async_copy_column_major_rows(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %s: i32, %z: bf16) {
  // expected-error @+1 {{'loom.async_copy' op pipeline slots store rows of whole 16-byte chunks: the rows of 'tensor<12x16xbf16>' must be a multiple of 8}}
  loom.async_copy %p[%b] strides[%b, %b] bounds[%n, %n] other %z, slot %s column_major {offset = 0 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<12x16xbf16>
  return
}

// -----

func.func @async_copy_offset(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %s: i32, %z: bf16) {
  // expected-error @+1 {{'loom.async_copy' op buffer offset must be a non-negative multiple of 16 bytes, got 8}}
  loom.async_copy %p[%b] strides[%b, %b] bounds[%n, %n] other %z, slot %s {offset = 8 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<16x16xbf16>
  return
}

// -----

func.func @async_copy_slots(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %s: i32, %z: bf16) {
  // expected-error @+1 {{'loom.async_copy' op a pipeline buffer needs at least one slot, got 0}}
  loom.async_copy %p[%b] strides[%b, %b] bounds[%n, %n] other %z, slot %s {offset = 0 : i64, slots = 0 : i64} : !loom.ptr<bf16> -> tensor<16x16xbf16>
  return
}

// -----

func.func @async_copy_element(%p: !loom.ptr<f16>, %b: i64, %n: i32, %s: i32, %z: f16) {
  // expected-error @+1 {{'loom.async_copy' op tile element type 'bf16' differs from pointer element type 'f16'}}
  loom.async_copy %p[%b] strides[%b, %b] bounds[%n, %n] other %z, slot %s {offset = 0 : i64, slots = 1 : i64} : !loom.ptr<f16> -> tensor<16x16xbf16>
  return
}

// -----

func.func @async_copy_rank(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %s: i32, %z: bf16) {
  // expected-error @+1 {{'loom.async_copy' op needs one stride and one bound per dimension of the tile (rank 2), got 1 strides and 2 bounds}}
  loom.async_copy %p[%b] strides[%b] bounds[%n, %n] other %z, slot %s {offset = 0 : i64, slots = 1 : i64} : !loom.ptr<bf16> -> tensor<16x16xbf16>
  return
}

// -----

func.func @async_wait_negative() {
  // expected-error @+1 {{'loom.async_wait' op pending group count must be in [0, 2^31), got -1}}
  loom.async_wait -1
  return
}

// -----

func.func @async_wait_huge() {
  // expected-error @+1 {{'loom.async_wait' op pending group count must be in [0, 2^31), got 4294967296}}
  loom.async_wait 4294967296
  return
}

// -----

func.func @async_copy_slot_outside(%p: !loom.ptr<bf16>, %b: i64, %n: i32, %z: bf16) {
  %s = arith.constant 2 : i32
  // expected-error @+1 {{'loom.async_copy' op slot 2 is outside the buffer's 2 slots}}
  loom.async_copy %p[%b] strides[%b, %b] bounds[%n, %n] other %z, slot %s {offset = 0 : i64, slots = 2 : i64} : !loom.ptr<bf16> -> tensor<16x16xbf16>
  return
}

// -----

func.func @shared_slot_not_tensor_cores(%s: i32, %x: tensor<16x8xbf16>, %acc: tensor<16x8xf32>) -> tensor<16x8xf32> {
  // expected-error @+1 {{'loom.shared_slot' op is read by a dot of 'tensor<16x8xbf16>' and 'tensor<8x8xbf16>', which is not a tensor-core (m16n8k16) shape}}
  %t = loom.shared_slot %s {offset = 0 : i64, slots = 2 : i64} : tensor<8x8xbf16>
  %d = loom.dot %x, %t, %acc : tensor<16x8xbf16>, tensor<8x8xbf16> -> tensor<16x8xf32>
  return %d : tensor<16x8xf32>
}

// -----

func.func @shared_slot_not_dot(%s: i32) -> tensor<16x16xbf16> {
  // expected-error @+1 {{'loom.shared_slot' op must have exactly one user, a loom.dot that takes it as operand a or b}}
  %t = loom.shared_slot %s {offset = 0 : i64, slots = 2 : i64} : tensor<16x16xbf16>
  return %t : tensor<16x16xbf16>
}

// -----

func.func @shared_slot_encoding(%s: i32, %acc: tensor<32x32xf32>) -> tensor<32x32xf32> {
  // expected-error @+1 {{'loom.shared_slot' op pipeline slots hold blocked tiles (no layout encoding), got 'tensor<32x32xbf16, #loom.mma<warpsM = 2, warpsN = 2>>'}}
  %t = loom.shared_slot %s {offset = 0 : i64, slots = 2 : i64} : tensor<32x32xbf16, #loom.mma<warpsM = 2, warpsN = 2>>
  %d = loom.dot %t, %t, %acc : tensor<32x32xbf16, #loom.mma<warpsM = 2, warpsN = 2>>, tensor<32x32xbf16, #loom.mma<warpsM = 2, warpsN = 2>> -> tensor<32x32xf32>
  return %d : tensor<32x32xf32>
}
