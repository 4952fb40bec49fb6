//===- Attention.cpp - loom attention: attention on .npy files ------------===//
//
//   loom attention --q Q.npy --k K.npy --v V.npy --out O.npy [--lse LSE.npy]
//                  [--variant SPEC] [--cu-seqlens 0,a,...] [--scale S]
//                  [--dtype f32|f16|bf16] [--backend auto|cpu|emu]
//                  [--grad-out dO.npy --dq F --dk F --dv F] [--quiet]
//                  [--repeat N] [--cpu-threads T]
//
// Inputs are float32 (batch, seqlen, heads, head_dim) arrays, cast to the
// compute dtype (round to nearest even) before the kernel; outputs are
// float32.
//
//===----------------------------------------------------------------------===//
#include "AttentionRequest.h"
#include "Commands.h"
#include "Progress.h"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

namespace loom::cli {

int runAttention(int argc, char **argv) {
  Options opts("attention", attentionOptionNames(), {"quiet"});
  opts.parse(argc, argv, 2);
  AttentionRequest r = parseAttentionRequest(opts, "attention");
  checkOutputs("loom attention", r.outputs());
  r.load();
  ComputeTensor q = toCompute(r.q, r.dtype), k = toCompute(r.k, r.dtype),
                v = toCompute(r.v, r.dtype);
  ComputeTensor out = ComputeTensor::zeros(r.dtype, q.shape);
  std::vector<float> lse(size_t(q.shape[0] * q.shape[2] * q.shape[1]));
  ops::AttentionOptions options = r.options();
  ProgressLine progress("loom attention", !opts.flag("quiet"));
  double flops = attentionForwardFlops(q.shape[0], q.shape[1], k.shape[1], q.shape[2],
                                       q.shape[3], options.causal || options.variant.causal);
  progress.addPass("forward", flops);
  if (r.backward)
    progress.addPass("backward", kBackwardFlopRatio * flops);
  std::optional<ComputeTensor> dq, dk, dv, dO;
  if (r.backward) {
    dO = toCompute(r.dO, r.dtype);
    dq = ComputeTensor::zeros(r.dtype, q.shape);
    dk = ComputeTensor::zeros(r.dtype, k.shape);
    dv = ComputeTensor::zeros(r.dtype, v.shape);
  }
  // One call: the forward, and the backward with the grad options; only
  // the first reports progress.
  bool first = true;
  auto call = [&] {
    if (first)
      options.progress = progress.reporter(0);
    ops::attentionForward(q.tensor(), k.tensor(), v.tensor(), out.tensor(), lse.data(), options);
    if (r.backward) {
      if (first)
        options.progress = progress.reporter(1);
      ops::attentionBackward(q.tensor(), k.tensor(), v.tensor(), out.tensor(), lse.data(),
                             dO->tensor(), dq->tensor(), dk->tensor(), dv->tensor(), options);
    }
    if (first)
      progress.finish();
    first = false;
    options.progress = {};
  };
  double cacheMs = runtime::KernelCache::threadMs();
  call();
  if (r.repeat > 0) {
    double compileMs = runtime::KernelCache::threadMs() - cacheMs;
    std::vector<double> runMs;
    for (int64_t i = 0; i < r.repeat; ++i) {
      auto start = std::chrono::steady_clock::now();
      call();
      runMs.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::fprintf(stderr, "%s\n", timingLine("", compileMs, runMs).c_str());
  }
  auto f32 = [](const std::optional<ComputeTensor> &t) {
    return t ? toFloat32(*t) : std::vector<float>{};
  };
  std::vector<float> o32 = toFloat32(out), dq32 = f32(dq), dk32 = f32(dk), dv32 = f32(dv);
  writeAttentionOutputs(r, o32.data(), lse.data(), dq32.data(), dk32.data(), dv32.data());
  std::string wrote = fmt::format("{} {}", r.outPath, shapeString(r.q.shape));
  if (r.lsePath)
    wrote += fmt::format(" and {} {}", *r.lsePath,
                         shapeString({r.q.shape[0], r.q.shape[2], r.q.shape[1]}));
  if (r.backward)
    wrote += fmt::format(", {}, {}, {}", *r.dqPath, *r.dkPath, *r.dvPath);
  std::printf("loom attention: wrote %s (%s, %s, %s backend)\n", wrote.c_str(),
              std::string(dtypeName(r.dtype)).c_str(), r.variant.label.c_str(),
              runtime::backendName(r.backend));
  return 0;
}

} // namespace loom::cli
