//===- Reference.h - float64 references and error metrics -------*- C++ -*-===//
//
// What every correctness check compares against: plain float64 loops on the
// host, fresh random inputs, and error metrics in which NaN never passes.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_REFERENCE_H
#define LOOM_OPS_REFERENCE_H

#include <cstdint>
#include <functional>
#include <utility>
#include <random>
#include <string>
#include <vector>

namespace loom::ops::ref {

/// Uniform values in [lo, hi) from a seed drawn from std::random_device,
/// so every run checks fresh data (the seed is returned for reproduction).
std::vector<float> randomVector(size_t n, float lo, float hi, uint64_t *seedOut = nullptr);

/// Value used to poison outputs before a run: a quiet NaN, so an element
/// the kernel failed to write can never pass a comparison.
float poison();

std::vector<double> softmaxRows(const std::vector<double> &x, int64_t rows, int64_t cols);
/// C = A (m x k) @ B (k x n), row-major.
std::vector<double> matmul(const std::vector<double> &a, const std::vector<double> &b,
                           int64_t m, int64_t n, int64_t k);

/// Attention on contiguous (batch, seqlen, heads, head_dim) inputs; returns
/// O in the same layout and LSE (natural log) as (batch, heads, seqlen_q).
/// `roundTo`, when set, rounds S, P and O to that dtype like a naive
/// attention computed in low precision (the FlashAttention test baseline).
/// A variant for the references: which (b, h, i, j) are visible, and the
/// score modifier's value and derivative at the scaled score s.
struct RefVariant {
  std::function<bool(int64_t b, int64_t h, int64_t i, int64_t j)> visible;
  std::function<std::pair<double, double>(double s, int64_t b, int64_t h, int64_t i, int64_t j)>
      score;
  /// Attention sinks: one logit per query head joining every row's softmax
  /// denominator without a value (empty: none).
  std::vector<double> sinks;
  /// Backward: called with d loss / d (scaled score, score_mod's input) of
  /// every visible pair, from which a test derives the gradient of what its
  /// score modifier reads (a bias added to the scaled score gets exactly
  /// this; other uses apply the chain rule through their own formula).
  std::function<void(int64_t b, int64_t h, int64_t i, int64_t j, double dScore)> scoreGrad;
};

struct AttentionResult {
  std::vector<double> out, lse;
};
AttentionResult attention(const std::vector<double> &q, const std::vector<double> &k,
                          const std::vector<double> &v, int64_t batch, int64_t seqlenQ,
                          int64_t seqlenK, int64_t headsQ, int64_t headsKV, int64_t headDim,
                          bool causal, double scale, const char *roundTo = nullptr,
                          const RefVariant *variant = nullptr);

/// Gradients of attention (same layouts as the inputs), float64, with the
/// probabilities recomputed exactly. `roundTo` rounds P, dS and the
/// results like a naive low-precision backward.
struct AttentionGrads {
  std::vector<double> dq, dk, dv;
  /// d loss / d sinks (heads_q) when the variant has sinks.
  std::vector<double> dsinks;
};
AttentionGrads attentionBackward(const std::vector<double> &q, const std::vector<double> &k,
                                 const std::vector<double> &v, const std::vector<double> &dOut,
                                 int64_t batch, int64_t seqlenQ, int64_t seqlenK, int64_t headsQ,
                                 int64_t headsKV, int64_t headDim, bool causal, double scale,
                                 const char *roundTo = nullptr,
                                 const RefVariant *variant = nullptr);

struct ErrorStats {
  double maxAbs = 0;      ///< max |got - want|
  double maxRel = 0;      ///< max |got - want| / max(|want|, floor)
  size_t nonFinite = 0;   ///< NaN or inf in `got` where `want` is finite
  size_t firstBad = SIZE_MAX;
};
ErrorStats compare(const std::vector<float> &got, const std::vector<double> &want,
                   double relFloor = 1e-6);
/// Same, with each element's error divided by scale[i] (for example
/// sum_k |a_ik||b_kj| for a matmul, which bounds the rounding error of any
/// summation order) instead of by |want|.
ErrorStats compareScaled(const std::vector<float> &got, const std::vector<double> &want,
                         const std::vector<double> &scale);
/// True when there is no non-finite element and maxRel <= relTol.
bool withinRelative(const ErrorStats &e, double relTol);
std::string format(const ErrorStats &e);

std::vector<double> toDouble(const std::vector<float> &v);
std::vector<double> absolute(const std::vector<double> &v);
/// max |x| over the finite elements.
double maxAbs(const std::vector<double> &v);
/// max |got - want|; infinite when `got` has a NaN (so NaN never passes).
double maxAbsError(const std::vector<float> &got, const std::vector<double> &want);
/// Rounds each element through f16 or bf16 (round to nearest even).
std::vector<float> roundToF16(const std::vector<float> &v);
std::vector<float> roundToBf16(const std::vector<float> &v);
std::vector<uint16_t> toF16Bits(const std::vector<float> &v);
std::vector<uint16_t> toBf16Bits(const std::vector<float> &v);

} // namespace loom::ops::ref

#endif
