//===- AttentionRequest.h - options shared by loom attention/ring -*- C++ -*-===//
//
// `loom ring` takes every option of `loom attention`; both parse them here
// into one request: file paths, variant, dtype, backend, and (once loaded)
// the float32 inputs.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_TOOLS_LOOM_ATTENTIONREQUEST_H
#define LOOM_TOOLS_LOOM_ATTENTIONREQUEST_H

#include "Cli.h"
#include "Npy.h"
#include "Output.h"

#include "loom/ops/Attention.h"

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace loom::cli {

/// The attention variant: the built-ins of ops::AttentionVariant combined
/// in the order given, and a label for the summary line.
struct Variant {
  ops::AttentionVariant variant;
  std::string label = "none";
};
/// Parses --variant SPEC (comma-separated built-in terms); throws
/// InvalidArgument "loom COMMAND: ..." naming the bad term.
Variant parseVariant(const std::string &spec, const std::string &command);

/// The attention kernels `loom compile` and `loom profile` know.
extern const char *const kAttentionKernels[4];
bool isAttentionKernel(const std::string &name);
/// An attention kernel for --head-dim and --variant, with the untuned default
/// block sizes of the backend it is compiled for as its constants (a
/// --const already in `spec` wins).
dsl::Kernel attentionKernel(const Options &opts, const std::string &name, DType dtype,
                            bool cudaBackend, runtime::Specialization &spec,
                            unsigned &numThreads);

/// A float32 input as the kernel sees it: float32, or f16/bf16 bits.
struct ComputeTensor {
  DType dtype;
  std::array<int64_t, 4> shape;
  std::vector<float> f32;
  std::vector<uint16_t> bits;

  ops::Tensor4 tensor() const;
  /// A zero tensor of `shape` in `dtype`.
  static ComputeTensor zeros(DType dtype, std::array<int64_t, 4> shape);
};

/// Rounds float32 data to `dtype` (nearest even).
ComputeTensor toCompute(const NpyArray &a, DType dtype);
std::vector<float> toFloat32(const ComputeTensor &t);

struct AttentionRequest {
  std::string command; ///< "attention" or "ring", for error prefixes
  std::string qPath, kPath, vPath, outPath;
  std::optional<std::string> lsePath, dOPath, dqPath, dkPath, dvPath, cuSeqlens;
  /// --bias (float32 (heads, seqlen_q, seqlen_k), broadcast over batch, added
  /// to the scaled score before the --variant terms), --sinks (float32
  /// (heads,)) and, with the backward, their gradients --dbias, --dsinks.
  std::optional<std::string> biasPath, sinksPath, dbiasPath, dsinksPath;
  bool backward = false;
  Variant variant;
  std::optional<float> scale;
  DType dtype = DType::F32;
  runtime::Backend backend = runtime::Backend::Cpu;
  /// --repeat N: run N more times after the first call and print the
  /// timing line (0: no timing). --cpu-threads: ops::AttentionOptions::
  /// cpuThreads (0: $LOOM_NUM_THREADS, else every core).
  int64_t repeat = 0;
  unsigned cpuThreads = 0;

  /// Filled by load(): the float32 inputs (dO when backward) and the
  /// document ids of --cu-seqlens.
  NpyArray q, k, v, dO, bias, sinks;
  std::vector<int32_t> docIds;
  /// The gradients options() points the backward at (sized by checkLoaded).
  mutable std::vector<float> dbias, dsinks;

  /// Reads and checks the input files.
  void load();
  /// The checks of load() on inputs received otherwise (ring ranks other
  /// than 0), and the document ids of --cu-seqlens.
  void checkLoaded();
  /// Attention options for the loaded inputs (variant args, sinks and the
  /// learnable gradients point into this request, which must outlive them).
  ops::AttentionOptions options() const;
  /// The files the request writes (--out, --lse, --dq, --dk, --dv, --dbias,
  /// --dsinks), for checkOutputs before any compute.
  std::vector<OutputPath> outputs() const;
  /// "(heads, seqlen_q, seqlen_k) = (H, Sq, Sk)" for "bias", "(heads,) =
  /// (H)" for "sinks", from the loaded q and k.
  std::string expectedLearnableShape(const char *option) const;
};

/// The stderr line of --repeat: "timing: compile <ms> ms, run median <ms>
/// ms over <N> runs", with `prefix` after "timing: " (ring ranks: "rank R ").
std::string timingLine(const std::string &prefix, double compileMs, std::vector<double> runMs);

/// The option names `loom attention` takes.
const std::vector<std::string> &attentionOptionNames();

/// Parses and checks every attention option of `opts` (no file is read);
/// errors are InvalidArgument prefixed "loom <command>: ".
AttentionRequest parseAttentionRequest(const Options &opts, const std::string &command);

/// Writes the outputs of a request, all or nothing (Output.h): out and
/// lse (batch, heads, seqlen_q), and with the backward dq, dk, dv (float32,
/// the inputs' shapes).
void writeAttentionOutputs(const AttentionRequest &r, const float *out, const float *lse,
                           const float *dq, const float *dk, const float *dv);

} // namespace loom::cli

#endif
