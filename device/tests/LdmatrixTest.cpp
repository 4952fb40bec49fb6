// ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared.b16 (PTX_FACTS §3):
// each of the first 8*num lanes supplies one row address; rows are scattered
// in shared memory to prove the per-lane addresses are used.
#include <gtest/gtest.h>

#include "Fragments.h"
#include "TestUtil.h"

namespace {
using namespace loom::device;
using namespace loom::device::test;

constexpr std::size_t kSmem = 4096;

// Value of element (r, c) of matrix j: distinct for every element.
uint16_t value(unsigned j, unsigned r, unsigned c) { return (uint16_t)(0x1000 * (j + 1) + 16 * r + c); }

// Matrix j row r lives at a scattered 16-byte slot (reversed and interleaved).
unsigned slot(unsigned j, unsigned r) { return (31 - (8 * j + r)) * 3 % 32 * 4 + 1; }

template <unsigned Num, bool Trans>
void check_ldmatrix(void (*ld)(uint32_t*, const void*, std::source_location)) {
  uint32_t out[32][4] = {};
  run_block(32, kSmem, [&] {
    auto* smem = static_cast<uint16_t*>(dynamic_shared_memory());
    const unsigned l = threadIdx.x;
    if (l == 0)
      for (unsigned j = 0; j < Num; ++j)
        for (unsigned r = 0; r < 8; ++r)
          for (unsigned c = 0; c < 8; ++c) smem[8 * slot(j, r) + c] = value(j, r, c);
    bar_sync();
    // Lanes past 8*Num pass an address that would fail if it were used.
    const void* row = l < 8 * Num ? smem + 8 * slot(l / 8, l % 8) : (const void*)0x8;
    uint32_t d[4] = {};
    ld(d, row, std::source_location::current());
    for (unsigned j = 0; j < 4; ++j) out[l][j] = d[j];
  });
  for (unsigned l = 0; l < 32; ++l) {
    const unsigned g = l / 4, t = l % 4;
    for (unsigned j = 0; j < Num; ++j) {
      const uint32_t want = Trans ? pack(value(j, 2 * t, g), value(j, 2 * t + 1, g))
                                  : pack(value(j, g, 2 * t), value(j, g, 2 * t + 1));
      EXPECT_EQ(out[l][j], want) << "lane " << l << " matrix " << j;
    }
  }
}

TEST(EmuLdmatrix, X1) { check_ldmatrix<1, false>(&ldmatrix_x1); }
TEST(EmuLdmatrix, X2) { check_ldmatrix<2, false>(&ldmatrix_x2); }
TEST(EmuLdmatrix, X4) { check_ldmatrix<4, false>(&ldmatrix_x4); }
TEST(EmuLdmatrix, X1Trans) { check_ldmatrix<1, true>(&ldmatrix_x1_trans); }
TEST(EmuLdmatrix, X2Trans) { check_ldmatrix<2, true>(&ldmatrix_x2_trans); }
TEST(EmuLdmatrix, X4Trans) { check_ldmatrix<4, true>(&ldmatrix_x4_trans); }

// The derived addressing of PTX_FACTS §3 yields exactly the mma fragments of §1.
TEST(EmuLdmatrix, DerivedAddressesGiveMmaFragments) {
  uint16_t A[16][16], B[16][8], Bt[8][16];
  for (unsigned i = 0; i < 16; ++i)
    for (unsigned k = 0; k < 16; ++k) A[i][k] = (uint16_t)(i * 16 + k);
  for (unsigned k = 0; k < 16; ++k)
    for (unsigned n = 0; n < 8; ++n) B[k][n] = Bt[n][k] = (uint16_t)(0x4000 + k * 8 + n);
  uint32_t a[32][4], b_trans[32][2], b_nk[32][2];
  run_block(32, kSmem, [&] {
    auto* s = static_cast<uint16_t*>(dynamic_shared_memory());
    uint16_t* sA = s;          // 16x16 row-major
    uint16_t* sB = s + 256;    // 16x8 K x N
    uint16_t* sBt = s + 384;   // 8x16 N x K
    const unsigned l = threadIdx.x;
    if (l == 0) {
      std::memcpy(sA, A, sizeof A);
      std::memcpy(sB, B, sizeof B);
      std::memcpy(sBt, Bt, sizeof Bt);
    }
    bar_sync();
    ldmatrix_x4(a[l], sA + (l % 16) * 16 + 8 * (l / 16));
    ldmatrix_x2_trans(b_trans[l], sB + (l % 16) * 8);
    ldmatrix_x2(b_nk[l], sBt + (l % 8) * 16 + 8 * (l / 8 % 2));
  });
  for (unsigned l = 0; l < 32; ++l) {
    for (unsigned r = 0; r < 4; ++r) {
      const RowCol lo = a_element(l, 2 * r), hi = a_element(l, 2 * r + 1);
      EXPECT_EQ(a[l][r], pack(A[lo.row][lo.col], A[hi.row][hi.col])) << "lane " << l;
    }
    for (unsigned r = 0; r < 2; ++r) {
      const RowCol lo = b_element(l, 2 * r), hi = b_element(l, 2 * r + 1);
      const uint32_t want = pack(B[lo.row][lo.col], B[hi.row][hi.col]);
      EXPECT_EQ(b_trans[l][r], want) << "lane " << l;
      EXPECT_EQ(b_nk[l][r], want) << "lane " << l;
    }
  }
}

TEST(EmuLdmatrix, RowOutsideSharedMemoryIsReported) {
  const std::string err = launch_error(32, 256, [] {
    auto* s = static_cast<unsigned char*>(dynamic_shared_memory());
    uint32_t d[2];
    // Lane 11 (row 3 of matrix 1) points one row past the end.
    ldmatrix_x2(d, threadIdx.x == 11 ? s + 256 : s + 16 * threadIdx.x % 256);
  }, "oob");
  EXPECT_NE(err.find("outside the block's shared memory"), std::string::npos) << err;
  EXPECT_NE(err.find("lane 11"), std::string::npos) << err;
  EXPECT_NE(err.find("kernel 'oob' block (0,0,0)"), std::string::npos) << err;
}

TEST(EmuLdmatrix, MisalignedRowIsReported) {
  const std::string err = launch_error(32, 1024, [] {
    auto* s = static_cast<unsigned char*>(dynamic_shared_memory());
    uint32_t d[1];
    ldmatrix_x1(d, s + 16 * threadIdx.x + (threadIdx.x == 2 ? 8 : 0));
  });
  EXPECT_NE(err.find("lane 2"), std::string::npos) << err;
  EXPECT_NE(err.find("not 16-byte aligned"), std::string::npos) << err;
}

} // namespace
