// Trains a relative-position bias and attention sinks by gradient descent:
// a teacher attention with a hidden bias table and sinks makes the targets;
// a student starting from zero learns them from the backward's d loss /
// d table (a variant tensor with requiresGrad) and d loss / d sinks.
#include "loom/ops/Attention.h"

#include <cstdio>
#include <random>
#include <vector>

using namespace loom;
using namespace loom::dsl;

int main() {
  const int64_t S = 64, H = 2, D = 32, span = 2 * S - 1;
  ops::AttentionVariant relBias; // score + table[h, q - kv + S - 1]
  relBias.name = "learned_rel_bias";
  relBias.tensors = {{"table", DType::F32, /*requiresGrad=*/true}};
  relBias.scoreMod = [](Value score, const ops::VariantContext &c) {
    Value at = c.head * (2 * c.seqlenK - 1) + c.qIdx - c.kvIdx + (c.seqlenK - 1);
    return score + load(c.tensors.at("table"), at, c.qValid & c.kvValid, 0.0);
  };
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0, 1);
  auto random = [&](size_t n) {
    std::vector<float> x(n);
    for (float &e : x) e = normal(gen);
    return x;
  };
  auto q = random(S * H * D), k = random(S * H * D), v = random(S * H * D);
  auto trueTable = random(H * span), trueSinks = random(H);
  std::vector<float> table(H * span, 0.f), sinks(H, 0.f), dtable(table.size()), dsinks(H);
  std::vector<float> target(q.size()), o(q.size()), dO(q.size()), lse(H * S), dq(q.size()),
      dk(k.size()), dv(v.size());
  auto T = [&](std::vector<float> &x) {
    return ops::Tensor4::contiguous(x.data(), DType::F32, {1, S, H, D});
  };
  auto forward = [&](std::vector<float> &tab, std::vector<float> &snk, std::vector<float> &out) {
    ops::AttentionOptions options;
    options.variant = ops::combine(ops::AttentionVariant::causalMask(), relBias);
    options.variantArgs = {runtime::Arg::buffer(tab)};
    options.variantGrads = {runtime::Arg::buffer(dtable)};
    options.sinks = snk.data();
    options.dsinks = dsinks.data();
    options.backend = runtime::Backend::Cpu;
    ops::attentionForward(T(q), T(k), T(v), T(out), lse.data(), options);
    return options;
  };
  forward(trueTable, trueSinks, target); // the teacher
  double first = 0, loss = 0, lr = 0.05;
  for (int step = 0; step <= 40; ++step) {
    ops::AttentionOptions options = forward(table, sinks, o);
    loss = 0; // 0.5 |O - target|^2, so dO = O - target
    for (size_t i = 0; i < o.size(); ++i)
      dO[i] = o[i] - target[i], loss += 0.5 * dO[i] * dO[i];
    ops::attentionBackward(T(q), T(k), T(v), T(o), lse.data(), T(dO), T(dq), T(dk), T(dv),
                           options);
    for (size_t i = 0; i < table.size(); ++i)
      table[i] -= float(lr * dtable[i]);
    for (int64_t h = 0; h < H; ++h)
      sinks[h] -= float(lr * dsinks[h]);
    first = step == 0 ? loss : first;
    if (step % 5 == 0)
      std::printf("step %2d  loss %.5f  sinks %+.3f %+.3f (teacher %+.3f %+.3f)\n", step, loss,
                  sinks[0], sinks[1], trueSinks[0], trueSinks[1]);
  }
  return loss < 0.25 * first ? 0 : 1;
}
