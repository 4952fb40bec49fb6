//===- main.cpp - the loom command-line tool ------------------------------===//
#include "Cli.h"
#include "Commands.h"

#include "loom/Support/Error.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace {
const char *kUsage = R"(usage: loom <command> [options]

commands:
  demo       run the main job on the CPU: causal ring attention (zigzag) over
             4 in-process ranks, forward and backward, checked against
             single-device attention and float64; prints per-rank memory,
             per-step compute/transfer times and overlap
               --kernels            instead: DSL softmax and matmul, checked
                                    against float64, with compile-stage timings
               --backend cpu|emu|auto  (with --kernels) cpu (default when no GPU, or LOOM_DEVICE)
                                    or emu: the generated CUDA C++ run on the
                                    emulated device
  compile    compile a built-in kernel and print its IR
               --kernel NAME        vector_add | softmax | matmul |
                                    attention_fwd | attention_bwd_dkdv |
                                    attention_bwd_dq
               --head-dim D --variant SPEC  (attention) head dim (default 64)
                                    and variant (as for `loom attention`);
                                    block sizes default to the backend's
                                    untuned ones (override with --const)
               --dtype T            f32 | f16 | bf16 (default: f32; matmul bf16)
               --emit mlir|llvm     CPU backend: IR after each stage, or LLVM IR
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
  attention  flash attention forward (and backward) on .npy files (float32, C order,
             (batch, seqlen, heads, head_dim); K/V heads may be fewer than
             Q's and divide them (GQA/MQA))
               --q/--k/--v FILE     inputs
               --out FILE           output O: float32, Q's shape
               --lse FILE           also write LSE: float32 (batch, heads, seqlen_q)
               --variant SPEC       comma-separated terms: none (default),
                                    causal (bottom-right aligned),
                                    sliding_window(W), alibi, softcap(C),
                                    prefix(P); e.g. causal,softcap(30)
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
  ring       ring attention: the sequence split over P ranks, K/V shards
             travelling the ring; whole-sequence .npy in and out, directly
             comparable with `loom attention`
               --world P            ranks (default 4; with mpi: mpirun's -np)
               --layout contiguous|zigzag|stripe  token layout (default zigzag)
               --transport inproc|mpi  threads of this process (default), or
                                    processes: mpirun -np P loom ring ...
               --timeline FILE      per-rank, per-step compute and transfer
                                    times (Chrome trace format JSON)
               --timeout S          communication deadline (default 60)
               every option of `loom attention`
  tune       autotune a kernel for this kind of node; the winner is cached in
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
  cache      list | clear           the autotune cache files
  version    print Loom, MLIR, NVRTC and NCCL versions
  help       print this message
)";
} // namespace

int main(int argc, char **argv) {
  if (argc < 2 || !std::strcmp(argv[1], "help") || !std::strcmp(argv[1], "--help") ||
      !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  try {
    if (command == "demo")
      return loom::cli::runDemo(argc, argv);
    if (command == "compile")
      return loom::cli::runCompile(argc, argv);
    if (command == "attention")
      return loom::cli::runAttention(argc, argv);
    if (command == "ring")
      return loom::cli::runRing(argc, argv);
    if (command == "tune")
      return loom::cli::runTune(argc, argv);
    if (command == "cache")
      return loom::cli::runCache(argc, argv);
    if (command == "version")
      return loom::cli::runVersion(argc, argv);
    std::fprintf(stderr, "loom: error: unknown command '%s' (see loom --help)\n",
                 command.c_str());
    return 2;
  } catch (const loom::Error &e) {
    std::fprintf(stderr, "loom: error: %s\n", e.what());
    return e.code() == loom::ErrorCode::InvalidArgument ||
                   e.code() == loom::ErrorCode::Unsupported
               ? 2
               : 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "loom: error: %s\n", e.what());
    return 1;
  }
}
