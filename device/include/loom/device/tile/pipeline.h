// Shared-memory pipelines of dot operands (the compiler's
// loom-pipeline-dot-operands pass): a dot operand read from global memory
// is copied by cp.async into a slot of a buffer in shared memory ahead of
// the iteration that multiplies it, and the dot reads the slot in place
// (SharedBlock). A buffer of kSlots slots sits kOffset bytes into the
// block's dynamic shared memory, before the ops' scratch (which starts at
// the end of the pipeline buffers: shared_scratch<kPipelineBytes>()).
//
//   async_copy<SharedT, kOffset, kSlots>(slot, p, other, base, strides..., bounds...)
//       issues the copies of a block (as block_load reads it) into a slot;
//       they land when a wait retires the group they were committed in.
//   async_commit()            closes the group of copies issued so far.
//   async_wait<kPending>()    waits until at most kPending groups are
//                             pending: the copies of the older ones are in
//                             shared memory, visible to the block after the
//                             next barrier (the dot's own).
//   shared_slot<SharedT, kOffset, kSlots>(slot)
//       the slot as a dot operand.
//
// Slot reuse is safe because every dot ends with a barrier: once a dot has
// returned, no thread reads the slot it consumed.
#pragma once

#include "loom/device/tile/dot.h"

namespace loom::tile {

namespace detail {
template <class SharedT, int kOffset, int kSlots>
__device__ __forceinline__ typename SharedT::element_type* pipeline_slot(int32_t slot) {
  using T = typename SharedT::element_type;
  using S = typename SharedT::shape;
  static_assert(kOffset % 16 == 0, "pipeline buffers are 16-byte aligned");
  static_assert(kSlots >= 1, "a pipeline buffer has at least one slot");
  static_assert(S::size * sizeof(T) % 16 == 0, "pipeline slots are whole 16-byte chunks");
  return reinterpret_cast<T*>(shared_scratch() + kOffset) + slot * S::size;
}
} // namespace detail

template <class SharedT, int kOffset, int kSlots, class T, class... SB>
__device__ __forceinline__ void async_copy(int32_t slot, const T* p, T other, int64_t base,
                                           SB... sb) {
  using S = typename SharedT::shape;
  static_assert(is_shared_block_v<SharedT>, "async_copy: a SharedBlock slot type");
  static_assert(is_same_v<typename SharedT::element_type, T>, "async_copy: element type");
  constexpr bool kColumnMajor = SharedT::column_major;
  static_assert(detail::kStagedByChunks<T, S, kColumnMajor>,
                "async_copy: 2-D tiles of 16-bit elements, stored rows of whole 16-byte chunks");
  // Copied as the dot would stage the view, into the slot's layout.
  const GlobalBlock<T, S, kColumnMajor> view{{}, p, other, base, detail::block_access<S>(sb...)};
  detail::issue_chunks<detail::SwizzledIndex<detail::StagedLayout<S, kColumnMajor>::kRowLength>>(
      detail::pipeline_slot<SharedT, kOffset, kSlots>(slot), view);
}

__device__ __forceinline__ void async_commit() { loom::device::cp_async_commit(); }

template <int kPending>
__device__ __forceinline__ void async_wait() {
  loom::device::cp_async_wait<kPending>();
}

template <class SharedT, int kOffset, int kSlots>
__device__ __forceinline__ SharedT shared_slot(int32_t slot) {
  return SharedT{{}, detail::pipeline_slot<SharedT, kOffset, kSlots>(slot)};
}

} // namespace loom::tile
