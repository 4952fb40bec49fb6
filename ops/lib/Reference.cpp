//===- Reference.cpp ------------------------------------------------------===//
#include "loom/ops/Reference.h"

#include "loom/Support/HalfPrecision.h"

#include <cmath>
#include <tuple>
#include <fmt/format.h>
#include <limits>

namespace loom::ops::ref {

std::vector<float> randomVector(size_t n, float lo, float hi, uint64_t *seedOut) {
  std::random_device rd;
  uint64_t seed = (uint64_t(rd()) << 32) ^ rd();
  if (seedOut)
    *seedOut = seed;
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(gen);
  return v;
}

float poison() { return std::numeric_limits<float>::quiet_NaN(); }

std::vector<double> softmaxRows(const std::vector<double> &x, int64_t rows, int64_t cols) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < cols; ++c)
      m = std::max(m, x[r * cols + c]);
    for (int64_t c = 0; c < cols; ++c)
      s += std::exp(x[r * cols + c] - m);
    for (int64_t c = 0; c < cols; ++c)
      y[r * cols + c] = std::exp(x[r * cols + c] - m) / s;
  }
  return y;
}

std::vector<double> matmul(const std::vector<double> &a, const std::vector<double> &b,
                           int64_t m, int64_t n, int64_t k) {
  std::vector<double> c(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j)
        c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

namespace {
double roundAs(double x, const char *dtype) {
  if (!dtype)
    return x;
  std::string t = dtype;
  float f = static_cast<float>(x);
  if (t == "f16")
    return halfToFloat(floatToHalf(f));
  if (t == "bf16")
    return bf16ToFloat(floatToBf16(f));
  return f;
}
/// The scaled, modified score of a visible pair (b, h, i, j) and
/// d(score_mod)/ds.
std::pair<double, double> scoreAt(double dot, double scale, const RefVariant *variant, int64_t b,
                                  int64_t h, int64_t i, int64_t j) {
  if (variant && variant->score)
    return variant->score(dot * scale, b, h, i, j);
  return {dot * scale, 1.0};
}

struct Dims {
  int64_t Sq, Sk, Hq, Hkv, D;
};

/// Row (b, h, i) of the softmax shared by both references: scores against
/// every key (rounded to `roundScoresTo` when set), score_mod derivatives,
/// the row max m and l = sum exp(s - m), and which keys are visible. m is
/// NaN when a visible score is (std::max would drop it), so a NaN input
/// makes the whole row NaN; m is -inf when no key is visible or every
/// visible score is -inf (counted as hidden, as in the kernels): the row
/// then has O = 0, LSE = -inf and P = 0, and false is returned.
bool rowScores(const std::vector<double> &q, const std::vector<double> &k, const Dims &n,
               int64_t b, int64_t h, int64_t i, bool causal, double scale,
               const RefVariant *variant, const char *roundScoresTo, std::vector<double> &s,
               std::vector<double> &dmod, std::vector<char> &visible, double &m, double &l) {
  int64_t hk = h / (n.Hq / n.Hkv);
  m = -INFINITY;
  l = 0;
  for (int64_t j = 0; j < n.Sk; ++j) {
    visible[size_t(j)] = variant && variant->visible ? variant->visible(b, h, i, j)
                                                     : (!causal || j <= i + n.Sk - n.Sq);
    if (!visible[size_t(j)]) {
      s[j] = -INFINITY, dmod[j] = 0.0;
      continue;
    }
    double dot = 0;
    for (int64_t c = 0; c < n.D; ++c)
      dot += q[((b * n.Sq + i) * n.Hq + h) * n.D + c] * k[((b * n.Sk + j) * n.Hkv + hk) * n.D + c];
    auto [score, derivative] = scoreAt(dot, scale, variant, b, h, i, j);
    s[j] = roundAs(score, roundScoresTo);
    dmod[j] = derivative;
    m = std::isnan(s[j]) || s[j] > m ? s[j] : m;
  }
  double sink = variant && !variant->sinks.empty() ? variant->sinks[size_t(h)] : -INFINITY;
  m = std::max(m, sink);
  if (m == -INFINITY)
    return false;
  l = std::exp(sink - m); // 0 without a sink
  for (int64_t j = 0; j < n.Sk; ++j)
    if (visible[size_t(j)])
      l += std::exp(s[j] - m);
  return true;
}
} // namespace

// Both references add up visible pairs only, like the kernels (which never
// visit a pair their mask hides, beyond 0 x NaN within a tile: see
// Attention.h): a non-finite element reaches exactly the rows and keys
// that see it.
AttentionResult attention(const std::vector<double> &q, const std::vector<double> &k,
                          const std::vector<double> &v, int64_t B, int64_t Sq, int64_t Sk,
                          int64_t Hq, int64_t Hkv, int64_t D, bool causal, double scale,
                          const char *roundTo, const RefVariant *variant) {
  AttentionResult r;
  r.out.assign(size_t(B * Sq * Hq * D), 0.0);
  r.lse.assign(size_t(B * Hq * Sq), -INFINITY);
  int64_t group = Hq / Hkv;
  std::vector<double> s(static_cast<size_t>(Sk)), dmod(static_cast<size_t>(Sk));
  std::vector<char> visible(static_cast<size_t>(Sk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        int64_t hk = h / group;
        double m, l;
        if (!rowScores(q, k, {Sq, Sk, Hq, Hkv, D}, b, h, i, causal, scale, variant, roundTo, s,
                       dmod, visible, m, l))
          continue; // no visible key: O = 0, LSE = -inf
        r.lse[(b * Hq + h) * Sq + i] = m + std::log(l);
        for (int64_t c = 0; c < D; ++c) {
          double o = 0;
          for (int64_t j = 0; j < Sk; ++j)
            if (visible[size_t(j)])
              o += roundAs(std::exp(s[j] - m) / l, roundTo) * v[((b * Sk + j) * Hkv + hk) * D + c];
          r.out[((b * Sq + i) * Hq + h) * D + c] = roundAs(o, roundTo);
        }
      }
  return r;
}

AttentionGrads attentionBackward(const std::vector<double> &q, const std::vector<double> &k,
                                 const std::vector<double> &v, const std::vector<double> &dOut,
                                 int64_t B, int64_t Sq, int64_t Sk, int64_t Hq, int64_t Hkv,
                                 int64_t D, bool causal, double scale, const char *roundTo,
                                 const RefVariant *variant) {
  AttentionGrads g;
  g.dq.assign(q.size(), 0.0);
  g.dk.assign(k.size(), 0.0);
  g.dv.assign(v.size(), 0.0);
  bool sinks = variant && !variant->sinks.empty();
  if (sinks)
    g.dsinks.assign(size_t(Hq), 0.0);
  int64_t group = Hq / Hkv;
  std::vector<double> p(static_cast<size_t>(Sk)), dmod(static_cast<size_t>(Sk), 1.0);
  std::vector<char> visible(static_cast<size_t>(Sk));
  auto Q = [&](int64_t b, int64_t i, int64_t h, int64_t c) { return ((b * Sq + i) * Hq + h) * D + c; };
  auto K = [&](int64_t b, int64_t j, int64_t h, int64_t c) { return ((b * Sk + j) * Hkv + h) * D + c; };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        int64_t hk = h / group;
        double m, l;
        // A row without keys (P = 0, O = 0) still goes through the sums
        // below: 0 x inf is NaN there as in the kernels.
        bool any = rowScores(q, k, {Sq, Sk, Hq, Hkv, D}, b, h, i, causal, scale, variant,
                             nullptr, p, dmod, visible, m, l);
        for (int64_t j = 0; j < Sk; ++j)
          p[j] = any ? roundAs(std::exp(p[j] - m) / l, roundTo) : 0.0;
        double delta = 0; // rowsum(dO * O) with O = P V (0 without keys)
        for (int64_t c = 0; c < D && any; ++c) {
          double o = 0;
          for (int64_t j = 0; j < Sk; ++j)
            if (visible[size_t(j)])
              o += p[j] * v[K(b, j, hk, c)];
          delta += dOut[Q(b, i, h, c)] * o;
        }
        // The sink's probability; it has no value, so dP_sink = 0.
        if (sinks)
          g.dsinks[size_t(h)] -= std::exp(variant->sinks[size_t(h)] - m) / l * delta;
        for (int64_t j = 0; j < Sk; ++j) {
          if (!visible[size_t(j)])
            continue;
          double dpj = 0;
          for (int64_t c = 0; c < D; ++c)
            dpj += dOut[Q(b, i, h, c)] * v[K(b, j, hk, c)];
          double ds = roundAs(p[j] * (dpj - delta) * dmod[j], roundTo);
          if (variant && variant->scoreGrad && p[j] != 0)
            variant->scoreGrad(b, h, i, j, ds);
          for (int64_t c = 0; c < D; ++c) {
            g.dq[Q(b, i, h, c)] += scale * ds * k[K(b, j, hk, c)];
            g.dk[K(b, j, hk, c)] += scale * ds * q[Q(b, i, h, c)];
            g.dv[K(b, j, hk, c)] += p[j] * dOut[Q(b, i, h, c)];
          }
        }
      }
  for (auto *vec : {&g.dq, &g.dk, &g.dv})
    for (double &x : *vec)
      x = roundAs(x, roundTo);
  return g;
}

ErrorStats compare(const std::vector<float> &got, const std::vector<double> &want,
                   double relFloor) {
  ErrorStats e;
  if (got.size() != want.size()) {
    e.nonFinite = std::max(got.size(), want.size());
    e.firstBad = 0;
    return e;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i]) && std::isfinite(want[i])) {
      ++e.nonFinite;
      e.firstBad = std::min(e.firstBad, i);
      continue;
    }
    if (!std::isfinite(want[i])) {
      if (!(got[i] == want[i])) { // inf must match inf; NaN never matches
        ++e.nonFinite;
        e.firstBad = std::min(e.firstBad, i);
      }
      continue;
    }
    double abs = std::fabs(double(got[i]) - want[i]);
    e.maxAbs = std::max(e.maxAbs, abs);
    e.maxRel = std::max(e.maxRel, abs / std::max(std::fabs(want[i]), relFloor));
  }
  return e;
}

ErrorStats compareScaled(const std::vector<float> &got, const std::vector<double> &want,
                         const std::vector<double> &scale) {
  ErrorStats e = compare(got, want);
  e.maxRel = 0;
  for (size_t i = 0; i < got.size() && i < scale.size(); ++i)
    if (std::isfinite(got[i]) && std::isfinite(want[i]))
      e.maxRel = std::max(e.maxRel, std::fabs(double(got[i]) - want[i]) /
                                        std::max(scale[i], 1e-300));
  return e;
}

double maxAbs(const std::vector<double> &v) {
  double m = 0;
  for (double x : v)
    if (std::isfinite(x))
      m = std::max(m, std::fabs(x));
  return m;
}

double maxAbsError(const std::vector<float> &got, const std::vector<double> &want) {
  double e = 0;
  for (size_t i = 0; i < got.size(); ++i)
    e = std::max(e, std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - want[i]));
  return e;
}

std::vector<double> absolute(const std::vector<double> &v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = std::fabs(v[i]);
  return out;
}

bool withinRelative(const ErrorStats &e, double relTol) {
  return e.nonFinite == 0 && e.maxRel <= relTol;
}

std::string format(const ErrorStats &e) {
  if (e.nonFinite)
    return fmt::format("{} non-finite or mismatched elements (first at {}), max abs {:.3g}",
                       e.nonFinite, e.firstBad, e.maxAbs);
  return fmt::format("max abs {:.3g}, max rel {:.3g}", e.maxAbs, e.maxRel);
}

std::vector<double> toDouble(const std::vector<float> &v) {
  return std::vector<double>(v.begin(), v.end());
}

std::vector<float> roundToF16(const std::vector<float> &v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = halfToFloat(floatToHalf(v[i]));
  return out;
}

std::vector<float> roundToBf16(const std::vector<float> &v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = bf16ToFloat(floatToBf16(v[i]));
  return out;
}

std::vector<uint16_t> toF16Bits(const std::vector<float> &v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = floatToHalf(v[i]);
  return out;
}

std::vector<uint16_t> toBf16Bits(const std::vector<float> &v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = floatToBf16(v[i]);
  return out;
}

} // namespace loom::ops::ref
