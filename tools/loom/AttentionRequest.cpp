//===- AttentionRequest.cpp - options shared by loom attention/ring -------===//
#include "AttentionRequest.h"

#include "loom/runtime/ThreadPool.h"

#include "loom/Support/HalfPrecision.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <tuple>

#include <fmt/format.h>

namespace loom::cli {
namespace {

/// The subcommand being parsed, for error prefixes ("loom attention: ...").
thread_local std::string currentCommand = "attention";

[[noreturn]] void invalid(const std::string &message) {
  throw Error(ErrorCode::InvalidArgument, "loom " + currentCommand + ": " + message);
}

//===- --variant ----------------------------------------------------------===//


std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

/// The token count W of `name`(W) in `spec`: a positive integer that fits
/// the kernels' i32 positions, or an error naming the term and the value.
int64_t tokenCount(const std::string &arg, const std::string &name, const std::string &spec) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), v);
  bool whole = !arg.empty() && ptr == arg.data() + arg.size() &&
               std::isdigit(static_cast<unsigned char>(arg[0]));
  std::string letter = name == "prefix" ? "P" : "W";
  if (whole && (ec == std::errc::result_out_of_range || (ec == std::errc() && v > INT32_MAX)))
    invalid(fmt::format("{}({}): {} = {} is out of range (1..{} tokens) in '{}'", name, letter,
                        letter, arg, INT32_MAX, spec));
  if (!whole || ec != std::errc() || v < 1)
    invalid(fmt::format("{}({}) needs a positive integer {}, got '{}' in '{}'", name, letter,
                        letter, arg, spec));
  return v;
}

std::optional<float> parsePositiveFloat(const std::string &s) {
  char *end = nullptr;
  float v = std::strtof(s.c_str(), &end);
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0])) || *end != '\0' ||
      !std::isfinite(v) || !(v > 0))
    return std::nullopt;
  return v;
}

} // namespace

Variant parseVariant(const std::string &spec, const std::string &command) {
  currentCommand = command;
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
    int64_t tokens = name == "sliding_window" || name == "prefix" ? tokenCount(arg, name, spec) : 0;
    if (name == "softcap" && !parsePositiveFloat(arg))
      invalid(fmt::format("softcap(C) needs a finite positive number C, got '{}' in '{}'", arg,
                          spec));
    ops::AttentionVariant built;
    if (name == "causal")
      built = ops::AttentionVariant::causalMask();
    else if (name == "sliding_window")
      built = ops::AttentionVariant::slidingWindow(tokens);
    else if (name == "alibi")
      built = ops::AttentionVariant::alibi();
    else if (name == "softcap")
      built = ops::AttentionVariant::softcap(*parsePositiveFloat(arg));
    else if (name == "prefix")
      built = ops::AttentionVariant::prefixLM(tokens);
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


namespace {
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
  // As ops::attentionForward decides: an empty batch or sequence is valid
  // (an empty or all-zero result), a zero head dim or no heads is not.
  if (q[3] == 0)
    invalid(fmt::format("{} shape {} has head_dim 0; head_dim must be positive", qPath,
                        shapeString(q)));
  for (auto [shape, path, which] : {std::tuple{&q, &qPath, "q"}, {&k, &kPath, "kv"}})
    if ((*shape)[2] == 0)
      invalid(fmt::format("{} shape {} has 0 heads; heads_{} must be positive", *path,
                          shapeString(*shape), which));
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

std::string required(const Options &opts, const std::string &name) {
  auto value = opts.get(name);
  if (!value)
    invalid(fmt::format("--{} FILE is required", name));
  return *value;
}

std::vector<int64_t> parseOffsets(const std::string &text) {
  std::vector<int64_t> offsets;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string item = trim(text.substr(start, comma == std::string::npos ? comma : comma - start));
    char *end = nullptr;
    long long value = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0')
      invalid(fmt::format("--cu-seqlens: '{}' is not an integer in '{}'", item, text));
    offsets.push_back(value);
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return offsets;
}
} // namespace

ops::Tensor4 ComputeTensor::tensor() const {
  return ops::Tensor4::contiguous(dtype == DType::F32 ? static_cast<const void *>(f32.data())
                                                      : bits.data(),
                                  dtype, shape);
}

ComputeTensor ComputeTensor::zeros(DType dtype, std::array<int64_t, 4> shape) {
  ComputeTensor t{dtype, shape, {}, {}};
  size_t n = size_t(shape[0] * shape[1] * shape[2] * shape[3]);
  if (dtype == DType::F32)
    t.f32.assign(n, 0.f);
  else
    t.bits.assign(n, 0);
  return t;
}

const std::vector<std::string> &attentionOptionNames() {
  static const std::vector<std::string> names = {
      "q",       "k",        "v",  "out", "lse", "variant", "scale", "dtype",
      "backend", "grad-out", "dq", "dk",  "dv",  "cu-seqlens", "bias", "sinks", "dbias",
      "dsinks", "repeat", "cpu-threads"};
  return names;
}

AttentionRequest parseAttentionRequest(const Options &opts, const std::string &command) {
  currentCommand = command;
  AttentionRequest r;
  r.command = command;
  r.qPath = required(opts, "q"), r.kPath = required(opts, "k"), r.vPath = required(opts, "v");
  r.outPath = required(opts, "out");
  r.lsePath = opts.get("lse");
  // Backward: --grad-out dO.npy with all of --dq --dk --dv.
  r.dOPath = opts.get("grad-out"), r.dqPath = opts.get("dq"), r.dkPath = opts.get("dk"),
  r.dvPath = opts.get("dv");
  r.backward = r.dOPath || r.dqPath || r.dkPath || r.dvPath;
  if (r.backward && !(r.dOPath && r.dqPath && r.dkPath && r.dvPath))
    invalid("the backward needs all of --grad-out, --dq, --dk and --dv");
  r.variant = parseVariant(opts.get("variant").value_or("none"), command);
  // --repeat 0 would time nothing: a run median needs at least one run.
  if (auto text = opts.get("repeat"))
    r.repeat = parseIntIn(*text, "loom " + command + ": --repeat", 1, 1000000);
  if (auto text = opts.get("cpu-threads"))
    r.cpuThreads = runtime::parseCpuThreads(*text, "loom " + command + ": --cpu-threads");
  if (auto text = opts.get("scale"); text && !(r.scale = parsePositiveFloat(*text)))
    invalid(fmt::format("--scale '{}' is not a finite positive number", *text));
  std::string dtypeText = opts.get("dtype").value_or("f32");
  auto dtype = parseDType(dtypeText);
  if (!dtype || (*dtype != DType::F32 && *dtype != DType::F16 && *dtype != DType::BF16))
    invalid(fmt::format("--dtype '{}' is not one of f32, f16, bf16", dtypeText));
  r.dtype = *dtype;
  runtime::Backend requested = runtime::parseBackend(opts.get("backend").value_or("auto"));
  if (requested == runtime::Backend::Cuda)
    throw Error(ErrorCode::Unsupported,
                fmt::format("loom {} --backend cuda is not supported yet (host buffers): use "
                            "--backend cpu or emu",
                            command));
  // The buffers here are host memory: auto runs on the CPU even with a GPU.
  r.backend = runtime::resolveBackend(requested);
  if (r.backend == runtime::Backend::Cuda)
    r.backend = runtime::Backend::Cpu;
  r.biasPath = opts.get("bias"), r.sinksPath = opts.get("sinks");
  r.dbiasPath = opts.get("dbias"), r.dsinksPath = opts.get("dsinks");
  for (auto [grad, input, name] : {std::tuple{&r.dbiasPath, &r.biasPath, "bias"},
                                   std::tuple{&r.dsinksPath, &r.sinksPath, "sinks"}}) {
    if (*grad && !*input)
      invalid(fmt::format("--d{0} needs --{0}", name));
    if (*grad && !r.backward)
      invalid(fmt::format("--d{} needs the backward (--grad-out, --dq, --dk, --dv)", name));
  }
  r.cuSeqlens = opts.get("cu-seqlens");
  if (r.cuSeqlens)
    parseOffsets(*r.cuSeqlens); // reject malformed lists before reading files
  return r;
}

void AttentionRequest::load() {
  currentCommand = command;
  Inputs in = loadInputs(qPath, kPath, vPath);
  q = std::move(in.q), k = std::move(in.k), v = std::move(in.v);
  if (backward)
    dO = readNpy(*dOPath);
  // One line naming the file and the shape expected, for a bad dtype too.
  auto learnable = [&](const std::optional<std::string> &path, const char *option) {
    NpyArray a;
    if (path) {
      try {
        a = readNpy(*path);
      } catch (const Error &e) {
        invalid(fmt::format("--{} {}; expected float32 {}", option, e.what(),
                            expectedLearnableShape(option)));
      }
    }
    return a;
  };
  bias = learnable(biasPath, "bias");
  sinks = learnable(sinksPath, "sinks");
  checkLoaded();
}

std::string AttentionRequest::expectedLearnableShape(const char *option) const {
  if (std::string(option) == "bias")
    return fmt::format("(heads, seqlen_q, seqlen_k) = {}",
                       shapeString({q.shape[2], q.shape[1], k.shape[1]}));
  return fmt::format("(heads,) = {}", shapeString({q.shape[2]}));
}

void AttentionRequest::checkLoaded() {
  currentCommand = command;
  if (backward) {
    if (dO.shape != q.shape)
      invalid(fmt::format("{}: shape {} must equal Q's shape {}", *dOPath, shapeString(dO.shape),
                          shapeString(q.shape)));
  }
  for (auto [path, array, option] : {std::tuple{&biasPath, &bias, "bias"},
                                     std::tuple{&sinksPath, &sinks, "sinks"}}) {
    std::vector<int64_t> want = std::string(option) == "bias"
                                    ? std::vector<int64_t>{q.shape[2], q.shape[1], k.shape[1]}
                                    : std::vector<int64_t>{q.shape[2]};
    if (*path && array->shape != want)
      invalid(fmt::format("--{} {}: shape {}; expected float32 {}", option, **path,
                          shapeString(array->shape), expectedLearnableShape(option)));
  }
  dbias.assign(dbiasPath ? bias.data.size() : 0, 0.0f);
  dsinks.assign(dsinksPath ? sinks.data.size() : 0, 0.0f);
  if (cuSeqlens) {
    // Packed documents: batch 1, queries and keys at the same positions.
    if (q.shape[0] != 1 || q.shape[1] != k.shape[1])
      invalid(fmt::format("--cu-seqlens needs packed inputs: batch 1 and seqlen_q == seqlen_k, "
                          "got Q {} and K {}",
                          shapeString(q.shape), shapeString(k.shape)));
    try {
      docIds = ops::documentIdsFromCuSeqlens(parseOffsets(*cuSeqlens), q.shape[1]);
    } catch (const Error &e) {
      invalid(std::string("--cu-seqlens: ") + e.what());
    }
  }
}

ops::AttentionOptions AttentionRequest::options() const {
  ops::AttentionOptions options;
  options.variant = variant.variant;
  if (biasPath) {
    // Before the --variant score terms, which then apply in the order written.
    options.variant =
        ops::combine(ops::AttentionVariant::additiveBias(bool(dbiasPath)), options.variant);
    options.variantArgs = {runtime::Arg::buffer(bias.data.data(), DType::F32, bias.data.size())};
    if (dbiasPath)
      options.variantGrads = {runtime::Arg::buffer(dbias.data(), DType::F32, dbias.size())};
  }
  if (sinksPath)
    options.sinks = sinks.data.data();
  if (dsinksPath)
    options.dsinks = dsinks.data();
  if (cuSeqlens) {
    options.variant = ops::combine(options.variant, ops::AttentionVariant::documentMask());
    options.variantArgs.push_back(
        runtime::Arg::buffer(docIds.data(), DType::I32, docIds.size()));
  }
  options.scale = scale;
  options.backend = backend;
  options.cpuThreads = cpuThreads;
  return options;
}

std::vector<OutputPath> AttentionRequest::outputs() const {
  std::vector<OutputPath> files = {{"--out", outPath}};
  if (lsePath)
    files.push_back({"--lse", *lsePath});
  if (backward)
    files.insert(files.end(), {{"--dq", *dqPath}, {"--dk", *dkPath}, {"--dv", *dvPath}});
  if (backward && dbiasPath)
    files.push_back({"--dbias", *dbiasPath});
  if (backward && dsinksPath)
    files.push_back({"--dsinks", *dsinksPath});
  return files;
}

void writeAttentionOutputs(const AttentionRequest &r, const float *out, const float *lse,
                           const float *dq, const float *dk, const float *dv) {
  int64_t batch = r.q.shape[0], seqQ = r.q.shape[1], headsQ = r.q.shape[2];
  std::vector<std::pair<const float *, std::vector<int64_t>>> arrays = {{out, r.q.shape}};
  if (r.lsePath)
    arrays.push_back({lse, {batch, headsQ, seqQ}});
  if (r.backward)
    arrays.insert(arrays.end(), {{dq, r.q.shape}, {dk, r.k.shape}, {dv, r.v.shape}});
  // In outputs()'s order: the learnable gradients last.
  if (r.backward && r.dbiasPath)
    arrays.push_back({r.dbias.data(), r.bias.shape});
  if (r.backward && r.dsinksPath)
    arrays.push_back({r.dsinks.data(), r.sinks.shape});
  std::vector<OutputPath> paths = r.outputs();
  std::vector<AtomicFile> files;
  files.reserve(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    files.emplace_back("loom " + r.command, paths[i]);
    writeNpy(files.back(), arrays[i].second, arrays[i].first);
  }
  for (AtomicFile &f : files)
    f.commit();
}

} // namespace loom::cli

namespace loom::cli {
std::string timingLine(const std::string &prefix, double compileMs, std::vector<double> runMs) {
  std::sort(runMs.begin(), runMs.end());
  size_t n = runMs.size();
  double median = n == 0 ? 0 : n % 2 ? runMs[n / 2] : (runMs[n / 2 - 1] + runMs[n / 2]) / 2;
  return fmt::format("timing: {}compile {:.3f} ms, run median {:.3f} ms over {} runs", prefix,
                     compileMs, median, n);
}
} // namespace loom::cli
