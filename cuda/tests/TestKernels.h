//===- TestKernels.h - hand-written CUDA sources for tests and bench -----===//
//
// A bf16 tensor-core matmul, C[M][N] (f32) = A[M][K] * Bt[N][K]^T, written
// directly against mma.sync/ldmatrix so that it exercises what Loom's device
// library will emit: inline PTX in an in-memory header, cuda_bf16.h from the
// toolkit include directory, static shared memory. Requires M, N % 64 == 0
// and K % 32 == 0. One 128-thread block computes a 64x64 tile; each of the
// 4 warps a 32x32 quadrant as 2x4 m16n8k16 tiles.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_CUDA_TESTS_TESTKERNELS_H
#define LOOM_CUDA_TESTS_TESTKERNELS_H

#include <string>

namespace loom::cuda::test {

inline constexpr const char *kMmaHeaderName = "loom_test_mma.cuh";

inline constexpr const char *kMmaHeader = R"CUDA(
#pragma once
// Fragment layouts per the PTX ISA, "Matrix Fragments for mma.m16n8k16".
__device__ __forceinline__ unsigned smem_addr(const void *p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const unsigned (&a)[4],
                                                  unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
)CUDA";

inline constexpr const char *kMatmulKernelName = "loom_test_matmul_bf16";

inline constexpr const char *kMatmulSource = R"CUDA(
#include <cuda_bf16.h>
#include "loom_test_mma.cuh"

constexpr int BM = 64, BN = 64, BK = 32;
constexpr int PAD = 8; // rows stay 16-byte aligned (80 B) and spread over banks
constexpr int LD = BK + PAD;

extern "C" __global__ void __launch_bounds__(128)
loom_test_matmul_bf16(const __nv_bfloat16 *__restrict__ A, const __nv_bfloat16 *__restrict__ Bt,
                      float *__restrict__ C, int M, int N, int K) {
  __shared__ __align__(16) __nv_bfloat16 As[BM][LD];
  __shared__ __align__(16) __nv_bfloat16 Bs[BN][LD];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  float acc[2][4][4] = {};
  for (int k0 = 0; k0 < K; k0 += BK) {
    // 64 rows x 32 cols = 256 16-byte vectors per operand, 2 per thread.
    for (int v = tid; v < BM * BK / 8; v += blockDim.x) {
      int r = v / (BK / 8), c = (v % (BK / 8)) * 8;
      *reinterpret_cast<uint4 *>(&As[r][c]) =
          *reinterpret_cast<const uint4 *>(&A[(size_t)(m0 + r) * K + k0 + c]);
      *reinterpret_cast<uint4 *>(&Bs[r][c]) =
          *reinterpret_cast<const uint4 *>(&Bt[(size_t)(n0 + r) * K + k0 + c]);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned a[2][4], b[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i)
        ldmatrix_x4(a[i], &As[wm + i * 16 + lane % 16][kk + (lane / 16) * 8]);
      // b[j]: n-tiles 2j and 2j+1; lanes 0-15 k 0-7/8-15 of the first,
      // lanes 16-31 of the second.
#pragma unroll
      for (int j = 0; j < 2; ++j)
        ldmatrix_x4(b[j], &Bs[wn + j * 16 + (lane / 16) * 8 + lane % 8][kk + ((lane / 8) % 2) * 8]);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          mma_m16n8k16_bf16(acc[i][j], a[i], b[j / 2][(j % 2) * 2], b[j / 2][(j % 2) * 2 + 1]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int row = m0 + wm + i * 16 + lane / 4, col = n0 + wn + j * 8 + (lane % 4) * 2;
      C[(size_t)row * N + col] = acc[i][j][0];
      C[(size_t)row * N + col + 1] = acc[i][j][1];
      C[(size_t)(row + 8) * N + col] = acc[i][j][2];
      C[(size_t)(row + 8) * N + col + 1] = acc[i][j][3];
    }
}
)CUDA";

/// The same kernel as one self-contained .cu file (for nvcc).
inline std::string matmulStandaloneSource() {
  std::string src = kMatmulSource;
  std::string include = std::string("#include \"") + kMmaHeaderName + "\"";
  std::string header = kMmaHeader;
  const std::string once = "#pragma once";
  header.erase(header.find(once), once.size()); // not valid in a main file
  src.replace(src.find(include), include.size(), header);
  return src;
}

} // namespace loom::cuda::test

#endif
