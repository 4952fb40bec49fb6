//===- Compile.cpp - loom compile -----------------------------------------===//
#include "AttentionRequest.h"
#include "Cli.h"
#include "Commands.h"
#include "Output.h"
#include "Profile.h"

#include "loom/Compiler/CpuJit.h"
#include "loom/ops/Attention.h"
#include "loom/ops/Examples.h"
#include "loom/runtime/CudaBuild.h"
#include "loom/runtime/Kernel.h"

#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdio>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace loom::cli {

runtime::Specialization parseSpecialization(const Options &opts, const std::string &kernel) {
  runtime::Specialization spec;
  for (const ops::ExampleInfo &e : ops::exampleKernels())
    if (e.name == kernel)
      spec.constants = e.defaultConstants;
  for (const std::string &c : opts.getAll("const")) {
    auto [name, value] = splitAssignment(c, "--const");
    spec.constants[name] = parseInt(value, "--const " + name);
  }
  for (const std::string &b : opts.getAll("bind")) {
    auto [name, value] = splitAssignment(b, "--bind");
    if (value.find_first_of(".eEn") == std::string::npos) {
      spec.bindings[name] = parseInt(value, "--bind " + name);
      continue;
    }
    try {
      size_t used = 0;
      double d = std::stod(value, &used);
      if (used != value.size())
        throw std::invalid_argument(value);
      spec.bindings[name] = d;
    } catch (const std::exception &) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--bind {}: '{}' is not a number", name, value));
    }
  }
  return spec;
}

namespace {
/// Writes `size` bytes to the -o FILE (atomically, see Output.h).
void writeFile(const std::string &path, const void *data, size_t size) {
  AtomicFile file("loom compile", {"-o", path});
  file.write(data, size);
  file.commit();
}

void emitText(const std::optional<std::string> &path, const std::string &text) {
  if (path)
    writeFile(*path, text.data(), text.size());
  else
    std::fputs(text.c_str(), stdout);
}

void printTimings(const std::string &name, const std::vector<compiler::StageTiming> &timings) {
  double total = 0;
  std::printf("// stage timings for %s (ms)\n", name.c_str());
  for (const auto &t : timings) {
    std::printf("//   %-10s %8.3f\n", t.name.c_str(), t.milliseconds);
    total += t.milliseconds;
  }
  std::printf("//   %-10s %8.3f\n", "total", total);
}

/// --emit cuda|ptx|cubin: the CUDA backend.
int compileForCuda(const Options &opts, const dsl::Kernel &kernel,
                   const runtime::Specialization &spec, const std::string &emit,
                   std::optional<unsigned> defaultThreads) {
  runtime::CudaBuildOptions options;
  if (defaultThreads)
    options.numThreads = *defaultThreads;
  options.arch = opts.get("arch").value_or("sm_80");
  if (auto threads = opts.get("threads")) {
    int64_t n = parseIntIn(*threads, "--threads", 32, 1024);
    if (n % 32 != 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--threads {} is not a multiple of 32 (a whole number of warps)",
                              n));
    options.numThreads = static_cast<unsigned>(n);
  }
  auto out = opts.get("o");
  if (emit == "cuda") {
    cuda::requireTensorCoreArch(options.arch);
    std::vector<compiler::StageTiming> timings;
    auto source = runtime::generateCudaSource(kernel, spec, options.numThreads, nullptr, {},
                                              &timings);
    emitText(out, runtime::selfContainedSource(source.code));
    if (opts.flag("timings"))
      printTimings(kernel.name(), timings);
    return 0;
  }
  runtime::CudaBuild build = runtime::buildCuda(kernel, spec, options);
  if (emit == "ptx")
    emitText(out, build.binary.ptx);
  else if (emit == "cubin") {
    if (!out)
      throw Error(ErrorCode::InvalidArgument, "loom compile: --emit cubin needs -o FILE");
    writeFile(*out, build.binary.cubin.data(), build.binary.cubin.size());
  }
  if (opts.flag("report")) {
    const cuda::KernelResources &r = build.resources();
    std::printf("// %s for %s: %d registers, %d bytes spill stores, %d bytes spill loads, "
                "%d bytes static smem, %lld bytes dynamic smem, %u threads/block%s\n",
                build.source.kernelName.c_str(), options.arch.c_str(), r.registers,
                r.spillStoreBytes, r.spillLoadBytes, r.sharedBytes,
                static_cast<long long>(build.source.sharedBytes), build.source.numThreads,
                build.fromDiskCache ? " (disk cache)" : "");
  }
  if (opts.flag("timings"))
    printTimings(kernel.name(), build.timings);
  return 0;
}
} // namespace

/// The attention kernels `loom compile` knows, beside the examples.
const char *const kAttentionKernels[4] = {"attention_fwd", "attention_bwd_dkdv", "attention_bwd_dq",
                                          "attention_bwd_fused"};

bool isAttentionKernel(const std::string &name) {
  return std::find(std::begin(kAttentionKernels), std::end(kAttentionKernels), name) !=
         std::end(kAttentionKernels);
}

/// An attention kernel for --head-dim and --variant, with the untuned default
/// block sizes of the backend it is compiled for as its constants.
dsl::Kernel attentionKernel(const Options &opts, const std::string &name, DType dtype,
                            bool cudaBackend, runtime::Specialization &spec,
                            unsigned &numThreads) {
  int64_t headDim = parseInt(opts.get("head-dim").value_or("64"), "--head-dim");
  auto backend = cudaBackend ? runtime::Backend::Cuda : runtime::Backend::Cpu;
  ops::requireSupportedHeadDim(("loom " + opts.subcommand()).c_str(), headDim, backend, dtype);
  ops::AttentionVariant variant = parseVariant(opts.get("variant").value_or("none"), opts.subcommand()).variant;
  bool forward = name == "attention_fwd";
  ops::AttentionConfig config = forward ? ops::defaultAttentionConfig(headDim, backend)
                                        : ops::defaultAttentionBackwardConfig(headDim, backend);
  spec.constants.emplace("BLOCK_M", config.blockM);
  spec.constants.emplace("BLOCK_N", config.blockN);
  numThreads = config.numThreads;
  if (forward)
    return ops::flashAttentionForwardKernel(dtype, headDim, variant);
  if (name == "attention_bwd_dkdv")
    return ops::flashAttentionBackwardDkDvKernel(dtype, headDim, variant);
  if (name == "attention_bwd_fused")
    return ops::flashAttentionBackwardFusedKernel(dtype, headDim, variant);
  return ops::flashAttentionBackwardDqKernel(dtype, headDim, variant);
}

int runCompile(int argc, char **argv) {
  Options opts("compile", {"kernel", "dtype", "emit", "const", "bind", "opt", "arch", "threads", "stages", "o",
                "head-dim", "variant", "cpu-target"},
               {"timings", "report"}, {"const", "bind"});
  opts.parse(argc, argv, 2);
  if (auto out = opts.get("o"))
    checkOutputs("loom compile", {{"-o", *out}}); // before compiling
  auto kernelName = opts.get("kernel");
  if (!kernelName)
    throw Error(ErrorCode::InvalidArgument, "loom compile: --kernel NAME is required");
  std::string dtypeText = opts.get("dtype").value_or(*kernelName == "matmul" ? "bf16" : "f32");
  auto dtype = parseDType(dtypeText);
  if (!dtype || (*dtype != DType::F32 && *dtype != DType::F16 && *dtype != DType::BF16))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom compile: --dtype '{}' is not one of f32, f16, bf16", dtypeText));
  std::string emit = opts.get("emit").value_or("");
  bool cudaEmit = emit == "cuda" || emit == "ptx" || emit == "cubin";
  if (!emit.empty() && emit != "mlir" && emit != "llvm" && !cudaEmit)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom compile: --emit '{}' is not one of mlir, llvm, cuda, ptx, cubin",
                            emit));
  // --arch or --report alone compile for the GPU and print only the report.
  bool cudaBackend = cudaEmit || opts.get("arch") || opts.flag("report");
  runtime::Specialization spec = parseSpecialization(opts, *kernelName);
  bool attention = isAttentionKernel(*kernelName);
  if (!attention) {
    std::string known;
    bool example = false;
    for (const ops::ExampleInfo &e : ops::exampleKernels()) {
      known += (known.empty() ? "" : ", ") + e.name;
      example |= e.name == *kernelName;
    }
    for (const char *name : kAttentionKernels)
      known += std::string(", ") + name;
    if (!example)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("unknown kernel '{}' (known: {})", *kernelName, known));
  }
  // The constants the kernel reads: any other --const is a typo it would
  // silently ignore.
  std::vector<std::string> declared;
  if (attention)
    declared = {"BLOCK_M", "BLOCK_N"};
  for (const ops::ExampleInfo &e : ops::exampleKernels())
    if (e.name == *kernelName)
      for (const auto &[name, value] : e.defaultConstants)
        declared.push_back(name);
  for (const std::string &c : opts.getAll("const")) {
    std::string name = splitAssignment(c, "--const").first;
    if (std::find(declared.begin(), declared.end(), name) == declared.end())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("loom compile: --const {}: '{}' is not a constant of kernel '{}' "
                              "(its constants: {})",
                              c, name, *kernelName, fmt::join(declared, ", ")));
  }
  if (opts.get("o") && emit.empty())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom compile: -o {} needs --emit (mlir, llvm, cuda, ptx or cubin)",
                            *opts.get("o")));
  if (!attention && (opts.get("head-dim") || opts.get("variant")))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom compile: --head-dim and --variant are for the attention kernels "
                            "(attention_fwd, attention_bwd_dkdv, attention_bwd_dq, "
                            "attention_bwd_fused), not '{}'",
                            *kernelName));
  // The one-pass backward adds into its dQ partials across iterations,
  // which only the CPU's one-thread-per-program execution orders; a GPU
  // block's threads would race on them.
  if (*kernelName == "attention_bwd_fused" && cudaBackend)
    throw Error(ErrorCode::Unsupported,
                "loom compile: attention_bwd_fused is the CPU backend's one-pass backward; on "
                "cuda the backward runs attention_bwd_dkdv and attention_bwd_dq");
  unsigned attentionThreads = 0;
  dsl::Kernel kernel = attention ? attentionKernel(opts, *kernelName, *dtype, cudaBackend, spec,
                                                   attentionThreads)
                                 : ops::exampleKernel(*kernelName, *dtype);
  if (auto opt = opts.get("opt")) {
    int64_t level = parseInt(*opt, "--opt");
    if (level < 0 || level > 3)
      throw Error(ErrorCode::InvalidArgument, fmt::format("--opt {} is not in 0..3", level));
    spec.optLevel = static_cast<unsigned>(level);
  }

  if (auto stages = opts.get("stages")) {
    int64_t n = parseInt(*stages, "--stages");
    if (n < 0 || n > 8)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--stages {} is not in 0..8 (shared-memory slots per pipelined dot "
                              "operand; 0 turns pipelining off)",
                              n));
    if (!cudaBackend)
      throw Error(ErrorCode::InvalidArgument,
                  "loom compile: --stages is for the CUDA backend (--arch, --emit cuda|ptx|cubin)");
    spec.numStages = static_cast<unsigned>(n);
  }

  if (auto cpuTarget = opts.get("cpu-target")) {
    if (cudaBackend)
      throw Error(ErrorCode::InvalidArgument,
                  "loom compile: --cpu-target is for the CPU backend, not with --arch, --report "
                  "or --emit cuda|ptx|cubin");
    spec.cpuTarget = *cpuTarget;
  }
  if (cudaBackend) {
    if (emit == "mlir" || emit == "llvm")
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("loom compile: --emit {} is a CPU backend output; with --arch use "
                              "--emit cuda, ptx or cubin",
                              emit));
    return compileForCuda(opts, kernel, spec, emit,
                          attention ? std::optional<unsigned>(attentionThreads) : std::nullopt);
  }
  // The IR goes to -o FILE when given, else to stdout.
  std::string ir;
  auto afterStage = [&](const std::string &stage, mlir::ModuleOp module) {
    if (emit == "mlir") {
      ir += "// ----- IR after stage '" + stage + "' -----\n";
      llvm::raw_string_ostream os(ir);
      module.print(os);
    } else if (emit == "llvm" && stage == "llvm") {
      ir += compiler::translateToLLVMIRText(module, spec.optLevel,
                                            compiler::resolveCpuTarget(spec.cpuTarget));
    }
  };
  auto compiled = runtime::compileUncached(kernel, spec, afterStage);
  if (!emit.empty())
    emitText(opts.get("o"), ir);
  if (opts.flag("timings"))
    printTimings(compiled->name(), compiled->timings());
  if (emit.empty() && !opts.flag("timings"))
    std::printf("compiled %s (cache key %s)\n", compiled->name().c_str(),
                compiled->cacheKey().c_str());
  return 0;
}

} // namespace loom::cli
