// Matrix product of tiles: acc + a (MxK) * b (KxN), products summed in f32.
//
// Tensor-core path (half_t/bf16_t, M%16 == 0, N%8 == 0, K%16 == 0): A and B,
// in any layout, are staged in shared memory with an XOR swizzle of their
// 16-byte chunks, row-major, or transposed for a column-major GlobalBlock
// view (a SharedBlock operand, a pipeline slot, is already there and is
// read in place); each warp computes 16x8 output tiles with ldmatrix
// (plain or .trans by operand and layout, see MmaOperand) and
// mma.m16n8k16 (PTX_FACTS §1, §3). With an Mma<WM, WN> accumulator the MMAs accumulate straight into
// its fragments (the accumulator never leaves the registers); with a
// Blocked one each warp writes D to a float scratch C and after a barrier
// every thread adds its own elements to acc. Otherwise an FMA loop through
// shared memory (any shape; f16/bf16 widened to float; Blocked accumulator).
//
// Scratch: (M*K + K*N) * sizeof(element), plus M*N*4 bytes for a Blocked
// accumulator on the tensor-core path; with an Mma accumulator only the
// operands that are not SharedBlocks, A first (see tile.h). Leaves the
// block synchronized.
#pragma once

#include "loom/device/tile/reduce.h"

namespace loom::tile {

namespace detail {

// Swizzled element offset of (r, c) in a row-major matrix of Cols 16-bit
// elements per row (Cols % 8 == 0): row r's 16-byte chunk c/8 is stored at
// chunk (c/8) ^ s(r). With C = Cols/8 chunks per row and P the largest power
// of two dividing C (at most 8), s(r) = (r / (8/P)) % P flips only the low
// log2(P) chunk bits (so it stays inside the row), and the 8 rows r0..r0+7
// (r0 % 8 == 0) of one ldmatrix phase at the same logical chunk land in 8
// different 16-byte bank groups: (r*C) % 8 takes the 8/P multiples of P as
// r % (8/P) varies, and the XOR separates the P rows that share one.
template <int Cols>
struct Swizzle {
  static_assert(Cols % 8 == 0, "swizzled rows hold whole 16-byte chunks");
  __host__ __device__ static constexpr int P() {
    constexpr int C = Cols / 8;
    return (C % 8 == 0) ? 8 : (C % 4 == 0) ? 4 : (C % 2 == 0) ? 2 : 1;
  }
  // Unsigned: r and c are never negative, and unsigned division by the
  // powers of two here is a shift (signed division needs a fix-up).
  __device__ __forceinline__ static int offset(int r, int c) {
    const unsigned ur = (unsigned)r, uc = (unsigned)c;
    const unsigned s = (ur / unsigned(8 / P())) % unsigned(P());
    return (int)(ur * unsigned(Cols) + (((uc >> 3) ^ s) << 3) + (uc & 7u));
  }
};

// Whether dot of these operands takes the tensor-core path.
template <class T, int M, int N, int K>
inline constexpr bool dot_uses_mma = is_low_float_v<T> && M % 16 == 0 && N % 8 == 0 && K % 16 == 0;

template <class T>
__device__ __forceinline__ void mma_16x8x16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  if constexpr (is_same_v<T, half_t>) loom::device::mma_m16n8k16_f16(d, a, b, d);
  else loom::device::mma_m16n8k16_bf16(d, a, b, d);
}

// Staging map of a matrix stored with Cols elements per row into its
// swizzled form.
template <int Cols>
struct SwizzledIndex {
  __device__ __forceinline__ int operator()(int i) const {
    const unsigned u = (unsigned)i;
    return Swizzle<Cols>::offset((int)(u / unsigned(Cols)), (int)(u % unsigned(Cols)));
  }
};

// How the tensor-core path holds operand X (A, or B when kIsB) in shared
// memory and reads its fragments: in X's StagedLayout (memory.h: row-major,
// or transposed for a column-major view or slot), each stored row's chunks
// swizzled by Map.
//
// The mma fragments (PTX_FACTS §1) see A as an M x K matrix F and B as its
// transpose, an N x K matrix F (B's fragment b0 = {B[2t][g], B[2t+1][g]} is
// {F[g][2t], F[g][2t+1]}): a register holds an 8x8 block of F, lane
// (g, t) elements (g, 2t) and (g, 2t+1). ldmatrix (§3) gives exactly that
// from the 8 rows its lanes address when those rows are F's rows, and with
// .trans when they are F's columns. So F's block at (f, k) is read with
// plain ldmatrix, rows at F(f + r, k), where the stored rows run along k
// (A row-major [M][K], B column-major [N][K]) and with .trans, rows at
// F(f, k + r) stored at (k + r, f), where they run along f (A
// column-major [K][M], B row-major [K][N]).
template <class X, bool kIsB>
struct MmaOperand {
  using Layout = StagedLayout<typename X::shape, is_column_major_v<X>>;
  using Map = SwizzledIndex<Layout::kRowLength>;
  static constexpr bool kRowsAlongK = is_column_major_v<X> == kIsB;

  // ldmatrix of kMatrices (2 or 4) blocks of F into frag: the calling
  // lane's matrix (lane / 8) is the block at (f, k), and the lane addresses
  // its row lane % 8 (the 8 lanes of a matrix hit 8 consecutive stored rows
  // at one logical chunk: 8 bank groups under the swizzle).
  template <int kMatrices, class T>
  __device__ __forceinline__ static void ldmatrix(uint32_t* frag, const T* s, int f, int k,
                                                  int lane) {
    using Sw = Swizzle<Layout::kRowLength>;
    const int r = lane % 8;
    if constexpr (kRowsAlongK) {
      const T* row = s + Sw::offset(f + r, k);
      if constexpr (kMatrices == 4) loom::device::ldmatrix_x4(frag, row);
      else loom::device::ldmatrix_x2(frag, row);
    } else {
      const T* row = s + Sw::offset(k + r, f);
      if constexpr (kMatrices == 4) loom::device::ldmatrix_x4_trans(frag, row);
      else loom::device::ldmatrix_x2_trans(frag, row);
    }
  }
};

// Where the tensor-core path reads operand x from: a SharedBlock is already
// staged (in Op's layout) and is read in place; anything else is staged
// into buf.
template <class Op, class T, class X>
__device__ __forceinline__ const T* mma_operand(T* buf, const X& x) {
  if constexpr (is_shared_block_v<X>) {
    return x.p;
  } else {
    stage<typename Op::Map>(buf, x);
    return buf;
  }
}

// The A fragment of rows m0..m0+15, columns k0..k0+15: a[0..3] are the
// blocks at (m0, k0), (m0+8, k0), (m0, k0+8), (m0+8, k0+8) (§1).
template <class OpA, class T>
__device__ __forceinline__ void load_a_frag(uint32_t af[4], const T* As, int m0, int k0,
                                            int lane) {
  const int j = lane / 8;
  OpA::template ldmatrix<4>(af, As, m0 + 8 * (j % 2), k0 + 8 * (j / 2), lane);
}

// The B fragment of rows k0..k0+15, columns n0..n0+7: bf[0], bf[1] are
// F's blocks at (n0, k0), (n0, k0+8) (x2: lanes 16..31 repeat the
// addresses of 0..15, which x2 does not read).
template <class OpB, class T>
__device__ __forceinline__ void load_b_frag(uint32_t bf[2], const T* Bs, int k0, int n0,
                                            int lane) {
  OpB::template ldmatrix<2>(bf, Bs, n0, k0 + 8 * (lane / 8 % 2), lane);
}

// The B fragments of columns n0..n0+7 (bf[0..1]) and n0+8..n0+15
// (bf[2..3]) from one x4 ldmatrix (matrices 2, 3: the blocks at n0+8):
// half the instructions and half the addresses of two x2.
template <class OpB, class T>
__device__ __forceinline__ void load_b_frag_pair(uint32_t bf[4], const T* Bs, int k0, int n0,
                                                 int lane) {
  const int j = lane / 8;
  OpB::template ldmatrix<4>(bf, Bs, n0 + 8 * (j / 2), k0 + 8 * (j % 2), lane);
}

// Accumulates the 16x8 output tile at (m0, n0) over K into d. A loop, as
// in dot_mma_acc: unrolled, ptxas issues every step's ldmatrix up front (96
// registers of fragments at K = 256) and hoists their addresses.
template <class OpA, class OpB, int K, class T>
__device__ __forceinline__ void mma_tile(float d[4], const T* As, const T* Bs, int m0, int n0,
                                         int lane) {
  LOOM_NO_UNROLL
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t af[4], bf[2];
    load_a_frag<OpA>(af, As, m0, k0, lane);
    load_b_frag<OpB>(bf, Bs, k0, n0, lane);
    mma_16x8x16<T>(d, af, bf);
  }
}

// Whether A is already in registers as the A fragments the warps of an
// Mma<WM, 1> accumulator need: an Mma<WM, 1> tile (an accumulator of an
// earlier dot, e.g. P = softmax(S) before P V) gives warp wm rows
// wm*AM*16.. and every column, and the C fragments of two adjacent 16x8
// atoms are one 16x16 A fragment (PTX_FACTS §1), so no shared memory.
template <class TileA, class LayoutR>
struct a_in_registers {
  static constexpr bool value = false;
};
template <class T, class S, int WM>
struct a_in_registers<Tile<T, S, Mma<WM, 1>>, Mma<WM, 1>> {
  static constexpr bool value = true;
};

__device__ __forceinline__ uint32_t pack_pair(uint16_t lo, uint16_t hi) {
  return uint32_t(lo) | (uint32_t(hi) << 16);
}

// The A fragment of atom row i, k step s from an Mma<WM, 1> tile of AK
// 8-column atoms: c0, c1 / c2, c3 of atoms 2s and 2s + 1 are a0 / a1 and
// a2 / a3 (rows g, g + 8; columns 2t, 2t + 1 and 2t + 8, 2t + 9).
template <int AK, class TileA>
__device__ __forceinline__ void a_frag_from_registers(uint32_t af[4], const TileA& a, int i,
                                                      int s) {
  const int lo = (i * AK + 2 * s) * 4, hi = lo + 4;
  af[0] = pack_pair(a.v[lo].bits, a.v[lo + 1].bits);
  af[1] = pack_pair(a.v[lo + 2].bits, a.v[lo + 3].bits);
  af[2] = pack_pair(a.v[hi].bits, a.v[hi + 1].bits);
  af[3] = pack_pair(a.v[hi + 2].bits, a.v[hi + 3].bits);
}

// k step s of dot_mma_acc: the warp's AM A fragments, then each pair of B
// fragments read once and used for every atom row. (A function, not a
// lambda: NVRTC does not always inline lambdas.)
template <class OpA, class OpB, int AM, int AN, int K, bool kRegisterA, class T, class TileR,
          class TileA>
__device__ __forceinline__ void dot_mma_step(TileR& r, const TileA& a, const T* As, const T* Bs,
                                             int s, int wm, int wn, int lane) {
  uint32_t af[AM][4];
  LOOM_UNROLL
  for (int i = 0; i < AM; ++i) {
    if constexpr (kRegisterA)
      a_frag_from_registers<K / 8>(af[i], a, i, s);
    else
      load_a_frag<OpA>(af[i], As, (wm * AM + i) * 16, s * 16, lane);
  }
  if constexpr (AN % 2 == 0) {
    LOOM_UNROLL
    for (int j = 0; j < AN; j += 2) {
      uint32_t bf[4];
      load_b_frag_pair<OpB>(bf, Bs, s * 16, (wn * AN + j) * 8, lane);
      LOOM_UNROLL
      for (int i = 0; i < AM; ++i) {
        mma_16x8x16<T>(&r.v[(i * AN + j) * 4], af[i], bf);
        mma_16x8x16<T>(&r.v[(i * AN + j + 1) * 4], af[i], bf + 2);
      }
    }
  } else {
    LOOM_UNROLL
    for (int j = 0; j < AN; ++j) {
      uint32_t bf[2];
      load_b_frag<OpB>(bf, Bs, s * 16, (wn * AN + j) * 8, lane);
      LOOM_UNROLL
      for (int i = 0; i < AM; ++i)
        mma_16x8x16<T>(&r.v[(i * AN + j) * 4], af[i], bf);
    }
  }
}

// Tensor-core dot into an Mma<WM, WN> accumulator: warp (wm, wn) runs the
// MMAs of its own block of atoms, on the fragments it holds.
//
// k outermost: per k step the warp takes its AM A fragments, then reads
// each pair of B fragments once (one ldmatrix.x4) and uses it for every
// atom row, so B traffic does not grow with AM. The k loop is unrolled:
// with A in registers its index selects registers, and with A in shared
// memory unrolling removed the loop overhead without spills in any default
// attention config (AttentionCuda's spill tests).
template <class TileR, class T, int M, int N, int K, class TileA, class TileB>
__device__ __forceinline__ TileR dot_mma_acc(const TileA& a, const TileB& b, const TileR& acc,
                                             unsigned char* smem) {
  using L = typename TileR::layout;
  using S = typename TileR::shape;
  constexpr int AM = L::template atoms_m<S>(), AN = L::template atoms_n<S>();
  constexpr bool kRegisterA = a_in_registers<TileA, L>::value;
  using OpA = MmaOperand<TileA, false>;
  using OpB = MmaOperand<TileB, true>;
  // Scratch: only the operands staged here, A first (see tile.h).
  T* const staging = reinterpret_cast<T*>(smem);
  const T* As = nullptr;
  if constexpr (!kRegisterA)
    As = mma_operand<OpA>(staging, a);
  constexpr bool kAStaged = !kRegisterA && !is_shared_block_v<TileA>;
  const T* Bs = mma_operand<OpB>(staging + (kAStaged ? M * K : 0), b);
  loom::device::bar_sync();
  TileR r = acc;
  const int wm = L::warp_m(), wn = L::warp_n(), lane = (int)loom::device::lane_id();
  LOOM_UNROLL
  for (int s = 0; s < K / 16; ++s)
    dot_mma_step<OpA, OpB, AM, AN, K, kRegisterA, T>(r, a, As, Bs, s, wm, wn, lane);
  loom::device::bar_sync();
  return r;
}

template <class TileR, class T, int M, int N, int K, class TileA, class TileB>
__device__ __forceinline__ TileR dot_mma(const TileA& a, const TileB& b, const TileR& acc,
                                         unsigned char* smem) {
  T* const staging = reinterpret_cast<T*>(smem);
  float* Cs = reinterpret_cast<float*>(staging + M * K + K * N);
  using OpA = MmaOperand<TileA, false>;
  using OpB = MmaOperand<TileB, true>;
  const T* As = mma_operand<OpA>(staging, a);
  const T* Bs = mma_operand<OpB>(staging + M * K, b);
  loom::device::bar_sync();

  const int lane = (int)loom::device::lane_id(), warp = thread_rank() / 32;
  constexpr int NT = N / 8, tiles = (M / 16) * NT;
  // Warp-uniform loop: all 32 lanes run the same collectives.
  for (int tile = warp; tile < tiles; tile += kWarps) {
    const int m0 = tile / NT * 16, n0 = tile % NT * 8;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mma_tile<OpA, OpB, K>(d, As, Bs, m0, n0, lane);
    const int g = lane >> 2, t = lane & 3;
    float* c0 = Cs + (m0 + g) * N + n0 + 2 * t;
    smem_store(c0, d[0]);
    smem_store(c0 + 1, d[1]);
    smem_store(c0 + 8 * N, d[2]);
    smem_store(c0 + 8 * N + 1, d[3]);
  }
  loom::device::bar_sync();
  TileR r;
  LOOM_UNROLL
  for (int k = 0; k < TileR::kPerThread; ++k)
    r.v[k] = slot_valid<typename TileR::shape>(k) ? acc.v[k] + smem_load(Cs + slot_index(k))
                                                  : acc.v[k];
  loom::device::bar_sync();
  return r;
}

template <class TileR, class T, int M, int N, int K, class TileA, class TileB>
__device__ __forceinline__ TileR dot_fma(const TileA& a, const TileB& b, const TileR& acc,
                                         unsigned char* smem) {
  static_assert(!is_shared_block_v<TileA> && !is_shared_block_v<TileB>,
                "dot: a pipelined shared-memory operand needs the tensor-core path");
  // Staged without swizzle, in each operand's StagedLayout (a column-major
  // view transposed).
  using LA = StagedLayout<typename TileA::shape, is_column_major_v<TileA>>;
  using LB = StagedLayout<typename TileB::shape, is_column_major_v<TileB>>;
  T* As = reinterpret_cast<T*>(smem);
  T* Bs = As + M * K;
  stage(As, a);
  stage(Bs, b);
  loom::device::bar_sync();
  TileR r;
  LOOM_UNROLL
  for (int k = 0; k < TileR::kPerThread; ++k) {
    float s = acc.v[k];
    if (slot_valid<typename TileR::shape>(k)) {
      const int i = slot_index(k), m = i / N, n = i % N;
      for (int kk = 0; kk < K; ++kk)
        s += to_float(smem_load(As + LA::index(m, kk))) *
             to_float(smem_load(Bs + LB::index(kk, n)));
    }
    r.v[k] = s;
  }
  loom::device::bar_sync();
  return r;
}

} // namespace detail

template <class TileR, class TileA, class TileB>
__device__ __forceinline__ TileR dot(const TileA& a, const TileB& b, const TileR& acc,
                                     unsigned char* smem) {
  using T = typename TileA::element_type;
  using SA = typename TileA::shape;
  using SB = typename TileB::shape;
  using SR = typename TileR::shape;
  static_assert(is_same_v<T, typename TileB::element_type>, "dot: operand types differ");
  static_assert(is_float_v<T>, "dot: operands are float, half_t or bf16_t");
  static_assert(is_same_v<typename TileR::element_type, float>, "dot: float accumulator");
  static_assert(SA::rank == 2 && SB::rank == 2 && SR::rank == 2, "dot: 2-D tiles");
  constexpr int M = SA::dim(0), K = SA::dim(1), N = SB::dim(1);
  static_assert(SB::dim(0) == K, "dot: inner dimensions differ");
  static_assert(SR::dim(0) == M && SR::dim(1) == N, "dot: accumulator shape");
  if constexpr (!is_same_v<typename TileR::layout, Blocked>) {
    static_assert(detail::dot_uses_mma<T, M, N, K>,
                  "dot: an Mma accumulator needs f16/bf16 operands and m16n8k16 shapes");
    return detail::dot_mma_acc<TileR, T, M, N, K>(a, b, acc, smem);
  } else if constexpr (detail::dot_uses_mma<T, M, N, K>) {
    return detail::dot_mma<TileR, T, M, N, K>(a, b, acc, smem);
  } else {
    return detail::dot_fma<TileR, T, M, N, K>(a, b, acc, smem);
  }
}

} // namespace loom::tile
