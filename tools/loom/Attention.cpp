//===- Attention.cpp - loom attention: attention on .npy files ------------===//
//
//   loom attention --q Q.npy --k K.npy --v V.npy --out O.npy [--lse LSE.npy]
//                  [--variant SPEC] [--scale S] [--dtype f32|f16|bf16]
//                  [--backend auto|cpu|emu|cuda]
//
// Inputs are float32 (batch, seqlen, heads, head_dim) arrays, cast to the
// compute dtype (round to nearest even) before the kernel; outputs are
// float32. Forward only: the backward options are reserved (see
// kBackwardOptions) and rejected for now.
//
//===----------------------------------------------------------------------===//
#include "Cli.h"
#include "Commands.h"
#include "Npy.h"

#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Attention.h"
#include "loom/runtime/Kernel.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <fmt/format.h>

namespace loom::cli {
namespace {

[[noreturn]] void invalid(const std::string &message) {
  throw Error(ErrorCode::InvalidArgument, "loom attention: " + message);
}

//===- --variant ----------------------------------------------------------===//

/// The attention variant: the built-ins of ops::AttentionVariant combined
/// in the order given, and a label for the summary line.
struct Variant {
  ops::AttentionVariant variant;
  std::string label = "none";
};

std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool isPositiveInteger(const std::string &s) {
  char *end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  return !s.empty() && std::isdigit(static_cast<unsigned char>(s[0])) && *end == '\0' && v > 0;
}

std::optional<float> parsePositiveFloat(const std::string &s) {
  char *end = nullptr;
  float v = std::strtof(s.c_str(), &end);
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0])) || *end != '\0' ||
      !std::isfinite(v) || !(v > 0))
    return std::nullopt;
  return v;
}

Variant parseVariant(const std::string &spec) {
  Variant variant;
  std::vector<std::string> seen;
  size_t start = 0;
  while (true) {
    size_t comma = spec.find(',', start);
    std::string term = trim(spec.substr(start, comma == std::string::npos ? comma : comma - start));
    std::string name = term, arg;
    bool hasArg = false;
    if (size_t open = term.find('('); open != std::string::npos && term.back() == ')') {
      name = trim(term.substr(0, open));
      arg = trim(term.substr(open + 1, term.size() - open - 2));
      hasArg = true;
    }
    bool known = name == "none" || name == "causal" || name == "alibi" ||
                 name == "sliding_window" || name == "softcap" || name == "prefix";
    bool takesArg = name == "sliding_window" || name == "softcap" || name == "prefix";
    if (!known || hasArg != takesArg)
      invalid(fmt::format("bad variant term '{}' in '{}' (terms: none, causal, "
                          "sliding_window(W), alibi, softcap(C), prefix(P))",
                          term, spec));
    if (std::find(seen.begin(), seen.end(), name) != seen.end())
      invalid(fmt::format("variant term '{}' is repeated in '{}'", name, spec));
    seen.push_back(name);
    if (name == "sliding_window" && !isPositiveInteger(arg))
      invalid(fmt::format("sliding_window(W) needs a positive integer W, got '{}' in '{}'", arg,
                          spec));
    if (name == "prefix" && !isPositiveInteger(arg))
      invalid(fmt::format("prefix(P) needs a positive integer P, got '{}' in '{}'", arg, spec));
    if (name == "softcap" && !parsePositiveFloat(arg))
      invalid(fmt::format("softcap(C) needs a finite positive number C, got '{}' in '{}'", arg,
                          spec));
    ops::AttentionVariant built;
    if (name == "causal")
      built = ops::AttentionVariant::causalMask();
    else if (name == "sliding_window")
      built = ops::AttentionVariant::slidingWindow(std::stoll(arg));
    else if (name == "alibi")
      built = ops::AttentionVariant::alibi();
    else if (name == "softcap")
      built = ops::AttentionVariant::softcap(*parsePositiveFloat(arg));
    else if (name == "prefix")
      built = ops::AttentionVariant::prefixLM(std::stoll(arg));
    variant.variant = ops::combine(variant.variant, built);
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  if (seen.size() > 1 && std::find(seen.begin(), seen.end(), "none") != seen.end())
    invalid(fmt::format("variant 'none' cannot be combined with other terms in '{}'", spec));
  variant.label = spec;
  return variant;
}

//===- Tensors ------------------------------------------------------------===//

/// A float32 input as the kernel sees it: float32, or f16/bf16 bits.
struct ComputeTensor {
  DType dtype;
  std::array<int64_t, 4> shape;
  std::vector<float> f32;
  std::vector<uint16_t> bits;

  ops::Tensor4 tensor() const {
    return ops::Tensor4::contiguous(dtype == DType::F32 ? static_cast<const void *>(f32.data())
                                                        : bits.data(),
                                    dtype, shape);
  }
};

ComputeTensor toCompute(const NpyArray &a, DType dtype) {
  ComputeTensor t{dtype, {a.shape[0], a.shape[1], a.shape[2], a.shape[3]}, {}, {}};
  if (dtype == DType::F32) {
    t.f32 = a.data;
    return t;
  }
  t.bits.resize(a.data.size());
  for (size_t i = 0; i < a.data.size(); ++i)
    t.bits[i] = dtype == DType::F16 ? floatToHalf(a.data[i]) : floatToBf16(a.data[i]);
  return t;
}

std::vector<float> toFloat32(const ComputeTensor &t) {
  if (t.dtype == DType::F32)
    return t.f32;
  std::vector<float> out(t.bits.size());
  for (size_t i = 0; i < t.bits.size(); ++i)
    out[i] = t.dtype == DType::F16 ? halfToFloat(t.bits[i]) : bf16ToFloat(t.bits[i]);
  return out;
}

/// Q, K and V read from their files, checked against each other.
struct Inputs {
  NpyArray q, k, v;
};

Inputs loadInputs(const std::string &qPath, const std::string &kPath, const std::string &vPath) {
  auto load = [](const std::string &path) {
    NpyArray a = readNpy(path);
    if (a.shape.size() != 4)
      invalid(fmt::format("{}: expected a rank-4 (batch, seqlen, heads, head_dim) array, got "
                          "shape {}",
                          path, shapeString(a.shape)));
    return a;
  };
  Inputs in{load(qPath), load(kPath), load(vPath)};
  const auto &q = in.q.shape, &k = in.k.shape;
  if (in.k.shape != in.v.shape)
    invalid(fmt::format("{} shape {} and {} shape {} differ", kPath, shapeString(k), vPath,
                        shapeString(in.v.shape)));
  if (q[0] != k[0])
    invalid(fmt::format("{} batch {} and {} batch {} differ", qPath, q[0], kPath, k[0]));
  if (q[3] != k[3])
    invalid(fmt::format("{} head_dim {} and {} head_dim {} differ", qPath, q[3], kPath, k[3]));
  if (k[2] == 0 || q[2] % k[2] != 0)
    invalid(fmt::format("{} heads ({}) is not a multiple of {} heads ({})", qPath, q[2], kPath,
                        k[2]));
  return in;
}

//===- The command --------------------------------------------------------===//

std::string required(const Options &opts, const std::string &name) {
  auto value = opts.get(name);
  if (!value)
    invalid(fmt::format("--{} FILE is required", name));
  return *value;
}

} // namespace

int runAttention(int argc, char **argv) {
  Options opts("attention",
               {"q", "k", "v", "out", "lse", "variant", "scale", "dtype", "backend", "grad-out",
                "dq", "dk", "dv", "cu-seqlens"},
               {});
  opts.parse(argc, argv, 2);
  for (const char *name : {"q", "k", "v", "out", "lse", "variant", "scale", "dtype", "backend",
                           "grad-out", "dq", "dk", "dv", "cu-seqlens"})
    if (opts.getAll(name).size() > 1)
      invalid(fmt::format("option --{} is given more than once", name));
  std::string qPath = required(opts, "q"), kPath = required(opts, "k"),
              vPath = required(opts, "v"), outPath = required(opts, "out");
  auto lsePath = opts.get("lse");
  // Backward: --grad-out dO.npy with all of --dq --dk --dv.
  auto dOPath = opts.get("grad-out"), dqPath = opts.get("dq"), dkPath = opts.get("dk"),
       dvPath = opts.get("dv");
  bool backward = dOPath || dqPath || dkPath || dvPath;
  if (backward && !(dOPath && dqPath && dkPath && dvPath))
    invalid("the backward needs all of --grad-out, --dq, --dk and --dv");

  std::string spec = opts.get("variant").value_or("none");
  Variant variant = parseVariant(spec);
  std::optional<float> scale;
  if (auto text = opts.get("scale"); text && !(scale = parsePositiveFloat(*text)))
    invalid(fmt::format("--scale '{}' is not a finite positive number", *text));
  std::string dtypeText = opts.get("dtype").value_or("f32");
  auto dtype = parseDType(dtypeText);
  if (!dtype || (*dtype != DType::F32 && *dtype != DType::F16 && *dtype != DType::BF16))
    invalid(fmt::format("--dtype '{}' is not one of f32, f16, bf16", dtypeText));
  runtime::Backend requested = runtime::parseBackend(opts.get("backend").value_or("auto"));
  if (requested == runtime::Backend::Cuda)
    throw Error(ErrorCode::Unsupported,
                "loom attention --backend cuda is not supported yet (host buffers): use "
                "--backend cpu or emu");
  // The buffers here are host memory: auto runs on the CPU even with a GPU.
  runtime::Backend backend = runtime::resolveBackend(requested);
  if (backend == runtime::Backend::Cuda)
    backend = runtime::Backend::Cpu;

  Inputs in = loadInputs(qPath, kPath, vPath);
  ComputeTensor q = toCompute(in.q, *dtype), k = toCompute(in.k, *dtype),
                v = toCompute(in.v, *dtype);
  ComputeTensor out{*dtype, q.shape, {}, {}};
  if (*dtype == DType::F32)
    out.f32.assign(in.q.data.size(), 0.f);
  else
    out.bits.assign(in.q.data.size(), 0);
  const int64_t batch = q.shape[0], seqQ = q.shape[1], headsQ = q.shape[2];
  std::vector<float> lse(size_t(batch * headsQ * seqQ));

  ops::AttentionOptions options;
  options.variant = variant.variant;
  std::vector<int32_t> docIds;
  if (auto cu = opts.get("cu-seqlens")) {
    // Packed documents: batch 1, queries and keys at the same positions.
    if (in.q.shape[0] != 1 || in.q.shape[1] != in.k.shape[1])
      invalid(fmt::format("--cu-seqlens needs packed inputs: batch 1 and seqlen_q == seqlen_k, "
                          "got Q {} and K {}",
                          shapeString(in.q.shape), shapeString(in.k.shape)));
    std::vector<int64_t> offsets;
    size_t start = 0;
    while (true) {
      size_t comma = cu->find(',', start);
      std::string item = trim(cu->substr(start, comma == std::string::npos ? comma : comma - start));
      char *end = nullptr;
      long long value = std::strtoll(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0')
        invalid(fmt::format("--cu-seqlens: '{}' is not an integer in '{}'", item, *cu));
      offsets.push_back(value);
      if (comma == std::string::npos)
        break;
      start = comma + 1;
    }
    try {
      docIds = ops::documentIdsFromCuSeqlens(offsets, in.q.shape[1]);
    } catch (const Error &e) {
      invalid(std::string("--cu-seqlens: ") + e.what());
    }
    options.variant = ops::combine(options.variant, ops::AttentionVariant::documentMask());
    options.variantArgs = {runtime::Arg::buffer(docIds)};
  }
  options.scale = scale;
  options.backend = backend;
  ops::attentionForward(q.tensor(), k.tensor(), v.tensor(), out.tensor(), lse.data(), options);

  writeNpy(outPath, in.q.shape, toFloat32(out).data());
  if (backward) {
    NpyArray dOIn = readNpy(*dOPath);
    if (dOIn.shape != in.q.shape)
      invalid(fmt::format("{}: shape {} must equal Q's shape {}", *dOPath, shapeString(dOIn.shape),
                          shapeString(in.q.shape)));
    ComputeTensor dO = toCompute(dOIn, *dtype);
    auto gradLike = [&](const ComputeTensor &like) {
      ComputeTensor g{*dtype, like.shape, {}, {}};
      size_t n = like.f32.empty() ? like.bits.size() : like.f32.size();
      if (*dtype == DType::F32)
        g.f32.assign(n, 0.f);
      else
        g.bits.assign(n, 0);
      return g;
    };
    ComputeTensor dq = gradLike(q), dk = gradLike(k), dv = gradLike(v);
    ops::attentionBackward(q.tensor(), k.tensor(), v.tensor(), out.tensor(), lse.data(),
                           dO.tensor(), dq.tensor(), dk.tensor(), dv.tensor(), options);
    writeNpy(*dqPath, in.q.shape, toFloat32(dq).data());
    writeNpy(*dkPath, in.k.shape, toFloat32(dk).data());
    writeNpy(*dvPath, in.v.shape, toFloat32(dv).data());
  }
  std::string wrote = fmt::format("{} {}", outPath, shapeString(in.q.shape));
  if (lsePath) {
    writeNpy(*lsePath, {batch, headsQ, seqQ}, lse.data());
    wrote += fmt::format(" and {} {}", *lsePath, shapeString({batch, headsQ, seqQ}));
  }
  if (backward)
    wrote += fmt::format(", {}, {}, {}", *dqPath, *dkPath, *dvPath);
  std::printf("loom attention: wrote %s (%s, %s, %s backend)\n", wrote.c_str(),
              std::string(dtypeName(*dtype)).c_str(), variant.label.c_str(),
              runtime::backendName(backend));
  return 0;
}

} // namespace loom::cli
