//===- AttentionTuning.h - attention's config space and autotuning -*- C++ -*-===//
//
// The attention kernels' tunable knobs, declared next to them (the generic
// machinery is autotune/):
//
//   blockM      query rows per program (BLOCK_M)
//   blockN      keys per inner-loop step (BLOCK_N)
//   numThreads  threads per block (CUDA and emu; the CPU backend ignores it,
//               so its space has the single value 128)
//
// There are no pipeline stages to tune yet: the CUDA lowering has no
// cp.async pipelining (see the README's "Not yet"); a `stages` knob belongs
// here once it does.
//
// Cost model (orders the configs that survive pruning; lower is better):
//   per program:  key blocks visited (causal: only those at or below the
//                 diagonal) x (2 blockM blockN D   two matmuls
//                             + 8 blockM blockN    softmax, masking
//                             + blockM D           rescaling the accumulator
//                             + 512)               loop overhead
//   total:        waves x mean program cost, waves = ceil(programs / units),
//                 units = hardware threads (CPU) or 108 SMs (GPU).
// It favours large blocks (fewer rescales, less overhead) until they leave
// units idle or pad short sequences; timing decides the rest.
//
// Production calls (attentionForward/attentionBackward without
// options.config) use resolveAttentionConfig(): the cached tuned config for
// (device kind, pass, dtype, head dim, variant, seqlen bucket) when one
// exists, else the heuristic default. They never tune.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_ATTENTIONTUNING_H
#define LOOM_OPS_ATTENTIONTUNING_H

#include "loom/autotune/Tuner.h"
#include "loom/ops/Attention.h"

namespace loom::ops {

enum class AttentionPass { Forward, Backward };

/// What to tune: one pass for one dtype, head dim, variant and sequence
/// length (seqlen_q = seqlen_k = seqlen), on tensors of (batch, seqlen,
/// heads, head dim).
struct AttentionTuningProblem {
  AttentionPass pass = AttentionPass::Forward;
  DType dtype = DType::BF16;
  int64_t headDim = 128;
  bool causal = false;
  /// Variants with extra tensors cannot be tuned here (no data for them).
  AttentionVariant variant;
  int64_t seqlen = 8192;
  int64_t batch = 1, heads = 1;
  runtime::Backend backend = runtime::Backend::Auto;
  /// Replaces attentionConfigSpace() (tests use small spaces).
  std::optional<autotune::ConfigSpace> space;
};

/// The knobs above for a backend; the constraint drops blocks larger than
/// the (bucketed) sequence. Contains the default config.
autotune::ConfigSpace attentionConfigSpace(AttentionPass pass, int64_t headDim,
                                           runtime::Backend backend, int64_t seqlen);

/// Smallest power of two >= seqlen (at least 128): results tuned for one
/// length serve every length of its bucket.
int64_t attentionSeqlenBucket(int64_t seqlen);

/// The cache key of a pass: "attention.forward/bf16/d128/causal@sq<=8192,sk<=8192".
std::string attentionTuningKey(AttentionPass pass, DType dtype, int64_t headDim,
                               const std::string &variantName, int64_t seqlenQ, int64_t seqlenK);

autotune::Config toTuningConfig(const AttentionConfig &c);
/// Throws InvalidArgument naming a missing or non-positive knob.
AttentionConfig fromTuningConfig(const autotune::Config &c);

/// Tunes `problem` (or returns the cached result). Validates the problem
/// first: an unsupported head dim or dtype throws InvalidArgument naming it.
/// Timing: device events on cuda, wall clock on cpu and emu; 3 input sets
/// rotated; every config's output is checked against the default config's
/// (see verify in AttentionTuning.cpp for the tolerances). With `comm`, the
/// configs are split over its ranks (autotune::tuneCluster).
autotune::TuneResult tuneAttention(const AttentionTuningProblem &problem,
                                   const autotune::TuneOptions &options = {},
                                   runtime::Communicator *comm = nullptr,
                                   autotune::TuningCache *cache = nullptr);

/// options.config if set; else the cached tuned config for this call's key
/// (unless LOOM_AUTOTUNE=0); else defaultAttentionConfig /
/// defaultAttentionBackwardConfig. Never tunes, never throws for cache
/// trouble (a corrupt file warns once and reads as a miss).
AttentionConfig resolveAttentionConfig(const AttentionOptions &options, AttentionPass pass,
                                       DType dtype, int64_t headDim, int64_t seqlenQ,
                                       int64_t seqlenK, runtime::Backend backend);

} // namespace loom::ops

#endif
