//===- AttentionVariants.cpp - built-in attention variants ----------------===//
//
// Each built-in is a few lines on the public variant API, as a user's own
// variant would be.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/Attention.h"

#include "loom/Support/Error.h"

#include <algorithm>
#include <cmath>
#include <climits>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace loom::ops {
using namespace loom::dsl;

AttentionVariant AttentionVariant::none() { return {}; }

AttentionVariant AttentionVariant::causalMask() {
  AttentionVariant v;
  v.name = "causal";
  v.causal = true;
  return v;
}

AttentionVariant AttentionVariant::slidingWindow(int64_t window) {
  if (window <= 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sliding_window: window must be positive, got {}", window));
  if (window > INT32_MAX) // a kernel argument, compared with i32 positions
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sliding_window: window {} exceeds 2^31 - 1", window));
  AttentionVariant v;
  v.name = "sliding_window";
  v.causal = true;
  v.window = window;
  return v;
}

AttentionVariant AttentionVariant::alibi(double slopeScale) {
  if (!(slopeScale > 0) || !std::isfinite(slopeScale))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("alibi: slope scale must be a positive number, got {}", slopeScale));
  AttentionVariant v;
  v.name = "alibi";
  v.scalars = {{"alibi_slope_scale", DType::F32, slopeScale}};
  v.scoreMod = [](Value score, const VariantContext &c) {
    Value scale = c.scalars.at("alibi_slope_scale");
    Value slope = exp2((c.head + 1).to(DType::F32) * -scale / c.numHeads.to(DType::F32));
    Value distance = abs((c.qIdx + c.diagonal - c.kvIdx).to(DType::F32));
    return score - slope * distance;
  };
  return v;
}

AttentionVariant AttentionVariant::softcap(double cap) {
  if (!(cap > 0) || !std::isfinite(cap))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("softcap: cap must be a positive number, got {}", cap));
  AttentionVariant v;
  v.name = "softcap";
  v.scalars = {{"softcap_cap", DType::F32, cap}};
  v.scoreMod = [](Value score, const VariantContext &c) {
    Value cap = c.scalars.at("softcap_cap");
    return cap * tanh(score / cap);
  };
  return v;
}

AttentionVariant AttentionVariant::prefixLM(int64_t prefix) {
  if (prefix < 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("prefix: length must be non-negative, got {}", prefix));
  if (prefix > INT32_MAX) // a kernel argument, compared with i32 positions
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("prefix: length {} exceeds 2^31 - 1", prefix));
  AttentionVariant v;
  v.name = "prefix";
  v.scalars = {{"prefix_length", DType::I32, double(prefix)}};
  v.maskMod = [](const VariantContext &c) {
    return (c.kvIdx <= c.qIdx + c.diagonal) | (c.kvIdx < c.scalars.at("prefix_length"));
  };
  return v;
}

AttentionVariant AttentionVariant::documentMask() {
  AttentionVariant v;
  v.name = "document";
  v.tensors = {{"doc_ids", DType::I32}};
  v.maskMod = [](const VariantContext &c) {
    Value ids = c.tensors.at("doc_ids");
    Value row = c.batch * c.seqlenK;
    Value qDoc = load(ids, row + c.qIdx + c.diagonal, c.qValid & (c.qIdx + c.diagonal >= 0), -1);
    Value kvDoc = load(ids, row + c.kvIdx, c.kvValid, -2);
    return qDoc == kvDoc;
  };
  return v;
}

AttentionVariant AttentionVariant::additiveBias(bool requiresGrad) {
  AttentionVariant v;
  v.name = "bias";
  v.tensors = {{"bias", DType::F32, requiresGrad}};
  v.scoreMod = [](Value score, const VariantContext &c) {
    auto i64 = [](Value x) { return x.to(DType::I64); }; // heads x seqlen^2 may pass 2^31
    Value at = (i64(c.head) * i64(c.seqlenQ) + i64(c.qIdx)) * i64(c.seqlenK) + i64(c.kvIdx);
    return score + load(c.tensors.at("bias"), at, c.qValid & c.kvValid, 0.0);
  };
  return v;
}

std::vector<int32_t> documentIdsFromCuSeqlens(const std::vector<int64_t> &cu, int64_t seqlen) {
  if (cu.size() < 2)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("cu_seqlens needs at least 2 entries (0 and the sequence length), "
                            "got {}",
                            cu.size()));
  if (cu.front() != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("cu_seqlens must start at 0, got {}", cu.front()));
  for (size_t i = 1; i < cu.size(); ++i)
    if (cu[i] <= cu[i - 1])
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("cu_seqlens must be increasing: entry {} is {} after {}", i, cu[i],
                              cu[i - 1]));
  if (cu.back() != seqlen)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("cu_seqlens must end at the sequence length {}, got {}", seqlen,
                            cu.back()));
  if (cu.size() - 1 > size_t(INT32_MAX))
    throw Error(ErrorCode::InvalidArgument, "cu_seqlens: too many documents");
  std::vector<int32_t> ids(static_cast<size_t>(seqlen));
  for (size_t d = 0; d + 1 < cu.size(); ++d)
    for (int64_t t = cu[d]; t < cu[d + 1]; ++t)
      ids[t] = static_cast<int32_t>(d);
  return ids;
}

AttentionVariant combine(const AttentionVariant &a, const AttentionVariant &b) {
  if (a.name == "none")
    return b;
  if (b.name == "none")
    return a;
  AttentionVariant v;
  v.name = a.name + "+" + b.name;
  v.causal = a.causal || b.causal;
  if (a.window && b.window)
    v.window = std::min(*a.window, *b.window);
  else
    v.window = a.window ? a.window : b.window;
  v.tensors = a.tensors;
  for (const VariantTensor &t : b.tensors)
    if (std::none_of(v.tensors.begin(), v.tensors.end(),
                     [&](const VariantTensor &u) { return u.name == t.name; }))
      v.tensors.push_back(t);
  v.scalars = a.scalars;
  for (const VariantScalar &t : b.scalars) {
    auto same = std::find_if(v.scalars.begin(), v.scalars.end(),
                             [&](const VariantScalar &u) { return u.name == t.name; });
    if (same == v.scalars.end())
      v.scalars.push_back(t);
    else if (same->value != t.value || same->dtype != t.dtype)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("combine: variants '{}' and '{}' both set scalar '{}', to {} and {}",
                              a.name, b.name, t.name, same->value, t.value));
  }
  auto sa = a.scoreMod, sb = b.scoreMod;
  if (sa && sb)
    v.scoreMod = [sa, sb](Value s, const VariantContext &c) { return sb(sa(s, c), c); };
  else
    v.scoreMod = sa ? sa : sb;
  auto ma = a.maskMod, mb = b.maskMod;
  if (ma && mb)
    v.maskMod = [ma, mb](const VariantContext &c) { return ma(c) & mb(c); };
  else
    v.maskMod = ma ? ma : mb;
  return v;
}

std::string variantIdentity(const AttentionVariant &variant) {
  std::vector<std::string> values;
  if (variant.window)
    values.push_back(fmt::format("window={}", *variant.window));
  for (const VariantScalar &s : variant.scalars)
    values.push_back(fmt::format("{}={}", s.name, s.value));
  return values.empty() ? variant.name
                        : fmt::format("{}({})", variant.name, fmt::join(values, ","));
}

} // namespace loom::ops
