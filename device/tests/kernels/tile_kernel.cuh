// A test kernel of the tile layer, written as the code generator would: it is
// compiled by NVRTC for sm_80/sm_90a (NvrtcTest: the tensor-core dot, no
// spills) and as host C++ on the emulator (TileKernelTest, against float64).
// No host includes.
//
// Block b computes, for rows [32b, 32b+32) of A16/Abf (rows >= m masked):
//   C = A16 * B16 + Abf * Bbf          (M=32, N=16, K=32, both tensor-core dots)
//   out[r][n] = C[r][n] - rowmax[r] + bias[n]   (broadcast of 32x1 and 1x16)
//   rowmax_out[r] = rowmax[r] = max_n C[r][n]
// A* are m x 32 row-major, B* 32 x 16 row-major, bias 16, out m x 16.
#pragma once

#ifndef LOOM_NUM_THREADS
#define LOOM_NUM_THREADS 128
#endif
#include "loom/device/tile.h"

namespace loom_tile_test {
using namespace loom::tile;
constexpr int kM = 32, kN = 16, kK = 32;
// Scratch: the largest op is the f16/bf16 dot.
constexpr int kScratchBytes = (kM * kK + kK * kN) * 2 + kM * kN * 4;
} // namespace loom_tile_test

extern "C" __global__ void __launch_bounds__(LOOM_NUM_THREADS)
loom_tile_kernel(const loom::tile::half_t* a16, const loom::tile::half_t* b16,
                 const loom::tile::bf16_t* abf, const loom::tile::bf16_t* bbf,
                 const float* bias, float* out, float* rowmax_out, loom::tile::int32_t m) {
  using namespace loom::tile;
  using loom_tile_test::kK;
  using loom_tile_test::kM;
  using loom_tile_test::kN;
  unsigned char* smem = shared_scratch();
  const int32_t row0 = program_id<0>() * kM;

  // Offsets and masks, built the way the code generator lowers indexing.
  auto rows = add(arange<Tile<int32_t, Shape<kM>>, 0>(), splat<Tile<int32_t, Shape<kM>>>(row0));
  auto rows2 = reshape<Tile<int32_t, Shape<kM, 1>>>(rows);
  auto colsK = reshape<Tile<int32_t, Shape<1, kK>>>(arange<Tile<int32_t, Shape<kK>>, 0>());
  auto colsN = reshape<Tile<int32_t, Shape<1, kN>>>(arange<Tile<int32_t, Shape<kN>>, 0>());
  auto krows = reshape<Tile<int32_t, Shape<kK, 1>>>(arange<Tile<int32_t, Shape<kK>>, 0>());

  using TA = Tile<int32_t, Shape<kM, kK>>;
  using TB = Tile<int32_t, Shape<kK, kN>>;
  using TC = Tile<int32_t, Shape<kM, kN>>;
  auto offA = add(broadcast<TA>(mul(rows2, splat<Tile<int32_t, Shape<kM, 1>>>(kK)), smem),
                  broadcast<TA>(colsK, smem));
  auto maskA = cmp_lt(broadcast<TA>(rows2, smem), splat<TA>(m));
  auto offB = add(broadcast<TB>(mul(krows, splat<Tile<int32_t, Shape<kK, 1>>>(kN)), smem),
                  broadcast<TB>(colsN, smem));
  auto rowsC = broadcast<TC>(rows2, smem);
  auto offC = add(mul(rowsC, splat<TC>(kN)), broadcast<TC>(colsN, smem));
  auto maskC = cmp_lt(rowsC, splat<TC>(m));

  auto x16 = load(a16, offA, maskA);
  auto y16 = load(b16, offB);
  auto xbf = load(abf, offA, maskA);
  auto ybf = load(bbf, offB);
  using TF = Tile<float, Shape<kM, kN>>;
  TF c = dot<TF>(x16, y16, splat<TF>(0.0f), smem);
  c = dot<TF>(xbf, ybf, c, smem);

  auto rmax = reduce_max<Tile<float, Shape<kM>>, 1>(c, smem);
  auto rmax2 = reshape<Tile<float, Shape<kM, 1>>>(rmax);
  auto b = load(bias, reshape<Tile<int32_t, Shape<1, kN>>>(arange<Tile<int32_t, Shape<kN>>, 0>()));
  auto res = add(sub(c, broadcast<TF>(rmax2, smem)), broadcast<TF>(b, smem));
  store(out, offC, res, maskC);
  store(rowmax_out, rows, rmax, cmp_lt(rows, splat<Tile<int32_t, Shape<kM>>>(m)));
}
