// The generic tile layer of the Loom device library (namespace loom::tile):
// the functions the compiler's CUDA code generator calls. Written only in
// terms of the primitives (primitives.h) and plain CUDA C++, so the same
// source compiles under NVRTC for sm_80/sm_90a and as host C++20 with
// LOOM_DEVICE_EMULATION on the emulator.
//
// Define LOOM_NUM_THREADS (threads per block, a multiple of 32; default 128)
// before including this header. Blocks are one-dimensional.
//
//   tile/core.h        Shape, half_t/bf16_t, to_float/from_float,
//                      program_id, num_programs, shared_scratch
//   tile/layout.h      Tile<T, S, L> and its layouts: Blocked (default),
//                      Mma<WM, WN> (mma C fragments), MmaRows<WM, WN>
//   tile/elementwise.h add..sqrt, comparisons, select, cast
//   tile/memory.h      load, store
//   tile/construct.h   arange, splat, reshape, broadcast, convert_layout
//   tile/reduce.h      reduce_sum/max/min, extract
//   tile/dot.h         dot
//   tile/pipeline.h    async_copy, async_commit, async_wait, shared_slot:
//                      multi-stage cp.async pipelines of dot operands
//
// Scratch bytes (ops taking smem; round each up to 16, size the launch with
// the max): broadcast and convert_layout Src::size*sizeof(T); reduce
// S::size*sizeof(T); extract 16; dot with a Blocked accumulator
// (M*K + K*N)*sizeof(operand) + M*N*4; dot with an Mma accumulator the
// bytes of the operands that are not SharedBlocks (pipeline slots, read in
// place), staged from offset 0. The scratch starts after the pipeline
// buffers (pipeline.h), at shared_scratch<kPipelineBytes>(). Each such op leaves
// the block synchronized, so consecutive ops may reuse the same scratch.
#pragma once

#include "loom/device/primitives.h"
#include "loom/device/tile/core.h"
#include "loom/device/tile/elementwise.h"
#include "loom/device/tile/memory.h"
#include "loom/device/tile/construct.h"
#include "loom/device/tile/reduce.h"
#include "loom/device/tile/dot.h"
#include "loom/device/tile/pipeline.h"
