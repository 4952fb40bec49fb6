//===- registers_bench.cpp - ptxas resources, generic and block accesses --===//
//
// ptxas' report (registers per thread, spill bytes, shared memory) for the
// example matmul and the attention kernels (bf16, causal, default block
// sizes per head dim) compiled by NVRTC, once with the generic loads and
// stores (LOOM_BLOCK_ACCESS=0: tiles of offsets and masks, the code
// generation before loom-structure-memory) and once with the block accesses
// that pass makes; register layouts are assigned in both. Compiled, not run
// on hardware: no GPU speed is measured here.
//
// Usage: loom-bench-registers [arch [BM BN THREADS]...]   (default sm_80)
// With block configs, the attention kernels at d64/128/256 for each of them
// instead of the default configs. DUMP=dir writes every generated source
// there (self-contained, for nvcc -Xptxas -v).
//
//===----------------------------------------------------------------------===//
#include "loom/ops/Attention.h"
#include "loom/ops/Examples.h"
#include "loom/runtime/CudaBuild.h"

#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <string>
#include <vector>

using namespace loom;

namespace {
struct Resources {
  int registers = 0, spillBytes = 0;
  long long smem = 0;
};

Resources build(const dsl::Kernel &kernel, const runtime::Specialization &spec, unsigned threads,
                const std::string &arch, bool blockAccess) {
  setenv("LOOM_BLOCK_ACCESS", blockAccess ? "1" : "0", 1);
  runtime::CudaBuildOptions options;
  options.arch = arch;
  options.numThreads = threads;
  auto b = runtime::buildCuda(kernel, spec, options);
  if (const char *dump = std::getenv("DUMP"))
    std::ofstream(std::string(dump) + "/" + kernel.name() + (blockAccess ? "_block" : "_generic") + ".cu")
        << runtime::selfContainedSource(b.source.code);
  const auto &r = b.resources();
  return {r.registers, r.spillStoreBytes + r.spillLoadBytes, (long long)b.source.sharedBytes};
}

void row(const std::string &name, const std::string &config, const dsl::Kernel &kernel,
         const runtime::Specialization &spec, unsigned threads, const std::string &arch) {
  Resources before = build(kernel, spec, threads, arch, false);
  Resources after = build(kernel, spec, threads, arch, true);
  std::printf("| %s | %s | %d / %d | %d / %d | %lld / %lld |\n", name.c_str(), config.c_str(),
              before.registers, after.registers, before.spillBytes, after.spillBytes, before.smem,
              after.smem);
  std::fflush(stdout);
}
} // namespace

int main(int argc, char **argv) {
  std::string arch = argc > 1 ? argv[1] : "sm_80";
  std::printf("ptxas resources for %s, generic / block loads and stores "
              "(compiled, not run on hardware)\n\n",
              arch.c_str());
  std::printf("| kernel | config | registers | spill bytes (st+ld) | smem bytes |\n");
  std::printf("|---|---|---|---|---|\n");
  runtime::Specialization mm;
  mm.constants = {{"BLOCK_M", 64}, {"BLOCK_N", 64}, {"BLOCK_K", 32}};
  row("matmul bf16", "64x64x32, 128 thr", ops::matmulKernel(DType::BF16), mm, 128, arch);
  mm.constants = {{"BLOCK_M", 128}, {"BLOCK_N", 128}, {"BLOCK_K", 32}};
  row("matmul bf16", "128x128x32, 256 thr", ops::matmulKernel(DType::BF16), mm, 256, arch);
  std::vector<ops::AttentionConfig> extra;
  for (int i = 2; i + 2 < argc; i += 3)
    extra.push_back({std::atoll(argv[i]), std::atoll(argv[i + 1]), (unsigned)std::atoi(argv[i + 2])});
  if (!extra.empty()) {
    auto causal = ops::AttentionVariant::causalMask();
    for (const auto &cfg : extra)
      for (int64_t d : {64, 128, 256}) {
        runtime::Specialization spec;
        spec.constants = {{"BLOCK_M", cfg.blockM}, {"BLOCK_N", cfg.blockN}};
        std::string label = std::to_string(cfg.blockM) + "x" + std::to_string(cfg.blockN) + ", " +
                            std::to_string(cfg.numThreads) + " thr";
        std::string hd = " d" + std::to_string(d);
        row("attn fwd" + hd, label, ops::flashAttentionForwardKernel(DType::BF16, d, causal), spec,
            cfg.numThreads, arch);
        row("attn bwd dK/dV" + hd, label,
            ops::flashAttentionBackwardDkDvKernel(DType::BF16, d, causal), spec, cfg.numThreads,
            arch);
        row("attn bwd dQ" + hd, label, ops::flashAttentionBackwardDqKernel(DType::BF16, d, causal),
            spec, cfg.numThreads, arch);
      }
    return 0;
  }
  for (int64_t d : {64, 96, 128, 192, 256}) {
    auto causal = ops::AttentionVariant::causalMask();
    auto cfg = ops::defaultAttentionConfig(d, runtime::Backend::Cuda);
    runtime::Specialization spec;
    spec.constants = {{"BLOCK_M", cfg.blockM}, {"BLOCK_N", cfg.blockN}};
    auto label = [&](const ops::AttentionConfig &c) {
      return std::to_string(c.blockM) + "x" + std::to_string(c.blockN) + ", " +
             std::to_string(c.numThreads) + " thr";
    };
    std::string hd = " d" + std::to_string(d);
    row("attn fwd" + hd, label(cfg), ops::flashAttentionForwardKernel(DType::BF16, d, causal),
        spec, cfg.numThreads, arch);
    auto bcfg = ops::defaultAttentionBackwardConfig(d, runtime::Backend::Cuda);
    runtime::Specialization bspec;
    bspec.constants = {{"BLOCK_M", bcfg.blockM}, {"BLOCK_N", bcfg.blockN}};
    row("attn bwd dK/dV" + hd, label(bcfg),
        ops::flashAttentionBackwardDkDvKernel(DType::BF16, d, causal), bspec, bcfg.numThreads,
        arch);
    row("attn bwd dQ" + hd, label(bcfg),
        ops::flashAttentionBackwardDqKernel(DType::BF16, d, causal), bspec, bcfg.numThreads, arch);
  }
  return 0;
}
