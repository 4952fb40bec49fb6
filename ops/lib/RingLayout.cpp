//===- RingLayout.cpp - which tokens each ring rank holds -----------------===//
//
// Causal attention gives late tokens more keys than early ones; zigzag
// pairs chunk r with chunk 2P-1-r so every rank does the same work, and
// stripe interleaves tokens for the same effect at finer grain.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/RingAttention.h"

#include "loom/Support/Error.h"

#include <cstring>
#include <fmt/format.h>

namespace loom::ops {

const char *ringLayoutName(RingLayout layout) {
  switch (layout) {
  case RingLayout::Contiguous: return "contiguous";
  case RingLayout::Zigzag: return "zigzag";
  case RingLayout::Stripe: return "stripe";
  }
  return "unknown";
}

RingLayout parseRingLayout(const std::string &name) {
  for (RingLayout l : {RingLayout::Contiguous, RingLayout::Zigzag, RingLayout::Stripe})
    if (name == ringLayoutName(l))
      return l;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown ring layout '{}' (expected contiguous, zigzag or stripe)", name));
}

std::vector<TokenSegment> ringShard(RingLayout layout, int64_t seqlen, int rank, int world) {
  if (world < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: world size must be >= 1, got {}", world));
  if (rank < 0 || rank >= world)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: rank {} is outside world size {}", rank, world));
  int64_t parts = layout == RingLayout::Zigzag ? 2 * int64_t(world) : world;
  if (seqlen < 0 || seqlen % parts != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ring attention: the {} layout needs the sequence length ({}) "
                            "divisible by {} ({}world size {})",
                            ringLayoutName(layout), seqlen, parts,
                            layout == RingLayout::Zigzag ? "2 x " : "", world));
  int64_t local = seqlen / world;
  switch (layout) {
  case RingLayout::Contiguous:
    return {{0, local, rank * local, 1}};
  case RingLayout::Stripe:
    return {{0, local, rank, world}};
  case RingLayout::Zigzag: {
    int64_t chunk = seqlen / parts;
    return {{0, chunk, rank * chunk, 1}, {chunk, chunk, (parts - 1 - rank) * chunk, 1}};
  }
  }
  return {};
}

namespace {
/// Calls copy(globalToken, localToken) for every token of the rank.
template <typename F> void forEachToken(RingLayout layout, int64_t seqlen, int rank, int world,
                                        F copy) {
  for (const TokenSegment &s : ringShard(layout, seqlen, rank, world))
    for (int64_t i = 0; i < s.count; ++i)
      copy(s.offset + i * s.stride, s.localStart + i);
}

void copySequence(const Tensor4 &whole, uint8_t *local, RingLayout layout, int rank, int world,
                  bool toLocal) {
  auto [B, S, H, D] = whole.shape;
  int64_t localS = S / std::max(world, 1);
  size_t es = dtypeSize(whole.dtype), row = size_t(D) * es;
  auto *base = static_cast<uint8_t *>(const_cast<void *>(whole.data));
  forEachToken(layout, S, rank, world, [&](int64_t g, int64_t l) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        uint8_t *w = base + (b * whole.strides[0] + g * whole.strides[1] + h * whole.strides[2]) * es;
        uint8_t *x = local + size_t(((b * localS + l) * H + h) * D) * es;
        toLocal ? std::memcpy(x, w, row) : std::memcpy(w, x, row);
      }
  });
}

void copyRows(float *whole, float *local, int64_t B, int64_t H, int64_t S, RingLayout layout,
              int rank, int world, bool toLocal) {
  int64_t localS = S / std::max(world, 1);
  forEachToken(layout, S, rank, world, [&](int64_t g, int64_t l) {
    for (int64_t bh = 0; bh < B * H; ++bh) {
      float &w = whole[bh * S + g], &x = local[bh * localS + l];
      toLocal ? x = w : w = x;
    }
  });
}
} // namespace

void shardSequence(const Tensor4 &whole, void *local, RingLayout layout, int rank, int world) {
  copySequence(whole, static_cast<uint8_t *>(local), layout, rank, world, true);
}

void unshardSequence(const void *local, const Tensor4 &whole, RingLayout layout, int rank,
                     int world) {
  copySequence(whole, static_cast<uint8_t *>(const_cast<void *>(local)), layout, rank, world,
               false);
}

void shardRows(const float *whole, float *local, int64_t batch, int64_t heads, int64_t seqlen,
               RingLayout layout, int rank, int world) {
  copyRows(const_cast<float *>(whole), local, batch, heads, seqlen, layout, rank, world, true);
}

void unshardRows(const float *local, float *whole, int64_t batch, int64_t heads, int64_t seqlen,
                 RingLayout layout, int rank, int world) {
  copyRows(whole, const_cast<float *>(local), batch, heads, seqlen, layout, rank, world, false);
}

} // namespace loom::ops
