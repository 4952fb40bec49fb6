//===- AttentionTuning.cpp - attention's config space and autotuning ------===//
#include "loom/ops/AttentionTuning.h"

#include "loom/Support/Error.h"
#include "loom/Support/HalfPrecision.h"
#include "loom/cuda/Driver.h"
#include "loom/runtime/CudaBuild.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <thread>

namespace loom::ops {

int64_t attentionSeqlenBucket(int64_t seqlen) {
  int64_t b = 128;
  while (b < seqlen)
    b *= 2;
  return b;
}

static const char *passName(AttentionPass p) {
  return p == AttentionPass::Forward ? "forward" : "backward";
}

std::string attentionTuningKey(AttentionPass pass, DType dtype, int64_t headDim,
                               const std::string &variantName, int64_t seqlenQ,
                               int64_t seqlenK) {
  return fmt::format("attention.{}/{}/d{}/{}@sq<={},sk<={}", passName(pass), dtypeName(dtype),
                     headDim, variantName, attentionSeqlenBucket(seqlenQ),
                     attentionSeqlenBucket(seqlenK));
}

autotune::Config toTuningConfig(const AttentionConfig &c) {
  return {{"blockM", c.blockM}, {"blockN", c.blockN}, {"numThreads", int64_t(c.numThreads)}};
}

AttentionConfig fromTuningConfig(const autotune::Config &c) {
  AttentionConfig out;
  for (const char *k : {"blockM", "blockN", "numThreads"}) {
    auto it = c.find(k);
    if (it == c.end() || it->second <= 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("attention config '{}': knob {} is {}", autotune::configString(c),
                              k, it == c.end() ? "missing" : std::to_string(it->second)));
  }
  out.blockM = c.at("blockM");
  out.blockN = c.at("blockN");
  out.numThreads = unsigned(c.at("numThreads"));
  return out;
}

autotune::ConfigSpace attentionConfigSpace(AttentionPass pass, int64_t headDim,
                                           runtime::Backend backend, int64_t seqlen) {
  autotune::ConfigSpace space;
  bool cpu = runtime::resolveBackend(backend) == runtime::Backend::Cpu;
  if (cpu)
    space.knob("blockM", {16, 32, 64, 128}).knob("blockN", {16, 32, 64, 128}).knob("numThreads", {128});
  else
    space.knob("blockM", {16, 32, 64, 128}).knob("blockN", {16, 32, 64}).knob("numThreads", {128, 256});
  int64_t bucket = attentionSeqlenBucket(seqlen);
  AttentionConfig def = pass == AttentionPass::Forward
                            ? defaultAttentionConfig(headDim, backend)
                            : defaultAttentionBackwardConfig(headDim, backend);
  space.constraint([bucket, def](const autotune::Config &c) -> std::optional<std::string> {
    // A block longer than the sequence only adds masked padding; the
    // default stays valid so that there is always something to time.
    if (fromTuningConfig(c).blockM == def.blockM && c.at("blockN") == def.blockN)
      return std::nullopt;
    for (const char *k : {"blockM", "blockN"})
      if (c.at(k) > bucket)
        return fmt::format("{} {} > seqlen bucket {}", k, c.at(k), bucket);
    return std::nullopt;
  });
  return space;
}

static AttentionVariant effective(bool causal, const AttentionVariant &v) {
  return causal ? combine(AttentionVariant::causalMask(), v) : v;
}

AttentionConfig resolveAttentionConfig(const AttentionOptions &options, AttentionPass pass,
                                       DType dtype, int64_t headDim, int64_t seqlenQ,
                                       int64_t seqlenK, runtime::Backend backend) {
  if (options.config)
    return *options.config;
  AttentionConfig def = pass == AttentionPass::Forward
                            ? defaultAttentionConfig(headDim, backend)
                            : defaultAttentionBackwardConfig(headDim, backend);
  if (!autotune::cacheLookupsEnabled())
    return def;
  try {
    std::string key = attentionTuningKey(pass, dtype, headDim,
                                         effective(options.causal, options.variant).name,
                                         seqlenQ, seqlenK);
    auto entry = autotune::TuningCache().lookup(autotune::currentDeviceKey(backend), key);
    if (entry)
      return fromTuningConfig(entry->config);
  } catch (const std::exception &) {
    // A lookup problem (no device for the key, a bad entry) must not break
    // a production call: the default is always correct.
  }
  return def;
}

namespace {

/// Host bytes, mirrored on the device for the cuda backend.
struct Buffer {
  std::vector<uint8_t> host;
  std::unique_ptr<cuda::DeviceBuffer> device;
  void *ptr() {
    return device ? reinterpret_cast<void *>(device->ptr()) : static_cast<void *>(host.data());
  }
  void upload() {
    if (device)
      device->copyFromHost(host.data(), host.size());
  }
  void download() {
    if (device)
      device->copyToHost(host.data(), host.size());
  }
};

double cost(const AttentionConfig &c, int64_t S, int64_t D, int64_t programsPerBlockRow,
            bool causal, bool cpu) {
  int64_t qBlocks = (S + c.blockM - 1) / c.blockM, kBlocks = (S + c.blockN - 1) / c.blockN;
  double perStep = 2.0 * c.blockM * c.blockN * D + 8.0 * c.blockM * c.blockN +
                   double(c.blockM) * D + 512;
  double steps = 0;
  for (int64_t i = 0; i < qBlocks; ++i)
    steps += causal ? double(std::min(kBlocks, ((i + 1) * c.blockM + c.blockN - 1) / c.blockN))
                    : double(kBlocks);
  double programs = double(qBlocks * programsPerBlockRow);
  double units = cpu ? std::max(1u, std::thread::hardware_concurrency()) : 108;
  double waves = std::ceil(programs / units);
  return waves * (steps / double(qBlocks)) * perStep;
}

/// Values in [-1, 1) from a fixed seed, so every rank and process tunes on
/// the same data.
std::vector<float> randomValues(size_t n, uint64_t seed) {
  std::vector<float> out(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float &f : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    f = float(double(x >> 11) / double(1ull << 53) * 2 - 1);
  }
  return out;
}

std::vector<uint8_t> encode(const std::vector<float> &v, DType dtype) {
  std::vector<uint8_t> out(v.size() * dtypeSize(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      uint16_t h = dtype == DType::BF16 ? floatToBf16(v[i]) : floatToHalf(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

float decodeAt(const std::vector<uint8_t> &b, DType dtype, size_t i) {
  if (dtype == DType::F32) {
    float f;
    std::memcpy(&f, b.data() + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, b.data() + 2 * i, 2);
  return dtype == DType::BF16 ? bf16ToFloat(h) : halfToFloat(h);
}

/// Two correct kernels differ only in the order of their f32 sums (block
/// sizes change how the online softmax and the gradient accumulations are
/// split) and, for f16/bf16 outputs, in the final rounding: a 1-ulp
/// difference after rounding is legitimate. So: |a - b| <= rtol |b| + atol
/// max|ref| with rtol = 2 ulps of the output dtype (f32: 1e-4, the
/// project's f32 tolerance) and atol the same relative to the largest
/// reference value (elements near zero carry the absolute error of their
/// larger neighbours). A wrong config (bad masking, a dropped block) is off
/// by O(1), far outside this.
std::optional<std::string> compare(const std::vector<uint8_t> &got,
                                   const std::vector<uint8_t> &ref, DType dtype,
                                   const char *what) {
  double rtol = dtype == DType::F32 ? 1e-4 : dtype == DType::BF16 ? 2.0 / 128 : 2.0 / 1024;
  size_t n = ref.size() / dtypeSize(dtype);
  double maxRef = 0;
  for (size_t i = 0; i < n; ++i)
    maxRef = std::max(maxRef, double(std::fabs(decodeAt(ref, dtype, i))));
  for (size_t i = 0; i < n; ++i) {
    double a = decodeAt(got, dtype, i), b = decodeAt(ref, dtype, i);
    if (!(std::fabs(a - b) <= rtol * std::fabs(b) + rtol * maxRef))
      return fmt::format("{}[{}] = {} but the default config gives {} (tolerance {:.3g} "
                         "relative)",
                         what, i, a, b, rtol);
  }
  return std::nullopt;
}

/// Inputs, outputs and reference outputs of one tuning run; built on the
/// first run() so that a cache hit allocates and computes nothing.
struct State {
  AttentionTuningProblem p;
  AttentionVariant variant;
  runtime::Backend backend;
  std::array<int64_t, 4> shape;
  static constexpr int kSets = 3;
  bool ready = false;
  // Per input set.
  Buffer q[kSets], k[kSets], v[kSets], out[kSets], lse[kSets], dO[kSets], dq[kSets], dk[kSets],
      dv[kSets];
  std::vector<uint8_t> refOut[kSets], refDq[kSets], refDk[kSets], refDv[kSets];

  AttentionOptions options(const autotune::Config *c) const {
    AttentionOptions o;
    o.variant = variant;
    o.backend = backend;
    if (c)
      o.config = fromTuningConfig(*c);
    else
      o.config = p.pass == AttentionPass::Forward
                     ? defaultAttentionConfig(p.headDim, backend)
                     : defaultAttentionBackwardConfig(p.headDim, backend);
    return o;
  }
  Tensor4 tensor(Buffer &b) { return Tensor4::contiguous(b.ptr(), p.dtype, shape); }

  void make(Buffer &b, size_t bytes, const std::vector<uint8_t> *init) {
    b.host = init ? *init : std::vector<uint8_t>(bytes, 0);
    if (backend == runtime::Backend::Cuda) {
      b.device = std::make_unique<cuda::DeviceBuffer>(b.host.size());
      b.upload();
    }
  }

  void runForward(const AttentionOptions &o, int s) {
    attentionForward(tensor(q[s]), tensor(k[s]), tensor(v[s]), tensor(out[s]),
                     static_cast<float *>(lse[s].ptr()), o);
  }
  void runBackward(const AttentionOptions &o, int s) {
    attentionBackward(tensor(q[s]), tensor(k[s]), tensor(v[s]), tensor(out[s]),
                      static_cast<const float *>(lse[s].ptr()), tensor(dO[s]), tensor(dq[s]),
                      tensor(dk[s]), tensor(dv[s]), o);
  }

  void prepare() {
    if (ready)
      return;
    size_t n = size_t(p.batch * p.seqlen * p.heads * p.headDim);
    size_t bytes = n * dtypeSize(p.dtype);
    for (int s = 0; s < kSets; ++s) {
      auto enc = [&](uint64_t seed) { return encode(randomValues(n, seed), p.dtype); };
      std::vector<uint8_t> qs = enc(10 * s + 1), ks = enc(10 * s + 2), vs = enc(10 * s + 3),
                           ds = enc(10 * s + 4);
      make(q[s], bytes, &qs);
      make(k[s], bytes, &ks);
      make(v[s], bytes, &vs);
      make(out[s], bytes, nullptr);
      make(lse[s], size_t(p.batch * p.heads * p.seqlen) * 4, nullptr);
      // The untuned reference: the default config's results.
      runForward(options(nullptr), s);
      if (p.pass == AttentionPass::Forward) {
        out[s].download();
        refOut[s] = out[s].host;
        continue;
      }
      make(dO[s], bytes, &ds);
      make(dq[s], bytes, nullptr);
      make(dk[s], bytes, nullptr);
      make(dv[s], bytes, nullptr);
      runBackward(options(nullptr), s);
      for (Buffer *b : {&dq[s], &dk[s], &dv[s]})
        b->download();
      refDq[s] = dq[s].host;
      refDk[s] = dk[s].host;
      refDv[s] = dv[s].host;
    }
    ready = true;
  }

  double run(const autotune::Config &c, int s) {
    prepare();
    AttentionOptions o = options(&c);
    auto work = [&] {
      if (p.pass == AttentionPass::Forward)
        runForward(o, s);
      else
        runBackward(o, s);
    };
    if (backend == runtime::Backend::Cuda)
      return autotune::cudaEventMs(work);
    auto t0 = std::chrono::steady_clock::now();
    work();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
        .count();
  }

  std::optional<std::string> verify(int s) {
    if (p.pass == AttentionPass::Forward) {
      out[s].download();
      return compare(out[s].host, refOut[s], p.dtype, "O");
    }
    for (Buffer *b : {&dq[s], &dk[s], &dv[s]})
      b->download();
    if (auto why = compare(dq[s].host, refDq[s], p.dtype, "dQ"))
      return why;
    if (auto why = compare(dk[s].host, refDk[s], p.dtype, "dK"))
      return why;
    return compare(dv[s].host, refDv[s], p.dtype, "dV");
  }
};

runtime::Specialization specFor(const autotune::Config &c, const std::string &arch) {
  runtime::Specialization spec;
  spec.constants = {{"BLOCK_M", c.at("blockM")}, {"BLOCK_N", c.at("blockN")}};
  spec.backend = runtime::Backend::Cuda;
  spec.numThreads = unsigned(c.at("numThreads"));
  spec.arch = arch;
  return spec;
}

cuda::KernelResources resourcesOf(const dsl::Kernel &kernel, const autotune::Config &c,
                                  const std::string &arch) {
  runtime::CudaBuildOptions bo;
  bo.arch = arch;
  bo.numThreads = unsigned(c.at("numThreads"));
  runtime::CudaBuild build = runtime::buildCuda(kernel, specFor(c, arch), bo);
  // ptxas reports static shared memory only; a block also needs the
  // kernel's dynamic shared memory (pipeline buffers and scratch), which is
  // what the per-block limit and the occupancy must see.
  cuda::KernelResources r = build.resources();
  r.sharedBytes += static_cast<int>(build.source.sharedBytes);
  return r;
}
} // namespace

autotune::TuneResult tuneAttention(const AttentionTuningProblem &problem,
                                   const autotune::TuneOptions &options,
                                   runtime::Communicator *comm, autotune::TuningCache *cache) {
  runtime::Backend backend = runtime::resolveBackend(problem.backend);
  if (problem.dtype != DType::F32 && problem.dtype != DType::F16 && problem.dtype != DType::BF16)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tune attention: dtype {} is not f32, f16 or bf16",
                            dtypeName(problem.dtype)));
  if (!supportedHeadDim(problem.headDim, backend, problem.dtype))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tune attention: head dim {} is not supported for {} on the {} "
                            "backend (cpu: multiples of 8 up to 256; gpu: 32, 64, 96, 128, "
                            "192, 256)",
                            problem.headDim, dtypeName(problem.dtype),
                            runtime::backendName(backend)));
  for (auto [name, value] : std::initializer_list<std::pair<const char *, int64_t>>{
           {"seqlen", problem.seqlen}, {"batch", problem.batch}, {"heads", problem.heads}})
    if (value <= 0 || value > INT32_MAX)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tune attention: {} must be in [1, 2^31 - 1], got {}", name, value));
  if (!problem.variant.tensors.empty())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tune attention: variant '{}' reads extra tensors, which tuning "
                            "cannot make up; tune it without them or pass options.config",
                            problem.variant.name));

  auto state = std::make_shared<State>();
  state->p = problem;
  state->variant = effective(problem.causal, problem.variant);
  state->backend = backend;
  state->shape = {problem.batch, problem.seqlen, problem.heads, problem.headDim};

  autotune::Tunable t;
  t.kernel = fmt::format("attention.{}/{}/d{}/{}", passName(problem.pass),
                         dtypeName(problem.dtype), problem.headDim, state->variant.name);
  std::string key = attentionTuningKey(problem.pass, problem.dtype, problem.headDim,
                                       state->variant.name, problem.seqlen, problem.seqlen);
  t.shapeBucket = key.substr(key.find('@') + 1);
  t.space = problem.space ? *problem.space
                          : attentionConfigSpace(problem.pass, problem.headDim, backend,
                                                 problem.seqlen);
  t.fallback = toTuningConfig(problem.pass == AttentionPass::Forward
                                  ? defaultAttentionConfig(problem.headDim, backend)
                                  : defaultAttentionBackwardConfig(problem.headDim, backend));
  t.inputSets = State::kSets;
  bool causal = state->variant.causal;
  bool cpu = backend == runtime::Backend::Cpu;
  int64_t rows = problem.batch * problem.heads;
  t.cost = [=](const autotune::Config &c) {
    return cost(fromTuningConfig(c), problem.seqlen, problem.headDim, rows, causal, cpu);
  };
  t.run = [state](const autotune::Config &c, int s) { return state->run(c, s); };
  t.verify = [state](const autotune::Config &, int s) { return state->verify(s); };
  t.threads = [](const autotune::Config &c) { return unsigned(c.at("numThreads")); };
  DType dtype = problem.dtype;
  int64_t D = problem.headDim;
  AttentionVariant variant = state->variant;
  AttentionPass pass = problem.pass;
  t.resources = [=](const autotune::Config &c, const std::string &arch) {
    if (pass == AttentionPass::Forward)
      return resourcesOf(flashAttentionForwardKernel(dtype, D, variant), c, arch);
    // The backward runs two heavy kernels: prune on the worse of the two.
    cuda::KernelResources a = resourcesOf(flashAttentionBackwardDkDvKernel(dtype, D, variant), c, arch);
    cuda::KernelResources b = resourcesOf(flashAttentionBackwardDqKernel(dtype, D, variant), c, arch);
    a.registers = std::max(a.registers, b.registers);
    a.sharedBytes = std::max(a.sharedBytes, b.sharedBytes);
    a.spillStoreBytes += b.spillStoreBytes;
    a.spillLoadBytes += b.spillLoadBytes;
    return a;
  };

  autotune::TuningCache defaultCache;
  autotune::TuningCache &c = cache ? *cache : defaultCache;
  autotune::DeviceKey device = autotune::currentDeviceKey(backend);
  return comm ? autotune::tuneCluster(*comm, t, device, c, options)
              : autotune::tune(t, device, c, options);
}

} // namespace loom::ops
