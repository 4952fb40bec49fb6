//===- Usage.cpp - loom's help texts --------------------------------------===//
//
// One text per command: `loom COMMAND --help` prints it with a usage line and
// an example, and `loom --help` prints them all, so the two never disagree.
//
//===----------------------------------------------------------------------===//
#include "Usage.h"

#include <vector>

namespace loom::cli {
namespace {
struct CommandHelp {
  const char *name;
  const char *synopsis; // after "usage: loom "
  const char *body;     // summary and options, indented by 2
  const char *example;
};

const std::vector<CommandHelp> &commands() {
  static const std::vector<CommandHelp> list = {
      {"demo", "demo [--kernels [--backend cpu|emu|auto]]",
       R"(  run the main job on the CPU: causal ring attention (zigzag) over
  4 in-process ranks, forward and backward, checked against
  single-device attention and float64; prints per-rank memory,
  per-step compute/transfer times and overlap
    --kernels            instead: DSL softmax and matmul, checked
                         against float64, with compile-stage timings
    --backend cpu|emu|auto  (with --kernels) cpu (default when no GPU, or LOOM_DEVICE)
                         or emu: the generated CUDA C++ run on the
                         emulated device
)",
       "loom demo --kernels --backend emu"},
      {"compile", "compile --kernel NAME [options]",
       R"(  compile a built-in kernel and print its IR
    --kernel NAME        vector_add | softmax | matmul |
                         attention_fwd | attention_bwd_dkdv |
                         attention_bwd_dq | attention_bwd_fused
                         (the CPU's one-pass backward)
    --head-dim D --variant SPEC  (attention) head dim (default 64)
                         and variant (as for `loom attention`);
                         block sizes default to the backend's
                         untuned ones (override with --const)
    --dtype T            f32 | f16 | bf16 (default: f32; matmul bf16)
    --emit mlir|llvm     CPU backend: IR after each stage, or LLVM IR
    --cpu-target T       CPU backend: host | x86-64-v2 | x86-64-v3 |
                         x86-64-v4 (default: $LOOM_CPU_TARGET, else host)
    --emit cuda|ptx|cubin  CUDA backend: self-contained CUDA C++
                         (NVRTC and nvcc compile it as is), PTX, or
                         a CUBIN written to -o FILE
    --arch sm_80|sm_86|sm_89|sm_90a  CUDA target (default sm_80;
                         sm_90a uses the sm_80 mma.sync path:
                         wgmma/TMA are future work)
    --threads N          threads per block (default 128)
    --stages N           shared-memory slots per pipelined dot operand
                         (default 2: copies run one loop iteration
                         ahead; 0: no pipelining)
    --report             registers, spills and shared memory (ptxas)
    -o FILE / --o FILE   write the output to FILE
    --const NAME=VALUE   compile-time constant (repeatable)
    --bind NAME=VALUE    bind a scalar argument (repeatable)
    --timings            print each stage's milliseconds
)",
       "loom compile --kernel attention_fwd --head-dim 128 --variant causal --arch sm_80 --report"},
      {"attention", "attention --q Q.npy --k K.npy --v V.npy --out O.npy [options]",
       R"(  flash attention forward (and backward) on .npy files (float32, C order,
  (batch, seqlen, heads, head_dim); K/V heads may be fewer than
  Q's and divide them (GQA/MQA))
    --q/--k/--v FILE     inputs
    --out FILE           output O: float32, Q's shape
    --lse FILE           also write LSE: float32 (batch, heads, seqlen_q)
    --variant SPEC       comma-separated terms: none (default),
                         causal (bottom-right aligned),
                         sliding_window(W), alibi, softcap(C),
                         prefix(P); e.g. causal,softcap(30).
                         Score modifiers (alibi, softcap) apply in the
                         order written: alibi,softcap(20) caps the
                         biased score, softcap(20),alibi biases the
                         capped one; masks commute
    --cu-seqlens 0,a,b,...  packed documents (batch 1): no attention
                         across documents
    --grad-out dO.npy --dq F --dk F --dv F  also run the backward
    --bias FILE          float32 (heads, seqlen_q, seqlen_k), broadcast
                         over batch, added to the scaled score before
                         the --variant terms
    --sinks FILE         float32 (heads,): attention sinks
    --dbias F --dsinks F with the backward: their gradients (float32,
                         same shapes; summed over batch and rows)
    --scale S            softmax scale (default 1/sqrt(head_dim))
    --dtype f32|f16|bf16 compute dtype: inputs rounded to it (nearest
                         even); outputs are float32 (default f32)
    --backend auto|cpu|emu  auto is cpu unless LOOM_DEVICE=emu (cuda
                         is not supported yet: it needs device buffers)
    --quiet              no progress line (a run estimated to take over
                         $LOOM_PROGRESS_AFTER_MS ms, default 3000, prints
                         one on stderr: pass, ring step, heads done, %,
                         time left)
    --repeat N           run N (>= 1) more times after the first call;
                         stderr gets one line "timing: compile <ms> ms,
                         run median <ms> ms over <N> runs" (compile: the
                         first call's JIT and cache time; a run is the
                         forward, and the backward with --grad-out)
    --cpu-threads T      CPU backend threads (default: LOOM_NUM_THREADS,
                         else every core)
)",
       "loom attention --q q.npy --k k.npy --v v.npy --out o.npy --variant causal,softcap(30)"},
      {"ring", "ring --q Q.npy --k K.npy --v V.npy --out O.npy [options]",
       R"(  ring attention: the sequence split over P ranks, K/V shards
  travelling the ring; whole-sequence .npy in and out, directly
  comparable with `loom attention`
    --world P            ranks (default 4; with mpi: mpirun's -np)
    --layout contiguous|zigzag|stripe  token layout (default zigzag)
    --transport inproc|mpi  threads of this process (default), or
                         processes: mpirun -np P loom ring ...
    --timeline FILE      per-rank, per-step compute and transfer
                         times (Chrome trace format JSON)
    --timeout S          communication deadline (default 60)
    every option of `loom attention`; with --repeat N, stderr gets
                         "timing: rank R compile <ms> ms, run median <ms>
                         ms over <N> runs" per rank, then the overall
                         "timing: compile ..." line: the slowest rank's
                         compile, and the median over runs of each run's
                         slowest rank
)",
       "loom ring --world 4 --layout zigzag --variant causal --q q.npy --k k.npy --v v.npy --out o.npy"},
      {"tune", "tune --op attention [options]",
       R"(  autotune a kernel for this kind of node; the winner is cached in
  $LOOM_CACHE_DIR/autotune/ and used by later calls (copy the file
  to other nodes of the same kind)
    --op attention       the kernel (only attention so far)
    --head-dim D --dtype f32|f16|bf16 --variant none|causal
    --seqlen S           tuned for its power-of-two bucket
    --pass fwd|bwd       forward (default) or backward
    --batch B --heads H  tensor shape used for timing (default 1, 1)
    --backend auto|cpu|emu|cuda
    --arch sm_80|sm_86|sm_89|sm_90a  prune configs on ptxas' report
                         for this arch (default: the GPU's; sm_80
                         on emu; none on cpu)
    --world P            split the configs over P in-process ranks
    --reps N --warmup N  timed runs per config (median) and warm-ups
    --max-timed N        time only the N best by the cost model
    --force              re-tune even when cached
)",
       "loom tune --op attention --head-dim 64 --dtype f32 --seqlen 4096 --backend cpu"},
      {"profile", "profile [--kernel attention_fwd|attention_bwd] [options]",
       R"(  what a GPU would do with an attention kernel, no GPU needed (compiled,
  modeled, not measured): its main loop's SASS by instruction class per
  CTA per iteration (nvdisasm), registers, spills, shared memory,
  occupancy, and the speed-of-light model's time for a problem shape;
  beside it the same for Triton's fused-attention tutorial when a Python
  with triton is found ($LOOM_BENCH_PYTHON, else the venv
  $LOOM_TRITON_VENV or ~/.local/share/loom/triton-venv, else python3)
    --kernel K           attention_fwd (default) | attention_bwd (dK/dV
                         and dQ kernels)
    --head-dim D         64 | 128 (default) | 256
    --dtype f16|bf16     (default bf16)
    --variant none|causal
    --arch sm_80|sm_86|sm_89|sm_90a  (default sm_80; model: A100, A10,
                         L4, H100 on the mma.sync path)
    --const NAME=VALUE   BLOCK_M, BLOCK_N (repeatable; default: the
                         untuned defaults) --threads N --stages N
    --seqlen S --heads H --batch B  problem (default 4096, 16, 4)
    --no-sass            skip disassembly: the model from the tile shape
    --no-emu             skip the emulator's exact counters (mma, ldmatrix
                         and shared wavefronts, cp.async, global sectors,
                         barriers, shfl, ex2) of a small call, same config
    --triton auto|first|off  Triton's side (default auto; first: its
                         first config only)
  nvdisasm: $LOOM_NVDISASM, PATH, or scripts/install-deps.sh's venv
)",
       "loom profile --kernel attention_fwd --head-dim 128 --arch sm_80 --const BLOCK_M=128 --const BLOCK_N=64 --threads 128"},
      {"cache", "cache list|clear",
       R"(  list or clear the autotune cache files under $LOOM_CACHE_DIR/autotune/
)",
       "loom cache list"},
      {"version", "version",
       R"(  print the Loom, MLIR, NVRTC and NCCL versions, the host CPU with the
  features that decide Loom's CPU code (AVX2, AVX-512F, AVX512-BF16,
  AMX, F16C, FMA), and the CPU target kernels are built for
)",
       "loom version"},
  };
  return list;
}

const char *kEnvironment = R"(environment:
  LOOM_CPU_TARGET      CPU kernels' instruction set: host (default) | x86-64-v2 |
                       x86-64-v3 | x86-64-v4
  LOOM_DEVICE          backend when auto: cpu | emu | cuda
  LOOM_CACHE_DIR       kernel and autotune caches
  LOOM_PROGRESS_AFTER_MS  loom attention/ring: the progress line shows for
                       runs estimated to take longer (default 3000; 0: always)
  LOOM_NUM_THREADS     CPU backend threads (default: every core)
)";
} // namespace

std::string commandUsage(const std::string &command) {
  for (const CommandHelp &c : commands())
    if (command == c.name)
      return std::string("usage: loom ") + c.synopsis + "\n\n" + c.body + "\nexample:\n  " +
             c.example + "\n";
  return {};
}

std::string fullUsage() {
  std::string text = "usage: loom <command> [options]   (loom <command> --help for one)\n\n"
                     "commands:\n";
  for (const CommandHelp &c : commands())
    text += std::string("  ") + c.name + "\n" + c.body;
  text += "  help                 print this message\n\n";
  text += kEnvironment;
  return text;
}
} // namespace loom::cli
