//===- Profile.cpp - loom profile: SASS loop table + speed-of-light model --===//
//
// One run shows what a GPU would do with an attention kernel, no GPU needed:
// the kernel is compiled for --arch, its CUBIN disassembled and its main
// loop counted by instruction class (cuda/Sass.h), and the launch for a
// problem shape run through the speed-of-light model (cuda/GpuModel.h).
// Beside Loom's, the same for Triton's fused-attention tutorial when a
// Python with triton is found (bench/triton/compile_tutorial.py).
//
//===----------------------------------------------------------------------===//
#include "AttentionRequest.h"
#include "Cli.h"
#include "Commands.h"
#include "Profile.h"

#include "loom/cuda/GpuModel.h"
#include "loom/cuda/Sass.h"
#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Attention.h"
#include "loom/runtime/CudaBuild.h"
#include "loom/runtime/EmuLaunch.h"

#include <array>
#include <map>
#include <random>

#include <cmath>
#include <cstdio>
#include <fmt/format.h>

namespace loom::cli {
namespace {

/// The model inputs of one kernel, beside its SASS.
struct KernelProfile {
  std::string label;     ///< row name: "Loom 32x16, 8 warps"
  std::string kernel;    ///< function name in the CUBIN
  std::vector<uint8_t> cubin;
  int registers = 0, spillBytes = 0, threads = 0;
  int64_t sharedBytes = 0;
  int64_t ctas = 0;
  double itersPerCta = 0;
  double tileMmaPerIter = 0; ///< MMA per CTA per iteration from the tile shape
  double dramBytes = 0, usefulFlops = 0;
};

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Fresh random 16-bit values of `dtype` (f16 or bf16 bits of N(0, 1)).
std::vector<uint16_t> randomHalfs(size_t n, DType dtype, std::mt19937 &rng) {
  std::normal_distribution<float> dist;
  std::vector<uint16_t> out(n);
  for (uint16_t &x : out)
    x = dtype == DType::BF16 ? floatToBf16(dist(rng)) : floatToHalf(dist(rng));
  return out;
}

/// The emulator's exact counters (device/emu/Counters.h) of one small
/// attention call (batch 1, one head, two blocks of keys and queries) with
/// this config: the very CUDA C++ NVRTC compiles, run on the CPU.
void printEmuCounters(const std::string &pass, DType dtype, int64_t headDim, bool causal,
                      const ops::AttentionConfig &config) {
  const int64_t seqlen = 2 * std::max(config.blockM, config.blockN);
  std::printf("emulator counters (exact; emulated, not run on hardware), batch 1 x heads 1 x "
              "seqlen %lld, config %lldx%lld, %u threads, %u stages:\n",
              static_cast<long long>(seqlen), static_cast<long long>(config.blockM),
              static_cast<long long>(config.blockN), config.numThreads, config.numStages);
  std::mt19937 rng(std::random_device{}());
  const std::array<int64_t, 4> shape{1, seqlen, 1, headDim};
  const size_t n = static_cast<size_t>(seqlen * headDim);
  auto q = randomHalfs(n, dtype, rng), k = randomHalfs(n, dtype, rng),
       v = randomHalfs(n, dtype, rng), dO = randomHalfs(n, dtype, rng);
  std::vector<uint16_t> o(n, 0x7fff), dq(n), dk(n), dv(n);
  std::vector<float> lse(static_cast<size_t>(seqlen));
  auto T = [&](const void *data) { return ops::Tensor4::contiguous(data, dtype, shape); };
  ops::AttentionOptions options;
  options.backend = runtime::Backend::Emu;
  options.causal = causal;
  options.config = config;
  std::map<std::string, device::emu::Counters> counters;
  if (pass == "attention_fwd") {
    runtime::EmuCounterCollector collector;
    ops::attentionForward(T(q.data()), T(k.data()), T(v.data()), T(o.data()), lse.data(),
                          options);
    counters = collector.byKernel();
  } else {
    ops::attentionForward(T(q.data()), T(k.data()), T(v.data()), T(o.data()), lse.data(),
                          options);
    runtime::EmuCounterCollector collector;
    ops::attentionBackward(T(q.data()), T(k.data()), T(v.data()), T(o.data()), lse.data(),
                           T(dO.data()), T(dq.data()), T(dk.data()), T(dv.data()), options);
    counters = collector.byKernel();
  }
  for (const auto &[kernel, c] : counters)
    std::printf("-- %s\n%s\n", kernel.c_str(), c.to_string().c_str());
}

/// Mean main-loop iterations per CTA: the launch's grid is over `rows`
/// blocks of `rowBlock`, each visiting `cols` blocks of `colBlock`; causal
/// (bottom-right aligned, square) visits only blocks on or below the
/// diagonal. `rowsAreQueries`: the forward and dQ; else dK/dV.
double meanIterations(int64_t s, int64_t rowBlock, int64_t colBlock, bool causal,
                      bool rowsAreQueries) {
  int64_t rows = ceilDiv(s, rowBlock), total = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (!causal)
      total += ceilDiv(s, colBlock);
    else if (rowsAreQueries)
      total += ceilDiv(std::min(s, (i + 1) * rowBlock), colBlock);
    else
      total += ceilDiv(s, colBlock) - (i * rowBlock) / colBlock;
  }
  return double(total) / double(rows);
}

struct SassSummary {
  std::optional<cuda::sass::SassLoop> loop;
  double wavefronts = 0; ///< per warp per iteration
  std::string note;      ///< why there is no loop
};

SassSummary analyze(const KernelProfile &k, const std::optional<std::string> &nvdisasm) {
  SassSummary s;
  if (!nvdisasm)
    return s;
  auto fns = cuda::sass::parseDisassembly(cuda::sass::disassemble(k.cubin, *nvdisasm));
  for (const auto &f : fns) {
    if (f.name != k.kernel && fns.size() > 1)
      continue;
    s.loop = cuda::sass::mainLoop(f);
    if (s.loop)
      s.wavefronts = cuda::sass::sharedWavefrontsEstimate(f, *s.loop);
    else
      s.note = "no loop with MMA in " + f.name;
    return s;
  }
  s.note = "function " + k.kernel + " not in the CUBIN";
  return s;
}

void printTableHeader() {
  std::printf("%-40s %6s %8s %6s", "per CTA per main-loop iteration", "MMA", "non/MMA", "BAR");
  for (int c = 1; c < cuda::sass::kNumClasses; ++c)
    if (c != static_cast<int>(cuda::sass::InstrClass::Barrier))
      std::printf(" %7s", cuda::sass::className(static_cast<cuda::sass::InstrClass>(c)));
  std::printf(" %5s %7s %8s %5s\n", "regs", "spillSt", "smemB", "CTA/SM");
}

void printRow(const KernelProfile &k, const SassSummary &s, const cuda::Occupancy &occ) {
  int warps = ceilDiv(k.threads, 32);
  std::printf("%-40s", k.label.c_str());
  if (s.loop) {
    const auto &l = *s.loop;
    std::printf(" %6.0f %8.1f %6.0f", l.mma() * warps, l.nonMma() / l.mma(),
                l.perWarp[static_cast<int>(cuda::sass::InstrClass::Barrier)] * warps);
    for (int c = 1; c < cuda::sass::kNumClasses; ++c)
      if (c != static_cast<int>(cuda::sass::InstrClass::Barrier))
        std::printf(" %7.0f", l.perWarp[c] * warps);
  } else {
    std::printf(" %6s %8s %6s", "-", "-", "-");
    for (int c = 2; c < cuda::sass::kNumClasses; ++c)
      std::printf(" %7s", "-");
  }
  std::printf(" %5d %7d %8lld %5d (%s)\n", k.registers, k.spillBytes,
              static_cast<long long>(k.sharedBytes), occ.ctasPerSm, occ.limiter.c_str());
  if (s.loop && !s.loop->exact)
    std::printf("  note: a nested loop's trip count is not a compile-time constant; counted "
                "once\n");
  if (s.loop && k.tileMmaPerIter > 0 && std::abs(s.loop->mma() * warps - k.tileMmaPerIter) > 0.5)
    std::printf("  note: the tile shape needs %.0f MMA per iteration, the static count is %.0f: "
                "warps skip work by branches (the static count is an upper bound)\n",
                k.tileMmaPerIter, s.loop->mma() * warps);
  if (!s.note.empty())
    std::printf("  note: %s\n", s.note.c_str());
}

/// Runs the model and prints one line; returns the modeled seconds.
double printModel(const KernelProfile &k, const SassSummary &s, const cuda::GpuArch &gpu) {
  int warps = ceilDiv(k.threads, 32);
  cuda::LaunchWork w;
  w.ctas = k.ctas;
  w.threadsPerCta = k.threads;
  w.registersPerThread = k.registers;
  w.sharedBytesPerCta = k.sharedBytes;
  w.dramBytes = k.dramBytes;
  w.usefulFlops = k.usefulFlops;
  std::string inputs;
  if (s.loop) {
    w.mmaPerCta = s.loop->mma() * warps * k.itersPerCta;
    w.warpInstrPerCta = s.loop->total() * warps * k.itersPerCta;
    w.smemWavefrontsPerCta = s.wavefronts * warps * k.itersPerCta;
    inputs = "SASS main loop; shared wavefronts estimated from LDSM/LDS/STS/LDGSTS widths "
             "(conflict-free); emulator counters not used";
  } else {
    w.mmaPerCta = k.tileMmaPerIter * k.itersPerCta;
    inputs = "tile shape only (no SASS): issue and shared-memory limits not modeled";
  }
  cuda::LaunchModel m = cuda::modelLaunch(gpu, w);
  std::printf("  modeled, not measured: %.3f ms, %.1f TFLOP/s, %.1f%% of %s dense peak "
              "(%.0f); bound: %s\n",
              m.timeS * 1e3, m.tflops, m.percentOfPeak, gpu.product.c_str(),
              gpu.denseTensorTflops, m.bound.c_str());
  std::printf("    tensor %.3f ms, shared %.3f ms, issue %.3f ms, DRAM %.3f ms; %lld CTAs, "
              "%d per SM (%s), %lld wave(s), %.1f iterations per CTA\n",
              m.tensorS * 1e3, m.sharedS * 1e3, m.issueS * 1e3, m.dramS * 1e3,
              static_cast<long long>(k.ctas), m.occupancy.ctasPerSm,
              m.occupancy.limiter.c_str(), static_cast<long long>(m.waves), k.itersPerCta);
  std::printf("    inputs: %s\n", inputs.c_str());
  return m.timeS;
}

struct Shape {
  int64_t batch = 4, heads = 16, seqlen = 4096, headDim = 128;
  bool causal = false;
  int elementBytes = 2;
  double forwardFlops() const {
    double f = 4.0 * batch * heads * double(seqlen) * seqlen * headDim;
    return causal ? f / 2 : f;
  }
  double tensorBytes() const { return double(batch) * heads * seqlen * headDim * elementBytes; }
};

/// Fills the launch figures of one Loom or Triton attention kernel.
void describeLaunch(KernelProfile &k, const std::string &pass, int64_t blockM, int64_t blockN,
                    const Shape &shape) {
  int64_t bh = shape.batch * shape.heads, s = shape.seqlen, d = shape.headDim;
  double lse = double(bh) * s * 4;
  if (pass == "fwd") {
    k.ctas = ceilDiv(s, blockM) * bh;
    k.itersPerCta = meanIterations(s, blockM, blockN, shape.causal, true);
    k.tileMmaPerIter = 2.0 * blockM * blockN * d / (16 * 8 * 16);
    k.dramBytes = 4 * shape.tensorBytes() + lse;
    k.usefulFlops = shape.forwardFlops();
  } else if (pass == "dkdv") { // S, dP, dV, dK per tile pair
    k.ctas = ceilDiv(s, blockN) * bh;
    k.itersPerCta = meanIterations(s, blockN, blockM, shape.causal, false);
    k.tileMmaPerIter = 4.0 * blockM * blockN * d / (16 * 8 * 16);
    k.dramBytes = 6 * shape.tensorBytes() + 2 * lse;
    k.usefulFlops = shape.forwardFlops() * 2.5 * 4 / 7; // its share of 7 GEMMs
  } else if (pass == "bwd_per_head") {
    // One CTA per (batch, head) over all key blocks, the query blocks inside
    // (Triton 2.x's _bwd_kernel): S, dP, dV, dK, dQ per tile pair; dQ fp32.
    k.ctas = bh;
    k.itersPerCta = double(ceilDiv(s, blockN)) * meanIterations(s, blockN, blockM, shape.causal,
                                                                false);
    k.tileMmaPerIter = 5.0 * blockM * blockN * d / (16 * 8 * 16);
    k.dramBytes = 8 * shape.tensorBytes() + 2 * lse;
    k.usefulFlops = shape.forwardFlops() * 2.5;
  } else {                                              // dq: S, dP, dQ
    k.ctas = ceilDiv(s, blockM) * bh;
    k.itersPerCta = meanIterations(s, blockM, blockN, shape.causal, true);
    k.tileMmaPerIter = 3.0 * blockM * blockN * d / (16 * 8 * 16);
    k.dramBytes = 5 * shape.tensorBytes() + 2 * lse;
    k.usefulFlops = shape.forwardFlops() * 2.5 * 3 / 7;
  }
}

void profileOne(const KernelProfile &k, const std::optional<std::string> &nvdisasm,
                const cuda::GpuArch &gpu) {
  SassSummary s = analyze(k, nvdisasm);
  cuda::Occupancy occ = cuda::occupancy(gpu, k.registers, k.threads, k.sharedBytes);
  printRow(k, s, occ);
  try {
    printModel(k, s, gpu);
  } catch (const Error &e) { // e.g. a Triton config whose shared memory does not fit
    std::printf("  model: not derived: %s\n", e.what());
  }
}
} // namespace

int runProfile(int argc, char **argv) {
  Options opts("profile", {"kernel", "dtype", "arch", "head-dim", "variant", "const", "threads",
                           "stages", "seqlen", "heads", "batch", "triton"},
               {"no-sass", "no-emu"}, {"const"});
  opts.parse(argc, argv, 2);
  std::string pass = opts.get("kernel").value_or("attention_fwd");
  if (pass != "attention_fwd" && pass != "attention_bwd")
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom profile: --kernel '{}' is not one of attention_fwd, "
                            "attention_bwd",
                            pass));
  std::string arch = opts.get("arch").value_or("sm_80");
  const cuda::GpuArch &gpu = [&]() -> const cuda::GpuArch & {
    try {
      return cuda::gpuArch(arch);
    } catch (const Error &e) {
      throw Error(ErrorCode::InvalidArgument, std::string("loom profile: --arch: ") + e.what());
    }
  }();
  std::string dtypeText = opts.get("dtype").value_or("bf16");
  auto dtype = parseDType(dtypeText);
  if (!dtype || (*dtype != DType::F16 && *dtype != DType::BF16))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom profile: --dtype '{}' is not one of f16, bf16", dtypeText));
  Shape shape;
  shape.headDim = parseIntIn(opts.get("head-dim").value_or("128"), "--head-dim", 1, 1024);
  shape.seqlen = parseIntIn(opts.get("seqlen").value_or("4096"), "--seqlen", 1, 1 << 24);
  shape.heads = parseIntIn(opts.get("heads").value_or("16"), "--heads", 1, 1 << 16);
  shape.batch = parseIntIn(opts.get("batch").value_or("4"), "--batch", 1, 1 << 16);
  std::string variantText = opts.get("variant").value_or("none");
  if (variantText != "none" && variantText != "causal")
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom profile: --variant '{}' is not one of none, causal (the "
                            "model's iteration counts know these)",
                            variantText));
  shape.causal = variantText == "causal";
  for (const std::string &c : opts.getAll("const")) {
    std::string name = splitAssignment(c, "--const").first;
    if (name != "BLOCK_M" && name != "BLOCK_N")
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("loom profile: --const {}: '{}' is not a constant of the "
                              "attention kernels (BLOCK_M, BLOCK_N)",
                              c, name));
  }
  std::string tritonMode = opts.get("triton").value_or("auto");
  if (tritonMode != "auto" && tritonMode != "first" && tritonMode != "off")
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom profile: --triton '{}' is not one of auto, first, off",
                            tritonMode));

  std::optional<std::string> nvdisasm;
  std::string why = "--no-sass";
  if (!opts.flag("no-sass"))
    nvdisasm = cuda::sass::findNvdisasm(&why);

  std::printf("loom profile: %s, head dim %lld, %s, %s, %s (%s); problem batch %lld x heads "
              "%lld x seqlen %lld\n",
              pass.c_str(), static_cast<long long>(shape.headDim), dtypeText.c_str(),
              variantText.c_str(), arch.c_str(), gpu.product.c_str(),
              static_cast<long long>(shape.batch), static_cast<long long>(shape.heads),
              static_cast<long long>(shape.seqlen));
  std::printf("compiled, not run on hardware; model figures are modeled, not measured\n\n");
  if (!nvdisasm)
    std::printf("SASS: skipped: %s\n", why.c_str());
  std::printf("SASS loop table (static counts of the main loop, summed over the CTA's warps):\n");
  printTableHeader();

  std::vector<std::string> kernels = pass == "attention_fwd"
                                         ? std::vector<std::string>{"attention_fwd"}
                                         : std::vector<std::string>{"attention_bwd_dkdv",
                                                                    "attention_bwd_dq"};
  ops::AttentionConfig emuConfig;
  for (const std::string &name : kernels) {
    runtime::Specialization spec = parseSpecialization(opts, name);
    unsigned threads = 0;
    dsl::Kernel kernel = attentionKernel(opts, name, *dtype, true, spec, threads);
    if (auto t = opts.get("threads"))
      threads = static_cast<unsigned>(parseIntIn(*t, "--threads", 32, 1024));
    if (auto st = opts.get("stages"))
      spec.numStages = static_cast<unsigned>(parseIntIn(*st, "--stages", 0, 8));
    runtime::CudaBuildOptions options;
    options.arch = arch;
    options.numThreads = threads;
    runtime::CudaBuild build = runtime::buildCuda(kernel, spec, options);
    const cuda::KernelResources &r = build.resources();
    KernelProfile k;
    int64_t bm = spec.constants.at("BLOCK_M");
    int64_t bn = spec.constants.at("BLOCK_N");
    k.label = fmt::format("Loom {} {}x{}, {} warps",
                          name == "attention_fwd" ? "fwd" : name.substr(10), bm, bn,
                          build.source.numThreads / 32);
    k.kernel = build.source.kernelName;
    k.cubin = build.binary.cubin;
    k.registers = r.registers;
    k.spillBytes = r.spillStoreBytes;
    k.threads = static_cast<int>(build.source.numThreads);
    k.sharedBytes = r.sharedBytes + build.source.sharedBytes;
    emuConfig = ops::AttentionConfig{bm, bn, k.threads == 0 ? threads : unsigned(k.threads),
                                     spec.numStages};
    describeLaunch(k, name == "attention_fwd" ? "fwd" : name.substr(14), bm, bn, shape);
    profileOne(k, nvdisasm, gpu);
  }

  std::printf("\n");
  if (opts.flag("no-emu"))
    std::printf("emulator counters: skipped: --no-emu\n");
  else
    printEmuCounters(pass, *dtype, shape.headDim, shape.causal, emuConfig);

  std::printf("\nTriton fused-attention tutorial, same arch:\n");
  if (tritonMode == "off") {
    std::printf("  skipped: --triton off\n");
    return 0;
  }
  TritonShape tritonShape{shape.batch, shape.heads, shape.seqlen, shape.headDim};
  TritonResult triton = compileTritonTutorial(pass == "attention_fwd" ? "fwd" : "bwd", arch,
                                              tritonShape, dtypeText, shape.causal,
                                              tritonMode == "first");
  if (!triton.available) {
    std::printf("  skipped: %s\n", triton.why.c_str());
    return 0;
  }
  if (!triton.source.empty())
    std::printf("  source: %s\n", triton.source.c_str());
  for (const std::string &note : triton.notes)
    std::printf("  note: %s\n", note.c_str());
  printTableHeader();
  for (const TritonKernel &t : triton.kernels) {
    KernelProfile k;
    k.label = t.label;
    k.kernel = t.name;
    k.cubin = t.cubin;
    k.registers = t.registers;
    k.spillBytes = t.spillBytes;
    k.threads = t.warps * 32;
    k.sharedBytes = t.sharedBytes;
    if (t.pass == "fwd") {
      describeLaunch(k, "fwd", t.blockM, t.blockN, shape);
      profileOne(k, nvdisasm, gpu);
      continue;
    }
    if (t.pass == "bwd_per_head") {
      describeLaunch(k, t.pass, t.blockM, t.blockN, shape);
      profileOne(k, nvdisasm, gpu);
      // Its dQ accumulates in global memory: read and written (fp32) once per
      // key block, beyond the compulsory bytes the model counts.
      double dq = double(k.ctas) * double(ceilDiv(shape.seqlen, t.blockN)) * shape.seqlen *
                  shape.headDim * 4 * 2;
      if (shape.causal)
        dq /= 2;
      std::printf("    not modeled: dQ read-modify-write per key block, %.2f GB (%.3f ms at "
                  "DRAM bandwidth if L2 missed every time; L2 is not modeled)\n",
                  dq / 1e9, dq / (gpu.dramGBs * 1e9) * 1e3);
      continue;
    }
    SassSummary s = analyze(k, nvdisasm);
    printRow(k, s, cuda::occupancy(gpu, k.registers, k.threads, k.sharedBytes));
    std::printf("  model: not derived for Triton's one-kernel backward (four loops whose trip "
                "counts depend on its launch arguments)\n");
  }
  return 0;
}

} // namespace loom::cli
